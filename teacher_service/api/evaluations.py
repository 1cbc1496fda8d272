"""``/v1/experiments/{id}/evaluations``: held-out test results posted by evaluators."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, status
from starlette.concurrency import run_in_threadpool

from api_schemas.evaluations import (
    EvaluationAck,
    EvaluationBatch,
    EvaluationList,
    EvaluationRecord,
)
from teacher_service.api.deps import RuntimeDep, durable
from teacher_service.api.responses import JSON_WRITE, ON_EXPERIMENT, errors

router = APIRouter(prefix="/v1/experiments", tags=["evaluations"])


@router.post(
    "/{experiment_id}/evaluations",
    response_model=EvaluationAck,
    status_code=status.HTTP_201_CREATED,
    responses=errors(*ON_EXPERIMENT, *JSON_WRITE),
)
async def post_evaluations(body: EvaluationBatch, rt: RuntimeDep) -> EvaluationAck:
    """Store evaluation results; answered once they are committed (503 if storage fails)."""
    payloads = [e.model_dump_json() for e in body.evaluations]
    await durable(rt.store.add_evaluations(rt.id, payloads))
    return EvaluationAck(accepted=len(payloads))


@router.get(
    "/{experiment_id}/evaluations",
    response_model=EvaluationList,
    responses=errors(*ON_EXPERIMENT, 503),
)
async def list_evaluations(
    rt: RuntimeDep,
    limit: int = Query(default=10_000, ge=1, le=100_000, description="Newest results kept."),
) -> EvaluationList:
    """The experiment's evaluations, oldest first (at most ``limit`` of the newest)."""
    rows = await run_in_threadpool(rt.store.list_evaluations, rt.id, limit)
    data = [EvaluationRecord(**json.loads(p), received_at=t) for p, t in rows]
    return EvaluationList(data=data, count=len(data))
