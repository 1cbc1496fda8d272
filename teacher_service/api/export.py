"""``GET /v1/experiments/{id}/export``: the experiment's full history for analysis.

The rows are described in :mod:`teacher_service.export`. The response is streamed: events
are read from the database in chunks, in worker threads (the reads block), so neither memory
nor the event loop depend on the length of the history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from teacher_service import export
from teacher_service.api.deps import RuntimeDep, durable
from teacher_service.api.responses import ON_EXPERIMENT, errors

router = APIRouter(prefix="/v1/experiments", tags=["export"])


async def _chain(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in iterate_in_threadpool(rest):
        yield chunk


@router.get(
    "/{experiment_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The history, streamed.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        },
        **errors(*ON_EXPERIMENT, 406, 503),
    },
)
async def export_history(
    rt: RuntimeDep,
    format: Literal["jsonl", "parquet"] = Query(
        "jsonl", description="`jsonl` (JSON lines) or `parquet` (needs pyarrow on the server)."
    ),
) -> StreamingResponse:
    """Every task issued, report accepted, task expired and evaluation stored, as JSON lines
    (a header line first) or as one Parquet file. The export covers the log up to the moment
    of the request; events logged while it streams are left out."""
    if format == "parquet" and not export.parquet_available():
        raise HTTPException(
            status_code=status.HTTP_406_NOT_ACCEPTABLE,
            detail=f"Parquet export needs pyarrow on the server: {export.PARQUET_HINT}",
        )
    plan = await run_in_threadpool(export.plan_export, rt)
    # Events up to plan.last_seq may still be queued for the writer thread: wait until
    # everything enqueued so far is committed, so the export includes all of them.
    await durable(rt.store.barrier())
    chunks = export.iter_export(rt.store, plan, format)
    # Pull the first chunk before answering: a storage failure in the first queries then
    # becomes an error status instead of a truncated 200.
    first = await run_in_threadpool(next, chunks, b"")
    filename = export.export_filename(rt.name, format)
    return StreamingResponse(
        _chain(first, chunks),
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
