"""Teachers: one module per algorithm family behind one interface, found by ``kind``."""

from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher
from teacher_service.teachers.registry import available_kinds, make_teacher, teacher_class

__all__ = [
    "TaskProposal",
    "TaskResult",
    "Teacher",
    "available_kinds",
    "make_teacher",
    "teacher_class",
]
