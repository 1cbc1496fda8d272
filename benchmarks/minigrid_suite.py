#!/usr/bin/env python
"""Discrete teachers on a MiniGrid suite: lp vs omni vs sec vs random with the Ray students, at
equal env steps, then the solve rate of the final checkpoint on the hard envs
(env_generators/minigrid_suite.py; results page: docs/results/minigrid-suite.md).

For every method and seed: a fresh discrete experiment over the suite's env ids (11 MiniGrid
envs from an empty 5x5 room to DoorKey 8x8, KeyCorridor S3R1 and MultiRoom N2-S4, each with a
text description and a family as its category) on a real teacher service (temporary SQLite),
and a real local Ray training run (``student_workers.train.train``: rollout workers building
``gym.make(env_id, agent_view_size=5)`` per task, all seven MiniGrid actions, one PPO learner)
for ``--steps`` env steps. Every env step counts, the evaluate episodes ``lp`` and ``omni``
schedule to measure success included, so every method gets the same environment interactions.
The final checkpoint then plays ``--eval-episodes`` episodes (stochastic policy, episode seeds
0, 1, ...) on every suite env, as ``autocurriculum evaluate --checkpoint <ckpt> --env <id>
--episodes N`` does; solved = return > 0. The headline figure is the mean solve rate over the
three hard envs. ``--hold-out-hard`` trains on the other envs only (the hard ones are then
measured zero-shot).

Writes ``benchmarks/results/minigrid_suite.json`` (per run: solve rate per env, the training
episodes each env got, env steps, wall time, the teacher's final view in brief; per method:
mean and standard deviation over seeds; machine), the plot ``docs/results/minigrid-suite.png``,
and small checkpoints (weights only) under ``benchmarks/results/checkpoints/minigrid_suite/``.

Usage::

    .venv/bin/python benchmarks/minigrid_suite.py                    # 4 methods x 3 seeds
    .venv/bin/python benchmarks/minigrid_suite.py --methods lp random --seeds 0 --steps 50000
    .venv/bin/python benchmarks/minigrid_suite.py --replot benchmarks/results/minigrid_suite.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.discrete_quality import wait_until_judged
from benchmarks.machine import describe_machine
from benchmarks.plots import pyplot_or_none, save_figure
from benchmarks.ray_runs import fast_ppo_config, mean_sd, progress_printer, small_checkpoint
from env_generators.minigrid_suite import HARD_ENVS, SUITE_ENVS, suite_entry, suite_space
from student_workers.checkpoints import evaluate_checkpoint
from student_workers.ppo import PPOConfig
from student_workers.train import TrainConfig, train
from teacher_service.client import TeacherClient, read_export
from teacher_service.testing import service_at

#: The teacher of each method (the teachers' defaults otherwise, but see LP_SCHEDULE).
TEACHERS: dict[str, dict[str, Any]] = {
    "lp": {"kind": "lp"},
    "omni": {"kind": "omni"},  # its default model of interestingness: sentence embeddings
    "sec": {"kind": "sec"},
    "random": {"kind": "random"},
    "omni-tfidf": {"kind": "omni", "model": "tfidf"},
}
#: The methods of a default run (``--methods`` adds the others).
DEFAULT_METHODS = ("lp", "omni", "sec", "random")
#: The success measurements of the teachers that schedule them (lp, omni), where their
#: configs above leave them out: 5 evaluate episodes per env every 200 training episodes. The
#: defaults (10 every 1000) re-measure the suite once or twice in a run of this length, and
#: until the second measurement every env weighs the same (docs/results/discrete-teachers.md
#: found the same on the tech-tree student).
LP_SCHEDULE: dict[str, int] = {"eval_episodes": 5, "eval_interval": 200}

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "results" / "minigrid-suite.png"
#: Env steps per run of the default settings: 4 methods x 3 seeds take ~21 minutes on a
#: 2-core VM (measured: 7.5-8k env steps/s with 2 workers x 8 envs, plus ~10 s per run for
#: Ray's start and the final evaluation), under the 30 minutes allowed with room for a slower
#: or busier machine.
DEFAULT_STEPS = 750_000


def teacher_config(method: str) -> dict[str, Any]:
    """The teacher config of ``method``: its :data:`TEACHERS` entry, with
    :data:`LP_SCHEDULE` where the teacher measures success with evaluate tasks."""
    try:
        config = dict(TEACHERS[method])
    except KeyError:
        raise ValueError(f"unknown method {method!r}; known: {list(TEACHERS)}") from None
    if config["kind"] in ("lp", "omni"):
        config = {**LP_SCHEDULE, **config}
    return config


def ppo_config(args: argparse.Namespace) -> PPOConfig:
    """The PPO settings every method shares: the demo's fast-learning ones (as the UED
    benchmark), with minibatches of ~``--minibatch-size`` samples."""
    return fast_ppo_config(args.workers, args.envs_per_worker, args.minibatch_size)


def played_per_env(client: TeacherClient, name: str, tmp: Path) -> dict[str, dict[str, int]]:
    """Reported episodes and their env steps of each env id of the experiment, by task mode
    (``train_episodes``, ``train_steps``, ``evaluate_episodes``, ``evaluate_steps``; from the
    experiment's export)."""
    rows = read_export(client.export(name, tmp / f"{name}.jsonl"))
    tasks = {r["index"]: r for r in rows if r["type"] == "task"}
    out: dict[str, Counter[str]] = {}
    for r in rows:
        if r["type"] != "report":
            continue
        task = tasks[r["index"]]
        counts = out.setdefault(task["params"]["task"], Counter())
        counts[f"{task['mode']}_episodes"] += 1
        counts[f"{task['mode']}_steps"] += r["length"] or 0
    return {env: dict(out[env]) for env in sorted(out, key=SUITE_ENVS.index)}


def teacher_summary(view: dict[str, Any]) -> dict[str, Any]:
    """The few figures of a discrete teacher's view worth keeping per run."""
    out = {k: v for k, v in view.items() if isinstance(v, int | float | str | bool | None)}
    if isinstance(view.get("tasks"), list):  # lp/omni: success and weight per task (omni:
        # also whether it is interesting, and if not the task it was judged against)
        keep = ("success", "lp", "weight", "interesting", "judged_against")
        out["tasks"] = {
            t["task"]: {k: t[k] for k in keep if k in t}
            for t in view["tasks"]
            if isinstance(t, dict) and "task" in t
        }
    return out


def run_one(url: str, method: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    """Train one method on one seed, then play the final checkpoint on every suite env."""
    name = f"suite-{method}-s{seed}-{int(time.time() * 1000)}"
    space = suite_space(args.envs, include_hard=not args.hold_out_hard)
    with TeacherClient(url) as client:
        client.create_experiment(name, space, teacher_config(method), seed=seed)
        # omni's background model judges every env before the first task: each repeat of a
        # run starts from the same judgements
        wait_until_judged(client, name)
    cfg = TrainConfig(
        server=url, experiment=name, workers=args.workers,
        envs_per_worker=args.envs_per_worker, steps=args.steps, max_minutes=10**6,
        checkpoint_dir=tmp / name, checkpoint_interval=10**6,
        eval_interval=0,  # the final checkpoint is measured below, on every env
        seed=seed, actions="full", ppo=ppo_config(args),
    )  # fmt: skip
    s = train(cfg, on_progress=progress_printer(method, seed, args.progress_every, width=6))
    ckpt = small_checkpoint(Path(s["checkpoint"]), args.checkpoints / f"{method}-seed{seed}.pt")
    t0 = time.perf_counter()
    results = {
        env: evaluate_checkpoint(ckpt, env, args.eval_episodes, seed=0) for env in args.eval_envs
    }
    eval_s = time.perf_counter() - t0
    solve = {env: r["solve_rate"] for env, r in results.items()}
    with TeacherClient(url) as client:
        view = client.state(name).teacher
        played = played_per_env(client, name, tmp)
    hard = [solve[e] for e in HARD_ENVS if e in solve]
    return {
        "method": method,
        "seed": seed,
        "env_steps": s["env_steps"],
        "trained_steps": s["trained_steps"],
        "updates": s["updates"],
        "episodes": s["episodes"],
        "wall_s": round(s["wall_s"], 1),
        "eval_s": round(eval_s, 1),
        "steps_per_s": round(s["steps_per_s"], 1),
        "train_solve_rate_last_200": s["train_solve_rate_last_200"],
        "solve_rate": solve,
        "mean_return": {env: r["mean_return"] for env, r in results.items()},
        "hard_solve_rate": float(np.mean(hard)) if hard else None,
        "suite_solve_rate": float(np.mean(list(solve.values()))),
        "played_per_env": played,
        "teacher": teacher_summary(view),
        "checkpoint": str(ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt),
        "worker_failures": s["worker_failures"],
    }


def aggregate(rows: list[dict], methods: list[str], envs: list[str]) -> dict[str, Any]:
    """Per method: mean and standard deviation over seeds of the hard-env solve rate, the
    whole suite's, and each env's; the share of the training env steps each env got, and
    the share of all env steps spent on evaluate tasks."""
    out = {}
    for m in methods:
        runs = [r for r in rows if r["method"] == m]
        if not runs:
            continue
        hard = mean_sd([r["hard_solve_rate"] for r in runs if r["hard_solve_rate"] is not None])
        suite = mean_sd([r["suite_solve_rate"] for r in runs])
        per_env = {env: mean_sd([r["solve_rate"][env] for r in runs]) for env in envs}
        train_steps: Counter[str] = Counter()
        eval_steps = 0
        for r in runs:
            for env, counts in r["played_per_env"].items():
                train_steps[env] += counts.get("train_steps", 0)
                eval_steps += counts.get("evaluate_steps", 0)
        total_train = sum(train_steps.values())
        out[m] = {
            "seeds": len(runs),
            "hard_solve_rate": hard[0],
            "hard_solve_rate_std": hard[1],
            "suite_solve_rate": suite[0],
            "suite_solve_rate_std": suite[1],
            "per_env": {env: {"mean": v[0], "std": v[1]} for env, v in per_env.items()},
            "train_share": {env: train_steps[env] / max(total_train, 1) for env in envs},
            "evaluate_step_share": eval_steps / max(total_train + eval_steps, 1),
            "env_steps": int(np.mean([r["env_steps"] for r in runs])),
            "trained_steps": int(np.mean([r["trained_steps"] for r in runs])),
            "episodes": int(np.mean([r["episodes"] for r in runs])),
            "wall_s": float(np.mean([r["wall_s"] for r in runs])),
        }
    return out


def short(env: str) -> str:
    """``DoorKey-8x8`` for ``MiniGrid-DoorKey-8x8-v0``."""
    return env.removeprefix("MiniGrid-").removesuffix("-v0")


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Two panels: the solve rate of every env per method (mean over seeds, bars; the seeds'
    standard deviation as error bars; the hard envs and their mean last), and the share of
    the training env steps each method's teacher gave every env."""
    plt = pyplot_or_none()
    if plt is None:
        return None
    methods = list(result["methods"])
    envs = result["settings"]["eval_envs"]
    labels = [short(e) + (" *" if e in HARD_ENVS else "") for e in envs] + ["hard mean"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(13, 8))
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(labels))
    for k, m in enumerate(methods):
        agg = result["methods"][m]
        vals = [agg["per_env"][e]["mean"] for e in envs] + [agg["hard_solve_rate"]]
        err = [agg["per_env"][e]["std"] for e in envs] + [agg["hard_solve_rate_std"]]
        n = agg["seeds"]
        label = (
            f"{m}: hard {agg['hard_solve_rate']:.2f} ± {agg['hard_solve_rate_std']:.2f}"
            f" ({n} seed{'' if n == 1 else 's'})"
        )
        offset = (k - (len(methods) - 1) / 2) * width
        ax.bar(x + offset, vals, width, yerr=err, capsize=2, label=label)
        shares = [agg["train_share"].get(e, 0.0) for e in envs]
        ax2.bar(np.arange(len(envs)) + offset, shares, width, label=m)
    ax.set_xticks(x, labels, rotation=25, ha="right")
    ax.set_ylabel("solve rate of the final checkpoint")
    ax.set_ylim(0, 1.05)
    st = result["settings"]
    ax.set_title(
        f"MiniGrid suite after {st['steps']:,} env steps per run "
        f"(seeds {', '.join(map(str, st['seeds']))}; {st['eval_episodes']} episodes per env; "
        "* hard)"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax2.set_xticks(np.arange(len(envs)), [short(e) for e in envs], rotation=25, ha="right")
    ax2.set_ylabel("share of training env steps")
    ax2.set_title("What each teacher trained on (all seeds)")
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path, dpi=100)


def summarise(
    rows: list[dict],
    args: argparse.Namespace,
    argv: list[str] | None,
    wall: float,
    earlier: list[str] = (),  # type: ignore[assignment]
):
    """The results file's content for the runs finished so far (with ``earlier``: the
    commands whose runs were merged in)."""
    methods = list(dict.fromkeys([*(r["method"] for r in rows), *args.methods]))
    command = " ".join(["python benchmarks/minigrid_suite.py", *(argv or sys.argv[1:])])
    return {
        "benchmark": "minigrid_suite",
        "command": command,
        "commands": [*earlier, command],
        "machine": describe_machine(with_gpu=True),
        "total_wall_s": round(wall, 1),
        "settings": {
            "steps": args.steps,
            "budget": "env",
            "seeds": args.seeds,
            "workers": args.workers,
            "envs_per_worker": args.envs_per_worker,
            "eval_episodes": args.eval_episodes,
            "train_envs": [
                t["name"]
                for t in suite_space(args.envs, include_hard=not args.hold_out_hard)["tasks"]
            ],
            "eval_envs": args.eval_envs,
            "hard_envs": [e for e in HARD_ENVS if e in args.eval_envs],
            "hold_out_hard": args.hold_out_hard,
            "view": 5,
            "actions": "full",
            "ppo": ppo_config(args).model_dump(),
            "teachers": {m: teacher_config(m) for m in methods},
        },
        "methods": aggregate(rows, methods, args.eval_envs),
        "runs": rows,
    }


def markdown_tables(result: dict[str, Any]) -> str:
    """The results page's two tables (hard envs and whole suite; every env) as markdown."""
    methods = result["methods"]
    lines = [
        "| method | hard envs (mean) | " + " | ".join(short(e) for e in HARD_ENVS) + " | suite |",
        "|---" * (len(HARD_ENVS) + 3) + "|",
    ]
    for m, agg in methods.items():
        cells = [f"{agg['per_env'][e]['mean']:.2f} ± {agg['per_env'][e]['std']:.2f}"
                 for e in HARD_ENVS if e in agg["per_env"]]  # fmt: skip
        lines.append(
            f"| {m} | {agg['hard_solve_rate']:.3f} ± {agg['hard_solve_rate_std']:.3f} | "
            + " | ".join(cells)
            + f" | {agg['suite_solve_rate']:.3f} ± {agg['suite_solve_rate_std']:.3f} |"
        )
    envs = result["settings"]["eval_envs"]
    lines += ["", "| env | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for e in envs:
        cells = [
            f"{agg['per_env'][e]['mean']:.2f} ± {agg['per_env'][e]['std']:.2f} "
            f"({100 * agg['train_share'].get(e, 0.0):.0f}%)"
            for agg in methods.values()
        ]
        lines.append(
            f"| {short(e)}{' (hard)' if e in HARD_ENVS else ''} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(TEACHERS))
    p.add_argument(
        "--merge", action="store_true",
        help="keep the runs of other methods already in --out (same settings): add or "
        "rerun one method without rerunning the rest",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="env steps per run")
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 16)))
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument(
        "--minibatch-size", type=int, default=512, help="samples per PPO minibatch (about)"
    )
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per env at the end")
    p.add_argument(
        "--envs", nargs="+", default=list(SUITE_ENVS), metavar="ENV_ID",
        help="the suite envs to train on (default: all of them, easy to hard)",
    )  # fmt: skip
    p.add_argument(
        "--hold-out-hard", action="store_true",
        help="train without the hard envs (they are then measured zero-shot)",
    )  # fmt: skip
    p.add_argument(
        "--progress-every", type=float, default=60.0, metavar="SECONDS",
        help="a progress line on stderr at most this often during each run (-1: none)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS / "minigrid_suite.json")
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--checkpoints", type=Path, default=RESULTS / "checkpoints" / "minigrid_suite")
    p.add_argument(
        "--replot", type=Path, metavar="RESULTS",
        help="train nothing: draw --plot and print the tables from a results file",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.replot:
        result = json.loads(args.replot.read_text())
        plotted = plot(result, args.plot)
        print(markdown_tables(result))
        print(f"wrote {plotted}" if plotted else "no plot (matplotlib is missing)")
        return 0
    try:
        for env in args.envs:
            suite_entry(env)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if args.steps < 1 or args.eval_episodes < 1:
        p.error("--steps and --eval-episodes must be >= 1")
    # Every suite env is measured at the end, the hard ones included even when held out.
    args.eval_envs = list(dict.fromkeys([*args.envs, *HARD_ENVS]))
    logging.basicConfig(level=logging.WARNING)
    import torch

    # The checkpoints are played here, one step at a time: a second thread only contends.
    torch.set_num_threads(1)
    rows: list[dict] = []
    earlier: list[str] = []
    before = 0.0
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())
        mine = summarise([], args, argv, 0.0)["settings"]
        theirs = {k: v for k, v in old["settings"].items() if k != "teachers"}
        if theirs != {k: v for k, v in mine.items() if k != "teachers"}:
            p.error(f"--merge: {args.out} was run with other settings")
        rows = [r for r in old["runs"] if r["method"] not in args.methods]
        earlier = old.get("commands", [old["command"]])
        before = float(old["total_wall_s"])
    t0 = time.time() - before
    result = summarise(rows, args, argv, before, earlier)
    with tempfile.TemporaryDirectory() as tmp, service_at() as url:
        for seed in args.seeds:  # seeds outermost: a cut-short run still compares methods
            for method in args.methods:
                row = run_one(url, method, seed, args, Path(tmp))
                rows.append(row)
                # written after every run, so a run cut short keeps what it finished
                result = summarise(rows, args, argv, time.time() - t0, earlier)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2))
                print(
                    f"{method:6s} seed {seed}: hard-env solve rate {row['hard_solve_rate']:.3f}, "
                    f"suite {row['suite_solve_rate']:.3f} after {row['env_steps']:,} steps "
                    f"({row['wall_s']:.0f} s training, {row['eval_s']:.0f} s evaluation)",
                    file=sys.stderr,
                    flush=True,
                )
    plotted = plot(result, args.plot)
    print(markdown_tables(result))
    print(
        f"wrote {args.out}" + (f" and {plotted}" if plotted else "")
        + f" in {time.time() - t0:.0f} s"
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
