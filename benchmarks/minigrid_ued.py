#!/usr/bin/env python
"""Regret-based UED on MiniGrid mazes: DR vs Robust PLR vs ACCEL (vs PAIRED) with the Ray
students, at equal env steps, evaluated zero-shot on the held-out mazes
(docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark).

For every method and seed: a fresh experiment on 15x15 MiniGrid levels (0-60 walls for the
generator; ACCEL starts from empty rooms) on a real teacher service (temporary SQLite), and a
real local Ray training run (``student_workers.train.train``: rollout workers, PPO learner,
evaluator) for ``--steps`` steps. ``--budget env`` (default): env steps, explore steps
included, so every method gets the same number of environment interactions. ``--budget
trained``: steps the student made gradient updates on, i.e. equal samples trained on -- the
counterpart of the PLR⊥ and ACCEL papers' budget ("20k PPO updates" on replayed rollouts; the
robust learner here masks explore steps out of each batch instead), under which their students
also spend env steps scoring new and edited levels (DR trains on every step, so its runs are
the same under both). The final weights are then played on the nine 15x15 held-out mazes
(``--eval-episodes`` stochastic-policy episodes each); solved = return > 0.

Writes ``benchmarks/results/minigrid_ued.json`` (per-run and per-method per-maze solve rates,
mean, env steps, wall time, the teacher's final view summary, machine), a plot
``minigrid_ued.png`` and small checkpoints (weights only, ~85 kB each, ~600 kB with the LSTM) under
``benchmarks/results/checkpoints/minigrid_ued/`` that ``autocurriculum evaluate --checkpoint``
scores on any MiniGrid env id.

The published figures (docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark) come from
~300M env steps with the reference PPO settings; this benchmark's defaults fit a 2-core
machine in well under an hour, so they use fast-learning PPO settings (the demo's, with
~512-sample minibatches so more workers mean more gradient steps per update) and a 500-level
buffer for every method alike. ``plr_classic`` is PLR without the robust rule (it also trains
on new levels).

Usage::

    .venv/bin/python benchmarks/minigrid_ued.py                           # 3 methods x 3 seeds
    .venv/bin/python benchmarks/minigrid_ued.py --methods random accel --seeds 0 --steps 200000
    .venv/bin/python benchmarks/minigrid_ued.py --combine seed0.json seed1.json --out all.json
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
from benchmarks.ray_runs import fast_ppo_config, mean_sd, progress_printer, small_checkpoint
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.ppo import PPOConfig
from student_workers.train import TrainConfig, train
from teacher_service.client import TeacherClient
from teacher_service.testing import service_at

RESULTS = Path(__file__).parent / "results"
METHODS = ("random", "plr", "plr_classic", "accel", "paired")
#: Mean held-out solve rates published for the 60-wall setting
#: (docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark; PAIRED's and classic PLR's
#: figures are from the 25-wall setting, the only one published for them there).
PUBLISHED = {
    "random": {"solve_rate": 0.62, "setting": "60 walls, ~300M steps"},
    "plr": {"solve_rate": 0.71, "setting": "60 walls, ~300M steps (PLR⊥)"},
    "plr_classic": {"solve_rate": 0.59, "setting": "25 walls, 250M steps (PLR)"},
    "accel": {"solve_rate": 0.88, "setting": "60 walls, ~300M steps"},
    "paired": {"solve_rate": 0.33, "setting": "25 walls, 250M steps"},
}


def teacher_config(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """The teacher of one method at this benchmark's scale."""
    if method == "random":
        return {"kind": "random"}
    replay = {"buffer_size": args.buffer_size, "replay_share": args.replay_share}
    if args.score != "positive_value_loss":  # the teachers' default stays implicit
        replay["score"] = args.score
    if method == "plr":
        return {"kind": "plr", **replay}
    if method == "plr_classic":
        # PLR with gradient updates on new levels too (robust=False;
        # docs/algorithms.md#robust-plr)
        return {"kind": "plr", **replay, "robust": False}
    if method == "accel":
        # the reference edits after every replay batch of all its envs
        batch = args.workers * args.envs_per_worker
        return {"kind": "accel", **replay, "edit_batch": batch}
    if method == "paired":
        return {"kind": "paired"}
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def ppo_config(args: argparse.Namespace) -> PPOConfig:
    """The PPO settings every method shares."""
    if args.reference_ppo:
        # docs/algorithms.md#robust-plr: gamma .995, lr 1e-4, 256 steps, 5 epochs; the
        # reference maze agent remembers what it has seen (an LSTM of 256 units after the
        # 16-filter conv); it updates on replay rollouts only, so full-size minibatches
        # (fixed_minibatch)
        return PPOConfig(lstm=True, hidden=256, fixed_minibatch=True)
    return fast_ppo_config(
        args.workers, args.envs_per_worker, args.minibatch_size,
        lstm=args.lstm, fixed_minibatch=args.fixed_minibatch,
    )  # fmt: skip


def teacher_summary(view: dict[str, Any]) -> dict[str, Any]:
    """The few figures of a teacher's view worth keeping per run."""
    if "buffer" in view:
        return {
            "buffer_size": view["buffer"]["size"],
            "replay_rate": view["replay_rate"],
            "score_function": view["scores"]["function"],
            "mean_score": view["scores"]["mean"],
            "mean_depth": view["lineage"]["mean_depth"],
            "max_depth": view["lineage"]["max_depth"],
            "proposals": view["proposals"],
            "outcomes": view["outcomes"],
        }
    return {k: v for k, v in view.items() if isinstance(v, int | float | str | None)}


def run_one(url: str, method: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    name = f"ued-{method}-s{seed}-{int(time.time() * 1000)}"
    space = {"kind": "level", "generator": "minigrid", "config": {"size": 15, "max_walls": 60}}
    with TeacherClient(url) as client:
        client.create_experiment(name, space, teacher_config(method, args), seed=seed)
    cfg = TrainConfig(
        server=url, experiment=name, workers=args.workers,
        envs_per_worker=args.envs_per_worker, steps=args.steps, budget=args.budget,
        max_minutes=10**6,
        checkpoint_dir=tmp / name, checkpoint_interval=10**6,
        eval_interval=10**9,  # no evaluation during training: only the final one
        eval_envs=tuple(args.mazes), eval_episodes=args.eval_episodes,
        num_cpus=None, seed=seed, ppo=ppo_config(args),  # enough for all actors
    )  # fmt: skip
    s = train(cfg, on_progress=progress_printer(method, seed, args.progress_every))
    with TeacherClient(url) as client:
        view = client.state(name).teacher
    per_env = (s.get("evaluation") or {}).get("per_env", {})
    solve = {env: per_env[env]["solve_rate"] for env in args.mazes}
    ckpt = small_checkpoint(Path(s["checkpoint"]), args.checkpoints / f"{method}-seed{seed}.pt")
    return {
        "method": method,
        "seed": seed,
        "env_steps": s["env_steps"],
        "trained_steps": s["trained_steps"],
        "updates": s["updates"],
        "optimizer_steps": s["optimizer_steps"],
        "episodes": s["episodes"],
        "wall_s": round(s["wall_s"], 1),
        "steps_per_s": round(s["steps_per_s"], 1),
        "mean_return_last_200": s["mean_return_last_200"],
        "solve_rate": solve,
        "mean_solve_rate": float(np.mean(list(solve.values()))),
        "teacher": teacher_summary(view),
        "checkpoint": str(ckpt),
        "worker_failures": s["worker_failures"],
    }


def aggregate(rows: list[dict], methods: list[str], mazes: list[str]) -> dict[str, Any]:
    """Per method: mean and standard deviation over seeds, per maze and overall."""
    out = {}
    for m in methods:
        runs = [r for r in rows if r["method"] == m]
        if not runs:
            continue
        mean, sd = mean_sd([r["mean_solve_rate"] for r in runs])
        out[m] = {
            "seeds": len(runs),
            "mean_solve_rate": mean,
            "std_solve_rate": sd,
            "per_maze": {
                env: float(np.mean([r["solve_rate"][env] for r in runs])) for env in mazes
            },
            "env_steps": int(np.mean([r["env_steps"] for r in runs])),
            "trained_steps": int(np.mean([r["trained_steps"] for r in runs])),
            # files written before optimizer steps were counted lack them
            "optimizer_steps": (
                int(np.mean([r["optimizer_steps"] for r in runs]))
                if all("optimizer_steps" in r for r in runs)
                else None
            ),
            "wall_s": float(np.mean([r["wall_s"] for r in runs])),
            "published_solve_rate": PUBLISHED[m]["solve_rate"],
            "published_setting": PUBLISHED[m]["setting"],
        }
    return out


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Per-maze solve rates per method (bars), mean with the seeds' spread in the legend."""
    plt = pyplot_or_none()
    if plt is None:
        return None
    methods = list(result["methods"])
    mazes = result["settings"]["mazes"] + ["mean"]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(mazes))
    for k, m in enumerate(methods):
        agg = result["methods"][m]
        vals = [agg["per_maze"][e] for e in mazes[:-1]] + [agg["mean_solve_rate"]]
        # Merged runs can hold fewer seeds of one method: say how many each mean is over.
        n = agg["seeds"]
        label = (
            f"{m}: {agg['mean_solve_rate']:.2f} ± {agg['std_solve_rate']:.2f}"
            f" ({n} seed{'' if n == 1 else 's'})"
        )
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, vals, width, label=label)
    ax.set_xticks(x, mazes, rotation=30, ha="right")
    ax.set_ylabel("held-out solve rate")
    ax.set_ylim(0, 1)
    st = result["settings"]
    ax.set_title(
        f"MiniGrid 15x15 held-out mazes after {st['steps']:,} "
        f"{'trained' if st.get('budget') == 'trained' else 'env'} steps "
        f"(seeds {', '.join(map(str, st['seeds']))}; "
        f"{st['workers']} workers x {st['envs_per_worker']} envs)"
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def summarise(rows: list[dict], args: argparse.Namespace, argv: list[str] | None, wall: float):
    """The results file's content for the runs finished so far."""
    return {
        "benchmark": "minigrid_ued",
        "command": "python benchmarks/minigrid_ued.py " + " ".join(argv or sys.argv[1:]),
        "machine": describe_machine(with_gpu=True),
        "total_wall_s": round(wall, 1),
        "settings": {
            "steps": args.steps,
            "budget": args.budget,
            "seeds": args.seeds,
            "workers": args.workers,
            "envs_per_worker": args.envs_per_worker,
            "buffer_size": args.buffer_size,
            "eval_episodes": args.eval_episodes,
            "mazes": args.mazes,
            "levels": "15x15 (border included), 5x5 view, generator 0-60 walls",
            "ppo": ppo_config(args).model_dump(),
            "teachers": {m: teacher_config(m, args) for m in args.methods},
        },
        "target": "accel > plr > random in mean held-out solve rate at the same budget",
        "methods": aggregate(rows, args.methods, args.mazes),
        "runs": rows,
    }


def combine(paths: list[Path]) -> dict[str, Any]:
    """One results file from several runs of this script that differ only in their seeds
    (e.g. one seed per job, spread over several machines)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = parts[0]
    same = ("steps", "workers", "envs_per_worker", "buffer_size", "eval_episodes", "mazes", "ppo")

    def setting(part: dict[str, Any], key: str) -> Any:
        if key == "ppo":  # files written before fixed_minibatch existed ran without it
            return {"fixed_minibatch": False, **part["settings"]["ppo"]}
        # files written before --budget existed counted env steps
        return part["settings"].get(key, "env" if key == "budget" else None)

    teachers: dict[str, Any] = {}
    source: dict[str, Path] = {}  # method -> the file its teacher config came from
    for path, part in zip(paths, parts, strict=True):
        diff = [k for k in (*same, "budget") if setting(part, k) != setting(first, k)]
        if diff:
            raise SystemExit(f"error: {path} differs from {paths[0]} in {', '.join(diff)}")
        # a method's rows must come from one teacher config (e.g. one level score)
        for m, cfg in part["settings"]["teachers"].items():
            if teachers.setdefault(m, cfg) != cfg:
                raise SystemExit(f"error: {path} differs from {source[m]} in teachers.{m}")
            source.setdefault(m, path)
    rows = [r for part in parts for r in part["runs"]]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    result = dict(first)
    # a part may itself be combined (a list of commands): one flat list
    result["command"] = [
        c
        for part in parts
        for c in (part["command"] if isinstance(part["command"], list) else [part["command"]])
    ]
    result["total_wall_s"] = round(sum(part["total_wall_s"] for part in parts), 1)
    result["settings"] = {
        **first["settings"],
        "budget": setting(first, "budget"),
        "seeds": sorted({r["seed"] for r in rows}),
        "teachers": teachers,
    }
    result["methods"] = aggregate(rows, methods, first["settings"]["mazes"])
    result["runs"] = rows
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["random", "plr", "accel"], choices=METHODS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1_000_000, help="steps per run (see --budget)")
    p.add_argument(
        "--budget", choices=("env", "trained"), default="env",
        help="--steps counts env steps (equal interactions) or trained steps (equal samples with "
        "gradients, the counterpart of the papers' PPO-update budget)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 16)))
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument("--buffer-size", type=int, default=500, help="PLR/ACCEL level buffer")
    p.add_argument(
        "--minibatch-size", type=int, default=512,
        help="samples per PPO minibatch with the fast settings (4 per update on 2 workers)",
    )  # fmt: skip
    p.add_argument(
        "--fixed-minibatch", action="store_true",
        help="minibatches of a full rollout's size, so rollouts with explore steps take fewer: "
        "the gradient steps per trained sample of DR and of the reference PLR⊥/ACCEL, which "
        "skip the update on exploration rollouts (always on with --reference-ppo)",
    )  # fmt: skip
    p.add_argument(
        "--replay-share", choices=("steps", "episodes"), default="steps",
        help="PLR/ACCEL replay_prob as the share of env steps (the reference code decides once "
        "per fixed-length rollout) or of episodes",
    )  # fmt: skip
    p.add_argument(
        "--score", choices=("positive_value_loss", "max_mc", "l1_value_loss"),
        default="positive_value_loss",
        help="PLR/ACCEL level score (positive value loss or MaxMC for MiniGrid mazes; see "
        "docs/algorithms.md#robust-plr)",
    )  # fmt: skip
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per held-out maze")
    p.add_argument("--mazes", nargs="+", default=list(DEFAULT_EVAL_MAZES))
    p.add_argument(
        "--reference-ppo",
        action="store_true",
        help="the papers' PPO settings (for runs of 100M+ steps) instead of fast ones",
    )
    p.add_argument(
        "--lstm", action="store_true",
        help="fast PPO settings with an LSTM agent (memory, as the reference agent; slower)",
    )  # fmt: skip
    p.add_argument(
        "--progress-every", type=float, default=60.0, metavar="SECONDS",
        help="a progress line on stderr at most this often during each run (-1: none)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS / "minigrid_ued.json")
    p.add_argument("--plot", type=Path, default=RESULTS / "minigrid_ued.png")
    p.add_argument("--checkpoints", type=Path, default=RESULTS / "checkpoints" / "minigrid_ued")
    p.add_argument(
        "--combine", type=Path, nargs="+", metavar="RESULTS",
        help="train nothing: merge results files of the same settings into --out and --plot",
    )  # fmt: skip
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.combine:
        result = combine(args.combine)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        plotted = plot(result, args.plot)
        print(f"wrote {args.out}" + (f" and {plotted}" if plotted else ""))
        return 0
    rows: list[dict] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp, service_at() as url:
        for seed in args.seeds:  # seeds outermost: a cut-short run still compares methods
            for method in args.methods:
                row = run_one(url, method, seed, args, Path(tmp))
                rows.append(row)
                # written after every run, so a run cut short keeps what it finished
                result = summarise(rows, args, argv, time.time() - t0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2))
                print(
                    f"{method:11s} seed {seed}: mean held-out solve rate "
                    f"{row['mean_solve_rate']:.3f} after {row['env_steps']:,} steps "
                    f"({row['wall_s']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    plotted = plot(result, args.plot)
    for m, agg in result["methods"].items():
        print(
            f"{m:7s} mean held-out solve rate {agg['mean_solve_rate']:.3f} "
            f"± {agg['std_solve_rate']:.3f} ({agg['seeds']} seeds, {agg['env_steps']:,} steps; "
            f"published {agg['published_solve_rate']:.2f} at {agg['published_setting']})"
        )
    print(f"wrote {args.out}" + (f" and {plotted}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
