"""A rollout worker: several MiniGrid envs playing the teacher's tasks with the latest weights.

Plain Python, so it can be tested without Ray; :mod:`student_workers.actors` runs it as a
Ray actor. Per rollout it

1. loads the broadcast weights and steps its envs for ``num_steps``; every env pulls its next
   task from the worker's client session at each reset (so a task lasts one episode): a level
   (level spaces) or a MiniGrid env id (discrete spaces, ``params == {"task": env_id}``; see
   :class:`TaskEnv`);
2. computes GAE with its *own* value estimates and, for every episode that ended, the level
   scores PLR-style teachers use (positive value loss, L1 value loss, mean value for MaxMC;
   docs/algorithms.md#robust-plr), and queues one report per episode with those scores;
3. returns the rollout (with advantages) for the learner. Steps of ``explore`` and
   ``evaluate`` tasks are played, scored and reported but masked out of the gradient (Robust
   PLR's new levels, ACCEL's children; the success measurements of ``lp`` and ``omni``).

With student roles (PAIRED's protagonist and antagonist; the teacher sets ``task.role``) the
worker holds one policy per role and each env acts with the policy of its current task's role
(so the role changes only at a reset). The rollout records which role acted at every step
(``role_index``); its GAE and scores use the acting policy's values, and each role's learner
keeps only its own steps (:func:`~student_workers.ppo.role_rollout`).

With a population teacher (POET: ``teacher.POPULATION``; every task names its ``agent_id``) the
same mechanism runs over the agents instead of fixed roles: :meth:`RolloutWorker.collect` takes
the broadcast weights by agent id, each env acts with the policy of its current task's agent, and
the policy of an agent not in the broadcast is made when an env first meets it, from the weights
:func:`~student_workers.population.find_start` names (the agents store's copy, else its
``init_from`` agent's, else a fresh network seeded from the run's seed and the agent id). The
rollout's ``agent_ids`` name the policies ``role_index`` numbers; each agent is trained on its own
steps (:func:`~student_workers.ppo.agent_rollout`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from api_schemas.tasks import Task, TaskMode
from env_generators.levels import empty_level
from env_generators.minigrid_env import DEFAULT_VIEW, LevelEnv
from student_workers.collector import RolloutCollector
from student_workers.eval_episodes import Actions, EnvNotFoundError, action_count, make_eval_env
from student_workers.population import AgentStore, Weights, find_start, fresh_agent
from student_workers.ppo import EpisodeScorer, MiniGridAgent, PPOConfig, Rollout, finish_rollout
from teacher_service.client import TeacherClient

logger = logging.getLogger(__name__)

#: Discrete tasks in a row that a worker skips because their env cannot be built before it
#: gives up (the experiment then names no playable env at all).
MAX_SKIPPED_TASKS = 100


class TaskEnv(gym.Wrapper):
    """Plays the next teacher task at every reset: a level task on the :class:`LevelEnv`
    (its level set first), a discrete task (``params == {"task": env_id}``) on the MiniGrid
    env of that id, built once per id with :func:`make_eval_env` and kept (at most
    ``cache_size`` of them, the least recently played closed first).

    The observation and action spaces are the :class:`LevelEnv`'s whatever env plays (the
    vector env needs one pair): the image and direction of every MiniGrid env with the same
    view size are alike, and a policy's actions are the first ``n`` of MiniGrid's seven.

    ``task`` is the task of the running episode; ``previous_task`` the one before it (the
    task of an episode that just ended, once a same-step autoreset has begun the next one).

    Args:
        env: the level env (it also fixes the spaces).
        next_task: hands out the next task.
        actions: the student's action set (that of ``env``).
        seed: seeds the first reset of each env built for a discrete task (later resets
            go on from its generator, so every episode gets a new layout).
        cache_size: envs of discrete tasks kept open.
        unplayable: env ids found unplayable, with the reason (shared by the envs of a
            worker, so that each bad id is tried and logged once).
    """

    def __init__(
        self,
        env: LevelEnv,
        next_task: Callable[[], Task],
        *,
        actions: Actions = "navigation",
        seed: int = 0,
        cache_size: int = 64,
        unplayable: dict[str, str] | None = None,
    ) -> None:
        super().__init__(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self._level_env = env
        self._next_task = next_task
        self._actions = actions
        self._view = env.agent_view_size
        self._rng = np.random.default_rng(seed)
        self._cache_size = max(cache_size, 1)
        self._made: OrderedDict[str, gym.Env] = OrderedDict()
        self._unplayable = {} if unplayable is None else unplayable
        self.task: Task | None = None
        self.previous_task: Task | None = None

    def reset(self, **kwargs: Any) -> Any:
        """Take the next task, switch to its env, and reset it. A discrete task whose env
        cannot be built (an added task that is no MiniGrid id) is skipped with a warning and
        not reported (its lease expires); :data:`MAX_SKIPPED_TASKS` of them in a row fail."""
        for _ in range(MAX_SKIPPED_TASKS):
            task = self._next_task()
            first_seed = self._use(task)
            if first_seed is not False:
                break
        else:
            raise ValueError(
                f"{MAX_SKIPPED_TASKS} tasks in a row name no playable MiniGrid env: "
                f"{self._unplayable}"
            )
        self.previous_task, self.task = self.task, task
        if first_seed is not None and kwargs.get("seed") is None:
            kwargs["seed"] = first_seed
        return self.env.reset(**kwargs)

    def _use(self, task: Task) -> int | Literal[False] | None:
        """Point ``self.env`` at ``task``'s env: the seed of its first reset when it was just
        built, ``None`` otherwise, ``False`` when the task cannot be played here.

        Raises:
            ValueError: a task with neither a level nor a discrete task name.
        """
        if task.level is not None:
            self._level_env.set_level(task.level)
            self.env = self._level_env
            return None
        name = (task.params or {}).get("task")
        if not isinstance(name, str):
            raise ValueError(
                f"task {task.id} has neither a level nor a discrete task name (params "
                f"{task.params}): the Ray students play level and discrete spaces"
            )
        if name in self._made:
            self._made.move_to_end(name)
            self.env = self._made[name]
            return None
        if name in self._unplayable:
            return False
        try:
            made = make_eval_env(name, self._view, self._actions)
        except EnvNotFoundError as exc:
            self._unplayable[name] = str(exc)
            logger.warning("skipping the tasks of %r: %s", name, exc)
            return False
        if len(self._made) >= self._cache_size:
            _, oldest = self._made.popitem(last=False)
            oldest.close()
        self._made[name] = self.env = made
        return int(self._rng.integers(2**31))

    def close(self) -> None:
        """Close the level env and every env built for a discrete task."""
        for made in self._made.values():
            made.close()
        self._made.clear()
        self._level_env.close()


class RolloutWorker:
    """Collects scored rollouts of teacher tasks and reports every finished episode.

    Args:
        server: URL of the teacher service.
        experiment: experiment id or name (a level space, or a discrete space whose task
            names are MiniGrid env ids).
        token: bearer token of the service, if any.
        worker_id: label sent with task requests (shows up in the service's log).
        num_envs: envs stepped side by side.
        ppo: the PPO settings (network shape, rollout length, gamma, lambda).
        view: agent view size.
        actions: the students' action set (``"full"`` for keys and doors).
        seed: seeds the env resets and the action sampling.
        task_timeout: seconds to wait for a task before failing.
        session: use this :class:`~teacher_service.client.CurriculumSession` (or an object
            with its ``next_task``/``report``/``flush``/``close``/``stats``) instead of opening
            one on ``server``.
        roles: the experiment's student roles (``teacher.ROLES``); empty for one student.
            With roles, :meth:`collect` takes weights per role and every task must carry one
            of them as its ``role``.
        population: train a population (``teacher.POPULATION``): :meth:`collect` takes weights
            by agent id and every task must name its ``agent_id``.
        run_seed: with a population, the run's seed, from which every worker (and the learner)
            makes the same fresh network of a new agent.
        agent_store: with a population, the agents store new agents may start from (default:
            the experiment's on ``server``; none with a ``session`` given).
    """

    def __init__(
        self,
        server: str,
        experiment: str,
        *,
        token: str | None = None,
        worker_id: str = "worker-0",
        num_envs: int = 4,
        ppo: PPOConfig | None = None,
        view: int = DEFAULT_VIEW,
        seed: int = 0,
        task_timeout: float = 120.0,
        session: Any = None,
        roles: tuple[str, ...] = (),
        actions: Actions = "navigation",
        population: bool = False,
        run_seed: int = 0,
        agent_store: AgentStore | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        n_actions = action_count(actions)  # checked before the session starts its threads
        self.ppo = ppo or PPOConfig()
        self.roles = tuple(roles)
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"duplicate student roles: {self.roles}")
        if population and self.roles:
            raise ValueError("a population teacher has no student roles")
        self.population = population
        self.view, self.n_actions, self.run_seed = view, n_actions, run_seed
        torch.set_num_threads(1)  # one core per worker: threads would only contend
        self.worker_id = worker_id
        self.task_timeout = task_timeout
        self.client = None if session is not None else TeacherClient(server, token=token)
        # A small buffer: a killed worker loses at most these tasks (they expire by lease).
        self.session = session or self.client.session(
            experiment, prefetch=2 * num_envs, report_batch=64, flush_interval=0.5,
            worker=worker_id,
        )  # fmt: skip
        # One policy per role (the first role's is also ``agent``); one without roles.
        self.agents = {
            role: MiniGridAgent(view, n_actions, self.ppo.hidden, self.ppo.lstm)
            for role in self.roles or ("",)
        }
        self.agent = next(iter(self.agents.values()))
        self._store_client = None  # the store's client, when this worker opened it
        if population and agent_store is None and session is None:
            # A client of its own: a missing agent is one quick 404, not the session's retries.
            self._store_client = TeacherClient(server, token=token, retries=2)
            agent_store = AgentStore(self._store_client, experiment, self.ppo, view, n_actions)
        self.agent_store = agent_store
        # With a population: the policies held (by agent id), and for the running rollout the
        # agents in the order role_index numbers them, their policies and init_from, the
        # round's broadcast weights and the agents made in it (with where they started).
        self.held: dict[str, MiniGridAgent] = {}
        self.order: list[str] = []
        self.policies: list[MiniGridAgent] = []
        self.parents: list[str | None] = []
        self.broadcast: dict[str, Weights] = {}
        self.new_agents: dict[str, dict[str, Any]] = {}
        rng = np.random.default_rng(seed)
        placeholder = empty_level(5, rng)  # replaced by the first task at the first reset
        unplayable: dict[str, str] = {}
        fns = [
            lambda: TaskEnv(
                LevelEnv(placeholder, agent_view_size=view, actions=actions),
                self._next_task,
                actions=actions,
                seed=int(rng.integers(2**31)),
                unplayable=unplayable,
            )
            for _ in range(num_envs)
        ]
        self.envs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        self.collector = RolloutCollector(self.envs, seed=seed)
        self.scorer = EpisodeScorer(num_envs)
        for e in range(num_envs):
            self._start_episode(e)
        self.totals = {"env_steps": 0, "episodes": 0}

    def _next_task(self) -> Task:
        return self.session.next_task(timeout=self.task_timeout)

    def _env(self, e: int) -> TaskEnv:
        return self.envs.envs[e]

    @staticmethod
    def _train_flag(task: Task | None) -> float:
        # Only train-mode tasks feed gradients; explore (and evaluate) tasks are scored only.
        return 1.0 if task is None or task.mode == TaskMode.TRAIN else 0.0

    def _role_index(self, task: Task | None) -> int:
        """Index in :attr:`roles` of the policy that plays ``task``."""
        if task is None or task.role not in self.roles:
            role = None if task is None else task.role
            raise ValueError(
                f"task {getattr(task, 'id', None)} has role {role!r}; the experiment's teacher "
                f"issues tasks for the roles {list(self.roles)}"
            )
        return self.roles.index(task.role)

    def _agent_index(self, task: Task | None) -> int:
        """Index in :attr:`order` of the agent that plays ``task`` (a population's), its policy
        made first when the rollout has not met the agent yet."""
        agent_id = None if task is None else task.agent_id
        if agent_id is None:
            raise ValueError(
                f"task {getattr(task, 'id', None)} names no agent_id; a population teacher's "
                "tasks must say which agent plays them"
            )
        if agent_id not in self.order:
            if agent_id not in self.held:
                self.held[agent_id] = self._new_policy(agent_id, task.init_from)
            self.order.append(agent_id)
            self.policies.append(self.held[agent_id])
            self.parents.append(task.init_from)
        return self.order.index(agent_id)

    def _new_policy(self, agent_id: str, init_from: str | None) -> MiniGridAgent:
        """The policy of an agent not in the round's broadcast, from the weights
        :func:`find_start` names (the same the learner will start the agent from)."""
        start = find_start(agent_id, init_from, held=self.broadcast.get, store=self.agent_store)
        if start.checkpoint is None:
            agent = fresh_agent(self.ppo, self.view, self.n_actions, self.run_seed, agent_id)
        else:
            agent = MiniGridAgent(self.view, self.n_actions, self.ppo.hidden, self.ppo.lstm)
            agent.load_state_dict(start.checkpoint["weights"])
        self.new_agents[agent_id] = {"init_from": init_from, "source": start.source}
        return agent

    def _begin_population_round(self, weights: dict[str, Weights]) -> None:
        """Hold exactly the broadcast agents (their policies loaded; the others dropped: the
        learner let them go) and re-number the agents of the envs' running episodes."""
        self.broadcast = weights
        held = {}
        for agent_id, agent_weights in weights.items():
            agent = self.held.get(agent_id)
            if agent is None:
                agent = MiniGridAgent(self.view, self.n_actions, self.ppo.hidden, self.ppo.lstm)
            agent.load_state_dict(agent_weights)
            held[agent_id] = agent
        self.held = held
        self.order, self.policies, self.parents, self.new_agents = [], [], [], {}
        for e in range(self.envs.num_envs):
            self.collector.policy[e] = self._agent_index(self._env(e).task)

    def _start_episode(self, e: int) -> None:
        """Set env ``e``'s gradient flag (and policy, with roles or a population) from its new
        task. A population's first episodes, begun before any weights came, get their policies
        when :meth:`collect` begins a round (:meth:`_begin_population_round`)."""
        task = self._env(e).task
        self.collector.train_flags[e] = self._train_flag(task)
        if self.roles:
            self.collector.policy[e] = self._role_index(task)
        elif self.population and self.policies:
            self.collector.policy[e] = self._agent_index(task)

    def collect(
        self, weights: dict[str, torch.Tensor] | dict[str, dict[str, torch.Tensor]]
    ) -> tuple[Rollout, dict[str, Any]]:
        """One rollout with ``weights``: (rollout with advantages, statistics).

        ``weights`` is one network's state dict, or with roles a dict role -> state dict; the
        rollout's ``role_index`` then gives the role (index in :attr:`roles`) of every step.

        With a population, ``weights`` is a dict agent id -> state dict (the learner's agents;
        an agent not in it gets its policy when an env first meets it) and the rollout's
        ``agent_ids`` and ``init_from`` name the agents ``role_index`` numbers.

        Statistics: ``env_steps``, ``train_steps`` (steps of train-mode tasks),
        ``episodes``, ``returns`` (of the finished episodes), ``solved``, ``worker``; with
        roles also ``roles``: role -> ``{"train_steps", "episodes", "returns"}``; with a
        population ``agents``: agent id -> ``{"env_steps", "train_steps", "episodes",
        "returns"}``, and ``new_agents``: agent id -> ``{"init_from", "source"}`` for the
        agents whose policies this rollout made (``source``: where their weights came from,
        ``"store"``, ``"init_from"`` or ``"fresh"``).
        """
        if self.population:
            self._begin_population_round(weights)  # type: ignore[arg-type]
        elif self.roles:
            missing = set(self.roles) - set(weights)
            if missing:
                raise ValueError(f"no weights for the roles {sorted(missing)}")
            for role, agent in self.agents.items():
                agent.load_state_dict(weights[role])  # type: ignore[arg-type]
        else:
            self.agent.load_state_dict(weights)  # type: ignore[arg-type]
        ended_tasks: dict[tuple[int, int], Task] = {}

        def after_step(t: int, ended: np.ndarray) -> None:
            for e in np.flatnonzero(ended):
                ended_tasks[(t, int(e))] = self._env(int(e)).previous_task
                self._start_episode(int(e))

        policy: MiniGridAgent | list[MiniGridAgent] = self.agent
        if self.roles:
            policy = list(self.agents.values())
        elif self.population:
            policy = self.policies  # grows when an env meets a new agent at a reset
        rollout, log = self.collector.collect(policy, self.ppo.num_steps, after_step)
        if self.population:
            rollout.agent_ids, rollout.init_from = tuple(self.order), tuple(self.parents)
        # GAE from this worker's own value estimates: the scores the teacher sees and the
        # advantages the learner trains on are the same numbers.
        finish_rollout(rollout, self.ppo)
        scores = {(t, e): s for t, e, s in self.scorer.add(rollout)}
        returns = []
        # Per role, or per agent of a population: those met in this rollout (their names were
        # checked when each episode began; an agent whose episode began at the last step is
        # met without a step).
        groups = self.order if self.population else self.roles
        per_group: dict[str, dict[str, Any]] = {
            name: {"train_steps": 0, "episodes": 0, "returns": []} for name in groups
        }
        for t, e, ret, length in log.episodes:
            task = ended_tasks[(t, e)]
            if groups:
                name = task.agent_id if self.population else task.role
                per_group[str(name)]["returns"].append(ret)
            self.session.report(
                {
                    "task_id": task.id,
                    "episode_return": ret,
                    "success": ret > 0,
                    "length": length,
                    "scores": scores[(t, e)],
                }
            )
            returns.append(ret)
        steps = rollout.num_steps * rollout.num_envs
        self.totals["env_steps"] += steps
        self.totals["episodes"] += len(returns)  # = reports queued: one per episode
        stats = {
            "worker": self.worker_id,
            "env_steps": steps,
            "train_steps": int(rollout.train_mask.sum()),
            "episodes": len(returns),
            "returns": returns,
            "solved": int(sum(r > 0 for r in returns)),
        }
        if groups:
            assert rollout.role_index is not None
            for i, name in enumerate(groups):
                mine = rollout.role_index == i
                per_group[name]["train_steps"] = int(rollout.train_mask[mine].sum())
                per_group[name]["episodes"] = len(per_group[name]["returns"])
                if self.population:
                    per_group[name]["env_steps"] = int(mine.sum())
        if self.population:
            stats["agents"], stats["new_agents"] = per_group, dict(self.new_agents)
        elif self.roles:
            stats["roles"] = per_group
        return rollout, stats

    def flush(self, timeout: float = 60.0) -> dict[str, Any]:
        """Deliver every queued report; the session's statistics."""
        self.session.flush(timeout=timeout)
        return self.session.stats

    def close(self, timeout: float = 60.0) -> dict[str, Any]:
        """Flush the reports, then release the envs and the connection."""
        stats = self.session.stats
        try:
            self.session.close(timeout=timeout)
            stats = self.session.stats
        finally:
            self.envs.close()
            if self.client is not None:
                self.client.close()
            if self._store_client is not None:
                self._store_client.close()
        return stats
