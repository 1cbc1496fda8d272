"""A discrete simulated student: a tech tree of skill families, for the discrete teachers
(``lp``, ``sec``, later ``omni``), after the setting of OMNI's Crafter experiments.

Tasks are named and described in text; they come in three sorts:

- **core** tasks, one per skill family, in a chain: the family ``k`` core can be learned only
  once the family ``k - 1`` core is mastered (family 0 is learnable from the start);
- **variants**: near-duplicates of a family's core ("... again, variant 2"): learnable when
  their core is, each needing its own practice, but they unlock nothing (the "boring" tasks a
  model of interestingness should set aside);
- **impossible** tasks, which are never solved.

Each task has a skill ``s`` in [0, 1]; an episode succeeds with probability ``s``. A training
episode on a learnable task raises its skill by ``rate * (1 - s) + floor`` (capped at 1), and
that of the next family's learnable tasks by ``transfer`` times as much (what is learned on
one skill carries a little to the next, which is how a learning-progress teacher sees the next
skill start to move); an evaluate episode changes nothing. The score is the number of
families whose core is mastered (skill >= ``mastery``). Seeded: the same seed and the same
calls give the same outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api_schemas.spaces import DiscreteSpace, DiscreteTaskSpec

#: What each family's core task asks, in chain order (repeated with a suffix beyond it).
SKILLS = (
    "collect wood",
    "place a crafting table",
    "make a wood pickaxe",
    "collect stone",
    "make a stone pickaxe",
    "collect iron",
    "make an iron pickaxe",
    "collect diamond",
)
#: Tasks no student can ever solve.
IMPOSSIBLE = (
    "fly to the moon",
    "collect a rainbow",
    "talk to the sun",
    "walk through solid rock",
    "count to infinity",
    "build a perpetual motion machine",
)


@dataclass(frozen=True, slots=True)
class TechTask:
    """One task of the tree: its name, description, family (None if impossible) and sort."""

    name: str
    description: str
    family: int | None
    sort: str  # "core", "variant" or "impossible"


class TechTreeStudent:
    """The tech-tree student (see the module docstring).

    Args:
        families: skill families in the chain.
        variants: near-duplicate variants per family.
        impossible: impossible tasks.
        rate: skill gained per training episode, as a share of what is left to learn.
        floor: skill gained per training episode on top of that (so learning starts at 0).
        transfer: share of that gain the next family's learnable tasks get too.
        mastery: skill at which a task counts as mastered.
        seed: seed of the episode outcomes.
    """

    def __init__(
        self,
        families: int = 6,
        variants: int = 3,
        impossible: int = 4,
        *,
        rate: float = 0.02,
        floor: float = 0.005,
        transfer: float = 0.25,
        mastery: float = 0.9,
        seed: int = 0,
    ) -> None:
        if families < 1 or variants < 0 or impossible < 0:
            raise ValueError("families must be >= 1, variants and impossible >= 0")
        if not (0.0 < rate <= 1.0 and 0.0 <= floor <= 1.0 and 0.0 < mastery <= 1.0):
            raise ValueError("rate in (0, 1], floor in [0, 1], mastery in (0, 1]")
        if not 0.0 <= transfer <= 1.0:
            raise ValueError("transfer in [0, 1]")
        self.rate, self.floor, self.transfer, self.mastery = rate, floor, transfer, mastery
        self.tasks: list[TechTask] = []
        for f in range(families):
            skill = SKILLS[f % len(SKILLS)] + (
                f" ({f // len(SKILLS) + 1})" if f >= len(SKILLS) else ""
            )
            self.tasks.append(TechTask(f"skill{f}", f"{skill}", f, "core"))
            for v in range(variants):
                self.tasks.append(
                    TechTask(
                        f"skill{f}-variant{v}", f"{skill} again, variant {v + 1}", f, "variant"
                    )
                )
        for j in range(impossible):
            text = IMPOSSIBLE[j % len(IMPOSSIBLE)]
            self.tasks.append(TechTask(f"impossible{j}", text, None, "impossible"))
        self.index = {t.name: i for i, t in enumerate(self.tasks)}
        self.core = [self.index[f"skill{f}"] for f in range(families)]
        self.skill = np.zeros(len(self.tasks))
        self.rng = np.random.default_rng(seed)
        self.episodes = 0

    def space(self) -> DiscreteSpace:
        """The discrete task space of the tree: names, descriptions, family as category."""
        return DiscreteSpace(
            tasks=[
                DiscreteTaskSpec(
                    name=t.name,
                    description=t.description,
                    category=f"family{t.family}" if t.family is not None else "impossible",
                )
                for t in self.tasks
            ]
        )

    def learnable(self, name: str) -> bool:
        """Whether practice on this task raises its skill now."""
        task = self.tasks[self.index[name]]
        if task.family is None:
            return False
        return task.family == 0 or self.skill[self.core[task.family - 1]] >= self.mastery

    def episode(self, name: str, train: bool = True) -> bool:
        """Play one episode of ``name``: whether it succeeded; a training episode on a
        learnable task also raises the task's skill (after the outcome is drawn)."""
        i = self.index[name]
        success = bool(self.rng.random() < self.skill[i])
        if train and self.learnable(name):
            self._practise(i, 1.0)
            family = self.tasks[i].family
            for j, task in enumerate(self.tasks):
                if task.family == family + 1 and self.learnable(task.name):
                    self._practise(j, self.transfer)
        self.episodes += 1
        return success

    def _practise(self, i: int, share: float) -> None:
        s = self.skill[i]
        self.skill[i] = min(1.0, s + share * (self.rate * (1.0 - s) + self.floor))

    def score(self) -> int:
        """Families mastered (their core task's skill at least ``mastery``)."""
        return int(sum(self.skill[i] >= self.mastery for i in self.core))

    def interesting(self, name: str) -> bool:
        """Ground truth for a model of interestingness: core tasks are worth learning;
        variants add nothing new and impossible tasks cannot be learned."""
        return self.tasks[self.index[name]].sort == "core"
