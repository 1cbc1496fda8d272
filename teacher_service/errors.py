"""Errors the service raises on purpose; each maps to one HTTP status with a clear message."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``status_code`` is the HTTP status the API answers with."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ExperimentNotFoundError(ServiceError):
    """No experiment has that id or name."""

    status_code = 404


class TaskNotFoundError(ServiceError):
    """A report names a task this experiment never issued."""

    status_code = 404


class InvalidReportError(ServiceError):
    """A report the teacher cannot use (e.g. PLR without the level score it needs)."""

    status_code = 422


class InvalidTasksError(ServiceError):
    """Tasks that cannot join the space: not a discrete space, names taken, too many."""

    status_code = 422


class InvalidExperimentError(ServiceError):
    """A space and teacher that validate on their own but that the teacher refuses together
    (e.g. ACCEL with a generator that cannot edit levels)."""

    status_code = 422


class NameTakenError(ServiceError):
    """An experiment with that name exists."""

    status_code = 409


class BatchTooLargeError(ServiceError):
    """More tasks or reports in one request than the server allows."""

    status_code = 413


class UnavailableError(ServiceError):
    """Storage failed; nothing was acknowledged, the client may retry."""

    status_code = 503


class AgentNotFoundError(ServiceError):
    """The experiment has no agent checkpoint with that id."""

    status_code = 404


class InvalidAgentError(ServiceError):
    """A bad agent id, an empty body, or a body that does not match its checksum."""

    status_code = 422
