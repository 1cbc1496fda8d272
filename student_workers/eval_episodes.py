"""Playing a MiniGrid student without gradients: on held-out mazes or any MiniGrid env id.

Used by the evaluator actor (which posts results to ``/v1/experiments/{id}/evaluations``) and
by ``autocurriculum evaluate``. An episode counts as solved when it ends with a positive
reward (MiniGrid pays ``1 - 0.9 t/T`` for reaching the goal and 0 otherwise).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from env_generators.held_out import held_out_names, is_held_out
from env_generators.minigrid_env import DEFAULT_VIEW, LevelEnv, register_envs
from student_workers.ppo import MiniGridAgent


class EnvNotFoundError(ValueError):
    """The evaluation env is neither a held-out maze nor a registered gymnasium id."""


def make_eval_env(env: str, view: int = DEFAULT_VIEW) -> gym.Env:
    """A held-out maze by name (``Labyrinth``) or any registered MiniGrid env id
    (``MiniGrid-FourRooms-v0``, ``autocurriculum/Labyrinth-v0``), with a ``view`` x ``view``
    agent view so that the student sees what it was trained on."""
    if is_held_out(env):
        return LevelEnv(env, agent_view_size=view)
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    register_envs()
    if env not in gym.registry:
        known = ", ".join(held_out_names())
        raise EnvNotFoundError(
            f"unknown env {env!r}: give a held-out maze ({known}) or a registered "
            "MiniGrid env id such as MiniGrid-FourRooms-v0"
        )
    try:
        made = gym.make(env, agent_view_size=view)
    except TypeError as exc:
        raise EnvNotFoundError(
            f"{env!r} is not a MiniGrid env (no agent_view_size): {exc}"
        ) from exc
    space = made.observation_space
    if not isinstance(space, gym.spaces.Dict) or "image" not in space.spaces:
        made.close()
        raise EnvNotFoundError(f"{env!r} does not give MiniGrid observations (image, direction)")
    return made


def run_episodes(
    agent: MiniGridAgent,
    env: gym.Env,
    episodes: int,
    *,
    greedy: bool = False,
    seed: int = 0,
) -> dict[str, float | int]:
    """Play ``episodes`` episodes of ``env`` with ``agent`` (no gradients).

    Actions are sampled from the policy (from a generator seeded with ``seed``) unless
    ``greedy``. Returns ``{"episodes", "solve_rate", "mean_return", "mean_length"}``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    device = agent.actor.weight.device
    gen = torch.Generator(device=device).manual_seed(seed)
    returns, lengths, solved = [], [], 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        state, done = agent.initial_state(1), torch.ones(1, device=device)
        ret, length, finished = 0.0, 0, False
        while not finished:
            with torch.no_grad():
                action, _, _, _, state = agent.act(
                    torch.as_tensor(obs["image"][None], device=device),
                    torch.as_tensor([obs["direction"]], device=device),
                    state,
                    done,
                    greedy=greedy,
                    generator=gen,
                )
            done = torch.zeros(1, device=device)
            obs, reward, term, trunc, _ = env.step(int(action[0]))
            ret += float(reward)
            length += 1
            finished = bool(term or trunc)
        returns.append(ret)
        lengths.append(length)
        solved += int(ret > 0)
    return {
        "episodes": episodes,
        "solve_rate": solved / episodes,
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
    }
