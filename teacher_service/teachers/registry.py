"""Registry of teacher kinds -> classes. Modules are imported lazily so that a heavy
teacher (e.g. one needing torch) costs nothing until an experiment uses it."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from pydantic import BaseModel

from teacher_service.teachers.base import Teacher

_CLASSES: dict[str, str] = {
    "random": "teacher_service.teachers.random_teacher:RandomTeacher",
    "alp_gmm": "teacher_service.teachers.alp_gmm:ALPGMMTeacher",
    "covar_gmm": "teacher_service.teachers.covar_gmm:CovarGMMTeacher",
    "riac": "teacher_service.teachers.riac:RIACTeacher",
    "lp_tree": "teacher_service.teachers.lp_tree:LPTreeTeacher",
    "plr": "teacher_service.teachers.plr:PLRTeacher",
    "accel": "teacher_service.teachers.accel:ACCELTeacher",
    "paired": "teacher_service.teachers.paired:PAIREDTeacher",
}


class UnknownTeacherError(KeyError):
    """No teacher is registered under that kind."""


def available_kinds() -> list[str]:
    """Every registered kind."""
    return list(_CLASSES)


def teacher_class(kind: str) -> type[Teacher]:
    """The class implementing ``kind``."""
    try:
        module, _, name = _CLASSES[kind].partition(":")
    except KeyError:
        raise UnknownTeacherError(
            f"unknown teacher kind {kind!r}; known: {available_kinds()}"
        ) from None
    return getattr(importlib.import_module(module), name)


def make_teacher(space: Any, config: BaseModel, seed: int) -> Teacher:
    """Build the teacher for ``config.kind`` with its own generator seeded by ``seed``."""
    cls = teacher_class(config.kind)  # type: ignore[attr-defined]
    return cls(space, config, np.random.default_rng(seed))
