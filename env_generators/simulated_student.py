"""The simulated student of the ALP-GMM paper's teacher benchmark, and its challenge variants
(docs/algorithms.md#the-simulated-student).

An instant, seedable stand-in for an RL student: the unit square is cut into a grid of
cells, each with a competence ``c`` in 0..100. Practising a cell raises its competence
only once a neighbouring "previous" cell is known, so a teacher must find the frontier
of learnable tasks and follow it. Dimensions beyond the first two are ignored.

The variants (after TeachMyAgent's skill-specific tests) each stress one ability of a
teacher; :data:`VARIANTS` names them and gives the task-space dimension each expects:

========== ===================================================================================
base       the paper's toy: 10 x 10 cells on [0, 1]^2
unfeasible 20 x 20 cells; only the lower-left 10 x 10 block can ever be learned (75% of the
           space is unfeasible); the score counts the 100 learnable cells
noisy      the base toy with Gaussian noise (sd 0.1) added to every reward
forgetting the base toy, but a cell loses one competence point for every 500 episodes in
           which it is not practised (so neglected cells fall back below mastery)
rugged     the base toy with its cells shuffled by a seeded permutation: difficulty is no
           longer smooth in task space, so "learn next to what you know" no longer helps
dim5       the base toy in [0, 1]^5: three distractor dimensions that do not matter
dim10      the base toy in [0, 1]^10: eight distractor dimensions
fine       20 x 20 cells (400 to master; at 76 episodes each, 20k episodes cannot master
           more than ~66% of them, whatever the teacher)
========== ===================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from api_schemas.spaces import BoxSpace


class SimulatedStudent:
    """Base toy student.

    Args:
        cells: cells per dimension (paper: 10, i.e. 100 cells on [0, 1]^2).
        mastery: competence above which a cell counts as mastered (paper: 75).
        seed: seeds the student's own generator (the base toy is deterministic; the seed
            is used by variants that add randomness).
    """

    #: Competence a neighbour needs (>=) before practice here makes progress.
    UNLOCK = 75
    MAX_COMPETENCE = 100

    def __init__(self, cells: int = 10, mastery: int = 75, seed: int | None = 0) -> None:
        if cells < 1:
            raise ValueError(f"cells must be >= 1, got {cells}")
        self.cells = cells
        self.mastery = mastery
        self.rng = np.random.default_rng(seed)
        self.competence = np.zeros((cells, cells), dtype=np.int64)
        self.episodes = 0

    def cell_of(self, x: Sequence[float]) -> tuple[int, int]:
        """Cell index of a point of [0, 1]^d (only the first two coordinates matter)."""
        if len(x) < 2:
            raise ValueError(f"the simulated student needs >= 2 dimensions, got {len(x)}")
        i = min(max(int(float(x[0]) * self.cells), 0), self.cells - 1)
        j = min(max(int(float(x[1]) * self.cells), 0), self.cells - 1)
        return i, j

    def learnable(self, i: int, j: int) -> bool:
        """Whether cell ``(i, j)`` can ever be learned (all cells, in the base toy)."""
        return True

    def _unlocked(self, i: int, j: int) -> bool:
        if not self.learnable(i, j):
            return False
        if i == 0 and j == 0:
            return True
        for di, dj in ((1, 0), (0, 1), (1, 1)):  # previous neighbours (i-1 or i in each dim)
            a, b = i - di, j - dj
            if a >= 0 and b >= 0 and self._competence_of(a, b) >= self.UNLOCK:
                return True
        return False

    def _competence_of(self, i: int, j: int) -> int:
        return int(self.competence[i, j])

    def _practise(self, i: int, j: int) -> float:
        """One episode on cell ``(i, j)``: progress if unlocked; the noise-free reward."""
        if self._unlocked(i, j):
            self.competence[i, j] = min(self.competence[i, j] + 1, self.MAX_COMPETENCE)
        return float(self.competence[i, j]) / self.MAX_COMPETENCE

    def episode(self, x: Sequence[float]) -> float:
        """Practise task ``x`` (a point of [0, 1]^d) once; return the reward ``c / 100``."""
        reward = self._practise(*self.cell_of(x))
        self.episodes += 1
        return reward

    def _mastered(self) -> np.ndarray:
        return self.competence > self.mastery

    def score(self) -> float:
        """Percentage of mastered cells (competence > mastery) among the learnable ones."""
        return 100.0 * float(np.mean(self._mastered()))


class UnfeasibleStudent(SimulatedStudent):
    """Mostly unfeasible: only the lower-left ``feasible x feasible`` block of cells can be
    learned; everywhere else the reward stays 0 forever.

    Args:
        cells: cells per dimension of the whole grid.
        feasible: side of the learnable block, in cells.
    """

    def __init__(
        self, cells: int = 20, feasible: int = 10, mastery: int = 75, seed: int | None = 0
    ) -> None:
        if not 1 <= feasible <= cells:
            raise ValueError(f"feasible must be in 1..cells ({cells}), got {feasible}")
        super().__init__(cells=cells, mastery=mastery, seed=seed)
        self.feasible = feasible

    def learnable(self, i: int, j: int) -> bool:
        """Only cells of the lower-left block."""
        return i < self.feasible and j < self.feasible

    def score(self) -> float:
        """Percentage of the learnable block that is mastered."""
        f = self.feasible
        return 100.0 * float(np.mean(self._mastered()[:f, :f]))


class NoisyStudent(SimulatedStudent):
    """Rewards carry Gaussian noise (competence dynamics unchanged).

    Args:
        noise: standard deviation of the noise added to each reward (not clipped).
    """

    def __init__(
        self, cells: int = 10, noise: float = 0.1, mastery: int = 75, seed: int | None = 0
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        super().__init__(cells=cells, mastery=mastery, seed=seed)
        self.noise = noise

    def episode(self, x: Sequence[float]) -> float:
        """As the base toy, plus ``N(0, noise)``."""
        return super().episode(x) + float(self.rng.normal(0.0, self.noise))


class ForgettingStudent(SimulatedStudent):
    """A cell loses one competence point for every ``decay_period`` episodes it goes
    unpractised (counted from its last practice), down to 0.

    Decay is applied lazily: stored competence is the value at the last practice, and
    the effective value subtracts the whole periods elapsed since.

    Args:
        decay_period: unpractised episodes per lost competence point.
    """

    def __init__(
        self, cells: int = 10, decay_period: int = 500, mastery: int = 75, seed: int | None = 0
    ) -> None:
        if decay_period < 1:
            raise ValueError(f"decay_period must be >= 1, got {decay_period}")
        super().__init__(cells=cells, mastery=mastery, seed=seed)
        self.decay_period = decay_period
        self.last_practice = np.zeros((cells, cells), dtype=np.int64)

    def _effective(self) -> np.ndarray:
        lost = (self.episodes - self.last_practice) // self.decay_period
        return np.maximum(self.competence - lost, 0)

    def _competence_of(self, i: int, j: int) -> int:
        lost = (self.episodes - int(self.last_practice[i, j])) // self.decay_period
        return max(int(self.competence[i, j]) - lost, 0)

    def _practise(self, i: int, j: int) -> float:
        # Bring the stored value up to date before practice resets the decay clock.
        self.competence[i, j] = self._competence_of(i, j)
        self.last_practice[i, j] = self.episodes
        return super()._practise(i, j)

    def _mastered(self) -> np.ndarray:
        return self._effective() > self.mastery


class RuggedStudent(SimulatedStudent):
    """The cells are shuffled by a seeded permutation: a task's difficulty no longer
    varies smoothly with its parameters (the unlock graph is the base toy's, but its cells
    are scattered across the square)."""

    def __init__(self, cells: int = 10, mastery: int = 75, seed: int | None = 0) -> None:
        super().__init__(cells=cells, mastery=mastery, seed=seed)
        perm = self.rng.permutation(cells * cells)
        self._where = perm.reshape(cells, cells)  # square position -> underlying cell

    def cell_of(self, x: Sequence[float]) -> tuple[int, int]:
        """The underlying cell of the square position that ``x`` falls in."""
        i, j = super().cell_of(x)
        k = int(self._where[i, j])
        return k // self.cells, k % self.cells


@dataclass(frozen=True, slots=True)
class Variant:
    """A named benchmark setting: the student to build and the task-space dimension."""

    name: str
    dims: int
    make: Callable[[int], SimulatedStudent]
    description: str


#: Every variant of the teacher benchmark, by name.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("base", 2, lambda s: SimulatedStudent(seed=s), "the paper's 10x10 toy"),
        Variant(
            "unfeasible",
            2,
            lambda s: UnfeasibleStudent(seed=s),
            "20x20 cells, only the lower-left 10x10 block learnable (75% unfeasible)",
        ),
        Variant("noisy", 2, lambda s: NoisyStudent(seed=s), "rewards + N(0, 0.1) noise"),
        Variant(
            "forgetting",
            2,
            lambda s: ForgettingStudent(seed=s),
            "a cell loses 1 competence point per 500 episodes without practice",
        ),
        Variant("rugged", 2, lambda s: RuggedStudent(seed=s), "cells shuffled (seeded)"),
        Variant("dim5", 5, lambda s: SimulatedStudent(seed=s), "3 distractor dimensions"),
        Variant("dim10", 10, lambda s: SimulatedStudent(seed=s), "8 distractor dimensions"),
        Variant(
            "fine",
            2,
            lambda s: SimulatedStudent(cells=20, seed=s),
            "20x20 cells (at most ~66% masterable in 20k episodes)",
        ),
    )
}


def make_student(variant: str, seed: int) -> SimulatedStudent:
    """Build the student of a named variant (raises ``KeyError`` with the known names)."""
    try:
        return VARIANTS[variant].make(seed)
    except KeyError:
        raise KeyError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}") from None


def toy_space(dims: int = 2) -> BoxSpace:
    """The simulated students' task space: the unit cube ``[0, 1]^dims``, dims ``x0, x1, ...``
    (served by ``autocurriculum demo-toy`` and used by the teacher-quality benchmark)."""
    return BoxSpace(dims=[{"name": f"x{i}", "low": 0.0, "high": 1.0} for i in range(dims)])


#: The base simulated student's task space, the unit square.
TOY_SPACE = toy_space(2)
