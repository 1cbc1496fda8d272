"""Hyper-parameters of the ``sec`` teacher (Self-Evolving Curriculum)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Bool, Float, Int


class SECConfig(TeacherConfigBase):
    """Self-Evolving Curriculum (Chen et al. 2025): a bandit over task arms rewarded by the
    mean absolute advantage of their episodes; defaults are the paper's Countdown runs."""

    SPACES: ClassVar[tuple[str, ...]] = ("discrete",)
    DESCRIPTION: ClassVar[str] = (
        "SEC: arms are tasks or their categories; each arm's value is a TD(0) average of "
        "the mean |advantage| of its episodes; tasks are drawn from softmax(Q / tau)."
    )
    TEACHER: ClassVar[str] = "teacher_service.teachers.sec:SECTeacher"

    kind: Literal["sec"] = "sec"
    arms: Literal["task", "category"] = Field(
        default="task",
        description="What an arm is: each task, or each task category (tasks without one "
        "form their own arm).",
    )
    alpha: Float = Field(
        default=0.5, gt=0.0, le=1.0, description="TD(0) step: Q <- (1 - a) Q + a r (paper: 0.5)."
    )
    tau: Float = Field(
        default=1.0, gt=0.0, le=1000.0, description="Softmax temperature over Q (paper: 1.0)."
    )
    batch_episodes: Int = Field(
        default=64,
        ge=1,
        le=1_000_000,
        description="Reports that make one update (the paper updates once per training batch).",
    )
    decay_unsampled: Bool = Field(
        default=False,
        description=(
            "Also update arms absent from a batch, with reward 0 (the published code); "
            "default: only the sampled arms (the paper's algorithm)."
        ),
    )
