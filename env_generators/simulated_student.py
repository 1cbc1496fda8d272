"""The simulated student of the ALP-GMM paper's teacher benchmark (ALGORITHMS.md §7).

An instant, seedable stand-in for an RL student: the unit square is cut into a grid of
cells, each with a competence ``c`` in 0..100. Practising a cell raises its competence
only once a neighbouring "previous" cell is known, so a teacher must find the frontier
of learnable tasks and follow it. Dimensions beyond the first two are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SimulatedStudent:
    """Base toy student.

    Args:
        cells: cells per dimension (paper: 10, i.e. 100 cells on [0, 1]^2).
        mastery: competence above which a cell counts as mastered (paper: 75).
        seed: seeds the student's own generator (the base toy is deterministic; the seed
            is kept for variants that add noise).
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

    def _unlocked(self, i: int, j: int) -> bool:
        if i == 0 and j == 0:
            return True
        c = self.competence
        for di, dj in ((1, 0), (0, 1), (1, 1)):  # previous neighbours (i-1 or i in each dim)
            a, b = i - di, j - dj
            if a >= 0 and b >= 0 and c[a, b] >= self.UNLOCK:
                return True
        return False

    def episode(self, x: Sequence[float]) -> float:
        """Practise task ``x`` (a point of [0, 1]^d) once; return the reward ``c / 100``."""
        i, j = self.cell_of(x)
        if self._unlocked(i, j):
            self.competence[i, j] = min(self.competence[i, j] + 1, self.MAX_COMPETENCE)
        self.episodes += 1
        return float(self.competence[i, j]) / self.MAX_COMPETENCE

    def score(self) -> float:
        """Percentage of mastered cells (competence > mastery)."""
        return 100.0 * float(np.mean(self.competence > self.mastery))
