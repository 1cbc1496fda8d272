"""A small synchronous client for the teacher service (HTTP contract: docs/api.md).

Besides ``httpx``, ``pydantic``, ``orjson`` and ``api_schemas``, only the service's plain data
modules are imported here (the event and export-format definitions), never the server (its
app, runtime or storage), so students (Ray workers, gymnasium wrappers, any trainer) can use
it without pulling in the server's dependencies.

Modules: ``teacher`` (:class:`TeacherClient`), ``session`` (:class:`CurriculumSession`),
``http`` (the HTTP layer and its one retry rule), ``errors``, ``files`` (atomic writes) and
``exports`` (:func:`read_export`, :func:`export_dataframe`: reading a downloaded export).

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

from teacher_service.client.errors import (
    ApiError,
    ChecksumError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServerUnavailableError,
    TeacherClientError,
    UnauthorizedError,
)
from teacher_service.client.exports import export_dataframe, read_export
from teacher_service.client.session import CurriculumSession
from teacher_service.client.teacher import TeacherClient

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
    "export_dataframe",
    "read_export",
]
