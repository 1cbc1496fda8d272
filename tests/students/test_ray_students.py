"""Ray students (student_workers.rollout_worker, actors, train, cli): a real server, a real local
Ray cluster, real MiniGrid. Training runs through the ``autocurriculum train`` command."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import torch

from api_schemas.tasks import TaskMode
from student_workers.checkpoints import load_checkpoint
from student_workers.ppo import PPOConfig
from student_workers.rollout_worker import RolloutWorker
from teacher_service.client import TeacherClient, read_export
from teacher_service.testing import free_port
from tests.students.helpers import (
    ENVS,
    FakeSession,
    actor_pids,
    cli,
    cmdlines,
    finish,
    logged_reports,
    train_args,
)

SMALL_LEVELS = {"kind": "level", "config": {"size": 9, "max_walls": 10}}


def test_train_two_workers_reports_scores_checkpoint_and_evaluate(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    exp = client.create_experiment("dr", SMALL_LEVELS, {"kind": "random"})
    ckpt = tmp_path / "ckpt"
    code, out, err = finish(cli(*train_args(server.url, ckpt, 3000)))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 3000 and summary["updates"] >= 5
    assert summary["worker_failures"] == 0 and summary["episodes"] > 0
    # DR trains on every step: default PPO, 5 epochs x 1 minibatch per update
    assert summary["optimizer_steps"] == 5 * summary["updates"]
    # The embedded cluster lives on loopback only.
    assert summary["ray_gcs_address"].startswith("127.0.0.1:")

    # Every finished episode was reported (workers flush at the end), each with its scores.
    counters = client.state("dr").counters
    assert counters.reports_accepted == summary["episodes"]
    reports = logged_reports(server.db, exp.id)
    assert len(reports) == summary["episodes"]
    for r in reports:
        s = r["scores"]
        assert set(s) == {"positive_value_loss", "l1_value_loss", "mean_value"}
        assert all(math.isfinite(v) for v in s.values())
        assert 0 <= s["positive_value_loss"] <= s["l1_value_loss"]
        assert r["length"] >= 1 and r["success"] == (r["episode_return"] > 0)
    # No task is lost beyond what the workers held when they stopped.
    assert counters.tasks_issued - counters.reports_accepted <= 2 * 3 * ENVS

    # The evaluator posted results for both test envs, the last one for the final checkpoint.
    evals = client.evaluations("dr")
    assert {e.env for e in evals} == {"FourRooms", "MiniGrid-Empty-8x8-v0"}
    assert evals[-1].env_steps == summary["env_steps"] and evals[-1].checkpoint
    assert summary["evaluation"]["posted"] is True

    # The checkpoint loads anywhere and `evaluate` scores it on a MiniGrid id and a maze.
    learner, meta = load_checkpoint(ckpt / "latest.pt")
    assert meta["env_steps"] == summary["env_steps"] and learner.updates == summary["updates"]
    for env in ("MiniGrid-FourRooms-v0", "Labyrinth"):
        code, out, err = finish(
            cli(
                "evaluate", "--checkpoint", str(ckpt / "latest.pt"), "--env", env, "--episodes", "3"
            )
        )
        assert code == 0, err
        res = json.loads(out)
        assert set(res) == {"env", "episodes", "solve_rate", "mean_return"}
        assert res["env"] == env and res["episodes"] == 3 and 0 <= res["solve_rate"] <= 1
    code, _, err = finish(cli("evaluate", "--checkpoint", str(ckpt / "latest.pt"), "--env", "X"))
    assert code == 1 and "unknown env 'X'" in err and "Traceback" not in err


def _pids_with(text: str) -> list[int]:
    return [pid for pid, cmd in cmdlines().items() if text in cmd and pid != os.getpid()]


def test_killing_a_rollout_worker_does_not_stop_training(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment("dr", SMALL_LEVELS, {"kind": "random"})
    proc = cli(*train_args(server.url, tmp_path / "ckpt", 12_000))
    deadline = time.monotonic() + 120
    while client.state("dr").counters.reports_accepted < 10:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no reports arrived"
        time.sleep(0.5)
    pids = actor_pids(proc.pid, "RolloutWorker")
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    at_kill = client.state("dr").counters.reports_accepted
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 12_000
    assert summary["worker_failures"] >= 1  # the killed worker's rollout was dropped...
    counters = client.state("dr").counters
    assert counters.reports_accepted > at_kill + 20  # ...and training went on
    # What each worker left unreported, from the history (tasks carry their worker's label).
    rows = read_export(httpx.get(f"{server.url}/v1/experiments/dr/export", timeout=60).content)
    worker_of = {r["index"]: r["worker"] for r in rows if r["type"] == "task"}
    reported = {r["index"] for r in rows if r["type"] == "report"}
    unreported = Counter(w for i, w in worker_of.items() if i not in reported)
    assert sum(unreported.values()) == counters.tasks_issued - counters.reports_accepted
    # A worker that ran to the end held at most its running and prefetched tasks when it
    # closed (its finished episodes were flushed).
    held = 3 * ENVS
    assert min(unreported.get(w, 0) for w in set(worker_of.values())) <= held, unreported
    # The killed one also lost what it held when it died: the same, plus finished episodes
    # whose reports still waited in its session's buffer (sent every 0.5 s, or 64 at once).
    failures = summary["worker_failures"]
    assert sum(unreported.values()) <= held * (2 + failures) + 64 * failures, unreported


def test_worker_masks_explore_tasks_and_reports_every_episode_with_scores() -> None:
    session = FakeSession()
    ppo = PPOConfig(num_steps=40, hidden=16)
    worker = RolloutWorker("unused", "x", session=session, num_envs=3, ppo=ppo, seed=1)
    weights = {k: v.clone() for k, v in worker.agent.state_dict().items()}
    explore_steps = train_steps = 0
    for _ in range(6):
        rollout, stats = worker.collect(weights)
        assert stats["env_steps"] == 120 and stats["train_steps"] == int(rollout.train_mask.sum())
        explore_steps += int((rollout.train_mask == 0).sum())
        train_steps += stats["train_steps"]
        assert np.isfinite(rollout.advantages).all()
    worker.close()
    modes = {t.id: t.mode for t in session.issued}
    assert session.reports and explore_steps > 0 and train_steps > 0
    # One report per finished episode, never twice, each with the three scores.
    ids = [r["task_id"] for r in session.reports]
    assert len(ids) == len(set(ids)) == worker.totals["episodes"]
    assert all(set(r["scores"]) == {"positive_value_loss", "l1_value_loss", "mean_value"}
               for r in session.reports)  # fmt: skip
    # Explore steps are exactly the steps of explore tasks' episodes.
    reported_explore = sum(r["length"] for r in session.reports if modes[r["task_id"]] == "explore")
    running_explore = explore_steps - reported_explore
    running = [worker.envs.envs[e].task for e in range(3)]
    assert running_explore == sum(
        int(worker.collector._len[e]) for e, t in enumerate(running) if t.mode == TaskMode.EXPLORE
    )
    assert torch.get_num_threads() == 1


def test_train_refuses_bad_input_with_a_message(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment(
        "boxy",
        {"kind": "box", "dims": [{"name": "x", "low": 0, "high": 1}]},
        {"kind": "random"},
    )
    client.create_experiment("lvl", SMALL_LEVELS, {"kind": "random"})
    cases = [
        (["--experiment", "boxy"], "level space"),
        (["--experiment", "lvl", "--workers", "2", "--num-cpus", "2"], "--num-cpus 2 is too few"),
        (["--experiment", "missing"], "no experiment"),
        (["--experiment", "boxy", "--lr", "-1"], "learning_rate"),
        (["--experiment", "boxy", "--workers", "0"], "--workers"),
        (["--experiment", "lvl", "--budget", "updates"], "--budget"),
        (["--experiment", "boxy", "--eval-env", "Nope-v9"], "unknown env"),
    ]
    for extra, message in cases:
        proc = cli("train", "--server", server.url, "--steps", "100",
                   "--checkpoint-dir", str(tmp_path / "c"), *extra)  # fmt: skip
        code, _, err = finish(proc, timeout=60)
        assert code == 1 and message in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "c" / "latest.pt").exists()


def test_train_joins_an_existing_cluster(server, tmp_path) -> None:
    """`--ray-address` joins a cluster started with `ray start` (on loopback, with Ray's
    default token authentication) instead of starting one."""
    client = TeacherClient(server.url)
    client.create_experiment("dr", SMALL_LEVELS, {"kind": "random"})
    ray_bin = Path(sys.executable).parent / "ray"
    port = str(free_port())
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token"}  # fmt: skip
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    start = [str(ray_bin), "start", "--head", "--port", port, "--node-ip-address", "127.0.0.1",
             "--num-cpus", "3", "--include-dashboard=false", "--temp-dir", temp]  # fmt: skip
    res = subprocess.run(start, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    try:
        args = train_args(
            server.url, tmp_path / "ckpt", 1000, "--ray-address", f"127.0.0.1:{port}",
            "--fixed-minibatch", "--minibatches", "2",
        )  # fmt: skip
        code, out, err = finish(cli(*args), timeout=240)
        assert code == 0, err[-3000:]
        summary = json.loads(out)
        # the PPO flags reach the learner (DR: nothing masked, so 5 epochs x 2 minibatches)
        assert summary["ppo"]["fixed_minibatch"] and summary["ppo"]["num_minibatches"] == 2
        assert summary["optimizer_steps"] == 10 * summary["updates"]
        assert summary["ray_gcs_address"] == f"127.0.0.1:{port}"
        assert summary["env_steps"] >= 1000 and summary["episodes"] > 0
        assert client.state("dr").counters.reports_accepted == summary["episodes"]
        # The cluster outlives the job: training joined it, it did not own it.
        status = subprocess.run([str(ray_bin), "status", "--address", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert status.returncode == 0, status.stderr[-2000:]
        code, _, err = finish(cli(*train_args(server.url, tmp_path / "c2", 10, "--ray-address",
                                              "127.0.0.1:1")), timeout=120)  # fmt: skip
        assert code == 1 and "could not join the Ray cluster" in err and "Traceback" not in err
    finally:
        # Stop this cluster only (`ray stop` would stop every Ray cluster of the user).
        for _ in range(3):
            for pid in _pids_with(temp):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        assert not _pids_with(temp)


def test_killing_the_learner_resumes_from_the_last_checkpoint(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment("dr", SMALL_LEVELS, {"kind": "random"})
    ckpt = tmp_path / "ckpt" / "latest.pt"
    proc = cli(*train_args(server.url, ckpt.parent, 8000, "--eval-interval", "0"))
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.2)
    pids = actor_pids(proc.pid, "LearnerActor")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 8000
    assert summary["learner_failures"] >= 1 and summary["learner_resumed"] is True
    learner, meta = load_checkpoint(ckpt)
    assert meta["env_steps"] == summary["env_steps"] and learner.updates >= 2
