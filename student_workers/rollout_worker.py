"""A rollout worker: several MiniGrid envs playing the teacher's tasks with the latest weights.

Plain Python, so it can be tested without Ray; :mod:`student_workers.actors` runs it as a
Ray actor. Per rollout it

1. loads the broadcast weights and steps its envs for ``num_steps``; every env pulls its next
   task from the worker's client session at each reset (so a level lasts one episode);
2. computes GAE with its *own* value estimates and, for every episode that ended, the level
   scores PLR-style teachers use (positive value loss, L1 value loss, mean value for MaxMC;
   docs/algorithms.md#robust-plr), and queues one report per episode with those scores;
3. returns the rollout (with advantages) for the learner. Steps of ``explore`` tasks are
   played and scored but masked out of the gradient (Robust PLR, ACCEL children).

With student roles (PAIRED's protagonist and antagonist; the teacher sets ``task.role``) the
worker holds one policy per role and each env acts with the policy of its current task's role
(so the role changes only at a reset). The rollout records which role acted at every step
(``role_index``); its GAE and scores use the acting policy's values, and each role's learner
keeps only its own steps (:func:`~student_workers.ppo.role_rollout`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from api_schemas.tasks import Task, TaskMode
from env_generators.levels import empty_level
from env_generators.minigrid_env import DEFAULT_VIEW, LevelEnv
from student_workers.collector import RolloutCollector
from student_workers.ppo import EpisodeScorer, MiniGridAgent, PPOConfig, Rollout, finish_rollout
from teacher_service.client import TeacherClient

logger = logging.getLogger(__name__)


class TaskEnv(gym.Wrapper):
    """A :class:`LevelEnv` that plays the next teacher task at every reset.

    ``task`` is the task of the running episode; ``previous_task`` the one before it (the
    task of an episode that just ended, once a same-step autoreset has begun the next one).
    """

    def __init__(self, env: LevelEnv, next_task: Callable[[], Task]) -> None:
        super().__init__(env)
        self._next_task = next_task
        self.task: Task | None = None
        self.previous_task: Task | None = None

    def reset(self, **kwargs: Any) -> Any:
        task = self._next_task()
        if task.level is None:
            raise ValueError(f"task {task.id} has no level: the experiment needs a level space")
        self.env.unwrapped.set_level(task.level)
        self.previous_task, self.task = self.task, task
        return self.env.reset(**kwargs)


class RolloutWorker:
    """Collects scored rollouts of teacher tasks and reports every finished episode.

    Args:
        server: URL of the teacher service.
        experiment: experiment id or name (its space must be a level space).
        token: bearer token of the service, if any.
        worker_id: label sent with task requests (shows up in the service's log).
        num_envs: envs stepped side by side.
        ppo: the PPO settings (network shape, rollout length, gamma, lambda).
        view: agent view size.
        seed: seeds the env resets and the action sampling.
        task_timeout: seconds to wait for a task before failing.
        session: use this :class:`~teacher_service.client.CurriculumSession` (or an object
            with its ``next_task``/``report``/``flush``/``close``/``stats``) instead of opening
            one on ``server``.
        roles: the experiment's student roles (``teacher.ROLES``); empty for one student.
            With roles, :meth:`collect` takes weights per role and every task must carry one
            of them as its ``role``.
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
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.ppo = ppo or PPOConfig()
        self.roles = tuple(roles)
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"duplicate student roles: {self.roles}")
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
            role: MiniGridAgent(view, 3, self.ppo.hidden, self.ppo.lstm)
            for role in self.roles or ("",)
        }
        self.agent = next(iter(self.agents.values()))
        rng = np.random.default_rng(seed)
        placeholder = empty_level(5, rng)  # replaced by the first task at the first reset
        fns = [
            lambda: TaskEnv(LevelEnv(placeholder, agent_view_size=view), self._next_task)
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

    def _start_episode(self, e: int) -> None:
        """Set env ``e``'s gradient flag (and policy, with roles) from its new task."""
        task = self._env(e).task
        self.collector.train_flags[e] = self._train_flag(task)
        if self.roles:
            self.collector.policy[e] = self._role_index(task)

    def collect(
        self, weights: dict[str, torch.Tensor] | dict[str, dict[str, torch.Tensor]]
    ) -> tuple[Rollout, dict[str, Any]]:
        """One rollout with ``weights``: (rollout with advantages, statistics).

        ``weights`` is one network's state dict, or with roles a dict role -> state dict; the
        rollout's ``role_index`` then gives the role (index in :attr:`roles`) of every step.

        Statistics: ``env_steps``, ``train_steps`` (steps of train-mode tasks),
        ``episodes``, ``returns`` (of the finished episodes), ``solved``, ``worker``; with
        roles also ``roles``: role -> ``{"train_steps", "episodes", "returns"}``.
        """
        if self.roles:
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

        policy = list(self.agents.values()) if self.roles else self.agent
        rollout, log = self.collector.collect(policy, self.ppo.num_steps, after_step)
        # GAE from this worker's own value estimates: the scores the teacher sees and the
        # advantages the learner trains on are the same numbers.
        finish_rollout(rollout, self.ppo)
        scores = {(t, e): s for t, e, s in self.scorer.add(rollout)}
        returns = []
        per_role: dict[str, dict[str, Any]] = {
            role: {"train_steps": 0, "episodes": 0, "returns": []} for role in self.roles
        }
        for t, e, ret, length in log.episodes:
            task = ended_tasks[(t, e)]
            if self.roles:  # its role was checked when the episode began
                per_role[str(task.role)]["returns"].append(ret)
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
        if self.roles:
            assert rollout.role_index is not None
            for i, role in enumerate(self.roles):
                mine = rollout.role_index == i
                per_role[role]["train_steps"] = int(rollout.train_mask[mine].sum())
                per_role[role]["episodes"] = len(per_role[role]["returns"])
            stats["roles"] = per_role
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
        return stats
