"""``omni``: OMNI (Zhang et al. 2023),
docs/algorithms.md#omni-learning-progress-and-interestingness.

Learning progress as in :mod:`teacher_service.teachers.learning_progress`, plus a model of
interestingness (MoI) applied after every evaluation round: walk the tasks in descending
success (``p_fast``); each task not yet classified becomes *interesting*, and every task not
yet classified that the model judges not interesting given that one becomes *boring*. A
boring task's weight is multiplied by ``boring_weight`` (0.001), then the weights are
normalised again.

The model's judgements are pairs "task ``i`` is not interesting given task ``j``", made once
per task, when it joins the space (the whole space at creation):

- ``tfidf`` and ``embedding`` judge by cosine similarity of the tasks' texts (TF-IDF vectors,
  or all-MiniLM-L6-v2 sentence embeddings): ``i`` and ``j`` are not interesting given each
  other when their similarity is at least the threshold;
- ``llm`` asks a chat model, shown a task and its most similar tasks, whether the task is
  interesting given them, and if not, given which one.

``tfidf`` is computed here, a deterministic function of the space. ``embedding`` and ``llm``
run outside the teacher (:mod:`teacher_service.interestingness`): the teacher asks for them
with :meth:`OMNITeacher.judgement_request`, and the answers come back through
:meth:`OMNITeacher.judge` as the runtime logged them, so a replay applies them at the same
place without asking the model again. Until a task is judged it is interesting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from api_schemas.teachers import OMNIConfig
from teacher_service.teachers.base import JudgementRequest
from teacher_service.teachers.learning_progress import LPTeacher

INTERESTING, BORING = 1, 2
#: Most similarity entries computed at once (rows of new tasks x all tasks): bounds memory.
_BLOCK_ENTRIES = 4_000_000


def task_texts(space: Any) -> list[str]:
    """What a model reads of each task: its description, else its name."""
    return [t.description or t.name for t in space.tasks]


def similar_pairs(
    vectors: Any, new: Sequence[int], threshold: float
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` with ``i`` new, ``j != i`` and cosine >= ``threshold``, in
    both directions (``(j, i)`` too): similarity is symmetric. ``vectors`` are L2-normalised
    rows, dense or sparse. Computed in blocks of new rows, so memory stays bounded; the time
    is that of ``len(new) x n`` dot products."""
    n = vectors.shape[0]
    new = np.asarray(new, dtype=np.int64)
    block = max(1, _BLOCK_ENTRIES // max(n, 1))
    found_i, found_j, found_s = [], [], []
    for start in range(0, len(new), block):
        rows = new[start : start + block]
        sims = vectors[rows] @ vectors.T
        sims = sims.tocoo() if sparse.issparse(sims) else sparse.coo_matrix(np.asarray(sims))
        keep = (sims.data >= threshold) & (rows[sims.row] != sims.col)
        i, j = rows[sims.row[keep]], sims.col[keep].astype(np.int64)
        score = np.round(sims.data[keep].astype(np.float64), 6)
        found_i += [i, j]  # both directions
        found_j += [j, i]
        found_s += [score, score]
    if not found_i:
        return []
    i, j, score = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    # a pair of two new tasks is found from both sides: keep it once, in (i, j) order
    _, first = np.unique(i * n + j, return_index=True)
    return list(zip(i[first].tolist(), j[first].tolist(), score[first].tolist(), strict=True))


def tfidf_vectors(texts: list[str]) -> Any:
    """The texts' TF-IDF vectors, L2-normalised rows of a sparse matrix."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().fit_transform(texts)


def tfidf_similarity(texts: list[str]) -> np.ndarray:
    """Cosine similarities of the texts' TF-IDF vectors (an ``n`` x ``n`` matrix; for small
    sets and tests: the teacher itself only keeps the pairs above its threshold)."""
    vectors = tfidf_vectors(texts)
    return (vectors @ vectors.T).toarray()


def moi_walk(success: np.ndarray, given: Any) -> tuple[np.ndarray, np.ndarray]:
    """OMNI's walk: per task, ``INTERESTING`` or ``BORING``, and the task it was judged
    against (itself when interesting). ``given[i, j]`` non-zero: ``i`` is not interesting
    given ``j`` (a dense or sparse ``n`` x ``n`` matrix). Ties in success are walked in task
    order. Linear in the tasks plus the pairs."""
    n = len(success)
    cols = sparse.csc_matrix(given, shape=(n, n))
    cols.eliminate_zeros()
    label = np.zeros(n, dtype=np.int64)
    against = np.arange(n)
    for j in np.argsort(-success, kind="stable"):
        if label[j]:
            continue
        label[j] = INTERESTING
        rows = cols.indices[cols.indptr[j] : cols.indptr[j + 1]]
        boring = rows[label[rows] == 0]
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
        n = len(self.names)
        self.label_ = np.full(n, INTERESTING)
        self.against_ = np.arange(n)
        self.judged_ = np.zeros(n, dtype=bool)
        # the model's judgements: edge_i_[k] is not interesting given edge_j_[k]
        self.edge_i_ = np.zeros(0, dtype=np.int64)
        self.edge_j_ = np.zeros(0, dtype=np.int64)
        self.edge_score_ = np.zeros(0)  # the similarity; NaN for a language model's answer
        self.answers_: dict[int, str] = {}
        self._judge_locally(range(n))

    # ------------------------------------------------------------------ the model
    def _judge_locally(self, new: Sequence[int]) -> None:
        """``tfidf`` judges at once, here (a function of the space as it is now)."""
        if self.config.model != "tfidf" or not len(new):
            return
        pairs = similar_pairs(
            tfidf_vectors(task_texts(self.space)), list(new), self.config.threshold()
        )
        self.judge({"model": "tfidf", "tasks": list(new), "pairs": pairs})

    def judgement_request(self) -> JudgementRequest | None:
        """The tasks not judged yet, for the ``embedding`` and ``llm`` models."""
        if self.config.model == "tfidf" or self.judged_.all():
            return None
        return JudgementRequest(
            model=self.config.model,
            tasks=tuple(int(i) for i in np.flatnonzero(~self.judged_)),
            names=tuple(self.names),
            texts=tuple(task_texts(self.space)),
            success=tuple(None if np.isnan(p) else float(p) for p in self.fast_),
            similarity=self.config.threshold(),
            neighbours=self.config.neighbours,
        )

    def judge(self, judgement: Mapping[str, Any]) -> None:
        """Apply the model's judgements of some tasks (``tasks``: their indices; ``pairs``:
        ``[i, j, score]``, ``i`` not interesting given ``j``, score None for a language
        model; ``answers``: ``[i, text]``, the model's words). Tasks already judged keep
        their judgements. The labels follow at once, the weights at the next round.

        Raises:
            ValueError: another model's judgement, or indices outside the space.
        """
        if judgement.get("model") != self.config.model:
            raise ValueError(
                f"a judgement of model {judgement.get('model')!r} for an omni teacher "
                f"using {self.config.model!r}"
            )
        n = len(self.names)
        tasks = np.array([int(i) for i in judgement.get("tasks", [])], dtype=np.int64)
        pairs = [(int(i), int(j), s) for i, j, s in judgement.get("pairs", [])]
        answers = [(int(i), str(text)) for i, text in judgement.get("answers", [])]
        used = [*tasks.tolist(), *(x for i, j, _ in pairs for x in (i, j))]
        used += [i for i, _ in answers]
        if any(not 0 <= i < n for i in used):
            raise ValueError(f"a judgement names tasks outside the space of {n}")
        fresh = set(tasks[~self.judged_[tasks]].tolist()) if len(tasks) else set()
        # only pairs about a task judged now: a late repeat of a judgement changes nothing
        pairs = [(i, j, s) for i, j, s in pairs if i in fresh or j in fresh]
        self.judged_[list(fresh)] = True
        self.answers_.update((i, text) for i, text in answers if i in fresh)
        if pairs:
            i, j, s = zip(*pairs, strict=True)
            self.edge_i_ = np.concatenate([self.edge_i_, np.array(i, dtype=np.int64)])
            self.edge_j_ = np.concatenate([self.edge_j_, np.array(j, dtype=np.int64)])
            score = np.array([np.nan if x is None else float(x) for x in s])
            self.edge_score_ = np.concatenate([self.edge_score_, score])
        self._walk()

    def _given(self) -> sparse.csc_matrix:
        n = len(self.names)
        ones = np.ones(len(self.edge_i_), dtype=bool)
        return sparse.csc_matrix((ones, (self.edge_i_, self.edge_j_)), shape=(n, n))

    def _walk(self) -> None:
        self.label_, self.against_ = moi_walk(np.nan_to_num(self.fast_), self._given())

    # ------------------------------------------------------------------ the loop
    def add_tasks(self, space: Any, tasks: Sequence[Any]) -> None:
        """A new task is judged when it arrives (it is walked last, having no success yet);
        until the judgement, it is interesting."""
        first = len(self.names)
        super().add_tasks(space, tasks)
        k = len(self.names) - first
        self.label_ = np.concatenate([self.label_, np.full(k, INTERESTING)])
        self.against_ = np.concatenate([self.against_, np.arange(first, first + k)])
        self.judged_ = np.concatenate([self.judged_, np.zeros(k, dtype=bool)])
        self._judge_locally(range(first, first + k))

    def _finish_round(self) -> None:
        super()._finish_round()
        self._walk()
        w = np.where(
            self.label_ == BORING, self.weights_ * self.config.boring_weight, self.weights_
        )
        self.weights_ = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))

    # ------------------------------------------------------------------ view, state
    def view(self) -> dict[str, Any]:
        """The ``lp`` view, each task also saying interesting or boring, and why: the task
        it was judged against and the similarity, or the model's answer."""
        view = super().view()
        # the score of the pair that made each boring task boring (vectorised: the view is
        # asked for on every dashboard frame, and pairs can number millions)
        why = (self.label_[self.edge_i_] == BORING) & (self.edge_j_ == self.against_[self.edge_i_])
        score = dict(zip(self.edge_i_[why].tolist(), self.edge_score_[why].tolist(), strict=True))
        for i, task in enumerate(view["tasks"]):
            j = int(self.against_[i])
            boring = self.label_[i] == BORING
            s = score.get(i) if boring else None
            task["interesting"] = not boring
            task["judged"] = bool(self.judged_[i])
            task["judged_against"] = self.names[j] if boring else None
            task["similarity"] = None if s is None or np.isnan(s) else s
            task["answer"] = self.answers_.get(i)
        view["model"] = self.config.model
        view["unjudged"] = int((~self.judged_).sum())
        return view

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "label": self.label_.copy(),
            "against": self.against_.copy(),
            "judged": self.judged_.copy(),
            "edges": np.stack([self.edge_i_, self.edge_j_]),
            "edge_score": self.edge_score_.copy(),
            "answers": [[i, text] for i, text in sorted(self.answers_.items())],
        }

    def _load_extra_state(self, state: Any) -> None:
        super()._load_extra_state(state)
        self.label_ = np.array(state["label"], dtype=np.int64)
        self.against_ = np.array(state["against"], dtype=np.int64)
        self.judged_ = np.array(state["judged"], dtype=bool)
        edges = np.array(state["edges"], dtype=np.int64).reshape(2, -1)
        self.edge_i_, self.edge_j_ = edges[0].copy(), edges[1].copy()
        self.edge_score_ = np.array(state["edge_score"], dtype=np.float64)
        self.answers_ = {int(i): str(text) for i, text in state["answers"]}
