"""Teacher configurations: a discriminated union on ``kind``, each with validated,
documented hyper-parameters (scikit-learn style: keyword defaults, checked once).

Each config class declares the task-space kinds it accepts (``SPACES``) and a one-line
description (``DESCRIPTION``) used by ``GET /v1/teachers``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_schemas.limits import Real
from api_schemas.wire import RESPONSE, Bool, Float, Int, bounded_int, kind_required


class _TeacherConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=kind_required)

    SPACES: ClassVar[tuple[str, ...]] = ()
    #: Student roles the teacher issues tasks for (PAIRED); empty for one student.
    ROLES: ClassVar[tuple[str, ...]] = ()
    DESCRIPTION: ClassVar[str] = ""


class RandomConfig(_TeacherConfigBase):
    """Domain randomisation: tasks drawn uniformly from the space (the usual baseline)."""

    SPACES: ClassVar[tuple[str, ...]] = ("box", "discrete", "level")
    DESCRIPTION: ClassVar[str] = (
        "Uniform sampling over the task space (domain randomisation; for level spaces, "
        "levels from the generator with randomised parameters)."
    )

    kind: Literal["random"] = "random"


class GMMConfigBase(_TeacherConfigBase):
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
        _check_reward_bounds(self.reward_low, self.reward_high)
        if self.fit_delay >= self.fit_rate:
            raise ValueError(
                f"fit_delay ({self.fit_delay}) must be < fit_rate ({self.fit_rate}) "
                "so that fits never pile up"
            )
        return self


def _check_reward_bounds(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"reward_low ({low}) must be < reward_high ({high})")


class ALPGMMConfig(GMMConfigBase):
    """ALP-GMM (Portelas et al., CoRL 2019). Defaults are the paper's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "ALP-GMM: Gaussian mixtures over (task, absolute learning progress), sampled by ALP."
    )

    kind: Literal["alp_gmm"] = "alp_gmm"


class CovarGMMConfig(GMMConfigBase):
    """Covar-GMM (Moulin-Frier et al. 2014, as benchmarked by Portelas et al. 2019).
    Defaults are the reference's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "Covar-GMM: Gaussian mixtures over (task, time, reward), sampled by each component's "
        "time-reward covariance."
    )

    kind: Literal["covar_gmm"] = "covar_gmm"
    absolute_lp: Bool = Field(
        default=False,
        description=(
            "Use |cov(time, reward)| as a component's learning progress instead of "
            "max(0, cov(time, reward)) (reference default: False)."
        ),
    )


class RIACConfig(_TeacherConfigBase):
    """RIAC (Baranes & Oudeyer 2009, as benchmarked by Portelas et al. 2019).
    Defaults are the reference's."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "RIAC: splits the space into regions of differing learning progress and samples "
        "regions by their ALP."
    )

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
        _check_reward_bounds(self.reward_low, self.reward_high)
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


class LPTreeConfig(_TeacherConfigBase):
    """LP-Tree, this project's teacher: an online regression tree over reward whose leaves
    are sampled by a lower confidence bound of their recent learning progress (see
    docs/algorithms.md#lp-tree)."""

    SPACES: ClassVar[tuple[str, ...]] = ("box",)
    DESCRIPTION: ClassVar[str] = (
        "LP-Tree: splits the space where rewards differ significantly; samples leaves by "
        "the lower confidence bound of their recent reward slope, and their neighbourhoods."
    )

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


ScoreFunction = Literal["positive_value_loss", "max_mc", "l1_value_loss"]

#: The report score each level-scoring function needs from the student.
SCORE_INPUTS: dict[str, str] = {
    "positive_value_loss": "positive_value_loss",
    "max_mc": "mean_value",
    "l1_value_loss": "l1_value_loss",
}


class ReplayConfigBase(_TeacherConfigBase):
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

    kind: Literal["plr"] = "plr"


class ACCELConfig(ReplayConfigBase):
    """ACCEL (Parker-Holder et al. 2022): PLR⊥ plus an editor that mutates replayed levels;
    new levels start as empty rooms."""

    DESCRIPTION: ClassVar[str] = (
        "ACCEL: Robust PLR whose new levels are empty rooms and whose replayed levels are "
        "mutated by small edits; children are scored and kept when their regret is high."
    )

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


class PAIREDConfig(_TeacherConfigBase):
    """PAIRED (Dennis et al. 2020): an adversary policy inside the teacher builds each level
    tile by tile; protagonist and antagonist students play it and the regret rewards it."""

    SPACES: ClassVar[tuple[str, ...]] = ("level",)
    ROLES: ClassVar[tuple[str, ...]] = ("protagonist", "antagonist")
    DESCRIPTION: ClassVar[str] = (
        "PAIRED: an adversary policy builds levels (goal, agent, then walls); rewarded by "
        "the regret max(antagonist max return - protagonist mean return, 0)."
    )

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


def teacher_roles(kind: str) -> tuple[str, ...]:
    """The student roles a teacher kind issues tasks for (empty: a single student)."""
    for cfg in TEACHER_CONFIGS:
        if cfg.model_fields["kind"].default == kind:
            return cfg.ROLES
    raise KeyError(f"unknown teacher kind {kind!r}")


TeacherConfig = Annotated[
    RandomConfig
    | ALPGMMConfig
    | CovarGMMConfig
    | RIACConfig
    | LPTreeConfig
    | PLRConfig
    | ACCELConfig
    | PAIREDConfig,
    Field(discriminator="kind"),
]

#: Every config class, in the order ``GET /v1/teachers`` lists them.
TEACHER_CONFIGS: tuple[type[_TeacherConfigBase], ...] = (
    RandomConfig,
    ALPGMMConfig,
    CovarGMMConfig,
    RIACConfig,
    LPTreeConfig,
    PLRConfig,
    ACCELConfig,
    PAIREDConfig,
)


class TeacherInfo(BaseModel):
    """One entry of ``GET /v1/teachers``."""

    model_config = RESPONSE

    kind: str
    spaces: list[str]
    description: str
    hyperparameters: dict[str, Any] = Field(description="JSON schema with defaults")


class TeacherList(BaseModel):
    """``GET /v1/teachers``."""

    model_config = RESPONSE

    data: list[TeacherInfo]
    count: int
