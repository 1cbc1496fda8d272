"""Playing a MiniGrid student without gradients: on held-out mazes or any MiniGrid env id.

Used by the evaluator actor (which posts results to ``/v1/experiments/{id}/evaluations``) and
by ``autocurriculum evaluate``; :func:`make_eval_env` also builds the envs of discrete tasks in
the rollout workers (a discrete task's name is a MiniGrid env id), and
:func:`env_id_problems` is the check ``autocurriculum train`` makes of those names. An episode
counts as solved when it ends with a positive reward (MiniGrid pays ``1 - 0.9 t/T`` for
reaching the goal and 0 otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from env_generators.held_out import held_out_names, is_held_out
from env_generators.minigrid_env import DEFAULT_VIEW, LevelEnv, register_envs
from student_workers.ppo import MiniGridAgent

#: The action sets a student can have: MiniGrid's first three (left, right, forward; the
#: reference maze setting) or all seven (pickup, drop, toggle and done too: keys and doors).
Actions = Literal["navigation", "full"]
#: Size of each action set (the policy's output).
ACTION_COUNTS: dict[str, int] = {"navigation": 3, "full": 7}


def action_count(actions: str) -> int:
    """Number of actions of the action set ``actions``.

    Raises:
        ValueError: an unknown action set.
    """
    try:
        return ACTION_COUNTS[actions]
    except KeyError:
        raise ValueError(
            f"actions must be one of {sorted(ACTION_COUNTS)}, got {actions!r}"
        ) from None


def actions_of(n_actions: int) -> Actions:
    """The action set of a policy with ``n_actions`` outputs (a checkpoint's ``n_actions``)."""
    return "navigation" if n_actions <= ACTION_COUNTS["navigation"] else "full"


class EnvNotFoundError(ValueError):
    """The evaluation env is neither a held-out maze nor a registered gymnasium id."""


def _registered_minigrid_problem(env: str) -> str | None:
    """Why the registered id ``env`` is not a MiniGrid env (``None`` when it is one)."""
    from gymnasium.envs.registration import load_env_creator
    from minigrid.minigrid_env import MiniGridEnv

    entry = gym.registry[env].entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
    except Exception as exc:  # a broken plugin may raise anything on import
        return f"its entry point {entry!r} does not load: {exc}"
    if not (isinstance(creator, type) and issubclass(creator, MiniGridEnv)):
        return "not a MiniGrid env"
    return None


def env_id_problems(names: Iterable[str]) -> dict[str, str]:
    """The names that a student cannot play, each with the reason: every name must be a
    held-out maze or a registered gymnasium id of a MiniGrid (or BabyAI) env. Checks the
    registry and the entry point's class only (nothing is built), so a long list is cheap."""
    import minigrid  # noqa: F401  (registers the MiniGrid-* and BabyAI-* ids)

    register_envs()
    problems = {}
    for name in names:
        if is_held_out(name):
            continue
        if name not in gym.registry:
            problems[name] = "not a registered gymnasium env id"
        elif (why := _registered_minigrid_problem(name)) is not None:
            problems[name] = why
    return problems


def make_eval_env(env: str, view: int = DEFAULT_VIEW, actions: Actions = "navigation") -> gym.Env:
    """A held-out maze by name (``Labyrinth``) or any registered MiniGrid env id
    (``MiniGrid-FourRooms-v0``, ``autocurriculum/Labyrinth-v0``), with a ``view`` x ``view``
    agent view so that the student sees what it was trained on.

    ``actions`` is the student's action set; it sets the action space of a held-out maze
    (a registered MiniGrid env keeps its own seven actions, which a navigation student's
    three are the first of).

    Raises:
        EnvNotFoundError: ``env`` is neither, or does not give MiniGrid observations.
    """
    if is_held_out(env):
        return LevelEnv(env, agent_view_size=view, actions=actions)
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
