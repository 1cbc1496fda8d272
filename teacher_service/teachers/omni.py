"""``omni``: OMNI (Zhang et al. 2023),
docs/algorithms.md#omni-learning-progress-and-interestingness.

Learning progress as in :mod:`teacher_service.teachers.learning_progress`, plus a model of
interestingness (MoI) applied after every evaluation round: walk the tasks in descending
success (``p_fast``); each task not yet classified becomes *interesting*, and every task not
yet classified that the model judges not interesting given that one becomes *boring*. A
boring task's weight is multiplied by ``boring_weight`` (0.001), then the weights are
normalised again.

The model here is ``tfidf``: a task is not interesting given another when the cosine
similarity of their descriptions' TF-IDF vectors is at least ``similarity``; it is computed
once, from the space, so it is deterministic and costs nothing per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from api_schemas.teachers import OMNIConfig
from teacher_service.teachers.learning_progress import LPTeacher

INTERESTING, BORING = 1, 2


def tfidf_similarity(texts: list[str]) -> np.ndarray:
    """Cosine similarities of the texts' TF-IDF vectors (an ``n`` x ``n`` matrix)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer().fit_transform(texts)  # rows are L2-normalised
    return (vectors @ vectors.T).toarray()


def moi_walk(success: np.ndarray, similar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OMNI's walk: per task, ``INTERESTING`` or ``BORING``, and the task it was judged
    against (itself when interesting). ``similar[i, j]``: ``i`` is not interesting given
    ``j``. Ties in success are walked in task order."""
    n = len(success)
    label = np.zeros(n, dtype=np.int64)
    against = np.arange(n)
    for j in np.argsort(-success, kind="stable"):
        if label[j]:
            continue
        label[j] = INTERESTING
        boring = (label == 0) & similar[:, j]
        label[boring] = BORING
        against[boring] = j
    return label, against


class OMNITeacher(LPTeacher):
    """Learning progress with a model of interestingness (see the module docstring).

    Args:
        space: a :class:`~api_schemas.spaces.DiscreteSpace` (descriptions feed the model).
        config: the :class:`~api_schemas.teachers.OMNIConfig` hyper-parameters.
        rng: the teacher's generator.
    """

    config_model = OMNIConfig
    config: OMNIConfig

    def __init__(self, space: Any, config: OMNIConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        texts = [t.description or t.name for t in self.space.tasks]
        self.similarity_ = tfidf_similarity(texts)
        n = len(self.names)
        self.label_ = np.full(n, INTERESTING)
        self.against_ = np.arange(n)

    def add_tasks(self, space: Any, tasks: Sequence[Any]) -> None:
        """A new task is judged when it arrives: against the tasks already judged
        interesting (it is walked last, having no success yet)."""
        super().add_tasks(space, tasks)
        texts = [t.description or t.name for t in self.space.tasks]
        self.similarity_ = tfidf_similarity(texts)
        k = len(self.names) - len(self.label_)
        self.label_ = np.concatenate([self.label_, np.zeros(k, dtype=np.int64)])
        self.against_ = np.concatenate(
            [self.against_, np.arange(len(self.label_) - k, len(self.label_))]
        )
        similar = self.similarity_ >= self.config.similarity
        self.label_, self.against_ = moi_walk(np.nan_to_num(self.fast_), similar)

    def _finish_round(self) -> None:
        super()._finish_round()
        similar = self.similarity_ >= self.config.similarity
        self.label_, self.against_ = moi_walk(np.nan_to_num(self.fast_), similar)
        w = np.where(
            self.label_ == BORING, self.weights_ * self.config.boring_weight, self.weights_
        )
        self.weights_ = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))

    def view(self) -> dict[str, Any]:
        """The ``lp`` view, each task also saying interesting or boring, and why."""
        view = super().view()
        for i, task in enumerate(view["tasks"]):
            j = int(self.against_[i])
            boring = self.label_[i] == BORING
            task["interesting"] = not boring
            task["judged_against"] = self.names[j] if boring else None
            task["similarity"] = float(self.similarity_[i, j]) if boring else None
        return view

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "label": self.label_.copy(),
            "against": self.against_.copy(),
        }

    def _load_extra_state(self, state: Any) -> None:
        super()._load_extra_state(state)
        self.label_ = np.array(state["label"], dtype=np.int64)
        self.against_ = np.array(state["against"], dtype=np.int64)
