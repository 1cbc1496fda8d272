"""``random``: domain randomisation, the baseline every curriculum must beat
(docs/algorithms.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from api_schemas.spaces import BoxSpace, DiscreteSpace, LevelSpace
from api_schemas.teachers import RandomConfig
from teacher_service.teachers.base import BoxScaler, TaskProposal, TaskResult, Teacher


class RandomTeacher(Teacher):
    """Uniform over a box (in the unit cube) or over a discrete task list; for a level space,
    levels drawn by the space's generator with its parameters randomised (domain
    randomisation, e.g. MiniGrid mazes with a uniform number of walls)."""

    config_model = RandomConfig

    def __init__(self, space: Any, config: RandomConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        self._scaler: BoxScaler | None = None
        self._generator: Any = None
        if isinstance(space, BoxSpace):
            self._scaler = BoxScaler(space)
        elif isinstance(space, LevelSpace):
            from env_generators.generators import get_generator

            self._generator = get_generator(space.generator)
            self._generator_config = self._generator.config(space.config)
        elif not isinstance(space, DiscreteSpace):
            raise ValueError(f"random teacher does not support {space.kind!r} spaces")
        self.n_observed_ = 0
        self.return_sum_ = 0.0

    def propose(self, n: int) -> list[TaskProposal]:
        """Draw ``n`` tasks uniformly."""
        if self._generator is not None:
            sample = self._generator.sample
            cfg = self._generator_config
            return [TaskProposal(level=sample(self.rng, cfg)) for _ in range(n)]
        if self._scaler is not None:
            u = self.rng.random((n, self._scaler.ndim))
            return [TaskProposal(params=p) for p in self._scaler.to_params_batch(u)]
        names = self.space.names
        idx = self.rng.integers(0, len(names), size=n)
        return [TaskProposal(params={"task": names[i]}) for i in idx]

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Only counts: uniform sampling ignores outcomes."""
        self.n_observed_ += len(results)
        self.return_sum_ += float(sum(r.episode_return for r in results))

    def view(self) -> dict[str, Any]:
        """Episodes seen and their mean return."""
        mean = self.return_sum_ / self.n_observed_ if self.n_observed_ else None
        return {"episodes": self.n_observed_, "mean_return": mean}

    def _extra_state(self) -> dict[str, Any]:
        return {"n_observed": self.n_observed_, "return_sum": self.return_sum_}

    def _load_extra_state(self, state: Any) -> None:
        self.n_observed_ = int(state["n_observed"])
        self.return_sum_ = float(state["return_sum"])
