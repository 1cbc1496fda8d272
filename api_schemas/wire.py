"""How the models are published in the OpenAPI document (beyond their fields' limits)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: The config of every response model: its fields are always present in answers, so the
#: OpenAPI document marks them required (defaults matter only in requests).
RESPONSE = ConfigDict(json_schema_serialization_defaults_required=True)


def kind_required(schema: dict[str, Any]) -> None:
    """Mark ``kind`` required: it has a default for Python callers, but on the wire it picks
    the member of a discriminated union (a space, a teacher config), so it must be sent."""
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


def json_number(value: Any) -> Any:
    """Refuse booleans, strings and NaN/infinity where a number is expected (before lax
    coercion)."""
    # Pydantic's lax mode would read true as 1 and "7" as 7; JSON types are checked first.
    if isinstance(value, bool | str | bytes | bytearray):
        raise PydanticCustomError(
            "number_type", "Input should be a JSON number, not {got}", {"got": _json_type(value)}
        )
    if isinstance(value, float) and not math.isfinite(value):  # Python's JSON reads NaN
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool | np.bool_):
        raise PydanticCustomError(
            "bool_type", "Input should be true or false, not {got}", {"got": _json_type(value)}
        )
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str | bytes | bytearray):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__


#: Request fields take exactly their JSON type: an integer (``3`` or ``3.0``, as in JSON
#: Schema), a number, a boolean. Numpy scalars are accepted from Python callers.
Int = Annotated[int, BeforeValidator(json_number)]
Float = Annotated[float, BeforeValidator(json_number)]
Bool = Annotated[bool, BeforeValidator(_boolean)]


def bounded_int(ge: int, le: int) -> Any:
    """An ``Int`` in ``[ge, le]`` that can be made optional (``bounded_int(0, 9) | None``)
    with its bounds still published as ``minimum``/``maximum``."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(json_number)]


def bounded_float(ge: float, le: float, *, open_low: bool = False) -> Any:
    """A finite ``Float`` in ``[ge, le]`` (``(ge, le]`` with ``open_low``) usable inside
    containers (dict values) or made optional, its bounds published as
    ``minimum``/``maximum`` (``exclusiveMinimum``)."""
    low = {"gt": ge} if open_low else {"ge": ge}
    return Annotated[float, Field(**low, le=le, allow_inf_nan=False), BeforeValidator(json_number)]
