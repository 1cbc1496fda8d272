"""Level spaces and the level teachers (PLR, ACCEL, PAIRED) over HTTP against a real server;
their rules are tested directly in tests/unit."""

from __future__ import annotations

import httpx
import pytest

from env_generators.levels import Level, is_solvable
from tests.unit.test_paired_teacher import _space


def create(c: httpx.Client, name: str, teacher: dict, seed: int = 3) -> None:
    space = {"kind": "level", "generator": "minigrid", "config": {"size": 9, "max_walls": 10}}
    r = c.post(
        "/v1/experiments", json={"name": name, "space": space, "teacher": teacher, "seed": seed}
    )
    assert r.status_code == 201, r.text


def fake_report(task: dict) -> dict:
    """A deterministic student: scores from the level's wall count."""
    walls = task["level"].count("#")
    return {
        "task_id": task["id"],
        "episode_return": round((walls % 7) / 7, 6),
        "scores": {
            "positive_value_loss": round((walls % 11) / 11, 6),
            "l1_value_loss": round((walls % 5) / 5, 6),
            "mean_value": round((walls % 3) / 3, 6),
        },
    }


def step(c: httpx.Client, exp: str, n: int = 6) -> list[dict]:
    tasks = c.post(f"/v1/experiments/{exp}/tasks", json={"n": n}).json()["tasks"]
    r = c.post(f"/v1/experiments/{exp}/reports", json={"reports": [fake_report(t) for t in tasks]})
    assert r.status_code == 200 and r.json()["accepted"] == n, r.text
    return tasks


def test_level_space_over_http(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        body = {
            "name": "levels",
            "space": {"kind": "level", "config": {"max_walls": 30, "solvable": True}},
            "teacher": {"kind": "random"},
            "seed": 4,
        }
        assert c.post("/v1/experiments", json=body).status_code == 201
        tasks = c.post("/v1/experiments/levels/tasks", json={"n": 5}).json()["tasks"]
        assert len(tasks) == 5 and all(t["params"] is None for t in tasks)
        for t in tasks:
            level = Level.parse(t["level"])
            assert level.width == 15 and is_solvable(level)
        reports = [
            {"task_id": t["id"], "episode_return": 0.5, "success": True, "length": 30}
            for t in tasks
        ]
        ack = c.post("/v1/experiments/levels/reports", json={"reports": reports}).json()
        assert ack["accepted"] == 5
        # Same seed, same levels (determinism through the service).
        body2 = {**body, "name": "levels2"}
        c.post("/v1/experiments", json=body2)
        again = c.post("/v1/experiments/levels2/tasks", json={"n": 5}).json()["tasks"]
        assert [t["level"] for t in again] == [t["level"] for t in tasks]
        # Bad generator configs and teachers that cannot serve levels: 422 with a reason.
        bad = {**body, "name": "bad", "space": {"kind": "level", "config": {"max_walls": 999}}}
        r = c.post("/v1/experiments", json=bad)
        assert r.status_code == 422 and "max_walls" in r.json()["detail"]
        bad = {**body, "name": "bad", "space": {"kind": "level", "generator": "nope"}}
        r = c.post("/v1/experiments", json=bad)
        assert r.status_code == 422 and "unknown level generator" in r.json()["detail"]
        bad = {**body, "name": "bad", "teacher": {"kind": "alp_gmm"}}
        r = c.post("/v1/experiments", json=bad)
        assert r.status_code == 422 and "does not accept 'level'" in r.json()["detail"]


def test_paired_over_http(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        kinds = {t["kind"]: t for t in c.get("/v1/teachers").json()["data"]}
        assert kinds["paired"]["spaces"] == ["level"]
        props = kinds["paired"]["hyperparameters"]["properties"]
        assert props["update_every"]["default"] == 32
        r = c.post(
            "/v1/experiments",
            json={
                "name": "paired",
                "space": {"kind": "level", "generator": "minigrid", "config": _space().config},
                "teacher": {"kind": "paired", "update_every": 2},
                "seed": 4,
            },
        )
        assert r.status_code == 201, r.text
        eid = r.json()["id"]
        returns = {"protagonist": [0.2, 0.4], "antagonist": [0.9, 0.1]}  # regret 0.6
        for _ in range(2):
            tasks = c.post(f"/v1/experiments/{eid}/tasks", json={"n": 4}).json()["tasks"]
            assert [t["role"] for t in tasks] == ["protagonist", "antagonist"] * 2
            assert len({t["level"] for t in tasks}) == 1
            Level.parse(tasks[0]["level"])
            seen = {"protagonist": 0, "antagonist": 0}
            reports = []
            for t in tasks:
                reports.append(
                    {"task_id": t["id"], "episode_return": returns[t["role"]][seen[t["role"]]]}
                )
                seen[t["role"]] += 1
            ack = c.post(f"/v1/experiments/{eid}/reports", json={"reports": reports}).json()
            assert ack["accepted"] == 4
        state = c.get(f"/v1/experiments/{eid}/state").json()
        assert state["teacher_kind"] == "paired"
        view = state["teacher"]
        assert view["levels_completed"] == 2 and view["adversary_updates"] == 1
        assert view["mean_regret"] == pytest.approx(0.6)
        assert view["top_levels"][0]["regret"] == pytest.approx(0.6)


def test_report_without_the_score_is_422_and_changes_nothing(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        create(c, "plr422", {"kind": "plr", "buffer_size": 8})
        tasks = c.post("/v1/experiments/plr422/tasks", json={"n": 2}).json()["tasks"]
        assert {t["mode"] for t in tasks} == {"explore"}
        assert tasks[0]["params"]["origin"] == "new"
        before = c.get("/v1/experiments/plr422/state").json()
        good = fake_report(tasks[0])
        bad = {"task_id": tasks[1]["id"], "episode_return": 0.5, "scores": {"mean_value": 0.1}}
        r = c.post("/v1/experiments/plr422/reports", json={"reports": [good, bad]})
        assert r.status_code == 422 and "positive_value_loss" in r.json()["detail"]
        after = c.get("/v1/experiments/plr422/state").json()
        assert after["counters"] == before["counters"] and after["teacher"] == before["teacher"]
        r = c.post("/v1/experiments/plr422/reports", json={"reports": [good]})
        assert r.json()["accepted"] == 1
        teacher = c.get("/v1/experiments/plr422/state").json()["teacher"]
        assert teacher["buffer"]["size"] == 1 and teacher["top_levels"][0]["level"]


@pytest.mark.parametrize(
    "teacher",
    [
        {"kind": "plr", "buffer_size": 12},
        {"kind": "accel", "buffer_size": 12, "edit_batch": 4, "edit_parents": 2},
    ],
)
def test_killed_server_continues_like_a_twin(server_factory, tmp_path, teacher: dict) -> None:
    victim = server_factory(f"sqlite:///{tmp_path / 'v.db'}", extra=["--snapshot-every", "5"])
    twin = server_factory(f"sqlite:///{tmp_path / 't.db'}")
    with (
        httpx.Client(base_url=victim.url, timeout=30) as cv,
        httpx.Client(base_url=twin.url, timeout=30) as ct,
    ):
        create(cv, "ued", teacher)
        create(ct, "ued", teacher)
        for _ in range(15):
            assert [t["level"] for t in step(cv, "ued")] == [t["level"] for t in step(ct, "ued")]
        victim.kill()
        victim.start()
        cv = httpx.Client(base_url=victim.url, timeout=30)
        view = cv.get("/v1/experiments/ued/state").json()["teacher"]
        assert view == ct.get("/v1/experiments/ued/state").json()["teacher"]
        assert view["replay_rate"] > 0 and view["buffer"]["size"] == 12
        for _ in range(10):
            got, want = step(cv, "ued"), step(ct, "ued")
            assert [(t["level"], t["mode"], t["params"]) for t in got] == [
                (t["level"], t["mode"], t["params"]) for t in want
            ]
        cv.close()
