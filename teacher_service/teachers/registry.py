"""Registry of teacher kinds -> implementations, built from the configs' declarations.

Each config class in :data:`api_schemas.teachers.TEACHER_CONFIGS` names its implementation
(``TEACHER = "module:Class"``). Modules are imported lazily so that a heavy teacher (e.g.
one needing torch) costs nothing until an experiment uses it.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from api_schemas.teachers import TEACHER_CONFIGS, TeacherConfigBase
from teacher_service.teachers.base import Teacher

_CONFIGS: dict[str, type[TeacherConfigBase]] = {cfg.kind_name(): cfg for cfg in TEACHER_CONFIGS}


class UnknownTeacherError(KeyError):
    """No teacher is registered under that kind."""


def available_kinds() -> list[str]:
    """Every registered kind, in registration order."""
    return list(_CONFIGS)


def teacher_config_class(kind: str) -> type[TeacherConfigBase]:
    """The config class that declares ``kind``."""
    try:
        return _CONFIGS[kind]
    except KeyError:
        raise UnknownTeacherError(
            f"unknown teacher kind {kind!r}; known: {available_kinds()}"
        ) from None


def teacher_class(kind: str) -> type[Teacher]:
    """The class implementing ``kind`` (its module imported on first use)."""
    config = teacher_config_class(kind)
    module, _, name = config.TEACHER.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Teacher)) or cls.config_model is not config:
        raise TypeError(f"{config.TEACHER} does not implement {config.__name__}")
    return cls


def make_teacher(space: Any, config: TeacherConfigBase, seed: int) -> Teacher:
    """Build the teacher for ``config.kind`` with its own generator seeded by ``seed``."""
    cls = teacher_class(config.kind_name())
    return cls(space, config, np.random.default_rng(seed))
