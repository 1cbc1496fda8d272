"""``POST /v1/experiments/{id}/tasks``: the teacher proposes tasks."""

from __future__ import annotations

from fastapi import APIRouter

from api_schemas.tasks import TaskBatch, TaskRequest
from teacher_service.api.deps import MetricsDep, RuntimeDep, call_runtime, durable
from teacher_service.api.direct_route import DirectRoute
from teacher_service.api.responses import JSON_WRITE, ON_EXPERIMENT, errors

router = APIRouter(prefix="/v1/experiments", tags=["tasks"], route_class=DirectRoute)


@router.post(
    "/{experiment_id}/tasks",
    response_model=TaskBatch,
    responses=errors(*ON_EXPERIMENT, *JSON_WRITE),
)
async def create_tasks(body: TaskRequest, rt: RuntimeDep, metrics: MetricsDep) -> TaskBatch:
    """Issue ``n`` tasks; they are in the log before this answers."""
    tasks, fut = await call_runtime(rt, 0, rt.propose, body.n, body.worker)
    await durable(fut, rt)
    metrics.tasks_issued.labels(rt.name).inc(len(tasks))
    return TaskBatch(tasks=tasks)
