"""Hyper-parameters of the ``lp_tree`` teacher."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Float, Int


class LPTreeConfig(TeacherConfigBase):
    """LP-Tree, this project's teacher: an online regression tree over reward whose leaves
    are sampled by a lower confidence bound of their recent learning progress (see
    docs/algorithms.md#lp-tree)."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "LP-Tree: splits the space where rewards differ significantly; samples leaves by "
        "the lower confidence bound of their recent reward slope, and their neighbourhoods."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.lp_tree:LPTreeTeacher"
    kind: Literal["lp_tree"] = "lp_tree"
    window: Int = Field(
        default=64,
        ge=8,
        le=10_000,
        description="Most recent episodes each leaf keeps for its split test.",
    )
    split_every: Int = Field(
        default=8,
        ge=1,
        le=10_000,
        description="Episodes a leaf gathers between two split tests.",
    )
    split_min: Int = Field(
        default=16, ge=4, le=10_000, description="Episodes a leaf needs before it is first tested."
    )
    min_leaf: Int = Field(
        default=4, ge=1, le=5_000, description="Episodes each side of a split must hold."
    )
    min_width: Float = Field(
        default=1 / 40,
        gt=0.0,
        lt=0.5,
        description="Smallest leaf width per dimension, as a fraction of its range.",
    )
    split_t: Float = Field(
        default=3.0,
        gt=0.0,
        le=1000.0,
        description=(
            "Two-sample t statistic (pooled variance) the reward difference across a split "
            "must reach: splits follow real differences, not noise or distractor dims."
        ),
    )
    lp_window: Int = Field(
        default=8,
        ge=3,
        le=10_000,
        description="Last rewards of a leaf through which its progress line is fitted.",
    )
    lcb: Float = Field(
        default=0.5,
        ge=0.0,
        le=100.0,
        description="Standard errors subtracted from |slope| (leaf LP = lower bound).",
    )
    p_uniform: Float = Field(
        default=0.1, ge=0.0, le=1.0, description="Probability of a uniform task."
    )
    p_expand: Float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Probability of a task in the neighbourhood of an LP-chosen leaf.",
    )
    expand: Float = Field(
        default=0.5,
        gt=0.0,
        le=10.0,
        description="That neighbourhood: the leaf grown by this fraction of its width per side.",
    )
    bootstrap: Int = Field(
        default=100, ge=0, le=10_000_000, description="Uniform episodes before any leaf choice."
    )
    max_leaves: Int = Field(
        default=2048,
        ge=1,
        le=1_000_000,
        description="Leaves the tree may grow to (bounds memory and snapshot size).",
    )

    @model_validator(mode="after")
    def _check(self) -> LPTreeConfig:
        if self.p_uniform + self.p_expand > 1.0:
            raise ValueError(
                f"p_uniform + p_expand ({self.p_uniform + self.p_expand}) must be <= 1"
            )
        if 2 * self.min_leaf > self.window:
            raise ValueError(f"2 * min_leaf ({self.min_leaf}) must be <= window ({self.window})")
        if self.split_min > self.window:
            raise ValueError(f"split_min ({self.split_min}) must be <= window ({self.window})")
        if self.lp_window > self.window:
            raise ValueError(f"lp_window ({self.lp_window}) must be <= window ({self.window})")
        return self
