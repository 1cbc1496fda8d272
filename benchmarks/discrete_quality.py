"""Discrete-teacher benchmark: a teacher drives the tech-tree student
(:mod:`env_generators.tech_tree`); the score is the number of skill families mastered.

Runs in process (the teacher object directly) or against a running server through
:class:`~teacher_service.client.TeacherClient`; both use the same loop: ask for a batch of
tasks, play each once (``evaluate`` tasks without learning), report success. ``autocurriculum
bench discrete`` is its command line.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_schemas.tasks import TaskMode
from api_schemas.teachers import TEACHER_CONFIGS
from benchmarks.teacher_quality import parse_teacher, teacher_label
from env_generators.tech_tree import TechTreeStudent
from teacher_service.teachers import TaskProposal, TaskResult, make_teacher


def discrete_teacher_kinds() -> list[str]:
    """Every teacher kind that serves discrete spaces."""
    return [cfg.kind_name() for cfg in TEACHER_CONFIGS if "discrete" in cfg.SPACES]


def run_tech_tree(
    teacher: dict[str, Any],
    *,
    episodes: int = 4000,
    seed: int = 0,
    batch: int = 16,
    every: int = 200,
    student: dict[str, Any] | None = None,
    server: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Run one teacher for ``episodes`` on a fresh tech-tree student.

    Args:
        teacher: teacher config, e.g. ``{"kind": "lp"}``.
        episodes: episode budget (evaluate episodes included).
        seed: teacher seed (and student seed).
        batch: tasks requested per call.
        every: record the score every this many episodes.
        student: keyword arguments of :class:`~env_generators.tech_tree.TechTreeStudent`.
        server: base URL of a running service; ``None`` runs the teacher in process.
        token: bearer token for ``server``.

    Returns:
        ``{"curve": [[episodes, families], ...], "final": families, "families": total,
        "eval_share": share of evaluate episodes, "wall_s": seconds}``.
    """
    config = parse_teacher(teacher)
    tree = TechTreeStudent(seed=seed, **(student or {}))
    curve: list[list[float]] = [[0, 0]]
    evaluations = 0
    start = time.perf_counter()

    def play(task: str, mode: TaskMode) -> bool:
        nonlocal evaluations
        evaluations += mode == TaskMode.EVALUATE
        success = tree.episode(task, train=mode == TaskMode.TRAIN)
        if tree.episodes % every == 0:
            curve.append([tree.episodes, tree.score()])
        return success

    if server is None:
        t = make_teacher(tree.space(), config, seed)
        try:
            judge_in_process(t)
            while tree.episodes < episodes:
                proposals = t.propose(min(batch, episodes - tree.episodes))
                t.observe([_result(p, play(p.params["task"], p.mode)) for p in proposals])
            view = t.view()
        finally:
            t.close()
    else:
        from teacher_service.client import TeacherClient

        with TeacherClient(server, token=token) as client:
            name = f"bench-discrete-{uuid.uuid4().hex[:8]}"
            exp = client.create_experiment(name, tree.space(), config, seed=seed)
            wait_until_judged(client, exp.id)
            while tree.episodes < episodes:
                tasks = client.sample(exp.id, min(batch, episodes - tree.episodes))
                reports = []
                for task in tasks:
                    ok = play(task.params["task"], task.mode)
                    reports.append({"task_id": task.id, "episode_return": float(ok), "success": ok})
                client.report(exp.id, reports)
            view = client.state(exp.id).teacher
    if curve[-1][0] != tree.episodes:
        curve.append([tree.episodes, tree.score()])
    return {
        "curve": curve,
        "final": tree.score(),
        "families": len(tree.core),
        "eval_share": evaluations / max(tree.episodes, 1),
        "moi": moi_scores(view, tree),
        "wall_s": time.perf_counter() - start,
    }


def judge_in_process(teacher: Any) -> None:
    """Answer a teacher's judgement request (OMNI's background models) at once, as the
    server does before the first task when nothing is asked for in the meantime."""
    request = teacher.judgement_request()
    if request is None:
        return
    from teacher_service.interestingness import Judges

    judges = Judges()
    try:
        judges.judge(request, teacher.judge)
    finally:
        judges.close()


def wait_until_judged(client: Any, experiment: str, timeout: float = 300.0) -> None:
    """Wait until the server's model of interestingness has judged every task (a run then
    starts from the same judgements in every repeat, as in process)."""
    deadline = time.monotonic() + timeout
    while client.state(experiment).teacher.get("unjudged", 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"tasks of {experiment} still unjudged after {timeout:.0f}s")
        time.sleep(0.2)


def moi_scores(view: dict[str, Any], tree: TechTreeStudent) -> dict[str, float] | None:
    """Precision and recall of a model of interestingness's *boring* calls (the teacher's
    view says ``interesting`` per task) against the student's ground truth, or None for a
    teacher without one."""
    tasks = view.get("tasks") if isinstance(view, dict) else None
    if not tasks or "interesting" not in tasks[0]:
        return None
    called = {t["task"] for t in tasks if not t["interesting"]}
    boring = {t.name for t in tree.tasks if not tree.interesting(t.name)}
    hits = len(called & boring)
    return {
        "precision": hits / len(called) if called else 1.0,
        "recall": hits / len(boring) if boring else 1.0,
    }


def _result(proposal: TaskProposal, success: bool) -> TaskResult:
    return TaskResult(proposal, float(success), success=success)


def run_grid(
    teachers: list[dict[str, Any]],
    *,
    seeds: int,
    episodes: int,
    batch: int,
    server: str | None = None,
    token: str | None = None,
    on_run: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Every teacher on ``seeds`` students: per teacher label, the runs and a summary."""
    results: dict[str, Any] = {}
    for spec in teachers:
        label = teacher_label(spec)
        runs = []
        for seed in range(seeds):
            runs.append(
                run_tech_tree(
                    spec, episodes=episodes, seed=seed, batch=batch, server=server, token=token
                )
            )
            if on_run is not None:
                on_run(label, seed)
        finals = [r["final"] for r in runs]
        moi = [r["moi"] for r in runs if r["moi"] is not None]
        results[label] = {
            "teacher": spec,
            "moi": {k: statistics.fmean(m[k] for m in moi) for k in ("precision", "recall")}
            if moi
            else None,
            "mean": statistics.fmean(finals),
            "sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "finals": finals,
            "eval_share": statistics.fmean(r["eval_share"] for r in runs),
            "wall_s": sum(r["wall_s"] for r in runs),
            "curves": [r["curve"] for r in runs],
        }
    return results


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a table: families mastered (mean ± sd over seeds) per teacher."""
    lines = [
        f"Families mastered (of {report['families']}) after {report['episodes']} episodes, "
        f"{report['seeds']} seeds ({report['mode']})",
        "",
        "| teacher | families mastered | per seed | evaluate episodes | boring calls: "
        "precision / recall |",
        "|---|---|---|---|---|",
    ]
    for label, r in report["results"].items():
        finals = ", ".join(str(f) for f in r["finals"])
        moi = r.get("moi")
        calls = f"{moi['precision']:.2f} / {moi['recall']:.2f}" if moi else "n/a"
        lines.append(
            f"| `{label}` | {r['mean']:.1f} ± {r['sd']:.1f} | {finals} | "
            f"{r['eval_share']:.0%} | {calls} |"
        )
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Mean families mastered against episodes, one line per teacher (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in report["results"].items():
        xs = [p[0] for p in r["curves"][0]]
        ys = [statistics.fmean(c[i][1] for c in r["curves"]) for i in range(len(xs))]
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("episodes")
    ax.set_ylabel(f"families mastered (of {report['families']})")
    ax.set_title("Tech-tree student")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
