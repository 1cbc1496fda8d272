"""Task spaces: what a teacher may propose, and the validation of proposals against them."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_schemas.limits import (
    MAX_BATCH,
    MAX_BOX_DIMS,
    MAX_DESCRIPTION,
    MAX_DISCRETE_TASKS,
    Name,
    Real,
    text,
)
from api_schemas.wire import RESPONSE, kind_required

Description = text(MAX_DESCRIPTION)


class SpaceError(ValueError):
    """A task's params or level do not fit the experiment's task space."""


class BoxDim(BaseModel):
    """One named continuous dimension with finite bounds ``low < high``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    low: Real
    high: Real

    @model_validator(mode="after")
    def _ordered(self) -> BoxDim:
        if not self.low < self.high:
            raise ValueError(
                f"dimension {self.name!r}: low ({self.low}) must be < high ({self.high})"
            )
        return self


class BoxSpace(BaseModel):
    """A continuous box of named dimensions: task params are ``{name: float}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=kind_required)

    kind: Literal["box"] = "box"
    dims: list[BoxDim] = Field(min_length=1, max_length=MAX_BOX_DIMS)
    generator: Name | None = Field(
        default=None,
        description=(
            "A parametric generator that builds a level from each task's params (e.g. "
            "'minigrid_params'): the dims are some of its parameters, within their ranges, and "
            "every task then carries its built level too."
        ),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> BoxSpace:
        names = [d.name for d in self.dims]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names must be unique, got {names}")
        return self

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.dims)

    def validate_params(self, params: dict[str, Any]) -> dict[str, float]:
        """Check that ``params`` names every dimension once with a finite in-bounds value.

        Raises:
            SpaceError: naming the offending dimension and its bounds.
        """
        names = [d.name for d in self.dims]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise SpaceError(f"unknown dimension(s) {unknown}; the space has {names}")
        out: dict[str, float] = {}
        for d in self.dims:
            if d.name not in params:
                raise SpaceError(f"missing dimension {d.name!r}")
            v = params[d.name]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SpaceError(f"dimension {d.name!r} must be a number, got {v!r}")
            v = float(v)
            if not math.isfinite(v) or not d.low <= v <= d.high:
                raise SpaceError(f"dimension {d.name!r}={v} is outside [{d.low}, {d.high}]")
            out[d.name] = v
        return out


class DiscreteTaskSpec(BaseModel):
    """One named task of a discrete space, with an optional text description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: Description | None = None
    category: Name | None = Field(
        default=None, description="A group of tasks (SEC can use categories as its arms)."
    )


class DiscreteSpace(BaseModel):
    """A finite list of named tasks: task params are ``{"task": name}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=kind_required)

    kind: Literal["discrete"] = "discrete"
    tasks: list[DiscreteTaskSpec] = Field(min_length=1, max_length=MAX_DISCRETE_TASKS)

    @model_validator(mode="after")
    def _unique_names(self) -> DiscreteSpace:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("task names must be unique")
        return self

    @property
    def names(self) -> list[str]:
        """Task names in declaration order."""
        return [t.name for t in self.tasks]

    @cached_property
    def _name_set(self) -> frozenset[str]:
        # built once per (frozen) space: checking a proposal must not cost O(tasks)
        return frozenset(t.name for t in self.tasks)

    def validate_params(self, params: dict[str, Any]) -> dict[str, str]:
        """Check that ``params == {"task": <known name>}``.

        Raises:
            SpaceError: for a missing or unknown task name.
        """
        if set(params) != {"task"}:
            raise SpaceError(
                f"discrete params must be exactly {{'task': name}}, got keys {sorted(params)}"
            )
        name = params["task"]
        if name not in self._name_set:
            raise SpaceError(f"unknown task {name!r}")
        return {"task": name}


class TaskAddition(BaseModel):
    """``POST /v1/experiments/{id}/space/tasks``: tasks that join a discrete space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[DiscreteTaskSpec] = Field(min_length=1, max_length=MAX_BATCH)


class TasksAdded(BaseModel):
    """The answer to a :class:`TaskAddition`: how many tasks joined, and the space's size."""

    model_config = RESPONSE

    added: int
    tasks: int


class LevelSpace(BaseModel):
    """Structured levels (e.g. MiniGrid mazes) made by a named generator with a fixed config.

    The generator owns the encoding: the service checks ``config`` and every level with it
    (``env_generators.generators``); here the space is data only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=kind_required)

    kind: Literal["level"] = "level"
    generator: Name = Field(default="minigrid", description="The level generator.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The generator's fixed configuration (its defaults fill what is left out).",
    )


TaskSpace = Annotated[BoxSpace | DiscreteSpace | LevelSpace, Field(discriminator="kind")]
