"""Tasks: the teacher's proposals as they travel over the wire."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.limits import MAX_BATCH, WorkerLabel
from api_schemas.wire import RESPONSE, Int


class TaskMode(StrEnum):
    """How a student should use a task.

    ``train``: roll out and make gradient updates. ``explore``: roll out and score only, no
    gradient update (Robust PLR new levels, ACCEL children, POET transfer checks).
    ``evaluate``: held-out measurement.
    """

    TRAIN = "train"
    EXPLORE = "explore"
    EVALUATE = "evaluate"


class Task(BaseModel):
    """One proposal of the teacher; ``id`` is unique and made by the server."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True, extra="forbid")

    id: str
    params: dict[str, Any] | None = None
    level: str | None = None
    mode: TaskMode = TaskMode.TRAIN
    agent_id: str | None = Field(
        default=None,
        description="The agent that plays the task (its weights: POET's pairs, PAIRED's roles).",
    )
    role: str | None = Field(default=None, description="The student role (PAIRED).")
    init_from: str | None = Field(
        default=None,
        description="POET: a student without weights for `agent_id` yet starts them as a copy "
        "of this agent's (docs/poet.md).",
    )
    lease_expires_at: float = Field(description="Unix time after which the task expires")


class TaskRequest(BaseModel):
    """Body of ``POST /v1/experiments/{id}/tasks``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"n": 8, "worker": "rollout-0"}]}
    )

    n: Int = Field(default=1, ge=1, le=MAX_BATCH, description="Number of tasks wanted.")
    worker: WorkerLabel | None = Field(
        default=None, description="A label of who asks (kept in the log and the export)."
    )


class TaskBatch(BaseModel):
    """Response of ``POST /v1/experiments/{id}/tasks``."""

    model_config = RESPONSE

    tasks: list[Task]
