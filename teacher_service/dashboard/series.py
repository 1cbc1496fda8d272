"""Bounded, downsampled time series for the dashboard.

A long or fast experiment produces millions of reports; the browser must get a few
hundred points. :class:`ReportSeries` keeps at most ``capacity`` points by merging
neighbours pairwise whenever it overflows (each point then summarises twice as many
reports), so memory and the cost of a frame stay bounded whatever the run length, and
every report still counts in exactly one point. :class:`RateWindow` gives throughput over
the last seconds of the log.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from api_schemas.dashboard import EvaluationSeries, ProgressSeries


@dataclass(slots=True)
class _Point:
    """Sums over a run of consecutive reports (sums, not means, so points merge exactly)."""

    t: float
    reports: int  # cumulative at the point's end
    tasks: int  # cumulative at the point's end
    n: int = 0
    return_sum: float = 0.0
    success_known: int = 0
    success: int = 0

    def absorb(self, later: _Point) -> None:
        """Fold the next point into this one (this one then ends where ``later`` ends)."""
        self.t, self.reports, self.tasks = later.t, later.reports, later.tasks
        self.n += later.n
        self.return_sum += later.return_sum
        self.success_known += later.success_known
        self.success += later.success


class ReportSeries:
    """The report stream as at most ``capacity`` points of consecutive reports.

    Args:
        capacity: most points kept (even, >= 2); the series halves itself beyond it.
    """

    def __init__(self, capacity: int = 2048) -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even number >= 2, got {capacity}")
        self.capacity = capacity
        self.bucket = 1  # reports per closed point (doubles at each halving)
        self.points: list[_Point] = []
        self.reports = 0
        self.tasks = 0

    def add_tasks(self, n: int) -> None:
        """Count ``n`` issued tasks (they show in the next point's cumulative count)."""
        self.tasks += n

    def add_reports(self, t: float, returns: list[float], successes: list[bool | None]) -> None:
        """Fold one batch of reports logged at time ``t``.

        A batch goes whole into the open point, which closes once it holds ``bucket``
        reports: batches are never split, so a point may hold a little more.
        """
        if not returns:
            return
        self.reports += len(returns)
        known = [s for s in successes if s is not None]
        if self.points and self.points[-1].n < self.bucket:
            p = self.points[-1]
            p.t, p.reports, p.tasks = t, self.reports, self.tasks
        else:
            p = _Point(t=t, reports=self.reports, tasks=self.tasks)
            self.points.append(p)
        p.n += len(returns)
        p.return_sum += math.fsum(returns)
        p.success_known += len(known)
        p.success += sum(known)
        if len(self.points) > self.capacity:
            self._halve()

    def _halve(self) -> None:
        merged = []
        for i in range(0, len(self.points) - 1, 2):
            a, b = self.points[i], self.points[i + 1]
            a.absorb(b)
            merged.append(a)
        if len(self.points) % 2:
            merged.append(self.points[-1])
        self.points = merged
        self.bucket *= 2

    def export(self, max_points: int) -> ProgressSeries:
        """The series with at most ``max_points`` points (consecutive points merged)."""
        group = max(1, math.ceil(len(self.points) / max(1, max_points)))
        out = ProgressSeries(bucket=self.bucket * group)
        for i in range(0, len(self.points), group):
            chunk = self.points[i : i + group]
            acc = _Point(t=chunk[0].t, reports=chunk[0].reports, tasks=chunk[0].tasks)
            for p in chunk:
                acc.absorb(p)
            out.t.append(acc.t)
            out.reports.append(acc.reports)
            out.tasks.append(acc.tasks)
            out.mean_return.append(acc.return_sum / acc.n)
            out.success_rate.append(acc.success / acc.success_known if acc.success_known else None)
        return out


class RateWindow:
    """Events per second over the last ``window_s`` seconds.

    Args:
        window_s: length of the window in seconds.
        max_entries: most entries kept (the oldest go first; bounds memory at any rate).
    """

    def __init__(self, window_s: float = 10.0, max_entries: int = 20_000) -> None:
        self.window_s = window_s
        self.entries: deque[tuple[float, int, int]] = deque(maxlen=max_entries)

    def add(self, t: float, tasks: int, reports: int) -> None:
        """Record ``tasks`` issued and ``reports`` accepted at time ``t``."""
        self.entries.append((t, tasks, reports))

    def rates(self, now: float) -> tuple[float, float]:
        """(tasks/s, reports/s) over ``(now - window_s, now]``."""
        start = now - self.window_s
        while self.entries and self.entries[0][0] <= start:
            self.entries.popleft()
        tasks = sum(e[1] for e in self.entries)
        reports = sum(e[2] for e in self.entries)
        return tasks / self.window_s, reports / self.window_s


class EvaluationTrack:
    """One environment's held-out results, thinned to at most ``capacity`` points.

    Args:
        env: the environment (test maze) name.
        capacity: most points kept (even); beyond it every other point is dropped.
    """

    def __init__(self, env: str, capacity: int = 2048) -> None:
        self.env = env
        self.capacity = capacity
        self.rows: list[tuple[float, int | None, float, float]] = []

    def add(self, t: float, env_steps: int | None, solve_rate: float, mean_return: float) -> None:
        """Append one result."""
        self.rows.append((t, env_steps, solve_rate, mean_return))
        if len(self.rows) > self.capacity:
            # Evaluations are already averages over episodes: thinning keeps the curve's
            # shape, and the newest result is always kept.
            self.rows = self.rows[-1::-2][::-1]

    def export(self, max_points: int) -> EvaluationSeries:
        """The track with at most ``max_points`` points (evenly thinned, newest kept)."""
        stride = max(1, math.ceil(len(self.rows) / max(1, max_points)))
        rows = self.rows[::-1][::stride][::-1]
        return EvaluationSeries(
            env=self.env,
            t=[r[0] for r in rows],
            env_steps=[r[1] for r in rows],
            solve_rate=[r[2] for r in rows],
            mean_return=[r[3] for r in rows],
        )
