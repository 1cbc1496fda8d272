"""The decision rules of POET (Wang et al. 2019) and Enhanced POET (Wang et al. 2020), as
plain functions over numbers: what the ``poet`` teacher decides at each step of its loop
(docs/algorithms.md#poet-rules).

- **Minimal criterion**: a child environment is kept only if the parent's agent scores within
  ``[low, high]`` on it: neither too easy nor too hard.
- **Novelty**: the mean distance of an environment's descriptor to its ``k`` nearest
  neighbours in the archive of every environment ever admitted. The descriptor is the
  environment's encoding (POET: its parameter vector) or, with PATA-EC (Enhanced POET), the
  centred ranks of every agent's score on it, clipped to the minimal-criterion bounds.
- **Admission**: children that pass the criterion are ranked by novelty (most novel first,
  ties in the order they were made) and at most ``max_admitted`` join per round.
- **Transfer**: a target environment adopts another agent only when that agent scores
  *strictly* better there than its incumbent; Enhanced POET first asks the direct score to beat
  the best of the incumbent's recent self-evaluations, then adopts the fine-tuned agent.
- **ANNECS**: the count goes up by one when an admitted environment also passes the minimal
  criterion with the best agent of the archive, i.e. it is new and still solvable but not
  trivial for what has been learned.

The reference code crashes or returns NaN in three corners that these rules define instead:
novelty against an empty archive (infinite: every child is as novel as can be), centred ranks
of a single value (0, not ``x / 0``), and PATA-EC descriptors of different lengths (padded with
their last element, as the paper's code intends).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def passes_minimal_criterion(score: float, low: float, high: float) -> bool:
    """Whether ``score`` lies within the minimal criterion ``[low, high]`` (bounds included)."""
    return low <= score <= high


def knn_novelty(descriptor: np.ndarray, archive: np.ndarray, k: int) -> float:
    """Mean Euclidean distance from ``descriptor`` to its ``k`` nearest rows of ``archive``
    (all of them when there are fewer); ``inf`` for an empty archive.

    Raises:
        ValueError: ``k < 1`` or descriptors of different sizes.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    archive = np.asarray(archive, dtype=np.float64)
    if archive.size == 0:
        return float("inf")
    archive = archive.reshape(len(archive), -1)
    descriptor = np.asarray(descriptor, dtype=np.float64).ravel()
    if archive.shape[1] != descriptor.size:
        raise ValueError(
            f"descriptor of size {descriptor.size} against an archive of size {archive.shape[1]}"
        )
    distances = np.sort(np.linalg.norm(archive - descriptor, axis=1))
    return float(distances[:k].mean())


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` scaled to ``[-0.5, 0.5]`` (ties ranked in order of appearance); a
    single value ranks 0."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = len(values)
    ranks = np.empty(n)
    ranks[np.argsort(values, kind="stable")] = np.arange(n)
    return ranks / (n - 1) - 0.5 if n > 1 else np.zeros(n)


def pata_ec(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """PATA-EC descriptor of an environment: every agent's score on it, clipped to the
    minimal-criterion bounds, as centred ranks."""
    return centered_ranks(np.clip(np.asarray(scores, dtype=np.float64), low, high))


def pad_to(descriptors: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Descriptors made ``size`` long by repeating their last element (PATA-EC vectors grow
    as agents join), stacked as rows.

    Raises:
        ValueError: an empty descriptor, or one longer than ``size``.
    """
    rows = []
    for d in descriptors:
        d = np.asarray(d, dtype=np.float64).ravel()
        if d.size == 0 or d.size > size:
            raise ValueError(f"cannot pad a descriptor of size {d.size} to {size}")
        rows.append(np.concatenate([d, np.full(size - d.size, d[-1])]))
    return np.stack(rows) if rows else np.zeros((0, size))


def rank_for_admission(novelty: Sequence[float], max_admitted: int) -> list[int]:
    """Indices of the children to admit: the most novel first (ties in the order they were
    made), at most ``max_admitted`` of them. Only children that passed the minimal criterion
    are given here."""
    order = sorted(range(len(novelty)), key=lambda i: (-novelty[i], i))
    return order[:max_admitted]


def transfer_winner(incumbent: float, candidates: Sequence[float]) -> int | None:
    """POET's transfer: the best-scoring candidate agent (direct or fine-tuned scores on the
    target environment), adopted if it scores strictly better than the incumbent; None to
    keep the incumbent. Ties between candidates go to the first."""
    if not candidates:
        return None
    best = int(np.argmax(candidates))  # the first of the best
    return best if candidates[best] > incumbent else None


def epoet_transfer_winner(
    recent_self: Sequence[float], direct: Sequence[float], fine_tuned: Sequence[float]
) -> int | None:
    """Enhanced POET's transfer: a candidate qualifies when its *direct* score beats the best
    of the incumbent's recent self-evaluations; among those, the best *fine-tuned* one is
    adopted if it beats that bar too. None to keep the incumbent.

    Raises:
        ValueError: ``direct`` and ``fine_tuned`` of different lengths, or no self-evaluation.
    """
    if len(direct) != len(fine_tuned):
        raise ValueError("one direct and one fine-tuned score per candidate")
    if not recent_self:
        raise ValueError("the incumbent needs at least one self-evaluation")
    bar = max(recent_self)
    qualified = [i for i, d in enumerate(direct) if d > bar]
    if not qualified:
        return None
    best = max(qualified, key=lambda i: (fine_tuned[i], -i))
    return best if fine_tuned[best] > bar else None


def annecs_counts(admitted_best_archive_scores: Sequence[float], low: float, high: float) -> int:
    """How much ANNECS grows in a round: the admitted environments on which the best agent of
    the archive passes the minimal criterion."""
    return sum(passes_minimal_criterion(s, low, high) for s in admitted_best_archive_scores)
