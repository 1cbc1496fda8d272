"""The incremental exact nearest-neighbour index behind ALP (teachers/nearest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from teacher_service.teachers.nearest import NearestIndex, _sq_dist


def brute_force(points: np.ndarray, x: np.ndarray) -> int:
    """Reference answer: smallest squared distance, then smallest index."""
    return int(np.argmin(_sq_dist(points, x)))  # argmin returns the first minimum


def tie_heavy_point(rng: np.random.Generator, d: int) -> np.ndarray:
    """Half coarse-grid points (duplicates, equidistant ties), half continuous ones."""
    if rng.random() < 0.5:
        return rng.integers(0, 4, d) / 4.0
    return rng.random(d)


def test_empty_index_answers_none() -> None:
    idx = NearestIndex(2)
    assert len(idx) == 0
    assert idx.query([0.5, 0.5]) is None
    assert idx.query_add([0.5, 0.5], 1.0) is None
    assert idx.query([0.0, 0.0]) == (0, 1.0)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize(("buffer_size", "growth"), [(1, 2), (4, 2), (3, 3), (8, 8), (256, 8)])
def test_matches_brute_force_across_merges(d: int, buffer_size: int, growth: int) -> None:
    rng = np.random.default_rng(100 * d + buffer_size + growth)
    idx = NearestIndex(d, buffer_size=buffer_size, growth=growth)
    seen: list[np.ndarray] = []
    for t in range(1200):
        p, q = tie_heavy_point(rng, d), tie_heavy_point(rng, d)
        if seen:
            pts = np.array(seen)
            expected = brute_force(pts, q)
            assert idx.query(q) == (expected, float(expected)), f"step {t}"
            assert idx.query_add(p, float(t)) == (brute_force(pts, p), float(brute_force(pts, p)))
        else:
            assert idx.query_add(p, float(t)) is None
        seen.append(p)
    assert len(idx) == 1200
    assert idx.n_distinct < 1200  # the grid half produced duplicates
    if buffer_size < 256:
        assert idx.n_trees >= 1  # merges happened


def test_ties_go_to_the_smallest_index() -> None:
    idx = NearestIndex(2, buffer_size=2, growth=2)  # ties spread over trees and buffer
    for point, value in [
        ([1.0, 0.0], 10.0),
        ([0.0, 1.0], 11.0),
        ([0.0, 0.0], 12.0),
        ([0.0, 0.0], 13.0),  # exact duplicate
        ([1.0, 1.0], 14.0),
        ([-0.0, 0.0], 15.0),  # -0.0 is the same point
    ]:
        idx.add(point, value)
    assert idx.query([0.5, 0.5]) == (0, 10.0)  # five points at equal distance
    assert idx.query([0.0, 0.0]) == (2, 12.0)
    assert idx.query([0.1, 0.1]) == (2, 12.0)
    assert idx.query([0.0, 2.0]) == (1, 11.0)
    assert idx.n_distinct == 4
    assert idx.values.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]


def test_many_duplicates_at_a_corner() -> None:
    idx = NearestIndex(2, buffer_size=16, growth=2)
    rng = np.random.default_rng(0)
    for i in range(2000):
        corner = rng.random() < 0.7
        idx.add([0.0, 0.0] if corner else rng.random(2), float(i))
    first_corner = int(np.flatnonzero((idx.points == 0.0).all(axis=1))[0])
    assert idx.query([0.0, 0.0]) == (first_corner, float(first_corner))
    assert idx.n_distinct < 700  # the corner copies stay out of the search structure


def test_answers_do_not_depend_on_the_layout() -> None:
    rng = np.random.default_rng(3)
    layouts = [NearestIndex(2, b, g) for b, g in [(1, 2), (5, 2), (7, 4), (64, 8)]]
    queries = [tie_heavy_point(rng, 2) for _ in range(300)]
    for i in range(600):
        p = tie_heavy_point(rng, 2)
        for idx in layouts:
            idx.add(p, float(i))
    answers = [[idx.query(q) for q in queries] for idx in layouts]
    assert all(a == answers[0] for a in answers[1:])


@pytest.mark.parametrize(("buffer_size", "growth"), [(4, 2), (3, 3), (8, 8)])
def test_rebuild_from_arrays_is_the_same_index(buffer_size: int, growth: int) -> None:
    rng = np.random.default_rng(7)
    idx = NearestIndex(3, buffer_size=buffer_size, growth=growth)
    for _ in range(777):
        idx.add(tie_heavy_point(rng, 3), float(rng.random()))
    state = idx.export()
    copy = NearestIndex.from_arrays(state["points"], state["values"], buffer_size, growth)

    def layout(ix: NearestIndex) -> list:
        levels = [None if lv is None else lv.ids.tolist() for lv in ix._levels]
        return [levels, ix._buf_ids[: ix._buf_n].tolist(), ix.n_distinct]

    assert layout(copy) == layout(idx)
    for _ in range(200):
        q = tie_heavy_point(rng, 3)
        assert copy.query(q) == idx.query(q)
    # Both keep growing identically.
    for i in range(300):
        p = tie_heavy_point(rng, 3)
        assert copy.query_add(p, float(i)) == idx.query_add(p, float(i))
    assert layout(copy) == layout(idx)


def test_export_returns_copies_and_views_are_read_only() -> None:
    idx = NearestIndex(2)
    idx.add([0.2, 0.3], 1.0)
    state = idx.export()
    state["points"][0] = 9.0
    state["values"][0] = 9.0
    assert idx.query([0.2, 0.3]) == (0, 1.0)
    assert idx.points.tolist() == [[0.2, 0.3]]
    with pytest.raises(ValueError):
        idx.points[0, 0] = 1.0


def test_capacity_grows() -> None:
    idx = NearestIndex(1, buffer_size=4)
    for i in range(1000):
        idx.add([i / 1000.0], float(i))
    assert len(idx) == 1000
    assert idx.query([0.5004]) == (500, 500.0)
    assert idx.query([2.0]) == (999, 999.0)


def test_empty_rebuild() -> None:
    idx = NearestIndex.from_arrays(np.empty((0, 2)), np.empty(0))
    assert idx.query([0.1, 0.1]) is None


@pytest.mark.parametrize(
    ("point", "value", "match"),
    [
        ([0.1], 0.0, "shape"),
        ([0.1, 0.2, 0.3], 0.0, "shape"),
        ([np.nan, 0.2], 0.0, "finite"),
        ([0.1, np.inf], 0.0, "finite"),
        ([0.1, 0.2], np.nan, "finite"),
    ],
)
def test_bad_inputs_are_rejected(point: list[float], value: float, match: str) -> None:
    idx = NearestIndex(2)
    with pytest.raises(ValueError, match=match):
        idx.add(point, value)
    assert len(idx) == 0


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="ndim"):
        NearestIndex(0)
    with pytest.raises(ValueError, match="buffer_size"):
        NearestIndex(2, buffer_size=0)
    with pytest.raises(ValueError, match="growth"):
        NearestIndex(2, growth=1)
    with pytest.raises(ValueError, match="values"):
        NearestIndex.from_arrays(np.zeros((3, 2)), np.zeros(2))
