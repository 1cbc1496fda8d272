"""Builds the FastAPI app: settings, store, experiment manager, routers, error handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from teacher_service.api import (
    agents,
    dashboard,
    evaluations,
    experiments,
    export,
    health,
    reports,
    space,
    tasks,
    teachers,
)
from teacher_service.api.deps import require_token
from teacher_service.api.error_handlers import error_body, install_error_handlers
from teacher_service.api.responses import add_links, errors_as_json
from teacher_service.dashboard.history import DashboardHub
from teacher_service.errors import ExperimentNotFoundError
from teacher_service.fit_pool import FitPool
from teacher_service.gc_freeze import ModuleFreezer
from teacher_service.interestingness import Judges
from teacher_service.manager import ExperimentManager
from teacher_service.metrics import Metrics
from teacher_service.settings import Settings
from teacher_service.spaces import add_generator_schemas
from teacher_service.storage import Store

log = logging.getLogger(__name__)


#: Methods whose requests carry a body (the only ones the body limit applies to).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _LimitsAndTiming:
    """Pure ASGI middleware: 413 for oversize bodies, latency histogram per route."""

    def __init__(self, app: ASGIApp, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in _BODY_METHODS:
            length = dict(scope.get("headers", ())).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body:
                await _send_json(send, 413, f"request body exceeds {self.max_body} bytes")
                return
        t0 = time.perf_counter()
        code = [500]
        seen = [0]

        async def limited_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                seen[0] += len(msg.get("body", b""))
                if seen[0] > self.max_body:
                    raise _BodyTooLargeError
            return msg

        async def send_wrapper(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                code[0] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLargeError:
            await _send_json(send, 413, f"request body exceeds {self.max_body} bytes")
            code[0] = 413
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.request_seconds.labels(scope["method"], path, str(code[0])).observe(
            time.perf_counter() - t0
        )


class _BodyTooLargeError(Exception):
    pass


async def _send_json(send: Send, status: int, detail: str) -> None:
    data = error_body(status, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _api_description(settings: Settings) -> str:
    return (
        "Curriculum teachers over HTTP: propose tasks, receive reports.\n\n"
        "Every error answer (4xx and 5xx) has one body, `ErrorResponse`: "
        '`{"detail": "<one line>", "errors": [...]}`, where `errors` lists each invalid '
        "field of a 422 answer. Every limit the server enforces on a request is stated in "
        "this document, except the body size: request bodies above "
        f"{settings.max_body_bytes} bytes are answered 413. Every path that names an "
        "experiment accepts its id or its unique name."
    )


#: The API's sections in reading order, each with its one-line summary for ``/docs``; the
#: document lists its paths in this order too (the routers are matched in another: see
#: create_app).
_TAGS = [
    {"name": "health", "description": "Liveness and Prometheus metrics."},
    {"name": "teachers", "description": "The teacher kinds this server offers."},
    {"name": "experiments", "description": "Create, read and delete experiments."},
    {"name": "tasks", "description": "The teacher proposes tasks."},
    {"name": "reports", "description": "Students report finished tasks."},
    {"name": "space", "description": "Add tasks to a discrete space."},
    {"name": "evaluations", "description": "Held-out evaluations of the student."},
    {"name": "agents", "description": "Agents (weights) of population teachers."},
    {"name": "export", "description": "The experiment's history as JSON lines or Parquet."},
    {"name": "dashboard", "description": "The live dashboard and its data."},
]


def _in_reading_order(doc: dict[str, Any]) -> dict[str, Any]:
    """List ``doc``'s paths section by section, in the order of :data:`_TAGS` (a path's
    section is its first operation's tag), not in the order the routers are matched in."""
    rank = {tag["name"]: i for i, tag in enumerate(_TAGS)}

    def section(item: tuple[str, dict[str, Any]]) -> int:
        tags = [tag for op in item[1].values() for tag in op.get("tags", ())]
        return rank.get(tags[0], len(rank)) if tags else len(rank)

    doc["paths"] = dict(sorted(doc["paths"].items(), key=section))
    return doc


def _finish_document(app: FastAPI) -> None:
    """Build the OpenAPI document once, with every error answer declared as JSON and the
    links between operations."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = add_generator_schemas(add_links(errors_as_json(build())))
            app.openapi_schema = _in_reading_order(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The store opens (and experiments are replayed) at start-up."""
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url(), sqlite_synchronous=settings.sqlite_synchronous)
        fit_pool = FitPool(settings.fit_processes) if settings.fit_processes else None
        manager = ExperimentManager(
            store,
            judges=Judges(settings, background=fit_pool),
            fit_pool=fit_pool,
            snapshot_every=settings.snapshot_every,
            max_outstanding=settings.max_outstanding,
        )
        await run_in_threadpool(manager.load_all)
        metrics.watch(manager)
        app.state.store = store
        app.state.manager = manager
        app.state.dashboard = DashboardHub(store)
        freezer = ModuleFreezer()
        freezer.after_startup()
        sweeper = asyncio.create_task(_sweep(manager, settings.sweep_interval, freezer))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            manager.close()
            await run_in_threadpool(store.close)

    app = FastAPI(
        title="autocurriculum teacher service",
        version="1",
        lifespan=lifespan,
        description=_api_description(settings),
        # operationId = the route function's name (create_experiment, create_tasks, ...):
        # what generated clients call their methods.
        generate_unique_id_function=lambda route: route.name,
        openapi_tags=_TAGS,
    )
    app.state.settings = settings
    app.state.metrics = metrics

    install_error_handlers(app)
    _finish_document(app)
    app.include_router(health.router)
    app.include_router(dashboard.pages)  # the page itself holds no data: no token
    app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    auth = [Depends(require_token)]
    # A request is matched against the routes in this order: the students' two calls first
    # (each route tried before the match costs a few microseconds on every request).
    for r in (
        tasks.router,
        reports.router,
        teachers.router,
        experiments.router,
        space.router,
        evaluations.router,
        agents.router,
        export.router,
        dashboard.router,
    ):
        app.include_router(r, dependencies=auth)
    app.add_middleware(_LimitsAndTiming, max_body=settings.max_body_bytes, metrics=metrics)
    return app


async def _sweep(manager: ExperimentManager, interval: float, freezer: ModuleFreezer) -> None:
    """Expire overdue tasks even when no request arrives; freeze what new imports loaded."""
    while True:
        await asyncio.sleep(interval)
        freezer.after_imports()
        for rt in manager.all():
            try:
                await run_in_threadpool(rt.sweep)
            except ExperimentNotFoundError:
                pass  # deleted since the list was taken
            except Exception:
                log.exception("lease sweep failed for %s", rt.name)
