"""``autocurriculum train`` on a ``poet`` experiment: a real server, a real local Ray cluster,
real MiniGrid. The students train the teacher's changing population of agents, share them
through the agents store, and a job killed mid-run is continued by the next one from the store
(docs/poet.md)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from student_workers.checkpoints import load_checkpoint
from teacher_service.client import TeacherClient
from tests.students.helpers import STARTED, actor_pids, cli, descendants, finish

#: Tiny levels (short episodes: the teacher's loop turns over in seconds).
TINY_LEVELS = {"kind": "level", "generator": "minigrid", "config": {"size": 5, "max_walls": 1}}
#: A quick POET loop: every iteration transfers and reproduces, any score passes the criterion.
QUICK_POET = {
    "kind": "poet", "iteration_episodes": 4, "eval_episodes": 2, "transfer_every": 1,
    "reproduce_every": 1, "repro_threshold": 0.0, "mc_low": 0.0, "mc_high": 1.0,
    "fine_tune_episodes": 2,
}  # fmt: skip


def poet_train_args(url: str, ckpt: Path, steps: int, *extra: str) -> list[str]:
    """``train`` on the experiment ``poet``: 1 worker of 4 envs, short rollouts, a small
    network, evaluations on an easy MiniGrid env."""
    return [
        "train", "--server", url, "--experiment", "poet", "--workers", "1",
        "--envs-per-worker", "4", "--steps", str(steps), "--checkpoint-dir", str(ckpt),
        "--num-steps", "32", "--epochs", "1", "--hidden", "32",
        "--eval-env", "MiniGrid-Empty-5x5-v0", "--eval-interval", "5", "--eval-episodes", "2",
        "--checkpoint-interval", "5", *extra,
    ]  # fmt: skip


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_grows_and_stores_a_population_of_agents(server, tmp_path: Path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment("poet", TINY_LEVELS, QUICK_POET, seed=1)
    ckpt = tmp_path / "ckpt"
    code, out, err = finish(cli(*poet_train_args(server.url, ckpt, 12_000)))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 12_000 and summary["worker_failures"] == 0
    assert json.loads((ckpt / "summary.json").read_text()) == summary

    # The teacher grew its population beyond the first pair, and the students trained it.
    view = client.state("poet").teacher
    assert len(view["pairs"]) >= 2 and view["admitted"] + view["transfer_count"] >= 1, view
    population = summary["population"]
    assert len(population) >= 2
    assert population["agent-0"]["source"] == "fresh"
    init_from = {p["agent_id"]: p["init_from"] for p in view["pairs"]}
    for agent_id, agent in population.items():
        assert agent["resumed_from_store"] is False, agent_id
        if agent_id != "agent-0":  # made from another agent: a copy of its weights
            assert agent["source"] == "init_from" and agent["init_from"], agent_id
        if agent_id in init_from:
            assert agent["init_from"] == init_from[agent_id]
        # an agent trains iff it has train steps (one admitted in the last round may have none)
        assert (agent["updates"] > 0) == (agent["trained_steps"] > 0), agent_id
    trained = [a for a in view["agents"]["active"] if population.get(a, {}).get("updates", 0) > 0]
    assert len(trained) >= 2, population
    assert sum(a["episodes"] for a in population.values()) == summary["episodes"]
    assert sum(a["trained_steps"] for a in population.values()) == summary["trained_steps"]
    assert client.state("poet").counters.reports_accepted == summary["episodes"]

    # Every agent that trained is in the store, as its latest weights, and saved locally.
    stored = {a.agent_id: a.version for a in client.list_agents("poet")}
    assert len(stored) >= 2 and summary["agents_stored"] == stored
    for agent_id, agent in population.items():
        if agent["updates"]:
            assert stored[agent_id] == agent["stored_version"], agent_id
        if agent_id not in stored:
            continue
        client.get_agent("poet", agent_id, path=tmp_path / f"{agent_id}.pt")
        downloaded, meta = load_checkpoint(tmp_path / f"{agent_id}.pt")
        local, _ = load_checkpoint(ckpt / "agents" / f"{agent_id}.pt")
        assert meta["agent_id"] == agent_id and meta["actions"] == "navigation"
        assert same_weights(downloaded.weights(), local.weights()), agent_id
        assert downloaded.updates == agent["total_updates"] or agent["retired"]
    # latest.pt is an active pair's agent (the best-scoring one when the run ended; the
    # reports flushed after that may have moved the scores), the one evaluated.
    latest, meta = load_checkpoint(ckpt / "latest.pt")
    assert meta["agent_id"] == summary["latest_agent"] == summary["evaluation"]["agent"]
    assert summary["latest_agent"] in {p["agent_id"] for p in view["pairs"]}
    local, _ = load_checkpoint(ckpt / "agents" / f"{meta['agent_id']}.pt")
    assert same_weights(latest.weights(), local.weights())
    # A downloaded agent scores with `autocurriculum evaluate`.
    other = next(a for a in stored if a != "agent-0")
    args = ["evaluate", "--checkpoint", str(tmp_path / f"{other}.pt"),
            "--env", "MiniGrid-Empty-5x5-v0", "--episodes", "2"]  # fmt: skip
    code, out, err = finish(cli(*args))
    assert code == 0, err[-2000:]
    assert json.loads(out)["episodes"] == 2


def test_archived_agents_are_retired_with_their_final_weights_stored(server, tmp_path) -> None:
    # One active pair: every admission archives the pair before it, so its agent leaves.
    client = TeacherClient(server.url)
    client.create_experiment("poet", TINY_LEVELS, {**QUICK_POET, "max_active": 1}, seed=3)
    ckpt = tmp_path / "ckpt"
    code, out, err = finish(cli(*poet_train_args(server.url, ckpt, 12_000)))
    assert code == 0, err[-3000:]
    population = json.loads(out)["population"]
    agents = client.state("poet").teacher["agents"]
    assert len(agents["active"]) == 1 and len(agents["archived"]) >= 1, agents
    stored = {a.agent_id: a.version for a in client.list_agents("poet")}
    trained_archived = [a for a in agents["archived"] if population[a]["updates"] > 0]
    assert trained_archived, population
    for agent_id in trained_archived:
        agent = population[agent_id]
        # the learner let it go (it may come back for evaluate tasks, and go again)
        assert agent["retirements"] >= 1, agent_id
        # its final weights are in the store: every update it had, and the local file's
        assert stored[agent_id] == agent["stored_version"], agent_id
        client.get_agent("poet", agent_id, path=tmp_path / f"{agent_id}.pt")
        downloaded, meta = load_checkpoint(tmp_path / f"{agent_id}.pt")
        local, _ = load_checkpoint(ckpt / "agents" / f"{agent_id}.pt")
        assert meta["agent_id"] == agent_id and downloaded.updates == agent["updates"]
        assert same_weights(downloaded.weights(), local.weights()), agent_id
    # the active pair's agent was never let go (one admitted at the very end may not have
    # played yet)
    (active,) = agents["active"]
    assert population.get(active, {"retirements": 0})["retirements"] == 0


def test_a_killed_training_job_is_continued_from_the_agents_store(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment("poet", TINY_LEVELS, QUICK_POET, seed=1)
    ckpt = tmp_path / "ckpt"
    # In a process group of its own, so that kill -9 of the group takes the whole job down.
    first = subprocess.Popen(
        [sys.executable, "-m", "student_workers", *poet_train_args(server.url, ckpt, 100_000)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    STARTED.append(first)
    deadline = time.monotonic() + 120
    while len(client.list_agents("poet")) < 2:
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "fewer than 2 agents were stored"
        time.sleep(0.5)
    job = descendants(first.pid)  # its Ray processes too: they may sit in other groups
    os.killpg(first.pid, signal.SIGKILL)
    for pid in job:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    first.communicate(timeout=60)
    before = {a.agent_id: a.version for a in client.list_agents("poet")}
    alive = client.state("poet").teacher["agents"]
    alive = set(alive["active"]) | set(alive["candidates"])
    assert len(before) >= 2

    # A new job on the same experiment takes the live agents up from the store and goes on.
    code, out, err = finish(cli(*poet_train_args(server.url, ckpt, 3000)))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    population = summary["population"]
    resumed = {a for a, agent in population.items() if agent["resumed_from_store"]}
    assert resumed == alive & set(before) and len(resumed) >= 2, (resumed, alive, before)
    for agent_id in resumed:
        agent = population[agent_id]
        assert agent["source"] == "store"
        if agent["updates"]:  # its update count went on from the stored checkpoint's
            assert agent["total_updates"] > agent["updates"], agent_id
    after = summary["agents_stored"]
    assert after == {a.agent_id: a.version for a in client.list_agents("poet")}
    assert all(after[a] >= v for a, v in before.items())
    assert any(after[a] > v for a, v in before.items())  # stored versions keep growing


def test_a_killed_population_learner_takes_its_agents_up_from_the_store(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    client.create_experiment("poet", TINY_LEVELS, QUICK_POET, seed=1)
    proc = cli(*poet_train_args(server.url, tmp_path / "ckpt", 8000, "--eval-interval", "0"))
    deadline = time.monotonic() + 120
    while not any(a.version >= 3 for a in client.list_agents("poet")):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no agent was stored"
        time.sleep(0.2)
    pids = actor_pids(proc.pid, "PopulationLearner")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 8000 and summary["learner_failures"] >= 1
    assert summary["learner_resumed"] is True
    # agent-0 went on from its stored checkpoint, not from scratch: its update count in the
    # learner matches the driver's (at most the update in flight at the kill was lost).
    agent = summary["population"]["agent-0"]
    assert agent["source"] == "fresh" and agent["updates"] > 3
    assert agent["updates"] - 1 <= agent["total_updates"] <= agent["updates"]
    assert summary["agents_stored"]["agent-0"] == agent["stored_version"]
