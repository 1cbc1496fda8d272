"""Teacher-quality benchmark: a teacher drives the simulated student
(docs/algorithms.md#the-simulated-student) or one of its challenge variants
(:data:`env_generators.simulated_student.VARIANTS`).

Runs in process (the teacher object directly) or against a running server through
:class:`~teacher_service.client.TeacherClient`; both use the same loop: ask for a batch
of tasks, practise each once, report the rewards. ``autocurriculum bench teachers`` is its
command line; :mod:`benchmarks.plots` draws its report.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from api_schemas.teachers import TEACHER_CONFIGS, TeacherConfig
from env_generators.simulated_student import VARIANTS, SimulatedStudent, make_student, toy_space
from teacher_service.teachers import TaskResult, make_teacher

_CONFIG = TypeAdapter(TeacherConfig)

#: Reference figures of the paper's code (docs/algorithms.md#the-simulated-student): base toy,
#: 8 seeds, % of cells mastered at 5k/10k/20k episodes.
REFERENCE = {
    "random": {"5000": 0.0, "10000": 1.0, "20000": 4.5, "sd_20000": 0.8},
    "alp_gmm": {"5000": 5.1, "10000": 14.6, "20000": 36.3, "sd_20000": 2.4},
    "riac": {"5000": 9.6, "10000": 22.3, "20000": 47.8, "sd_20000": 1.6},
    "covar_gmm": {"5000": 13.3, "10000": 30.3, "20000": 66.9, "sd_20000": 4.4},
}


def box_teacher_kinds() -> list[str]:
    """Every teacher kind that serves box spaces (the ones the benchmark compares)."""
    return [cfg.kind_name() for cfg in TEACHER_CONFIGS if "box" in cfg.SPACES]


def parse_teacher(spec: dict[str, Any]) -> Any:
    """Validate a teacher config dict (raises pydantic.ValidationError with a message)."""
    return _CONFIG.validate_python(spec)


def run_simulated_student(
    teacher: dict[str, Any],
    *,
    variant: str = "base",
    episodes: int = 20_000,
    seed: int = 0,
    batch: int = 25,
    every: int = 500,
    server: str | None = None,
    token: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run one teacher for ``episodes`` on a fresh toy student.

    Args:
        teacher: teacher config, e.g. ``{"kind": "alp_gmm"}``.
        variant: name of the student variant (``base`` is the paper's toy).
        episodes: episode budget (paper: 20,000).
        seed: teacher seed (and student seed).
        batch: tasks requested per call.
        every: record the score every this many episodes.
        server: base URL of a running service; ``None`` runs the teacher in process.
        token: bearer token for ``server``.
        on_progress: called with the number of episodes just completed.

    Returns:
        ``{"curve": [[episodes, score%], ...], "final": score%, "wall_s": seconds}``.
    """
    config = parse_teacher(teacher)
    student = make_student(variant, seed)
    space = toy_space(VARIANTS[variant].dims)
    curve: list[list[float]] = [[0, 0.0]]
    t0 = time.perf_counter()
    names = [d.name for d in space.dims]

    def practise(params: dict[str, float]) -> float:
        return student.episode([params[n] for n in names])

    done = 0
    if server is None:
        t = make_teacher(space, config, seed)
        try:
            while done < episodes:
                n = min(batch, episodes - done)
                props = t.propose(n)
                t.observe([TaskResult(task=p, episode_return=practise(p.params)) for p in props])
                done = _advance(done, n, every, student, curve, on_progress)
        finally:
            t.close()
    else:
        from teacher_service.client import TeacherClient

        with TeacherClient(server, token=token) as client:
            exp = client.create_experiment(
                f"bench-{config.kind}-{variant}-s{seed}-{uuid.uuid4().hex[:8]}",
                space,
                config,
                seed=seed,
            )
            while done < episodes:
                n = min(batch, episodes - done)
                tasks = client.sample(exp.id, n)
                client.report(
                    exp.id,
                    [{"task_id": tk.id, "episode_return": practise(tk.params)} for tk in tasks],
                )
                done = _advance(done, n, every, student, curve, on_progress)
    return {"curve": curve, "final": student.score(), "wall_s": time.perf_counter() - t0}


def _advance(done: int, n: int, every: int, student: SimulatedStudent, curve: list, cb: Any) -> int:
    new = done + n
    if new // every > done // every:
        curve.append([new, student.score()])
    if cb is not None:
        cb(n)
    return new


def summarise(
    runs: list[dict[str, Any]], at: tuple[int, ...] = (5_000, 10_000, 20_000)
) -> dict[str, Any]:
    """Mean and sd of the score across seeds at given episode counts."""
    out: dict[str, Any] = {}
    for ep in at:
        vals = [score for run in runs for e, score in run["curve"] if e == ep]
        if len(vals) == len(runs) and vals:
            out[str(ep)] = {
                "mean": statistics.fmean(vals),
                "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            }
    finals = [r["final"] for r in runs]
    out["final"] = {
        "mean": statistics.fmean(finals),
        "sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
    }
    out["wall_s_per_run"] = statistics.fmean(r["wall_s"] for r in runs)
    return out


def teacher_label(spec: dict[str, Any]) -> str:
    """Short name of a teacher config: its kind, or its JSON when it sets hyper-parameters."""
    return spec["kind"] if len(spec) == 1 else json.dumps(spec, sort_keys=True)


def _run_job(job: tuple[dict[str, Any], str, int, int, int, str | None, str | None]) -> dict:
    spec, variant, seed, episodes, batch, server, token = job
    run = run_simulated_student(
        spec, variant=variant, episodes=episodes, seed=seed, batch=batch, server=server, token=token
    )
    return {"seed": seed, **run}


def run_grid(
    specs: list[dict[str, Any]],
    variants: list[str],
    *,
    seeds: int,
    episodes: int = 20_000,
    batch: int = 25,
    jobs: int = 1,
    server: str | None = None,
    token: str | None = None,
    on_run: Callable[[str, str, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every teacher on every variant over seeds ``0..seeds-1``.

    Runs go to ``jobs`` worker processes (each with one BLAS thread), or run here one by
    one when ``jobs == 1``. ``on_run(variant, label, seed)`` is called as each run ends.

    Returns:
        ``{variant: {label: {"config", "runs", "summary"}}}`` in the order given.
    """
    grid = [(spec, v, s) for v in variants for spec in specs for s in range(seeds)]
    results: dict[str, dict[str, Any]] = {
        v: {teacher_label(spec): {"config": spec, "runs": []} for spec in specs} for v in variants
    }

    def record(spec: dict[str, Any], variant: str, run: dict) -> None:
        label = teacher_label(spec)
        results[variant][label]["runs"].append(run)
        if on_run is not None:
            on_run(variant, label, run["seed"])

    job_args = [(spec, v, s, episodes, batch, server, token) for spec, v, s in grid]
    if jobs <= 1:
        for (spec, v, _), args in zip(grid, job_args, strict=True):
            record(spec, v, _run_job(args))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # inherited by the workers
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {
                pool.submit(_run_job, args): (spec, v)
                for (spec, v, _), args in zip(grid, job_args, strict=True)
            }
            for fut in as_completed(futures):
                spec, v = futures[fut]
                record(spec, v, fut.result())
    for per_variant in results.values():
        for entry in per_variant.values():
            entry["runs"].sort(key=lambda r: r["seed"])
            entry["summary"] = summarise(entry["runs"])
    return results


def report_markdown(report: dict[str, Any]) -> str:
    """The benchmark's tables in Markdown: the base toy at 5k/10k/20k episodes beside the
    reference figures, and every variant at the end of the budget."""
    results = report["results"]
    lines: list[str] = []

    def cell(summary: dict[str, Any], key: str) -> str:
        s = summary.get(key)
        return f"{s['mean']:.1f} ± {s['sd']:.1f}" if s else "-"

    if "base" in results:
        lines += [
            "| teacher | 5k eps | 10k eps | 20k eps | reference 5k / 10k / 20k | s per run |",
            "|---|---|---|---|---|---|",
        ]
        for label, entry in results["base"].items():
            s = entry["summary"]
            ref = REFERENCE.get(label)
            ref_txt = (
                f"{ref['5000']:g} / {ref['10000']:g} / {ref['20000']:g} ± {ref['sd_20000']:g}"
                if ref
                else "-"
            )
            lines.append(
                f"| `{label}` | {cell(s, '5000')} | {cell(s, '10000')} | {cell(s, '20000')} "
                f"| {ref_txt} | {s['wall_s_per_run']:.1f} |"
            )
        lines.append("")
    variants = list(results)
    labels = list(results[variants[0]])
    lines += [
        "| teacher | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for label in labels:
        row = [cell(results[v][label]["summary"], "final") for v in variants]
        lines.append(f"| `{label}` | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
