"""GMM refits run in the server's fit processes, not in the process that answers requests, and
change nothing: a server fitting in its process pool proposes exactly what a twin fitting in
threads proposes, before and after a SIGKILL with a fit in flight; the killed server's worker
does not outlive it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import fit_workers

BOX = {
    "kind": "box",
    "dims": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
}
TEACHER = {"kind": "alp_gmm", "fit_rate": 40, "bootstrap": 40, "fit_delay": 30}
BATCH = 8
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def create(c: httpx.Client) -> None:
    body = {"name": "gmm", "space": BOX, "teacher": TEACHER, "seed": 11}
    r = c.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text


def step(c: httpx.Client) -> list[tuple[float, float]]:
    """One batch of tasks, reported back with a deterministic return (a learnable region)."""
    tasks = c.post("/v1/experiments/gmm/tasks", json={"n": BATCH}).json()["tasks"]
    reports = [
        {"task_id": t["id"], "episode_return": round(t["params"]["a"] * (1 - t["params"]["b"]), 6)}
        for t in tasks
    ]
    r = c.post("/v1/experiments/gmm/reports", json={"reports": reports})
    assert r.json()["accepted"] == BATCH, r.text
    return [(t["params"]["a"], t["params"]["b"]) for t in tasks]


def view(c: httpx.Client) -> dict:
    return c.get("/v1/experiments/gmm/state").json()["teacher"]


def settle(pid: int, quiet: float = 0.6, timeout: float = 60.0) -> float:
    """Wait until ``pid`` has used no CPU for ``quiet`` seconds (a spawned worker imports
    scikit-learn first); its CPU time then."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now == last:
            return now
        last = now
    pytest.fail(f"process {pid} never went idle")


def test_fits_run_in_the_fit_process_and_propose_what_thread_fits_propose(
    server_factory, tmp_path
) -> None:
    pooled = server_factory(f"sqlite:///{tmp_path / 'pooled.db'}", extra=["--snapshot-every", "9"])
    threaded = server_factory(
        f"sqlite:///{tmp_path / 'threaded.db'}", env={"AUTOCURRICULUM_FIT_PROCESSES": "0"}
    )
    with (
        httpx.Client(base_url=pooled.url, timeout=60) as cp,
        httpx.Client(base_url=threaded.url, timeout=60) as ct,
    ):
        create(cp)
        create(ct)
        # the first GMM teacher started the pool's two workers (the default); fits in
        # threads start none
        deadline = time.monotonic() + 30
        while len(fit_workers(pooled.proc.pid)) < 2:
            assert time.monotonic() < deadline, "the fit workers were not started"
            time.sleep(0.1)
        assert fit_workers(threaded.proc.pid) == []
        workers = fit_workers(pooled.proc.pid)
        assert len(workers) == 2
        before = [settle(w) for w in workers]
        server_cpu = cpu_seconds(pooled.proc.pid)
        for _ in range(60):  # 480 episodes: 11 fits
            assert step(cp) == step(ct)
        assert view(cp)["fits"] == view(ct)["fits"] >= 10
        # each fit's candidates were dealt over both workers: both used CPU for EM (a fit is
        # ~10-100 ms), not the server alone
        fit_cpu = [settle(w) - b for w, b in zip(workers, before, strict=True)]
        assert min(fit_cpu) > 0.04, (fit_cpu, cpu_seconds(pooled.proc.pid) - server_cpu)

        # SIGKILL with a fit started and not yet in effect: the restored server recomputes
        # it from its logged inputs and goes on like the twin that never stopped
        for _ in range(20):
            if view(cp)["pending_fit"] is not None:
                break
            assert step(cp) == step(ct)
        assert view(cp)["pending_fit"] is not None
        pooled.kill()
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers):  # the orphaned workers notice and exit
            assert time.monotonic() < deadline, "a fit worker outlived its killed server"
            time.sleep(0.1)
        pooled.start()
        assert view(cp) == view(ct)
        for _ in range(15):
            assert step(cp) == step(ct)
        assert view(cp) == view(ct)
        assert fit_workers(pooled.proc.pid)  # the restarted server fits in a worker again
