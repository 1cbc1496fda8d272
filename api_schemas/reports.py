"""Reports: what a student returns for one task."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.limits import (
    MAX_BATCH,
    MAX_EPISODE_LENGTH,
    MAX_EPISODES,
    MAX_SCORE_NAME,
    MAX_SCORES,
    MAX_TASK_ID,
    Real,
    text,
)
from api_schemas.wire import RESPONSE, Bool, Int, bounded_int

#: A score's name: any well-formed Unicode text of 1 to ``MAX_SCORE_NAME`` characters.
ScoreName = text(MAX_SCORE_NAME, min_length=1)
TaskId = text(MAX_TASK_ID, min_length=1)


class Report(BaseModel):
    """The outcome of one task. A task is reported once; repeats are acknowledged and ignored.

    ``scores`` carries per-level scores computed by the student (e.g. ``positive_value_loss``,
    ``mean_value`` for MaxMC); ``episodes`` counts the episodes averaged into the report.
    """

    model_config = ConfigDict(extra="forbid")

    task_id: TaskId = Field(description="The id of the task, as the server issued it.")
    episode_return: Real = Field(description="The episode's return (mean over `episodes`).")
    success: Bool | None = Field(default=None, description="Whether the episode was solved.")
    length: bounded_int(0, MAX_EPISODE_LENGTH) | None = Field(
        default=None, description="Steps of the episode."
    )
    scores: dict[ScoreName, Real] = Field(
        default_factory=dict,
        max_length=MAX_SCORES,
        description="Per-level scores computed by the student, by name.",
    )
    episodes: Int = Field(
        default=1, ge=1, le=MAX_EPISODES, description="Episodes averaged into this report."
    )


class ReportBatch(BaseModel):
    """Body of ``POST /v1/experiments/{id}/reports``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reports": [
                        {
                            "task_id": "3f2a9c0d1b7e4a65-0",
                            "episode_return": 0.82,
                            "success": True,
                            "length": 143,
                            "scores": {"positive_value_loss": 0.05},
                        }
                    ]
                }
            ]
        },
    )

    reports: list[Report] = Field(min_length=1, max_length=MAX_BATCH)


class ReportAck(BaseModel):
    """Answer to a report batch.

    ``accepted``: new reports durably logged and given to the teacher. ``duplicates``: reports
    of tasks already reported (idempotent retries). ``expired``: reports of tasks whose lease
    had expired (the teacher was already told; the report is acknowledged and not used).
    """

    model_config = RESPONSE

    accepted: int
    duplicates: int
    expired: int = 0
