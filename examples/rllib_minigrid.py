#!/usr/bin/env python
"""RLlib PPO (new API stack) on MiniGrid levels served by the teacher service.

RLlib builds the envs itself, inside its env runner actors, from a creator registered with
``ray.tune.registry.register_env``. The creator here, :func:`make_env`, builds one
``CurriculumWrapper`` per sub-env: each env runner (and each sub-env of its gymnasium vector
env) opens its own HTTP session to the teacher at its first ``reset()``, takes a level per
episode and reports every finished episode in the background. ``algo.stop()`` calls every env
runner's ``stop()``, which closes its vector env and so every wrapper: queued reports are
flushed before the actors go away.

Observations: the curriculum wrapper sits right on the ``LevelEnv`` (it sets each level and
reports the raw return); outside it, minigrid's ``ImgObsWrapper`` keeps the 5x5x3 image,
``DtypeObservation`` makes it float32 and ``FlattenObservation`` a 75-vector, which RLlib's
default MLP encoder takes as it is.

Without ``--server`` a local teacher service is started on a free port with a temporary SQLite
file, a ``level`` experiment served by the ``random`` teacher is created, and the service is
stopped at the end. With ``--server`` the experiment must exist, unless ``--create`` is given
(then it is created if it is missing). Ray runs as an embedded single-node cluster on
127.0.0.1 (``student_workers.actors.start_ray``), one CPU per env runner.

Usage::

    .venv/bin/python examples/rllib_minigrid.py --iterations 3           # about a minute
    .venv/bin/python examples/rllib_minigrid.py --server http://127.0.0.1:8000 \\
        --experiment my-levels --create --iterations 200 --num-env-runners 4
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.wrappers import ImgObsWrapper

from student_workers.wrappers import CurriculumWrapper, minigrid_level_env
from teacher_service.client import ConflictError, TeacherClient
from teacher_service.testing import service_at

log = logging.getLogger("rllib_minigrid")

#: The name the env creator is registered under (``config.environment(ENV_NAME)``).
ENV_NAME = "curriculum-minigrid"


def make_env(env_config: Mapping[str, Any]) -> gym.Env:
    """The RLlib env creator: a MiniGrid level env trained on the teacher's levels.

    RLlib calls it inside each env runner, once per sub-env, so every sub-env gets its own
    ``CurriculumWrapper`` and (lazily, at its first reset) its own session.

    Args:
        env_config: RLlib's ``EnvContext``: ``server`` (teacher URL), ``experiment``, and
            optionally ``token``, ``max_episode_steps`` and ``wrapper_kwargs`` (more
            ``CurriculumWrapper`` arguments: ``prefetch``, ``flush_interval``...).

    Returns:
        ``FlattenObservation(DtypeObservation(ImgObsWrapper(CurriculumWrapper(LevelEnv))))``.
    """
    env = minigrid_level_env(max_steps=env_config.get("max_episode_steps"))
    env = CurriculumWrapper(
        env,
        env_config["experiment"],
        base_url=env_config["server"],
        token=env_config.get("token"),
        **(env_config.get("wrapper_kwargs") or {}),
    )
    env = ImgObsWrapper(env)
    env = gym.wrappers.DtypeObservation(env, np.float32)
    return gym.wrappers.FlattenObservation(env)


def build_config(
    server: str,
    experiment: str,
    *,
    token: str | None = None,
    num_env_runners: int = 2,
    num_envs_per_env_runner: int = 1,
    train_batch_size: int = 1024,
    minibatch_size: int = 256,
    num_epochs: int = 4,
    max_episode_steps: int | None = None,
    wrapper_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """The PPO config (RLModule/Learner and EnvRunner/ConnectorV2 stack).

    Args:
        server: teacher service URL, as the env runners reach it.
        experiment: experiment name or id.
        token: bearer token of the server, if it needs one.
        num_env_runners: remote env runner actors (one CPU each).
        num_envs_per_env_runner: sub-envs in each runner's vector env.
        train_batch_size: env steps per training iteration.
        minibatch_size: SGD minibatch.
        num_epochs: passes over each batch.
        max_episode_steps: episode cap; default scales with each level's size.
        wrapper_kwargs: more ``CurriculumWrapper`` arguments, for every sub-env.
        seed: RLlib's seed.

    Returns:
        A ``PPOConfig``; ``config.build_algo()`` makes the algorithm.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    env_config = {
        "server": server,
        "experiment": experiment,
        "token": token,
        "max_episode_steps": max_episode_steps,
        "wrapper_kwargs": dict(wrapper_kwargs or {}),
    }
    return (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(
            num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner
        )
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=minibatch_size,
            num_epochs=num_epochs,
            lr=3e-4,
            entropy_coeff=0.01,
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
        .debugging(seed=seed)
    )


def train(config: Any, iterations: int) -> list[dict[str, Any]]:
    """Register :func:`make_env`, build the algorithm, train, and stop it.

    ``algo.stop()`` runs in a ``finally``: it closes every env runner's envs, so every
    wrapper flushes its queued reports (up to its ``close_timeout``) before this returns.

    Args:
        config: from :func:`build_config`.
        iterations: ``algo.train()`` calls.

    Returns:
        The result dict of every iteration.
    """
    from ray.tune.registry import register_env

    register_env(ENV_NAME, make_env)
    algo = config.build_algo()
    results: list[dict[str, Any]] = []
    try:
        for _ in range(iterations):
            results.append(algo.train())
    finally:
        algo.stop()
    return results


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
            log.info("experiment %r exists with another setup; using it as it is", args.experiment)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags; the defaults are small (about a minute on 2 cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=None, help="teacher URL; default: start a local one")
    p.add_argument("--token", default=None, help="bearer token of --server")
    p.add_argument("--experiment", default="rllib-minigrid", help="experiment name")
    p.add_argument("--create", action="store_true", help="create the experiment if missing")
    p.add_argument("--iterations", type=int, default=3, help="training iterations")
    p.add_argument("--num-env-runners", type=int, default=2)
    p.add_argument("--num-envs-per-env-runner", type=int, default=1)
    p.add_argument("--train-batch-size", type=int, default=1024)
    p.add_argument("--minibatch-size", type=int, default=256)
    p.add_argument("--num-epochs", type=int, default=4)
    p.add_argument("--max-episode-steps", type=int, default=None, help="default: by level size")
    p.add_argument("--size", type=int, default=9, help="level side (new experiments)")
    p.add_argument("--max-walls", type=int, default=10, help="most walls (new experiments)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, then print RLlib's and the server's episode counts."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    import ray

    from student_workers.actors import start_ray

    with service_at(args.server) as url:
        if args.server is None or args.create:
            ensure_experiment(url, args)
        else:
            with TeacherClient(url, token=args.token) as client:
                client.get_experiment(args.experiment)  # fails here, not in every env runner
        started = start_ray(num_cpus=args.num_env_runners)
        try:
            config = build_config(
                url,
                args.experiment,
                token=args.token,
                num_env_runners=args.num_env_runners,
                num_envs_per_env_runner=args.num_envs_per_env_runner,
                train_batch_size=args.train_batch_size,
                minibatch_size=args.minibatch_size,
                num_epochs=args.num_epochs,
                max_episode_steps=args.max_episode_steps,
                seed=args.seed,
            )
            t0 = time.perf_counter()
            results = train(config, args.iterations)
            elapsed = time.perf_counter() - t0
        finally:
            if started:
                ray.shutdown()
        runners = results[-1]["env_runners"]  # RLlib's counts, summed over the env runners
        steps = int(runners["num_env_steps_sampled_lifetime"])
        print(
            f"trained {len(results)} iterations, {steps} steps in {elapsed:.1f}s "
            f"({steps / elapsed:.0f} steps/s); {int(runners['num_episodes_lifetime'])} episodes, "
            f"mean return {runners.get('episode_return_mean', float('nan')):.3f}"
        )
        with TeacherClient(url, token=args.token) as client:
            counters = client.state(args.experiment).counters
        print(
            f"server: reports_accepted={counters.reports_accepted} "
            f"duplicates={counters.duplicates} tasks_issued={counters.tasks_issued}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
