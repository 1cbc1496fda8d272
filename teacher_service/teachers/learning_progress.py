"""``lp``: OMNI's learning progress over discrete tasks (Zhang et al. 2023),
docs/algorithms.md#learning-progress-over-discrete-tasks-lp.

The teacher measures each task's success itself: every ``eval_interval`` training episodes
(and once before any training) it issues an evaluation round, ``eval_episodes`` tasks of mode
``evaluate`` per task (no gradient). When a round's results are in, each task's success ``p``
is normalised against a random policy's, ``max(p - p_rnd, 0) / (1 - p_rnd)``, and smoothed
twice, ``p_fast = EMA(p)``, ``p_slow = EMA(p_fast)`` (both start at the first measurement). The
learning progress of a task is ``|f(p_fast) - f(p_slow)|`` with the reweighting
``f(p) = (1 - theta) p / (p + theta (1 - 2p))``, which magnifies changes at low success.
Training tasks are drawn by weight: the tasks with LP > 0 or success > 0 (all tasks if there
are none) get ``sigmoid(z-score of LP)``, normalised; the others get 0, which is why the
teacher schedules the evaluations that keep measuring them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from api_schemas.tasks import TaskMode
from api_schemas.teachers import LPConfig
from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher, discrete_space


def reweight(p: np.ndarray, theta: float) -> np.ndarray:
    """OMNI's ``f(p) = (1 - theta) p / (p + theta (1 - 2p))`` (``f(0) = 0``, ``f(1) = 1``)."""
    return (1.0 - theta) * p / (p + theta * (1.0 - 2.0 * p))


def lp_weights(lp: np.ndarray, success: np.ndarray) -> np.ndarray:
    """Sampling weights from learning progress: z-score over the kept tasks (LP > 0 or
    success > 0; all of them when none is), sigmoid, normalised; 0 for the others."""
    kept = (lp > 0) | (success > 0)
    if not kept.any():
        kept[:] = True
    z = np.zeros_like(lp)
    sd = lp[kept].std()
    if sd > 0:
        z[kept] = (lp[kept] - lp[kept].mean()) / sd
    w = np.where(kept, 1.0 / (1.0 + np.exp(-z)), 0.0)
    return w / w.sum()


def is_success(result: TaskResult) -> bool:
    """A report's success, or a positive return when it does not say."""
    return bool(result.success) if result.success is not None else result.episode_return > 0


class LPTeacher(Teacher):
    """Learning progress over a discrete space (see the module docstring).

    Args:
        space: a :class:`~api_schemas.spaces.DiscreteSpace`.
        config: the :class:`~api_schemas.teachers.LPConfig` hyper-parameters.
        rng: the teacher's generator.
    """

    config_model = LPConfig
    config: LPConfig

    def __init__(self, space: Any, config: LPConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        space = discrete_space(space, self.kind)
        self.names = space.names
        self._index = {name: i for i, name in enumerate(self.names)}
        unknown = sorted(set(config.random_success or {}) - set(self.names))
        if unknown:
            raise ValueError(f"random_success names unknown tasks: {unknown[:5]}")
        n = len(self.names)
        given = config.random_success
        # the random policy's success: given, or measured by the first round (NaN until then)
        self.baseline_ = np.array(
            [given.get(name, 0.0) for name in self.names] if given is not None else [np.nan] * n
        )
        self.fast_ = np.full(n, np.nan)
        self.slow_ = np.full(n, np.nan)
        self.raw_ = np.full(n, np.nan)  # last measured success, before normalising
        self.weights_ = np.full(n, 1.0 / n)
        self.queue_: deque[int] = deque()  # evaluate tasks of the current round, to issue
        self.pending_ = 0  # evaluate tasks of the current round issued or queued, not back
        self.round_episodes_ = np.zeros(n, dtype=np.int64)
        self.round_successes_ = np.zeros(n, dtype=np.int64)
        self.rounds_ = 0
        self.train_since_round_ = 0
        self.train_episodes_ = 0
        self.eval_episodes_ = 0
        self._start_round()  # measure every task before training on any

    # ------------------------------------------------------------------ the loop
    def _start_round(self) -> None:
        n, k = len(self.names), self.config.eval_episodes
        self.queue_.extend(i for _ in range(k) for i in range(n))  # interleaved
        self.pending_ += n * k
        self.train_since_round_ = 0

    def propose(self, n: int) -> list[TaskProposal]:
        """Queued evaluate tasks first, then training tasks drawn by weight."""
        out = []
        while self.queue_ and len(out) < n:
            task = self.names[self.queue_.popleft()]
            out.append(TaskProposal(params={"task": task}, mode=TaskMode.EVALUATE))
        if len(out) < n:
            picks = self.rng.choice(len(self.names), size=n - len(out), p=self.weights_)
            out.extend(TaskProposal(params={"task": self.names[i]}) for i in picks)
        return out

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Evaluate results fill the round; training results count towards the next one."""
        for r in results:
            i = self._index[r.task.params["task"]]
            if r.task.mode == TaskMode.EVALUATE:
                self.round_episodes_[i] += 1
                self.round_successes_[i] += is_success(r)
                self.eval_episodes_ += 1
                self._evaluation_back()
            else:
                self.train_episodes_ += 1
                self.train_since_round_ += 1
                if self.pending_ == 0 and self.train_since_round_ >= self.config.eval_interval:
                    self._start_round()

    def expire(self, tasks: Sequence[TaskProposal]) -> None:
        """An expired evaluate task is a measurement that will not come: the round goes on."""
        for task in tasks:
            if task.mode == TaskMode.EVALUATE:
                self._evaluation_back()

    def add_tasks(self, space: Any, tasks: Sequence[Any]) -> None:
        """New tasks are measured at once (an evaluation of them alone) and weigh nothing
        until then. Their random-policy success is the configured one, or 0 once training
        has begun (before the first round ends, that round measures it)."""
        super().add_tasks(space, tasks)
        first = len(self.names)
        self.names = space.names
        self._index = {name: i for i, name in enumerate(self.names)}
        k = len(self.names) - first
        given = self.config.random_success
        # NaN: the first round, still running, measures it like the other tasks' baselines
        measured = given is None and self.rounds_ == 0
        base = [np.nan if measured else (given or {}).get(t.name, 0.0) for t in tasks]
        self.baseline_ = np.concatenate([self.baseline_, base])
        for name in ("fast_", "slow_", "raw_"):
            setattr(self, name, np.concatenate([getattr(self, name), np.full(k, np.nan)]))
        self.weights_ = np.concatenate([self.weights_, np.zeros(k)])
        zeros = np.zeros(k, dtype=np.int64)
        self.round_episodes_ = np.concatenate([self.round_episodes_, zeros])
        self.round_successes_ = np.concatenate([self.round_successes_, zeros])
        self.queue_.extend(
            i for _ in range(self.config.eval_episodes) for i in range(first, first + k)
        )
        self.pending_ += k * self.config.eval_episodes

    def _evaluation_back(self) -> None:
        self.pending_ -= 1
        if self.pending_ == 0:
            self._finish_round()

    def _finish_round(self) -> None:
        measured = self.round_episodes_ > 0
        raw = np.where(
            measured, self.round_successes_ / np.maximum(self.round_episodes_, 1), np.nan
        )
        self.raw_ = np.where(measured, raw, self.raw_)
        # the first round is played before any training: the random policy's success
        self.baseline_ = np.where(np.isnan(self.baseline_) & measured, raw, self.baseline_)
        rnd = np.nan_to_num(self.baseline_)
        norm = np.where(rnd < 1.0, np.maximum(raw - rnd, 0.0) / np.maximum(1.0 - rnd, 1e-12), 0.0)
        a = self.config.ema
        first = measured & np.isnan(self.fast_)
        again = measured & ~first
        self.fast_ = np.where(first, norm, self.fast_)
        self.slow_ = np.where(first, norm, self.slow_)
        fast = np.where(again, self.fast_ + a * (norm - self.fast_), self.fast_)
        self.slow_ = np.where(again, self.slow_ + a * (fast - self.slow_), self.slow_)
        self.fast_ = fast
        self.weights_ = lp_weights(self.lp(), np.nan_to_num(self.fast_))
        self.round_episodes_[:] = 0
        self.round_successes_[:] = 0
        self.rounds_ += 1

    def lp(self) -> np.ndarray:
        """Each task's learning progress, ``|f(p_fast) - f(p_slow)|`` (0 before measuring)."""
        theta = self.config.theta
        fast, slow = np.nan_to_num(self.fast_), np.nan_to_num(self.slow_)
        return np.abs(reweight(fast, theta) - reweight(slow, theta))

    # ------------------------------------------------------------------ view, state
    def view(self) -> dict[str, Any]:
        """Per task: success (p_fast), LP, weight, the random baseline; the round's status."""
        lp = self.lp()

        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        tasks = [
            {
                "task": name,
                "success": num(self.fast_[i]),
                "raw_success": num(self.raw_[i]),
                "lp": float(lp[i]),
                "weight": float(self.weights_[i]),
                "random_success": num(self.baseline_[i]),
            }
            for i, name in enumerate(self.names)
        ]
        return {
            "rounds": self.rounds_,
            "evaluating": self.pending_ > 0,
            "train_episodes": self.train_episodes_,
            "eval_episodes": self.eval_episodes_,
            "tasks": tasks,
        }

    def _extra_state(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_.copy(),
            "fast": self.fast_.copy(),
            "slow": self.slow_.copy(),
            "raw": self.raw_.copy(),
            "weights": self.weights_.copy(),
            "queue": np.array(self.queue_, dtype=np.int64),
            "pending": self.pending_,
            "round_episodes": self.round_episodes_.copy(),
            "round_successes": self.round_successes_.copy(),
            "counts": [
                self.rounds_,
                self.train_since_round_,
                self.train_episodes_,
                self.eval_episodes_,
            ],
        }

    def _load_extra_state(self, state: Any) -> None:
        for name in ("baseline", "fast", "slow", "raw", "weights"):
            setattr(self, f"{name}_", np.array(state[name], dtype=np.float64))
        self.queue_ = deque(int(i) for i in state["queue"])
        self.pending_ = int(state["pending"])
        self.round_episodes_ = np.array(state["round_episodes"], dtype=np.int64)
        self.round_successes_ = np.array(state["round_successes"], dtype=np.int64)
        counts = [int(c) for c in state["counts"]]
        self.rounds_, self.train_since_round_, self.train_episodes_, self.eval_episodes_ = counts
