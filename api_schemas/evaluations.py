"""Held-out test results that evaluators post (``/v1/experiments/{id}/evaluations``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.limits import (
    MAX_CHECKPOINT_REF,
    MAX_ENV_STEPS,
    MAX_EPISODES,
    MAX_EVALUATIONS,
    Name,
    Real,
    WorkerLabel,
    text,
)
from api_schemas.wire import RESPONSE, Float, Int, bounded_int

CheckpointRef = text(MAX_CHECKPOINT_REF)


class Evaluation(BaseModel):
    """One evaluation of a student on one environment (a held-out maze or an env id)."""

    model_config = ConfigDict(extra="forbid")

    env: Name = Field(description="Held-out maze name or gymnasium env id.")
    episodes: Int = Field(ge=1, le=MAX_EPISODES, description="Episodes played.")
    solve_rate: Float = Field(ge=0.0, le=1.0, description="Share of episodes solved.")
    mean_return: Real = Field(description="Mean episode return.")
    env_steps: bounded_int(0, MAX_ENV_STEPS) | None = Field(
        default=None, description="Training env steps of the evaluated weights."
    )
    checkpoint: CheckpointRef | None = Field(
        default=None, description="Where the evaluated weights are stored."
    )
    worker: WorkerLabel | None = Field(default=None, description="Who evaluated.")


class EvaluationBatch(BaseModel):
    """``POST /v1/experiments/{id}/evaluations`` body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "evaluations": [
                        {
                            "env": "SixteenRooms",
                            "episodes": 20,
                            "solve_rate": 0.55,
                            "mean_return": 0.41,
                            "env_steps": 3000000,
                        }
                    ]
                }
            ]
        },
    )

    evaluations: list[Evaluation] = Field(min_length=1, max_length=MAX_EVALUATIONS)


class EvaluationRecord(Evaluation):
    """A stored evaluation, with the server time it arrived."""

    model_config = RESPONSE

    received_at: float


class EvaluationList(BaseModel):
    """``GET /v1/experiments/{id}/evaluations``: oldest first."""

    model_config = RESPONSE

    data: list[EvaluationRecord]
    count: int


class EvaluationAck(BaseModel):
    """Answer to a posted batch (sent once it is durable)."""

    model_config = RESPONSE

    accepted: int
