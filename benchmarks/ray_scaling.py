#!/usr/bin/env python
"""Env steps/s of the Ray students with 1, 2, 4, ... rollout workers
(docs/architecture.md#students).

Starts a real teacher service (subprocess, temporary SQLite file) and, for each worker count,
a fresh experiment on the reference levels (15 x 15, 0-60 walls, ``random`` teacher) and a
fresh local Ray cluster running the real training loop (``student_workers.train.train``:
workers, learner, no evaluator) for ``--seconds`` seconds. Recorded per worker count:

- ``steps_per_s``: env steps per second of training after the first update (actors started,
  imports done), learner updates included: what a long run sees;
- ``collect_steps_per_s``: env steps per second of the rollout phase alone (the learner's
  update time excluded): how the workers themselves scale;
- ``scaling``: ``steps_per_s(N) / (N * steps_per_s(1))`` (1.0 = linear), and the same for
  the collection rate. Target: >= 0.8 up to 16 workers on a 16-core machine.

Every rate is measured in the same run, so the ratios compare like with like. Worker counts
above the machine's cores are skipped unless listed explicitly with ``--workers``.

Usage::

    .venv/bin/python benchmarks/ray_scaling.py                      # 1, 2, ... up to the cores
    .venv/bin/python benchmarks/ray_scaling.py --workers 1 2 --seconds 20 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine
from student_workers.ppo import PPOConfig
from student_workers.train import TrainConfig, train
from teacher_service.client import TeacherClient
from teacher_service.testing import service_at

RESULTS = Path(__file__).parent / "results" / "ray_scaling.json"


def default_counts(cores: int, cap: int = 16) -> list[int]:
    """1, 2, 4, ... up to the cores (and the cores themselves when not a power of two)."""
    counts, n = [], 1
    while n <= min(cores, cap):
        counts.append(n)
        n *= 2
    if min(cores, cap) not in counts:
        counts.append(min(cores, cap))
    return counts


def run_one(url: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    name = f"scaling-{workers}-{int(time.time() * 1000)}"
    with TeacherClient(url) as client:
        client.create_experiment(name, {"kind": "level"}, {"kind": "random"}, seed=workers)
    cfg = TrainConfig(
        server=url,
        experiment=name,
        workers=workers,
        envs_per_worker=args.envs_per_worker,
        steps=10**12,
        max_minutes=args.seconds / 60.0,
        checkpoint_dir=tmp / name,
        checkpoint_interval=10**6,
        eval_interval=0,
        num_cpus=max(workers + 1, os.cpu_count() or 1),
        ppo=PPOConfig(num_steps=args.num_steps),
    )
    s = train(cfg)
    return {
        "workers": workers,
        "env_steps": s["env_steps"],
        "updates": s["updates"],
        "wall_s": s["wall_s"],
        "steps_per_s": s["steady_steps_per_s"],
        "collect_steps_per_s": s["env_steps"] / s["collect_s"] if s["collect_s"] else None,
        "update_s": s["update_s"],
        "collect_s": s["collect_s"],
        "worker_failures": s["worker_failures"],
        "learner_device": s["learner_device"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", help="worker counts (default 1, 2, 4, ...)")
    p.add_argument("--seconds", type=float, default=45.0, help="training time per count")
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=256, help="rollout length per env")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cores = os.cpu_count() or 1
    counts = args.workers or default_counts(cores)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, service_at() as url:
        for n in counts:
            row = run_one(url, n, args, Path(tmp))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    base = next((r for r in rows if r["workers"] == 1), None)
    for r in rows:
        for key, out in (("steps_per_s", "scaling"), ("collect_steps_per_s", "collect_scaling")):
            ok = base and base[key] and r[key]
            r[out] = r[key] / (r["workers"] * base[key]) if ok else None
    result = {
        "benchmark": "ray_scaling",
        "command": "python benchmarks/ray_scaling.py " + " ".join(argv or sys.argv[1:]),
        "machine": describe_machine(with_gpu=True),
        "settings": {
            "seconds_per_count": args.seconds,
            "envs_per_worker": args.envs_per_worker,
            "num_steps": args.num_steps,
            "levels": "15x15, 0-60 walls, random teacher",
            "ppo": PPOConfig(num_steps=args.num_steps).model_dump(),
        },
        "target": "scaling >= 0.8 up to 16 workers on a 16-core machine",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    def rate(x: float | None) -> str:  # None: too short a run for a steady rate
        return "        -" if x is None else f"{x:9.0f}"

    for r in rows:
        print(
            f"{r['workers']:3d} workers: {rate(r['steps_per_s'])} steps/s "
            f"(scaling {r['scaling'] or 0:.2f}); collection {rate(r['collect_steps_per_s'])} "
            f"steps/s (scaling {r['collect_scaling'] or 0:.2f})"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
