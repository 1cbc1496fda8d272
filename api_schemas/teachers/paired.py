"""Hyper-parameters of the ``paired`` teacher."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Float, Int, bounded_int


class PAIREDConfig(TeacherConfigBase):
    """PAIRED (Dennis et al. 2020): an adversary policy inside the teacher builds each level
    tile by tile; protagonist and antagonist students play it and the regret rewards it."""

    SPACES: ClassVar[tuple[str, ...]] = ("level",)
    ROLES: ClassVar[tuple[str, ...]] = ("protagonist", "antagonist")
    DESCRIPTION: ClassVar[str] = (
        "PAIRED: an adversary policy builds levels (goal, agent, then walls); rewarded by "
        "the regret max(antagonist max return - protagonist mean return, 0)."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.paired:PAIREDTeacher"
    kind: Literal["paired"] = "paired"
    max_walls: bounded_int(0, 10_000) | None = Field(
        default=None,
        description=(
            "Wall-placing steps of the adversary after goal and agent; default the level "
            "space's max_walls (the published comparison uses 25 and 60)."
        ),
    )
    episodes_per_role: Int = Field(
        default=2,
        ge=1,
        le=64,
        description="Episodes each role plays on a level (antagonist max, protagonist mean).",
    )
    hidden: Int = Field(default=64, ge=4, le=1024, description="Adversary MLP hidden units.")
    lr: Float = Field(default=1e-3, gt=0.0, le=1.0, description="Adversary Adam step size.")
    update_every: Int = Field(
        default=32, ge=1, le=10_000, description="Levels whose regrets make one adversary update."
    )
    entropy_coef: Float = Field(
        default=0.01, ge=0.0, le=10.0, description="Entropy bonus of the adversary policy."
    )
