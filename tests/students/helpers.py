"""What the student tests share: the ``autocurriculum`` command run in a subprocess (and the
record of those still running, which ``conftest.py`` stops after each test), the standard
``train`` arguments, the reports a server logged, and a fake session for a rollout worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

from api_schemas.tasks import Task, TaskMode
from env_generators.generators import get_generator
from teacher_service.storage.store import Store

#: Envs per rollout worker in the training runs of the tests.
ENVS = 4

#: The commands started by :func:`cli` and not yet stopped.
STARTED: list[subprocess.Popen] = []


def cli(*args: str) -> subprocess.Popen:
    """``python -m student_workers *args`` in the background (output captured)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "student_workers", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    STARTED.append(proc)
    return proc


def stop_started() -> None:
    """Stop every command :func:`cli` started that is still running (its Ray goes with it)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """Wait for a command: its exit code, stdout and stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def train_args(url: str, ckpt: Path, steps: int, *extra: str) -> list[str]:
    """``train`` on the experiment ``dr``: 2 workers, short rollouts, evaluations and
    checkpoints every 2 updates."""
    return [
        "train", "--server", url, "--experiment", "dr", "--workers", "2",
        "--envs-per-worker", str(ENVS), "--steps", str(steps), "--checkpoint-dir", str(ckpt),
        "--num-steps", "64", "--eval-env", "FourRooms", "--eval-env", "MiniGrid-Empty-8x8-v0",
        "--eval-interval", "2", "--eval-episodes", "2", "--checkpoint-interval", "2", *extra,
    ]  # fmt: skip


def logged_reports(db: str, exp_id: str) -> list[dict]:
    """Every report entry the server logged for the experiment, in order."""
    store = Store(db)
    try:
        return [
            r
            for ev in store.iter_events(exp_id)
            if ev.kind == "reports"
            for r in orjson.loads(ev.payload)["reports"]
        ]
    finally:
        store.close()


class FakeSession:
    """A session for a rollout worker without a server: hands out small levels, every third
    one as an ``explore`` task (:meth:`make_task`), and records the reports."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.config = get_generator("minigrid").config({"size": 7, "max_walls": 3})
        self.issued: list[Task] = []
        self.reports: list[dict] = []
        self.stats = {"accepted": 0}

    def make_task(self, i: int) -> Task:
        """The ``i``-th task handed out."""
        mode = TaskMode.EXPLORE if i % 3 == 2 else TaskMode.TRAIN
        level = get_generator("minigrid").sample(self.rng, self.config)
        return Task(id=f"t{i}", level=level, mode=mode, lease_expires_at=0.0)

    def next_task(self, timeout: float | None = None) -> Task:
        task = self.make_task(len(self.issued))
        self.issued.append(task)
        return task

    def report(self, report: dict) -> None:
        self.reports.append(report)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def descendants(root: int) -> set[int]:
    """Processes below ``root`` (its embedded Ray cluster's actors among them): other Ray jobs
    on a shared machine must not count."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def cmdlines() -> dict[int, str]:
    """Every process's command line, by pid."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out[int(p.name)] = (p / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
    return out


def actor_pids(root: int, actor: str) -> list[int]:
    """Processes of Ray actors of class ``actor`` below ``root``."""
    mine = descendants(root)
    return [
        pid for pid, cmd in cmdlines().items() if pid in mine and cmd.startswith(f"ray::{actor}")
    ]
