"""``lp_tree``: this project's teacher for box spaces (docs/algorithms.md#lp-tree).

An online regression tree over reward partitions the unit cube, and leaves are sampled in
proportion to a lower confidence bound of their *recent* learning progress.

* **Splits follow real differences.** Every leaf keeps its last ``window`` episodes. Every
  ``split_every`` episodes (once it holds ``split_min``) it looks for the axis-aligned cut
  whose two sides differ most in mean reward, measured by a two-sample t statistic with
  pooled variance; it splits only when that statistic reaches ``split_t``. Leaves therefore
  end up following the boundaries of what the student can do (mastered / being learned /
  out of reach). Noise and distractor dimensions give no real difference, so they are cut
  far less often (the best of many candidate cuts still passes the test now and then,
  which costs a little resolution, not correctness).
* **Progress is measured where it happens, fast.** A leaf's learning progress is the
  absolute slope of a least-squares line through its last ``lp_window`` rewards (in the
  order they came), minus ``lcb`` standard errors of that slope (a lower confidence bound:
  a leaf whose rewards merely scatter gets little weight). Eight episodes suffice to see a
  task start or stop improving, against 250 for a GMM refit.
* **Tasks.** Uniform during ``bootstrap`` and with ``p_uniform``; otherwise a leaf chosen in
  proportion to its progress, and a point uniform inside it or, with ``p_expand``, inside the
  leaf grown by ``expand`` of its width on each side, since the next learnable tasks usually
  border those being learned. When no leaf shows progress, tasks are uniform.

Only the teacher interface is used (task, return); nothing about the student is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from api_schemas.teachers import LPTreeConfig
from teacher_service.teachers.base import (
    TaskProposal,
    TaskResult,
    Teacher,
    TeacherStateError,
    box_scaler,
    unit_result,
)
from teacher_service.teachers.regions import EpisodeBox, export_boxes, load_boxes


def progress_lcb(rewards: np.ndarray, lcb: float) -> float:
    """``max(0, |slope| - lcb * se(slope))`` of a least-squares line through ``rewards``
    against their order (0 for fewer than three rewards)."""
    w = rewards.shape[0]
    if w < 3:
        return 0.0
    t = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    tt = float(t @ t)
    slope = float(t @ rewards) / tt
    if lcb == 0.0:
        return abs(slope)
    resid = rewards - rewards.mean() - slope * t
    se = math.sqrt(max(float(resid @ resid), 0.0) / (w - 2) / tt)
    return max(abs(slope) - lcb * se, 0.0)


def best_split(
    tasks: np.ndarray,
    rewards: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    min_leaf: int,
    min_width: float,
) -> tuple[float, int, float] | None:
    """The axis-aligned cut of a leaf whose sides differ most in mean reward.

    Every threshold halfway between consecutive distinct coordinates is scored by the
    two-sample t statistic (pooled variance) of the rewards on either side. Cuts leaving
    fewer than ``min_leaf`` episodes or less than ``min_width`` of width on a side are not
    admissible.

    Returns:
        ``(t, dim, threshold)`` of the best admissible cut, or ``None``.
    """
    n, d = tasks.shape
    best: tuple[float, int, float] | None = None
    k = np.arange(1, n, dtype=np.float64)  # episodes left of each candidate cut
    for dim in range(d):
        order = np.argsort(tasks[:, dim], kind="stable")
        xs = tasks[order, dim]
        rs = rewards[order]
        thr = (xs[1:] + xs[:-1]) / 2.0
        ok = (k >= min_leaf) & (n - k >= min_leaf) & (xs[1:] > xs[:-1])
        ok &= (thr - lo[dim] >= min_width) & (hi[dim] - thr >= min_width)
        if not ok.any():
            continue
        c1 = np.cumsum(rs)
        c2 = np.cumsum(rs * rs)
        s1, q1 = c1[:-1], c2[:-1]
        s2, q2 = c1[-1] - s1, c2[-1] - q1
        m1, m2 = s1 / k, s2 / (n - k)
        within = np.maximum((q1 - s1 * m1) + (q2 - s2 * m2), 0.0)
        var = np.maximum(within / max(n - 2, 1), 1e-12)  # floor: identical rewards
        t = np.abs(m1 - m2) / np.sqrt(var * (1.0 / k + 1.0 / (n - k)))
        t = np.where(ok, t, -1.0)
        j = int(np.argmax(t))
        if t[j] >= 0 and (best is None or t[j] > best[0]):
            best = (float(t[j]), dim, float(thr[j]))
    return best


class _Leaf(EpisodeBox):
    """A leaf: a box with its recent episodes and the episodes since its last split test."""

    __slots__ = ("since_test",)

    def __init__(self, lo: np.ndarray, hi: np.ndarray, capacity: int) -> None:
        super().__init__(lo, hi, capacity)
        self.since_test = 0

    def add(self, task: np.ndarray, reward: float) -> None:
        """Append one episode (and count it towards the next split test)."""
        super().add(task, reward)
        self.since_test += 1


class LPTreeTeacher(Teacher):
    """LP-Tree over a box space (see the module docstring; hyper-parameters in
    :class:`~api_schemas.teachers.LPTreeConfig`).

    Args:
        space: a :class:`~api_schemas.spaces.BoxSpace`.
        config: the hyper-parameters.
        rng: the teacher's generator.
    """

    config_model = LPTreeConfig
    config: LPTreeConfig

    def __init__(self, space: Any, config: LPTreeConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        self._scaler = box_scaler(space, self.kind)
        self._ndim = self._scaler.ndim
        d = self._ndim
        self.leaves_: list[_Leaf] = [_Leaf(np.zeros(d), np.ones(d), config.window)]
        # Internal nodes: (dim, threshold, left, right); a child < 0 is leaf ~child.
        self.nodes_: list[tuple[int, float, int, int]] = []
        self.lp_ = np.zeros(1)
        self.n_observed_ = 0

    # ------------------------------------------------------------------ Teacher API

    def propose(self, n: int) -> list[TaskProposal]:
        """Draw ``n`` tasks (modes in the module docstring)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        cfg = self.config
        d = self._ndim
        coins = self.rng.random(n)
        total = float(self.lp_.sum())
        probs = self.lp_ / total if total > 0 else None
        units = np.empty((n, d))
        for i, u in enumerate(coins):
            if probs is None or self.n_observed_ < cfg.bootstrap or u < cfg.p_uniform:
                units[i] = self.rng.random(d)
                continue
            leaf = self.leaves_[int(self.rng.choice(probs.shape[0], p=probs))]
            lo, hi = leaf.lo, leaf.hi
            if u < cfg.p_uniform + cfg.p_expand:
                grow = (hi - lo) * cfg.expand
                lo, hi = np.maximum(lo - grow, 0.0), np.minimum(hi + grow, 1.0)
            units[i] = lo + self.rng.random(d) * (hi - lo)
        return [TaskProposal(params=p) for p in self._scaler.to_params_batch(units)]

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Add each episode to its leaf, update that leaf's progress, split when due."""
        for result in results:
            self._observe_one(*unit_result(result, self._scaler, self.kind))

    def view(self) -> dict[str, Any]:
        """The leaves (bounds in task units, progress, size, mean reward)."""
        leaves = []
        for i, leaf in enumerate(self.leaves_):
            leaves.append(
                {
                    "low": list(self._scaler.to_params(leaf.lo).values()),
                    "high": list(self._scaler.to_params(leaf.hi).values()),
                    "lp": float(self.lp_[i]),
                    "episodes": leaf.n,
                    "mean_return": float(leaf.rewards[: leaf.n].mean()) if leaf.n else None,
                }
            )
        return {
            "episodes": self.n_observed_,
            "dims": list(self._scaler.names),
            "leaves": leaves,
            "total_lp": float(self.lp_.sum()),
        }

    # ------------------------------------------------------------------ state

    def _extra_state(self) -> dict[str, Any]:
        ls = self.leaves_
        return {
            "n_observed": self.n_observed_,
            "nodes": np.array(self.nodes_, dtype=np.float64).reshape(-1, 4),
            **export_boxes(ls),
            "since_test": np.array([leaf.since_test for leaf in ls], dtype=np.int64),
            "lp": self.lp_.copy(),
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        try:
            leaves = load_boxes(_Leaf, state, self._ndim, self.config.window)
            m = len(leaves)
            since = np.asarray(state["since_test"], dtype=np.int64)
            lp = np.asarray(state["lp"], dtype=np.float64)
            nodes = np.asarray(state["nodes"], dtype=np.float64).reshape(-1, 4)
            if not since.shape[0] == lp.shape[0] == m:
                raise ValueError("leaf arrays differ in length")
            if nodes.shape[0] != m - 1:
                raise ValueError("a tree with m leaves has m - 1 internal nodes")
            for leaf, k in zip(leaves, since, strict=True):
                leaf.since_test = int(k)
            self.leaves_ = leaves
            self.nodes_ = [(int(a), float(b), int(c), int(e)) for a, b, c, e in nodes]
            self.lp_ = lp.copy()
            self.n_observed_ = int(state["n_observed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TeacherStateError(f"corrupted lp_tree snapshot: {exc}") from exc

    # ------------------------------------------------------------------ internals

    def _find(self, x: np.ndarray) -> tuple[int, int]:
        """(parent node or -1, leaf index) of the leaf containing ``x``."""
        if not self.nodes_:
            return -1, 0
        i = 0
        while True:
            dim, at, left, right = self.nodes_[i]
            child = left if x[dim] < at else right
            if child < 0:
                return i, ~child
            i = child

    def _observe_one(self, task: np.ndarray, ret: float) -> None:
        cfg = self.config
        self.n_observed_ += 1
        parent, li = self._find(task)
        leaf = self.leaves_[li]
        leaf.add(task, ret)
        self.lp_[li] = self._leaf_lp(leaf)
        if (
            leaf.n >= cfg.split_min
            and leaf.since_test >= cfg.split_every
            and len(self.leaves_) < cfg.max_leaves
        ):
            leaf.since_test = 0
            self._try_split(parent, li)

    def _leaf_lp(self, leaf: _Leaf) -> float:
        cfg = self.config
        return progress_lcb(leaf.rewards[max(leaf.n - cfg.lp_window, 0) : leaf.n], cfg.lcb)

    def _try_split(self, parent: int, li: int) -> None:
        cfg = self.config
        leaf = self.leaves_[li]
        tasks, rewards = leaf.tasks[: leaf.n], leaf.rewards[: leaf.n]
        found = best_split(tasks, rewards, leaf.lo, leaf.hi, cfg.min_leaf, cfg.min_width)
        if found is None or found[0] < cfg.split_t:
            return
        _, dim, at = found
        left, right, _ = leaf.cut(dim, at, cfg.window)
        ri = len(self.leaves_)
        self.leaves_[li] = left
        self.leaves_.append(right)
        self.lp_[li] = self._leaf_lp(left)
        self.lp_ = np.append(self.lp_, self._leaf_lp(right))
        node = len(self.nodes_)
        self.nodes_.append((dim, at, ~li, ~ri))
        if parent >= 0:  # re-point the parent's edge from the old leaf to the new node
            pdim, pat, pl, pr = self.nodes_[parent]
            self.nodes_[parent] = (pdim, pat, node if pl == ~li else pl, node if pr == ~li else pr)
