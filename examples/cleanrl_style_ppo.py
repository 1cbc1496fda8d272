#!/usr/bin/env python
"""A single-file, CleanRL-style PPO (torch) on MiniGrid levels served by the teacher service.

The vector env is a gymnasium ``SyncVectorEnv`` (or ``AsyncVectorEnv`` with ``--async``) of
``ImgObsWrapper(CurriculumWrapper(LevelEnv))``: every sub-env takes its next level from the
teacher at each reset and reports every finished episode in the background. The vector env
auto-resets in the same step (``AutoresetMode.SAME_STEP``), as classic CleanRL code expects:
the observation returned with ``done`` is already the first one of the next level.

Without ``--server`` a local teacher service is started on a free port with a temporary
SQLite file, a ``level`` experiment with the ``random`` teacher is created, and the service
is stopped at the end. With ``--server`` the experiment is created if it is missing.

Usage::

    .venv/bin/python examples/cleanrl_style_ppo.py --total-timesteps 8192   # under a minute
    .venv/bin/python examples/cleanrl_style_ppo.py --server http://127.0.0.1:8000 \\
        --experiment my-levels --total-timesteps 1000000 --num-envs 16 --async
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from minigrid.wrappers import ImgObsWrapper
from torch import nn
from torch.distributions import Categorical

from student_workers.wrappers import CurriculumWrapper, minigrid_level_env
from teacher_service.client import ConflictError, TeacherClient
from teacher_service.testing import service_at

log = logging.getLogger("cleanrl_style_ppo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags; the defaults are small (about a minute on 2 cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--total-timesteps", "--steps", type=int, default=16384)
    p.add_argument("--server", default=None, help="teacher URL; default: start a local one")
    p.add_argument("--token", default=None, help="bearer token of --server")
    p.add_argument("--experiment", default="cleanrl-minigrid", help="experiment name")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--async", dest="use_async", action="store_true", help="AsyncVectorEnv")
    p.add_argument("--num-steps", type=int, default=128, help="steps per env per rollout")
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--max-episode-steps", type=int, default=None, help="default: 250 (15x15)")
    p.add_argument("--size", type=int, default=15, help="level side (new experiments)")
    p.add_argument("--max-walls", type=int, default=30, help="most walls (new experiments)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- teacher
def ensure_experiment(url: str, args: argparse.Namespace) -> None:
    """Create the ``level`` experiment (random teacher) unless one with that name exists."""
    space = {
        "kind": "level",
        "generator": "minigrid",
        "config": {"size": args.size, "max_walls": args.max_walls, "solvable": True},
    }
    with TeacherClient(url, token=args.token) as client:
        try:
            client.create_experiment(
                args.experiment, space, {"kind": "random"}, seed=args.seed, exist_ok=True
            )
        except ConflictError:
            log.info("experiment %r exists with another setup; using it", args.experiment)


def make_env(url: str, args: argparse.Namespace) -> Callable[[], gym.Env]:
    """Env factory (picklable, so AsyncVectorEnv workers build their own sessions)."""

    def thunk() -> gym.Env:
        env = minigrid_level_env(max_steps=args.max_episode_steps)
        env = CurriculumWrapper(env, args.experiment, base_url=url, token=args.token)
        return ImgObsWrapper(env)

    return thunk


# ----------------------------------------------------------------------------- agent
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal init, as in CleanRL."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Actor and critic MLPs over the flattened 5x5x3 image (scaled to [0, 1])."""

    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, n_actions), std=0.01),
        )

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        # MiniGrid's image holds small integers (object, colour, state): scale them down.
        return x.flatten(1) / 10.0

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """V(x)."""
        return self.critic(self._flat(x))

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score) an action: action, log-prob, entropy, value."""
        h = self._flat(x)
        dist = Categorical(logits=self.actor(h))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(h)


# ----------------------------------------------------------------------------- training
def train(args: argparse.Namespace, url: str) -> dict[str, float]:
    """PPO with GAE; returns summary numbers."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a tiny MLP: extra threads only contend with the envs
    fns = [make_env(url, args) for _ in range(args.num_envs)]
    kw = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    envs = (
        gym.vector.AsyncVectorEnv(fns, **kw)
        if args.use_async
        else gym.vector.SyncVectorEnv(fns, **kw)
    )
    obs_shape = envs.single_observation_space.shape
    agent = Agent(int(np.prod(obs_shape)), int(envs.single_action_space.n))
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    n, t = args.num_envs, args.num_steps
    batch_size = n * t
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    obs = torch.zeros((t, n, *obs_shape))
    actions = torch.zeros((t, n), dtype=torch.long)
    logprobs = torch.zeros((t, n))
    rewards = torch.zeros((t, n))
    dones = torch.zeros((t, n))
    values = torch.zeros((t, n))

    episodes, returns, running = 0, [], np.zeros(n)
    start = time.perf_counter()
    try:
        next_obs_np, _ = envs.reset(seed=args.seed)
        next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32)
        next_done = torch.zeros(n)
        for iteration in range(1, num_iterations + 1):
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate
            for step in range(t):
                obs[step], dones[step] = next_obs, next_done
                with torch.no_grad():
                    action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
                actions[step], logprobs[step] = action, logprob
                next_obs_np, reward, term, trunc, _ = envs.step(action.numpy())
                done = np.logical_or(term, trunc)
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
                next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32)
                next_done = torch.as_tensor(done, dtype=torch.float32)
                running += reward
                for i in np.flatnonzero(done):
                    returns.append(float(running[i]))
                    running[i] = 0.0
                episodes += int(done.sum())

            # GAE (a truncated episode is treated as terminated, as in CleanRL).
            with torch.no_grad():
                next_value = agent.get_value(next_obs).flatten()
                advantages = torch.zeros_like(rewards)
                lastgaelam = torch.zeros(n)
                for s in reversed(range(t)):
                    if s == t - 1:
                        nextnonterminal, nextvalues = 1.0 - next_done, next_value
                    else:
                        nextnonterminal, nextvalues = 1.0 - dones[s + 1], values[s + 1]
                    delta = rewards[s] + args.gamma * nextvalues * nextnonterminal - values[s]
                    lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                    advantages[s] = lastgaelam
                b_returns = (advantages + values).reshape(-1)

            b_obs = obs.reshape((-1, *obs_shape))
            b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape(-1)
            b_advantages, b_values = advantages.reshape(-1), values.reshape(-1)
            for _ in range(args.update_epochs):
                for mb in torch.randperm(batch_size).split(minibatch_size):
                    _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                        b_obs[mb], b_actions[mb]
                    )
                    ratio = (newlogprob - b_logprobs[mb]).exp()
                    adv = b_advantages[mb]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    pg_loss = torch.max(
                        -adv * ratio,
                        -adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef),
                    ).mean()
                    newvalue = newvalue.flatten()
                    v_clipped = b_values[mb] + torch.clamp(
                        newvalue - b_values[mb], -args.clip_coef, args.clip_coef
                    )
                    v_loss = (
                        0.5
                        * torch.max(
                            (newvalue - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2
                        ).mean()
                    )
                    loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                    optimizer.step()
            recent = returns[-50:]
            log.info(
                "iteration %d/%d: %d steps, %d episodes, mean return %.3f",
                iteration,
                num_iterations,
                iteration * batch_size,
                episodes,
                np.mean(recent) if recent else float("nan"),
            )
    finally:
        envs.close()  # flushes every wrapper's queued reports
    elapsed = time.perf_counter() - start
    steps = num_iterations * batch_size
    return {"steps": steps, "seconds": elapsed, "episodes": episodes}


def main(argv: list[str] | None = None) -> int:
    """Train, then print the trainer's and the server's episode counts."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    with service_at(args.server) as url:
        ensure_experiment(url, args)
        out = train(args, url)
        with TeacherClient(url, token=args.token) as client:
            counters = client.state(args.experiment).counters
        print(
            f"trained {out['steps']} steps in {out['seconds']:.1f}s "
            f"({out['steps'] / out['seconds']:.0f} steps/s); {out['episodes']} episodes"
        )
        print(
            f"server: reports_accepted={counters.reports_accepted} "
            f"duplicates={counters.duplicates} tasks_issued={counters.tasks_issued}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
