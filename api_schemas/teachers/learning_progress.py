"""Hyper-parameters of the ``lp`` teacher (OMNI's learning progress over discrete tasks)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from api_schemas.limits import MAX_NAME, text
from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Float, Int, bounded_float

TaskName = text(MAX_NAME, 1)
Probability = bounded_float(0.0, 1.0)


class LPConfig(TeacherConfigBase):
    """OMNI's learning progress over discrete tasks (Zhang et al. 2023); the smoothing and
    reweighting defaults are the paper's, the evaluation schedule is counted in episodes."""

    SPACES: ClassVar[tuple[str, ...]] = ("discrete",)
    DESCRIPTION: ClassVar[str] = (
        "OMNI's learning progress: per-task success measured by scheduled evaluate tasks, "
        "normalised against a random policy, fast/slow EMAs, |f(fast) - f(slow)|, "
        "z-score -> sigmoid weights (tasks with no progress and no success get none)."
    )
    TEACHER: ClassVar[str] = "teacher_service.teachers.learning_progress:LPTeacher"

    kind: Literal["lp"] = "lp"
    ema: Float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="Step of both EMAs: p_fast = EMA(p), p_slow = EMA(p_fast) (paper: 0.1).",
    )
    theta: Float = Field(
        default=0.1,
        gt=0.0,
        lt=0.5,
        description="Reweighting f(p) = (1 - theta) p / (p + theta (1 - 2p)) (paper: 0.1).",
    )
    eval_episodes: Int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Evaluate episodes per task in each evaluation round (paper: 20).",
    )
    eval_interval: Int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description=(
            "Training episodes between evaluation rounds; a round's evaluate tasks count "
            "against the student's episodes."
        ),
    )
    random_success: dict[TaskName, Probability] | None = Field(
        default=None,
        max_length=100_000,
        description=(
            "Success rate of a random policy per task name (missing names: 0). Default: the "
            "first evaluation round's success, measured before any training."
        ),
    )


class OMNIConfig(LPConfig):
    """OMNI (Zhang et al. 2023): ``lp`` plus a model of interestingness that sets aside tasks
    too similar to one already judged interesting."""

    DESCRIPTION: ClassVar[str] = (
        "OMNI: learning progress plus a model of interestingness; walking the tasks by "
        "descending success, a task too similar to one judged interesting is boring "
        "(its weight x boring_weight)."
    )
    TEACHER: ClassVar[str] = "teacher_service.teachers.omni:OMNITeacher"

    kind: Literal["omni"] = "omni"  # type: ignore[assignment]
    model: Literal["tfidf"] = Field(
        default="tfidf",
        description="The model of interestingness: cosine similarity of the tasks' TF-IDF "
        "vectors (of their descriptions, else their names).",
    )
    similarity: Float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Similarity at or above which a task is not interesting given another.",
    )
    boring_weight: Float = Field(
        default=0.001, ge=0.0, le=1.0, description="Factor of a boring task's weight (0.001)."
    )
