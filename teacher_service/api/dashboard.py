"""The dashboard: its page (``GET /``, public: it holds no data) and its data under
``/v1`` (token-protected like the rest of the API): one frame, or a live stream of them.

The page reads the stream with ``fetch`` rather than ``EventSource`` because only
``fetch`` can send the bearer token in a header (never in a URL, where logs keep it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api_schemas.dashboard import DashboardFrame
from teacher_service.api.deps import RuntimeDep
from teacher_service.api.responses import ON_EXPERIMENT, errors
from teacher_service.dashboard.history import DashboardHub, ExperimentHistory
from teacher_service.errors import ExperimentNotFoundError

#: The page's files (HTML, JS, CSS), shipped inside the package: nothing from a CDN.
STATIC_DIR = Path(str(resources.files("teacher_service.dashboard") / "static"))

#: Even with nothing new, send a frame this often so throughput visibly decays to zero.
IDLE_FRAME_S = 5.0

router = APIRouter(prefix="/v1/experiments", tags=["dashboard"])
pages = APIRouter(tags=["dashboard"])


async def get_hub(request: Request) -> DashboardHub:
    """The app's dashboard hub."""
    return request.app.state.dashboard


HubDep = Annotated[DashboardHub, Depends(get_hub)]


async def fresh_history(rt: RuntimeDep, hub: HubDep) -> ExperimentHistory:
    """The experiment's history, brought up to date before a stream starts, so that a log
    this version cannot read is answered with an error status, not a stream cut short."""
    history = hub.history(rt.id)
    await run_in_threadpool(history.refresh)
    return history
MaxPoints = Annotated[
    int, Query(ge=10, le=2048, description="Most points per series (server-side downsampling).")
]


@pages.get("/", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    """The dashboard (one page: the experiment list, or one experiment's live view)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get(
    "/{experiment_id}/dashboard",
    response_model=DashboardFrame,
    responses=errors(*ON_EXPERIMENT, 503),
)
async def get_frame(rt: RuntimeDep, hub: HubDep, max_points: MaxPoints = 300) -> DashboardFrame:
    """One dashboard frame: counters, throughput, downsampled series, the teacher's view."""
    history = hub.history(rt.id)

    def fresh_frame() -> DashboardFrame:
        history.refresh()
        return history.frame(rt, max_points)

    return await run_in_threadpool(fresh_frame)


@router.get(
    "/{experiment_id}/events",
    response_class=EventSourceResponse,
    responses=errors(*ON_EXPERIMENT),
)
async def stream_frames(
    rt: RuntimeDep,
    history: Annotated[ExperimentHistory, Depends(fresh_history)],
    max_points: MaxPoints = 300,
    interval: Annotated[
        float, Query(ge=0.1, le=60.0, description="Seconds between checks for news.")
    ] = 1.0,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=1_000_000,
            description="Frames to send before the stream ends (default: no end).",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events named ``frame`` (data: a DashboardFrame, id: its log seq): the
    first at once, then one whenever the experiment changed, checked every ``interval``
    seconds (and at least every few seconds, so throughput decays when it goes idle). The
    stream ends after ``limit`` frames, or when the experiment is deleted."""
    last_key: tuple[object, ...] | None = None
    last_sent = 0.0
    sent = 0
    while not rt.deleted:
        changed = await run_in_threadpool(history.refresh)  # the frame below reuses it
        # Repeats and late reports change counters without logging an event.
        key = (history.seq, history.evaluation_id, rt.counters.duplicates, rt.counters.late_reports)
        now = time.monotonic()
        if changed or key != last_key or now - last_sent >= IDLE_FRAME_S:
            try:
                frame = await run_in_threadpool(history.frame, rt, max_points)
            except ExperimentNotFoundError:
                return  # deleted meanwhile
            yield ServerSentEvent(data=frame, event="frame", id=str(frame.seq), retry=2000)
            last_key, last_sent = key, now
            sent += 1
            if limit is not None and sent >= limit:
                return
        await asyncio.sleep(interval)
