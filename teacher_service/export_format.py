"""The definition of the experiment export format, shared by its writer and its reader.

The server streams exports (:mod:`teacher_service.export`, where the rows are described) and
the client reads them back (:mod:`teacher_service.client.exports`); both take the format
from here: the header's version and Parquet metadata key, the media types, the columns of
each row type (:data:`COLUMNS`, typed from :mod:`teacher_service.event_log` and the wire
models) and what the JSON lines keys and the Parquet schema derive from them.

This module imports no server code (runtime, storage, FastAPI, SQLAlchemy): only
``api_schemas``, the event types and :class:`~teacher_service.teachers.base.TaskProposal`,
so ``import teacher_service.client`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from api_schemas.evaluations import Evaluation
from api_schemas.reports import Report
from teacher_service.event_log import LoggedEvent, ReportEntry, TaskEvent
from teacher_service.teachers.base import TaskProposal

__all__ = [
    "COLUMNS",
    "COMMON_COLUMNS",
    "FIELDS",
    "FORMAT_VERSION",
    "JSON_COLUMNS",
    "MEDIA_TYPES",
    "PARAM_PREFIX",
    "PARQUET_COLUMNS",
    "PARQUET_HEADER_KEY",
    "PARQUET_HINT",
    "Column",
    "ExportFormat",
    "ExportFormatError",
    "parquet_available",
    "require_pyarrow",
]

ExportFormat = Literal["jsonl", "parquet"]

#: Version of the row format (in the header).
FORMAT_VERSION = 1
#: Parquet schema metadata key holding the header (JSON).
PARQUET_HEADER_KEY = b"autocurriculum.export"
#: Media types of the two formats.
MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
#: What to install when pyarrow is missing.
PARQUET_HINT = "pip install 'autocurriculum[export]'"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the export.

    Attributes:
        name: its key in a JSON lines row, its name in Parquet.
        dtype: the Arrow type alias of its Parquet column (``string``, ``int64``,
            ``float64``, ``bool``), or ``json`` for a nested object (kept nested in JSON
            lines, JSON text in Parquet).
    """

    name: str
    dtype: str


# bool before int: a bool is an int.
_SCALAR_DTYPES = ((bool, "bool"), (int, "int64"), (float, "float64"), (str, "string"))


def _dtype(annotation: Any) -> str:
    """The column type of a field annotated ``annotation`` (``X | None``: a nullable X)."""
    if get_origin(annotation) in (Union, UnionType):
        (annotation,) = (a for a in get_args(annotation) if a is not type(None))
    base = get_origin(annotation) or annotation
    if isinstance(base, type):
        if issubclass(base, Mapping):
            return "json"
        for py_type, dtype in _SCALAR_DTYPES:
            if issubclass(base, py_type):
                return dtype
    raise TypeError(f"no export column type for {annotation!r}")


def _columns_of(source: type, *names: str) -> tuple[Column, ...]:
    """Columns named and typed as fields of ``source`` (an event-log type, a wire model):
    the export's types follow what the log and the API store."""
    hints = get_type_hints(source)
    return tuple(Column(name, _dtype(hints[name])) for name in names)


def _distinct(columns: Mapping[str, tuple[Column, ...]]) -> tuple[Column, ...]:
    """Every column once, in order of first use; a name shared by row types has one type."""
    seen: dict[str, Column] = {}
    for column in (c for cols in columns.values() for c in cols):
        if seen.setdefault(column.name, column) != column:
            raise TypeError(f"export column {column.name!r} has two types")
    return tuple(seen.values())


#: The columns every row type starts with (``type``, ``seq``, ``time``).
COMMON_COLUMNS: tuple[Column, ...] = (
    Column("type", "string"),
    *_columns_of(LoggedEvent, "seq", "time"),
)
_OF_TASK = (*_columns_of(Report, "task_id"), *_columns_of(ReportEntry, "index"))
#: The columns of each row type, in order: the one definition every format is built from.
COLUMNS: Mapping[str, tuple[Column, ...]] = MappingProxyType(
    {
        "task": (
            *COMMON_COLUMNS,
            *_OF_TASK,
            *_columns_of(TaskEvent, "worker", "deadline"),
            *_columns_of(TaskProposal, "mode", "params", "level", "agent_id", "role", "init_from"),
        ),
        "report": (
            *COMMON_COLUMNS,
            *_OF_TASK,
            *_columns_of(ReportEntry, "episode_return", "success", "length", "episodes", "scores"),
        ),
        "expire": (*COMMON_COLUMNS, *_OF_TASK),
        "evaluation": (
            *COMMON_COLUMNS,
            *_columns_of(
                Evaluation,
                "env",
                "episodes",
                "solve_rate",
                "mean_return",
                "env_steps",
                "checkpoint",
                "worker",
            ),
        ),
        # tasks that joined a discrete space (their specs); last, so that the columns of
        # earlier exports keep their places
        "space": (*COMMON_COLUMNS, Column("tasks", "json")),
        # a model's judgements (OMNI's interestingness): after every earlier column
        "judgement": (*COMMON_COLUMNS, Column("judgement", "json")),
    }
)
#: The keys of each row type, in order (JSON lines rows have exactly these).
FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {kind: tuple(c.name for c in cols) for kind, cols in COLUMNS.items()}
)
#: The Parquet columns as (name, Arrow type alias): one schema for every row type, every
#: column once, nested objects as JSON text. For box spaces ``params`` is replaced by one
#: float64 column per dimension (:data:`PARAM_PREFIX` + its name).
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, "string" if c.dtype == "json" else c.dtype) for c in _distinct(COLUMNS)
)
#: The columns holding nested objects (JSON text in Parquet).
JSON_COLUMNS: frozenset[str] = frozenset(c.name for c in _distinct(COLUMNS) if c.dtype == "json")
#: Prefix of the Parquet columns a box space's ``params`` is spread into.
PARAM_PREFIX = "param."


class ExportFormatError(ValueError):
    """The requested export format cannot be produced or read here."""


def parquet_available() -> bool:
    """Whether pyarrow (needed for Parquet) can be imported."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def require_pyarrow() -> Any:
    """Import pyarrow (and ``pyarrow.parquet``) for a Parquet export, written or read.

    Imported here, not at module level: pyarrow is an optional extra.

    Returns:
        The ``pyarrow`` module.

    Raises:
        ExportFormatError: pyarrow is not installed (the message says what to install).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet
    except ImportError as exc:
        raise ExportFormatError(f"Parquet needs pyarrow: {PARQUET_HINT}") from exc
    return pa
