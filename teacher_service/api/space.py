"""``POST /v1/experiments/{id}/space/tasks``: tasks join a running discrete experiment.

How an external generator plugs in (e.g. a language model writing new tasks, as OMNI-EPIC
does): the addition is logged like every change, so a restarted server replays it, and the
teacher is told (``omni`` judges a new task's interestingness when it arrives).
"""

from __future__ import annotations

from fastapi import APIRouter

from api_schemas.spaces import TaskAddition, TasksAdded
from teacher_service.api.deps import RuntimeDep, call_runtime, durable
from teacher_service.api.responses import JSON_WRITE, ON_EXPERIMENT, errors

router = APIRouter(prefix="/v1/experiments", tags=["space"])


@router.post(
    "/{experiment_id}/space/tasks",
    response_model=TasksAdded,
    responses=errors(*ON_EXPERIMENT, *JSON_WRITE),
)
async def add_space_tasks(body: TaskAddition, rt: RuntimeDep) -> TasksAdded:
    """Add named tasks (with optional descriptions and categories) to a discrete space: 422
    for another kind of space, a name already taken or repeated, or too many tasks."""
    added, fut = await call_runtime(rt, 0, rt.add_tasks, body.tasks)
    await durable(fut, rt)
    return added
