"""Hyper-parameters of the ``riac`` teacher."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from api_schemas.limits import Real
from api_schemas.teachers.base import TeacherConfigBase, check_reward_bounds
from api_schemas.wire import Bool, Float, Int


class RIACConfig(TeacherConfigBase):
    """RIAC (Baranes & Oudeyer 2009, as benchmarked by Portelas et al. 2019).
    Defaults are the reference's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "RIAC: splits the space into regions of differing learning progress and samples "
        "regions by their ALP."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.riac:RIACTeacher"
    kind: Literal["riac"] = "riac"
    max_region_size: Int = Field(
        default=200,
        ge=4,
        le=100_000,
        description="A region holding more episodes than this is split (reference: 200).",
    )
    split_attempts: Int = Field(
        default=50, ge=1, le=10_000, description="Random (dim, threshold) splits tried (50)."
    )
    min_region_points: Int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Episodes each child of a split must hold (reference: 10).",
    )
    min_dims_range_ratio: Float = Field(
        default=1 / 15,
        gt=0.0,
        lt=0.5,
        description="Smallest child width per dimension, as a fraction of its range (1/15).",
    )
    alp_window: Int = Field(
        default=200,
        ge=2,
        le=100_000,
        description=("Recent rewards of a region whose half means give its ALP (reference: 200)."),
    )
    p_uniform: Float = Field(
        default=0.2, ge=0.0, le=1.0, description="Probability of a uniform task (0.2)."
    )
    p_perturb: Float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description=(
            "Probability of the lowest-reward task of an ALP-chosen region, perturbed with "
            "N(0, perturb_sd) (0.1). The rest (0.7) is uniform inside an ALP-chosen region."
        ),
    )
    perturb_sd: Float = Field(
        default=0.1, gt=0.0, le=1.0, description="SD of that perturbation, unit cube (0.1)."
    )
    leaves_only: Bool = Field(
        default=False,
        description="Choose among leaf regions only, not every region of the tree (False).",
    )
    reward_low: Real = Field(default=0.0, description="Return mapped to 0 before use.")
    reward_high: Real = Field(default=1.0, description="Return mapped to 1 before use.")

    @model_validator(mode="after")
    def _check(self) -> RIACConfig:
        check_reward_bounds(self.reward_low, self.reward_high)
        if self.p_uniform + self.p_perturb > 1.0:
            raise ValueError(
                f"p_uniform + p_perturb ({self.p_uniform + self.p_perturb}) must be <= 1"
            )
        if 2 * self.min_region_points > self.max_region_size + 1:
            raise ValueError(
                f"two children of min_region_points ({self.min_region_points}) must fit in "
                f"a full region (max_region_size {self.max_region_size} + 1)"
            )
        return self
