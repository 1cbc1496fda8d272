"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from teacher_service.api.deps import MetricsDep, require_token
from teacher_service.api.responses import PROTECTED, errors

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answers as soon as the server accepts requests."""
    return {"status": "ok"}


@router.get(
    "/metrics",
    dependencies=[Depends(require_token)],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(*PROTECTED),
    },
)
async def metrics(m: MetricsDep) -> Response:
    """Prometheus text exposition."""
    return Response(m.render(), media_type="text/plain; version=0.0.4")
