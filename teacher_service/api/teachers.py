"""``GET /v1/teachers``: every teacher kind with its spaces and hyper-parameter schema."""

from __future__ import annotations

from fastapi import APIRouter

from api_schemas.teachers import TEACHER_CONFIGS, TeacherInfo, TeacherList
from teacher_service.api.responses import PROTECTED, errors

router = APIRouter(prefix="/v1/teachers", tags=["teachers"])


@router.get("", response_model=TeacherList, responses=errors(*PROTECTED))
async def list_teachers() -> TeacherList:
    """Kinds, accepted space kinds, a one-line description and a JSON schema with defaults."""
    data = [
        TeacherInfo(
            kind=cfg.kind_name(),
            spaces=list(cfg.SPACES),
            description=cfg.DESCRIPTION,
            hyperparameters=cfg.model_json_schema(),
        )
        for cfg in TEACHER_CONFIGS
    ]
    return TeacherList(data=data, count=len(data))
