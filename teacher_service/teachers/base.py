"""The one interface every teacher implements (docs/architecture.md#teachers).

Teachers are plain Python objects: no I/O, no wall clock, all randomness from the
``numpy.random.Generator`` they are given. The same seed and the same sequence of calls
give the same proposals, and ``state_dict``/``load_state_dict`` round-trips exactly, which
is what lets the runtime rebuild a teacher from a snapshot plus the event log.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from api_schemas.spaces import BoxSpace, DiscreteSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import TeacherConfigBase


@dataclass(frozen=True, slots=True)
class TaskProposal:
    """What a teacher proposes; the runtime turns it into a wire ``Task`` with an id."""

    params: dict[str, Any] | None = None
    level: str | None = None
    mode: TaskMode = TaskMode.TRAIN
    agent_id: str | None = None
    role: str | None = None
    # POET: the agent whose weights ``agent_id`` starts from when a student has none yet
    init_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (used by the event log and snapshots); ``init_from`` only when set,
        so logs written before it existed read the same."""
        d: dict[str, Any] = {
            "params": self.params,
            "level": self.level,
            "mode": self.mode.value,
            "agent_id": self.agent_id,
            "role": self.role,
        }
        if self.init_from is not None:
            d["init_from"] = self.init_from
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskProposal:
        """Inverse of :meth:`to_dict`."""
        return cls(
            params=d.get("params"),
            level=d.get("level"),
            mode=TaskMode(d.get("mode", "train")),
            agent_id=d.get("agent_id"),
            role=d.get("role"),
            init_from=d.get("init_from"),
        )


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A proposal paired with the student's report of it."""

    task: TaskProposal
    episode_return: float
    success: bool | None = None
    length: int | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    episodes: int = 1


@dataclass(frozen=True, slots=True)
class JudgementRequest:
    """Work a teacher needs from a model outside it (e.g. OMNI's model of interestingness).

    The runtime hands it to a background worker; the answer is written to the event log and
    given back through :meth:`Teacher.judge`, so replay never asks the model again.

    Attributes:
        model: which model (the teacher config's name for it).
        tasks: indices of the tasks to judge.
        names: every task's name, by index.
        texts: every task's text (its description, else its name), by index.
        success: every task's success so far (None before it is measured), by index.
        similarity: the threshold of similarity-based models.
        neighbours: how many similar tasks a judge is shown for each task.
    """

    model: str
    tasks: tuple[int, ...]
    names: tuple[str, ...]
    texts: tuple[str, ...]
    success: tuple[float | None, ...]
    similarity: float = 0.5
    neighbours: int = 10


class TeacherStateError(ValueError):
    """A snapshot does not match this teacher (wrong kind or corrupted)."""


class Teacher(ABC):
    """Base class of every teacher.

    Subclasses set ``config_model`` (their config class, which declares the kind: see
    :class:`api_schemas.teachers.TeacherConfigBase`) and implement ``propose``, ``observe``,
    ``view`` and ``_extra_state``/``_load_extra_state``. ``kind`` is taken from the config.
    The base class owns the RNG and its serialisation.

    Args:
        space: the experiment's task space (already validated).
        config: the teacher's validated hyper-parameters (an instance of ``config_model``).
        rng: the teacher's own generator; the only source of randomness allowed.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[TeacherConfigBase]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The kind is declared once, by the config (its ``kind`` literal).
        if "config_model" in cls.__dict__:
            cls.kind = cls.config_model.kind_name()

    def __init__(self, space: Any, config: BaseModel, rng: np.random.Generator) -> None:
        if not isinstance(config, self.config_model):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        self.space = space
        self.config = config
        self.rng = rng

    @abstractmethod
    def propose(self, n: int) -> list[TaskProposal]:
        """Return ``n`` task proposals."""

    @abstractmethod
    def observe(self, results: Sequence[TaskResult]) -> None:
        """Learn from finished tasks (in the order they were accepted)."""

    def would_block(self, n_results: int = 0) -> bool:
        """Whether ``propose`` now, or ``observe`` of ``n_results`` results, could wait on
        background work (e.g. a model fit not finished when it falls due). The service runs
        such calls off the event loop; all others run inline, which is much cheaper."""
        return False

    def pending_work(self) -> Future[Any] | None:
        """The background work a call that :meth:`would_block` waits for, if any, so the
        service can wait for it without holding the experiment's lock."""
        return None

    def check_result(self, task: TaskProposal, scores: Mapping[str, float]) -> str | None:
        """Why a report of ``task`` with these ``scores`` is unusable, or None when it is
        fine. Called before anything is stored: a reason is answered with HTTP 422."""
        return None

    def add_tasks(self, space: Any, tasks: Sequence[Any]) -> None:
        """Told when ``tasks`` (discrete task specs) joined the space; ``space`` is the grown
        space. Default: propose from the grown space. Teachers with per-task state grow it."""
        self.space = space

    def judgement_request(self) -> JudgementRequest | None:
        """What the teacher still needs judged by a model outside it, if anything. Default:
        nothing. Asked after creation, replay and every change of the space."""
        return None

    def judge(self, judgement: Mapping[str, Any]) -> None:
        """Apply a model's answer to a :meth:`judgement_request` (as logged). Default: a
        teacher that asks for none cannot take one."""
        raise ValueError(f"the {self.kind!r} teacher takes no judgements")

    def expire(self, tasks: Sequence[TaskProposal]) -> None:  # noqa: B027 - optional hook
        """Told when issued tasks expire unreported. Default: nothing to undo."""

    def use_background(self, executor: Executor | None) -> None:  # noqa: B027 - optional hook
        """Given the executor (the server's process pool) on which to run expensive pure
        background work, such as model fits; ``None``: run it in a thread of this process.
        Where the work runs never changes its result. Default: the teacher has none."""

    @abstractmethod
    def view(self) -> dict[str, Any]:
        """JSON-able picture of the teacher for ``/state`` and the dashboard."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; arrays are returned as copies."""
        return {"kind": self.kind, "rng": self.rng.bit_generator.state, **self._extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state.get("kind") != self.kind:
            raise TeacherStateError(
                f"snapshot is for teacher {state.get('kind')!r}, not {self.kind!r}"
            )
        self.rng.bit_generator.state = state["rng"]
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release background resources (threads). Safe to call twice."""


class BoxScaler:
    """Maps a box space to and from the unit cube, where teachers do all their work."""

    def __init__(self, space: BoxSpace) -> None:
        self.names = [d.name for d in space.dims]
        self.low = np.array([d.low for d in space.dims], dtype=np.float64)
        self.high = np.array([d.high for d in space.dims], dtype=np.float64)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.names)

    def to_unit(self, params: Mapping[str, float]) -> np.ndarray:
        """Task params -> point of [0, 1]^d."""
        x = np.array([params[n] for n in self.names], dtype=np.float64)
        return np.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)

    def to_params_batch(self, u: np.ndarray) -> list[dict[str, float]]:
        """Rows of [0, 1]^d (shape ``(n, d)``) -> task params, in one vectorised pass."""
        x = self.low + np.clip(u, 0.0, 1.0) * (self.high - self.low)
        x = np.minimum(np.maximum(x, self.low), self.high)
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in x.tolist()]

    def to_params(self, u: np.ndarray) -> dict[str, float]:
        """Point of [0, 1]^d -> task params (clipped to bounds)."""
        x = self.low + np.clip(u, 0.0, 1.0) * (self.high - self.low)
        x = np.minimum(np.maximum(x, self.low), self.high)  # guard float rounding at the edges
        return {n: float(v) for n, v in zip(self.names, x, strict=True)}


def normalised_reward(ret: float, low: float, high: float) -> float:
    """The return mapped from ``[low, high]`` to [0, 1], clipped (the teachers' reward bounds)."""
    return min(max((ret - low) / (high - low), 0.0), 1.0)


def box_scaler(space: Any, kind: str) -> BoxScaler:
    """The scaler of a box space; a clear error for a teacher given another kind of space."""
    if not isinstance(space, BoxSpace):
        got = getattr(space, "kind", type(space).__name__)
        raise ValueError(f"{kind} needs a 'box' task space, got {got!r}")
    return BoxScaler(space)


def discrete_space(space: Any, kind: str) -> DiscreteSpace:
    """``space`` if it is discrete; a clear error for a teacher given another kind."""
    if not isinstance(space, DiscreteSpace):
        got = getattr(space, "kind", type(space).__name__)
        raise ValueError(f"{kind} needs a 'discrete' task space, got {got!r}")
    return space


def unit_result(result: TaskResult, scaler: BoxScaler, kind: str) -> tuple[np.ndarray, float]:
    """A box result as (task in the unit cube, finite return); ``ValueError`` otherwise."""
    if result.task.params is None:
        raise ValueError(f"{kind} results need task params")
    ret = float(result.episode_return)
    if not math.isfinite(ret):
        raise ValueError(f"episode_return must be finite, got {result.episode_return!r}")
    return scaler.to_unit(result.task.params), ret
