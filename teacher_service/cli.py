"""The ``autocurriculum`` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

#: Seconds a stopping server waits for open responses (live dashboard streams never end).
GRACEFUL_SHUTDOWN_S = 3

app = typer.Typer(
    help="autocurriculum: curriculum teachers for reinforcement learning, served over HTTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
experiments_app = typer.Typer(
    help="Create, list, show and delete experiments on a running server.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(bench_app, name="bench")

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server", envvar="AUTOCURRICULUM_SERVER", help="Base URL of the teacher service."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="AUTOCURRICULUM_TOKEN", help="Bearer token, if the server has one."
    ),
]
BenchServerOpt = Annotated[
    str | None, typer.Option(help="Run against this server instead of in process.")
]
PlotOpt = Annotated[
    bool, typer.Option("--plot/--no-plot", help="Also draw the curves to <out>.png.")
]

ServeOpt = Annotated[
    bool | None,
    typer.Option(
        "--serve/--no-serve", help="Keep serving after the run (default: when interactive)."
    ),
]


def _fail(msg: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _one_blas_thread() -> None:
    """Before numpy loads: one BLAS thread per process. The teachers' small GMM fits run
    ~30x slower when OpenBLAS spreads them over cores (a reference-implementation bug)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: Annotated[
        str, typer.Option(help="SQLite file path or SQLAlchemy URL (postgresql+psycopg://...).")
    ] = "autocurriculum.db",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOCURRICULUM_TOKEN", help="Require this bearer token on /v1 and /metrics."
        ),
    ] = None,
    snapshot_every: Annotated[int, typer.Option(help="Events between teacher snapshots.")] = 1000,
    fit_processes: Annotated[
        int | None,
        typer.Option(
            help="Worker processes for model fits (ALP-GMM, Covar-GMM); 0: threads of the "
            "server [default: AUTOCURRICULUM_FIT_PROCESSES or 2]."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Run the teacher service."""
    _one_blas_thread()
    import uvicorn
    from pydantic import ValidationError

    from teacher_service.app import create_app
    from teacher_service.settings import Settings

    try:
        fits = {} if fit_processes is None else {"fit_processes": fit_processes}
        settings = Settings(
            host=host, port=port, db=db, token=token, snapshot_every=snapshot_every, **fits
        )
    except ValidationError as exc:
        _fail(str(exc))
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if host not in {"127.0.0.1", "localhost", "::1"} and not settings.token:
        logging.getLogger(__name__).warning(
            "listening on %s without a token: anyone who can reach it can use it", host
        )
    # The store's writer thread hands results back to the event loop; with the default
    # 5 ms GIL switch interval each hand-off can wait that long, which dominates latency.
    sys.setswitchinterval(0.0005)
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=False,
            # Dashboard streams never end by themselves: cut them on shutdown.
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    except Exception as exc:
        _fail(f"server failed: {exc}")


def keep_serving(serve: bool | None, url: str, alive: Any, say: Any, poll: float = 0.5) -> None:
    """After a demo: keep the service up until Ctrl-C (or until ``alive()`` turns false) when
    ``serve`` is true, or, when it is ``None``, when stdin is a terminal."""
    import time

    if serve is None:
        serve = sys.stdin.isatty()
    if not serve:
        return
    say(f"serving on {url} — Ctrl-C to stop")
    try:
        while alive():
            time.sleep(poll)
    except KeyboardInterrupt:
        pass


def _load_json(value: str, what: str) -> Any:
    """Parse JSON given inline or as ``@path``."""
    try:
        if value.startswith("@"):
            return json.loads(Path(value[1:]).read_text())
        return json.loads(value)
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"{what}: not valid JSON ({exc})")


def _client(server: str, token: str | None) -> Any:
    from teacher_service.client import TeacherClient

    return TeacherClient(server, token=token, retries=3)


def _run_client_call(fn: Any) -> Any:
    from teacher_service.client import TeacherClientError

    try:
        return fn()
    except TeacherClientError as exc:
        _fail(str(exc))


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@experiments_app.command("create")
def experiments_create(
    name: Annotated[str, typer.Option(help="Unique experiment name.")],
    space: Annotated[
        str, typer.Option(help='Task space as JSON or @file, e.g. \'{"kind":"box","dims":[...]}\'.')
    ],
    teacher: Annotated[
        str, typer.Option(help="Teacher kind (e.g. alp_gmm) or its config as JSON / @file.")
    ] = "alp_gmm",
    seed: Annotated[int, typer.Option(help="Teacher seed.")] = 0,
    lease_seconds: Annotated[
        float, typer.Option(help="Seconds before an unreported task expires.")
    ] = 600.0,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok/--no-exist-ok",
            help="If the name is taken by the same setup, print that experiment instead of "
            "failing (a different setup still fails).",
        ),
    ] = False,
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Create an experiment and print it as JSON."""
    space_obj = _load_json(space, "--space")
    teacher_obj = (
        _load_json(teacher, "--teacher")
        if teacher.lstrip().startswith(("{", "@"))
        else {"kind": teacher}
    )
    with _client(server, token) as c:
        exp = _run_client_call(
            lambda: c.create_experiment(
                name,
                space_obj,
                teacher_obj,
                seed=seed,
                lease_seconds=lease_seconds,
                exist_ok=exist_ok,
            )
        )
    _echo_json(exp.model_dump(mode="json"))


@experiments_app.command("add-tasks")
def experiments_add_tasks(
    experiment: Annotated[str, typer.Argument(help="Experiment id or name (a discrete space).")],
    tasks: Annotated[
        str,
        typer.Option(
            help='Tasks as JSON or @file: [{"name": ..., "description": ..., "category": ...}].'
        ),
    ],
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Add tasks to a running discrete experiment; print how many joined and the new size."""
    specs = _load_json(tasks, "--tasks")
    if not isinstance(specs, list):
        _fail("--tasks must be a JSON list of tasks")
    with _client(server, token) as c:
        added = _run_client_call(lambda: c.add_tasks(experiment, specs))
    _echo_json(added.model_dump(mode="json"))


@experiments_app.command("list")
def experiments_list(server: ServerOpt = "http://127.0.0.1:8000", token: TokenOpt = None) -> None:
    """List experiments with their progress counters."""
    from rich.console import Console
    from rich.table import Table

    with _client(server, token) as c:
        exps = _run_client_call(c.list_experiments)
    table = Table("id", "name", "teacher", "space", "tasks", "reports", "outstanding")
    for e in exps:
        table.add_row(
            e.id,
            e.name,
            e.teacher.kind,
            e.space.kind,
            str(e.counters.tasks_issued),
            str(e.counters.reports_accepted),
            str(e.counters.outstanding),
        )
    Console().print(table)


@experiments_app.command("show")
def experiments_show(
    experiment: Annotated[str, typer.Argument(help="Experiment id or name.")],
    state: Annotated[bool, typer.Option("--state", help="Include the teacher's own view.")] = False,
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Show one experiment as JSON."""
    with _client(server, token) as c:
        exp = _run_client_call(lambda: c.get_experiment(experiment))
        out = exp.model_dump(mode="json")
        if state:
            out["state"] = _run_client_call(lambda: c.state(experiment)).model_dump(mode="json")
    _echo_json(out)


@experiments_app.command("delete")
def experiments_delete(
    experiment: Annotated[str, typer.Argument(help="Experiment id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Delete an experiment and everything stored for it (log, snapshots, evaluations,
    agents). Asks first unless --yes."""
    if not yes:
        question = (
            f"Delete experiment {experiment} and everything stored for it "
            "(log, snapshots, evaluations, agents)?"
        )
        try:
            confirmed = typer.confirm(question, default=False)
        except typer.Abort:  # end of input
            confirmed = False
        if not confirmed:
            _fail("aborted; nothing was deleted")
    with _client(server, token) as c:
        _run_client_call(lambda: c.delete_experiment(experiment))
    typer.echo(
        f"deleted experiment {experiment} and everything stored for it "
        "(log, snapshots, evaluations, agents)"
    )


@app.command("export")
def export_history(
    experiment: Annotated[str, typer.Argument(help="Experiment id or name.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="jsonl (JSON lines) or parquet (needs pyarrow on the server)."
        ),
    ] = "jsonl",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File to write (default: <experiment>.<format>)."),
    ] = None,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            "--url",
            envvar="AUTOCURRICULUM_SERVER",
            help="Base URL of the teacher service.",
        ),
    ] = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Download an experiment's full history (tasks, reports, expiries, evaluations) for
    analysis; read it back with teacher_service.client.read_export or export_dataframe."""
    if fmt not in ("jsonl", "parquet"):
        _fail(f"--format must be jsonl or parquet, got {fmt!r}")
    with _client(server, token) as c:
        try:
            path = _run_client_call(lambda: c.export(experiment, out, format=fmt))
        except OSError as exc:
            _fail(f"cannot write the export: {exc}")
    typer.echo(f"wrote {path} ({path.stat().st_size} bytes)")


def _bench_teachers(given: list[str], space: str) -> list[dict[str, Any]]:
    """Teacher configs from ``--teacher`` values (kinds or JSON), each checked to validate
    and to serve the benchmark's ``space`` kind (a message and exit 1 otherwise)."""
    from pydantic import ValidationError

    from benchmarks.teacher_quality import parse_teacher

    specs = [
        _load_json(t, "--teacher") if t.lstrip().startswith(("{", "@")) else {"kind": t}
        for t in given
    ]
    for spec in specs:
        try:
            cfg = parse_teacher(spec)
        except ValidationError as exc:
            _fail(f"invalid teacher {spec}: {exc.errors()[0]['msg']}")
        if space not in cfg.SPACES:
            _fail(f"teacher {cfg.kind!r} does not serve {space} spaces (the benchmark's)")
    return specs


def _bench_report(
    benchmark: str,
    settings: dict[str, Any],
    server: str | None,
    started_at: float,
    **details: Any,
) -> dict[str, Any]:
    """A benchmark's report: its settings, how and where it ran, then its ``details``."""
    import time

    from benchmarks.machine import describe_machine

    return {
        "benchmark": benchmark,
        **settings,
        "mode": "http" if server else "in-process",
        "command": "autocurriculum " + " ".join(sys.argv[1:]),
        "machine": describe_machine(),
        "started_at": started_at,
        "wall_s": time.time() - started_at,
        **details,
    }


def _save_bench(report: dict[str, Any], out: Path, markdown: str, plot_report: Any | None) -> None:
    """Write a benchmark's JSON and markdown, and its plot unless ``plot_report`` is None
    (saying how to get matplotlib where it is missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown)
    typer.echo(f"wrote {out} and {out.with_suffix('.md')}")
    if plot_report is None:
        return
    try:
        typer.echo(f"wrote {plot_report(report, out.with_suffix('.png'))}")
    except ImportError:
        typer.secho(
            "no plot: matplotlib is not installed (pip install 'autocurriculum[plots]')",
            fg=typer.colors.YELLOW,
            err=True,
        )


@bench_app.command("teachers")
def bench_teachers(
    teacher: Annotated[
        list[str] | None,
        typer.Option(
            "--teacher",
            help="Teacher kind or JSON config; repeat for several. Default: every box teacher.",
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant", help="Student variant; repeat for several. Default: all of them."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per teacher and variant (0..seeds-1).")] = 8,
    episodes: Annotated[int, typer.Option(help="Episode budget per run.")] = 20_000,
    batch: Annotated[int, typer.Option(help="Tasks per request.")] = 25,
    jobs: Annotated[int, typer.Option(help="Worker processes (0: one per CPU core).")] = 0,
    server: BenchServerOpt = None,
    token: TokenOpt = None,
    out: Annotated[Path, typer.Option(help="Where to write the results JSON.")] = Path(
        "benchmarks/results/teachers.json"
    ),
    plot: PlotOpt = True,
) -> None:
    """Run teachers on the simulated student and its variants
    (docs/algorithms.md#the-simulated-student); write score curves, mean ± sd at 5k/10k/20k
    episodes and wall times (JSON), and a PNG of the curves."""
    _one_blas_thread()
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmarks.teacher_quality import (
        REFERENCE,
        box_teacher_kinds,
        report_markdown,
        run_grid,
        teacher_label,
    )
    from env_generators.simulated_student import VARIANTS
    from teacher_service.client import TeacherClientError

    specs = _bench_teachers(teacher or box_teacher_kinds(), "box")
    variants = variant or list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        _fail(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    if seeds < 1 or episodes < 1 or batch < 1 or jobs < 0:
        _fail("--seeds, --episodes and --batch must be >= 1, --jobs >= 0")
    jobs = jobs or (os.cpu_count() or 1)
    total = len(specs) * len(variants) * seeds
    t_start = time.time()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        bar = progress.add_task(f"{total} runs of {episodes} episodes", total=total)
        try:
            results = run_grid(
                specs,
                variants,
                seeds=seeds,
                episodes=episodes,
                batch=batch,
                jobs=jobs,
                server=server,
                token=token,
                on_run=lambda v, label, s: progress.update(
                    bar, advance=1, description=f"{v}: {label} seed {s} done"
                ),
            )
        except TeacherClientError as exc:
            _fail(str(exc))
    report = _bench_report(
        "simulated_student",
        {"episodes": episodes, "seeds": seeds, "batch": batch, "jobs": jobs},
        server,
        t_start,
        variants={v: VARIANTS[v].description for v in variants},
        reference=REFERENCE,
        results=results,
    )
    typer.echo("% cells mastered (mean±sd) at 5k / 10k / 20k episodes and at the end")
    for v, per_variant in results.items():
        for r in per_variant.values():
            s = r["summary"]
            cells = "  ".join(
                f"{s[k]['mean']:5.1f}±{s[k]['sd']:4.1f}"
                for k in ("5000", "10000", "20000", "final")
                if k in s
            )
            typer.echo(f"{v:>10}  {teacher_label(r['config']):>10}  {cells}")
    from benchmarks.plots import plot_report

    _save_bench(report, out, report_markdown(report), plot_report if plot else None)


@bench_app.command("discrete")
def bench_discrete(
    teacher: Annotated[
        list[str] | None,
        typer.Option(
            "--teacher",
            help="Teacher kind or JSON config; repeat for several. Default: every discrete "
            "teacher.",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per teacher (0..seeds-1).")] = 5,
    episodes: Annotated[int, typer.Option(help="Episode budget per run.")] = 4000,
    batch: Annotated[int, typer.Option(help="Tasks per request.")] = 16,
    server: BenchServerOpt = None,
    token: TokenOpt = None,
    out: Annotated[Path, typer.Option(help="Where to write the results JSON.")] = Path(
        "benchmarks/results/discrete.json"
    ),
    plot: PlotOpt = True,
) -> None:
    """Run discrete teachers on the tech-tree student (env_generators/tech_tree.py): families
    mastered per teacher (JSON, a markdown table and a PNG of the curves)."""
    import time

    from benchmarks.discrete_quality import (
        discrete_teacher_kinds,
        plot_report,
        report_markdown,
        run_grid,
    )
    from env_generators.tech_tree import TechTreeStudent
    from teacher_service.client import TeacherClientError

    specs = _bench_teachers(teacher or discrete_teacher_kinds(), "discrete")
    if seeds < 1 or episodes < 1 or batch < 1:
        _fail("--seeds, --episodes and --batch must be >= 1")
    t_start = time.time()
    try:
        results = run_grid(
            specs,
            seeds=seeds,
            episodes=episodes,
            batch=batch,
            server=server,
            token=token,
            on_run=lambda label, s: typer.echo(f"{label} seed {s} done", err=True),
        )
    except TeacherClientError as exc:
        _fail(str(exc))
    report = _bench_report(
        "tech_tree",
        {"episodes": episodes, "seeds": seeds, "batch": batch},
        server,
        t_start,
        families=len(TechTreeStudent().core),
        results=results,
    )
    table = report_markdown(report)
    typer.echo(table)
    _save_bench(report, out, table, plot_report if plot else None)


@app.command("demo-toy")
def demo_toy(
    port: Annotated[int, typer.Option(help="Port for the service (a free one if taken).")] = 8000,
    db: Annotated[str, typer.Option(help="SQLite file for the demo.")] = "runs/demo.db",
    teacher: Annotated[str, typer.Option(help="Teacher kind driving the curriculum.")] = "lp_tree",
    episodes: Annotated[int, typer.Option(help="Episodes of the simulated student.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    serve: ServeOpt = None,
) -> None:
    """The service on SQLite with a teacher driving the simulated student (no Ray, no torch)."""
    _one_blas_thread()
    import socket
    import threading
    import time
    import uuid

    import uvicorn
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from env_generators.simulated_student import TOY_SPACE, SimulatedStudent
    from teacher_service.app import create_app
    from teacher_service.client import TeacherClient, TeacherClientError
    from teacher_service.settings import Settings

    console = Console()
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(db=db, port=port)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            _fail("the service failed to start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]Teacher service[/bold] on SQLite {db}: {url}  (API docs: {url}/docs)")
    name = f"demo-{teacher}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    student = SimulatedStudent(seed=seed)
    try:
        with TeacherClient(url) as client:
            exp = client.create_experiment(name, TOY_SPACE, {"kind": teacher}, seed=seed)
            console.print(
                f"experiment [cyan]{name}[/cyan]: teacher {teacher} drives the simulated student "
                f"(docs/algorithms.md#the-simulated-student) for {episodes} episodes; "
                f"live dashboard: [bold]{url}/?exp={name}[/bold]"
            )
            with (
                client.session(exp.id, prefetch=128, report_batch=64) as session,
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as progress,
            ):
                bar = progress.add_task("mastered   0.0%", total=episodes)
                for i in range(episodes):
                    task = session.next_task(timeout=60)
                    r = student.episode([task.params["x0"], task.params["x1"]])
                    session.report({"task_id": task.id, "episode_return": r})
                    if i % 200 == 0 or i == episodes - 1:
                        progress.update(
                            bar, completed=i + 1, description=f"mastered {student.score():5.1f}%"
                        )
                session.flush(timeout=60)
            state = client.state(exp.id)
    except TeacherClientError as exc:
        _fail(str(exc))
    console.print(
        f"done: {student.score():.1f}% of cells mastered after {episodes} episodes "
        f"(at 20k, references: random 4.5%, ALP-GMM 36.3%, RIAC 47.8%, Covar-GMM 66.9%). "
        f"Reports stored: "
        f"{state.counters.reports_accepted}. Inspect: {url}/v1/experiments/{name}/state"
    )
    keep_serving(serve, url, thread.is_alive, console.print)
    server.should_exit = True
    thread.join(timeout=30)


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
