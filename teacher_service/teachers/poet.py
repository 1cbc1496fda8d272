"""``poet``: POET (Wang et al. 2019) with Enhanced POET's options (Wang et al. 2020), as a
teacher over the ordinary task contract (docs/algorithms.md#poet, docs/poet.md).

The teacher keeps a population of active environment-agent pairs. Agents are named
(``agent-<n>``) and live with the students; every task says which agent plays it
(``agent_id``) and, for an agent made from another, whose weights it starts from
(``init_from``). The loop, in iterations:

- **Optimisation**: tasks with ``mode='train'`` go round the active pairs, each played by its
  own agent. After ``iteration_episodes`` train reports a pair is *self-evaluated*
  (``eval_episodes`` tasks with ``mode='evaluate'``); its score is that evaluation's mean. An
  iteration ends when every active pair has been self-evaluated since the last one ended.
- **Transfer**, every ``transfer_every`` iterations: every agent is evaluated on every other
  active environment. ``direct`` (POET): a target adopts a copy of the best agent if it
  scores strictly higher than the incumbent's latest self-evaluation. ``enhanced`` (Enhanced
  POET): the agents whose direct score beats the best of the incumbent's recent
  self-evaluations are fine-tuned on the target first (``fine_tune_episodes`` train tasks for a
  new candidate agent made from them), evaluated again, and the best fine-tuned one is adopted
  if it beats that bar too.
- **Reproduction**, every ``reproduce_every`` iterations: parents are the pairs scoring at
  least ``repro_threshold``; ``max_children`` mutation trials each mutate a random parent's
  environment (box parameters by a normal step, levels by the editor), duplicates dropped; a
  child is kept if its parent's agent scores within the minimal criterion on it; every agent
  of the population (active and archived) is then scored on the kept children, which are
  ranked by novelty (k-NN in the archive of every environment ever admitted, over encodings
  or PATA-EC) and admitted in that order, at most ``max_admitted``, each with a copy of the
  best active agent provided that agent passes the minimal criterion. Beyond ``max_active``
  pairs the oldest goes to the archive. ANNECS counts the admitted children on which the best
  agent of the whole population also passes the minimal criterion.

Checks run while training goes on: their evaluate tasks are issued first, train tasks fill
the rest, and a check's decision applies to a pair only if the pair is still active with the
same agent. Every decision follows from the order of calls and the teacher's generator, so
the teacher is replayed from the log like every other.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from api_schemas.spaces import BoxSpace, LevelSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import POETConfig
from env_generators.levels import LAVA, WALL, Level
from teacher_service.teachers.base import BoxScaler, TaskProposal, TaskResult, Teacher
from teacher_service.teachers.poet_rules import (
    annecs_counts,
    epoet_transfer_winner,
    knn_novelty,
    passes_minimal_criterion,
    pata_ec,
    rank_for_admission,
    transfer_winner,
)

#: Archived pairs and transfers the view lists (the newest).
VIEW_RECENT = 20


@dataclass(slots=True)
class _Env:
    """An environment: admitted, or a child under examination."""

    id: int
    level: str
    params: dict[str, float] | None
    parent: int | None
    encoding: list[float]
    born: int = -1  # iteration admitted (-1: a child)


@dataclass(slots=True)
class _Pair:
    """An active (or archived) environment-agent pair."""

    env: int
    agent: str
    agent_since: int
    evals: list[float] = field(default_factory=list)  # recent self-evaluations, newest last
    evaluations: int = 0
    trained: int = 0  # train reports towards the next self-evaluation
    evaluating: bool = False


@dataclass(slots=True)
class _Check:
    """Evaluate tasks of one agent on one environment, and the scores reported so far."""

    agent: str
    env: int
    values: list[float] = field(default_factory=list)


def _key(agent: str, env: int) -> str:
    return f"{agent}@{env}"


def episode_value(result: TaskResult) -> float:
    """What an episode adds to a score: its ``success`` (0/1) when reported, else its
    return."""
    return float(result.success) if result.success is not None else float(result.episode_return)


class POETTeacher(Teacher):
    """POET on a level space (with an editing generator) or a box space with a parametric
    generator. See the module docstring."""

    config_model = POETConfig
    config: POETConfig

    def __init__(self, space: Any, config: POETConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        self._scaler: BoxScaler | None = None
        if isinstance(space, BoxSpace):
            if space.generator is None:
                raise ValueError(
                    "poet needs a level space, or a box space with a parametric generator "
                    '(e.g. "generator": "minigrid_params")'
                )
            from env_generators.generators import get_parametric

            self._parametric = get_parametric(space.generator)
            self._scaler = BoxScaler(space)
        elif isinstance(space, LevelSpace):
            from env_generators.generators import get_generator

            self._generator = get_generator(space.generator)
            if not self._generator.supports_editing:
                raise ValueError(
                    f"poet mutates levels with the generator's editor; {space.generator!r} has none"
                )
            self._generator_config = self._generator.config(space.config)
            self._side = int(getattr(self._generator_config, "size", 0)) or None
        else:
            raise ValueError(f"poet needs a 'level' or 'box' task space, got {space.kind!r}")
        self.iteration_ = 0
        self.envs_: dict[int, _Env] = {}
        self.archive_: list[int] = []  # every environment ever admitted, in order
        self.pairs_: list[_Pair] = []  # active, oldest first
        self.archived_: list[_Pair] = []  # oldest first
        self.agents_: dict[str, str | None] = {}  # agent -> the agent it was made from
        self.candidates_: dict[str, dict[str, Any]] = {}  # fine-tuning: source, env, trained
        self.checks_: dict[str, _Check] = {}  # evaluations in flight, by agent@env
        self.scores_: dict[str, float] = {}  # finished evaluations, by agent@env (latest)
        self.seen_levels_: set[str] = set()
        self.by_params_: dict[str, int] = {}  # box spaces: env id by its params (derived)
        self.queue_: deque[TaskProposal] = deque()
        self.next_env_ = 0
        self.next_agent_ = 0
        self.turn_ = 0  # round robin of train tasks over the active pairs
        self.iter_done_: set[int] = set()  # envs self-evaluated in this iteration
        self.transfer_: dict[str, Any] | None = None
        self.repro_: dict[str, Any] | None = None
        self.annecs_ = 0
        self.annecs_history_: list[list[int]] = [[0, 0]]
        self.transfers_: list[dict[str, Any]] = []
        self.transfer_count_ = 0
        self.children_ = {
            "made": 0, "duplicates": 0, "mc_passed": 0, "mc_failed": 0, "not_admitted": 0,
        }  # fmt: skip
        self.admitted_ = 0
        first = self._new_env(*self._initial(), parent=None)
        self._admit(first, self._new_agent(None))

    # ---------------------------------------------------------------- environments

    def _initial(self) -> tuple[str, dict[str, float] | None, list[float]]:
        """POET starts from the simplest environment: an empty room, or the low end of every
        parameter range (the easy end of the parametric generator)."""
        if self._scaler is not None:
            u = np.zeros(self._scaler.ndim)
            params = self._scaler.to_params(u)
            return self._parametric.build(params), params, u.tolist()
        level = self._generator.empty(self.rng, self._generator_config)
        return level, None, self._level_encoding(level)

    def _mutate(self, env: _Env) -> tuple[str, dict[str, float] | None, list[float]]:
        """A child of ``env``: every parameter moved by a normal step of ``mutation_scale``
        of its range (POET's parameter mutation), or ``num_edits`` editor steps."""
        if self._scaler is not None:
            u = np.asarray(env.encoding) + self.rng.normal(
                0.0, self.config.mutation_scale, self._scaler.ndim
            )
            params = self._scaler.to_params(u)
            u = self._scaler.to_unit(params)
            return self._parametric.build(params), params, u.tolist()
        level = self._generator.mutate(env.level, self.rng, self.config.num_edits)
        return level, None, self._level_encoding(level)

    def _level_encoding(self, level: str) -> list[float]:
        """A level's descriptor: its wall and lava tiles as 0/1, on a grid of the space's
        side (the editor keeps the size)."""
        tiles = Level.parse(level).tiles
        side = self._side or max(tiles.shape)
        grid = np.full((side, side), "", dtype="<U1")
        h, w = min(side, tiles.shape[0]), min(side, tiles.shape[1])
        grid[:h, :w] = tiles[:h, :w]
        return (
            np.concatenate([(grid == WALL).ravel(), (grid == LAVA).ravel()]).astype(float).tolist()
        )

    def _new_env(
        self, level: str, params: dict[str, float] | None, encoding: list[float], parent: int | None
    ) -> _Env:
        env = _Env(self.next_env_, level, params, parent, encoding)
        self.next_env_ += 1
        self.envs_[env.id] = env
        self.seen_levels_.add(level)
        if params is not None:
            self.by_params_[str(self._params_key(params))] = env.id
        return env

    def _new_agent(self, init_from: str | None) -> str:
        agent = f"agent-{self.next_agent_}"
        self.next_agent_ += 1
        self.agents_[agent] = init_from
        return agent

    def _admit(self, env: _Env, agent: str) -> None:
        """A new active pair; beyond ``max_active`` the oldest goes to the archive (FIFO)."""
        env.born = self.iteration_
        self.archive_.append(env.id)
        self.pairs_.append(_Pair(env=env.id, agent=agent, agent_since=self.iteration_))
        while len(self.pairs_) > self.config.max_active:
            old = self.pairs_.pop(0)
            self.iter_done_.discard(old.env)
            self.archived_.append(old)

    def _pair(self, env: int) -> _Pair | None:
        return next((p for p in self.pairs_ if p.env == env), None)

    # ---------------------------------------------------------------- tasks

    def _task(self, agent: str, env: int, mode: TaskMode) -> TaskProposal:
        e = self.envs_[env]
        if self._scaler is not None:  # the service attaches the level the params build
            return TaskProposal(
                params=dict(e.params or {}), mode=mode, agent_id=agent,
                init_from=self.agents_[agent],
            )  # fmt: skip
        return TaskProposal(
            params={"env_id": env}, level=e.level, mode=mode, agent_id=agent,
            init_from=self.agents_[agent],
        )  # fmt: skip

    def _env_of(self, task: TaskProposal) -> int | None:
        """The environment a task was issued on (None when unknown)."""
        params = task.params or {}
        if self._scaler is None:
            env = params.get("env_id")
            return env if isinstance(env, int) and env in self.envs_ else None
        key = self._params_key(params)
        return self.by_params_.get(key) if key is not None else None

    def _params_key(self, params: Mapping[str, Any]) -> str | None:
        assert self._scaler is not None
        try:
            return json.dumps([float(params[n]) for n in self._scaler.names])
        except (KeyError, TypeError, ValueError):
            return None

    def propose(self, n: int) -> list[TaskProposal]:
        """Queued check tasks first (evaluations, fine-tuning), then train tasks round the
        active pairs."""
        out: list[TaskProposal] = []
        while len(out) < n:
            if self.queue_:
                out.append(self.queue_.popleft())
                continue
            pair = self.pairs_[self.turn_ % len(self.pairs_)]
            self.turn_ = (self.turn_ + 1) % len(self.pairs_)
            out.append(self._task(pair.agent, pair.env, TaskMode.TRAIN))
        return out

    def _evaluate(self, agent: str, env: int) -> str:
        """Ask for ``eval_episodes`` evaluate tasks of ``agent`` on ``env`` (joining one in
        flight); the key under which its score will be found in ``scores_``."""
        key = _key(agent, env)
        if key not in self.checks_:
            self.checks_[key] = _Check(agent, env)
            task = self._task(agent, env, TaskMode.EVALUATE)
            self.queue_.extend([task] * self.config.eval_episodes)
        return key

    def expire(self, tasks: Sequence[TaskProposal]) -> None:
        """Checks must finish: an expired evaluate task, or a candidate's fine-tuning task,
        is issued again. An expired pair's train task is simply not counted."""
        for task in tasks:
            env = self._env_of(task)
            if env is None or task.agent_id is None:
                continue
            if task.mode == TaskMode.EVALUATE and _key(task.agent_id, env) in self.checks_:
                self.queue_.append(task)
            elif task.mode == TaskMode.TRAIN and task.agent_id in self.candidates_:
                self.queue_.append(task)

    # ---------------------------------------------------------------- reports

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Count train reports towards self-evaluations and fine-tuning; collect evaluate
        reports into their checks, deciding what a finished check decides."""
        for r in results:
            env, agent = self._env_of(r.task), r.task.agent_id
            if env is None or agent is None:
                continue
            if r.task.mode == TaskMode.TRAIN:
                self._trained(agent, env)
            elif r.task.mode == TaskMode.EVALUATE:
                check = self.checks_.get(_key(agent, env))
                if check is None:
                    continue  # a late report of a check already decided
                check.values.append(episode_value(r))
                if len(check.values) >= self.config.eval_episodes:
                    del self.checks_[_key(agent, env)]
                    self.scores_[_key(agent, env)] = float(np.mean(check.values))
                    self._checked(agent, env)

    def _trained(self, agent: str, env: int) -> None:
        cand = self.candidates_.get(agent)
        if cand is not None and cand["env"] == env:
            cand["trained"] += 1
            if cand["trained"] == self.config.fine_tune_episodes:
                self._evaluate(agent, env)
            return
        pair = self._pair(env)
        if pair is None or pair.agent != agent:
            return  # the pair was archived, or its agent replaced since
        pair.trained += 1
        if pair.trained >= self.config.iteration_episodes and not pair.evaluating:
            pair.trained -= self.config.iteration_episodes
            pair.evaluating = True
            self._evaluate(agent, env)

    def _checked(self, agent: str, env: int) -> None:
        """A check finished: a self-evaluation, or one a transfer or reproduction waits on."""
        key = _key(agent, env)
        # the jobs waiting now: an iteration ending below may start new ones that ask again
        jobs = [(self.transfer_, self._transfer_step), (self.repro_, self._repro_step)]
        pair = self._pair(env)
        if pair is not None and pair.agent == agent and pair.evaluating:
            pair.evaluating = False
            pair.evaluations += 1
            pair.evals = [*pair.evals, self.scores_[key]][-self.config.recent_evals :]
            self.iter_done_.add(env)
            if all(p.env in self.iter_done_ for p in self.pairs_):
                self._end_iteration()
        for job, step in jobs:
            if job is not None and key in job["waiting"]:
                job["waiting"].remove(key)
                if not job["waiting"]:
                    step()

    def _end_iteration(self) -> None:
        self.iteration_ += 1
        self.iter_done_ = set()
        if (
            self.iteration_ % self.config.transfer_every == 0
            and self.transfer_ is None
            and len(self.pairs_) > 1
        ):
            self._start_transfer()
        if self.iteration_ % self.config.reproduce_every == 0 and self.repro_ is None:
            self._start_reproduction()

    # ---------------------------------------------------------------- transfer

    def _start_transfer(self) -> None:
        """Every agent on every other active environment (direct scores)."""
        targets: dict[str, Any] = {}
        waiting: set[str] = set()
        for t in self.pairs_:
            if not t.evals:
                continue  # no self-evaluation to compare with yet
            sources = [s.agent for s in self.pairs_ if s.env != t.env]
            waiting.update(self._evaluate(a, t.env) for a in sources)
            targets[str(t.env)] = {"agent": t.agent, "sources": sources, "candidates": {}}
        self.transfer_ = {"phase": "direct", "targets": targets, "waiting": waiting}
        if not waiting:
            self.transfer_ = None

    def _transfer_step(self) -> None:
        job = self.transfer_
        assert job is not None
        if job["phase"] == "direct" and self.config.transfer == "enhanced":
            self._start_fine_tuning(job)
            if job["waiting"]:
                return
        for env_s, target in job["targets"].items():
            env = int(env_s)
            pair = self._pair(env)
            if pair is None or pair.agent != target["agent"] or not pair.evals:
                continue  # archived, or its agent changed, while the check ran
            sources = target["sources"]
            direct = [self.scores_[_key(a, env)] for a in sources]
            if self.config.transfer == "direct":
                best = transfer_winner(pair.evals[-1], direct)
                if best is not None:
                    winner = self._new_agent(sources[best])  # a copy of the winner
                    self._adopt(pair, sources[best], winner, direct[best])
                continue
            cands = target["candidates"]  # candidate agent -> its source
            if not cands:
                continue
            names = list(cands)
            src = [cands[c] for c in names]
            best = epoet_transfer_winner(
                pair.evals,
                [self.scores_[_key(s, env)] for s in src],
                [self.scores_[_key(c, env)] for c in names],
            )
            if best is not None:
                self._adopt(pair, src[best], names[best], self.scores_[_key(names[best], env)])
        self.candidates_ = {}
        self.transfer_ = None

    def _start_fine_tuning(self, job: dict[str, Any]) -> None:
        """Enhanced POET: a candidate agent, made from each source whose direct score beats
        the incumbent's best recent self-evaluation, trains on the target, then is scored."""
        job["phase"] = "fine_tune"
        for env_s, target in job["targets"].items():
            env = int(env_s)
            pair = self._pair(env)
            if pair is None or pair.agent != target["agent"] or not pair.evals:
                continue
            bar = max(pair.evals)
            for source in target["sources"]:
                if self.scores_[_key(source, env)] <= bar:
                    continue
                cand = self._new_agent(source)
                self.candidates_[cand] = {"env": env, "source": source, "trained": 0}
                target["candidates"][cand] = source
                job["waiting"].add(_key(cand, env))
                task = self._task(cand, env, TaskMode.TRAIN)
                self.queue_.extend([task] * self.config.fine_tune_episodes)

    def _adopt(self, pair: _Pair, source: str, agent: str, score: float) -> None:
        self.transfers_ = [
            *self.transfers_,
            {
                "iteration": self.iteration_, "env_id": pair.env, "from_agent": source,
                "agent_id": agent, "score": score,
                "incumbent": pair.evals[-1] if pair.evals else None,
            },
        ][-VIEW_RECENT:]  # fmt: skip
        self.transfer_count_ += 1
        pair.agent = agent
        pair.agent_since = self.iteration_
        pair.evals = [score]  # the check's score is the new agent's first evaluation
        pair.trained = 0
        pair.evaluating = False

    # ---------------------------------------------------------------- reproduction

    def _start_reproduction(self) -> None:
        """Mutate eligible parents' environments; check each child's minimal criterion with
        its parent's agent."""
        parents = [p for p in self.pairs_ if p.evals and p.evals[-1] >= self.config.repro_threshold]
        if not parents:
            return
        children: list[list[Any]] = []  # [child env, parent's agent]
        for _ in range(self.config.max_children):
            parent = parents[int(self.rng.integers(len(parents)))]
            level, params, encoding = self._mutate(self.envs_[parent.env])
            if level in self.seen_levels_:
                self.children_["duplicates"] += 1
                continue
            child = self._new_env(level, params, encoding, parent=parent.env)
            self.children_["made"] += 1
            children.append([child.id, parent.agent])
        waiting = {self._evaluate(agent, env) for env, agent in children}
        self.repro_ = {"phase": "minimal_criterion", "children": children, "waiting": waiting}
        if not waiting:
            self.repro_ = None

    def _population(self) -> list[str]:
        """Every pair's agent, active then archived (PATA-EC and ANNECS score them all)."""
        return [p.agent for p in self.pairs_] + [p.agent for p in self.archived_]

    def _repro_step(self) -> None:
        job = self.repro_
        assert job is not None
        cfg = self.config
        if job["phase"] == "minimal_criterion":
            kept = []
            for env, agent in job["children"]:
                if passes_minimal_criterion(
                    self.scores_[_key(agent, env)], cfg.mc_low, cfg.mc_high
                ):
                    kept.append(env)
                    self.children_["mc_passed"] += 1
                else:
                    self.children_["mc_failed"] += 1
                    self._drop_child(env)
            if not kept:
                self.repro_ = None
                return
            # every agent scored on the kept children (admission, ANNECS) and, for PATA-EC,
            # on every archived environment
            envs = kept + (self.archive_ if cfg.novelty == "pata_ec" else [])
            agents = self._population()
            waiting = {
                self._evaluate(a, e) for e in envs for a in agents if _key(a, e) not in self.scores_
            }
            # the agents as they are now: a transfer may replace some before the scores are in
            self.repro_ = {
                "phase": "scoring", "children": kept, "waiting": waiting, "agents": agents,
                "active": [p.agent for p in self.pairs_],
            }  # fmt: skip
            if waiting:
                return
            job = self.repro_
        self._admit_children(job["children"], job["agents"], job["active"])
        self.repro_ = None

    def _descriptor(self, env: int, agents: list[str]) -> np.ndarray:
        if self.config.novelty == "pata_ec":
            scores = [self.scores_[_key(a, env)] for a in agents]
            return pata_ec(np.asarray(scores), self.config.mc_low, self.config.mc_high)
        return np.asarray(self.envs_[env].encoding)

    def _admit_children(self, children: list[int], agents: list[str], active: list[str]) -> None:
        """Rank the kept children by novelty; admit them in that order, each with a copy of
        the best ``active`` agent if it passes the minimal criterion, at most
        ``max_admitted``. ``agents``: the whole population when the scoring began."""
        cfg = self.config
        archive = np.stack([self._descriptor(e, agents) for e in self.archive_])
        novelty = [
            knn_novelty(self._descriptor(c, agents), archive, cfg.novelty_k) for c in children
        ]
        admitted = 0
        for i in rank_for_admission(novelty, len(children)):
            env = children[i]
            scores = [self.scores_[_key(a, env)] for a in active]
            best = int(np.argmax(scores))
            if admitted >= cfg.max_admitted or not passes_minimal_criterion(
                scores[best], cfg.mc_low, cfg.mc_high
            ):
                self.children_["not_admitted"] += 1
                self._drop_child(env)
                continue
            whole = max(self.scores_[_key(a, env)] for a in agents)
            self.annecs_ += annecs_counts([whole], cfg.mc_low, cfg.mc_high)
            self._admit(self.envs_[env], self._new_agent(active[best]))
            admitted += 1
            self.admitted_ += 1
        if self.annecs_ != self.annecs_history_[-1][1]:
            self.annecs_history_.append([self.iteration_, self.annecs_])

    def _drop_child(self, env: int) -> None:
        """A child that was not admitted is forgotten (its level stays seen: a duplicate)."""
        gone = self.envs_.pop(env)
        if gone.params is not None:
            self.by_params_.pop(str(self._params_key(gone.params)), None)
        for key in [k for k in self.scores_ if k.endswith(f"@{env}")]:
            del self.scores_[key]

    # ---------------------------------------------------------------- view and state

    def _pair_view(self, p: _Pair) -> dict[str, Any]:
        env = self.envs_[p.env]
        return {
            "env_id": p.env, "agent_id": p.agent, "init_from": self.agents_[p.agent],
            "level": env.level, "params": env.params,
            "score": p.evals[-1] if p.evals else None, "evaluations": p.evaluations,
            "born": env.born, "age": self.iteration_ - env.born, "parent": env.parent,
            "agent_since": p.agent_since,
        }  # fmt: skip

    def view(self) -> dict[str, Any]:
        """The population, the archive, transfers, reproduction counters and ANNECS (the
        ``poet`` view of docs/poet.md)."""
        return {
            "iteration": self.iteration_,
            "annecs": self.annecs_,
            "annecs_history": [list(p) for p in self.annecs_history_],
            "pairs": [self._pair_view(p) for p in self.pairs_],
            "archived": [self._pair_view(p) for p in reversed(self.archived_[-VIEW_RECENT:])],
            "archived_count": len(self.archived_),
            "archive_size": len(self.archive_),
            "transfers": [dict(t) for t in self.transfers_],
            "transfer_count": self.transfer_count_,
            "admitted": self.admitted_,
            "children": dict(self.children_),
            "agents": {
                "active": [p.agent for p in self.pairs_],
                "candidates": list(self.candidates_),
                "archived": [p.agent for p in self.archived_],
            },
            "checks": {
                "transfer": "idle" if self.transfer_ is None else self.transfer_["phase"],
                "reproduction": "idle" if self.repro_ is None else self.repro_["phase"],
            },
            "mc": [self.config.mc_low, self.config.mc_high],
        }

    @staticmethod
    def _job_state(job: dict[str, Any] | None) -> dict[str, Any] | None:
        if job is None:
            return None
        return json.loads(json.dumps({**job, "waiting": sorted(job["waiting"])}))

    @staticmethod
    def _job_load(job: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if job is None:
            return None
        out = json.loads(json.dumps(job))
        out["waiting"] = set(out["waiting"])
        return out

    def _extra_state(self) -> dict[str, Any]:
        state = {
            "iteration": self.iteration_,
            "envs": [asdict(e) for e in self.envs_.values()],
            "archive": list(self.archive_),
            "pairs": [asdict(p) for p in self.pairs_],
            "archived": [asdict(p) for p in self.archived_],
            "agents": dict(self.agents_),
            "candidates": self.candidates_,
            "checks": [asdict(c) for c in self.checks_.values()],
            "scores": dict(self.scores_),
            "seen_levels": sorted(self.seen_levels_),
            "queue": [p.to_dict() for p in self.queue_],
            "next_env": self.next_env_,
            "next_agent": self.next_agent_,
            "turn": self.turn_,
            "iter_done": sorted(self.iter_done_),
            "transfer": self._job_state(self.transfer_),
            "repro": self._job_state(self.repro_),
            "annecs": self.annecs_,
            "annecs_history": self.annecs_history_,
            "transfers": self.transfers_,
            "transfer_count": self.transfer_count_,
            "children": self.children_,
            "admitted": self.admitted_,
        }
        # copies: the runtime may serialise a snapshot after later reports arrive
        return json.loads(json.dumps(state))

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        s = json.loads(json.dumps(state))
        self.iteration_ = int(s["iteration"])
        self.envs_ = {int(e["id"]): _Env(**e) for e in s["envs"]}
        self.archive_ = [int(e) for e in s["archive"]]
        self.pairs_ = [_Pair(**p) for p in s["pairs"]]
        self.archived_ = [_Pair(**p) for p in s["archived"]]
        self.agents_ = dict(s["agents"])
        self.candidates_ = dict(s["candidates"])
        self.checks_ = {_key(c["agent"], c["env"]): _Check(**c) for c in s["checks"]}
        self.scores_ = {k: float(v) for k, v in s["scores"].items()}
        self.seen_levels_ = set(s["seen_levels"])
        self.queue_ = deque(TaskProposal.from_dict(p) for p in s["queue"])
        self.next_env_ = int(s["next_env"])
        self.next_agent_ = int(s["next_agent"])
        self.turn_ = int(s["turn"])
        self.iter_done_ = {int(e) for e in s["iter_done"]}
        self.transfer_ = self._job_load(s["transfer"])
        self.repro_ = self._job_load(s["repro"])
        self.annecs_ = int(s["annecs"])
        self.annecs_history_ = [list(map(int, p)) for p in s["annecs_history"]]
        self.transfers_ = list(s["transfers"])
        self.transfer_count_ = int(s["transfer_count"])
        self.children_ = {k: int(v) for k, v in s["children"].items()}
        self.admitted_ = int(s["admitted"])
        self.by_params_ = {
            str(self._params_key(e.params)): e.id for e in self.envs_.values() if e.params
        }
