"""The client of the teacher service: one method per endpoint, typed with the wire models."""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from api_schemas.agents import AgentInfo, AgentList
from api_schemas.evaluations import Evaluation, EvaluationAck, EvaluationList, EvaluationRecord
from api_schemas.experiments import ExperimentList, ExperimentPublic, ExperimentState
from api_schemas.reports import Report, ReportAck
from api_schemas.spaces import DiscreteTaskSpec, LevelSpace, TasksAdded, TaskSpace
from api_schemas.tasks import Task, TaskBatch
from api_schemas.teachers import TeacherConfig, TeacherInfo, TeacherList
from teacher_service.client.errors import (
    ChecksumError,
    ConflictError,
    NotFoundError,
    TeacherClientError,
)
from teacher_service.client.files import atomic_write
from teacher_service.client.http import Backoff, HttpLayer, RetryableError, experiment_path
from teacher_service.client.session import CurriculumSession, as_report, report_json

log = logging.getLogger(__name__)

_space_adapter: TypeAdapter[Any] = TypeAdapter(TaskSpace)
_teacher_adapter: TypeAdapter[Any] = TypeAdapter(TeacherConfig)


def _as_dict(obj: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return dict(obj)


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
        self._http = HttpLayer(
            self.base_url,
            token=token,
            timeout=timeout,
            backoff=Backoff(backoff, max_backoff),
            transport=transport,
        )
        self._sessions: weakref.WeakSet[CurriculumSession] = weakref.WeakSet()
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def _ensure_open(self) -> None:
        """Refuse a call on a closed client."""
        if self._closed:
            raise TeacherClientError("the client is closed")

    def _json(self, method: str, path: str, *, json: Any = None, idempotent: bool) -> Any:
        """A JSON call with the client's retries; returns the decoded answer."""
        self._ensure_open()
        resp = self._http.send(
            method, path, json=json, idempotent=idempotent, max_retries=self.retries
        )
        return resp.json()

    # ------------------------------------------------------------------ endpoints
    def health(self) -> bool:
        """Whether the server answers ``GET /healthz`` with ``{"status": "ok"}`` (no retries).

        Returns:
            ``True`` if it does, ``False`` on any error or other answer.
        """
        try:
            resp = self._http.send("GET", "/healthz", idempotent=True, max_retries=0)
            return resp.status_code == 200 and resp.json().get("status") == "ok"
        except (TeacherClientError, httpx.HTTPError, ValueError, AttributeError):
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
            _same_space(existing.space, want_space)
            and existing.teacher == want_teacher
            and existing.seed == seed
        )

    def get_experiment(self, key: str) -> ExperimentPublic:
        """One experiment by id or name.

        Raises:
            NotFoundError: no experiment has that id or name.
        """
        data = self._json("GET", experiment_path(key), idempotent=True)
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
            self._http.send(
                "DELETE", experiment_path(experiment), idempotent=True, max_retries=self.retries
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
        data = self._json("GET", experiment_path(experiment, "/state"), idempotent=True)
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
            experiment_path(experiment, "/tasks"),
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
            "POST", experiment_path(experiment, "/evaluations"), json=body, idempotent=False
        )
        return EvaluationAck.model_validate(data).accepted

    def evaluations(self, experiment: str) -> list[EvaluationRecord]:
        """The experiment's stored evaluations, oldest first."""
        data = self._json("GET", experiment_path(experiment, "/evaluations"), idempotent=True)
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
        resp = self._http.send(
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
        atomically (:func:`~teacher_service.client.files.atomic_write`).

        Args:
            experiment: experiment id or name.
            agent_id: the agent's id.
            path: optional file to write the checkpoint to.

        Returns:
            The checkpoint's bytes.

        Raises:
            NotFoundError: unknown experiment, or no agent with that id is stored.
            ChecksumError: the bytes did not match their checksum on the last of the
                ``retries + 1`` tries (a transient failure there gives
                ``ServerUnavailableError``).
        """
        self._ensure_open()
        url = self._agent_path(experiment, agent_id)

        def attempt(n: int) -> bytes:
            resp = self._http.request_once(
                "GET", url, n, idempotent=True, headers={"Accept": "application/octet-stream"}
            )
            data = resp.content
            claimed = resp.headers.get("X-Content-SHA256", "").lower() or "nothing"
            got = hashlib.sha256(data).hexdigest()
            if claimed != got:
                # Damaged in transit: worth another try; the last one says what was wrong.
                why = f"{len(data)} bytes with SHA-256 {got}, server said {claimed}"
                raise RetryableError(why, final=ChecksumError(f"GET {self.base_url}{url}: {why}"))
            return data

        data = self._http.retry(attempt, f"GET {self.base_url}{url}", max_retries=self.retries)
        if path is not None:
            with atomic_write(path) as f:
                f.write(data)
        return data

    def list_agents(self, experiment: str) -> list[AgentInfo]:
        """Metadata of every agent checkpoint stored for the experiment, by agent id.

        Raises:
            NotFoundError: unknown experiment.
        """
        data = self._json("GET", experiment_path(experiment, "/agents"), idempotent=True)
        return AgentList.model_validate(data).data

    @staticmethod
    def _agent_path(experiment: str, agent_id: str) -> str:
        return experiment_path(experiment, f"/agents/{quote(agent_id, safe='')}")

    def export(
        self,
        experiment: str,
        path: str | os.PathLike[str] | None = None,
        format: str = "jsonl",
    ) -> Path:
        """Download the experiment's full history (``GET .../export``), streamed to a file.

        Re-import it with :func:`~teacher_service.client.read_export` (rows as dicts) or
        :func:`~teacher_service.client.export_dataframe` (pandas). The file appears only once
        the download is complete (it is written atomically, see
        :func:`~teacher_service.client.files.atomic_write`); a transient failure, even
        mid-stream, restarts the download, up to ``retries`` times.

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
        return self._http.download(
            experiment_path(experiment, "/export"),
            dest,
            params={"format": format},
            max_retries=self.retries,
        )

    def add_tasks(
        self, experiment: str, tasks: Sequence[DiscreteTaskSpec | Mapping[str, Any]]
    ) -> TasksAdded:
        """Add tasks to a running discrete experiment (``POST .../space/tasks``).

        Not retried after an answer may have been lost: a repeat would find the names taken.

        Args:
            experiment: experiment id or name.
            tasks: ``DiscreteTaskSpec`` models or dicts (``name``, optional ``description``
                and ``category``).

        Returns:
            How many tasks joined and the space's new size.

        Raises:
            InvalidRequestError: not a discrete space, a name taken or repeated, too many.
            NotFoundError: unknown experiment.
        """
        body = {"tasks": [_as_dict(t) for t in tasks]}
        data = self._json(
            "POST", experiment_path(experiment, "/space/tasks"), json=body, idempotent=False
        )
        return TasksAdded.model_validate(data)

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
        body = {"reports": [report_json(as_report(r)) for r in reports]}
        data = self._json(
            "POST", experiment_path(experiment, "/reports"), json=body, idempotent=True
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

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TeacherClient({self.base_url!r})"


def _same_space(existing: Any, want: Any) -> bool:
    """Whether a stored space is the one asked for. The server stores a level space's config
    with its generator's defaults filled in (only the generator knows them), so a level
    config asked for matches when every value it gives is the stored one."""
    if isinstance(existing, LevelSpace) and isinstance(want, LevelSpace):
        missing = object()
        return existing.generator == want.generator and all(
            existing.config.get(key, missing) == value for key, value in want.config.items()
        )
    return existing == want
