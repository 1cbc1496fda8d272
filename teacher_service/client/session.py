"""A training loop's view of an experiment: prefetched tasks, reports sent in the background.

Reports are queued without blocking and sent in batches by a background thread that retries
until the server acknowledges them, so a server that is killed and restarted loses no report
(the server deduplicates repeats).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from api_schemas.limits import MAX_BATCH
from api_schemas.reports import Report, ReportAck
from api_schemas.tasks import Task, TaskBatch
from teacher_service.client.errors import (
    ApiError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TeacherClientError,
    fresh_copy,
)
from teacher_service.client.http import (
    Backoff,
    RetryableError,
    RetryStopped,
    experiment_path,
    retry_call,
)

if TYPE_CHECKING:
    from teacher_service.client.teacher import TeacherClient

log = logging.getLogger(__name__)

T = TypeVar("T")


def as_report(obj: Report | Mapping[str, Any]) -> Report:
    """``obj`` as a :class:`Report` (validated if it is a mapping)."""
    return obj if isinstance(obj, Report) else Report.model_validate(obj)


def report_json(r: Report) -> dict[str, Any]:
    """A report as sent on the wire (defaults left out)."""
    return r.model_dump(mode="json", exclude_defaults=True)


class CurriculumSession:
    """A prefetch buffer of tasks and a batched, retrying report queue for one experiment.

    Two daemon threads do the network work:

    - the *prefetcher* keeps up to ``prefetch`` tasks buffered, fetching a batch whenever the
      buffer falls below half; it retries transient failures forever (with capped backoff),
      so the session resumes by itself once a restarted server is back;
    - the *reporter* sends queued reports once ``report_batch`` are waiting or the oldest has
      waited ``flush_interval`` seconds, and retries each batch until the server acknowledges
      it. A batch rejected with 404 (or 422) is split down to single reports so that only the
      offending reports are dropped (logged, counted in ``stats["dropped"]``).

    4xx answers seen by the threads are logged and kept in ``stats["last_error"]``. If the
    prefetcher keeps failing with a 4xx (unknown experiment, wrong token), :meth:`next_task`
    raises that error once the buffer is empty instead of blocking; likewise :meth:`flush`
    raises a 4xx that keeps the reporter from delivering (such reports stay queued).

    ``next_task`` and ``report`` may be called from several threads. Always :meth:`close`
    the session (or use it as a context manager): reports still queued when the process
    exits are lost.

    Args:
        client: the client whose connection pool and retry settings are used.
        experiment: experiment id or name.
        prefetch: size of the task buffer (>= 1).
        report_batch: reports per batch (>= 1).
        flush_interval: seconds a report may wait before a partial batch is sent (> 0).
        worker: worker label sent with task requests.
    """

    def __init__(
        self,
        client: TeacherClient,
        experiment: str,
        *,
        prefetch: int = 64,
        report_batch: int = 64,
        flush_interval: float = 0.2,
        worker: str | None = None,
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        if report_batch < 1:
            raise ValueError(f"report_batch must be >= 1, got {report_batch}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0, got {flush_interval}")
        self.client = client
        self.experiment = experiment
        self.prefetch = prefetch
        self.report_batch = report_batch
        self.flush_interval = flush_interval
        self.worker = worker
        self._tasks_path = experiment_path(experiment, "/tasks")
        self._reports_path = experiment_path(experiment, "/reports")
        # Most tasks per request / reports per request (the API's limit); halved on a 413
        # (a body above the server's size limit: many long score names, say).
        self._max_fetch = min(prefetch, MAX_BATCH)
        self._max_send = min(max(report_batch, 1024), MAX_BATCH)
        # Pace of retrying a 4xx that may be fixed server-side (an experiment created late).
        slow = max(client.max_backoff, 0.1)
        self._rejected_backoff = Backoff(slow, slow)

        self._cond = threading.Condition()
        self._buffer: deque[Task] = deque()
        self._pending: deque[tuple[Report, float]] = deque()
        self._inflight = 0
        self._flush_waiters = 0
        self._fetch_error: TeacherClientError | None = None
        self._report_error: ApiError | None = None
        self._closed = False
        self._fetch_stop = threading.Event()  # set at close: stop fetching now
        self._report_stop = threading.Event()  # set after the final flush (or its timeout)
        self._stats: dict[str, Any] = {
            "tasks_received": 0,
            "tasks_delivered": 0,
            "reports_queued": 0,
            "reports_acked": 0,
            "accepted": 0,
            "duplicates": 0,
            "expired": 0,
            "dropped": 0,
            "retries": 0,
            "last_error": None,
        }
        name = f"{experiment}:{worker}" if worker else experiment
        self._prefetcher = threading.Thread(
            target=self._prefetch_loop, name=f"ac-prefetch[{name}]", daemon=True
        )
        self._reporter = threading.Thread(
            target=self._report_loop, name=f"ac-report[{name}]", daemon=True
        )
        self._prefetcher.start()
        self._reporter.start()

    # ------------------------------------------------------------------ public API
    def next_task(self, timeout: float | None = None) -> Task:
        """The next task from the prefetch buffer.

        Args:
            timeout: seconds to wait when the buffer is empty; ``None`` waits indefinitely.

        Raises:
            TimeoutError: no task arrived within ``timeout``.
            ApiError: the buffer is empty and the last task request failed with a 4xx.
            TeacherClientError: the session is closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._buffer:
                if self._closed:
                    raise TeacherClientError("the session is closed")
                if self._fetch_error is not None:
                    raise fresh_copy(self._fetch_error)
                self._wait(deadline, lambda: f"no task from {self.experiment!r} within {timeout}s")
            if self._closed:
                raise TeacherClientError("the session is closed")
            task = self._buffer.popleft()
            self._stats["tasks_delivered"] += 1
            if 2 * len(self._buffer) < self.prefetch:
                self._cond.notify_all()
            return task

    def report(self, report: Report | Mapping[str, Any]) -> None:
        """Queue one report; it is sent in the background (never blocks on the network).

        Raises:
            pydantic.ValidationError: ``report`` is not a valid report (nothing was queued).
            TeacherClientError: the session is closed.
        """
        r = as_report(report)
        with self._cond:
            if self._closed:
                raise TeacherClientError("the session is closed; the report was not queued")
            self._pending.append((r, time.monotonic()))
            self._stats["reports_queued"] += 1
            if len(self._pending) >= self.report_batch or len(self._pending) == 1:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued now and block until the server has acknowledged every report.

        Args:
            timeout: seconds to wait; ``None`` waits indefinitely.

        Raises:
            TimeoutError: some reports are still unacknowledged after ``timeout``.
            ApiError: the reporter is stuck on a 4xx (e.g. 401) that retrying cannot fix.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._pending or self._inflight:
                    if self._report_error is not None:
                        raise fresh_copy(self._report_error)
                    if not self._reporter.is_alive():
                        raise TeacherClientError(
                            f"the reporter has stopped; {self._unacked()} reports unacknowledged"
                        )
                    self._wait(
                        deadline,
                        lambda: (
                            f"{self._unacked()} reports to {self.experiment!r} not "
                            f"acknowledged within {timeout}s"
                        ),
                    )
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush queued reports, then stop the background threads. Idempotent.

        Tasks still in the buffer are abandoned (they expire on the server after their lease).

        Args:
            timeout: seconds to wait for the final flush; ``None`` waits indefinitely.

        Raises:
            TimeoutError: the flush did not finish in time (the threads are stopped anyway;
                the unacknowledged reports are lost and logged).
            ApiError: the reporter was stuck on a 4xx (as for :meth:`flush`).
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._fetch_stop.set()
        error: BaseException | None = None
        try:
            self.flush(timeout)
        except (TimeoutError, TeacherClientError) as exc:
            error = exc
            log.error(
                "closing session of %r with %d unacknowledged reports: %s",
                self.experiment,
                self._unacked(),
                exc,
            )
        self._report_stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in (self._reporter, self._prefetcher):
            t.join(timeout=5.0)
        if error is not None:
            raise error

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the session's counters.

        Keys: ``tasks_received`` (from the server), ``tasks_delivered`` (by ``next_task``),
        ``buffered``, ``reports_queued``, ``reports_pending`` (queued or in flight),
        ``reports_acked`` (= ``accepted + duplicates + expired``), ``accepted``,
        ``duplicates``, ``expired``, ``dropped`` (rejected by the server: unknown task id),
        ``retries`` (HTTP attempts retried by the background threads), ``last_error``
        (text of the last error the threads saw, or ``None``).
        """
        with self._cond:
            out = dict(self._stats)
            out["buffered"] = len(self._buffer)
            out["reports_pending"] = self._unacked()
            return out

    def __enter__(self) -> CurriculumSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except (TimeoutError, TeacherClientError):
            if exc is None:
                raise
            # Do not mask the exception that ended the block; close() already logged this.

    def __repr__(self) -> str:
        return f"CurriculumSession({self.experiment!r}, closed={self._closed})"

    # ------------------------------------------------------------------ internals
    def _wait(self, deadline: float | None, what_timed_out: Callable[[], str]) -> None:
        """Wait (holding the condition) to be notified, at most until ``deadline``.

        Raises:
            TimeoutError: the deadline has passed (``what_timed_out()`` says what did).
        """
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            last = self._stats["last_error"]
            raise TimeoutError(f"{what_timed_out()} (last error: {last})")
        self._cond.wait(remaining)

    def _unacked(self) -> int:
        return len(self._pending) + self._inflight

    def _count_retry(self, why: str) -> None:
        with self._cond:
            self._stats["retries"] += 1
            self._stats["last_error"] = why

    def _note_error(self, exc: BaseException, what: str) -> None:
        log.error("session %r: %s: %s", self.experiment, what, exc)
        with self._cond:
            self._stats["last_error"] = f"{what}: {exc}"

    def _post(
        self, path: str, body: dict[str, Any], stop: threading.Event, *, idempotent: bool
    ) -> Any:
        """POST with endless retries of transient failures (until ``stop`` is set)."""
        # The session shares its client's connection pool and backoff.
        resp = self.client._http.send(
            "POST",
            path,
            json=body,
            idempotent=idempotent,
            max_retries=None,
            stop=stop,
            on_retry=self._count_retry,
        )
        return resp.json()

    def _retry_rejected(self, attempt: Callable[[int], T], stop: threading.Event) -> T:
        """Run ``attempt`` until it succeeds or ``stop`` is set, slowly retrying the
        rejections it turns into :class:`RetryableError`."""
        return retry_call(
            attempt,
            what=f"a rejected request of session {self.experiment!r}",
            backoff=self._rejected_backoff,
            max_retries=None,
            stop=stop,
        )

    # prefetcher -------------------------------------------------------------------
    def _prefetch_loop(self) -> None:
        try:
            while self._wait_for_room():
                try:
                    tasks = self._retry_rejected(self._request_tasks, self._fetch_stop)
                except RetryStopped:
                    return
                if tasks is None:
                    continue
                with self._cond:
                    if self._closed:
                        return
                    self._buffer.extend(tasks)
                    self._stats["tasks_received"] += len(tasks)
                    self._fetch_error = None
                    self._cond.notify_all()
        except Exception as exc:  # a dying thread must say why
            log.exception("session %r: prefetcher crashed", self.experiment)
            with self._cond:
                self._stats["last_error"] = f"prefetcher crashed: {exc!r}"
                self._fetch_error = TeacherClientError(f"prefetcher crashed: {exc!r}")
                self._cond.notify_all()

    def _wait_for_room(self) -> bool:
        """Block until the buffer is below half full; ``False`` once the session is closed."""
        with self._cond:
            while not self._closed and 2 * len(self._buffer) >= self.prefetch:
                self._cond.wait()
            return not self._closed

    def _request_tasks(self, attempt: int) -> list[Task] | None:
        """One task request; ``None`` when it must be asked again at once, for fewer tasks.

        Raises:
            RetryableError: the server rejected the request (see :meth:`_fetch_rejected`).
        """
        with self._cond:
            want = min(self.prefetch - len(self._buffer), self._max_fetch)
        try:
            body = {"n": want, "worker": self.worker}
            data = self._post(self._tasks_path, body, self._fetch_stop, idempotent=False)
        except PayloadTooLargeError as exc:
            if self._max_fetch == 1:
                raise self._fetch_rejected(exc) from exc
            self._max_fetch = max(1, self._max_fetch // 2)
            log.warning("task batch too large; asking for %d at a time", self._max_fetch)
            return None
        except ApiError as exc:
            raise self._fetch_rejected(exc) from exc
        return TaskBatch.model_validate(data).tasks

    def _fetch_rejected(self, exc: ApiError) -> RetryableError:
        """Make ``next_task`` raise ``exc`` while the buffer is empty; the request is then
        retried slowly, as the error may be fixed server-side (experiment created later)."""
        self._note_error(exc, "task request rejected")
        with self._cond:
            self._fetch_error = exc
            self._cond.notify_all()
        return RetryableError(str(exc), status=exc.status_code)

    # reporter ---------------------------------------------------------------------
    def _report_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    batch = self._take_batch()
                    if batch is None:
                        return
                    self._inflight += len(batch)
                try:
                    self._deliver(batch)
                except RetryStopped:
                    return
                with self._cond:
                    self._inflight -= len(batch)
                    self._cond.notify_all()
        except Exception as exc:  # a dying thread must say why
            log.exception("session %r: reporter crashed", self.experiment)
            with self._cond:
                self._stats["last_error"] = f"reporter crashed: {exc!r}"
                self._cond.notify_all()

    def _take_batch(self) -> list[Report] | None:
        """Wait (holding the condition) until a batch is due; ``None`` once stopped."""
        while True:
            if self._report_stop.is_set():
                return None
            n = len(self._pending)
            if n:
                if n >= self.report_batch or self._flush_waiters or self._closed:
                    break
                age = time.monotonic() - self._pending[0][1]
                if age >= self.flush_interval:
                    break
                self._cond.wait(self.flush_interval - age)
            else:
                self._cond.wait()
        k = min(n, self._max_send)
        return [self._pending.popleft()[0] for _ in range(k)]

    def _deliver(self, batch: list[Report], probe: bool = True) -> None:
        """Send ``batch`` until acknowledged; split it on 404/422/413. Raises ``RetryStopped``.

        Args:
            batch: the reports.
            probe: on a 404, first check that the experiment exists (a 404 then means an
                unknown task id); parts of a split batch skip this.
        """
        body = {"reports": [report_json(r) for r in batch]}

        def attempt(_: int) -> ReportAck:
            try:
                data = self._post(self._reports_path, body, self._report_stop, idempotent=True)
            except (PayloadTooLargeError, InvalidRequestError):
                raise  # the batch's own fault: split or drop it
            except NotFoundError as exc:
                if probe and not self._experiment_exists():
                    # Unknown experiment: no report can be delivered; keep them all.
                    raise self._stuck(exc) from exc
                raise
            except ApiError as exc:
                raise self._stuck(exc) from exc
            return ReportAck.model_validate(data)

        try:
            ack = self._retry_rejected(attempt, self._report_stop)
        except (PayloadTooLargeError, NotFoundError, InvalidRequestError) as exc:
            self._reject(batch, exc)
            return
        with self._cond:
            s = self._stats
            s["accepted"] += ack.accepted
            s["duplicates"] += ack.duplicates
            s["expired"] += ack.expired
            s["reports_acked"] += ack.accepted + ack.duplicates + ack.expired
            self._report_error = None

    def _reject(self, batch: list[Report], exc: ApiError) -> None:
        """Drop a single rejected report; split a rejected batch to find the offenders."""
        if len(batch) == 1:
            self._drop(batch, exc)
            return
        if isinstance(exc, PayloadTooLargeError):
            self._max_send = max(1, min(self._max_send, len(batch)) // 2)
            log.warning("report batch too large; sending %d at a time", self._max_send)
        else:
            log.warning(
                "report batch of %d rejected (%s); retrying in halves", len(batch), exc.detail
            )
        mid = len(batch) // 2
        for part in (batch[:mid], batch[mid:]):
            if part:
                self._deliver(part, probe=False)

    def _experiment_exists(self) -> bool:
        try:
            self.client._http.send(
                "GET",
                experiment_path(self.experiment),
                idempotent=True,
                max_retries=None,
                stop=self._report_stop,
                on_retry=self._count_retry,
            )
        except NotFoundError:
            return False
        except ApiError:
            return True  # something else is wrong; splitting the batch will tell
        return True

    def _drop(self, batch: list[Report], exc: ApiError) -> None:
        self._note_error(exc, f"dropped report of task {batch[0].task_id!r}")
        with self._cond:
            self._stats["dropped"] += len(batch)

    def _stuck(self, exc: ApiError) -> RetryableError:
        """A 4xx that retrying may not fix: keep the reports, tell flush(), retry slowly."""
        self._note_error(exc, "report batch rejected (kept, will retry)")
        with self._cond:
            self._report_error = exc
            self._cond.notify_all()
        return RetryableError(str(exc), status=exc.status_code)
