"""The level replay buffer of Prioritized Level Replay (docs/algorithms.md#robust-plr), shared
by the ``plr`` and ``accel`` teachers.

A fixed number of slots, each holding one level (its ASCII encoding), its latest score,
the highest return ever seen on it (MaxMC's R_max), when it was last sampled (staleness)
and its lineage (parent level id and number of edits, for ACCEL). Slots ``0 .. size-1``
are the filled ones: a level only ever leaves by being replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np


class Outcome(StrEnum):
    """What :meth:`LevelBuffer.consider` did with a scored level."""

    UPDATED = "updated"  # already in the buffer (deduplicated): its score was refreshed
    INSERTED = "inserted"  # a free slot took it
    REPLACED = "replaced"  # it replaced the lowest-scoring level
    REJECTED = "rejected"  # full, and its score is below the lowest one


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a level comes from: its id, its parent's id (None for a generated level), the
    edits made since the generated ancestor, and the number of ancestors."""

    level_id: int
    parent: int | None = None
    edits: int = 0
    depth: int = 0


class LevelBuffer:
    """PLR's buffer: rank or power prioritisation of scores mixed with staleness.

    Args:
        capacity: number of slots.
        prioritization: ``rank`` (h = 1 / rank of the score, rank 1 = highest) or ``power``
            (h = max(score, 0)).
        temperature: beta of P_S ~ h^(1/beta).
        staleness_coef: rho of P = (1 - rho) P_S + rho P_C.
    """

    def __init__(
        self,
        capacity: int,
        prioritization: Literal["rank", "power"] = "rank",
        temperature: float = 0.3,
        staleness_coef: float = 0.3,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= staleness_coef <= 1.0:
            raise ValueError(f"staleness_coef must be in [0, 1], got {staleness_coef}")
        self.capacity = capacity
        self.prioritization = prioritization
        self.temperature = temperature
        self.staleness_coef = staleness_coef
        self.levels: list[str] = []
        self.scores = np.zeros(capacity)
        self.max_returns = np.zeros(capacity)
        self.last_sampled = np.zeros(capacity, dtype=np.int64)
        self.replays = np.zeros(capacity, dtype=np.int64)
        self.level_ids = np.zeros(capacity, dtype=np.int64)
        self.parents = np.full(capacity, -1, dtype=np.int64)
        self.edits = np.zeros(capacity, dtype=np.int64)
        self.depths = np.zeros(capacity, dtype=np.int64)
        self._slot: dict[str, int] = {}

    # ------------------------------------------------------------------ queries
    @property
    def size(self) -> int:
        """Filled slots."""
        return len(self.levels)

    def half_full(self) -> bool:
        """At least half the slots filled: from then on PLR replays with probability p."""
        return 2 * self.size >= self.capacity

    def slot_of(self, level: str) -> int | None:
        """The slot holding ``level``, if any (levels are deduplicated by their encoding)."""
        return self._slot.get(level)

    def lineage(self, slot: int) -> Lineage:
        """The lineage of the level in ``slot``."""
        parent = int(self.parents[slot])
        return Lineage(
            level_id=int(self.level_ids[slot]),
            parent=None if parent < 0 else parent,
            edits=int(self.edits[slot]),
            depth=int(self.depths[slot]),
        )

    def score_probabilities(self) -> np.ndarray:
        """P_S over the filled slots: h^(1/beta) normalised (uniform when all h are 0)."""
        n = self.size
        s = self.scores[:n]
        if self.prioritization == "rank":
            # rank 1 = highest score; ties keep slot order (stable sort), as the reference
            order = np.argsort(-s, kind="stable")
            ranks = np.empty(n)
            ranks[order] = np.arange(1, n + 1)
            h = 1.0 / ranks
        else:
            h = np.maximum(s, 0.0)
        positive = h > 0
        if not positive.any():
            return np.full(n, 1.0 / n)
        # h^(1/beta) in log space: large exponents (small beta) neither overflow nor vanish
        logw = np.full(n, -np.inf)
        logw[positive] = np.log(h[positive]) / self.temperature
        w = np.exp(logw - logw[positive].max())
        return w / w.sum()

    def staleness_probabilities(self, counter: int) -> np.ndarray:
        """P_C over the filled slots: (c - C_i) normalised (uniform when all are 0)."""
        st = (counter - self.last_sampled[: self.size]).astype(np.float64)
        total = st.sum()
        if total <= 0:
            return np.full(self.size, 1.0 / self.size)
        return st / total

    def probabilities(self, counter: int) -> np.ndarray:
        """Replay distribution P = (1 - rho) P_S + rho P_C at episode counter ``counter``."""
        if self.size == 0:
            raise ValueError("the buffer is empty")
        p = self.score_probabilities()
        rho = self.staleness_coef
        if rho > 0:
            p = (1.0 - rho) * p + rho * self.staleness_probabilities(counter)
        return p

    # ----------------------------------------------------------------- changes
    def sample(self, rng: np.random.Generator, counter: int) -> int:
        """Draw a slot to replay and mark it sampled at ``counter``."""
        p = self.probabilities(counter)
        slot = int(rng.choice(self.size, p=p))
        self.last_sampled[slot] = counter
        self.replays[slot] += 1
        return slot

    def update(self, slot: int, score: float, episode_return: float) -> None:
        """A replayed level's new score (the latest replaces the old, as the reference's
        default) and its highest return."""
        self.scores[slot] = score
        self.max_returns[slot] = max(self.max_returns[slot], episode_return)

    def consider(
        self,
        level: str,
        score: float,
        episode_return: float,
        counter: int,
        lineage: Lineage,
    ) -> tuple[Outcome, int | None]:
        """Offer a scored level: refreshed if already present (deduplication), inserted in a
        free slot, or replacing the lowest-scoring level only if ``score >=`` its score.
        Returns the outcome and the slot (None when rejected)."""
        slot = self._slot.get(level)
        if slot is not None:
            self.update(slot, score, episode_return)
            return Outcome.UPDATED, slot
        if self.size < self.capacity:
            slot = self.size
            self.levels.append(level)
            outcome = Outcome.INSERTED
        else:
            slot = int(np.argmin(self.scores))
            if score < self.scores[slot]:
                return Outcome.REJECTED, None
            del self._slot[self.levels[slot]]
            self.levels[slot] = level
            outcome = Outcome.REPLACED
        self._slot[level] = slot
        self.scores[slot] = score
        self.max_returns[slot] = episode_return
        self.last_sampled[slot] = counter
        self.replays[slot] = 0
        self.level_ids[slot] = lineage.level_id
        self.parents[slot] = -1 if lineage.parent is None else lineage.parent
        self.edits[slot] = lineage.edits
        self.depths[slot] = lineage.depth
        return outcome, slot

    # ------------------------------------------------------------- snapshots
    _ARRAYS = (
        "scores",
        "max_returns",
        "last_sampled",
        "replays",
        "level_ids",
        "parents",
        "edits",
        "depths",
    )

    def state_dict(self) -> dict[str, Any]:
        """The filled slots as plain lists (floats round-trip exactly through JSON)."""
        n = self.size
        state: dict[str, Any] = {"levels": list(self.levels)}
        for name in self._ARRAYS:
            state[name] = getattr(self, name)[:n].tolist()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        levels = list(state["levels"])
        n = len(levels)
        if n > self.capacity:
            raise ValueError(f"snapshot holds {n} levels, the buffer only {self.capacity}")
        self.levels = levels
        self._slot = {lv: i for i, lv in enumerate(levels)}
        for name in self._ARRAYS:
            arr = getattr(self, name)
            arr[:] = -1 if name == "parents" else 0
            arr[:n] = np.asarray(state[name], dtype=arr.dtype)
