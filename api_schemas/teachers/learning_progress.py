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
        "descending success, a task the model judges not interesting given one judged "
        "interesting is boring (its weight x boring_weight)."
    )
    TEACHER: ClassVar[str] = "teacher_service.teachers.omni:OMNITeacher"

    #: The similarity threshold of each similarity model when the config does not set one.
    DEFAULT_SIMILARITY: ClassVar[dict[str, float]] = {"embedding": 0.8, "tfidf": 0.5}

    kind: Literal["omni"] = "omni"  # type: ignore[assignment]
    model: Literal["embedding", "tfidf", "llm"] = Field(
        default="embedding",
        description=(
            "The model of interestingness. 'embedding': cosine similarity of the tasks' "
            "descriptions embedded by all-MiniLM-L6-v2, run locally (the server needs the "
            "'interestingness' extra); 'tfidf': cosine similarity of TF-IDF vectors (no extra "
            "needed); 'llm': a chat model at the server's OpenAI-compatible endpoint judges "
            "each task against its most similar tasks. Tasks are judged once, when they join; "
            "'embedding' and 'llm' judge in the background and log their answers."
        ),
    )
    similarity: bounded_float(0.0, 1.0, open_low=True) | None = Field(
        default=None,
        description=(
            "Cosine similarity at or above which a task is not interesting given another "
            "(similarity models). Default: 0.8 for 'embedding' (paraphrases score above it, "
            "related but different tasks 0.5 to 0.75), 0.5 for 'tfidf'."
        ),
    )
    boring_weight: Float = Field(
        default=0.001, ge=0.0, le=1.0, description="Factor of a boring task's weight (0.001)."
    )
    neighbours: Int = Field(
        default=10,
        ge=1,
        le=50,
        description="'llm': how many of the most similar tasks the model is shown beside the "
        "task it judges (OMNI-EPIC: 10).",
    )

    def threshold(self) -> float:
        """The similarity threshold in use: the configured one, else the model's default."""
        if self.similarity is not None:
            return self.similarity
        return self.DEFAULT_SIMILARITY.get(self.model, 0.5)
