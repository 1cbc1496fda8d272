"""The dashboard's picture of an experiment's past, folded incrementally from storage.

The history is read from the durable log (and the evaluations table), not kept by the
runtime: it survives restarts, covers events from before the last snapshot, and costs
the request path nothing. Each refresh reads only the events logged since the previous
one, so a page open on a fast experiment costs O(new events) per frame.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, assert_never

from api_schemas.dashboard import DashboardFrame, RecentLevel, Throughput
from teacher_service.dashboard.series import EvaluationTrack, RateWindow, ReportSeries
from teacher_service.event_log import (
    ExpireEvent,
    JudgementEvent,
    LoggedEvent,
    ReportEvent,
    SpaceEvent,
    TaskEvent,
    read_events,
)
from teacher_service.runtime import ExperimentRuntime
from teacher_service.spaces import level_of
from teacher_service.storage import Store
from teacher_service.teachers import TaskProposal

#: Points kept per series in memory (frames downsample further to what the page asks).
CAPACITY = 2048
#: Recently issued levels a frame shows.
RECENT_LEVELS = 8


class ExperimentHistory:
    """Counts, the report series, throughput and per-env evaluation tracks of one experiment.

    Args:
        store: where the log and the evaluations are read from.
        experiment_id: whose history.
        capacity: most points kept per series.
        window_s: throughput window in seconds.
        clock: wall clock (injectable for tests).
    """

    def __init__(
        self,
        store: Store,
        experiment_id: str,
        *,
        capacity: int = CAPACITY,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self.capacity = capacity
        self.clock = clock
        self.seq = 0  # last event folded
        self.evaluation_id = 0  # last evaluation row folded
        self.evaluations = 0
        self.expired = 0
        self.series = ReportSeries(capacity)
        self.rates = RateWindow(window_s)
        self.tracks: dict[str, EvaluationTrack] = {}
        # the last tasks issued with a level, or params a parametric generator builds one from
        self.recent: deque[tuple[int, TaskProposal]] = deque(maxlen=RECENT_LEVELS)
        self._built: dict[int, str] = {}  # levels built for the recent tasks, by index
        # Several pages may refresh the same history at once: one folds, the others wait.
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Fold whatever was logged since the last refresh. Returns True if anything was.

        Raises:
            EventLogError: at an event this version cannot read (everything before it is
                folded; the next refresh raises again there).
        """
        with self._lock:
            before = (self.seq, self.evaluation_id)
            for ev in read_events(self.store, self.experiment_id, after_seq=self.seq):
                self._fold_event(ev)
                self.seq = ev.seq
            for row_id, payload, t in self.store.iter_evaluations(
                self.experiment_id, after_id=self.evaluation_id
            ):
                e = json.loads(payload)
                track = self.tracks.get(e["env"])
                if track is None:
                    track = self.tracks[e["env"]] = EvaluationTrack(e["env"], self.capacity)
                track.add(t, e.get("env_steps"), float(e["solve_rate"]), float(e["mean_return"]))
                self.evaluation_id = row_id
                self.evaluations += 1
            return (self.seq, self.evaluation_id) != before

    def _fold_event(self, logged: LoggedEvent) -> None:
        t, ev = logged.time, logged.event
        match ev:
            case TaskEvent():
                self.series.add_tasks(len(ev.tasks))
                self.rates.add(t, len(ev.tasks), 0)
                tail = list(enumerate(ev.tasks, ev.first))[-RECENT_LEVELS:]
                self.recent.extend((i, p) for i, p in tail if p.level or p.params)
            case ReportEvent():
                self.series.add_reports(
                    t,
                    [r.episode_return for r in ev.reports],
                    [r.success for r in ev.reports],
                )
                self.rates.add(t, 0, len(ev.reports))
            case ExpireEvent():
                self.expired += len(ev.indices)
            case SpaceEvent() | JudgementEvent():
                pass  # the frame shows the runtime's current space and teacher view
            case _:
                assert_never(ev)

    def frame(self, rt: ExperimentRuntime, max_points: int) -> DashboardFrame:
        """One dashboard frame: this history as last refreshed (see :meth:`refresh`) plus
        the runtime's counters and its teacher's view. Call it from a worker thread."""
        state = rt.state()  # under the runtime's lock: a consistent teacher view
        with self._lock:
            now = self.clock()
            tasks_per_s, reports_per_s = self.rates.rates(now)
            return DashboardFrame(
                id=rt.id,
                name=rt.name,
                teacher_kind=state.teacher_kind,
                space=rt.space,
                hyperparameters=rt.spec.teacher.model_dump(mode="json"),
                seq=self.seq,
                time=now,
                counters=state.counters,
                throughput=Throughput(
                    tasks_per_s=tasks_per_s,
                    reports_per_s=reports_per_s,
                    window_s=self.rates.window_s,
                ),
                progress=self.series.export(max_points),
                evaluations=[self.tracks[env].export(max_points) for env in sorted(self.tracks)],
                teacher=state.teacher,
                recent_levels=self._recent_levels(rt.space),
                max_points=max_points,
            )

    def _recent_levels(self, space: Any) -> list[RecentLevel]:
        """The recent tasks' levels, newest first: as issued, or built from the params by a
        box space's parametric generator (none for other spaces)."""
        out = []
        built = {}
        for i, p in reversed(self.recent):
            # a built level is kept while its task is shown: every frame (each second, per
            # page) would otherwise build the same levels again
            level = p.level or self._built.get(i) or level_of(space, p.params)
            if level:
                built[i] = level
                out.append(
                    RecentLevel(
                        index=i,
                        level=level,
                        mode=p.mode.value,
                        params=p.params,
                        agent_id=p.agent_id,
                    )
                )
        self._built = built
        return out


class DashboardHub:
    """The histories of the experiments some page is watching, one per experiment, shared
    by every page (and made on first use).

    Args:
        store: the app's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._histories: dict[str, ExperimentHistory] = {}
        self._forgotten: set[str] = set()  # deleted experiments (ids are never reused)
        self._lock = threading.Lock()

    def history(self, experiment_id: str) -> ExperimentHistory:
        """The (shared) history of one experiment (not kept for a deleted one)."""
        with self._lock:
            h = self._histories.get(experiment_id)
            if h is None:
                h = ExperimentHistory(self.store, experiment_id)
                if experiment_id not in self._forgotten:
                    self._histories[experiment_id] = h
            return h

    def forget(self, experiment_id: str) -> None:
        """Drop a deleted experiment's history, and keep none for it from now on."""
        with self._lock:
            self._histories.pop(experiment_id, None)
            self._forgotten.add(experiment_id)
