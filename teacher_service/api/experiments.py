"""``/v1/experiments``: create, list, show, state, delete."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from api_schemas.experiments import (
    ExperimentCreate,
    ExperimentList,
    ExperimentPublic,
    ExperimentState,
)
from teacher_service.api.deps import ManagerDep, RuntimeDep
from teacher_service.api.responses import JSON_WRITE, ON_EXPERIMENT, PROTECTED, errors
from teacher_service.spaces import SpaceConfigError, normalise_space

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExperimentPublic,
    responses={
        201: {
            "description": "Created (and durable).",
            "headers": {
                "Location": {
                    "description": "The new experiment's path.",
                    "schema": {"type": "string"},
                }
            },
        },
        **errors(*PROTECTED, *JSON_WRITE, 409),
    },
)
async def create_experiment(
    body: ExperimentCreate, manager: ManagerDep, response: Response
) -> ExperimentPublic:
    """Create an experiment (409 if the name is taken). Answers once it is durable."""
    try:
        # The level generator checks its config; what is stored is the normalised space.
        body = body.model_copy(update={"space": normalise_space(body.space)})
    except SpaceConfigError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "space", *e["loc"])} for e in exc.errors]
        ) from None
    rec, fut = await run_in_threadpool(manager.begin_create, body)
    error: BaseException | None = None
    try:
        await asyncio.wrap_future(fut)
    except Exception as exc:
        error = exc
    rt = manager.finish_create(rec, error)
    response.headers["Location"] = f"{router.prefix}/{rt.id}"
    return manager.public(rt)


@router.get("", response_model=ExperimentList, responses=errors(*PROTECTED))
async def list_experiments(manager: ManagerDep) -> ExperimentList:
    """Every experiment with its counters."""
    data = [manager.public(rt) for rt in manager.all()]
    return ExperimentList(data=data, count=len(data))


@router.get("/{experiment_id}", response_model=ExperimentPublic, responses=errors(*ON_EXPERIMENT))
async def get_experiment(rt: RuntimeDep, manager: ManagerDep) -> ExperimentPublic:
    """One experiment, by id or name."""
    return manager.public(rt)


@router.get(
    "/{experiment_id}/state",
    response_model=ExperimentState,
    responses=errors(*ON_EXPERIMENT, 503),
)
async def get_state(rt: RuntimeDep) -> ExperimentState:
    """Counters plus the teacher's own view (what the dashboard draws). After a failed
    write the experiment is first rebuilt from its log (503 if storage still fails)."""
    return await run_in_threadpool(rt.state)


@router.delete(
    "/{experiment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        204: {"description": "Deleted, durably, with everything stored for it."},
        **errors(*ON_EXPERIMENT, 503),
    },
)
async def delete_experiment(rt: RuntimeDep, manager: ManagerDep, request: Request) -> Response:
    """Delete the experiment and everything stored for it: its log, snapshots, evaluations
    and agent checkpoints. Answers 204 once the deletion is committed; requests on the
    experiment still in flight then get 404, and a new experiment may take its name. On a
    storage failure (503) nothing is deleted."""
    rt, fut = await run_in_threadpool(manager.begin_delete, rt.id)
    error: BaseException | None = None
    try:
        await asyncio.wrap_future(fut)
    except Exception as exc:
        error = exc
    await run_in_threadpool(manager.finish_delete, rt, error)
    request.app.state.dashboard.forget(rt.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
