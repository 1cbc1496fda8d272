"""Shared dependencies as ``Annotated`` aliases.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, and that
hop per dependency was the largest cost of a small request. The two on every experiment
request (the token check and the runtime lookup) read the app's state from the request
rather than through sub-dependencies: each dependency FastAPI solves costs some 20 µs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api_schemas.limits import MAX_NAME
from teacher_service.errors import ExperimentNotFoundError, UnavailableError
from teacher_service.manager import ExperimentManager
from teacher_service.metrics import Metrics
from teacher_service.runtime import ExperimentRuntime
from teacher_service.settings import Settings
from teacher_service.storage.store import ExperimentGoneError

_bearer = HTTPBearer(auto_error=False)
T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_manager(request: Request) -> ExperimentManager:
    """The app's experiment manager."""
    return request.app.state.manager


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ExperimentManager, Depends(get_manager)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the configured bearer token is presented (no-op when none is set)."""
    if not _matches(request.app.state.settings.token, credentials):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def token_accepted(request: Request) -> bool:
    """Whether ``request`` passes :func:`require_token` (for a caller that does not raise)."""
    token: str | None = request.app.state.settings.token
    return token is None or _matches(token, await _bearer(request))


def _matches(token: str | None, credentials: HTTPAuthorizationCredentials | None) -> bool:
    if token is None:
        return True
    return credentials is not None and secrets.compare_digest(
        credentials.credentials.encode(), token.encode()
    )


ExperimentKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME,
        description="The experiment's id or its unique name.",
    ),
]


async def get_runtime(experiment_id: ExperimentKey, request: Request) -> ExperimentRuntime:
    """The experiment named in the path, by id or by name (404 otherwise)."""
    return request.app.state.manager.get(experiment_id)


RuntimeDep = Annotated[ExperimentRuntime, Depends(get_runtime)]


async def call_runtime(
    rt: ExperimentRuntime, n_reports: int, fn: Callable[..., T], *args: Any
) -> T:
    """Run a runtime call inline on the event loop (teacher calls take microseconds), or in
    a worker thread when it could wait, so it never stalls the loop.

    It waits when the teacher needs background work (a fit) or the runtime a rebuild, and
    also when a worker thread holds the experiment's lock: the check and the inline call are
    made under the lock (re-entrant), so no other thread can change the answer in between.
    """
    if rt.lock.acquire(blocking=False):
        try:
            if not rt.may_block(n_reports):
                return fn(*args)
        finally:
            rt.lock.release()
    return await run_in_threadpool(fn, *args)


async def durable(fut: Future, runtime: ExperimentRuntime | None = None) -> None:
    """Wait until a queued write is committed; a failed write becomes a 503, and a write the
    store refused because its experiment was deleted meanwhile becomes a 404."""
    try:
        await asyncio.wrap_future(fut)
    except ExperimentGoneError as exc:
        raise ExperimentNotFoundError(f"{exc}; nothing was stored") from exc
    except Exception as exc:
        if runtime is not None:
            runtime.mark_write_failed()
        raise UnavailableError(f"storage failed, nothing was acknowledged (retry): {exc}") from exc
