"""Hyper-parameters of the level-replay teachers: ``plr`` and ``accel``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Bool, Float, Int

ScoreFunction = Literal["positive_value_loss", "max_mc", "l1_value_loss"]

#: The report score each level-scoring function needs from the student.
SCORE_INPUTS: dict[str, str] = {
    "positive_value_loss": "positive_value_loss",
    "max_mc": "mean_value",
    "l1_value_loss": "l1_value_loss",
}


class ReplayConfigBase(TeacherConfigBase):
    """Hyper-parameters of the level replay buffer shared by PLR and ACCEL (defaults are the
    MiniGrid maze settings of the papers; see docs/algorithms.md#robust-plr)."""

    SPACES: ClassVar[tuple[str, ...]] = ("level",)

    buffer_size: Int = Field(
        default=4000, ge=2, le=100_000, description="Levels the replay buffer holds (4000)."
    )
    score: ScoreFunction = Field(
        default="positive_value_loss",
        description=(
            "Level score from each report: mean positive GAE advantage "
            "(report score 'positive_value_loss'), MaxMC = highest return seen on the level "
            "minus the mean value ('mean_value'), or mean |GAE advantage| ('l1_value_loss')."
        ),
    )
    prioritization: Literal["rank", "power"] = Field(
        default="rank",
        description="Score weights h = 1/rank(S) (rank) or h = S (power); P_S ~ h^(1/beta).",
    )
    temperature: Float = Field(
        default=0.3, gt=0.0, le=100.0, description="beta of P_S ~ h^(1/beta) (0.3)."
    )
    staleness_coef: Float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="rho of P = (1 - rho) P_S + rho P_C, P_C ~ episodes since last sampled (0.3).",
    )
    replay_prob: Float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Probability of a replayed level once the buffer is at least half full.",
    )
    robust: Bool = Field(
        default=True,
        description=(
            "PLR-robust (PLR⊥): new levels are only scored (mode 'explore'), gradient updates "
            "happen on replayed levels only. False gives classic PLR (new levels are 'train')."
        ),
    )
    replay_share: Literal["episodes", "steps"] = Field(
        default="episodes",
        description=(
            "What replay_prob is the share of: 'episodes' (each proposal is a replay with "
            "probability replay_prob) or 'steps' (replay_prob is the expected share of env "
            "steps played on replayed vs new levels, as when the reference code decides once per "
            "rollout of fixed length: the per-proposal probability is corrected by the mean "
            "episode lengths reported so far; ACCEL's edit rounds then also wait until the "
            "round's replays took as many env steps as its children are expected to)."
        ),
    )

    @property
    def score_input(self) -> str:
        """The report score this config's score function reads."""
        return SCORE_INPUTS[self.score]


class PLRConfig(ReplayConfigBase):
    """Robust Prioritized Level Replay (Jiang et al. 2021); ``robust=False`` is classic PLR."""

    DESCRIPTION: ClassVar[str] = (
        "Robust PLR: replays the levels with the highest regret scores (rank prioritisation "
        "with staleness); new levels from the generator are scored without gradient updates."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.plr:PLRTeacher"
    kind: Literal["plr"] = "plr"


class ACCELConfig(ReplayConfigBase):
    """ACCEL (Parker-Holder et al. 2022): PLR⊥ plus an editor that mutates replayed levels;
    new levels start as empty rooms."""

    DESCRIPTION: ClassVar[str] = (
        "ACCEL: Robust PLR whose new levels are empty rooms and whose replayed levels are "
        "mutated by small edits; children are scored and kept when their regret is high."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.accel:ACCELTeacher"
    kind: Literal["accel"] = "accel"
    replay_prob: Float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="Probability of a replayed level once the buffer is at least half full (0.8).",
    )
    num_edits: Int = Field(
        default=5, ge=1, le=1000, description="Random tile edits per child level (5)."
    )
    edit_batch: Int = Field(
        default=32,
        ge=1,
        le=10_000,
        description=(
            "Replayed-level results gathered before an edit round; each round makes this "
            "many children (the reference edits after every replay batch of 32 envs)."
        ),
    )
    edit_parents: Int = Field(
        default=4,
        ge=1,
        le=10_000,
        description=(
            "Levels of an edit round that get edited: those with the lowest "
            "return - |L1 value loss|, each copied to fill the batch (4)."
        ),
    )

    @model_validator(mode="after")
    def _check_edit(self) -> ACCELConfig:
        if self.edit_parents > self.edit_batch:
            raise ValueError(
                f"edit_parents ({self.edit_parents}) must be <= edit_batch ({self.edit_batch})"
            )
        return self
