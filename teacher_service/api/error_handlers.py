"""Every error answer of the service has one body, ``ErrorResponse``: this module makes it.

``{"detail": "<one line>"}``, plus ``"errors": [{"loc", "msg", "type"}, ...]`` for a 422. The
handlers here turn our own errors (:class:`~teacher_service.errors.ServiceError`), the
framework's (an unknown path, a missing token, a body that is not UTF-8), validation errors,
storage failures, an event log this version cannot read and bugs into that body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from teacher_service.errors import ServiceError
from teacher_service.event_log import EventLogError
from teacher_service.storage.store import StorageError

log = logging.getLogger(__name__)

#: Methods a route may serve (the candidates for a 405's ``Allow``).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Field errors named one by one in ``detail`` (all are in ``errors``).
_DETAIL_FIELDS = 10


def _clean(text: str) -> str:
    """``text`` with lone surrogates (sent as JSON escapes) shown as escapes, not dropped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    """The JSON bytes of an ``ErrorResponse``."""
    body: dict[str, Any] = {"detail": _clean(detail)}
    if errors is not None:
        body["errors"] = errors
    return orjson.dumps(body)


def error_response(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ``ErrorResponse`` answer."""
    return Response(
        error_body(status, detail, errors),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def field_errors(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as ``FieldError`` dicts (``loc``, ``msg``, ``type``)."""
    return [
        {
            "loc": [x if isinstance(x, int) else _clean(str(x)) for x in e.get("loc", ())],
            "msg": _clean(str(e.get("msg"))),
            "type": str(e.get("type")),
        }
        for e in raw
    ]


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """One line naming each invalid field: ``body.n: Input should be ...; ...``."""
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors[:_DETAIL_FIELDS]]
    more = len(errors) - _DETAIL_FIELDS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``).

    Starlette names only the methods of the first route whose path matches, but a path such
    as ``/v1/experiments/{id}`` has one route per method.
    """
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with an ``ErrorResponse``."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> Response:
        return error_response(exc.status_code, exc.detail)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        # 401 from the token check, 404 for an unknown path, 405, 400 for a body that is
        # not UTF-8 JSON.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc.errors())
        return error_response(422, validation_detail(errors), errors)

    @app.exception_handler(StorageError)
    @app.exception_handler(SQLAlchemyError)
    async def _storage_error(_: Request, exc: Exception) -> Response:
        log.error("storage failed: %s", exc)
        return error_response(503, f"storage failed, nothing was changed (retry): {exc}")

    @app.exception_handler(EventLogError)
    async def _unreadable_log(_: Request, exc: EventLogError) -> Response:
        # Not a bug to trace back: the log holds an event this version cannot read (most
        # likely written by a newer version); the message says which.
        log.error("event log unreadable: %s", exc)
        return error_response(500, f"the experiment's event log cannot be read: {exc}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(exc).__name__}")
