"""Boxes of the unit cube that remember their last episodes: the regions of RIAC and the
leaves of LP-Tree, with their snapshot form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np


class EpisodeBox:
    """An axis-aligned box ``[lo, hi)`` of the unit cube with its last ``capacity`` episodes
    (task in the unit cube, reward), oldest first; when full the oldest is dropped."""

    __slots__ = ("hi", "lo", "n", "rewards", "tasks")

    def __init__(self, lo: np.ndarray, hi: np.ndarray, capacity: int) -> None:
        self.lo = lo
        self.hi = hi
        self.tasks = np.empty((capacity, lo.shape[0]), dtype=np.float64)
        self.rewards = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def add(self, task: np.ndarray, reward: float) -> None:
        """Append one episode."""
        if self.n == self.rewards.shape[0]:
            self.tasks[:-1] = self.tasks[1:]
            self.rewards[:-1] = self.rewards[1:]
            self.n -= 1
        self.tasks[self.n] = task
        self.rewards[self.n] = reward
        self.n += 1

    def fill(self, tasks: np.ndarray, rewards: np.ndarray) -> None:
        """Replace the episodes (at most ``capacity``, oldest first)."""
        k = rewards.shape[0]
        if k > self.rewards.shape[0]:
            raise ValueError(f"{k} episodes exceed the box's capacity {self.rewards.shape[0]}")
        self.tasks[:k] = tasks
        self.rewards[:k] = rewards
        self.n = k

    def cut(self, dim: int, at: float, capacity: int) -> tuple[EpisodeBox, EpisodeBox, np.ndarray]:
        """The two halves of the box at ``x[dim] = at`` (left: ``x[dim] < at``), each holding
        its share of the episodes in their order; also the mask of the left share."""
        tasks, rewards = self.tasks[: self.n], self.rewards[: self.n]
        hi_left = self.hi.copy()
        hi_left[dim] = at
        lo_right = self.lo.copy()
        lo_right[dim] = at
        left = type(self)(self.lo.copy(), hi_left, capacity)
        right = type(self)(lo_right, self.hi.copy(), capacity)
        mask = tasks[:, dim] < at
        left.fill(tasks[mask], rewards[mask])
        right.fill(tasks[~mask], rewards[~mask])
        return left, right, mask


B = TypeVar("B", bound=EpisodeBox)


def export_boxes(boxes: Sequence[EpisodeBox]) -> dict[str, np.ndarray]:
    """Bounds and episodes of ``boxes`` as flat arrays (episodes concatenated)."""
    return {
        "lo": np.array([b.lo for b in boxes]),
        "hi": np.array([b.hi for b in boxes]),
        "counts": np.array([b.n for b in boxes], dtype=np.int64),
        "tasks": np.concatenate([b.tasks[: b.n] for b in boxes]),
        "rewards": np.concatenate([b.rewards[: b.n] for b in boxes]),
    }


def load_boxes(cls: type[B], state: Mapping[str, Any], ndim: int, capacity: int) -> list[B]:
    """Inverse of :func:`export_boxes` (raises ``ValueError``/``KeyError`` when inconsistent)."""
    lo = np.asarray(state["lo"], dtype=np.float64).reshape(-1, ndim)
    hi = np.asarray(state["hi"], dtype=np.float64).reshape(-1, ndim)
    counts = np.asarray(state["counts"], dtype=np.int64)
    tasks = np.asarray(state["tasks"], dtype=np.float64).reshape(-1, ndim)
    rewards = np.asarray(state["rewards"], dtype=np.float64)
    if not (lo.shape[0] >= 1 and hi.shape[0] == counts.shape[0] == lo.shape[0]):
        raise ValueError("box arrays differ in length")
    if int(counts.sum()) != tasks.shape[0] or tasks.shape[0] != rewards.shape[0]:
        raise ValueError("box episode counts do not match the stored episodes")
    boxes = []
    offset = 0
    for i in range(lo.shape[0]):
        k = int(counts[i])
        box = cls(lo[i].copy(), hi[i].copy(), capacity)
        box.fill(tasks[offset : offset + k], rewards[offset : offset + k])
        offset += k
        boxes.append(box)
    return boxes
