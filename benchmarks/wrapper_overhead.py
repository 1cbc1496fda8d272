#!/usr/bin/env python
"""Throughput cost of ``CurriculumWrapper`` (docs/architecture.md#students): env steps/s with
and without it, and with Syllabus, the library users would pick instead.

Starts a real teacher service (subprocess, temporary SQLite file) with a ``level`` experiment
served by the ``random`` teacher (15 x 15 solvable mazes, up to 30 walls), then measures, in
one run and side by side, three arms of each scenario:

- ``unwrapped``: ``LevelEnv`` plus a trivial wrapper that sets, at every reset, the next level
  of a pool drawn beforehand from the same generator and config (already parsed). The env
  does the same work as under the curriculum, so what differs is only the wrapper's cost
  (task buffer, parsing the ASCII level, reports, the session's HTTP threads, and the server
  sharing the machine);
- ``wrapped``: ``CurriculumWrapper`` on ``LevelEnv``, taking levels from the server and
  reporting every finished episode;
- ``syllabus``: the same job done by Syllabus (``syllabus-rl`` 0.7, the ``dev`` extra) with
  its multiprocessing synchronisation: a ``DomainRandomization`` curriculum over a
  ``DiscreteTaskSpace`` of the unwrapped arm's pool (same generator and config, already
  parsed), behind ``make_multiprocessing_curriculum`` (its update thread and queues), and on
  the env side ``GymnasiumSyncWrapper`` over a ``TaskWrapper`` that sets the task's level at
  reset. The env wrapper takes each task from the curriculum's task queue and puts every
  finished episode on its update queue. As in Syllabus's own MiniGrid example (a
  ``SyncVectorEnv``), the curriculum runs in the trainer's process, as DummyVecEnv envs do
  here. ``--syllabus-buffer-size`` tasks are requested ahead per env (default 2, the most the
  wrapper allows without a warning; its default of 1 makes every reset wait for the
  curriculum thread, which polls its queue every 10 ms). ``--skip-syllabus`` leaves it out.

Scenarios:

- ``random_policy``: one env stepped with uniformly random actions (reference 250-step cap);
- ``random_policy_short_episodes``: the same with a 25-step cap, i.e. about ten times as
  many resets, task fetches and reports per step: a stress case for the per-episode cost
  (parsing the level, the session's HTTP threads under the GIL, the server generating
  levels on the same 2 cores), recorded for information, outside the target;
- ``sb3_collect``: Stable-Baselines3 PPO ``collect_rollouts`` (``MlpPolicy``, ``DummyVecEnv``
  of ``--sb3-envs`` envs, ``ImgObsWrapper`` outside the wrapper), both arms with the same
  initial weights.

The arms are measured in short chunks (a few tenths of a second each), alternately, for
``--rounds`` rounds after one discarded warm-up round, with the order of the arms reversed
every round: shared machines drift and burst, and adjacent chunks see the same conditions.
The headline ``ratio`` is the median over rounds of wrapped / unwrapped steps/s of the same
round; ``ratio_of_totals`` (all steps over all time, per arm) is recorded alongside.
``ratio_syllabus`` (and ``ratio_of_totals_syllabus``, ...) is the same for Syllabus / unwrapped:
reported, not a target. The random-policy scenarios also run an A/A control, a second
identical unwrapped arm, whose ratio to the first (``control_ratio_unwrapped_copy``) shows how
much of a gap is noise. The target is ``ratio >= 0.95``.

Usage::

    .venv/bin/python benchmarks/wrapper_overhead.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/wrapper_overhead.py --rounds 6 --skip-sb3 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.machine import describe_machine
from env_generators.generators import get_generator
from env_generators.levels import Level
from student_workers.wrappers import CurriculumWrapper, minigrid_level_env
from teacher_service.client import TeacherClient
from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "wrapper_overhead.json"
TARGET_RATIO = 0.95
POOL_SIZE = 512  # levels of the unwrapped arm's pool, and Syllabus's tasks
GENERATOR_CONFIG = {"size": 15, "max_walls": 30, "solvable": True}
EXPERIMENT = "wrapper-overhead"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYLLABUS_VERSION = "0.7"  # the API used below (make_multiprocessing_curriculum, ...) is 0.7's


class PoolLevels(gym.Wrapper):
    """The baseline: at every reset, the next level of a pre-drawn, pre-parsed pool."""

    def __init__(self, env: gym.Env, pool: list[Level]) -> None:
        super().__init__(env)
        self.pool = pool
        self.i = 0

    def reset(self, **kw: Any) -> tuple[Any, dict[str, Any]]:
        self.env.unwrapped.set_level(self.pool[self.i % len(self.pool)])
        self.i += 1
        return self.env.reset(**kw)


def level_pool(n: int, seed: int) -> list[Level]:
    """``n`` levels from the experiment's generator and config."""
    gen = get_generator("minigrid")
    cfg = gen.config_model(**GENERATOR_CONFIG)
    rng = np.random.default_rng(seed)
    return [gen.sample(rng, cfg) for _ in range(n)]


def cpu_ticks(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ------------------------------------------------------------------------- Syllabus
@functools.cache
def syllabus_classes() -> tuple[type, type]:
    """The two Syllabus subclasses the Syllabus arm needs, built on first use.

    Syllabus is imported only here (it imports Ray, PettingZoo and matplotlib), so that
    ``--skip-syllabus`` runs without it. Importing ``syllabus.core`` creates a shared-memory
    counter (``GymnasiumEvaluationWrapper.env_count``) that nothing unlinks: the "leaked
    shared_memory objects" warning at exit is the resource tracker removing it.

    Returns:
        ``(PoolTaskWrapper, CountingDomainRandomization)``.
    """
    from syllabus.core import TaskWrapper
    from syllabus.curricula import DomainRandomization

    class PoolTaskWrapper(TaskWrapper):
        """Syllabus's task interface for ``LevelEnv``: task ``i`` is level ``i`` of the pool.

        ``GymnasiumSyncWrapper`` resets its env with ``new_task=``; ``TaskWrapper.reset`` then
        calls :meth:`change_task`. The levels are parsed beforehand, as in the unwrapped arm,
        which is what a Syllabus user with a level pool would do.
        """

        def __init__(self, env: gym.Env, pool: list[Level]) -> None:
            super().__init__(env)
            self.pool = pool
            self.levels_set = 0  # resets, to check that every episode reached the curriculum

        def change_task(self, new_task: int) -> None:
            self.env.unwrapped.set_level(self.pool[int(new_task)])
            self.task = new_task
            self.levels_set += 1

    class CountingDomainRandomization(DomainRandomization):
        """Syllabus's uniform curriculum, counting the episode updates that reach it.

        The count shows that episodes flowed through Syllabus's queues; it costs one addition
        per episode on the curriculum thread.
        """

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.episodes_seen = 0
            self.steps_seen = 0

        def update_on_episode(
            self,
            episode_return: float,
            length: int,
            task: Any,
            progress: float | bool,
            env_id: int | None = None,
        ) -> None:
            super().update_on_episode(episode_return, length, task, progress, env_id=env_id)
            self.episodes_seen += 1
            self.steps_seen += int(length)

    return PoolTaskWrapper, CountingDomainRandomization


class SyllabusArm:
    """One scenario's Syllabus curriculum and the envs synchronised with it.

    A curriculum per scenario, started here and stopped by :meth:`close`, so that its update
    thread (which polls its queue every 10 ms) runs only while its scenario is measured.

    Args:
        pool: the levels; task ``i`` is ``pool[i]``.
        buffer_size: tasks each env requests ahead (``GymnasiumSyncWrapper(buffer_size=)``).
        seed: seeds numpy's global generator, which ``DomainRandomization`` samples from.
    """

    def __init__(self, pool: list[Level], buffer_size: int, seed: int) -> None:
        from syllabus.core import make_multiprocessing_curriculum
        from syllabus.task_space import DiscreteTaskSpace

        _, counting_dr = syllabus_classes()
        np.random.seed(seed)
        self.pool = pool
        self.buffer_size = buffer_size
        self.task_space = DiscreteTaskSpace(len(pool))
        self.curriculum = counting_dr(self.task_space)
        # start() installs a SIGINT handler of its own; put ours back in close().
        self._sigint = signal.getsignal(signal.SIGINT)
        self.sync = make_multiprocessing_curriculum(self.curriculum, start=True)
        self.envs: list[Any] = []

    def env(self, max_steps: int | None) -> gym.Env:
        """A ``LevelEnv`` that takes its levels from the curriculum and reports its episodes."""
        from syllabus.core import GymnasiumSyncWrapper

        task_wrapper, _ = syllabus_classes()
        inner = task_wrapper(minigrid_level_env(max_steps=max_steps), self.pool)
        self.envs.append(inner)
        return GymnasiumSyncWrapper(
            inner, self.task_space, self.sync.components, buffer_size=self.buffer_size
        )

    def drain_metrics(self) -> None:
        """Take the queued task-wait times, as a trainer's ``log_metrics`` call would.

        Every reset puts its wait for a task on a queue of the curriculum's components that
        only ``log_metrics`` empties; left alone its pipe fills (thousands of resets), its
        feeder thread blocks, and the process hangs at exit joining that thread. A trainer
        logs once per rollout: the arm does it once per chunk, inside the timed chunk.
        """
        self.sync.components.get_metrics()

    def close(self, timeout: float = 5.0) -> dict[str, Any]:
        """Let the curriculum take the updates still queued, stop it, and count what it saw.

        Returns:
            Counts of the scenario, and ``all_episodes_reached_curriculum``: each env's
            finished episodes (its resets, less the one it may still be playing) all
            reached the curriculum.
        """
        queue = self.sync.components.update_queue
        deadline = time.monotonic() + timeout
        time.sleep(0.1)  # the queue's feeder thread may still be writing the last update
        while not queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)  # the update taken last is routed after it leaves the queue
        self.drain_metrics()
        self.sync.stop()
        signal.signal(signal.SIGINT, self._sigint)
        levels_set = sum(e.levels_set for e in self.envs)
        seen = self.curriculum.episodes_seen
        return {
            "envs": len(self.envs),
            "levels_set_by_envs": levels_set,
            "episodes_seen_by_curriculum": seen,
            "steps_seen_by_curriculum": self.curriculum.steps_seen,
            "tasks_assigned_by_curriculum": self.sync.num_assigned_tasks,
            "all_episodes_reached_curriculum": levels_set - len(self.envs) <= seen <= levels_set,
        }


# ------------------------------------------------------------------------- workloads
class RandomLoop:
    """Steps one env with random actions; episodes carry over between calls."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.env = env
        self.actions = np.random.default_rng(seed).integers(0, env.action_space.n, 1 << 16)
        self.k = 0
        self.done = True

    def run(self, steps: int) -> int:
        env, actions, k, done = self.env, self.actions, self.k, self.done
        mask = len(actions) - 1
        for _ in range(steps):
            if done:
                env.reset()
            _, _, term, trunc, _ = env.step(int(actions[k & mask]))
            k += 1
            done = term or trunc
        self.k, self.done = k, done
        return steps


class SB3Collector:
    """PPO ``collect_rollouts`` on a ``DummyVecEnv`` (no gradient updates)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], n_steps: int, seed: int) -> None:
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.vec = DummyVecEnv(env_fns)
        self.model = PPO("MlpPolicy", self.vec, n_steps=n_steps, batch_size=64, seed=seed)
        _, self.callback = self.model._setup_learn(total_timesteps=10**12, callback=None)
        self.callback.on_training_start(locals(), globals())

    def run(self, rollouts: int) -> int:
        m = self.model
        for _ in range(rollouts):
            m.collect_rollouts(m.env, self.callback, m.rollout_buffer, n_rollout_steps=m.n_steps)
        return rollouts * m.n_steps * m.n_envs


# ------------------------------------------------------------------------- measuring
def measure(
    name: str,
    arms: dict[str, Callable[[], int]],
    rounds: int,
    server_pid: int,
    description: str,
    target_applies: bool = True,
) -> dict[str, Any]:
    """Alternating chunks of every arm; round 0 is a discarded warm-up.

    ``unwrapped`` and ``wrapped`` are required; ``syllabus`` and ``unwrapped_copy`` (the A/A
    control) are compared with ``unwrapped`` when present. The order of the arms flips every
    round, so no arm always follows the same neighbour.
    """
    rates: dict[str, list[float]] = {a: [] for a in arms}
    totals = {a: [0, 0.0] for a in arms}  # steps, seconds
    cpu = {a: 0.0 for a in arms}  # this process, CPU seconds
    server_cpu = {a: 0.0 for a in arms}
    order = list(arms)
    for rnd in range(rounds + 1):
        for arm in order if rnd % 2 == 0 else order[::-1]:
            c0, s0, t0 = time.process_time(), cpu_ticks(server_pid), time.perf_counter()
            steps = arms[arm]()
            t1, s1, c1 = time.perf_counter(), cpu_ticks(server_pid), time.process_time()
            if rnd == 0:
                continue  # warm-up: imports, caches, the first task fetches
            rates[arm].append(steps / (t1 - t0))
            totals[arm][0] += steps
            totals[arm][1] += t1 - t0
            cpu[arm] += c1 - c0
            server_cpu[arm] += s1 - s0

    def paired_with(arm: str) -> list[float]:
        return [w / u for w, u in zip(rates[arm], rates["unwrapped"], strict=True)]

    def cpu_per_step(arm: str) -> float:
        return cpu[arm] / totals[arm][0]

    paired = paired_with("wrapped")
    ratio = statistics.median(paired)
    total_rate = {a: totals[a][0] / totals[a][1] for a in order}
    result = {
        "scenario": name,
        "description": description,
        "rounds": rounds,
        "steps_per_chunk": totals["wrapped"][0] // rounds,
        "median_steps_per_s": {a: round(statistics.median(rates[a]), 1) for a in order},
        "total_steps_per_s": {a: round(total_rate[a], 1) for a in order},
        "ratio": round(ratio, 4),
        "ratio_of_totals": round(total_rate["wrapped"] / total_rate["unwrapped"], 4),
        "paired_ratio_quartiles": [round(q, 4) for q in statistics.quantiles(paired, n=4)],
        "process_cpu_us_per_step": {a: round(1e6 * cpu[a] / totals[a][0], 2) for a in order},
        # CPU time is blind to steal time and idle waits: a steadier second opinion on a VM.
        "process_cpu_ratio": round(cpu_per_step("unwrapped") / cpu_per_step("wrapped"), 4),
        "server_cpu_us_per_step": {a: round(1e6 * server_cpu[a] / totals[a][0], 2) for a in order},
        "target_applies": target_applies,
        "meets_target": ratio >= TARGET_RATIO,
    }
    if "syllabus" in arms:
        # The alternative library, measured the same way: reported, not a target.
        paired_s = paired_with("syllabus")
        result["ratio_syllabus"] = round(statistics.median(paired_s), 4)
        result["ratio_of_totals_syllabus"] = round(
            total_rate["syllabus"] / total_rate["unwrapped"], 4
        )
        result["paired_ratio_quartiles_syllabus"] = [
            round(q, 4) for q in statistics.quantiles(paired_s, n=4)
        ]
        result["process_cpu_ratio_syllabus"] = round(
            cpu_per_step("unwrapped") / cpu_per_step("syllabus"), 4
        )
    if "unwrapped_copy" in arms:
        # A/A control: a second, identical unwrapped arm shows the noise floor of the ratio.
        result["control_ratio_unwrapped_copy"] = round(
            statistics.median(paired_with("unwrapped_copy")), 4
        )
    m = result["median_steps_per_s"]
    print(
        f"  {name}: unwrapped {m['unwrapped']:,.0f} steps/s, wrapped {m['wrapped']:,.0f} "
        f"steps/s, ratio {ratio:.3f}"
        + (
            f"; syllabus {m['syllabus']:,.0f} steps/s, ratio {result['ratio_syllabus']:.3f}"
            if "syllabus" in arms
            else ""
        )
        + (
            f" (A/A control {result['control_ratio_unwrapped_copy']:.3f})"
            if "unwrapped_copy" in arms
            else ""
        ),
        flush=True,
    )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=40, help="measured chunks per arm")
    p.add_argument("--random-steps", type=int, default=2000, help="steps per random-loop chunk")
    p.add_argument("--short-cap", type=int, default=25, help="episode cap of the stress case")
    p.add_argument("--sb3-envs", type=int, default=4, help="envs in the DummyVecEnv")
    p.add_argument("--sb3-n-steps", type=int, default=256, help="PPO n_steps per env")
    p.add_argument("--sb3-rollouts", type=int, default=1, help="rollouts per SB3 chunk")
    p.add_argument("--skip-sb3", action="store_true", help="only the random-policy loops")
    p.add_argument(
        "--skip-syllabus",
        action="store_true",
        help="leave out the Syllabus arm (and the syllabus-rl import)",
    )
    p.add_argument(
        "--syllabus-buffer-size",
        type=int,
        default=2,
        help="tasks each Syllabus env requests ahead (GymnasiumSyncWrapper's buffer_size)",
    )
    p.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the A/A control arm (a second unwrapped env) of the random-policy loops",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print a summary, write the JSON; exit 0 (the JSON says PASS/MISS)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)  # the tiny MLP gains nothing from threads; keep cores for envs
    out: dict[str, Any] = {
        "benchmark": "wrapper_overhead",
        "command": shlex.join(
            ["python", os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": describe_machine(),
        "note": (
            "the teacher service runs on the same machine; wrapped steps/s include its CPU "
            "and the session's HTTP threads; syllabus steps/s include its curriculum thread "
            "and queues, in this process"
        ),
        "target_ratio": TARGET_RATIO,
        "level_space": {"kind": "level", "generator": "minigrid", "config": GENERATOR_CONFIG},
        "teacher": "random",
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
        },
        "loadavg_start": list(os.getloadavg()),
        "scenarios": [],
    }
    if not args.skip_syllabus:
        # Fail early, before the server starts, if syllabus-rl is missing or not the 0.7 API.
        try:
            version = importlib.metadata.version("syllabus-rl")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(
                "syllabus-rl is not installed: `make install` (the dev extra), or --skip-syllabus"
            ) from None
        if version != SYLLABUS_VERSION:
            raise SystemExit(f"syllabus-rl {version} found, the Syllabus arm needs 0.7")
        out["syllabus"] = {
            "version": version,
            "curriculum": "DomainRandomization over DiscreteTaskSpace(pool)",
            "sync": (
                "make_multiprocessing_curriculum (update thread in this process) + "
                "GymnasiumSyncWrapper(TaskWrapper(LevelEnv)) per env"
            ),
            "pool_levels": POOL_SIZE,
            "buffer_size": args.syllabus_buffer_size,
            "scenarios": {},
        }
    else:
        out["syllabus"] = None
    t_start = time.time()
    wrappers: list[CurriculumWrapper] = []
    syllabus_arms: dict[str, SyllabusArm] = {}
    with tempfile.TemporaryDirectory(prefix="wrapper_overhead_") as tmp:
        server = ServerProcess(f"sqlite:///{Path(tmp) / 'bench.db'}")
        server.start()
        assert server.proc is not None
        try:
            with TeacherClient(server.url) as client:
                client.create_experiment(
                    EXPERIMENT, out["level_space"], {"kind": "random"}, seed=args.seed
                )
            pool = level_pool(POOL_SIZE, args.seed)

            def syllabus_arm(scenario: str) -> SyllabusArm:
                arm = SyllabusArm(pool, args.syllabus_buffer_size, args.seed)
                syllabus_arms[scenario] = arm
                return arm

            def syllabus_chunk(scenario: str, run: Callable[[], int]) -> Callable[[], int]:
                arm = syllabus_arms[scenario]

                def chunk() -> int:
                    steps = run()
                    arm.drain_metrics()
                    return steps

                return chunk

            def close_syllabus(scenario: str) -> None:
                # Stop the scenario's curriculum thread before the next scenario is measured.
                if scenario in syllabus_arms:
                    stats = syllabus_arms.pop(scenario).close()
                    out["syllabus"]["scenarios"][scenario] = stats

            def curriculum(max_steps: int | None) -> CurriculumWrapper:
                w = CurriculumWrapper(
                    minigrid_level_env(max_steps=max_steps), EXPERIMENT, base_url=server.url
                )
                wrappers.append(w)
                return w

            for name, cap, what, target in (
                ("random_policy", None, "random actions, 250-step episode cap", True),
                (
                    "random_policy_short_episodes",
                    args.short_cap,
                    f"stress case, informational: random actions, {args.short_cap}-step cap "
                    "(about 10x more episodes, task fetches and reports per step)",
                    False,
                ),
            ):
                loops = {
                    "unwrapped": RandomLoop(PoolLevels(minigrid_level_env(max_steps=cap), pool), 1),
                    "wrapped": RandomLoop(curriculum(cap), 1),
                }
                if not args.skip_syllabus:
                    loops["syllabus"] = RandomLoop(syllabus_arm(name).env(cap), 1)
                if args.control:
                    loops["unwrapped_copy"] = RandomLoop(
                        PoolLevels(minigrid_level_env(max_steps=cap), pool), 1
                    )
                arms = {a: (lambda lp=lp: lp.run(args.random_steps)) for a, lp in loops.items()}
                if not args.skip_syllabus:
                    arms["syllabus"] = syllabus_chunk(name, arms["syllabus"])
                out["scenarios"].append(
                    measure(name, arms, args.rounds, server.proc.pid, what, target)
                )
                close_syllabus(name)

            if not args.skip_sb3:
                from minigrid.wrappers import ImgObsWrapper

                def base_fn(k: int) -> gym.Env:
                    # A different slice of the pool per env, as separate workers would see.
                    return ImgObsWrapper(PoolLevels(minigrid_level_env(), pool[k :: args.sb3_envs]))

                collectors = {
                    "unwrapped": SB3Collector(
                        [lambda k=k: base_fn(k) for k in range(args.sb3_envs)],
                        args.sb3_n_steps,
                        args.seed,
                    ),
                    "wrapped": SB3Collector(
                        [lambda: ImgObsWrapper(curriculum(None)) for _ in range(args.sb3_envs)],
                        args.sb3_n_steps,
                        args.seed,
                    ),
                }
                if not args.skip_syllabus:
                    syl = syllabus_arm("sb3_collect")
                    collectors["syllabus"] = SB3Collector(
                        [lambda: ImgObsWrapper(syl.env(None)) for _ in range(args.sb3_envs)],
                        args.sb3_n_steps,
                        args.seed,
                    )
                # Same weights in every arm, so all policies act alike.
                state = collectors["unwrapped"].model.policy.state_dict()
                for arm in collectors:
                    collectors[arm].model.policy.load_state_dict(state)
                arms = {a: (lambda c=c: c.run(args.sb3_rollouts)) for a, c in collectors.items()}
                if not args.skip_syllabus:
                    arms["syllabus"] = syllabus_chunk("sb3_collect", arms["syllabus"])
                what = (
                    f"SB3 PPO collect_rollouts, MlpPolicy, DummyVecEnv of {args.sb3_envs}, "
                    f"n_steps={args.sb3_n_steps}, {args.sb3_rollouts} rollout(s) per chunk"
                )
                out["scenarios"].append(
                    measure("sb3_collect", arms, args.rounds, server.proc.pid, what)
                )
                close_syllabus("sb3_collect")

            w0 = wrappers[0]
            out["wrapper_settings"] = {
                "prefetch": w0.prefetch,
                "report_batch": w0.report_batch,
                "flush_interval": w0.flush_interval,
            }
            # Sanity: everything the wrappers reported reached the server exactly once.
            reported = 0
            for w in wrappers:
                reported += w.curriculum_stats["episodes_reported"]
                w.close()
            with TeacherClient(server.url) as client:
                counters = client.state(EXPERIMENT).counters
            out["server_counters"] = counters.model_dump(mode="json")
            out["episodes_reported_by_wrappers"] = reported
            out["reports_exactly_once"] = (
                counters.reports_accepted == reported and counters.duplicates == 0
            )
        finally:
            for scenario in list(syllabus_arms):  # an error left a curriculum thread running
                syllabus_arms.pop(scenario).close(timeout=0.5)
            server.stop()
    out["duration_s"] = round(time.time() - t_start, 1)
    out["all_meet_target"] = all(s["meets_target"] for s in out["scenarios"] if s["target_applies"])
    if not args.skip_syllabus:
        out["syllabus"]["all_episodes_reached_curriculum"] = all(
            s["all_episodes_reached_curriculum"] for s in out["syllabus"]["scenarios"].values()
        )

    print()
    syl_head = "" if args.skip_syllabus else f" {'syllabus':>12} {'ratio':>7}"
    print(
        f"{'scenario':32} {'unwrapped':>12} {'wrapped':>12} {'ratio':>7}{syl_head}  "
        f"target {TARGET_RATIO} (wrapped)"
    )
    for s in out["scenarios"]:
        m = s["median_steps_per_s"]
        syl = "" if args.skip_syllabus else f" {m['syllabus']:>12,.0f} {s['ratio_syllabus']:>7.3f}"
        print(
            f"{s['scenario']:32} {m['unwrapped']:>12,.0f} {m['wrapped']:>12,.0f} "
            f"{s['ratio']:>7.3f}{syl}  {'PASS' if s['meets_target'] else 'MISS'}"
            + ("" if s["target_applies"] else " (stress case, informational)")
        )
    print(f"reports exactly once: {out['reports_exactly_once']}; {out['duration_s']}s")
    if not args.skip_syllabus:
        print(
            "episodes through Syllabus's curriculum: "
            + ", ".join(
                f"{k} {v['episodes_seen_by_curriculum']}"
                for k, v in out["syllabus"]["scenarios"].items()
            )
            + f"; all reached it: {out['syllabus']['all_episodes_reached_curriculum']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
