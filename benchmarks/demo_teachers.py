#!/usr/bin/env python
"""Which teacher ``make demo`` runs: DR and the curriculum teachers in the demo's own setting
(docs/results/demo-teachers.md).

Every run is the demo with one teacher: the same task space
(:func:`student_workers.demo_setup.demo_space`: 15x15 MiniGrid levels for the level teachers,
the parametric mazes for the box teachers), the same training settings
(:func:`~student_workers.demo_setup.demo_train_config`: the fast PPO settings, an
evaluation every 10 updates) and the same wall-clock budget (``--minutes``, 3 like the demo),
on a real teacher service (temporary SQLite) and local Ray. The final weights are then played
on the nine held-out 15x15 mazes, ``--eval-episodes`` each (stochastic policy; solved =
return > 0). The figure the demo prints is the mean over its four test mazes
(``DEMO_TEST_MAZES``); the mean over all nine is reported beside it.

The budget is time, not env steps, because the demo's is: a teacher whose students spend
time on evaluate tasks or on the service pays for it. Run it on an otherwise idle machine.

Writes ``benchmarks/results/demo_teachers.json`` (per run and per teacher, and the best
curriculum teacher) and a plot ``demo_teachers.png``; the demo reads DR's figure and its own
teacher's from that file for its summary line.

Usage::

    .venv/bin/python benchmarks/demo_teachers.py                        # 5 teachers x 3 seeds
    .venv/bin/python benchmarks/demo_teachers.py --teachers random lp_tree --seeds 0 --minutes 1
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

import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.plots import pyplot_or_none, save_figure
from benchmarks.ray_runs import mean_sd, progress_printer
from student_workers.checkpoints import evaluate_checkpoint
from student_workers.demo_setup import (
    DEMO_TEST_MAZES,
    demo_ppo,
    demo_space,
    demo_train_config,
)
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.train import train
from teacher_service.client import TeacherClient
from teacher_service.testing import service_at

RESULTS = Path(__file__).parent / "results"
TEACHERS = ("random", "lp_tree", "alp_gmm", "plr", "poet")


def run_one(url: str, teacher: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    """One demo run with ``teacher``, then its final weights on the held-out mazes."""
    name = f"demo-{teacher}-s{seed}-{int(time.time() * 1000)}"
    with TeacherClient(url) as client:
        client.create_experiment(name, demo_space(teacher), {"kind": teacher}, seed=seed)
    cfg = demo_train_config(
        url, name, workers=args.workers, minutes=args.minutes, steps=10**9, out=tmp / name,
        seed=seed,
    )  # fmt: skip
    progress = progress_printer(teacher, seed, args.progress_every, width=8, eta=False)
    s = train(cfg, on_progress=progress)
    solve = {
        maze: evaluate_checkpoint(s["checkpoint"], maze, args.eval_episodes, seed=seed)[
            "solve_rate"
        ]
        for maze in DEFAULT_EVAL_MAZES
    }
    return {
        "teacher": teacher,
        "seed": seed,
        "env_steps": s["env_steps"],
        "episodes": s["episodes"],
        "updates": s["updates"],
        "wall_s": round(s["wall_s"], 1),
        "steps_per_s": round(s["steps_per_s"], 1),
        "solve_rate": solve,
        "test_solve_rate": float(np.mean([solve[m] for m in DEMO_TEST_MAZES])),
        "heldout_solve_rate": float(np.mean(list(solve.values()))),
        # what the demo itself printed (its evaluator: 5 episodes a maze)
        "demo_evaluation": (s.get("evaluation") or {}).get("solve_rate"),
    }


def aggregate(rows: list[dict], teachers: list[str]) -> dict[str, Any]:
    """Per teacher: the means and spreads over seeds."""
    out: dict[str, Any] = {}
    for t in teachers:
        mine = [r for r in rows if r["teacher"] == t]
        if not mine:
            continue
        test, test_sd = mean_sd([r["test_solve_rate"] for r in mine])
        held, held_sd = mean_sd([r["heldout_solve_rate"] for r in mine])
        out[t] = {
            "seeds": len(mine),
            "test_solve_rate": round(test, 4),
            "test_solve_rate_sd": round(test_sd, 4),
            "heldout_solve_rate": round(held, 4),
            "heldout_solve_rate_sd": round(held_sd, 4),
            "per_maze": {
                m: round(float(np.mean([r["solve_rate"][m] for r in mine])), 4)
                for m in DEFAULT_EVAL_MAZES
            },
            "env_steps": int(np.mean([r["env_steps"] for r in mine])),
            "steps_per_s": round(float(np.mean([r["steps_per_s"] for r in mine])), 1),
            "space": demo_space(t)["kind"],
        }
    return out


def best_curriculum(teachers: dict[str, Any]) -> str | None:
    """The curriculum teacher (not DR) with the best mean on the demo's test mazes; ties go
    to the better mean over all nine."""
    rivals = [t for t in teachers if t != "random"]
    if not rivals:
        return None
    return max(
        rivals,
        key=lambda t: (teachers[t]["test_solve_rate"], teachers[t]["heldout_solve_rate"]),
    )


def summarise(
    rows: list[dict], args: argparse.Namespace, argv: list[str] | None, wall: float
) -> dict[str, Any]:
    """The results file's content for the runs finished so far."""
    teachers = aggregate(rows, args.teachers)
    return {
        "benchmark": "demo_teachers",
        "command": "python benchmarks/demo_teachers.py " + " ".join(argv or sys.argv[1:]),
        "machine": describe_machine(),
        "total_wall_s": round(wall, 1),
        "settings": {
            "minutes": args.minutes,
            "seeds": args.seeds,
            "workers": args.workers,
            "envs_per_worker": 8,
            "eval_episodes": args.eval_episodes,
            "test_mazes": list(DEMO_TEST_MAZES),
            "mazes": list(DEFAULT_EVAL_MAZES),
            "ppo": demo_ppo().model_dump(),
            "spaces": {t: demo_space(t) for t in args.teachers},
        },
        "teachers": teachers,
        "best_curriculum": best_curriculum(teachers),
        "runs": rows,
    }


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Mean solve rate per teacher on the demo's test mazes and on all nine, with the seeds'
    spread."""
    plt = pyplot_or_none()
    if plt is None:
        return None
    teachers = list(result["teachers"])
    x = np.arange(len(teachers))
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, (key, label) in enumerate(
        [("test_solve_rate", "the demo's 4 test mazes"), ("heldout_solve_rate", "all 9 mazes")]
    ):
        vals = [result["teachers"][t][key] for t in teachers]
        sds = [result["teachers"][t][key + "_sd"] for t in teachers]
        ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, yerr=sds, capsize=3, label=label)
    ax.set_xticks(x, [f"{t}\n({result['teachers'][t]['space']})" for t in teachers])
    ax.set_ylabel("held-out solve rate")
    ax.set_ylim(0, 1)
    st = result["settings"]
    ax.set_title(
        f"make demo's setting, {st['minutes']:g} min of training, seeds "
        f"{', '.join(map(str, st['seeds']))} ({st['workers']} workers)"
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teachers", nargs="+", default=list(TEACHERS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=3.0, help="training time per run")
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per held-out maze")
    p.add_argument(
        "--progress-every", type=float, default=60.0, metavar="SECONDS",
        help="a progress line on stderr at most this often during each run (-1: none)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS / "demo_teachers.json")
    p.add_argument("--plot", type=Path, default=RESULTS / "demo_teachers.png")
    args = p.parse_args(argv)
    for t in args.teachers:
        try:
            demo_space(t)
        except ValueError as exc:
            p.error(str(exc))
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict] = []
    t0 = time.time()
    result = summarise(rows, args, argv, 0.0)
    with tempfile.TemporaryDirectory() as tmp, service_at() as url:
        for seed in args.seeds:  # seeds outermost: a cut-short run still compares teachers
            for teacher in args.teachers:
                row = run_one(url, teacher, seed, args, Path(tmp))
                rows.append(row)
                # written after every run, so a run cut short keeps what it finished
                result = summarise(rows, args, argv, time.time() - t0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2))
                print(
                    f"{teacher:8s} seed {seed}: test mazes {row['test_solve_rate']:.3f}, all "
                    f"nine {row['heldout_solve_rate']:.3f} after {row['env_steps']:,} steps",
                    file=sys.stderr,
                    flush=True,
                )
    plotted = plot(result, args.plot) if rows else None
    for t, agg in result["teachers"].items():
        print(
            f"{t:8s} test mazes {agg['test_solve_rate']:.3f} ± {agg['test_solve_rate_sd']:.3f}, "
            f"all nine {agg['heldout_solve_rate']:.3f} ± {agg['heldout_solve_rate_sd']:.3f} "
            f"({agg['seeds']} seeds, {agg['env_steps']:,} env steps)"
        )
    print(f"best curriculum teacher: {result['best_curriculum']}")
    print(f"wrote {args.out}" + (f" and {plotted}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
