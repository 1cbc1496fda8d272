"""The evaluator: plays the latest weights on held-out test mazes and posts the results.

Runs as a Ray actor beside the rollout workers (see :mod:`student_workers.actors`); each
call evaluates one set of weights and posts one batch to
``POST /v1/experiments/{id}/evaluations``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from env_generators.held_out import held_out_names
from env_generators.minigrid_env import DEFAULT_VIEW
from student_workers.eval_episodes import Actions, action_count, make_eval_env, run_episodes
from student_workers.ppo import MiniGridAgent, PPOConfig
from teacher_service.client import TeacherClient, TeacherClientError

logger = logging.getLogger(__name__)

#: Held-out mazes evaluated by default: the 15 x 15 set of the reference results
#: (the 25 x 25 and 51 x 51 perfect mazes cost many more steps; name them to include them).
DEFAULT_EVAL_MAZES: tuple[str, ...] = tuple(
    n for n in held_out_names() if n not in ("PerfectMazeMedium", "PerfectMazeLarge")
)


class Evaluator:
    """Measures a student on fixed test envs.

    Args:
        server: URL of the teacher service (``None``: evaluate without posting).
        experiment: experiment id or name the results belong to.
        token: bearer token of the service, if any.
        envs: held-out maze names or MiniGrid env ids.
        episodes: episodes per env and evaluation.
        ppo: the network shape (hidden width, LSTM).
        view: agent view size.
        actions: the student's action set.
        seed: seeds the evaluation episodes (the same episodes at every evaluation).
        role: with student roles, the role evaluated: :meth:`evaluate` then takes the
            broadcast dict role -> weights and plays this role's (PAIRED: the protagonist).
    """

    def __init__(
        self,
        server: str | None,
        experiment: str,
        *,
        token: str | None = None,
        envs: tuple[str, ...] = DEFAULT_EVAL_MAZES,
        episodes: int = 10,
        ppo: PPOConfig | None = None,
        view: int = DEFAULT_VIEW,
        seed: int = 0,
        role: str | None = None,
        actions: Actions = "navigation",
    ) -> None:
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        torch.set_num_threads(1)
        ppo = ppo or PPOConfig()
        self.experiment = experiment
        self.episodes = episodes
        self.seed = seed
        self.role = role
        self.agent = MiniGridAgent(view, action_count(actions), ppo.hidden, ppo.lstm)
        self.envs = {name: make_eval_env(name, view, actions) for name in envs}
        self.client = TeacherClient(server, token=token) if server else None

    def evaluate(
        self,
        weights: dict[str, torch.Tensor] | dict[str, dict[str, torch.Tensor]],
        env_steps: int,
        checkpoint: str | None = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate ``weights`` (with a ``role``: ``weights[role]``; with ``agent``, a
        population's weights by agent id: ``weights[agent]``) on every env; post the results;
        return
        ``{"env_steps", "solve_rate" (mean over envs), "per_env": {env: result}, "posted"}``
        (and ``"agent"`` when given)."""
        key = agent if agent is not None else self.role
        own = weights if key is None else weights[key]
        self.agent.load_state_dict(own)  # type: ignore[arg-type]
        per_env = {
            name: run_episodes(self.agent, env, self.episodes, seed=self.seed)
            for name, env in self.envs.items()
        }
        posted = False
        if self.client is not None:
            batch = [
                {
                    "env": name,
                    "episodes": r["episodes"],
                    "solve_rate": r["solve_rate"],
                    "mean_return": r["mean_return"],
                    "env_steps": env_steps,
                    "checkpoint": checkpoint,
                    "worker": "evaluator",
                }
                for name, r in per_env.items()
            ]
            try:
                self.client.post_evaluations(self.experiment, batch)
                posted = True
            except TeacherClientError as exc:  # training goes on; the next one may land
                logger.warning("could not post evaluations: %s", exc)
        mean = sum(r["solve_rate"] for r in per_env.values()) / max(len(per_env), 1)
        out = {"env_steps": env_steps, "solve_rate": mean, "per_env": per_env, "posted": posted}
        return out if agent is None else {**out, "agent": agent}
