"""The events of an experiment's write-ahead log: their types, stored encoding and decoding.

Every call that changes a teacher is one event (docs/architecture.md#runtime-and-storage):

- ``tasks`` (:class:`TaskEvent`): a propose call and what it issued,
- ``reports`` (:class:`ReportEvent`): the reports it accepted,
- ``expire`` (:class:`ExpireEvent`): tasks whose lease ran out,
- ``space`` (:class:`SpaceEvent`): tasks that joined a discrete space,
- ``judgement`` (:class:`JudgementEvent`): a model's answers the teacher asked for (OMNI's
  model of interestingness), made once, off the request path.

The store keeps each as a ``kind`` string and a JSON payload (orjson); :func:`encode` and
:func:`decode` are the only code that writes or reads that payload, so the runtime's replay,
the export and the dashboard read the log one way. The stored format is fixed: databases
written by earlier versions load unchanged.

One rule for a kind this version does not know: :func:`decode` raises
:class:`UnknownEventError`, naming the experiment, the event's ``seq`` and its kind. A log
written by a newer version is never silently half-read: replay, export and the dashboard
all stop there, and the API answers with that message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import orjson

from api_schemas.reports import Report
from teacher_service.teachers.base import TaskProposal

if TYPE_CHECKING:
    from teacher_service.storage import EventRow, Store


# ----------------------------------------------------------------------- errors
class EventLogError(ValueError):
    """A stored event this version cannot read.

    Attributes:
        experiment_id: the experiment whose log holds it.
        seq: the event's sequence number.
        kind: the event's stored kind.
    """

    def __init__(self, experiment_id: str, seq: int, kind: str, problem: str) -> None:
        super().__init__(f"experiment {experiment_id}: event {seq} {problem}")
        self.experiment_id = experiment_id
        self.seq = seq
        self.kind = kind


class UnknownEventError(EventLogError):
    """An event of a kind this version does not know (written by a newer version)."""

    def __init__(self, experiment_id: str, seq: int, kind: str) -> None:
        known = ", ".join(sorted(KINDS))
        super().__init__(
            experiment_id,
            seq,
            kind,
            f"has unknown kind {kind!r} (this version reads {known}); the log was probably "
            "written by a newer version of autocurriculum",
        )


class MalformedEventError(EventLogError):
    """An event of a known kind whose payload does not decode."""

    def __init__(self, experiment_id: str, seq: int, kind: str, reason: str) -> None:
        super().__init__(experiment_id, seq, kind, f"of kind {kind!r} cannot be decoded: {reason}")


# ----------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A propose call: ``n`` tasks issued to ``worker``, indices ``first`` onwards.

    Attributes:
        n: tasks asked for (equal to ``len(tasks)``).
        worker: who asked, if they said.
        first: the index of the first task issued.
        deadline: when their lease ends (unix time).
        tasks: the teacher's proposals, in index order.
    """

    kind: ClassVar[str] = "tasks"
    n: int
    worker: str | None
    first: int
    deadline: float
    tasks: tuple[TaskProposal, ...]

    def to_payload(self) -> dict[str, Any]:
        """The stored JSON object (see :func:`encode`)."""
        return {
            "n": self.n,
            "worker": self.worker,
            "first": self.first,
            "deadline": self.deadline,
            "tasks": [p.to_dict() for p in self.tasks],
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(
            n=int(data["n"]),
            worker=data["worker"],
            first=int(data["first"]),
            deadline=float(data["deadline"]),
            tasks=tuple(TaskProposal.from_dict(t) for t in data["tasks"]),
        )


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One accepted report as logged: a :class:`~api_schemas.reports.Report` keyed by the
    task's index instead of its wire id.

    Attributes:
        index: the reported task's index.
        episode_return: the episode's return (mean over ``episodes``).
        success: whether it was solved, if the student said.
        length: steps of the episode, if the student said.
        scores: per-level scores by name.
        episodes: episodes averaged into the report.
    """

    index: int
    episode_return: float
    success: bool | None = None
    length: int | None = None
    scores: dict[str, float] = field(default_factory=dict)
    episodes: int = 1

    @classmethod
    def from_report(cls, index: int, report: Report) -> Self:
        """The entry of ``report``, of the task with this index."""
        return cls(
            index=index,
            episode_return=report.episode_return,
            success=report.success,
            length=report.length,
            scores=dict(report.scores),
            episodes=report.episodes,
        )

    def to_payload(self) -> dict[str, Any]:
        """``{"i": index, "episode_return": ..., ...}``, leaving out keys at their default
        (as ``Report.model_dump(exclude_defaults=True)`` did: the stored bytes are fixed)."""
        out: dict[str, Any] = {"i": self.index, "episode_return": self.episode_return}
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            default = f.default if f.default_factory is MISSING else f.default_factory()
            if value != default:
                out[f.name] = value
        return out

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(
            index=int(data["i"]),
            episode_return=float(data["episode_return"]),
            success=data.get("success"),
            length=data.get("length"),
            scores=data.get("scores", {}),
            episodes=int(data.get("episodes", 1)),
        )


@dataclass(frozen=True, slots=True)
class ReportEvent:
    """Reports accepted in one call, each of a distinct outstanding task."""

    kind: ClassVar[str] = "reports"
    reports: tuple[ReportEntry, ...]

    def to_payload(self) -> dict[str, Any]:
        """The stored JSON object (see :func:`encode`)."""
        return {"reports": [r.to_payload() for r in self.reports]}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(reports=tuple(ReportEntry.from_payload(r) for r in data["reports"]))


@dataclass(frozen=True, slots=True)
class ExpireEvent:
    """Outstanding tasks whose lease ran out (or that were expired early), by index."""

    kind: ClassVar[str] = "expire"
    indices: tuple[int, ...]

    def to_payload(self) -> dict[str, Any]:
        """The stored JSON object (see :func:`encode`)."""
        return {"indices": list(self.indices)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(indices=tuple(int(i) for i in data["indices"]))


#: Any event of the log.
@dataclass(frozen=True, slots=True)
class SpaceEvent:
    """Tasks that joined a discrete space, as their specs (``name``, optional
    ``description`` and ``category``)."""

    kind: ClassVar[str] = "space"
    tasks: tuple[dict[str, Any], ...]

    def to_payload(self) -> dict[str, Any]:
        """The stored JSON object (see :func:`encode`)."""
        return {"tasks": list(self.tasks)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(tasks=tuple(dict(t) for t in data["tasks"]))


@dataclass(frozen=True, slots=True)
class JudgementEvent:
    """A model's answers to a teacher's judgement request, as the teacher takes them
    (:meth:`~teacher_service.teachers.base.Teacher.judge`): logged so that replay applies
    them at the same place and never asks the model again."""

    kind: ClassVar[str] = "judgement"
    judgement: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        """The stored JSON object (see :func:`encode`)."""
        return {"judgement": self.judgement}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_payload`."""
        return cls(judgement=dict(data["judgement"]))


Event = TaskEvent | ReportEvent | ExpireEvent | SpaceEvent | JudgementEvent
#: The event type of each stored kind.
EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType(
    {
        cls.kind: cls
        for cls in (TaskEvent, ReportEvent, ExpireEvent, SpaceEvent, JudgementEvent)
    }
)
#: The kinds this version reads.
KINDS: frozenset[str] = frozenset(EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as read back from the log.

    Attributes:
        seq: its sequence number in the experiment's log (1, 2, ...).
        time: when the server logged it (unix time).
        event: the decoded event.
    """

    seq: int
    time: float
    event: Event


# -------------------------------------------------------------------- encoding
def encode(event: Event) -> tuple[str, bytes]:
    """The ``(kind, payload)`` the store keeps for ``event``."""
    return event.kind, orjson.dumps(event.to_payload())


def _event_type(experiment_id: str, seq: int, kind: str) -> type[Event]:
    """The type of a stored kind; the one place the unknown-kind rule is applied."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise UnknownEventError(experiment_id, seq, kind)
    return cls


def decode(row: EventRow, experiment_id: str) -> LoggedEvent:
    """The typed event of a stored row of ``experiment_id``'s log.

    Raises:
        UnknownEventError: the row's kind is unknown to this version.
        MalformedEventError: its payload does not decode as its kind.
    """
    cls = _event_type(experiment_id, row.seq, row.kind)
    try:
        event = cls.from_payload(orjson.loads(row.payload))
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise MalformedEventError(experiment_id, row.seq, row.kind, reason) from exc
    return LoggedEvent(row.seq, row.created_at, event)


def read_events(
    store: Store,
    experiment_id: str,
    *,
    after_seq: int = 0,
    up_to_seq: int | None = None,
    chunk: int = 2000,
) -> Iterator[LoggedEvent]:
    """The experiment's events with ``after_seq < seq <= up_to_seq`` (no upper bound when
    ``None``), in order, decoded; read from the database ``chunk`` at a time.

    Raises:
        EventLogError: at the first event this version cannot read (see :func:`decode`).
    """
    for row in store.iter_events(experiment_id, after_seq=after_seq, chunk=chunk):
        if up_to_seq is not None and row.seq > up_to_seq:
            return  # not decoded: rows past the bound are none of the caller's business
        yield decode(row, experiment_id)


def require_known_kinds(store: Store, experiment_id: str, *, up_to_seq: int) -> None:
    """Check, before reading payloads, that every event up to ``up_to_seq`` has a known kind
    (one query): a stream can then fail before it starts rather than midway.

    Raises:
        UnknownEventError: for the first event of an unknown kind, as :func:`decode` would.
    """
    stray = store.first_event_not_in(experiment_id, KINDS, up_to_seq=up_to_seq)
    if stray is not None:
        _event_type(experiment_id, *stray)
