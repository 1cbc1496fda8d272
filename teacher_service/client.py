"""A small synchronous client for the teacher service (HTTP contract: docs/api.md).

Only ``httpx``, ``pydantic``, ``api_schemas`` and the standard library are imported here, so
students (Ray workers, gymnasium wrappers, any trainer) can use it without pulling in the
server's dependencies.

Two layers:

- :class:`TeacherClient`: one method per endpoint, typed with the wire models. Transient
  failures (connection refused or reset, timeouts, 502/503/504, and 500 for idempotent calls)
  are retried with capped exponential backoff and jitter; 4xx answers are raised at once as
  :class:`ApiError` subclasses carrying the server's ``detail``.
- :class:`CurriculumSession`: what a training loop uses. A background thread keeps a buffer
  of prefetched tasks; reports are queued without blocking and sent in batches by another
  thread that retries until the server acknowledges them, so a server that is killed and
  restarted loses no report (the server deduplicates repeats).

Example::

    with TeacherClient("http://127.0.0.1:8000") as client:
        client.create_experiment("demo", space, {"kind": "random"}, exist_ok=True)
        with client.session("demo") as session:
            for _ in range(1000):
                task = session.next_task()
                session.report({"task_id": task.id, "episode_return": run(task)})
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from api_schemas.agents import AgentInfo, AgentList
from api_schemas.evaluations import Evaluation, EvaluationAck, EvaluationList, EvaluationRecord
from api_schemas.experiments import ExperimentList, ExperimentPublic, ExperimentState
from api_schemas.limits import MAX_BATCH
from api_schemas.reports import Report, ReportAck
from api_schemas.spaces import TaskSpace
from api_schemas.tasks import Task, TaskBatch
from api_schemas.teachers import TeacherConfig, TeacherInfo, TeacherList

__all__ = [
    "ApiError",
    "ChecksumError",
    "ConflictError",
    "CurriculumSession",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ServerUnavailableError",
    "TeacherClient",
    "TeacherClientError",
    "UnauthorizedError",
]

log = logging.getLogger(__name__)

#: Statuses retried for every call: the server (or a proxy in front of it) is not answering.
_RETRY_ALWAYS = frozenset({502, 503, 504})

_space_adapter: TypeAdapter[Any] = TypeAdapter(TaskSpace)
_teacher_adapter: TypeAdapter[Any] = TypeAdapter(TeacherConfig)


# ---------------------------------------------------------------------------- errors
class TeacherClientError(Exception):
    """Base class of every error this client raises on purpose."""


class ApiError(TeacherClientError):
    """The server answered with an error status that is not retried.

    Attributes:
        status_code: the HTTP status.
        detail: the server's ``detail`` message (or the raw body when it is not JSON).
        method: the HTTP method of the failed request.
        url: the URL of the failed request.
        attempts: how many attempts the call made (more than one if earlier ones failed
            transiently).
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        method: str | None = None,
        url: str | None = None,
        attempts: int = 1,
    ) -> None:
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"HTTP {status_code}{where}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.url = url
        self.attempts = attempts

    def copy(self) -> ApiError:
        """A fresh exception of the same class and content (for re-raising in another thread)."""
        return type(self)(
            self.status_code, self.detail, method=self.method, url=self.url, attempts=self.attempts
        )


class UnauthorizedError(ApiError):
    """401: the server needs a bearer token and none or a wrong one was sent."""


class NotFoundError(ApiError):
    """404: unknown experiment, or a report names a task the experiment never issued."""


class ConflictError(ApiError):
    """409: an experiment with that name exists (and, with ``exist_ok``, differs)."""


class PayloadTooLargeError(ApiError):
    """413: a request body above the server's size limit (16 MiB unless configured)."""


class InvalidRequestError(ApiError):
    """422: the server rejected the body (schema, bounds, unknown teacher kind, ...)."""


class ServerUnavailableError(TeacherClientError):
    """Every attempt failed transiently (no connection, timeouts, 5xx) and retries ran out.

    Attributes:
        attempts: how many attempts were made.
        last_status: the status of the last answer, or ``None`` if the last attempt got none.
    """

    def __init__(self, message: str, *, attempts: int, last_status: int | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status


class ChecksumError(TeacherClientError):
    """Downloaded bytes did not match the SHA-256 the server sent with them (every try)."""


_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
}


class _StoppedError(Exception):
    """Internal: a background call was abandoned because its session is closing."""


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else str(detail)
    return str(body)


def _api_error(resp: httpx.Response, attempts: int) -> ApiError:
    cls = _ERRORS_BY_STATUS.get(resp.status_code, ApiError)
    return cls(
        resp.status_code,
        _detail(resp),
        method=resp.request.method,
        url=str(resp.request.url),
        attempts=attempts,
    )


def _fresh(exc: TeacherClientError) -> TeacherClientError:
    """A new exception equal to ``exc`` (safe to raise in several threads)."""
    return exc.copy() if isinstance(exc, ApiError) else TeacherClientError(str(exc))


def _as_dict(obj: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return dict(obj)


def _as_report(obj: Report | Mapping[str, Any]) -> Report:
    return obj if isinstance(obj, Report) else Report.model_validate(obj)


def _report_json(r: Report) -> dict[str, Any]:
    return r.model_dump(mode="json", exclude_defaults=True)


# ---------------------------------------------------------------------------- client
class TeacherClient:
    """Synchronous client of the teacher service.

    Thread-safe: one client may be shared by many threads (and by the sessions it makes).

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000``.
        token: bearer token, if the server requires one.
        timeout: seconds per HTTP attempt (connect, read, write, pool).
        retries: how many times a transiently failed call is retried (so at most
            ``retries + 1`` attempts); ``0`` disables retries. Session background threads
            ignore this and retry until they succeed or the session closes.
        backoff: delay before the first retry, in seconds; it doubles with every retry.
        max_backoff: cap of the delay between retries, in seconds.
        transport: an ``httpx`` transport to use instead of the network (tests, mocks).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 10,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if backoff < 0 or max_backoff < 0:
            raise ValueError(f"backoff and max_backoff must be >= 0, got {backoff}, {max_backoff}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._sessions: weakref.WeakSet[CurriculumSession] = weakref.WeakSet()
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def _delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based): capped exponential, jittered."""
        base = min(self.max_backoff, self.backoff * 2 ** min(attempt - 1, 30))
        with self._rng_lock:
            u = self._rng.random()
        return base * (0.5 + 0.5 * u)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        max_retries: int | None,
        stop: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> httpx.Response:
        """One call with retries. ``max_retries=None`` retries forever (until ``stop`` is set).

        ``json`` or ``content`` (raw bytes) is the body; ``headers`` are sent besides the
        client's own. ``on_retry`` is called with a description of each transient failure
        before its retry.

        Raises:
            ApiError: (a subclass of) for a status that is not retried.
            ServerUnavailableError: when ``max_retries`` retries all failed.
            _StoppedError: when ``stop`` was set while waiting to retry.
        """
        attempt = 0
        while True:
            if stop is not None and stop.is_set():
                raise _StoppedError
            status: int | None = None
            cause: BaseException | None = None
            try:
                resp = self._http.request(method, path, json=json, content=content, headers=headers)
            except httpx.TransportError as exc:
                cause = exc
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = resp.status_code
                if status < 400:
                    if attempt:
                        log.info("%s %s succeeded after %d retries", method, path, attempt)
                    return resp
                if status not in _RETRY_ALWAYS and not (idempotent and status == 500):
                    raise _api_error(resp, attempt + 1)
                why = f"HTTP {status}: {_detail(resp)}"
            attempt += 1
            if max_retries is not None and attempt > max_retries:
                raise ServerUnavailableError(
                    f"{method} {self.base_url}{path} failed after {attempt} attempts; last: {why}",
                    attempts=attempt,
                    last_status=status,
                ) from cause
            delay = self._delay(attempt)
            if max_retries is not None or attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "%s %s failed (%s); retry %d%s in %.2fs",
                    method,
                    path,
                    why,
                    attempt,
                    f"/{max_retries}" if max_retries is not None else "",
                    delay,
                )
            if on_retry is not None:
                on_retry(why)
            if stop is not None:
                if stop.wait(delay):
                    raise _StoppedError
            else:
                time.sleep(delay)

    def _ensure_open(self) -> None:
        """Refuse a call on a closed client."""
        if self._closed:
            raise TeacherClientError("the client is closed")

    def _json(self, method: str, path: str, *, json: Any = None, idempotent: bool) -> Any:
        self._ensure_open()
        resp = self._send(method, path, json=json, idempotent=idempotent, max_retries=self.retries)
        return resp.json()

    @staticmethod
    def _exp_path(key: str, suffix: str = "") -> str:
        return f"/v1/experiments/{quote(key, safe='')}{suffix}"

    # ------------------------------------------------------------------ endpoints
    def health(self) -> bool:
        """Whether the server answers ``GET /healthz`` with ``{"status": "ok"}`` (no retries).

        Returns:
            ``True`` if it does, ``False`` on any error or other answer.
        """
        try:
            resp = self._http.get("/healthz")
            return resp.status_code == 200 and resp.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def teachers(self) -> list[TeacherInfo]:
        """Every teacher kind: the space kinds it accepts, a description, its JSON schema."""
        return TeacherList.model_validate(self._json("GET", "/v1/teachers", idempotent=True)).data

    def create_experiment(
        self,
        name: str,
        space: Mapping[str, Any] | BaseModel,
        teacher: Mapping[str, Any] | BaseModel,
        *,
        seed: int = 0,
        lease_seconds: float = 600.0,
        exist_ok: bool = False,
    ) -> ExperimentPublic:
        """Create an experiment; the server validates ``space`` and ``teacher``.

        A create whose answer was lost (connection dropped after the server committed it) is
        retried; the resulting 409 is then resolved like ``exist_ok`` so the call succeeds.

        Args:
            name: unique name (``[A-Za-z0-9_.:-]+``).
            space: task space, e.g. ``{"kind": "box", "dims": [...]}`` or a model.
            teacher: teacher config, e.g. ``{"kind": "alp_gmm", "fit_rate": 250}`` or a model.
            seed: the teacher's seed.
            lease_seconds: seconds a task may stay unreported before it expires.
            exist_ok: if the name is taken, return the existing experiment when its space,
                teacher config and seed equal these (after defaults are filled in).

        Returns:
            The experiment as the server stored it.

        Raises:
            ConflictError: the name is taken (and, with ``exist_ok``, by a different setup).
            InvalidRequestError: the server rejected the space or teacher config.
        """
        body = {
            "name": name,
            "space": _as_dict(space),
            "teacher": _as_dict(teacher),
            "seed": seed,
            "lease_seconds": lease_seconds,
        }
        try:
            data = self._json("POST", "/v1/experiments", json=body, idempotent=False)
        except ConflictError as exc:
            if not (exist_ok or exc.attempts > 1):
                raise
            existing = self.get_experiment(name)
            if self._same_setup(existing, body["space"], body["teacher"], seed):
                return existing
            raise ConflictError(
                409,
                f"an experiment named {name!r} exists with a different space, teacher or seed "
                f"(existing: space={existing.space.model_dump(mode='json')}, "
                f"teacher={existing.teacher.model_dump(mode='json')}, seed={existing.seed})",
                method=exc.method,
                url=exc.url,
            ) from exc
        return ExperimentPublic.model_validate(data)

    @staticmethod
    def _same_setup(
        existing: ExperimentPublic, space: dict[str, Any], teacher: dict[str, Any], seed: int
    ) -> bool:
        try:
            want_space = _space_adapter.validate_python(space)
            want_teacher = _teacher_adapter.validate_python(teacher)
        except ValidationError:
            return False
        return (
            existing.space == want_space
            and existing.teacher == want_teacher
            and existing.seed == seed
        )

    def get_experiment(self, key: str) -> ExperimentPublic:
        """One experiment by id or name.

        Raises:
            NotFoundError: no experiment has that id or name.
        """
        data = self._json("GET", self._exp_path(key), idempotent=True)
        return ExperimentPublic.model_validate(data)

    def delete_experiment(self, experiment: str) -> None:
        """Delete an experiment and everything stored for it (its log, snapshots,
        evaluations and agent checkpoints); returns once the deletion is committed. A new
        experiment may then take its name.

        Transient failures are retried (a 503 means nothing was deleted). When an attempt's
        answer is lost after the server deleted the experiment, the retry gets 404: a 404 on
        any attempt but the first is therefore taken as success (the experiment is gone
        either way). A 404 on the first attempt is raised.

        Args:
            experiment: experiment id or name.

        Raises:
            NotFoundError: no experiment has that id or name.
        """
        self._ensure_open()
        try:
            self._send(
                "DELETE", self._exp_path(experiment), idempotent=True, max_retries=self.retries
            )
        except NotFoundError as exc:
            if exc.attempts == 1:
                raise
            log.info("%s was gone on retry %d: taken as deleted", experiment, exc.attempts - 1)

    def list_experiments(self) -> list[ExperimentPublic]:
        """Every experiment the server hosts, with its counters."""
        data = self._json("GET", "/v1/experiments", idempotent=True)
        return ExperimentList.model_validate(data).data

    def state(self, experiment: str) -> ExperimentState:
        """Counters plus the teacher's own view (what the dashboard draws).

        Raises:
            NotFoundError: unknown experiment.
        """
        data = self._json("GET", self._exp_path(experiment, "/state"), idempotent=True)
        return ExperimentState.model_validate(data)

    def sample(self, experiment: str, n: int = 1, *, worker: str | None = None) -> list[Task]:
        """Ask the teacher for ``n`` tasks (they are durably logged before the answer).

        A retried request after a lost answer may leave the first batch unreported; such
        tasks simply expire after their lease.

        Args:
            experiment: experiment id or name.
            n: number of tasks (at most ``MAX_BATCH``, 4096).
            worker: optional worker label, logged with the tasks.

        Raises:
            NotFoundError: unknown experiment.
            PayloadTooLargeError: ``n`` above the server's max batch.
            InvalidRequestError: ``n < 1`` or an invalid worker label.
        """
        data = self._json(
            "POST",
            self._exp_path(experiment, "/tasks"),
            json={"n": n, "worker": worker},
            idempotent=False,
        )
        return TaskBatch.model_validate(data).tasks

    def post_evaluations(
        self, experiment: str, evaluations: Sequence[Evaluation | Mapping[str, Any]]
    ) -> int:
        """Store held-out evaluation results; returns how many were accepted.

        Transient failures are retried as for task requests; a retry after a lost answer
        may store a result twice (results are not deduplicated).

        Raises:
            pydantic.ValidationError: an item is not a valid evaluation (nothing was sent).
            NotFoundError: unknown experiment.
        """
        items = [Evaluation.model_validate(e) for e in evaluations]
        body = {"evaluations": [e.model_dump(mode="json") for e in items]}
        data = self._json(
            "POST", self._exp_path(experiment, "/evaluations"), json=body, idempotent=False
        )
        return EvaluationAck.model_validate(data).accepted

    def evaluations(self, experiment: str) -> list[EvaluationRecord]:
        """The experiment's stored evaluations, oldest first."""
        data = self._json("GET", self._exp_path(experiment, "/evaluations"), idempotent=True)
        return EvaluationList.model_validate(data).data

    def put_agent(
        self, experiment: str, agent_id: str, data: bytes | os.PathLike[str]
    ) -> AgentInfo:
        """Upload an agent's checkpoint (``PUT .../agents/{agent_id}``), replacing the stored
        one; answered once the server has committed it.

        The body's SHA-256 travels in ``X-Content-SHA256`` so the server refuses a damaged
        upload. Transient failures are retried: the server keeps the same bytes sent twice as
        one version, so a repeat after a lost answer changes nothing.

        Args:
            experiment: experiment id or name.
            agent_id: the agent's id (``[A-Za-z0-9][A-Za-z0-9_.-]{0,127}``), e.g. a role name.
            data: the checkpoint's bytes, or the path of a file holding them.

        Returns:
            What the server stored: ``version``, ``size``, ``sha256``, ``updated_at``.

        Raises:
            NotFoundError: unknown experiment.
            InvalidRequestError: bad agent id or empty data.
            PayloadTooLargeError: the checkpoint exceeds the server's body limit.
        """
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
        else:
            body = Path(data).read_bytes()
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
        }
        self._ensure_open()
        resp = self._send(
            "PUT",
            self._agent_path(experiment, agent_id),
            content=body,
            headers=headers,
            idempotent=True,
            max_retries=self.retries,
        )
        return AgentInfo.model_validate(resp.json())

    def get_agent(
        self, experiment: str, agent_id: str, path: str | os.PathLike[str] | None = None
    ) -> bytes:
        """Download an agent's latest checkpoint (``GET .../agents/{agent_id}``).

        The bytes are checked against the ``X-Content-SHA256`` the server sent (a mismatch
        is retried like a transient failure). With ``path`` they are also written there,
        atomically: to ``<path>.part`` first, then renamed.

        Args:
            experiment: experiment id or name.
            agent_id: the agent's id.
            path: optional file to write the checkpoint to.

        Returns:
            The checkpoint's bytes.

        Raises:
            NotFoundError: unknown experiment, or no agent with that id is stored.
            ChecksumError: the bytes never matched their checksum (``retries + 1`` tries).
        """
        self._ensure_open()
        url = self._agent_path(experiment, agent_id)
        for attempt in range(self.retries + 1):
            resp = self._send(
                "GET",
                url,
                headers={"Accept": "application/octet-stream"},
                idempotent=True,
                max_retries=self.retries,
            )
            data = resp.content
            claimed = resp.headers.get("X-Content-SHA256", "").lower()
            got = hashlib.sha256(data).hexdigest()
            if claimed == got:
                break
            why = f"{len(data)} bytes with SHA-256 {got}, server said {claimed or 'nothing'}"
            if attempt == self.retries:
                raise ChecksumError(f"GET {self.base_url}{url}: {why}")
            log.warning("agent %r download damaged (%s); retrying", agent_id, why)
            time.sleep(self._delay(attempt + 1))
        if path is not None:
            dest = Path(path)
            part = dest.with_name(dest.name + ".part")
            try:
                with open(part, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                part.replace(dest)
            finally:
                part.unlink(missing_ok=True)
        return data

    def list_agents(self, experiment: str) -> list[AgentInfo]:
        """Metadata of every agent checkpoint stored for the experiment, by agent id.

        Raises:
            NotFoundError: unknown experiment.
        """
        data = self._json("GET", self._exp_path(experiment, "/agents"), idempotent=True)
        return AgentList.model_validate(data).data

    @classmethod
    def _agent_path(cls, experiment: str, agent_id: str) -> str:
        return cls._exp_path(experiment, f"/agents/{quote(agent_id, safe='')}")

    def export(
        self,
        experiment: str,
        path: str | os.PathLike[str] | None = None,
        format: str = "jsonl",
    ) -> Path:
        """Download the experiment's full history (``GET .../export``), streamed to a file.

        Re-import it with :func:`teacher_service.export.read_export` (rows as dicts) or
        :func:`teacher_service.export.export_dataframe` (pandas). The file appears only once
        the download is complete (it is written to ``<path>.part`` first); a transient failure,
        even mid-stream, restarts the download, up to ``retries`` times.

        Args:
            experiment: experiment id or name.
            path: where to write; default ``<experiment>.<format>`` in the current directory.
            format: ``"jsonl"`` (JSON lines) or ``"parquet"`` (needs pyarrow on the server).

        Returns:
            The path written.

        Raises:
            NotFoundError: unknown experiment.
            InvalidRequestError: unknown format.
            ApiError: 406 when the server cannot write Parquet (no pyarrow there).
            ServerUnavailableError: every attempt failed transiently.
        """
        self._ensure_open()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
        dest = Path(path) if path is not None else Path(f"{safe}.{format}")
        part = dest.with_name(dest.name + ".part")
        url = self._exp_path(experiment, "/export")
        attempt = 0
        while True:
            status: int | None = None
            try:
                with self._http.stream(
                    "GET", url, params={"format": format}, headers={"Accept": "*/*"}
                ) as resp:
                    status = resp.status_code
                    if status >= 400:
                        resp.read()
                        if status not in _RETRY_ALWAYS and status != 500:
                            raise _api_error(resp, attempt + 1)
                        why = f"HTTP {status}: {_detail(resp)}"
                    else:
                        with open(part, "wb") as f:
                            for chunk in resp.iter_bytes():
                                f.write(chunk)
                        part.replace(dest)
                        return dest
            except httpx.TransportError as exc:  # includes a stream cut short
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                part.unlink(missing_ok=True)
            attempt += 1
            if attempt > self.retries:
                raise ServerUnavailableError(
                    f"GET {self.base_url}{url} failed after {attempt} attempts; last: {why}",
                    attempts=attempt,
                    last_status=status,
                )
            delay = self._delay(attempt)
            log.warning(
                "export of %s failed (%s); retry %d in %.2fs", experiment, why, attempt, delay
            )
            time.sleep(delay)

    def report(self, experiment: str, reports: Sequence[Report | Mapping[str, Any]]) -> ReportAck:
        """Report finished tasks (one batch, all-or-nothing on unknown task ids).

        Reports are idempotent, so every transient failure is retried: a repeat of a report
        the server already has is counted in ``duplicates``.

        Args:
            experiment: experiment id or name.
            reports: ``Report`` models or dicts with the same fields (validated here).

        Returns:
            ``accepted`` / ``duplicates`` / ``expired`` counts.

        Raises:
            pydantic.ValidationError: a dict is not a valid report (nothing was sent).
            NotFoundError: unknown experiment, or some task id was never issued (then none of
                the batch was accepted).
            PayloadTooLargeError: more reports than the server's max batch.
        """
        body = {"reports": [_report_json(_as_report(r)) for r in reports]}
        data = self._json(
            "POST", self._exp_path(experiment, "/reports"), json=body, idempotent=True
        )
        return ReportAck.model_validate(data)

    def session(
        self,
        experiment: str,
        *,
        prefetch: int = 64,
        report_batch: int = 64,
        flush_interval: float = 0.2,
        worker: str | None = None,
    ) -> CurriculumSession:
        """Start a :class:`CurriculumSession` (prefetch buffer + batched background reports).

        Args:
            experiment: experiment id or name.
            prefetch: size of the task buffer; refilled when it falls below half.
            report_batch: send reports once this many are queued...
            flush_interval: ...or once the oldest queued report is this many seconds old.
            worker: worker label sent with task requests.
        """
        self._ensure_open()
        s = CurriculumSession(
            self,
            experiment,
            prefetch=prefetch,
            report_batch=report_batch,
            flush_interval=flush_interval,
            worker=worker,
        )
        self._sessions.add(s)
        return s

    def close(self) -> None:
        """Close open sessions (flushing their reports), then the connection pool. Idempotent."""
        if self._closed:
            return
        for s in list(self._sessions):
            try:
                s.close()
            except Exception as exc:  # closing must go on; the session logged it
                log.error("closing a session failed: %s", exc)
        self._closed = True
        self._http.close()

    def __enter__(self) -> TeacherClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TeacherClient({self.base_url!r})"


# --------------------------------------------------------------------------- session
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
        self._tasks_path = TeacherClient._exp_path(experiment, "/tasks")
        self._reports_path = TeacherClient._exp_path(experiment, "/reports")
        # Most tasks per request / reports per request (the API's limit); halved on a 413
        # (a body above the server's size limit: many long score names, say).
        self._max_fetch = min(prefetch, MAX_BATCH)
        self._max_send = min(max(report_batch, 1024), MAX_BATCH)

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
                    raise _fresh(self._fetch_error)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"no task from {self.experiment!r} within {timeout}s "
                        f"(last error: {self._stats['last_error']})"
                    )
                self._cond.wait(remaining)
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
        r = _as_report(report)
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
                        raise _fresh(self._report_error)
                    if not self._reporter.is_alive():
                        raise TeacherClientError(
                            f"the reporter has stopped; {self._unacked()} reports unacknowledged"
                        )
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f"{self._unacked()} reports to {self.experiment!r} not acknowledged "
                            f"within {timeout}s (last error: {self._stats['last_error']})"
                        )
                    self._cond.wait(remaining)
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

    def _call(self, path: str, body: dict[str, Any], stop: threading.Event, idem: bool) -> Any:
        """POST with infinite retries on transient failures (until ``stop`` is set)."""
        resp = self.client._send(
            "POST",
            path,
            json=body,
            idempotent=idem,
            max_retries=None,
            stop=stop,
            on_retry=self._count_retry,
        )
        return resp.json()

    # prefetcher -------------------------------------------------------------------
    def _prefetch_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and 2 * len(self._buffer) >= self.prefetch:
                        self._cond.wait()
                    if self._closed:
                        return
                    want = min(self.prefetch - len(self._buffer), self._max_fetch)
                try:
                    data = self._call(
                        self._tasks_path,
                        {"n": want, "worker": self.worker},
                        self._fetch_stop,
                        idem=False,
                    )
                    tasks = TaskBatch.model_validate(data).tasks
                except _StoppedError:
                    return
                except PayloadTooLargeError as exc:
                    if self._max_fetch > 1:
                        self._max_fetch = max(1, self._max_fetch // 2)
                        log.warning(
                            "task batch too large; asking for %d at a time", self._max_fetch
                        )
                        continue
                    self._fetch_failed(exc)
                    continue
                except ApiError as exc:
                    self._fetch_failed(exc)
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

    def _fetch_failed(self, exc: ApiError) -> None:
        self._note_error(exc, "task request rejected")
        with self._cond:
            self._fetch_error = exc
            self._cond.notify_all()
        # Keep trying slowly: the error may be fixed server-side (experiment created later).
        self._fetch_stop.wait(max(self.client.max_backoff, 0.1))

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
                except _StoppedError:
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
        """Send ``batch`` until acknowledged; split it on 404/422/413. Raises ``_StoppedError``.

        Args:
            batch: the reports.
            probe: on a 404, first check that the experiment exists (a 404 then means an
                unknown task id); parts of a split batch skip this.
        """
        while True:
            try:
                data = self._call(
                    self._reports_path,
                    {"reports": [_report_json(r) for r in batch]},
                    self._report_stop,
                    idem=True,
                )
            except PayloadTooLargeError as exc:
                if len(batch) == 1:
                    self._drop(batch, exc)
                    return
                self._max_send = max(1, min(self._max_send, len(batch)) // 2)
                log.warning("report batch too large; sending %d at a time", self._max_send)
                self._split(batch)
                return
            except (NotFoundError, InvalidRequestError) as exc:
                if probe and isinstance(exc, NotFoundError) and not self._experiment_exists():
                    # Unknown experiment: no report can be delivered; keep them all.
                    self._stuck(exc)
                    continue
                if len(batch) == 1:
                    self._drop(batch, exc)
                    return
                log.warning(
                    "report batch of %d rejected (%s); retrying in halves", len(batch), exc.detail
                )
                self._split(batch)
                return
            except ApiError as exc:
                self._stuck(exc)
                continue
            ack = ReportAck.model_validate(data)
            with self._cond:
                s = self._stats
                s["accepted"] += ack.accepted
                s["duplicates"] += ack.duplicates
                s["expired"] += ack.expired
                s["reports_acked"] += ack.accepted + ack.duplicates + ack.expired
                self._report_error = None
            return

    def _split(self, batch: list[Report]) -> None:
        mid = len(batch) // 2
        for part in (batch[:mid], batch[mid:]):
            if part:
                self._deliver(part, probe=False)

    def _experiment_exists(self) -> bool:
        try:
            self.client._send(
                "GET",
                TeacherClient._exp_path(self.experiment),
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

    def _stuck(self, exc: ApiError) -> None:
        """A 4xx that retrying may not fix: keep the reports, tell flush(), retry slowly."""
        self._note_error(exc, "report batch rejected (kept, will retry)")
        with self._cond:
            self._report_error = exc
            self._cond.notify_all()
        if self._report_stop.wait(max(self.client.max_backoff, 0.1)):
            raise _StoppedError
