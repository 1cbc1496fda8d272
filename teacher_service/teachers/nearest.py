"""Incremental exact nearest-neighbour index (the "nearest previously seen task" of ALP).

ALP-GMM (docs/algorithms.md#alp-gmm-covar-gmm-and-riac) needs, for every finished episode, the
nearest earlier task. The reference implementation rebuilds a KD-tree over the whole history at
every update, so its cost grows with the history. This index uses the logarithmic method of
Bentley & Saxe (1980) in its "one tree per level" form:

* the newest points sit in a small brute-force buffer (``buffer_size`` rows);
* older points live in at most one ``scipy.spatial.cKDTree`` per level; level ``i`` holds
  a multiple of ``buffer_size * growth**i`` points, fewer than ``buffer_size * growth**(i+1)``.
  When the buffer fills it is merged into level 0, and a level that reaches its capacity is
  merged into the next one (one tree is rebuilt per carry, synchronously).

The layout is a pure function of the number of stored points (the level sizes are the
base-``growth`` digits of ``n_points // buffer_size``), so the index rebuilt from its exported
arrays is the same index. Amortised insertion cost is
``O(growth * log_growth(n) * log n)`` and a query visits at most ``log_growth(n / buffer_size)``
trees plus the buffer.

Answers are exact and never depend on the layout: the distance is always recomputed here
with one fixed formula (squared differences summed coordinate by coordinate, left to right),
and ties are broken by the smallest insertion index. Exact duplicates of an earlier point are
stored (they keep their index and value) but not inserted into the search structure: they
can never win a tie against the earlier copy, and leaving them out keeps queries at
duplicated points (e.g. tasks clipped to a corner of the cube) cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

#: Relative slack used when asking a tree for near-ties: cKDTree rounds distances differently
#: from :func:`_sq_dist`, so every point within this factor of the tree's best is re-checked.
_TIE_SLACK = 1e-9
_TINY = 1e-300


def _sq_dist(rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of ``rows`` (m, d) to ``x`` (d,), in one fixed order.

    The coordinates are accumulated left to right, so a point's distance does not depend
    on which other rows it is computed with (unlike a pairwise-summed reduction).
    """
    diff = rows[:, 0] - x[0]
    acc = diff * diff
    for j in range(1, x.shape[0]):
        diff = rows[:, j] - x[j]
        acc += diff * diff
    return acc


@dataclass(slots=True)
class _Level:
    """One KD-tree over a contiguous run of the index's search points."""

    size: int
    points: np.ndarray  # (size, d), the tree's data
    ids: np.ndarray  # (size,) insertion indices, ascending
    tree: cKDTree


class NearestIndex:
    """Exact incremental 1-nearest-neighbour search with a float value per point.

    Args:
        ndim: dimension ``d`` of the points.
        buffer_size: newest distinct points kept in the brute-force buffer (default 1024).
        growth: ratio between consecutive level capacities (default 32; 2 gives the classic
            binary Bentley-Saxe structure, with more trees per query but cheaper merges).
            Each ``cKDTree.query`` costs ~15-20 us of fixed overhead, so few large trees win:
            with the defaults a query visits at most two trees up to ~10^6 points.

    Example:
        >>> idx = NearestIndex(2)
        >>> idx.query([0.5, 0.5]) is None
        True
        >>> idx.add([0.1, 0.2], 1.0)
        0
        >>> idx.query([0.0, 0.0])
        (0, 1.0)
    """

    def __init__(self, ndim: int, buffer_size: int = 1024, growth: int = 32) -> None:
        if ndim < 1:
            raise ValueError(f"ndim must be >= 1, got {ndim}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if growth < 2:
            raise ValueError(f"growth must be >= 2, got {growth}")
        self.ndim = ndim
        self.buffer_size = buffer_size
        self.growth = growth
        # Every point ever added, in insertion order (growable: capacity doubles).
        self._points = np.empty((16, ndim), dtype=np.float64)
        self._values = np.empty(16, dtype=np.float64)
        self._n = 0
        # Search structure over the distinct points only: levels (index 0 = newest,
        # smallest) and the brute-force buffer of the newest distinct points.
        self._levels: list[_Level | None] = []
        self._buf_points = np.empty((buffer_size, ndim), dtype=np.float64)
        self._buf_ids = np.empty(buffer_size, dtype=np.int64)
        self._buf_n = 0
        self._n_distinct = 0

    # ------------------------------------------------------------------ public API

    def __len__(self) -> int:
        return self._n

    @property
    def points(self) -> np.ndarray:
        """Read-only view of every point added, shape (n, d), in insertion order."""
        view = self._points[: self._n]
        view.flags.writeable = False
        return view

    @property
    def values(self) -> np.ndarray:
        """Read-only view of the values, shape (n,), in insertion order."""
        view = self._values[: self._n]
        view.flags.writeable = False
        return view

    @property
    def n_distinct(self) -> int:
        """Number of distinct points (the ones in the search structure)."""
        return self._n_distinct

    @property
    def n_trees(self) -> int:
        """Number of KD-trees a query currently visits."""
        return sum(lv is not None for lv in self._levels)

    def query(self, point: np.ndarray | list[float]) -> tuple[int, float] | None:
        """Nearest stored point to ``point``.

        Returns:
            ``(index, value)`` of the nearest point (insertion index; on equal distances the
            smallest index), or ``None`` when the index is empty.
        """
        x = self._check_point(point)
        best, _, _ = self._search(x)
        if best < 0:
            return None
        return best, float(self._values[best])

    def add(self, point: np.ndarray | list[float], value: float) -> int:
        """Store ``point`` with ``value``; returns its insertion index."""
        self.query_add(point, value)
        return self._n - 1

    def query_add(self, point: np.ndarray | list[float], value: float) -> tuple[int, float] | None:
        """:meth:`query` then :meth:`add` in one search (what ALP needs per episode).

        Returns:
            The answer :meth:`query` gave *before* the point was added.
        """
        x = self._check_point(point)
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"value must be finite, got {value!r}")
        best, _, has_equal = self._search(x)
        answer = None if best < 0 else (best, float(self._values[best]))
        self._store(x, v, distinct=not has_equal)
        return answer

    def export(self) -> dict[str, np.ndarray]:
        """Copies of the stored arrays: ``points`` (n, d) and ``values`` (n,)."""
        return {"points": self._points[: self._n].copy(), "values": self._values[: self._n].copy()}

    @classmethod
    def from_arrays(
        cls,
        points: np.ndarray,
        values: np.ndarray,
        buffer_size: int = 1024,
        growth: int = 32,
    ) -> NearestIndex:
        """Rebuild an index from :meth:`export`'s arrays.

        The result is the index that adding the points one by one would have built (same
        levels, same trees), at the cost of one sort and one tree build per level.
        """
        pts = np.asarray(points, dtype=np.float64)
        vals = np.asarray(values, dtype=np.float64)
        if pts.ndim != 2 or vals.shape != (pts.shape[0],):
            raise ValueError(
                f"points must be (n, d) and values (n,), got {pts.shape} and {vals.shape}"
            )
        if not (np.isfinite(pts).all() and np.isfinite(vals).all()):
            raise ValueError("points and values must be finite")
        index = cls(pts.shape[1], buffer_size=buffer_size, growth=growth)
        n = pts.shape[0]
        index._reserve(n)
        index._points[:n] = pts + 0.0  # + 0.0 turns -0.0 into 0.0, as add() does
        index._values[:n] = vals
        index._n = n
        if n == 0:
            return index
        # A point enters the search structure iff no earlier point has the same coordinates:
        # exactly the rule add() applies. Rows are compared bytewise (no -0.0 left).
        stored = np.ascontiguousarray(index._points[:n])
        rows = stored.view(np.dtype((np.void, stored.dtype.itemsize * stored.shape[1])))[:, 0]
        _, first = np.unique(rows, return_index=True)
        ids = np.sort(first).astype(np.int64)
        index._n_distinct = m = int(ids.shape[0])
        # Level i holds digit i (base growth) of m // buffer_size chunks; older points sit in
        # higher levels, so walk the digits from the top.
        chunks, digits = m // buffer_size, []
        while chunks:
            chunks, digit = divmod(chunks, growth)
            digits.append(digit)
        index._levels = [None] * len(digits)
        start = 0
        for level in range(len(digits) - 1, -1, -1):
            size = digits[level] * buffer_size * growth**level
            if size:
                index._levels[level] = index._build(ids[start : start + size])
                start += size
        nb = m - start
        index._buf_ids[:nb] = ids[start:]
        index._buf_points[:nb] = index._points[ids[start:]]
        index._buf_n = nb
        return index

    # ------------------------------------------------------------------ internals

    def _check_point(self, point: np.ndarray | list[float]) -> np.ndarray:
        x = np.asarray(point, dtype=np.float64)
        if x.shape != (self.ndim,):
            raise ValueError(f"point must have shape ({self.ndim},), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"point must be finite, got {x.tolist()}")
        return x + 0.0  # a copy, with -0.0 normalised so equal points are equal bytewise

    def _search(self, x: np.ndarray) -> tuple[int, float, bool]:
        """(best index or -1, its squared distance, whether an equal point is stored)."""
        best_sq, best_id, has_equal = np.inf, -1, False
        nb = self._buf_n
        if nb:
            sq = _sq_dist(self._buf_points[:nb], x)
            j = int(np.argmin(sq))  # first minimum = smallest id (the buffer is in id order)
            best_sq, best_id = float(sq[j]), int(self._buf_ids[j])
            if best_sq == 0.0:
                zero = sq == 0.0
                has_equal = bool((self._buf_points[:nb][zero] == x).all(axis=1).any())
        xl = x.tolist()
        for level in self._levels:
            if level is None:
                continue
            bound = np.inf if best_id < 0 else best_sq**0.5 * (1.0 + _TIE_SLACK) + _TINY
            dist, loc = level.tree.query(x, k=2, distance_upper_bound=bound)
            d0, d1 = float(dist[0]), float(dist[1])
            if d0 == np.inf:
                continue  # nothing within the bound: this level can neither win nor tie
            reach = d0 * (1.0 + _TIE_SLACK) + _TINY
            if d1 > reach:
                cand = [int(loc[0])]
            else:  # near-ties inside this tree: re-check all of them with our formula
                cand = sorted(level.tree.query_ball_point(x, reach))
            for c in cand:
                row = level.points[c].tolist()
                s = 0.0
                for a, b in zip(row, xl, strict=True):  # same order and rounding as _sq_dist
                    diff = a - b
                    s += diff * diff
                i = int(level.ids[c])
                if s < best_sq or (s == best_sq and i < best_id):
                    best_sq, best_id = s, i
                if s == 0.0 and not has_equal:
                    has_equal = row == xl
        return best_id, best_sq, has_equal

    def _reserve(self, n: int) -> None:
        cap = self._points.shape[0]
        if n <= cap:
            return
        while cap < n:
            cap *= 2
        points = np.empty((cap, self.ndim), dtype=np.float64)
        values = np.empty(cap, dtype=np.float64)
        points[: self._n] = self._points[: self._n]
        values[: self._n] = self._values[: self._n]
        self._points, self._values = points, values

    def _store(self, x: np.ndarray, value: float, distinct: bool) -> None:
        self._reserve(self._n + 1)
        i = self._n
        self._points[i] = x
        self._values[i] = value
        self._n += 1
        if not distinct:
            return  # an exact duplicate can never beat its earlier copy: not searched
        self._buf_points[self._buf_n] = x
        self._buf_ids[self._buf_n] = i
        self._buf_n += 1
        self._n_distinct += 1
        if self._buf_n == self.buffer_size:
            self._carry()

    def _carry(self) -> None:
        """Merge the full buffer into level 0, carrying full levels upwards."""
        ids = [self._buf_ids.copy()]  # newest last
        level = 0
        while True:
            if level == len(self._levels):
                self._levels.append(None)
            current = self._levels[level]
            if current is not None:
                ids.insert(0, current.ids)  # this level is older than what is carried
                self._levels[level] = None
            size = sum(a.shape[0] for a in ids)
            if size < self.buffer_size * self.growth ** (level + 1):
                break
            level += 1
        self._levels[level] = self._build(np.concatenate(ids))
        self._buf_n = 0

    def _build(self, ids: np.ndarray) -> _Level:
        points = self._points[ids]
        # Sliding-midpoint trees build about twice as fast as median-split ones and query
        # as fast on these data.
        tree = cKDTree(points, balanced_tree=False, compact_nodes=False, copy_data=False)
        return _Level(size=int(ids.shape[0]), points=points, ids=ids, tree=tree)
