"""The errors the client raises, and the mapping from an HTTP error answer to one of them."""

from __future__ import annotations

import httpx


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


def response_detail(resp: httpx.Response) -> str:
    """The ``detail`` of an error answer, or its raw text when the body is not such JSON.

    The body must have been read (``resp.read()`` for a streamed response).
    """
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else str(detail)
    return str(body)


def api_error(resp: httpx.Response, attempts: int) -> ApiError:
    """The :class:`ApiError` subclass for an error answer that is not retried.

    Args:
        resp: the answer (its body read).
        attempts: how many attempts the call made, this one included.
    """
    cls = _ERRORS_BY_STATUS.get(resp.status_code, ApiError)
    return cls(
        resp.status_code,
        response_detail(resp),
        method=resp.request.method,
        url=str(resp.request.url),
        attempts=attempts,
    )


def fresh_copy(exc: TeacherClientError) -> TeacherClientError:
    """A new exception equal to ``exc`` (safe to raise in several threads)."""
    return exc.copy() if isinstance(exc, ApiError) else TeacherClientError(str(exc))
