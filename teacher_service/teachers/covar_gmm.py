"""``covar_gmm``: Covar-GMM (Moulin-Frier et al. 2014), as benchmarked in the ALP-GMM paper
(docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

Each finished episode adds a row ``[task, t, reward]``: ``t`` is the episode's position in
its fit window divided by ``fit_rate`` (0 for the first episode of a window, just under 1
for the last) and ``reward`` the normalised return. A component whose reward grows with
``t`` covers tasks being learned, so its learning progress is ``max(0, cov[t, reward])``
(``|cov[t, reward]|`` with ``absolute_lp``). Fitting, scheduling and sampling are shared with
ALP-GMM (:mod:`teacher_service.teachers.gmm_base`).
"""

from __future__ import annotations

import numpy as np

from api_schemas.teachers import CovarGMMConfig
from teacher_service.teachers.base import normalised_reward
from teacher_service.teachers.gmm_base import GMMParams, GMMTeacher


class CovarGMMTeacher(GMMTeacher):
    """Covar-GMM over a box space (see the module docstring and
    docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

    Args:
        space: a :class:`~api_schemas.spaces.BoxSpace`.
        config: the :class:`~api_schemas.teachers.CovarGMMConfig` hyper-parameters.
        rng: the teacher's generator (proposals and fit seeds).
    """

    config_model = CovarGMMConfig
    n_extra = 2
    config: CovarGMMConfig

    def _row(self, task: np.ndarray, ret: float) -> np.ndarray:
        cfg = self.config
        # Time within the fit window. Counted from the fit schedule, so that every fit
        # sees t = 0, 1/fit_rate, ..., (fit_rate - 1)/fit_rate in episode order; with the
        # reference's bootstrap = fit_rate this is its ``n % fit_rate / fit_rate``.
        t = ((self.n_observed_ - self._first_fit_at) % cfg.fit_rate) / cfg.fit_rate
        return np.array([t, normalised_reward(ret, cfg.reward_low, cfg.reward_high)])

    def _component_lp(self, gmm: GMMParams) -> np.ndarray:
        cov = gmm.covariances[:, -2, -1]  # cov(t, reward) of each component
        return np.abs(cov) if self.config.absolute_lp else np.maximum(cov, 0.0)

    def _extra_names(self) -> list[tuple[int, str]]:
        return [(0, "times"), (1, "rewards")]
