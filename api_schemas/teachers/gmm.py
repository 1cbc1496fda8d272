"""Hyper-parameters of the Gaussian-mixture teachers: ``alp_gmm`` and ``covar_gmm``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from api_schemas.limits import Real
from api_schemas.teachers.base import TeacherConfigBase, check_reward_bounds
from api_schemas.wire import Bool, Float, Int


class GMMConfigBase(TeacherConfigBase):
    """Hyper-parameters shared by the Gaussian-mixture teachers (ALP-GMM, Covar-GMM).
    Defaults are the papers'."""

    fit_rate: Int = Field(
        default=250,
        ge=10,
        le=100_000,
        description="Episodes between GMM refits, each on the last fit_rate rows (paper: 250).",
    )
    bootstrap: Int = Field(
        default=250,
        ge=0,
        le=10_000_000,
        description="Uniformly sampled episodes before the first fit (paper: 250).",
    )
    random_task_ratio: Float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Probability of a uniform task after bootstrap (paper: 0.2).",
    )
    min_k: Int = Field(
        default=2, ge=1, le=50, description="Fewest GMM components tried (paper: 2)."
    )
    max_k: Int = Field(
        default=10, ge=1, le=50, description="Most GMM components tried, inclusive (paper: 10)."
    )
    criterion: Literal["aic", "bic", "aicc"] = Field(
        default="aic", description="Model-selection criterion over k (paper: AIC)."
    )
    reward_low: Real = Field(
        default=0.0,
        description="Return mapped to 0 before use (reference BipedalWalker: -150).",
    )
    reward_high: Real = Field(
        default=1.0,
        description="Return mapped to 1 before use (reference BipedalWalker: 350).",
    )
    fit_delay: Int = Field(
        default=50,
        ge=0,
        le=100_000,
        description=(
            "Episodes between the start of a background GMM fit and the moment it takes "
            "effect. Fixed in episodes (not wall time) so that replays and live twins agree."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> GMMConfigBase:
        if self.min_k > self.max_k:
            raise ValueError(f"min_k ({self.min_k}) must be <= max_k ({self.max_k})")
        check_reward_bounds(self.reward_low, self.reward_high)
        if self.fit_delay >= self.fit_rate:
            raise ValueError(
                f"fit_delay ({self.fit_delay}) must be < fit_rate ({self.fit_rate}) "
                "so that fits never pile up"
            )
        return self


class ALPGMMConfig(GMMConfigBase):
    """ALP-GMM (Portelas et al., CoRL 2019). Defaults are the paper's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "ALP-GMM: Gaussian mixtures over (task, absolute learning progress), sampled by ALP."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.alp_gmm:ALPGMMTeacher"
    kind: Literal["alp_gmm"] = "alp_gmm"


class CovarGMMConfig(GMMConfigBase):
    """Covar-GMM (Moulin-Frier et al. 2014, as benchmarked by Portelas et al. 2019).
    Defaults are the reference's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "Covar-GMM: Gaussian mixtures over (task, time, reward), sampled by each component's "
        "time-reward covariance."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.covar_gmm:CovarGMMTeacher"
    kind: Literal["covar_gmm"] = "covar_gmm"
    absolute_lp: Bool = Field(
        default=False,
        description=(
            "Use |cov(time, reward)| as a component's learning progress instead of "
            "max(0, cov(time, reward)) (reference default: False)."
        ),
    )
