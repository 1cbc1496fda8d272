"""``plr``: Robust Prioritized Level Replay (Jiang et al. 2021), PLR⊥, and classic PLR.

The teacher keeps a buffer of levels scored by the student's regret estimates
(docs/algorithms.md#robust-plr). Each proposal is a replay of a buffer level, drawn by rank (or
power) prioritisation mixed with staleness, with probability ``replay_prob`` once the buffer is
at least half full; otherwise a new level from the space's generator. In the robust variant
(the default) new levels are issued with ``mode = explore``: the student only scores them, and
makes gradient updates on replayed levels alone. A scored level enters the buffer if there is
room or if its score is at least the lowest score in the buffer, which it then replaces.

Every proposal carries ``params`` describing the level: ``level_id``, ``origin``
(``new`` / ``replay`` / ``edit``), ``parent``, ``edits`` and ``depth``; they come back with
the report, so the teacher needs no table of pending levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np

from api_schemas.spaces import LevelSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import PLRConfig, ReplayConfigBase
from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher
from teacher_service.teachers.level_buffer import LevelBuffer, Lineage, Outcome

#: Proposal origins, in the order of the recent-origins ring.
ORIGINS = ("new", "replay", "edit")
#: Proposals remembered for the recent replay rate.
RECENT = 1000
#: Levels shown in the view.
TOP_LEVELS = 5
#: Bins of the score histogram in the view.
HIST_BINS = 20


def _summary(x: np.ndarray) -> dict[str, float | None]:
    if x.size == 0:
        return {"min": None, "mean": None, "max": None}
    return {"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max())}


class PLRTeacher(Teacher):
    """Robust PLR (PLR⊥) on a level space; ``robust=False`` gives classic PLR, which also
    trains on new levels. See the module docstring and docs/algorithms.md#robust-plr."""

    config_model: ClassVar[type[ReplayConfigBase]] = PLRConfig

    def __init__(self, space: Any, config: ReplayConfigBase, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        if not isinstance(space, LevelSpace):
            raise ValueError(f"{self.kind} needs a 'level' task space, got {space.kind!r}")
        from env_generators.generators import get_generator

        self._generator = get_generator(space.generator)
        self._generator_config = self._generator.config(space.config)
        self.buffer = LevelBuffer(
            config.buffer_size, config.prioritization, config.temperature, config.staleness_coef
        )
        self.next_level_id_ = 0
        self.results_ = 0
        self.proposed_ = dict.fromkeys(ORIGINS, 0)
        self.outcomes_ = {o.value: 0 for o in Outcome}
        self.recent_ = np.full(RECENT, -1, dtype=np.int64)  # ring of recent proposal origins
        # reported episodes and env steps per origin (replay_share='steps', and the view)
        self.reported_ = dict.fromkeys(ORIGINS, 0)
        self.steps_ = dict.fromkeys(ORIGINS, 0)

    # ------------------------------------------------------------------ proposals
    @property
    def episodes(self) -> int:
        """PLR's global episode counter c: the proposals issued so far."""
        return sum(self.proposed_.values())

    @property
    def new_mode(self) -> TaskMode:
        """Mode of a level that is not a replay: PLR⊥ only scores it (no gradient)."""
        return TaskMode.EXPLORE if self.config.robust else TaskMode.TRAIN

    def propose(self, n: int) -> list[TaskProposal]:
        """``n`` proposals, each a replay or a new level (see the module docstring)."""
        out = []
        for _ in range(n):
            proposal = self._next_proposal()
            origin = ORIGINS.index(proposal.params["origin"])  # type: ignore[index]
            self.recent_[self.episodes % RECENT] = origin
            self.proposed_[ORIGINS[origin]] += 1
            out.append(proposal)
        return out

    def _next_proposal(self) -> TaskProposal:
        # Replay with probability p once the buffer is at least half full -- p itself, not
        # the filled fraction that one reference implementation uses
        # (docs/algorithms.md#robust-plr).
        if self.buffer.half_full() and self.rng.random() < self.replay_probability():
            slot = self.buffer.sample(self.rng, self.episodes)
            return self._proposal(
                self.buffer.levels[slot], self.buffer.lineage(slot), "replay", TaskMode.TRAIN
            )
        return self._proposal(self._new_level(), Lineage(self._new_id()), "new", self.new_mode)

    def replay_probability(self) -> float:
        """Probability that a proposal (once the buffer is half full) is a replay.

        ``replay_share='episodes'``: ``replay_prob`` itself. ``'steps'``: the reference code
        decides once per rollout of fixed length, so ``p = replay_prob`` is the share of env
        steps on replayed levels; with mean episode lengths L_r (replays) and L_n (new levels)
        a per-episode probability q gives that share when q L_r / (q L_r + (1 - q) L_n) = p,
        i.e. q = p L_n / (p L_n + (1 - p) L_r). Until both lengths are known, q = p.
        """
        p = self.config.replay_prob
        if self.config.replay_share == "episodes" or p in (0.0, 1.0):
            return p
        if not (self.reported_["replay"] and self.reported_["new"]):
            return p
        l_r, l_n = self._mean_length("replay"), self._mean_length("new")
        return p * l_n / (p * l_n + (1.0 - p) * l_r)

    def _mean_length(self, origin: str) -> float:
        """Mean reported episode length of one proposal origin (0 before any)."""
        n = self.reported_[origin]
        return self.steps_[origin] / n if n else 0.0

    def _new_level(self) -> str:
        """A level from the space's generator (domain randomisation)."""
        return self._generator.sample(self.rng, self._generator_config)

    def _new_id(self) -> int:
        self.next_level_id_ += 1
        return self.next_level_id_ - 1

    @staticmethod
    def _proposal(level: str, lineage: Lineage, origin: str, mode: TaskMode) -> TaskProposal:
        params = {
            "level_id": lineage.level_id,
            "origin": origin,
            "parent": lineage.parent,
            "edits": lineage.edits,
            "depth": lineage.depth,
        }
        return TaskProposal(level=level, mode=mode, params=params)

    # ------------------------------------------------------------------- results
    def check_result(self, task: TaskProposal, scores: Mapping[str, float]) -> str | None:
        """A report must carry the score input of the configured score function."""
        need = self.config.score_input
        if need not in scores:
            return (
                f"teacher {self.kind!r} scores levels by {self.config.score!r}, so each report "
                f"needs scores[{need!r}] (got {sorted(scores) or 'no scores'})"
            )
        return None

    def _score(self, result: TaskResult, max_return: float) -> float:
        """The level score of one report (docs/algorithms.md#robust-plr)."""
        if self.config.score == "max_mc":
            # MaxMC: mean(R_max - V_t) = R_max - mean V, with R_max tracked by the teacher
            return max_return - float(result.scores["mean_value"])
        return float(result.scores[self.config.score_input])

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Score each reported level: refresh a replayed level, offer any other to the buffer
        under the replacement rule."""
        buf = self.buffer
        for r in results:
            level = r.task.level
            params = r.task.params or {}
            if level is None or "origin" not in params:
                continue  # not a proposal of this teacher (cannot happen through the runtime)
            ret = float(r.episode_return)
            self.results_ += 1
            if r.length is not None and params["origin"] in self.steps_:
                self.reported_[params["origin"]] += 1
                self.steps_[params["origin"]] += int(r.length)
            slot = buf.slot_of(level)
            max_return = ret if slot is None else max(ret, float(buf.max_returns[slot]))
            score = self._score(r, max_return)
            lineage = Lineage(
                level_id=int(params["level_id"]),
                parent=params.get("parent"),
                edits=int(params.get("edits", 0)),
                depth=int(params.get("depth", 0)),
            )
            if params["origin"] == "replay":
                self._replayed(r, lineage, score)
            if slot is not None:  # a replay, or a new level already in the buffer (dedup)
                buf.update(slot, score, ret)
                self.outcomes_[Outcome.UPDATED] += 1
            else:  # new, an edited child, or a replayed level evicted since it was issued
                outcome, _ = buf.consider(level, score, ret, self.episodes, lineage)
                self.outcomes_[outcome] += 1

    def _replayed(self, result: TaskResult, lineage: Lineage, score: float) -> None:
        """Hook: a replayed level was reported (ACCEL's editor collects them)."""

    # ---------------------------------------------------------------------- view
    def view(self) -> dict[str, Any]:
        """Buffer size, score distribution, replay rate, staleness, lineage and the
        top-scoring levels (ASCII) for ``/state`` and the dashboard."""
        buf = self.buffer
        n = buf.size
        scores = buf.scores[:n]
        recent = self.recent_[self.recent_ >= 0]
        stale = (self.episodes - buf.last_sampled[:n]).astype(np.float64)
        hist: dict[str, list[float] | list[int]] = {"edges": [], "counts": []}
        if n:
            try:
                counts, edges = np.histogram(scores, bins=HIST_BINS)
            except ValueError:  # a spread below float resolution at this magnitude: one bin
                counts, edges = np.array([n]), np.array([scores.min(), scores.max()])
            hist = {"edges": edges.tolist(), "counts": counts.tolist()}
        depths = buf.depths[:n]
        top = np.argsort(-scores, kind="stable")[:TOP_LEVELS]
        return {
            "buffer": {"size": n, "capacity": buf.capacity, "fill": n / buf.capacity},
            "episodes": self.episodes,
            "results": self.results_,
            "robust": self.config.robust,
            "replaying": buf.half_full(),
            "replay_rate": self.proposed_["replay"] / self.episodes if self.episodes else None,
            "replay_rate_recent": float(np.mean(recent == 1)) if recent.size else None,
            "proposals": dict(self.proposed_),
            "outcomes": dict(self.outcomes_),
            # env steps reported per origin: with robust, only replay steps train the student
            "steps": dict(self.steps_),
            "replay_step_share": (
                self.steps_["replay"] / total if (total := sum(self.steps_.values())) else None
            ),
            "replay_share": self.config.replay_share,
            "replay_probability": self.replay_probability() if buf.half_full() else 0.0,
            "scores": {
                "function": self.config.score,
                **_summary(scores),
                "histogram": hist,
            },
            # the buffer's scores are regret estimates: their mean is the curriculum's regret
            "regret": float(scores.mean()) if n else None,
            "staleness": _summary(stale),
            "lineage": {
                "mean_depth": float(depths.mean()) if n else None,
                "max_depth": int(depths.max()) if n else None,
                "mean_edits": float(buf.edits[:n].mean()) if n else None,
                "depth_counts": np.bincount(depths).tolist() if n else [],
            },
            "top_levels": [
                {
                    **asdict(buf.lineage(int(i))),
                    "score": float(buf.scores[i]),
                    "max_return": float(buf.max_returns[i]),
                    "replays": int(buf.replays[i]),
                    "staleness": int(self.episodes - buf.last_sampled[i]),
                    "level": buf.levels[int(i)],
                }
                for i in top
            ],
        }

    # ----------------------------------------------------------------- snapshots
    def _extra_state(self) -> dict[str, Any]:
        return {
            "buffer": self.buffer.state_dict(),
            "next_level_id": self.next_level_id_,
            "results": self.results_,
            "proposed": dict(self.proposed_),
            "outcomes": dict(self.outcomes_),
            "recent": self.recent_.tolist(),
            "reported": dict(self.reported_),
            "steps": dict(self.steps_),
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.next_level_id_ = int(state["next_level_id"])
        self.results_ = int(state["results"])
        self.proposed_ = {k: int(v) for k, v in state["proposed"].items()}
        self.outcomes_ = {k: int(v) for k, v in state["outcomes"].items()}
        self.recent_ = np.asarray(state["recent"], dtype=np.int64)
        # snapshots written before these counters existed start them at zero
        self.reported_ = {o: int(state.get("reported", {}).get(o, 0)) for o in ORIGINS}
        self.steps_ = {o: int(state.get("steps", {}).get(o, 0)) for o in ORIGINS}
