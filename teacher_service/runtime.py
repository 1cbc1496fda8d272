"""One ``ExperimentRuntime`` per experiment: it owns the teacher, serialises calls to it,
and keeps the write-ahead log (docs/architecture.md#runtime-and-storage).

Every call that changes the teacher is also one event of the log, in one ordered
sequence: ``tasks`` (a propose call and what it issued), ``reports`` (accepted reports),
``expire`` (tasks whose lease ran out), ``space`` (tasks that joined a discrete space),
``judgement`` (a model's answers a teacher asked for: they are computed in the background by
:class:`~teacher_service.interestingness.Judges` and take effect where they are logged).
Replaying the log from a snapshot therefore makes
exactly the same calls in the same order, and a teacher that is deterministic under its
seed ends in exactly the same state. Wall time enters only through lease deadlines,
which are themselves logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any, assert_never

import numpy as np

from api_schemas.experiments import ExperimentCounters, ExperimentCreate, ExperimentState
from api_schemas.limits import MAX_BATCH, MAX_DISCRETE_TASKS
from api_schemas.reports import Report, ReportAck
from api_schemas.spaces import DiscreteSpace, DiscreteTaskSpec, SpaceError, TasksAdded
from api_schemas.tasks import Task
from teacher_service.errors import (
    BatchTooLargeError,
    ExperimentNotFoundError,
    InvalidReportError,
    InvalidTasksError,
    TaskNotFoundError,
)
from teacher_service.event_log import (
    Event,
    ExpireEvent,
    JudgementEvent,
    ReportEntry,
    ReportEvent,
    SpaceEvent,
    TaskEvent,
    encode,
    read_events,
)
from teacher_service.spaces import check_proposal, level_of
from teacher_service.storage import ExperimentRecord, Store
from teacher_service.teachers import TaskProposal, TaskResult, Teacher, make_teacher

if TYPE_CHECKING:
    from teacher_service.interestingness import Judges

log = logging.getLogger(__name__)

# Per-task status codes (one byte per issued task, indexed by task index).
_OUTSTANDING, _REPORTED, _EXPIRED = 0, 1, 2


def status_runs(status: np.ndarray) -> dict[str, np.ndarray]:
    """Run-length form of a status array: where each run starts and its code.

    Why: the array holds a byte per task ever issued, almost all of them reported, so at
    10^6 episodes a raw copy made every snapshot a megabyte (written ~8 times a second
    under load, on the commit path); its runs are a few bytes.
    """
    starts = np.flatnonzero(np.diff(status)) + 1
    starts = np.concatenate([np.zeros(min(len(status), 1), dtype=np.int64), starts])
    return {"starts": starts.astype(np.int64), "codes": status[starts].astype(np.uint8)}


def status_from_runs(runs: dict[str, Any], n: int) -> np.ndarray:
    """Inverse of :func:`status_runs` for an array of ``n`` tasks.

    Raises:
        ValueError: the runs do not describe ``n`` tasks.
    """
    starts = np.asarray(runs["starts"], dtype=np.int64)
    codes = np.asarray(runs["codes"], dtype=np.uint8)
    if len(starts) != len(codes) or (n > 0) != (len(starts) > 0):
        raise ValueError("status runs and codes differ in length")
    if len(starts) and (starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n):
        raise ValueError("status runs are not increasing starts within the tasks")
    lengths = np.diff(np.append(starts, n))
    return np.repeat(codes, lengths)


def wire_task_id(experiment_id: str, index: int) -> str:
    """The id clients see for the experiment's ``index``-th issued task."""
    return f"{experiment_id}-{index}"


class ProposalError(RuntimeError):
    """A teacher proposed something outside its space: a bug in the teacher."""


class ExperimentRuntime:
    """The live state of one experiment.

    Args:
        record: the stored experiment.
        store: where events and snapshots go.
        snapshot_every: take a snapshot after this many events.
        max_batch: most tasks or reports per call (the API's own limit, ``MAX_BATCH``, is
            checked before a request gets here; a lower value is for tests).
        max_outstanding: most issued-but-unreported tasks; beyond it the oldest expire early
            so a client that never reports cannot grow memory without bound.
        clock: wall clock for leases (injectable for tests).
        judges: the models a teacher may ask for judgements (OMNI's interestingness); None:
            such requests wait (the server always passes its :class:`Judges`).
        background: where teachers run expensive pure background work (the server's
            :class:`~teacher_service.fit_pool.FitPool`); None: in threads of this process.
    """

    def __init__(
        self,
        record: ExperimentRecord,
        store: Store,
        *,
        snapshot_every: int = 1000,
        max_batch: int = MAX_BATCH,
        max_outstanding: int = 100_000,
        clock: Callable[[], float] = time.time,
        judges: Judges | None = None,
        background: Executor | None = None,
    ) -> None:
        self.record = record
        self.spec = ExperimentCreate.model_validate(record.spec)
        self.id = record.id
        self.name = record.name
        self.store = store
        self.snapshot_every = snapshot_every
        self.snapshot_interval = snapshot_every
        self.max_batch = max_batch
        self.max_outstanding = max_outstanding
        self.clock = clock
        # Re-entrant: the HTTP layer holds it across a check and the call it allows.
        self.lock = threading.RLock()
        # Set (under the lock) when the experiment is being deleted: every later call that
        # takes the lock is refused, so nothing more is written for it.
        self.deleted = False
        self.judges = judges
        self.background = background
        # A judgement run in flight (one at a time), and when a failed one may be retried.
        self._judging = False
        self._judge_retry_at = 0.0
        # Calls that waited for the teacher's background work (a fit not finished when it
        # fell due), and the seconds they waited: wall time, not state, so not logged, and
        # counted since this process started (Prometheus: autocurriculum_teacher_wait*).
        self.waits = 0
        self.wait_seconds = 0.0
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.teacher: Teacher = make_teacher(self.spec.space, self.spec.teacher, self.spec.seed)
        self.teacher.use_background(self.background)
        # The task space as it is now: the created one plus the tasks added since (logged).
        self.space: Any = self.spec.space
        self.seq = 0
        self.next_index = 0
        self.status = np.zeros(1024, dtype=np.uint8)
        self.outstanding: dict[int, TaskProposal] = {}
        # Issued batches in issue order: [deadline, first index, count]. Deadlines are
        # non-decreasing, so expiry only ever looks at the left end.
        self.batches: deque[list[float | int]] = deque()
        self.last_deadline = 0.0
        self.counters = ExperimentCounters()
        self.events_since_snapshot = 0
        self.broken = False
        self._last_write: Future | None = None

    def _grow_status(self, size: int) -> None:
        if size > len(self.status):
            new = np.zeros(max(size, 2 * len(self.status)), dtype=np.uint8)
            new[: len(self.status)] = self.status
            self.status = new

    def task_id(self, index: int) -> str:
        """Wire id of the task with this index."""
        return wire_task_id(self.id, index)

    def _parse_task_id(self, task_id: str) -> int:
        prefix, sep, tail = task_id.rpartition("-")
        if sep and prefix == self.id and tail.isdigit():
            index = int(tail)
            if index < self.next_index:
                return index
        raise TaskNotFoundError(f"task {task_id!r} was not issued by experiment {self.name!r}")

    # --------------------------------------------------------------- logging
    def _append(self, event: Event) -> Future:
        kind, data = encode(event)  # before the sequence moves: a failure leaves no gap
        self.seq += 1
        fut = self.store.append_event(self.id, self.seq, kind, data)
        self._last_write = fut
        self.counters.events = self.seq
        self.events_since_snapshot += 1
        if self.events_since_snapshot >= self.snapshot_interval:
            self._snapshot()
        return fut

    def _snapshot(self) -> None:
        self.events_since_snapshot = 0
        self._drop_settled_batches()
        fut = self.store.put_snapshot(self.id, self.seq, self._state_dict())
        fut.add_done_callback(self._adapt_snapshot_interval)

    def _adapt_snapshot_interval(self, fut: Future) -> None:
        # Bound the snapshot bytes written per event (~8 KiB): a teacher whose state grows
        # with its history (ALP-GMM keeps every task) is snapshotted less often, so the
        # cost per request stays flat; replay after a crash stays bounded in events.
        if fut.exception() is None and isinstance(fut.result(), int):
            self.snapshot_interval = max(self.snapshot_every, fut.result() // 8192)

    def _state_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "teacher": self.teacher.state_dict(),
            "next_index": self.next_index,
            "status_runs": status_runs(self.status[: self.next_index]),
            "outstanding": [[i, p.to_dict()] for i, p in self.outstanding.items()],
            "batches": [list(b) for b in self.batches],
            "last_deadline": self.last_deadline,
            "counters": self.counters.model_dump(),
            "added_tasks": self._added_tasks(),
        }

    def _load_state_dict(self, s: dict[str, Any]) -> None:
        if s.get("added_tasks"):  # grow the space (and the teacher's) before restoring it
            self._apply_space(s["added_tasks"])
        self.teacher.load_state_dict(s["teacher"])
        self.seq = int(s["seq"])
        self.next_index = int(s["next_index"])
        self.status = np.zeros(max(1024, self.next_index), dtype=np.uint8)
        if "status_runs" in s:
            self.status[: self.next_index] = status_from_runs(s["status_runs"], self.next_index)
        else:  # snapshots written before run-length status
            self.status[: self.next_index] = s["status"]
        self.outstanding = {int(i): TaskProposal.from_dict(p) for i, p in s["outstanding"]}
        self.batches = deque([float(b[0]), int(b[1]), int(b[2])] for b in s["batches"])
        self.last_deadline = float(s["last_deadline"])
        # Repeats are not logged, so their counters restart with the process (see
        # ExperimentCounters); everything else is rebuilt exactly.
        self.counters = ExperimentCounters.model_validate(
            {**s["counters"], "duplicates": 0, "late_reports": 0}
        )

    def _durable_now(self) -> Future:
        """A future for 'everything this runtime has written so far is durable'."""
        if self._last_write is None:
            done: Future = Future()
            done.set_result(None)
            return done
        return self._last_write

    # ---------------------------------------------------------------- checks
    def _check_proposals(self, proposals: Sequence[TaskProposal], n: int) -> None:
        if len(proposals) != n:
            raise ProposalError(
                f"teacher {self.teacher.kind} returned {len(proposals)} tasks, not {n}"
            )
        for p in proposals:
            try:
                check_proposal(self.space, p)
            except SpaceError as exc:
                raise ProposalError(
                    f"teacher {self.teacher.kind} proposed {p.params or p.level!r}: {exc}"
                ) from exc

    def _usable(self) -> None:
        if self.deleted:
            raise ExperimentNotFoundError(f"experiment {self.name!r} was deleted")
        if self.broken:
            # A failed write or a teacher error left memory ahead of the log: rebuild.
            log.warning("experiment %s: rebuilding from the log after an error", self.name)
            # Let every write already queued settle (the store refuses this experiment's
            # writes after a failure), then read back exactly what is durable.
            self.store.barrier().result()
            self.store.reset_failure(self.id)
            self.teacher.close()
            self._reset_state()
            try:
                self._replay()
            except BaseException:
                # Memory is a partial replay (e.g. up to an event this version cannot
                # read): never serve from it; rebuild again on the next call.
                self.broken = True
                raise

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run a mutation; on any error mark the runtime for rebuild from the log."""
        self._usable()
        try:
            return fn()
        except (TaskNotFoundError, InvalidReportError):
            raise  # raised before any mutation
        except Exception:
            self.broken = True
            raise

    # ---------------------------------------------------------------- expiry
    def _expire_due(self, now: float) -> None:
        expired: list[int] = []
        while self.batches and (
            self.batches[0][0] <= now or len(self.outstanding) - len(expired) > self.max_outstanding
        ):
            _, first, count = self.batches.popleft()
            first, count = int(first), int(count)
            still = np.flatnonzero(self.status[first : first + count] == _OUTSTANDING)
            expired.extend((still + first).tolist())
        if expired:
            self._apply_expire(expired)
            self._append(ExpireEvent(tuple(expired)))

    def _drop_settled_batches(self) -> None:
        """Forget the batches whose tasks are all reported or expired, wherever they are in the
        queue: they can expire nothing, and kept until their deadline they made snapshots grow
        with the request rate (a batch per request for the whole lease; one unreported task
        at the front must not keep every later batch). After each call only batches with
        outstanding tasks remain, so a call costs the batches issued since the last one."""
        status = self.status
        self.batches = deque(
            b
            for b in self.batches
            if np.any(status[int(b[1]) : int(b[1]) + int(b[2])] == _OUTSTANDING)
        )

    def _apply_expire(self, indices: list[int]) -> None:
        tasks = [self.outstanding.pop(i) for i in indices]
        self.status[indices] = _EXPIRED
        self.counters.expired += len(indices)
        self.counters.outstanding = len(self.outstanding)
        self.teacher.expire(tasks)

    def may_block(self, n_reports: int = 0) -> bool:
        """Whether the next call could be slow (a rebuild, or the teacher waiting on a fit):
        the HTTP layer then runs it in a worker thread instead of on the event loop."""
        return self.broken or self.teacher.would_block(n_reports)

    def _wait_for_teacher(self, n_results: int) -> None:
        """Wait, without holding the lock, for the background work (a fit) that the next
        call would otherwise wait for under it, so that the experiment's other calls (e.g.
        reports, which never need the fit) go on meanwhile. Its outcome is taken under the
        lock as usual (a failed fit is recomputed there)."""
        with self.lock:
            if self.broken or not self.teacher.would_block(n_results):
                return
            work = self.teacher.pending_work()
        if work is not None:
            started = time.perf_counter()
            futures_wait([work])
            waited = time.perf_counter() - started
            with self.lock:
                self.waits += 1
                self.wait_seconds += waited

    def sweep(self) -> None:
        """Expire overdue tasks of an idle experiment, and retry a failed judgement run
        (called periodically)."""
        with self.lock:
            if self.batches and self.batches[0][0] <= self.clock():
                self._guard(lambda: self._expire_due(self.clock()))
            self._ask_judges()

    # ----------------------------------------------------------- judgements
    #: Seconds before a failed judgement run (e.g. the chat endpoint down) is tried again.
    JUDGE_RETRY_SECONDS = 30.0

    def start_judging(self) -> None:
        """Hand the teacher's judgement request, if any, to the judges (after creation or
        replay; later requests follow changes of the space by themselves)."""
        with self.lock:
            self._ask_judges()

    def _ask_judges(self) -> None:
        """Submit the teacher's request unless a run is in flight (call under the lock)."""
        if (
            self.judges is None
            or self._judging
            or self.deleted
            or self.broken
            or self.clock() < self._judge_retry_at
        ):
            return
        request = self.teacher.judgement_request()
        if request is None:
            return
        self._judging = True
        try:
            self.judges.submit(request, self._take_judgement, self._judged)
        except Exception as exc:  # the judges are closed: the server is stopping
            self._judging = False
            log.info("experiment %s: not judging (%s)", self.name, exc)

    def _take_judgement(self, judgement: Any) -> None:
        """A chunk of answers (on the judges' thread): applied and logged as one event."""
        with self.lock:
            if self.deleted:
                raise ExperimentNotFoundError(f"experiment {self.name!r} was deleted")
            fut = self._guard(lambda: self._judge(judgement))
        fut.add_done_callback(lambda f: f.exception() is not None and self.mark_write_failed())

    def _judge(self, judgement: Any) -> Future:
        self.teacher.judge(judgement)
        return self._append(JudgementEvent(dict(judgement)))

    def _judged(self, error: BaseException | None) -> None:
        """A judgement run ended (on the judges' thread), with its error or None."""
        with self.lock:
            self._judging = False
            if error is not None and not self.deleted:
                log.error("experiment %s: judging failed (%s); retrying later", self.name, error)
                self._judge_retry_at = self.clock() + self.JUDGE_RETRY_SECONDS
            elif error is None:
                self._ask_judges()  # tasks that joined while it ran

    # ------------------------------------------------------------ propose
    def propose(self, n: int, worker: str | None = None) -> tuple[list[Task], Future]:
        """Issue ``n`` tasks. Returns them and a future that resolves once they are logged."""
        if n > self.max_batch:
            raise BatchTooLargeError(f"n={n} exceeds the maximum batch of {self.max_batch} tasks")
        self._wait_for_teacher(0)
        with self.lock:
            return self._guard(lambda: self._propose(n, worker))

    def _propose(self, n: int, worker: str | None) -> tuple[list[Task], Future]:
        now = self.clock()
        self._expire_due(now)
        proposals = self.teacher.propose(n)
        self._check_proposals(proposals, n)
        deadline = max(now + self.spec.lease_seconds, self.last_deadline)
        first = self._apply_issue(proposals, deadline)
        fut = self._append(TaskEvent(n, worker, first, deadline, tuple(proposals)))
        # Built by us from validated parts: skip re-validation (a hot path at large n).
        tasks = [
            Task.model_construct(
                id=self.task_id(first + k),
                params=p.params,
                # a box space with a parametric generator: the level its params build
                # (deterministic, so not logged: the dashboard rebuilds it from them)
                level=p.level if p.level is not None else level_of(self.space, p.params),
                mode=p.mode,
                agent_id=p.agent_id,
                role=p.role,
                init_from=p.init_from,
                lease_expires_at=deadline,
            )
            for k, p in enumerate(proposals)
        ]
        return tasks, fut

    def _apply_issue(self, proposals: Sequence[TaskProposal], deadline: float) -> int:
        first = self.next_index
        n = len(proposals)
        self.next_index += n
        self._grow_status(self.next_index)
        self.status[first : first + n] = _OUTSTANDING
        for k, p in enumerate(proposals):
            self.outstanding[first + k] = p
        self.batches.append([deadline, first, n])
        self.last_deadline = deadline
        self.counters.tasks_issued += n
        self.counters.outstanding = len(self.outstanding)
        return first

    # ------------------------------------------------------------ the space
    def add_tasks(self, tasks: Sequence[DiscreteTaskSpec]) -> tuple[TasksAdded, Future]:
        """Add tasks to a discrete space (logged like every change, told to the teacher).

        Raises:
            InvalidTasksError: not a discrete space, a name already taken, or too many tasks.
        """
        with self.lock:
            return self._guard(lambda: self._add_tasks(tasks))

    def _add_tasks(self, tasks: Sequence[DiscreteTaskSpec]) -> tuple[TasksAdded, Future]:
        if not isinstance(self.space, DiscreteSpace):
            raise InvalidTasksError(
                f"experiment {self.name!r} has a {self.space.kind!r} space: tasks can only be "
                "added to discrete spaces"
            )
        names = [t.name for t in tasks]
        taken = sorted(set(self.space.names) & set(names))
        repeated = sorted(n for n, k in Counter(names).items() if k > 1)
        if taken or repeated:
            raise InvalidTasksError(
                f"task names must be new and unique: {(taken + repeated)[:10]} "
                f"{'are taken' if taken else 'repeat'}"
            )
        if len(self.space.tasks) + len(tasks) > MAX_DISCRETE_TASKS:
            raise InvalidTasksError(
                f"a discrete space holds at most {MAX_DISCRETE_TASKS} tasks "
                f"({len(self.space.tasks)} + {len(tasks)})"
            )
        data = [t.model_dump(mode="json", exclude_none=True) for t in tasks]
        self._apply_space(data)
        fut = self._append(SpaceEvent(tuple(data)))
        self._ask_judges()
        return TasksAdded(added=len(data), tasks=len(self.space.tasks)), fut

    def _added_tasks(self) -> list[dict[str, Any]]:
        """The specs of the tasks added since creation, as they were logged."""
        if not isinstance(self.space, DiscreteSpace):
            return []
        added = self.space.tasks[len(self.spec.space.tasks) :]
        return [t.model_dump(mode="json", exclude_none=True) for t in added]

    def _apply_space(self, data: Sequence[dict[str, Any]]) -> None:
        specs = [DiscreteTaskSpec.model_validate(d) for d in data]
        self.space = DiscreteSpace(tasks=[*self.space.tasks, *specs])
        self.teacher.add_tasks(self.space, specs)

    # ------------------------------------------------------------- reports
    def report(self, reports: Sequence[Report]) -> tuple[ReportAck, Future]:
        """Accept a batch of reports (all-or-nothing on unknown tasks; repeats ignored)."""
        if len(reports) > self.max_batch:
            raise BatchTooLargeError(
                f"{len(reports)} reports exceed the maximum batch of {self.max_batch}"
            )
        self._wait_for_teacher(len(reports))
        with self.lock:
            return self._guard(lambda: self._report(reports))

    def _report(self, reports: Sequence[Report]) -> tuple[ReportAck, Future]:
        indices = [self._parse_task_id(r.task_id) for r in reports]  # 404 before any change
        self._expire_due(self.clock())
        new: list[tuple[int, Report]] = []
        seen: set[int] = set()
        duplicates = expired = 0
        for i, r in zip(indices, reports, strict=True):
            st = self.status[i]
            if i in seen or st == _REPORTED:
                duplicates += 1
            elif st == _EXPIRED:
                expired += 1
            else:
                seen.add(i)
                new.append((i, r))
        for i, r in new:  # the teacher may refuse a report it cannot use: before any change
            reason = self.teacher.check_result(self.outstanding[i], r.scores)
            if reason is not None:
                raise InvalidReportError(f"report of task {r.task_id}: {reason}")
        self.counters.duplicates += duplicates
        self.counters.late_reports += expired
        if not new:
            # Only repeats: they may repeat a report whose write is still in flight, so
            # answer once everything logged so far is durable.
            return ReportAck(
                accepted=0, duplicates=duplicates, expired=expired
            ), self._durable_now()
        entries = tuple(ReportEntry.from_report(i, r) for i, r in new)
        self._apply_reports(entries)
        fut = self._append(ReportEvent(entries))
        return ReportAck(accepted=len(new), duplicates=duplicates, expired=expired), fut

    def _apply_reports(self, entries: Sequence[ReportEntry]) -> None:
        results = []
        for e in entries:
            self.status[e.index] = _REPORTED
            results.append(
                TaskResult(
                    task=self.outstanding.pop(e.index),
                    episode_return=e.episode_return,
                    success=e.success,
                    length=e.length,
                    scores=e.scores,
                    episodes=e.episodes,
                )
            )
        self.counters.reports_accepted += len(results)
        self.counters.outstanding = len(self.outstanding)
        self.teacher.observe(results)

    # -------------------------------------------------------------- replay
    def _replay(self) -> None:
        """Load the newest readable snapshot, then re-apply every later event in order."""
        start = 0
        for seq, load in self.store.snapshots_newest_first(self.id):
            try:
                self._load_state_dict(load())
                start = seq
                break
            except Exception as exc:
                log.error(
                    "experiment %s: snapshot %d unreadable (%s); trying older", self.name, seq, exc
                )
                self.teacher.close()
                self._reset_state()
        n_events = 0
        # An event of a kind this version cannot read raises UnknownEventError (event_log).
        for ev in read_events(self.store, self.id, after_seq=start):
            if ev.seq != self.seq + 1:
                raise RuntimeError(f"experiment {self.name}: log gap before event {ev.seq}")
            self._apply_event(ev.event)
            self.seq = ev.seq
            self.counters.events = self.seq
            n_events += 1
        self.events_since_snapshot = n_events
        log.info("experiment %s: replayed %d events after snapshot %d", self.name, n_events, start)

    def _apply_event(self, event: Event) -> None:
        """Make the calls a logged event records, as when it was logged."""
        match event:
            case TaskEvent():
                self._replay_tasks(event)
            case ReportEvent():
                self._apply_reports(event.reports)
            case ExpireEvent():
                self._apply_expire(list(event.indices))
            case SpaceEvent():
                self._apply_space(list(event.tasks))
            case JudgementEvent():
                self.teacher.judge(event.judgement)
            case _:
                assert_never(event)

    def _replay_tasks(self, event: TaskEvent) -> None:
        logged = list(event.tasks)
        proposals = self.teacher.propose(event.n)
        if proposals != logged:
            # Clients hold the logged tasks; keep those, and say loudly that the teacher
            # is not reproducible (a bug in that teacher).
            log.error("experiment %s: replayed proposals differ from the log", self.name)
        if event.first != self.next_index:
            raise RuntimeError(f"experiment {self.name}: task index mismatch in the log")
        self._apply_issue(logged, event.deadline)

    @classmethod
    def load(cls, record: ExperimentRecord, store: Store, **kwargs: Any) -> ExperimentRuntime:
        """Rebuild a runtime from its snapshot and log."""
        rt = cls(record, store, **kwargs)
        rt._replay()
        return rt

    # ---------------------------------------------------------------- views
    def log_position(self) -> tuple[int, dict[str, Any]]:
        """The last logged event and the counters as of it (read together, under the lock;
        after a failed write, once memory has been rebuilt from what is durable)."""
        with self.lock:
            self._usable()
            return self.seq, self.counters.model_dump()

    def public_counters(self) -> ExperimentCounters:
        """A copy of the counters."""
        return self.counters.model_copy()

    def state(self) -> ExperimentState:
        """Counters and the teacher's own view."""
        with self.lock:
            self._usable()
            return ExperimentState(
                id=self.id,
                name=self.name,
                teacher_kind=self.teacher.kind,
                counters=self.counters.model_copy(),
                teacher=self.teacher.view(),
            )

    def mark_write_failed(self) -> None:
        """Called when a queued write failed: memory is ahead of the log."""
        with self.lock:
            self.broken = True

    def mark_deleted(self) -> None:
        """Refuse every later call (404) and stop the teacher's background work. Taking the
        lock waits for a call in progress, so its writes are queued before whatever the
        caller queues next (the store's delete)."""
        with self.lock:
            self.deleted = True
            self.teacher.close()

    def close(self) -> None:
        """Stop the teacher's background work."""
        self.teacher.close()
