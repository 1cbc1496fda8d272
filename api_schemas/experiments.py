"""Experiments: name + task space + teacher config + seed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_schemas.limits import MAX_LEASE_SECONDS, MAX_SEED, Name
from api_schemas.spaces import TaskSpace
from api_schemas.teachers import TeacherConfig
from api_schemas.wire import RESPONSE, Float, Int


class ExperimentCreate(BaseModel):
    """Body of ``POST /v1/experiments``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "walker",
                    "space": {
                        "kind": "box",
                        "dims": [
                            {"name": "stump_height", "low": 0.0, "high": 3.0},
                            {"name": "gap_width", "low": 0.0, "high": 6.0},
                        ],
                    },
                    "teacher": {"kind": "alp_gmm", "fit_rate": 250},
                    "seed": 0,
                },
                {
                    "name": "tech-tree",
                    "space": {
                        "kind": "discrete",
                        "tasks": [
                            {"name": "wood", "description": "collect wood", "category": "basic"},
                            {"name": "stone", "description": "mine stone", "category": "tools"},
                        ],
                    },
                    "teacher": {"kind": "lp", "eval_interval": 100},
                    "seed": 0,
                },
            ]
        },
    )

    name: Name = Field(description="Unique name; routes accept it in place of the id.")
    space: TaskSpace
    teacher: TeacherConfig
    seed: Int = Field(default=0, ge=0, le=MAX_SEED, description="Seed of the teacher's RNG.")
    lease_seconds: Float = Field(
        default=600.0,
        gt=0,
        le=MAX_LEASE_SECONDS,
        allow_inf_nan=False,
        description="A task not reported within this many seconds expires; the teacher is told.",
    )

    @model_validator(mode="after")
    def _teacher_accepts_space(self) -> ExperimentCreate:
        if self.space.kind not in self.teacher.SPACES:
            raise ValueError(
                f"teacher {self.teacher.kind!r} does not accept {self.space.kind!r} spaces "
                f"(it accepts: {', '.join(self.teacher.SPACES)})"
            )
        return self


class ExperimentCounters(BaseModel):
    """Progress counters of one experiment.

    All counters are derived from the durable log except ``duplicates`` and
    ``late_reports`` (repeats and reports of expired tasks), which change nothing stored
    and therefore count only since the server process started.
    """

    model_config = RESPONSE

    tasks_issued: int = 0
    reports_accepted: int = 0
    duplicates: int = 0
    expired: int = 0
    late_reports: int = 0
    outstanding: int = 0
    events: int = 0


class ExperimentPublic(BaseModel):
    """An experiment as the API returns it."""

    model_config = RESPONSE

    id: str
    name: str
    space: TaskSpace
    teacher: TeacherConfig
    seed: int
    lease_seconds: float
    created_at: float
    counters: ExperimentCounters


class ExperimentList(BaseModel):
    """``GET /v1/experiments``."""

    model_config = RESPONSE

    data: list[ExperimentPublic]
    count: int


class ExperimentState(BaseModel):
    """``GET /v1/experiments/{id}/state``: counters plus the teacher's own view."""

    model_config = RESPONSE

    id: str
    name: str
    teacher_kind: str
    counters: ExperimentCounters
    teacher: dict[str, Any]
