"""``alp_gmm``: ALP-GMM (Portelas et al., CoRL 2019), docs/algorithms.md#alp-gmm-covar-gmm-and-riac.

The teacher keeps, for every finished episode, a row ``[task, alp]`` where ``task`` is the
task in the unit cube and ``alp`` its absolute learning progress: the absolute difference
between its normalised reward and the reward of the nearest previously seen task. Every
``fit_rate`` episodes (after ``bootstrap`` uniform episodes) it fits Gaussian mixtures on the
last ``fit_rate`` rows and samples tasks from components chosen in proportion to their mean
ALP (plus ``random_task_ratio`` uniform tasks). The fitting and sampling machinery, shared
with Covar-GMM, is in :mod:`teacher_service.teachers.gmm_base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from api_schemas.teachers import ALPGMMConfig
from teacher_service.teachers.base import normalised_reward
from teacher_service.teachers.gmm_base import (
    VIEW_ROWS,
    GMMParams,
    GMMTeacher,
)
from teacher_service.teachers.nearest import NearestIndex

#: The reference leaves ALP at 0 until the history holds more than this many tasks.
MIN_HISTORY_FOR_ALP = 5


class ALPGMMTeacher(GMMTeacher):
    """ALP-GMM over a box space (see the module docstring and
    docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

    Args:
        space: a :class:`~api_schemas.spaces.BoxSpace`.
        config: the :class:`~api_schemas.teachers.ALPGMMConfig` hyper-parameters.
        rng: the teacher's generator (proposals and fit seeds).
    """

    config_model = ALPGMMConfig
    n_extra = 1
    config: ALPGMMConfig

    def _reset_learned_state(self) -> None:
        super()._reset_learned_state()
        self.nn_ = NearestIndex(self._ndim)

    def _row(self, task: np.ndarray, ret: float) -> np.ndarray:
        reward = normalised_reward(ret, self.config.reward_low, self.config.reward_high)
        # ALP: |reward - reward of the nearest previously seen task|, 0 while the history
        # is tiny (reference: only once it holds more than 5 tasks); then add the pair.
        nearest = self.nn_.query_add(task, reward)
        alp = 0.0
        if nearest is not None and len(self.nn_) - 1 > MIN_HISTORY_FOR_ALP:
            alp = abs(reward - nearest[1])
        return np.array([alp])

    def _component_lp(self, gmm: GMMParams) -> np.ndarray:
        # A component's learning progress is its mean ALP (the last mean coordinate).
        return gmm.means[:, -1].copy()

    def _extra_names(self) -> list[tuple[int, str]]:
        return [(0, "alps")]

    def view(self) -> dict[str, Any]:
        """The family's view plus the mean ALP of the fit window."""
        out = super().view()
        window_alps = self.recent_.last(self.config.fit_rate)[0][:, -1]
        out["recent_mean_alp"] = float(window_alps.mean()) if window_alps.size else None
        if out["gmm"] is not None:
            out["gmm"]["mean_alp"] = out["gmm"]["lp"]
        return out

    def _extra_state(self) -> dict[str, Any]:
        nn = self.nn_.export()
        return {**super()._extra_state(), "nn_points": nn["points"], "nn_values": nn["values"]}

    def _load_family_state(self, state: Mapping[str, Any]) -> None:
        self.nn_ = NearestIndex.from_arrays(
            np.asarray(state["nn_points"], dtype=np.float64).reshape(-1, self._ndim),
            np.asarray(state["nn_values"], dtype=np.float64),
        )


__all__ = ["VIEW_ROWS", "ALPGMMTeacher"]
