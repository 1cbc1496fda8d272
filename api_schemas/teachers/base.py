"""What every teacher configuration declares: its kind, its spaces, its implementation."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from api_schemas.wire import kind_required


class TeacherConfigBase(BaseModel):
    """Base of every teacher's hyper-parameters (scikit-learn style: keyword defaults,
    validated once, frozen).

    A concrete config is a teacher's one declaration: its ``kind`` field (a ``Literal``
    whose default is the kind), the task-space kinds it accepts (``SPACES``), the student
    roles it issues tasks for (``ROLES``), a one-line ``DESCRIPTION`` for
    ``GET /v1/teachers``, and ``TEACHER``, the ``module:Class`` path of its implementation
    (imported only when an experiment uses it, so a teacher needing torch costs nothing
    until then). Listing the class in :data:`api_schemas.teachers.TEACHER_CONFIGS`
    registers it everywhere: the request union, the registry, ``GET /v1/teachers``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=kind_required)

    SPACES: ClassVar[tuple[str, ...]] = ()
    #: Student roles the teacher issues tasks for (PAIRED); empty for one student.
    ROLES: ClassVar[tuple[str, ...]] = ()
    #: Whether students train a changing population of agents, one per task ``agent_id``
    #: (POET; docs/poet.md).
    POPULATION: ClassVar[bool] = False
    DESCRIPTION: ClassVar[str] = ""
    TEACHER: ClassVar[str] = ""

    @classmethod
    def kind_name(cls) -> str:
        """The kind this config declares (the default of its ``kind`` field)."""
        return cls.model_fields["kind"].default


def check_reward_bounds(low: float, high: float) -> None:
    """Refuse reward bounds that cannot normalise a return (``low`` must be < ``high``)."""
    if not low < high:
        raise ValueError(f"reward_low ({low}) must be < reward_high ({high})")
