"""Pydantic v2 models of the autocurriculum HTTP contract (data and validation only)."""

from api_schemas.errors import ErrorResponse
from api_schemas.experiments import (
    ExperimentCounters,
    ExperimentCreate,
    ExperimentList,
    ExperimentPublic,
    ExperimentState,
)
from api_schemas.reports import Report, ReportAck, ReportBatch
from api_schemas.spaces import (
    BoxDim,
    BoxSpace,
    DiscreteSpace,
    DiscreteTaskSpec,
    LevelSpace,
    TaskSpace,
)
from api_schemas.tasks import Task, TaskBatch, TaskMode, TaskRequest
from api_schemas.teachers import (
    ALPGMMConfig,
    RandomConfig,
    TeacherConfig,
    TeacherInfo,
    TeacherList,
)

__all__ = [
    "ALPGMMConfig",
    "BoxDim",
    "BoxSpace",
    "DiscreteSpace",
    "DiscreteTaskSpec",
    "ErrorResponse",
    "ExperimentCounters",
    "ExperimentCreate",
    "ExperimentList",
    "ExperimentPublic",
    "ExperimentState",
    "LevelSpace",
    "RandomConfig",
    "Report",
    "ReportAck",
    "ReportBatch",
    "Task",
    "TaskBatch",
    "TaskMode",
    "TaskRequest",
    "TaskSpace",
    "TeacherConfig",
    "TeacherInfo",
    "TeacherList",
]
