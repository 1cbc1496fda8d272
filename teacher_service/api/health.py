"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from teacher_service.api.deps import MetricsDep, require_token

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answers as soon as the server accepts requests."""
    return {"status": "ok"}


@router.get("/metrics", dependencies=[Depends(require_token)])
async def metrics(m: MetricsDep) -> Response:
    """Prometheus text exposition."""
    return Response(m.render(), media_type="text/plain; version=0.0.4")
