"""Reports: what a student returns for one task."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Report(BaseModel):
    """The outcome of one task. A task is reported once; repeats are acknowledged and ignored.

    ``scores`` carries per-level scores computed by the student (e.g. ``positive_value_loss``,
    ``mean_value`` for MaxMC); ``episodes`` counts the episodes averaged into the report.
    """

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=256)
    episode_return: FiniteFloat
    success: bool | None = None
    length: int | None = Field(default=None, ge=0)
    scores: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=64)
    episodes: int = Field(default=1, ge=1)


class ReportBatch(BaseModel):
    """Body of ``POST /v1/experiments/{id}/reports``."""

    model_config = ConfigDict(extra="forbid")

    reports: list[Report] = Field(min_length=1)


class ReportAck(BaseModel):
    """Answer to a report batch.

    ``accepted``: new reports durably logged and given to the teacher. ``duplicates``: reports
    of tasks already reported (idempotent retries). ``expired``: reports of tasks whose lease
    had expired (the teacher was already told; the report is acknowledged and not used).
    """

    accepted: int
    duplicates: int
    expired: int = 0
