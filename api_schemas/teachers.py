"""Teacher configurations: a discriminated union on ``kind``, each with validated,
documented hyper-parameters (scikit-learn style: keyword defaults, checked once).

Each config class declares the task-space kinds it accepts (``SPACES``) and a one-line
description (``DESCRIPTION``) used by ``GET /v1/teachers``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _TeacherConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    SPACES: ClassVar[tuple[str, ...]] = ()
    DESCRIPTION: ClassVar[str] = ""


class RandomConfig(_TeacherConfigBase):
    """Domain randomisation: tasks drawn uniformly from the space (the usual baseline)."""

    SPACES: ClassVar[tuple[str, ...]] = ("box", "discrete")
    DESCRIPTION: ClassVar[str] = "Uniform sampling over the task space (domain randomisation)."

    kind: Literal["random"] = "random"


class ALPGMMConfig(_TeacherConfigBase):
    """ALP-GMM (Portelas et al., CoRL 2019). Defaults are the paper's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "ALP-GMM: Gaussian mixtures over (task, absolute learning progress), sampled by ALP."
    )

    kind: Literal["alp_gmm"] = "alp_gmm"
    fit_rate: int = Field(
        default=250,
        ge=10,
        le=100_000,
        description="Episodes between GMM refits, each on the last fit_rate rows (paper: 250).",
    )
    bootstrap: int = Field(
        default=250,
        ge=0,
        le=10_000_000,
        description="Uniformly sampled episodes before the first fit (paper: 250).",
    )
    random_task_ratio: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Probability of a uniform task after bootstrap (paper: 0.2).",
    )
    min_k: int = Field(
        default=2, ge=1, le=50, description="Fewest GMM components tried (paper: 2)."
    )
    max_k: int = Field(
        default=10, ge=1, le=50, description="Most GMM components tried, inclusive (paper: 10)."
    )
    criterion: Literal["aic", "bic", "aicc"] = Field(
        default="aic", description="Model-selection criterion over k (paper: AIC)."
    )
    reward_low: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Return mapped to 0 before computing ALP (reference BipedalWalker: -150).",
    )
    reward_high: float = Field(
        default=1.0,
        allow_inf_nan=False,
        description="Return mapped to 1 before computing ALP (reference BipedalWalker: 350).",
    )
    fit_delay: int = Field(
        default=50,
        ge=0,
        description=(
            "Episodes between the start of a background GMM fit and the moment it takes "
            "effect. Fixed in episodes (not wall time) so that replays and live twins agree."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> ALPGMMConfig:
        if self.min_k > self.max_k:
            raise ValueError(f"min_k ({self.min_k}) must be <= max_k ({self.max_k})")
        if not self.reward_low < self.reward_high:
            raise ValueError(
                f"reward_low ({self.reward_low}) must be < reward_high ({self.reward_high})"
            )
        if self.fit_delay >= self.fit_rate:
            raise ValueError(
                f"fit_delay ({self.fit_delay}) must be < fit_rate ({self.fit_rate}) "
                "so that fits never pile up"
            )
        return self


TeacherConfig = Annotated[RandomConfig | ALPGMMConfig, Field(discriminator="kind")]

#: Every config class, in the order ``GET /v1/teachers`` lists them.
TEACHER_CONFIGS: tuple[type[_TeacherConfigBase], ...] = (RandomConfig, ALPGMMConfig)


class TeacherInfo(BaseModel):
    """One entry of ``GET /v1/teachers``."""

    kind: str
    spaces: list[str]
    description: str
    hyperparameters: dict[str, Any] = Field(description="JSON schema with defaults")


class TeacherList(BaseModel):
    """``GET /v1/teachers``."""

    data: list[TeacherInfo]
    count: int
