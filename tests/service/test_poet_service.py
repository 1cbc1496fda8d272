"""The ``poet`` teacher over HTTP: tasks name their agent and ``init_from``; a server SIGKILLed
while POET's checks are in flight comes back with the same population and the same next
proposals as a twin that was never killed; the export carries ``init_from``."""

from __future__ import annotations

import json
import zlib

import httpx

LEVEL = {"kind": "level", "generator": "minigrid", "config": {"size": 7, "max_walls": 6}}

TEACHER = {
    "kind": "poet",
    "iteration_episodes": 2,
    "eval_episodes": 2,
    "transfer_every": 1,
    "reproduce_every": 1,
    "repro_threshold": 0.3,
    "mc_low": 0.1,
    "mc_high": 0.95,
    "fine_tune_episodes": 2,
    "max_active": 3,
    "max_children": 3,
}
BATCH = 4


def answer(task: dict) -> dict:
    """A deterministic student: the agent, the level and the mode decide the return (no
    ``success``, so that scores are mean returns, not all-or-nothing)."""
    key = json.dumps([task["agent_id"], task["level"], task["mode"]]).encode()
    ret = zlib.crc32(key) % 1000 / 1000
    return {"task_id": task["id"], "episode_return": ret}


def create(c: httpx.Client) -> None:
    body = {"name": "poet", "space": LEVEL, "teacher": TEACHER, "seed": 5}
    r = c.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text


def step(c: httpx.Client) -> list[dict]:
    tasks = c.post("/v1/experiments/poet/tasks", json={"n": BATCH}).json()["tasks"]
    r = c.post("/v1/experiments/poet/reports", json={"reports": [answer(t) for t in tasks]})
    assert r.json()["accepted"] == BATCH, r.text
    return tasks


def plain(tasks: list[dict]) -> list[tuple]:
    return [(t["agent_id"], t["init_from"], t["mode"], t["level"]) for t in tasks]


def test_sigkill_mid_checks_gives_the_same_population_and_proposals(
    server_factory, tmp_path
) -> None:
    victim = server_factory(f"sqlite:///{tmp_path / 'victim.db'}", extra=["--snapshot-every", "5"])
    twin = server_factory(f"sqlite:///{tmp_path / 'twin.db'}")
    with (
        httpx.Client(base_url=victim.url, timeout=30) as cv,
        httpx.Client(base_url=twin.url, timeout=30) as ct,
    ):
        create(cv)
        create(ct)
        checks_seen = False
        for _ in range(400):
            assert plain(step(cv)) == plain(step(ct))
            view = cv.get("/v1/experiments/poet/state").json()["teacher"]
            busy = view["checks"] != {"transfer": "idle", "reproduction": "idle"}
            if len(view["pairs"]) > 1 and (view["admitted"] or view["transfer_count"]) and busy:
                checks_seen = True
                break
        assert checks_seen, "the run should reach a population with checks in flight"
        victim.kill()
        victim.start()
        state = cv.get("/v1/experiments/poet/state").json()["teacher"]
        assert state == ct.get("/v1/experiments/poet/state").json()["teacher"]
        for _ in range(30):  # the loop goes on identically, checks and all
            assert plain(step(cv)) == plain(step(ct))
        after = cv.get("/v1/experiments/poet/state").json()["teacher"]
        assert after == ct.get("/v1/experiments/poet/state").json()["teacher"]
        assert after["iteration"] > state["iteration"]

        # the tasks of an agent made from another carry init_from, in the export too
        rows = [
            json.loads(line)
            for line in cv.get("/v1/experiments/poet/export?format=jsonl").text.splitlines()
        ]
        tasks = [r for r in rows if r.get("type") == "task"]
        made = {p["agent_id"]: p["init_from"] for p in after["pairs"] if p["init_from"]}
        assert made, "some pair's agent was made from another"
        agent, origin = next(iter(made.items()))
        mine = [r for r in tasks if r["agent_id"] == agent]
        assert mine and all(r["init_from"] == origin for r in mine)
        assert all(r["init_from"] is None for r in tasks if r["agent_id"] == "agent-0")
