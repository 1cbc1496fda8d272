"""``POST /v1/experiments/{id}/reports``: students report finished tasks."""

from __future__ import annotations

from fastapi import APIRouter

from api_schemas.reports import ReportAck, ReportBatch
from teacher_service.api.deps import MetricsDep, RuntimeDep, call_runtime, durable
from teacher_service.api.direct_route import DirectRoute
from teacher_service.api.responses import JSON_WRITE, ON_EXPERIMENT, errors

router = APIRouter(prefix="/v1/experiments", tags=["reports"], route_class=DirectRoute)


@router.post(
    "/{experiment_id}/reports",
    response_model=ReportAck,
    responses=errors(*ON_EXPERIMENT, *JSON_WRITE),
)
async def create_reports(body: ReportBatch, rt: RuntimeDep, metrics: MetricsDep) -> ReportAck:
    """Accept reports: all-or-nothing on unknown tasks (404); repeats count as duplicates."""
    ack, fut = await call_runtime(rt, len(body.reports), rt.report, body.reports)
    await durable(fut, rt)
    metrics.reports_accepted.labels(rt.name).inc(ack.accepted)
    metrics.reports_duplicate.labels(rt.name).inc(ack.duplicates)
    return ack
