"""``paired``: PAIRED (Dennis et al. 2020; docs/algorithms.md#paired).

An adversary policy (:class:`~teacher_service.teachers.adversary.LevelAdversary`) designs
each level step by step: the goal tile, then the agent tile, then ``max_walls`` wall tiles.
The level is played ``episodes_per_role`` times by a protagonist and by an antagonist
student; the regret ``max(antagonist max return - protagonist mean return, 0)`` is the
adversary's reward. The students train on their own rewards (protagonist: its return,
antagonist: the regret), which is the students' business: this teacher only issues the
paired tasks (role and ``agent_id`` set) and learns the adversary.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api_schemas.spaces import LevelSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import PAIREDConfig
from env_generators.levels import FLOOR, GOAL, WALL, Level, is_solvable
from teacher_service.teachers.adversary import LevelAdversary, Trajectory
from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher, TeacherStateError

PROTAGONIST, ANTAGONIST = PAIREDConfig.ROLES
#: Completed / built levels the view summarises.
RECENT = 100
#: Most points of the regret history in the view.
HISTORY_POINTS = 200
#: Levels listed in the view's top by regret.
TOP = 5
#: Design phases (one-hot in the observation).
_PHASE_GOAL, _PHASE_AGENT, _PHASE_WALL = 0, 1, 2


class _Canvas:
    """The adversary's partial level while it designs, and its observations.

    Observation at step t: one-hot walls (N), goal (N), agent (N) over the interior tiles,
    the phase one-hot (goal / agent / wall) and t / T, with T = 2 + max_walls steps.
    """

    def __init__(self, inner: int, steps: int) -> None:
        self.inner = inner
        self.n = inner * inner
        self.steps = steps
        self.walls = np.zeros(self.n, dtype=bool)
        self.goal = -1
        self.agent = -1

    @staticmethod
    def obs_dim(n: int) -> int:
        """Length of an observation for ``n`` interior tiles."""
        return 3 * n + 4

    def obs(self, t: int) -> np.ndarray:
        """What the adversary sees before acting at step ``t``."""
        n = self.n
        o = np.zeros(3 * n + 4)
        o[:n] = self.walls
        if self.goal >= 0:
            o[n + self.goal] = 1.0
        if self.agent >= 0:
            o[2 * n + self.agent] = 1.0
        o[3 * n + min(t, _PHASE_WALL)] = 1.0
        o[3 * n + 3] = t / self.steps
        return o

    def mask(self, t: int) -> np.ndarray:
        """Tiles the adversary may pick at step ``t``: any for the goal, not the goal's for
        the agent, neither for walls (a wall on a wall is allowed and changes nothing)."""
        m = np.ones(self.n, dtype=bool)
        if t >= 1:
            m[self.goal] = False
        if t >= 2:
            m[self.agent] = False
        return m

    def apply(self, t: int, a: int) -> None:
        """Carry out action ``a`` at step ``t`` (PAIRED: goal, agent, then walls)."""
        if t == 0:
            self.goal = a
        elif t == 1:
            self.agent = a
        else:
            self.walls[a] = True  # already a wall: a no-op, as in the reference

    def xy(self, i: int) -> tuple[int, int]:
        """(x, y) of interior tile ``i`` in the bordered level."""
        return 1 + i % self.inner, 1 + i // self.inner

    def level(self, agent_dir: int) -> Level:
        """The finished design as a level (border walls added, no lava)."""
        size = self.inner + 2
        tiles = np.full((size, size), FLOOR, dtype="<U1")
        tiles[0, :] = tiles[-1, :] = tiles[:, 0] = tiles[:, -1] = WALL
        for i in np.flatnonzero(self.walls):
            x, y = self.xy(int(i))
            tiles[y, x] = WALL
        gx, gy = self.xy(self.goal)
        tiles[gy, gx] = GOAL
        return Level(tiles=tiles, agent=self.xy(self.agent), agent_dir=agent_dir)


@dataclass(slots=True)
class _Pending:
    """A level whose tasks are issued (or queued) and whose reports are awaited."""

    actions: list[int]
    level: str
    protagonist: list[float] = field(default_factory=list)
    antagonist: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # Copies: the runtime may serialise a snapshot after later reports arrive.
        return {
            "actions": list(self.actions),
            "level": self.level,
            "protagonist": list(self.protagonist),
            "antagonist": list(self.antagonist),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Pending:
        return cls(
            actions=[int(a) for a in d["actions"]],
            level=str(d["level"]),
            protagonist=[float(r) for r in d["protagonist"]],
            antagonist=[float(r) for r in d["antagonist"]],
        )


def _level_id(task: TaskProposal) -> int | None:
    lid = (task.params or {}).get("level_id")
    return lid if isinstance(lid, int) and not isinstance(lid, bool) else None


class PAIREDTeacher(Teacher):
    """PAIRED: an adversary policy builds levels tile by tile and is rewarded by the regret
    of a protagonist against an antagonist student on them.

    Each new level is issued as ``episodes_per_role`` protagonist and as many antagonist
    tasks, interleaved (``params={"level_id": k}``, ``role`` and ``agent_id`` = the role).
    When all of a level's reports are in, its regret is stored with the adversary's design
    episode; every ``update_every`` completed levels the adversary makes one REINFORCE step
    with advantage ``regret - mean regret of the batch``. A level with an expired task is
    dropped.
    """

    config_model = PAIREDConfig

    def __init__(self, space: Any, config: PAIREDConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        if not isinstance(space, LevelSpace):
            raise ValueError(f"paired needs a 'level' task space, got {space.kind!r}")
        from env_generators.generators import get_generator

        # The adversary places MiniGrid tiles itself: it needs the MiniGrid encoding.
        if space.generator != "minigrid":
            raise ValueError(f"paired builds MiniGrid levels, not {space.generator!r} levels")
        gen_cfg = get_generator(space.generator).config(space.config)
        size = int(gen_cfg.size)  # type: ignore[attr-defined]
        max_walls = config.max_walls
        if max_walls is None:
            max_walls = int(getattr(gen_cfg, "max_walls", 0))
        self.size = size
        self.inner = size - 2
        self.n_tiles = self.inner * self.inner
        self.max_walls = max_walls
        self.steps = 2 + max_walls  # PAIRED: goal, agent, then one step per wall
        self.adversary = LevelAdversary(
            _Canvas.obs_dim(self.n_tiles), self.n_tiles, config.hidden, config.lr, rng
        )
        self.queue_: deque[TaskProposal] = deque()
        self.pending_: dict[int, _Pending] = {}
        self.batch_: list[tuple[list[int], float]] = []
        self.levels_built_ = 0
        self.levels_completed_ = 0
        self.levels_dropped_ = 0
        self.updates_ = 0
        self.last_update_: dict[str, float] | None = None
        # Recent built levels: (interior walls, solvable, mean design entropy).
        self.recent_built_: deque[tuple[int, bool, float]] = deque(maxlen=RECENT)
        # Recent completed levels: (level_id, level, regret, protagonist mean, antagonist max).
        self.recent_done_: deque[tuple[int, str, float, float, float]] = deque(maxlen=RECENT)
        # Regret history as means of buckets of `hist_stride_` levels (halved when full).
        self.hist_: list[float] = []
        self.hist_stride_ = 1
        self.hist_sum_ = 0.0
        self.hist_count_ = 0

    # ---------------------------------------------------------------- proposing

    def propose(self, n: int) -> list[TaskProposal]:
        """The next ``n`` tasks of the queue, designing new levels when it runs dry."""
        out: list[TaskProposal] = []
        while len(out) < n:
            if not self.queue_:
                self._design_level()
            out.append(self.queue_.popleft())
        return out

    def _design_level(self) -> None:
        """Let the adversary build one level and queue its paired tasks."""
        canvas = _Canvas(self.inner, self.steps)
        actions: list[int] = []
        entropy = 0.0
        for t in range(self.steps):
            a, _, h = self.adversary.act(canvas.obs(t), canvas.mask(t), self.rng)
            canvas.apply(t, a)
            actions.append(a)
            entropy += h
        level = canvas.level(int(self.rng.integers(4)))  # agent direction: teacher rng
        text = level.encode()
        k = self.levels_built_
        self.levels_built_ += 1
        self.pending_[k] = _Pending(actions=actions, level=text)
        self.recent_built_.append(
            (int(canvas.walls.sum()), is_solvable(level), entropy / self.steps)
        )
        for _ in range(self.config.episodes_per_role):
            for role in (PROTAGONIST, ANTAGONIST):
                self.queue_.append(
                    TaskProposal(
                        params={"level_id": k},
                        level=text,
                        mode=TaskMode.TRAIN,
                        agent_id=role,
                        role=role,
                    )
                )

    # ---------------------------------------------------------------- learning

    def check_result(self, task: TaskProposal, scores: Mapping[str, float]) -> str | None:
        """Reports must come from one of the two PAIRED roles."""
        if task.role not in (PROTAGONIST, ANTAGONIST):
            return f"paired tasks have role {PROTAGONIST!r} or {ANTAGONIST!r}, not {task.role!r}"
        return None

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Gather returns by role; a level with all its reports yields its regret."""
        epr = self.config.episodes_per_role
        for r in results:
            lid = _level_id(r.task)
            p = self.pending_.get(lid) if lid is not None else None
            ret = float(r.episode_return)
            if p is None or not math.isfinite(ret):
                continue  # unknown or dropped level
            if r.task.role == PROTAGONIST:
                p.protagonist.append(ret)
            elif r.task.role == ANTAGONIST:
                p.antagonist.append(ret)
            else:
                continue
            if len(p.protagonist) >= epr and len(p.antagonist) >= epr:
                del self.pending_[lid]
                self._complete(lid, p)

    def _complete(self, lid: int, p: _Pending) -> None:
        proto_mean = float(np.mean(p.protagonist))
        anta_max = float(max(p.antagonist))
        # PAIRED regret: antagonist's best episode minus protagonist's mean, floored at 0.
        regret = max(anta_max - proto_mean, 0.0)
        self.levels_completed_ += 1
        self.recent_done_.append((lid, p.level, regret, proto_mean, anta_max))
        self._record_history(regret)
        self.batch_.append((p.actions, regret))
        if len(self.batch_) >= self.config.update_every:
            self._update()

    def _update(self) -> None:
        """One REINFORCE step on the batch, baseline = the batch's mean regret."""
        regrets = np.array([r for _, r in self.batch_])
        adv = regrets - regrets.mean()
        trajs = [self._trajectory(a) for a, _ in self.batch_]
        stats = self.adversary.update(trajs, adv.tolist(), self.config.entropy_coef)
        self.last_update_ = {**stats, "mean_regret": float(regrets.mean())}
        self.updates_ += 1
        self.batch_ = []

    def _trajectory(self, actions: Sequence[int]) -> Trajectory:
        """Rebuild a design episode's observations and masks from its actions (they are
        deterministic given the actions, so only the actions are kept)."""
        canvas = _Canvas(self.inner, self.steps)
        obs = np.empty((self.steps, _Canvas.obs_dim(self.n_tiles)))
        masks = np.empty((self.steps, self.n_tiles), dtype=bool)
        for t, a in enumerate(actions):
            obs[t] = canvas.obs(t)
            masks[t] = canvas.mask(t)
            canvas.apply(t, a)
        return Trajectory(obs, masks, np.asarray(actions, dtype=np.int64))

    def _record_history(self, regret: float) -> None:
        self.hist_sum_ += regret
        self.hist_count_ += 1
        if self.hist_count_ == self.hist_stride_:
            self.hist_.append(self.hist_sum_ / self.hist_count_)
            self.hist_sum_, self.hist_count_ = 0.0, 0
            if len(self.hist_) >= HISTORY_POINTS:  # halve: pairs of equal buckets merge
                h = self.hist_
                self.hist_ = [(h[i] + h[i + 1]) / 2 for i in range(0, len(h) - 1, 2)]
                self.hist_stride_ *= 2

    def expire(self, tasks: Sequence[TaskProposal]) -> None:
        """A level with an expired task is dropped, with its tasks still queued."""
        dropped = set()
        for t in tasks:
            lid = _level_id(t)
            if lid is not None and self.pending_.pop(lid, None) is not None:
                dropped.add(lid)
        if dropped:
            self.levels_dropped_ += len(dropped)
            self.queue_ = deque(p for p in self.queue_ if _level_id(p) not in dropped)

    # -------------------------------------------------------------------- view

    def goal_probabilities(self) -> np.ndarray:
        """The adversary's current distribution of the goal tile, (inner, inner) by (y, x)."""
        canvas = _Canvas(self.inner, self.steps)
        p = self.adversary.probs(canvas.obs(0), canvas.mask(0))
        return p.reshape(self.inner, self.inner)

    def view(self) -> dict[str, Any]:
        """Counters, regret statistics and history, what the adversary builds lately, and
        the recent levels of highest regret."""
        done = list(self.recent_done_)
        built = list(self.recent_built_)

        def mean(xs: Sequence[float]) -> float | None:
            return float(np.mean(xs)) if xs else None

        history = [
            {"levels": (i + 1) * self.hist_stride_, "regret": r} for i, r in enumerate(self.hist_)
        ]
        if self.hist_count_:
            history.append(
                {"levels": self.levels_completed_, "regret": self.hist_sum_ / self.hist_count_}
            )
        top = sorted(done, key=lambda d: -d[2])[:TOP]
        return {
            "size": self.size,
            "max_walls": self.max_walls,
            "levels_built": self.levels_built_,
            "levels_completed": self.levels_completed_,
            "levels_dropped": self.levels_dropped_,
            "levels_pending": len(self.pending_),
            "adversary_updates": self.updates_,
            "queue": len(self.queue_),
            "mean_regret": mean([d[2] for d in done]),
            "protagonist_mean_return": mean([d[3] for d in done]),
            "antagonist_max_return": mean([d[4] for d in done]),
            "regret_history": history,
            "mean_walls": mean([b[0] for b in built]),
            "solvable_fraction": mean([float(b[1]) for b in built]),
            "policy_entropy": mean([b[2] for b in built]),
            "last_update": self.last_update_,
            "goal_probabilities": np.round(self.goal_probabilities(), 4).tolist(),
            "top_levels": [{"level_id": d[0], "level": d[1], "regret": d[2]} for d in top],
        }

    # ------------------------------------------------------------------- state

    def _extra_state(self) -> dict[str, Any]:
        return {
            "adversary": self.adversary.state_dict(),
            "queue": [p.to_dict() for p in self.queue_],
            "pending": [[k, p.to_dict()] for k, p in self.pending_.items()],
            "batch": [[list(a), r] for a, r in self.batch_],
            "levels_built": self.levels_built_,
            "levels_completed": self.levels_completed_,
            "levels_dropped": self.levels_dropped_,
            "updates": self.updates_,
            "last_update": None if self.last_update_ is None else dict(self.last_update_),
            "recent_built": [list(b) for b in self.recent_built_],
            "recent_done": [list(d) for d in self.recent_done_],
            "hist": list(self.hist_),
            "hist_stride": self.hist_stride_,
            "hist_sum": self.hist_sum_,
            "hist_count": self.hist_count_,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        try:
            self.adversary.load_state_dict(state["adversary"])
            self.queue_ = deque(TaskProposal.from_dict(p) for p in state["queue"])
            self.pending_ = {int(k): _Pending.from_dict(p) for k, p in state["pending"]}
            self.batch_ = [([int(x) for x in a], float(r)) for a, r in state["batch"]]
            self.levels_built_ = int(state["levels_built"])
            self.levels_completed_ = int(state["levels_completed"])
            self.levels_dropped_ = int(state["levels_dropped"])
            self.updates_ = int(state["updates"])
            lu = state["last_update"]
            self.last_update_ = None if lu is None else {k: float(v) for k, v in lu.items()}
            self.recent_built_ = deque(
                ((int(w), bool(s), float(h)) for w, s, h in state["recent_built"]), maxlen=RECENT
            )
            self.recent_done_ = deque(
                (
                    (int(k), str(lv), float(r), float(pm), float(am))
                    for k, lv, r, pm, am in state["recent_done"]
                ),
                maxlen=RECENT,
            )
            self.hist_ = [float(x) for x in state["hist"]]
            self.hist_stride_ = int(state["hist_stride"])
            self.hist_sum_ = float(state["hist_sum"])
            self.hist_count_ = int(state["hist_count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TeacherStateError(f"corrupted paired snapshot: {exc}") from exc
