#!/usr/bin/env python
"""Stable-Baselines3 PPO on MiniGrid levels served by the teacher service.

Each env is ``ImgObsWrapper(CurriculumWrapper(LevelEnv))``: the curriculum wrapper sits right
on the level env (it sets each episode's level and reports the episode's raw return), and
minigrid's ``ImgObsWrapper`` outside it keeps only the 5x5x3 image, which SB3's
``MlpPolicy`` flattens. With ``--subproc`` the envs run in ``SubprocVecEnv`` worker
processes, each with its own client session (created lazily inside the worker).

Without ``--server`` the example starts a local teacher service on a free port with a
temporary SQLite file, creates a ``level`` experiment served by the ``random`` teacher, and
stops the service at the end. With ``--server`` it creates the experiment if it is missing
and otherwise uses the existing one.

Usage::

    .venv/bin/python examples/sb3_minigrid.py --steps 4096               # about a minute
    .venv/bin/python examples/sb3_minigrid.py --server http://127.0.0.1:8000 \\
        --experiment my-levels --steps 200000 --num-envs 8 --subproc
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
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from student_workers.wrappers import CurriculumWrapper, minigrid_level_env
from teacher_service.client import ConflictError, TeacherClient
from teacher_service.testing import service_at

log = logging.getLogger("sb3_minigrid")


def level_space(max_walls: int, size: int) -> dict:
    """The ``level`` task space: random solvable MiniGrid mazes."""
    return {
        "kind": "level",
        "generator": "minigrid",
        "config": {"size": size, "max_walls": max_walls, "solvable": True},
    }


def ensure_experiment(url: str, token: str | None, name: str, space: dict, seed: int) -> None:
    """Create the experiment (random teacher) unless one with that name exists."""
    with TeacherClient(url, token=token) as client:
        try:
            client.create_experiment(name, space, {"kind": "random"}, seed=seed, exist_ok=True)
        except ConflictError:
            log.info("experiment %r exists with another setup; using it as it is", name)


def make_env_fn(args: argparse.Namespace, url: str) -> Callable[[], gym.Env]:
    """A picklable env factory: SubprocVecEnv calls it inside each worker process."""

    def make() -> gym.Env:
        env = minigrid_level_env(max_steps=args.max_episode_steps)
        env = CurriculumWrapper(env, args.experiment, base_url=url, token=args.token)
        return ImgObsWrapper(env)

    return make


class EpisodeCounter(BaseCallback):
    """Counts finished episodes and their returns on the trainer side."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes = 0
        self.returns: list[float] = []
        self._running: np.ndarray | None = None

    def _on_step(self) -> bool:
        rewards, dones = self.locals["rewards"], self.locals["dones"]
        if self._running is None:
            self._running = np.zeros(len(rewards))
        self._running += rewards
        for i in np.flatnonzero(dones):
            self.returns.append(float(self._running[i]))
            self._running[i] = 0.0
        self.episodes += int(np.sum(dones))
        return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (small defaults: about a minute on 2 cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8192, help="total env steps")
    p.add_argument("--server", default=None, help="teacher URL; default: start a local one")
    p.add_argument("--token", default=None, help="bearer token of --server")
    p.add_argument("--experiment", default="sb3-minigrid", help="experiment name")
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--subproc", action="store_true", help="SubprocVecEnv instead of Dummy")
    p.add_argument("--n-steps", type=int, default=256, help="PPO steps per env per rollout")
    p.add_argument("--max-episode-steps", type=int, default=None, help="default: 250 (15x15)")
    p.add_argument("--size", type=int, default=15, help="level side (new experiments)")
    p.add_argument("--max-walls", type=int, default=30, help="most walls (new experiments)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, then print the trainer's and the server's episode counts."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    torch.set_num_threads(1)  # a tiny MLP: more threads only contend with the env workers
    with service_at(args.server) as url:
        ensure_experiment(
            url, args.token, args.experiment, level_space(args.max_walls, args.size), args.seed
        )
        fns = [make_env_fn(args, url) for _ in range(args.num_envs)]
        vec = SubprocVecEnv(fns) if args.subproc else DummyVecEnv(fns)
        counter = EpisodeCounter()
        t0 = time.perf_counter()
        try:
            model = PPO("MlpPolicy", vec, n_steps=args.n_steps, batch_size=64, seed=args.seed)
            model.learn(total_timesteps=args.steps, callback=counter)
        finally:
            vec.close()  # flushes every wrapper's queued reports
        elapsed = time.perf_counter() - t0
        with TeacherClient(url, token=args.token) as client:
            counters = client.state(args.experiment).counters
        last = counter.returns[-50:]
        print(
            f"trained {model.num_timesteps} steps in {elapsed:.1f}s "
            f"({model.num_timesteps / elapsed:.0f} steps/s); {counter.episodes} episodes, "
            f"mean return of the last {len(last)}: {np.mean(last) if last else float('nan'):.3f}"
        )
        print(
            f"server: reports_accepted={counters.reports_accepted} "
            f"duplicates={counters.duplicates} tasks_issued={counters.tasks_issued}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
