"""Held-out test results that evaluators post (``/v1/experiments/{id}/evaluations``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.spaces import Name


class Evaluation(BaseModel):
    """One evaluation of a student on one environment (a held-out maze or an env id)."""

    model_config = ConfigDict(extra="forbid")

    env: Name = Field(description="Held-out maze name or gymnasium env id.")
    episodes: int = Field(ge=1, le=1_000_000, description="Episodes played.")
    solve_rate: float = Field(ge=0.0, le=1.0, description="Share of episodes solved.")
    mean_return: float = Field(allow_inf_nan=False, description="Mean episode return.")
    env_steps: int | None = Field(
        default=None, ge=0, description="Training env steps of the evaluated weights."
    )
    checkpoint: str | None = Field(
        default=None, max_length=1024, description="Where the evaluated weights are stored."
    )
    worker: str | None = Field(default=None, max_length=128, description="Who evaluated.")


class EvaluationBatch(BaseModel):
    """``POST /v1/experiments/{id}/evaluations`` body."""

    model_config = ConfigDict(extra="forbid")

    evaluations: list[Evaluation] = Field(min_length=1, max_length=1000)


class EvaluationRecord(Evaluation):
    """A stored evaluation, with the server time it arrived."""

    received_at: float


class EvaluationList(BaseModel):
    """``GET /v1/experiments/{id}/evaluations``: oldest first."""

    data: list[EvaluationRecord]
    count: int


class EvaluationAck(BaseModel):
    """Answer to a posted batch (sent once it is durable)."""

    accepted: int
