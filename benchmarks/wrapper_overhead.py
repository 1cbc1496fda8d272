#!/usr/bin/env python
"""Throughput cost of ``CurriculumWrapper`` (docs/architecture.md#students): env steps/s with
and without it.

Starts a real teacher service (subprocess, temporary SQLite file) with a ``level`` experiment
served by the ``random`` teacher (15 x 15 solvable mazes, up to 30 walls), then measures, in
one run and side by side, two arms of each scenario:

- ``unwrapped``: ``LevelEnv`` plus a trivial wrapper that sets, at every reset, the next level
  of a pool drawn beforehand from the same generator and config (already parsed). The env
  does the same work as under the curriculum, so what differs is only the wrapper's cost
  (task buffer, parsing the ASCII level, reports, the session's HTTP threads, and the server
  sharing the machine);
- ``wrapped``: ``CurriculumWrapper`` on ``LevelEnv``, taking levels from the server and
  reporting every finished episode.

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
``--rounds`` rounds after one discarded warm-up round, with the order of the two arms flipped
every round: shared machines drift and burst, and adjacent chunks see the same conditions.
The headline ``ratio`` is the median over rounds of wrapped / unwrapped steps/s of the same
round; ``ratio_of_totals`` (all steps over all time, per arm) is recorded alongside. The
random-policy scenarios also run an A/A control, a second identical unwrapped arm, whose
ratio to the first (``control_ratio_unwrapped_copy``) shows how much of a gap is noise. The
target is ``ratio >= 0.95``.

Usage::

    .venv/bin/python benchmarks/wrapper_overhead.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/wrapper_overhead.py --rounds 6 --skip-sb3 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
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
GENERATOR_CONFIG = {"size": 15, "max_walls": 30, "solvable": True}
EXPERIMENT = "wrapper-overhead"
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    """Alternating chunks of both arms; round 0 is a discarded warm-up."""
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
        "process_cpu_ratio": round(
            (cpu["unwrapped"] / totals["unwrapped"][0]) / (cpu["wrapped"] / totals["wrapped"][0]),
            4,
        ),
        "server_cpu_us_per_step": {a: round(1e6 * server_cpu[a] / totals[a][0], 2) for a in order},
        "target_applies": target_applies,
        "meets_target": ratio >= TARGET_RATIO,
    }
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
            "and the session's HTTP threads"
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
    t_start = time.time()
    wrappers: list[CurriculumWrapper] = []
    with tempfile.TemporaryDirectory(prefix="wrapper_overhead_") as tmp:
        server = ServerProcess(f"sqlite:///{Path(tmp) / 'bench.db'}")
        server.start()
        assert server.proc is not None
        try:
            with TeacherClient(server.url) as client:
                client.create_experiment(
                    EXPERIMENT, out["level_space"], {"kind": "random"}, seed=args.seed
                )
            pool = level_pool(512, args.seed)

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
                if args.control:
                    loops["unwrapped_copy"] = RandomLoop(
                        PoolLevels(minigrid_level_env(max_steps=cap), pool), 1
                    )
                arms = {a: (lambda lp=lp: lp.run(args.random_steps)) for a, lp in loops.items()}
                out["scenarios"].append(
                    measure(name, arms, args.rounds, server.proc.pid, what, target)
                )

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
                # Same weights in both arms, so both policies act alike.
                state = collectors["unwrapped"].model.policy.state_dict()
                collectors["wrapped"].model.policy.load_state_dict(state)
                arms = {a: (lambda c=c: c.run(args.sb3_rollouts)) for a, c in collectors.items()}
                what = (
                    f"SB3 PPO collect_rollouts, MlpPolicy, DummyVecEnv of {args.sb3_envs}, "
                    f"n_steps={args.sb3_n_steps}, {args.sb3_rollouts} rollout(s) per chunk"
                )
                out["scenarios"].append(
                    measure("sb3_collect", arms, args.rounds, server.proc.pid, what)
                )

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
            server.stop()
    out["duration_s"] = round(time.time() - t_start, 1)
    out["all_meet_target"] = all(s["meets_target"] for s in out["scenarios"] if s["target_applies"])

    print()
    print(f"{'scenario':32} {'unwrapped':>12} {'wrapped':>12} {'ratio':>7}  target {TARGET_RATIO}")
    for s in out["scenarios"]:
        m = s["median_steps_per_s"]
        print(
            f"{s['scenario']:32} {m['unwrapped']:>12,.0f} {m['wrapped']:>12,.0f} "
            f"{s['ratio']:>7.3f}  {'PASS' if s['meets_target'] else 'MISS'}"
            + ("" if s["target_applies"] else " (stress case, informational)")
        )
    print(f"reports exactly once: {out['reports_exactly_once']}; {out['duration_s']}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
