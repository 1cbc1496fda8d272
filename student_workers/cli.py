"""The full ``autocurriculum`` command line: the service commands plus the students'.

``train``, ``evaluate`` and ``demo`` join the commands of :mod:`teacher_service.cli` here, so
that the service package never imports the students (docs/architecture.md#layout). Torch
and Ray are imported inside the commands that need them: ``autocurriculum serve`` starts
without them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from student_workers.demo_setup import (
    DEFAULT_TEACHER,
    benchmark_line,
    demo_space,
    demo_train_config,
    describe_space,
)
from teacher_service.cli import (
    ServeOpt,
    ServerOpt,
    TokenOpt,
    _fail,
    _one_blas_thread,
    app,
    keep_serving,
)

__all__ = ["app", "main"]


def _ppo_config(**kw: Any) -> Any:
    from pydantic import ValidationError

    from student_workers.ppo import PPOConfig

    try:
        return PPOConfig(**{k: v for k, v in kw.items() if v is not None})
    except ValidationError as exc:
        _fail(f"invalid PPO setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")


def _run_training(cfg: Any, quiet: bool = False) -> dict[str, Any]:
    """Run ``train(cfg)`` with a rich progress bar; turn known failures into CLI errors."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from student_workers.train import TrainingError, TrainProgress, train
    from teacher_service.client import TeacherClientError

    console = Console(stderr=True, quiet=quiet)

    # Ray prints worker-failure notices on stdout; keep stdout for the JSON summary.
    try:
        with (
            contextlib.redirect_stdout(sys.stderr),
            Progress(
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            bar = progress.add_task("starting Ray actors...", total=cfg.steps)

            def on_progress(p: TrainProgress) -> None:
                progress.update(
                    bar, completed=min(p.budget_steps, p.total_steps), description=p.describe()
                )

            return train(cfg, on_progress=on_progress)
    except (TrainingError, TeacherClientError) as exc:
        _fail(str(exc))


@app.command()
def train(
    server: ServerOpt = "http://127.0.0.1:8000",
    experiment: Annotated[
        str,
        typer.Option(
            help="Experiment id or name: a level space, or a discrete space whose task names "
            "are MiniGrid env ids (MiniGrid-DoorKey-5x5-v0)."
        ),
    ] = "",
    workers: Annotated[int, typer.Option(help="Rollout worker actors.")] = 2,
    steps: Annotated[int, typer.Option(help="Steps to train for (all workers).")] = 1_000_000,
    budget: Annotated[
        str,
        typer.Option(
            help="What --steps counts: 'env' steps, or 'trained' steps (those the student made "
            "gradient updates on: equal PPO updates, as the PLR⊥/ACCEL papers compare)."
        ),
    ] = "env",
    checkpoint_dir: Annotated[
        Path,
        typer.Option(
            help="Where latest.pt and summary.json are written (with student roles, e.g. "
            "PAIRED: latest.pt is the first role's student, <role>.pt each other role's)."
        ),
    ] = Path("checkpoints"),
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting a local one.")
    ] = None,
    token: TokenOpt = None,
    envs_per_worker: Annotated[int, typer.Option(help="Envs stepped by each worker.")] = 4,
    num_steps: Annotated[int | None, typer.Option(help="Rollout length per env.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    ent_coef: Annotated[float | None, typer.Option(help="Entropy bonus.")] = None,
    epochs: Annotated[int | None, typer.Option(help="PPO epochs per update.")] = None,
    minibatches: Annotated[int | None, typer.Option(help="Minibatches per epoch.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Discount.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Network width.")] = None,
    lstm: Annotated[bool, typer.Option("--lstm/--no-lstm", help="Recurrent agent.")] = False,
    fixed_minibatch: Annotated[
        bool,
        typer.Option(
            "--fixed-minibatch/--no-fixed-minibatch",
            help="Full-rollout-size minibatches: fewer of them on rollouts with explore-mode "
            "steps (the reference Robust PLR/ACCEL's gradient steps per trained sample).",
        ),
    ] = False,
    eval_interval: Annotated[int, typer.Option(help="Updates between evaluations (0: none).")] = 10,
    eval_env: Annotated[
        list[str] | None,
        typer.Option(
            help="Test env (repeat); default: the 15x15 mazes (level space), the first 16 "
            "task env ids (discrete space)."
        ),
    ] = None,
    eval_episodes: Annotated[int, typer.Option(help="Episodes per test env.")] = 5,
    checkpoint_interval: Annotated[int, typer.Option(help="Updates between checkpoints.")] = 10,
    max_minutes: Annotated[float | None, typer.Option(help="Also stop after this long.")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray cluster.")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    actions: Annotated[
        str | None,
        typer.Option(
            help="The students' actions: 'navigation' (left, right, forward) or 'full' (all 7 "
            "MiniGrid actions, for keys and doors); default: navigation for a level space, "
            "full for a discrete space. The checkpoint records it."
        ),
    ] = None,
) -> None:
    """Train Ray PPO students on an experiment's levels or MiniGrid env ids; print the summary
    as JSON."""
    _one_blas_thread()
    from pydantic import ValidationError

    from student_workers.train import TrainConfig

    if not experiment:
        _fail("--experiment is required")
    ppo = _ppo_config(
        num_steps=num_steps, learning_rate=lr, ent_coef=ent_coef, update_epochs=epochs,
        num_minibatches=minibatches, gamma=gamma, hidden=hidden, lstm=lstm,
        fixed_minibatch=fixed_minibatch,
    )  # fmt: skip
    extra = {"eval_envs": tuple(eval_env)} if eval_env else {}
    try:
        cfg = TrainConfig(
            server=server, experiment=experiment, token=token, workers=workers,
            envs_per_worker=envs_per_worker, steps=steps, budget=budget,
            checkpoint_dir=checkpoint_dir,
            ray_address=ray_address, num_cpus=num_cpus, eval_interval=eval_interval,
            eval_episodes=eval_episodes, checkpoint_interval=checkpoint_interval,
            max_minutes=max_minutes, seed=seed, actions=actions, ppo=ppo, **extra,
        )  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        _fail(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}")
    if cfg.eval_interval:
        _check_envs(cfg.eval_envs)
    summary = _run_training(cfg)
    typer.echo(json.dumps(summary, indent=2, default=str))


def _check_envs(envs: tuple[str, ...]) -> None:
    from student_workers.eval_episodes import EnvNotFoundError, make_eval_env

    for name in envs:
        try:
            make_eval_env(name).close()
        except EnvNotFoundError as exc:
            _fail(str(exc))


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="A checkpoint written by `train`.")],
    env: Annotated[
        str, typer.Option(help="Held-out maze name or MiniGrid env id (MiniGrid-FourRooms-v0).")
    ],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to play.")] = 100,
    greedy: Annotated[bool, typer.Option(help="Take the most likely action.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the episodes and action sampling.")] = 0,
) -> None:
    """Evaluate a saved student; print {"env","episodes","solve_rate","mean_return"}."""
    _one_blas_thread()
    from student_workers.checkpoints import CheckpointError, evaluate_checkpoint
    from student_workers.eval_episodes import EnvNotFoundError

    try:
        result = evaluate_checkpoint(checkpoint, env, episodes, greedy=greedy, seed=seed)
    except (CheckpointError, EnvNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result))


@app.command()
def demo(
    minutes: Annotated[float, typer.Option(help="Training time.")] = 3.0,
    steps: Annotated[int, typer.Option(help="Env steps cap.")] = 5_000_000,
    workers: Annotated[int | None, typer.Option(help="Rollout workers (default: cores).")] = None,
    db: Annotated[str, typer.Option(help="SQLite file of the service.")] = "runs/demo.db",
    out: Annotated[Path, typer.Option(help="Checkpoint and summary directory.")] = Path(
        "runs/demo"
    ),
    teacher: Annotated[
        str,
        typer.Option(
            help="Teacher: level teachers (random = DR, plr, accel, paired, poet) get 15x15 "
            "MiniGrid levels, box teachers (lp_tree, alp_gmm, covar_gmm, riac) the parametric "
            "mazes."
        ),
    ] = DEFAULT_TEACHER,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    serve: ServeOpt = None,
) -> None:
    """The main job: the service on SQLite, an experiment on MiniGrid levels, local Ray PPO
    students learning under the curriculum with progress, then a checkpoint and a summary."""
    _one_blas_thread()
    import os
    import uuid

    from rich.console import Console

    from teacher_service.client import TeacherClient, TeacherClientError
    from teacher_service.testing import ServerProcess

    console = Console()
    try:
        space = demo_space(teacher)
    except ValueError as exc:
        _fail(str(exc))
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(db, log_path=out / "service.log")
    try:
        server.start()
    except Exception as exc:
        _fail(f"the service failed to start: {exc} (log: {out / 'service.log'})")
    url = server.url
    console.print(f"[bold]Teacher service[/bold] on SQLite {db}: {url}  (API docs: {url}/docs)")
    name = f"demo-minigrid-{teacher}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    n_workers = workers or max(1, min(os.cpu_count() or 1, 8))
    try:
        with TeacherClient(url) as client:
            client.create_experiment(name, space, {"kind": teacher}, seed=seed)
        console.print(
            f"experiment [cyan]{name}[/cyan]: teacher {teacher} proposes {describe_space(space)}; "
            f"{n_workers} Ray rollout workers + 1 PPO learner train for {minutes:g} min; "
            f"live dashboard: [bold]{url}/?exp={name}[/bold]"
        )
        cfg = demo_train_config(
            url, name, workers=n_workers, minutes=minutes, steps=steps, out=out, seed=seed
        )
        summary = _run_training(cfg)
        with TeacherClient(url) as client:
            counters = client.state(name).counters
    except TeacherClientError as exc:
        server.stop()
        _fail(str(exc))
    per_env = (summary.get("evaluation") or {}).get("per_env", {})
    tests = ", ".join(f"{k} {100 * v['solve_rate']:.0f}%" for k, v in per_env.items())
    if per_env:
        mean = sum(v["solve_rate"] for v in per_env.values()) / len(per_env)
        tests += f" (mean {100 * mean:.0f}%)"
    mean_ret = summary["mean_return_last_200"]
    console.print(
        f"done: {summary['env_steps']:,} env steps in {summary['wall_s']:.0f} s "
        f"({summary['steps_per_s']:.0f} steps/s), {summary['episodes']:,} episodes, "
        f"mean return of the last 200: {mean_ret if mean_ret is None else round(mean_ret, 3)}; "
        f"held-out solve rate: {tests or '-'}.\n"
        f"reports stored: {counters.reports_accepted:,}; checkpoint: {summary['checkpoint']} "
        f"(try: autocurriculum evaluate --checkpoint {summary['checkpoint']} "
        f"--env MiniGrid-FourRooms-v0); summary: {out / 'summary.json'}"
    )
    line = benchmark_line(teacher)
    if line:
        console.print(line)
    keep_serving(
        serve, url, lambda: server.proc is not None and server.proc.poll() is None, console.print
    )
    server.stop()


def main() -> None:
    """Entry point of the ``autocurriculum`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
