"""``riac``: Robust Intelligent Adaptive Curiosity (Baranes & Oudeyer 2009), as benchmarked in
the ALP-GMM paper (docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

The unit cube is split recursively into regions. Every region keeps its last
``max_region_size + 1`` episodes (task, normalised reward), and its ALP is the absolute
difference between the mean reward of the first and second half of its last ``alp_window``
rewards. A leaf holding more than ``max_region_size`` episodes is split by the best of
``split_attempts`` random (dimension, threshold) cuts, each child needing
``min_region_points`` episodes and ``min_dims_range_ratio`` of the range; the parent remains
a region of its own (and keeps receiving episodes).

Tasks: with ``p_uniform`` uniform over the space; with ``p_perturb`` the lowest-reward task of
a region chosen by ALP, perturbed with N(0, ``perturb_sd``); otherwise uniform inside a region
chosen by ALP. Regions are chosen in proportion to their ALP (uniformly when all are 0), among
all regions of the tree (or only the leaves, with ``leaves_only``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from api_schemas.teachers import RIACConfig
from teacher_service.teachers.base import (
    TaskProposal,
    TaskResult,
    Teacher,
    TeacherStateError,
    box_scaler,
    normalised_reward,
    unit_result,
)
from teacher_service.teachers.regions import EpisodeBox, export_boxes, load_boxes


class _Region(EpisodeBox):
    """A region: a box with its recent episodes, its ALP and, once split, its children."""

    __slots__ = ("alp", "children", "split")

    def __init__(self, lo: np.ndarray, hi: np.ndarray, capacity: int) -> None:
        super().__init__(lo, hi, capacity)
        self.alp = 0.0
        self.children: tuple[int, int] | None = None
        self.split: tuple[int, float] | None = None  # (dim, threshold): left is x < t


def region_alp(rewards: np.ndarray, window: int, min_points: int) -> float:
    """|mean(first half) - mean(second half)| of the last ``window`` rewards (oldest first).

    0 while the region holds ``min_points`` rewards or fewer (the reference's guard against
    estimates from a handful of episodes).
    """
    n = rewards.shape[0]
    if n <= min_points or n < 2:
        return 0.0
    w = min(n, window)
    half = w // 2
    recent = rewards[n - w :]
    return abs(float(recent[: w - half].mean()) - float(recent[w - half :].mean()))


class RIACTeacher(Teacher):
    """RIAC over a box space (see the module docstring and
    docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

    Args:
        space: a :class:`~api_schemas.spaces.BoxSpace`.
        config: the :class:`~api_schemas.teachers.RIACConfig` hyper-parameters.
        rng: the teacher's generator.
    """

    config_model = RIACConfig
    config: RIACConfig

    def __init__(self, space: Any, config: RIACConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        self._scaler = box_scaler(space, self.kind)
        self._ndim = self._scaler.ndim
        self._reset()

    def _reset(self) -> None:
        d = self._ndim
        self.regions_: list[_Region] = [_Region(np.zeros(d), np.ones(d), self._capacity)]
        self.n_observed_ = 0
        self.n_splits_ = 0

    @property
    def _capacity(self) -> int:
        # Each region keeps max_region_size + 1 episodes: a leaf splits once it exceeds
        # max_region_size (the reference's deque(maxlen=maxlen + 1)).
        return self.config.max_region_size + 1

    # ------------------------------------------------------------------ Teacher API

    def propose(self, n: int) -> list[TaskProposal]:
        """Draw ``n`` tasks (see the module docstring for the three modes)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        units = np.array([self._sample_unit() for _ in range(n)])
        return [TaskProposal(params=p) for p in self._scaler.to_params_batch(units)]

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Add each episode to every region containing it; split full leaves."""
        for result in results:
            self._observe_one(result)

    def view(self) -> dict[str, Any]:
        """The regions (bounds in task units, ALP, size) for the dashboard."""
        regions = []
        for i, r in enumerate(self.regions_):
            regions.append(
                {
                    "id": i,
                    "low": list(self._scaler.to_params(r.lo).values()),
                    "high": list(self._scaler.to_params(r.hi).values()),
                    "alp": r.alp,
                    "episodes": r.n,
                    "leaf": r.children is None,
                    "mean_reward": float(r.rewards[: r.n].mean()) if r.n else None,
                }
            )
        return {
            "episodes": self.n_observed_,
            "dims": list(self._scaler.names),
            "splits": self.n_splits_,
            "regions": regions,
        }

    # ------------------------------------------------------------------ state

    def _extra_state(self) -> dict[str, Any]:
        rs = self.regions_
        return {
            "n_observed": self.n_observed_,
            "n_splits": self.n_splits_,
            **export_boxes(rs),
            "alp": np.array([r.alp for r in rs]),
            "children": np.array(
                [r.children if r.children is not None else (-1, -1) for r in rs], dtype=np.int64
            ),
            "split_dim": np.array([r.split[0] if r.split else -1 for r in rs], dtype=np.int64),
            "split_at": np.array([r.split[1] if r.split else 0.0 for r in rs]),
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        try:
            regions = load_boxes(_Region, state, self._ndim, self._capacity)
            m = len(regions)
            alp = np.asarray(state["alp"], dtype=np.float64)
            children = np.asarray(state["children"], dtype=np.int64).reshape(-1, 2)
            split_dim = np.asarray(state["split_dim"], dtype=np.int64)
            split_at = np.asarray(state["split_at"], dtype=np.float64)
            if not alp.shape[0] == children.shape[0] == split_dim.shape[0] == m:
                raise ValueError("region arrays differ in length")
            if children.max() >= m:
                raise ValueError("a region points to a child that does not exist")
            for i, r in enumerate(regions):
                r.alp = float(alp[i])
                if children[i, 0] >= 0:
                    r.children = (int(children[i, 0]), int(children[i, 1]))
                    r.split = (int(split_dim[i]), float(split_at[i]))
            self.regions_ = regions
            self.n_observed_ = int(state["n_observed"])
            self.n_splits_ = int(state["n_splits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TeacherStateError(f"corrupted riac snapshot: {exc}") from exc

    # ------------------------------------------------------------------ internals

    def _candidates(self) -> list[int]:
        if self.config.leaves_only:
            return [i for i, r in enumerate(self.regions_) if r.children is None]
        return list(range(len(self.regions_)))

    def _choose_region(self) -> _Region:
        ids = self._candidates()
        alp = np.array([self.regions_[i].alp for i in ids])
        total = alp.sum()
        if total > 0:
            return self.regions_[ids[int(self.rng.choice(len(ids), p=alp / total))]]
        return self.regions_[ids[int(self.rng.integers(len(ids)))]]

    def _sample_unit(self) -> np.ndarray:
        cfg = self.config
        u = self.rng.random()
        if u < cfg.p_uniform:
            return self.rng.random(self._ndim)
        region = self._choose_region()
        if u < cfg.p_uniform + cfg.p_perturb and region.n > 0:
            # The region's lowest-reward task, perturbed (the reference's third mode).
            worst = region.tasks[int(np.argmin(region.rewards[: region.n]))]
            x = worst + self.rng.normal(0.0, cfg.perturb_sd, self._ndim)
            return np.clip(x, 0.0, 1.0)
        return region.lo + self.rng.random(self._ndim) * (region.hi - region.lo)

    def _observe_one(self, result: TaskResult) -> None:
        cfg = self.config
        task, ret = unit_result(result, self._scaler, self.kind)
        reward = normalised_reward(ret, cfg.reward_low, cfg.reward_high)
        self.n_observed_ += 1
        i = 0
        while True:  # every region on the path from the root to the leaf holding the task
            region = self.regions_[i]
            region.add(task, reward)
            region.alp = region_alp(
                region.rewards[: region.n], cfg.alp_window, cfg.min_region_points
            )
            if region.children is None:
                break
            dim, at = region.split  # type: ignore[misc]
            i = region.children[0] if task[dim] < at else region.children[1]
        if region.n > cfg.max_region_size:
            self._try_split(i)

    def _try_split(self, index: int) -> None:
        cfg = self.config
        region = self.regions_[index]
        tasks, rewards = region.tasks[: region.n], region.rewards[: region.n]
        min_width = cfg.min_dims_range_ratio  # of the unit range
        best: tuple[float, int, float] | None = None
        for _ in range(cfg.split_attempts):
            dim = int(self.rng.integers(self._ndim))
            at = float(self.rng.uniform(region.lo[dim], region.hi[dim]))
            if at - region.lo[dim] < min_width or region.hi[dim] - at < min_width:
                continue
            left = tasks[:, dim] < at
            n1 = int(left.sum())
            n2 = region.n - n1
            if n1 < cfg.min_region_points or n2 < cfg.min_region_points:
                continue
            alp1 = region_alp(rewards[left], cfg.alp_window, cfg.min_region_points)
            alp2 = region_alp(rewards[~left], cfg.alp_window, cfg.min_region_points)
            # n1 * n2 * |alp1 - alp2| with the children's episode counts. The reference
            # multiplied len() of each child's (rewards, tasks) pair, i.e. always 2 * 2,
            # so its split score ignored how balanced a split is.
            score = n1 * n2 * abs(alp1 - alp2)
            if best is None or score > best[0]:
                best = (score, dim, at)
        if best is None:
            return  # no admissible cut this time; tried again at the next episode
        _, dim, at = best
        children = []
        for child in region.cut(dim, at, self._capacity)[:2]:
            child.alp = region_alp(child.rewards[: child.n], cfg.alp_window, cfg.min_region_points)
            children.append(len(self.regions_))
            self.regions_.append(child)
        region.children = (children[0], children[1])
        region.split = (dim, at)
        self.n_splits_ += 1
