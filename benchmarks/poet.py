"""POET on parametric MiniGrid mazes: what the population reaches, whether its stepping stones
matter, and how its best agent does zero-shot (docs/results/poet.md).

Per seed, three Ray PPO runs with the same env steps, all on the ``minigrid_params`` box
(room side, wall and lava density, goal distance, seed):

1. ``poet``: the population, polled as it trains. The timeline has the iteration, ANNECS, the
   archive's size, and the hardest environment a pair solves (score >= ``--solved``),
   measured by its shortest path and its walls.
2. ``dr``: domain randomisation (``random``) over the same box.
3. ``control``: PPO from scratch on POET's final environments only (a ``minigrid_set`` space
   of the active pairs' levels, sampled uniformly). This is the paper's stepping-stone test:
   can direct training solve what POET solved?

Then each run is measured: POET's best agent and DR's agent zero-shot on the held-out mazes,
and, on each final environment, the POET agent of its pair against the control agent.
Writes ``benchmarks/results/poet.json`` (mean and spread over seeds; the machine) and the
plot ``docs/results/poet.png``.

    python benchmarks/poet.py                          # 3 seeds x 3 runs x 500k env steps
    python benchmarks/poet.py --seeds 0 --steps 100000 # a quick look
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
from benchmarks.plots import save_figure
from benchmarks.ray_runs import fast_ppo_config, mean_sd, progress_printer, small_checkpoint
from env_generators.levels import WALL, Level, shortest_path
from env_generators.parametric import ParametricMazes
from student_workers.checkpoints import evaluate_checkpoint, load_checkpoint
from student_workers.eval_episodes import actions_of, run_episodes
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.train import TrainConfig, TrainProgress, train
from teacher_service.client import TeacherClient
from teacher_service.testing import service_at

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "results" / "poet.png"
#: The parametric box every run samples or mutates.
RANGES = {
    "size": (5, 13),
    "wall_density": (0.0, 0.5),
    "lava_density": (0.0, 0.15),
    "goal_distance": (0.0, 1.0),
    "seed": (0, 1000),
}
#: POET's settings here: the teacher's scaled-down defaults.
POET: dict[str, Any] = {"kind": "poet"}


def difficulty(level: str) -> dict[str, int]:
    """A level's shortest agent-to-goal path (tiles; -1 if unsolvable) and interior walls."""
    lv = Level.parse(level)
    path = shortest_path(lv)
    walls = int(np.count_nonzero(lv.tiles[1:-1, 1:-1] == WALL))
    return {"path": -1 if path is None else int(path), "walls": walls}


def population_point(view: dict[str, Any], env_steps: int, solved: float) -> dict[str, Any]:
    """One timeline point: the population's counters and its hardest solved environment."""
    pairs = [*view["pairs"], *view["archived"]]
    done = [difficulty(p["level"]) for p in pairs if (p["score"] or 0.0) >= solved]
    hardest = max(done, key=lambda d: (d["path"], d["walls"]), default=None)
    return {
        "env_steps": env_steps,
        "iteration": view["iteration"],
        "annecs": view["annecs"],
        "archive_size": view["archive_size"],
        "active": len(view["pairs"]),
        "transfers": view["transfer_count"],
        "hardest_solved_path": hardest["path"] if hardest else None,
        "hardest_solved_walls": hardest["walls"] if hardest else None,
    }


def evaluate_level(ckpt: Path, level: str, episodes: int) -> float:
    """Solve rate of a saved student on one level (stochastic policy)."""
    from env_generators.minigrid_env import LevelEnv

    learner, _ = load_checkpoint(ckpt)
    env = LevelEnv(
        level, agent_view_size=learner.agent.view, actions=actions_of(learner.agent.n_actions)
    )
    try:
        return float(run_episodes(learner.agent, env, episodes, seed=0)["solve_rate"])
    finally:
        env.close()


def train_run(
    url: str, name: str, space: dict, teacher: dict, seed: int, steps: int,
    args: argparse.Namespace, tmp: Path, on_progress: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Create the experiment and train on it for ``steps`` env steps; train()'s summary."""
    with TeacherClient(url) as client:
        client.create_experiment(name, space, teacher, seed=seed)
    cfg = TrainConfig(
        server=url, experiment=name, workers=args.workers, envs_per_worker=args.envs_per_worker,
        steps=steps, max_minutes=10**6, checkpoint_dir=tmp / name, checkpoint_interval=10**6,
        eval_interval=0, seed=seed, ppo=fast_ppo_config(args.workers, args.envs_per_worker, 512),
    )  # fmt: skip
    return train(cfg, on_progress=on_progress)


def run_seed(url: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """POET, then DR and the control at POET's env steps; everything measured."""
    stamp = int(time.time() * 1000)
    space = ParametricMazes().space(RANGES)
    timeline: list[dict[str, Any]] = []
    poet_name = f"poet-s{seed}-{stamp}"
    printer = progress_printer("poet", seed, args.progress_every, width=7)
    last = [-float("inf")]
    client = TeacherClient(url)

    def watch(p: TrainProgress) -> None:
        if printer is not None:
            printer(p)
        now = time.monotonic()
        if now - last[0] >= args.poll_every:
            last[0] = now
            view = client.state(poet_name).teacher
            timeline.append(population_point(view, p.env_steps, args.solved))

    try:
        s_poet = train_run(url, poet_name, space, POET, seed, args.steps, args, tmp, watch)
        final = client.state(poet_name).teacher
    finally:
        client.close()
    timeline.append(population_point(final, s_poet["env_steps"], args.solved))
    steps = int(s_poet["env_steps"])  # DR and the control get exactly as many
    ckpts = args.checkpoints
    poet_ckpt = small_checkpoint(Path(s_poet["checkpoint"]), ckpts / f"poet-seed{seed}.pt")

    dr = train_run(url, f"dr-s{seed}-{stamp}", space, {"kind": "random"}, seed, steps, args, tmp,
                   progress_printer("dr", seed, args.progress_every, width=7))  # fmt: skip
    dr_ckpt = small_checkpoint(Path(dr["checkpoint"]), ckpts / f"dr-seed{seed}.pt")

    levels = [p["level"] for p in final["pairs"]]
    set_space = {"kind": "level", "generator": "minigrid_set", "config": {"levels": levels}}
    control_printer = progress_printer("control", seed, args.progress_every, width=7)
    control = train_run(url, f"control-s{seed}-{stamp}", set_space, {"kind": "random"}, seed,
                        steps, args, tmp, control_printer)  # fmt: skip
    control_ckpt = small_checkpoint(Path(control["checkpoint"]), ckpts / f"control-seed{seed}.pt")

    agents_dir = Path(s_poet["checkpoint"]).parent / "agents"
    finals = []
    for p in final["pairs"]:
        own = agents_dir / f"{p['agent_id']}.pt"
        finals.append({
            "env_id": p["env_id"], **difficulty(p["level"]), "params": p["params"],
            "poet": evaluate_level(own, p["level"], args.eval_episodes) if own.exists() else None,
            "control": evaluate_level(control_ckpt, p["level"], args.eval_episodes),
        })  # fmt: skip
    zero_shot = {
        who: {
            maze: evaluate_checkpoint(ck, maze, args.eval_episodes, seed=0)["solve_rate"]
            for maze in args.eval_mazes
        }
        for who, ck in (("poet", poet_ckpt), ("dr", dr_ckpt))
    }
    measured = [f for f in finals if f["poet"] is not None]
    return {
        "seed": seed,
        "env_steps": {"poet": steps, "dr": dr["env_steps"], "control": control["env_steps"]},
        "wall_s": {
            k: round(v["wall_s"], 1)
            for k, v in (("poet", s_poet), ("dr", dr), ("control", control))
        },
        "timeline": timeline,
        "final": {
            "iteration": final["iteration"],
            "annecs": final["annecs"],
            "archive_size": final["archive_size"],
            "transfers": final["transfer_count"],
            "admitted": final["admitted"],
            "children": final["children"],
        },
        "final_envs": finals,
        "final_envs_solve": {
            "poet": float(np.mean([f["poet"] for f in measured])) if measured else None,
            "control": float(np.mean([f["control"] for f in finals])),
        },
        "zero_shot": zero_shot,
        "zero_shot_mean": {k: float(np.mean(list(v.values()))) for k, v in zero_shot.items()},
    }


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over seeds of the headline figures."""

    def ms(values: list[float | None]) -> dict[str, float] | None:
        vals = [v for v in values if v is not None]
        if not vals:
            return None
        m, sd = mean_sd(vals)
        return {"mean": round(m, 3), "sd": round(sd, 3), "n": len(vals)}

    last = [r["timeline"][-1] for r in rows]
    return {
        "annecs": ms([p["annecs"] for p in last]),
        "archive_size": ms([p["archive_size"] for p in last]),
        "hardest_solved_path": ms([p["hardest_solved_path"] for p in last]),
        "final_envs_poet": ms([r["final_envs_solve"]["poet"] for r in rows]),
        "final_envs_control": ms([r["final_envs_solve"]["control"] for r in rows]),
        "zero_shot_poet": ms([r["zero_shot_mean"]["poet"] for r in rows]),
        "zero_shot_dr": ms([r["zero_shot_mean"]["dr"] for r in rows]),
    }


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """ANNECS and the hardest solved path over env steps, one line per seed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for row in result["runs"]:
        t = row["timeline"]
        x = [p["env_steps"] / 1e3 for p in t]
        axes[0].plot(x, [p["annecs"] for p in t], label=f"seed {row['seed']}")
        axes[1].plot(x, [p["hardest_solved_path"] or 0 for p in t], label=f"seed {row['seed']}")
    axes[0].set(title="ANNECS", xlabel="env steps (k)")
    axes[1].set(title="hardest solved env: shortest path", xlabel="env steps (k)")
    agg = result["summary"]
    bars = [
        ("zero-shot\nPOET", agg["zero_shot_poet"]), ("zero-shot\nDR", agg["zero_shot_dr"]),
        ("final envs\nPOET", agg["final_envs_poet"]),
        ("final envs\nfrom scratch", agg["final_envs_control"]),
    ]  # fmt: skip
    axes[2].bar(
        range(len(bars)),
        [b[1]["mean"] if b[1] else 0 for b in bars],
        yerr=[b[1]["sd"] if b[1] else 0 for b in bars],
        color=["C0", "C7", "C0", "C7"],
    )
    axes[2].set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    axes[2].set(title="solve rate", ylim=(0, 1))
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=500_000, help="POET's env steps per seed")
    p.add_argument("--workers", type=int, default=max(1, min((os.cpu_count() or 2) - 1, 15)))
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument("--solved", type=float, default=0.8, help="score of a solved environment")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--eval-mazes", nargs="+", default=list(DEFAULT_EVAL_MAZES))
    p.add_argument("--poll-every", type=float, default=5.0, help="seconds between timeline points")
    p.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--out", type=Path, default=RESULTS / "poet.json")
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--checkpoints", type=Path, default=RESULTS / "checkpoints" / "poet")
    args = p.parse_args(argv)
    if args.steps < 1 or args.eval_episodes < 1:
        p.error("--steps and --eval-episodes must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, service_at() as url:
        for seed in args.seeds:
            rows.append(run_seed(url, seed, args, Path(tmp)))
            result = {
                "benchmark": "poet",
                "command": " ".join(["python benchmarks/poet.py", *(argv or sys.argv[1:])]),
                "machine": describe_machine(with_gpu=True),
                "total_wall_s": round(time.time() - t0, 1),
                "settings": {
                    "steps": args.steps,
                    "seeds": args.seeds,
                    "workers": args.workers,
                    "envs_per_worker": args.envs_per_worker,
                    "ranges": RANGES,
                    "poet": POET,
                    "solved": args.solved,
                    "eval_episodes": args.eval_episodes,
                    "eval_mazes": args.eval_mazes,
                },
                "summary": aggregate(rows),
                "runs": rows,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
    plotted = plot(result, args.plot)
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {args.out}" + (f" and {plotted}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
