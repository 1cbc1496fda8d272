"""``POST /v1/experiments/{id}/tasks``: the teacher proposes tasks."""

from __future__ import annotations

from fastapi import APIRouter

from api_schemas.tasks import TaskBatch, TaskRequest
from teacher_service.api.deps import MetricsDep, RuntimeDep, call_runtime, durable

router = APIRouter(prefix="/v1/experiments", tags=["tasks"])


@router.post("/{experiment_id}/tasks", response_model=TaskBatch)
async def create_tasks(body: TaskRequest, rt: RuntimeDep, metrics: MetricsDep) -> TaskBatch:
    """Issue ``n`` tasks; they are in the log before this answers."""
    tasks, fut = await call_runtime(rt, 0, rt.propose, body.n, body.worker)
    await durable(fut, rt)
    metrics.tasks_issued.labels(rt.name).inc(len(tasks))
    return TaskBatch(tasks=tasks)
