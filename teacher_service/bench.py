"""Teacher-quality benchmark: a teacher drives the simulated student (ALGORITHMS.md §7).

Runs in process (the teacher object directly) or against a running server through
:class:`~teacher_service.client.TeacherClient`; both use the same loop: ask for a batch
of tasks, practise each once, report the rewards.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from api_schemas.spaces import BoxSpace
from api_schemas.teachers import TeacherConfig
from env_generators.simulated_student import SimulatedStudent
from teacher_service.teachers import TaskResult, make_teacher

#: The toy's task space: the unit square (extra dims would be distractors).
TOY_SPACE = BoxSpace(
    dims=[{"name": "x0", "low": 0.0, "high": 1.0}, {"name": "x1", "low": 0.0, "high": 1.0}]
)
_CONFIG = TypeAdapter(TeacherConfig)


def parse_teacher(spec: dict[str, Any]) -> Any:
    """Validate a teacher config dict (raises pydantic.ValidationError with a message)."""
    return _CONFIG.validate_python(spec)


def run_simulated_student(
    teacher: dict[str, Any],
    *,
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
    student = SimulatedStudent(seed=seed)
    curve: list[list[float]] = [[0, 0.0]]
    t0 = time.perf_counter()
    names = [d.name for d in TOY_SPACE.dims]

    def practise(params: dict[str, float]) -> float:
        return student.episode([params[n] for n in names])

    done = 0
    if server is None:
        t = make_teacher(TOY_SPACE, config, seed)
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
                f"bench-{config.kind}-s{seed}-{uuid.uuid4().hex[:8]}", TOY_SPACE, config, seed=seed
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
