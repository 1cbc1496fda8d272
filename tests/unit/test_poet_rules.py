"""POET's decision rules against hand-computed cases, the reference code's crashing corners
included (empty archive, a single environment, descriptors of different lengths)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from teacher_service.teachers.poet_rules import (
    annecs_counts,
    centered_ranks,
    epoet_transfer_winner,
    knn_novelty,
    pad_to,
    passes_minimal_criterion,
    pata_ec,
    rank_for_admission,
    transfer_winner,
)


def test_the_minimal_criterion_includes_its_bounds() -> None:
    assert passes_minimal_criterion(0.1, 0.1, 0.9) and passes_minimal_criterion(0.9, 0.1, 0.9)
    assert not passes_minimal_criterion(0.05, 0.1, 0.9)
    assert not passes_minimal_criterion(0.95, 0.1, 0.9)


def test_knn_novelty_by_hand() -> None:
    archive = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    # distances from (0, 0): 0, 5, 10, 1 -> the 3 nearest 0, 1, 5 -> mean 2
    assert knn_novelty(np.zeros(2), archive, k=3) == pytest.approx(2.0)
    assert knn_novelty(np.zeros(2), archive, k=10) == pytest.approx(4.0)  # all 4
    assert knn_novelty(np.zeros(2), np.zeros((0, 2)), k=5) == math.inf  # empty archive
    with pytest.raises(ValueError, match="size 3"):
        knn_novelty(np.zeros(3), archive, k=1)
    with pytest.raises(ValueError, match="k must be"):
        knn_novelty(np.zeros(2), archive, k=0)


def test_centered_ranks_and_pata_ec_by_hand() -> None:
    np.testing.assert_allclose(centered_ranks([3.0, 1.0, 2.0]), [0.5, -0.5, 0.0])
    np.testing.assert_allclose(centered_ranks([1.0, 1.0]), [-0.5, 0.5])  # ties in order
    assert centered_ranks([7.0]).tolist() == [0.0]  # the reference divides by 0 here
    # scores clipped to the criterion [0.1, 0.9] first: 0.0 and 0.05 tie at 0.1
    np.testing.assert_allclose(
        pata_ec([0.95, 0.0, 0.5, 0.05, 0.9], 0.1, 0.9), [0.25, -0.5, 0.0, -0.25, 0.5]
    )


def test_descriptors_grow_by_their_last_element() -> None:
    padded = pad_to([np.array([0.5, -0.5]), np.array([-0.5, 0.0, 0.5])], 3)
    np.testing.assert_allclose(padded, [[0.5, -0.5, -0.5], [-0.5, 0.0, 0.5]])
    assert pad_to([], 3).shape == (0, 3)
    with pytest.raises(ValueError, match="size 4"):
        pad_to([np.zeros(4)], 3)


def test_admission_takes_the_most_novel_first_and_at_most_max_admitted() -> None:
    assert rank_for_admission([0.2, 0.9, 0.5, 0.9], max_admitted=1) == [1]
    assert rank_for_admission([0.2, 0.9, 0.5, 0.9], max_admitted=3) == [1, 3, 2]
    assert rank_for_admission([math.inf, 1.0], max_admitted=2) == [0, 1]
    assert rank_for_admission([], max_admitted=1) == []


def test_transfer_only_when_strictly_better() -> None:
    assert transfer_winner(0.5, [0.4, 0.7, 0.7]) == 1  # the first of the best
    assert transfer_winner(0.7, [0.4, 0.7]) is None  # equal is not better
    assert transfer_winner(0.5, []) is None
    # Enhanced POET: direct must beat the best recent self-evaluation (0.6), then fine-tuned
    recent = [0.5, 0.6, 0.55]
    assert epoet_transfer_winner(recent, direct=[0.65, 0.9], fine_tuned=[0.8, 0.7]) == 0
    assert epoet_transfer_winner(recent, direct=[0.6, 0.5], fine_tuned=[0.9, 0.9]) is None
    assert epoet_transfer_winner(recent, direct=[0.7], fine_tuned=[0.6]) is None
    with pytest.raises(ValueError, match="self-evaluation"):
        epoet_transfer_winner([], [0.7], [0.8])


def test_annecs_counts_admitted_envs_the_archive_can_still_learn() -> None:
    # admitted envs scored by the archive's best agent: too hard, fine, trivial, fine
    assert annecs_counts([0.0, 0.5, 1.0, 0.2], low=0.1, high=0.9) == 2
    assert annecs_counts([], low=0.1, high=0.9) == 0
