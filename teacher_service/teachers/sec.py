"""``sec``: Self-Evolving Curriculum (Chen et al. 2025),
docs/algorithms.md#self-evolving-curriculum-sec.

A multi-armed bandit over the tasks of a discrete space, or over their categories. Each
proposal draws an arm from ``softmax(Q / tau)`` (then a task of the arm uniformly). An arm's
reward is the mean absolute advantage of its episodes, the paper's measure of how much a
task still teaches: the report's ``abs_advantage`` score, else its ``l1_value_loss`` (the mean
|GAE advantage| our students send), else, for binary rewards, ``2 sqrt(p (1 - p))`` from the
arm's success rate ``p`` in the batch (the expected |advantage| under group-normalised
advantages). Every ``batch_episodes`` reports update the arms they sampled by TD(0),
``Q <- (1 - alpha) Q + alpha r`` (with ``decay_unsampled``, the others with ``r = 0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from api_schemas.teachers import SECConfig
from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher, discrete_space
from teacher_service.teachers.learning_progress import is_success

#: Report scores that hold an episode's mean |advantage|, in order of preference.
ADVANTAGE_SCORES = ("abs_advantage", "l1_value_loss")


def softmax(q: np.ndarray, tau: float) -> np.ndarray:
    """``softmax(q / tau)``, shifted by the maximum so that it never overflows."""
    z = np.exp((q - q.max()) / tau)
    return z / z.sum()


def arm_rewards(
    values: np.ndarray, valued: np.ndarray, successes: np.ndarray, episodes: np.ndarray
) -> np.ndarray:
    """Per arm: the mean of its episodes' |advantage| values where it has any, else
    ``2 sqrt(p (1 - p))`` from its success rate ``p`` (0 for an arm without episodes)."""
    p = successes / np.maximum(episodes, 1)
    binary = 2.0 * np.sqrt(p * (1.0 - p))
    return np.where(valued > 0, values / np.maximum(valued, 1), binary)


class SECTeacher(Teacher):
    """SEC over a discrete space (see the module docstring).

    Args:
        space: a :class:`~api_schemas.spaces.DiscreteSpace` (tasks may have a ``category``).
        config: the :class:`~api_schemas.teachers.SECConfig` hyper-parameters.
        rng: the teacher's generator.
    """

    config_model = SECConfig
    config: SECConfig

    def __init__(self, space: Any, config: SECConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        space = discrete_space(space, self.kind)
        keys = [
            (t.category or t.name) if config.arms == "category" else t.name for t in space.tasks
        ]
        self.arms = list(dict.fromkeys(keys))  # in order of first appearance
        arm_index = {a: i for i, a in enumerate(self.arms)}
        self.arm_of = {t.name: arm_index[k] for t, k in zip(space.tasks, keys, strict=True)}
        self.tasks_of: list[list[str]] = [[] for _ in self.arms]
        for t, k in zip(space.tasks, keys, strict=True):
            self.tasks_of[arm_index[k]].append(t.name)
        m = len(self.arms)
        self.q_ = np.zeros(m)
        self.values_ = np.zeros(m)  # sum of |advantage| values in the current batch
        self.valued_ = np.zeros(m, dtype=np.int64)  # episodes that gave one
        self.successes_ = np.zeros(m, dtype=np.int64)
        self.episodes_ = np.zeros(m, dtype=np.int64)
        self.total_ = np.zeros(m, dtype=np.int64)  # episodes per arm, ever
        self.updates_ = 0

    def add_tasks(self, space: Any, tasks: Sequence[Any]) -> None:
        """A new task joins its category's arm, or is a new arm with ``Q = 0``."""
        super().add_tasks(space, tasks)
        for t in tasks:
            key = (t.category or t.name) if self.config.arms == "category" else t.name
            if key not in self.arms:
                self.arms.append(key)
                self.tasks_of.append([])
                for name in ("q_", "values_"):
                    setattr(self, name, np.append(getattr(self, name), 0.0))
                for name in ("valued_", "successes_", "episodes_", "total_"):
                    setattr(self, name, np.append(getattr(self, name), 0).astype(np.int64))
            arm = self.arms.index(key)
            self.tasks_of[arm].append(t.name)
            self.arm_of[t.name] = arm

    def propose(self, n: int) -> list[TaskProposal]:
        """Each slot draws an arm from softmax(Q / tau), then one of its tasks uniformly."""
        arms = self.rng.choice(len(self.arms), size=n, p=softmax(self.q_, self.config.tau))
        out = []
        for a in arms:
            tasks = self.tasks_of[a]
            task = tasks[int(self.rng.integers(len(tasks)))] if len(tasks) > 1 else tasks[0]
            out.append(TaskProposal(params={"task": task}))
        return out

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Gather each arm's |advantage| (or successes); update every ``batch_episodes``."""
        for r in results:
            a = self.arm_of[r.task.params["task"]]
            value = next((r.scores[k] for k in ADVANTAGE_SCORES if k in r.scores), None)
            if value is not None:
                self.values_[a] += abs(float(value))
                self.valued_[a] += 1
            self.successes_[a] += is_success(r)
            self.episodes_[a] += 1
            self.total_[a] += 1
            if self.episodes_.sum() >= self.config.batch_episodes:
                self._update()

    def _update(self) -> None:
        reward = arm_rewards(self.values_, self.valued_, self.successes_, self.episodes_)
        alpha = self.config.alpha
        updated = self.episodes_ > 0
        if self.config.decay_unsampled:  # the published code: absent arms get r = 0
            updated = np.ones_like(updated)
            reward = np.where(self.episodes_ > 0, reward, 0.0)
        self.q_ = np.where(updated, (1.0 - alpha) * self.q_ + alpha * reward, self.q_)
        for acc in (self.values_, self.valued_, self.successes_, self.episodes_):
            acc[:] = 0
        self.updates_ += 1

    def view(self) -> dict[str, Any]:
        """Per arm: its tasks, Q, sampling probability and episodes."""
        probs = softmax(self.q_, self.config.tau)
        return {
            "arms_by": self.config.arms,
            "updates": self.updates_,
            "episodes": int(self.total_.sum()),
            "arms": [
                {
                    "arm": arm,
                    "tasks": self.tasks_of[i],
                    "q": float(self.q_[i]),
                    "probability": float(probs[i]),
                    "episodes": int(self.total_[i]),
                }
                for i, arm in enumerate(self.arms)
            ],
        }

    def _extra_state(self) -> dict[str, Any]:
        return {
            "q": self.q_.copy(),
            "values": self.values_.copy(),
            "counts": np.stack([self.valued_, self.successes_, self.episodes_, self.total_]),
            "updates": self.updates_,
        }

    def _load_extra_state(self, state: Any) -> None:
        self.q_ = np.array(state["q"], dtype=np.float64)
        self.values_ = np.array(state["values"], dtype=np.float64)
        counts = np.array(state["counts"], dtype=np.int64)
        self.valued_, self.successes_, self.episodes_, self.total_ = (c.copy() for c in counts)
        self.updates_ = int(state["updates"])
