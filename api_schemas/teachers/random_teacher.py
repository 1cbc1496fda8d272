"""Hyper-parameters of the ``random`` teacher (domain randomisation)."""

from __future__ import annotations

from typing import ClassVar, Literal

from api_schemas.teachers.base import TeacherConfigBase


class RandomConfig(TeacherConfigBase):
    """Domain randomisation: tasks drawn uniformly from the space (the usual baseline)."""

    SPACES: ClassVar[tuple[str, ...]] = ("box", "discrete", "level")
    DESCRIPTION: ClassVar[str] = (
        "Uniform sampling over the task space (domain randomisation; for level spaces, "
        "levels from the generator with randomised parameters)."
    )

    TEACHER: ClassVar[str] = "teacher_service.teachers.random_teacher:RandomTeacher"
    kind: Literal["random"] = "random"
