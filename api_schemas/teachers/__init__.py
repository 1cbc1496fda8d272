"""Teacher configurations: one module per teacher family, registered in one place.

:data:`TEACHER_CONFIGS` is the registration point: the request union
(:data:`TeacherConfig`, discriminated on ``kind``), the service's registry of
implementations and ``GET /v1/teachers`` are all built from it. See
``docs/adding-a-teacher.md``.
"""

from __future__ import annotations

from functools import reduce
from operator import or_
from typing import Annotated, Any

from pydantic import BaseModel, Field

from api_schemas.teachers.base import TeacherConfigBase
from api_schemas.teachers.gmm import ALPGMMConfig, CovarGMMConfig, GMMConfigBase
from api_schemas.teachers.learning_progress import LPConfig, OMNIConfig
from api_schemas.teachers.lp_tree import LPTreeConfig
from api_schemas.teachers.paired import PAIREDConfig
from api_schemas.teachers.poet import POETConfig
from api_schemas.teachers.random_teacher import RandomConfig
from api_schemas.teachers.replay import (
    SCORE_INPUTS,
    ACCELConfig,
    PLRConfig,
    ReplayConfigBase,
    ScoreFunction,
)
from api_schemas.teachers.riac import RIACConfig
from api_schemas.teachers.sec import SECConfig
from api_schemas.wire import RESPONSE

#: Every teacher, in the order ``GET /v1/teachers`` lists them.
TEACHER_CONFIGS: tuple[type[TeacherConfigBase], ...] = (
    RandomConfig,
    ALPGMMConfig,
    CovarGMMConfig,
    RIACConfig,
    LPTreeConfig,
    PLRConfig,
    ACCELConfig,
    PAIREDConfig,
    POETConfig,
    LPConfig,
    OMNIConfig,
    SECConfig,
)

TeacherConfig = Annotated[reduce(or_, TEACHER_CONFIGS), Field(discriminator="kind")]
"""The ``teacher`` field of a request: any registered config, chosen by ``kind``."""


class TeacherInfo(BaseModel):
    """One entry of ``GET /v1/teachers``."""

    model_config = RESPONSE

    kind: str
    spaces: list[str]
    description: str
    hyperparameters: dict[str, Any] = Field(description="JSON schema with defaults")


class TeacherList(BaseModel):
    """``GET /v1/teachers``."""

    model_config = RESPONSE

    data: list[TeacherInfo]
    count: int


__all__ = [
    "SCORE_INPUTS",
    "TEACHER_CONFIGS",
    "ACCELConfig",
    "ALPGMMConfig",
    "CovarGMMConfig",
    "GMMConfigBase",
    "LPConfig",
    "LPTreeConfig",
    "OMNIConfig",
    "PAIREDConfig",
    "PLRConfig",
    "POETConfig",
    "RIACConfig",
    "RandomConfig",
    "ReplayConfigBase",
    "SECConfig",
    "ScoreFunction",
    "TeacherConfig",
    "TeacherConfigBase",
    "TeacherInfo",
    "TeacherList",
]
