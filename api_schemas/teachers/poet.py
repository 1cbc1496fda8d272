"""Hyper-parameters of the ``poet`` teacher."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.wire import Float, Int


class POETConfig(TeacherConfigBase):
    """POET (Wang et al. 2019) with Enhanced POET's options (Wang et al. 2020): a population
    of environment-agent pairs that each train, swap agents by transfer and reproduce mutated
    environments (docs/algorithms.md#poet, docs/poet.md).

    The defaults are a scaled-down POET that makes progress in minutes on a few CPU cores
    (the reference: cap 25, transfer every 25 iterations, reproduction every 200, 8 children).
    A pair's *score* is its agent's mean over an evaluation: an episode counts its report's
    ``success`` (0 or 1) when sent, else its ``episode_return``.
    """

    SPACES: ClassVar[tuple[str, ...]] = ("level", "box")
    #: Students train a changing population of agents, one per ``agent_id`` (docs/poet.md).
    POPULATION: ClassVar[bool] = True
    DESCRIPTION: ClassVar[str] = (
        "POET / Enhanced POET: environment-agent pairs that train, transfer agents between "
        "environments and reproduce mutated environments under a minimal criterion and "
        "novelty (levels, or box spaces with a parametric generator)."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.poet:POETTeacher"
    kind: Literal["poet"] = "poet"
    max_active: Int = Field(
        default=6,
        ge=1,
        le=1000,
        description="Active pairs at most; the oldest goes to the archive beyond it (POET: 25).",
    )
    iteration_episodes: Int = Field(
        default=16,
        ge=1,
        le=100_000,
        description="Train episodes of each pair per iteration (POET: one ES step).",
    )
    eval_episodes: Int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Evaluate episodes of each check: a pair's self-evaluation after every "
        "iteration, a transfer, the minimal criterion (POET: 5).",
    )
    transfer_every: Int = Field(
        default=2, ge=1, le=100_000, description="Iterations between transfer rounds (POET: 25)."
    )
    transfer: Literal["direct", "enhanced"] = Field(
        default="enhanced",
        description="'direct' (POET): a target adopts the best other agent if its direct "
        "score is strictly higher than the incumbent's; 'enhanced' (Enhanced POET): agents "
        "whose direct score beats the incumbent's best recent self-evaluation are fine-tuned "
        "on the target first, and the best fine-tuned one is adopted if it beats it too.",
    )
    fine_tune_episodes: Int = Field(
        default=8,
        ge=1,
        le=100_000,
        description="Train episodes of a transfer candidate on its target ('enhanced').",
    )
    recent_evals: Int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Self-evaluations of the incumbent that a candidate must beat ('enhanced').",
    )
    reproduce_every: Int = Field(
        default=4, ge=1, le=100_000, description="Iterations between reproductions (POET: 200)."
    )
    repro_threshold: Float = Field(
        default=0.8,
        ge=-1e9,
        le=1e9,
        description="Score a pair needs to be a parent (POET: 200 on BipedalWalker).",
    )
    max_children: Int = Field(
        default=6, ge=1, le=1000, description="Mutation trials per reproduction (POET: 8)."
    )
    max_admitted: Int = Field(
        default=1, ge=1, le=1000, description="Children admitted per reproduction at most (1)."
    )
    mc_low: Float = Field(
        default=0.1,
        ge=-1e9,
        le=1e9,
        description="Minimal criterion, lower bound: an environment whose score is below is "
        "too hard.",
    )
    mc_high: Float = Field(
        default=0.9,
        ge=-1e9,
        le=1e9,
        description="Minimal criterion, upper bound: an environment whose score is above is "
        "too easy.",
    )
    novelty: Literal["encoding", "pata_ec"] = Field(
        default="encoding",
        description="Environment descriptor for novelty: its encoding (box parameters in the "
        "unit cube, or a level's wall and lava tiles) or PATA-EC (Enhanced POET: the centred "
        "ranks of every agent's clipped score on it).",
    )
    novelty_k: Int = Field(
        default=3, ge=1, le=1000, description="Nearest archived environments of novelty (POET: 5)."
    )
    mutation_scale: Float = Field(
        default=0.15,
        gt=0.0,
        le=1.0,
        description="Box spaces: a child's parameter moves by a normal step of this share of "
        "its range.",
    )
    num_edits: Int = Field(
        default=4, ge=1, le=1000, description="Level spaces: editor steps that make a child."
    )

    @model_validator(mode="after")
    def _check(self) -> POETConfig:
        if not self.mc_low < self.mc_high:
            raise ValueError(f"mc_low ({self.mc_low}) must be < mc_high ({self.mc_high})")
        return self
