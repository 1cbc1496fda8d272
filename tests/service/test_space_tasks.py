"""Growing a discrete task set mid-run over HTTP: ``POST /v1/experiments/{id}/space/tasks``,
refused with a clear 422 where it cannot apply, logged, exported, and replayed identically
after a SIGKILL (the restarted server continues like a twin that was never killed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from teacher_service.client import TeacherClient, read_export
from tests.conftest import BOX2

SPACE = {
    "kind": "discrete",
    "tasks": [{"name": f"t{i}", "description": f"task number {i}"} for i in range(4)],
}
NEW = [
    {"name": "boat", "description": "sail a boat", "category": "water"},
    {"name": "swim", "description": "swim across the lake", "category": "water"},
]
TEACHER = {"kind": "omni", "model": "tfidf", "eval_episodes": 2, "eval_interval": 8}


def drive(c: TeacherClient, exp: str, rounds: int) -> list[dict]:
    """``rounds`` of 6 tasks, each reported (success for even task numbers)."""
    issued = []
    for _ in range(rounds):
        tasks = c.sample(exp, 6)
        issued += [t.model_dump(mode="json", exclude={"id", "lease_expires_at"}) for t in tasks]
        c.report(
            exp,
            [
                {"task_id": t.id, "episode_return": 1.0, "success": t.params["task"][-1] in "02n"}
                for t in tasks
            ],
        )
    return issued


def run_script(c: TeacherClient, exp: str) -> None:
    drive(c, exp, 3)
    assert c.add_tasks(exp, NEW).model_dump() == {"added": 2, "tasks": 6}
    drive(c, exp, 3)


def test_tasks_join_a_running_experiment_and_survive_sigkill(server_factory, tmp_path) -> None:
    victim = server_factory(f"sqlite:///{tmp_path / 'victim.db'}")
    twin = server_factory(f"sqlite:///{tmp_path / 'twin.db'}")
    states = []
    for srv in (victim, twin):
        with TeacherClient(srv.url) as c:
            exp = c.create_experiment("grow", SPACE, TEACHER, seed=4).id
            run_script(c, exp)
            states.append(c.state("grow"))
            shown = c.get_experiment("grow")
            assert [t.name for t in shown.space.tasks][-2:] == ["boat", "swim"]
            assert shown.space.tasks[-1].category == "water"
    # the new tasks were measured (evaluate tasks) and judged by the model of interestingness
    view = {t["task"]: t for t in states[0].teacher["tasks"]}
    assert view["boat"]["raw_success"] is not None and "interesting" in view["swim"]

    victim.kill()
    victim.start()
    with TeacherClient(victim.url) as a, TeacherClient(twin.url) as b:
        assert a.state("grow").teacher == states[0].teacher == b.state("grow").teacher
        assert [t.name for t in a.get_experiment("grow").space.tasks] == [
            "t0", "t1", "t2", "t3", "boat", "swim",
        ]  # fmt: skip
        assert drive(a, "grow", 2) == drive(b, "grow", 2)
        rows = read_export(a.export("grow", tmp_path / "grow.jsonl"))
    space_rows = [r for r in rows if r["type"] == "space"]
    assert len(space_rows) == 1 and space_rows[0]["tasks"] == NEW


def test_what_cannot_join_is_refused_and_changes_nothing(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        assert (
            c.post(
                "/v1/experiments", json={"name": "g", "space": SPACE, "teacher": {"kind": "sec"}}
            ).status_code
            == 201
        )
        assert (
            c.post(
                "/v1/experiments",
                json={"name": "gbox", "space": BOX2, "teacher": {"kind": "random"}},
            ).status_code
            == 201
        )
        before = c.get("/v1/experiments/g").json()
        cases = [
            ("g", {"tasks": [{"name": "t1"}]}, "taken"),
            ("g", {"tasks": [{"name": "x"}, {"name": "x"}]}, "repeat"),
            ("g", {"tasks": []}, "tasks"),
            ("g", {"tasks": [{"name": "bad name!"}]}, "name"),
            ("gbox", {"tasks": [{"name": "x"}]}, "discrete"),
        ]
        for exp, body, word in cases:
            r = c.post(f"/v1/experiments/{exp}/space/tasks", json=body)
            assert r.status_code == 422 and word in r.text, (body, r.text)
        assert (
            c.post("/v1/experiments/nope/space/tasks", json={"tasks": [{"name": "x"}]}).status_code
            == 404
        )
        after = c.get("/v1/experiments/g").json()
        assert after == before and after["counters"]["events"] == 0


def test_the_cli_adds_tasks(shared_server, tmp_path: Path) -> None:
    with TeacherClient(shared_server.url) as c:
        c.create_experiment("gcli", SPACE, {"kind": "random"})
    spec = tmp_path / "new.json"
    spec.write_text(json.dumps(NEW))
    cmd = [sys.executable, "-m", "teacher_service", "experiments", "add-tasks", "gcli"]
    cmd += ["--tasks", f"@{spec}", "--server", shared_server.url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"added": 2, "tasks": 6}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)  # again: taken
    assert res.returncode == 1 and "taken" in res.stderr and "Traceback" not in res.stderr
