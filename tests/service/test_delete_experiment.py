"""``DELETE /v1/experiments/{id}``: everything stored for an experiment goes, durably, on
SQLite and PostgreSQL; requests racing the delete get 2xx or 404 and leave no orphan rows;
its dashboard stream ends; a storage failure is a 503 that loses nothing; the client's
``delete_experiment`` and ``autocurriculum experiments delete``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from teacher_service.client import NotFoundError, TeacherClient, read_export
from teacher_service.storage import ExperimentRecord, Store
from teacher_service.storage.store import ExperimentGoneError
from teacher_service.storage.tables import agents, evaluations, events, experiments, snapshots
from tests.conftest import BOX2
from tests.helpers import in_process

TOKEN = "d3l3te"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVAL = {"env": "Labyrinth", "episodes": 10, "solve_rate": 0.3, "mean_return": 0.21}
#: Every table with rows of an experiment, and the column naming the experiment.
TABLES = {
    "experiments": experiments.c.id,
    "events": events.c.experiment_id,
    "snapshots": snapshots.c.experiment_id,
    "evaluations": evaluations.c.experiment_id,
    "agents": agents.c.experiment_id,
}
NONE = dict.fromkeys(TABLES, 0)


# ------------------------------------------------------------------------- helpers
def rows_of(db_url: str, experiment_id: str) -> dict[str, int]:
    """How many rows each table holds for the experiment, read directly from the database."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(
                    select(func.count()).select_from(col.table).where(col == experiment_id)
                ).scalar_one()
                for name, col in TABLES.items()
            }
    finally:
        engine.dispose()


def create(c: httpx.Client, name: str, teacher: str = "random") -> str:
    r = c.post("/v1/experiments", json={"name": name, "space": BOX2, "teacher": {"kind": teacher}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def fill(c: httpx.Client, exp: str, rounds: int = 6) -> None:
    """Tasks and reports (2 events a round), two evaluation posts and two agents."""
    for k in range(rounds):
        tasks = c.post(f"/v1/experiments/{exp}/tasks", json={"n": 3}).json()["tasks"]
        body = {"reports": [{"task_id": t["id"], "episode_return": 0.1 * k} for t in tasks]}
        assert c.post(f"/v1/experiments/{exp}/reports", json=body).json()["accepted"] == 3
    for _ in range(2):
        r = c.post(f"/v1/experiments/{exp}/evaluations", json={"evaluations": [EVAL, EVAL]})
        assert r.status_code == 201, r.text
    for agent, data in (("protagonist", b"p" * 5000), ("antagonist", b"a" * 300)):
        r = c.put(f"/v1/experiments/{exp}/agents/{agent}", content=data)
        assert r.status_code == 200, r.text


def export_rows(c: httpx.Client, exp: str) -> list[dict[str, Any]]:
    """The experiment's export, without the time it was made."""
    rows = read_export(c.get(f"/v1/experiments/{exp}/export").content)
    rows[0].pop("exported_at")
    return rows


def assert_gone(c: httpx.Client, name: str, old_id: str) -> None:
    for key in (name, old_id):
        for path in ("", "/state", "/agents", "/evaluations", "/export", "/dashboard"):
            r = c.get(f"/v1/experiments/{key}{path}")
            assert r.status_code == 404, (path, r.text)
    assert name not in [e["name"] for e in c.get("/v1/experiments").json()["data"]]


def assert_fresh(c: httpx.Client, name: str, old_id: str) -> None:
    """A new experiment of the same name shares nothing with the deleted one."""
    new_id = create(c, name)
    assert new_id != old_id
    exp = c.get(f"/v1/experiments/{name}").json()
    assert exp["id"] == new_id
    assert set(exp["counters"].values()) == {0}
    assert c.get(f"/v1/experiments/{name}/agents").json() == {"data": [], "count": 0}
    assert c.get(f"/v1/experiments/{name}/evaluations").json() == {"data": [], "count": 0}
    rows = read_export(c.get(f"/v1/experiments/{name}/export").content)
    assert len(rows) == 1 and rows[0]["type"] == "experiment" and rows[0]["id"] == new_id
    task = c.post(f"/v1/experiments/{name}/tasks", json={"n": 1}).json()["tasks"][0]
    assert task["id"] == f"{new_id}-0"


# ------------------------------------------------------------------------- durable
def test_delete_removes_everything_and_survives_sigkill(server_factory, db_url: str) -> None:
    srv = server_factory(db_url, extra=["--snapshot-every", "5"])
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        old_id = create(c, "doomed")
        keep_id = create(c, "keeper")
        fill(c, "doomed")
        fill(c, "keeper", rounds=3)
        stored = rows_of(db_url, old_id)
        assert all(stored.values()), stored  # snapshots included
        assert stored["agents"] == 2 and stored["evaluations"] == 4
        kept = rows_of(db_url, keep_id)
        keeper = c.get("/v1/experiments/keeper").json()
        r = c.delete("/v1/experiments/doomed")
        assert r.status_code == 204 and r.content == b""
    srv.kill()  # right after the answer: 204 means committed
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        assert_gone(c, "doomed", old_id)
        assert rows_of(db_url, old_id) == NONE
        # The other experiment is untouched.
        assert rows_of(db_url, keep_id) == kept
        assert c.get("/v1/experiments/keeper").json() == keeper
        assert_fresh(c, "doomed", old_id)


def test_unknown_or_second_delete_is_404(server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.delete("/v1/experiments/nope-never")
        assert r.status_code == 404 and "nope-never" in r.json()["detail"]
        exp_id = create(c, "twice")
        assert c.delete(f"/v1/experiments/{exp_id}").status_code == 204  # by id
        for key in ("twice", exp_id):
            r = c.delete(f"/v1/experiments/{key}")
            assert r.status_code == 404 and key in r.json()["detail"]


def test_token_is_required(server_factory, sqlite_url: str) -> None:
    srv = server_factory(sqlite_url, token=TOKEN)
    with httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        exp_id = create(c, "guarded")
        fill(c, "guarded", rounds=2)
        before = rows_of(sqlite_url, exp_id)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.delete(f"{srv.url}/v1/experiments/guarded", headers=headers, timeout=60)
        assert r.status_code == 401 and r.json()["detail"]
    assert rows_of(sqlite_url, exp_id) == before
    with httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert c.get("/v1/experiments/guarded").status_code == 200
        assert c.delete("/v1/experiments/guarded").status_code == 204
    assert rows_of(sqlite_url, exp_id) == NONE


# ------------------------------------------------------------------------- races
def _hammer(url: str, name: str, stop: threading.Event, codes: Counter, lock: threading.Lock):
    """A worker that keeps writing to ``name`` every way there is, counting the answers."""

    def run(kind: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            k = 0
            while not stop.is_set():
                k += 1
                base = f"/v1/experiments/{name}"
                if kind == 0:
                    r = c.post(f"{base}/tasks", json={"n": 2})
                    got = [r.status_code]
                    if r.status_code == 200:
                        tasks = r.json()["tasks"]
                        reps = [{"task_id": t["id"], "episode_return": 0.5} for t in tasks]
                        got.append(c.post(f"{base}/reports", json={"reports": reps}).status_code)
                elif kind == 1:
                    data = f"agent bytes {k}".encode() * 50
                    got = [c.put(f"{base}/agents/a{k % 3}", content=data).status_code]
                elif kind == 2:
                    got = [c.post(f"{base}/evaluations", json={"evaluations": [EVAL]}).status_code]
                else:
                    got = [c.get(f"{base}/state").status_code]
                    got.append(c.get(f"{base}/dashboard").status_code)
                with lock:
                    codes.update(got)

    return [threading.Thread(target=run, args=(kind,)) for kind in (0, 0, 1, 1, 2, 3)]


def test_requests_racing_the_delete_leave_no_orphans(server_factory, db_url: str) -> None:
    srv = server_factory(db_url, extra=["--snapshot-every", "5"])
    codes: Counter = Counter()
    lock = threading.Lock()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        for round_ in range(3):
            name = f"race{round_}"
            exp_id = create(c, name, teacher="alp_gmm")
            stop = threading.Event()
            threads = _hammer(srv.url, name, stop, codes, lock)
            for t in threads:
                t.start()
            time.sleep(0.4 + 0.2 * round_)
            assert c.delete(f"/v1/experiments/{name}").status_code == 204
            time.sleep(0.3)  # the workers keep trying on the deleted experiment
            stop.set()
            for t in threads:
                t.join(timeout=60)
            assert rows_of(db_url, exp_id) == NONE, round_
            assert c.get(f"/v1/experiments/{exp_id}").status_code == 404
    assert set(codes) <= {200, 201, 404}, codes
    assert codes[200] > 0 and codes[201] > 0 and codes[404] > 0, codes


def test_store_refuses_writes_queued_after_a_delete(tmp_path: Path) -> None:
    """The store's fence, with the writes before and after the delete in one group commit."""
    url = f"sqlite:///{tmp_path / 'ac.db'}"
    store = Store(url)
    try:
        for exp in ("gone", "other"):
            rec = ExperimentRecord(exp, f"n-{exp}", {"space": BOX2}, time.time())
            store.create_experiment(rec).result()
        # Hold the writer so that everything below is drained as one group.
        release = threading.Event()
        inner = store._commit_writes
        first = [True]

        def held(ops: list) -> None:
            if first[0]:
                first[0] = False
                release.wait(30)
            inner(ops)

        store._commit_writes = held  # type: ignore[method-assign]
        store.append_event("other", 1, "tasks", b"{}")
        time.sleep(0.2)  # the writer is now held on that first write
        before = [
            store.append_event("gone", 1, "tasks", b"{}"),
            store.put_snapshot("gone", 1, {"seq": 1}),
            store.add_evaluations("gone", ['{"x": 1}']),
            store.put_agent("gone", "a", b"bytes"),
        ]
        deleted = store.delete_experiment("gone")
        after = [
            store.append_event("gone", 2, "tasks", b"{}"),
            store.put_snapshot("gone", 2, {"seq": 2}),
            store.add_evaluations("gone", ['{"x": 2}']),
            store.put_agent("gone", "b", b"more"),
        ]
        other = store.append_event("other", 2, "reports", b"{}")
        release.set()
        for fut in before:
            fut.result(30)
        assert deleted.result(30) is None
        for fut in after:
            with pytest.raises(ExperimentGoneError, match="gone was deleted"):
                fut.result(30)
        other.result(30)
        store.barrier().result(30)
        assert rows_of(url, "gone") == NONE
        assert rows_of(url, "other") == {**NONE, "experiments": 1, "events": 2}
    finally:
        store.close()


def test_calls_holding_a_deleted_runtime_get_404(tmp_path: Path) -> None:
    """The manager's fence: a request that looked the experiment up before the delete, and
    a write that reaches the store after it, both end in 404; the name stays reserved."""
    import asyncio

    from api_schemas.experiments import ExperimentCreate
    from api_schemas.reports import Report
    from teacher_service.api.deps import durable
    from teacher_service.errors import ExperimentNotFoundError, NameTakenError
    from teacher_service.manager import ExperimentManager

    now = [1000.0]
    store = Store(f"sqlite:///{tmp_path / 'ac.db'}")
    manager = ExperimentManager(store, snapshot_every=5, clock=lambda: now[0])
    spec = ExperimentCreate(name="held", space=BOX2, teacher={"kind": "alp_gmm"}, lease_seconds=5)
    try:
        rec, fut = manager.begin_create(spec)
        rt = manager.finish_create(rec, fut.exception(30))
        tasks, fut = rt.propose(4)
        fut.result(30)
        held, fut = manager.begin_delete("held")
        assert held is rt and rt.deleted
        with pytest.raises(ExperimentNotFoundError):
            manager.get("held")
        with pytest.raises(NameTakenError, match="being deleted"):
            manager.begin_create(spec)
        now[0] += 60  # the tasks' leases ran out: a sweep would write
        report = Report(task_id=tasks[0].id, episode_return=1.0)
        for call in (lambda: rt.propose(1), lambda: rt.report([report]), rt.state, rt.sweep):
            with pytest.raises(ExperimentNotFoundError, match="was deleted"):
                call()
        assert fut.result(30) is None
        manager.finish_delete(held, None)
        # Writes that reach the store after the delete are refused, and answered 404.
        for write in (
            store.put_agent(rt.id, "a", b"late"),
            store.add_evaluations(rt.id, ['{"late": 1}']),
            store.append_event(rt.id, rt.seq + 1, "tasks", b"{}"),
        ):
            with pytest.raises(ExperimentNotFoundError, match="was deleted"):
                asyncio.run(durable(write))
        rec, fut = manager.begin_create(spec)  # the name is free again
        assert manager.finish_create(rec, fut.exception(30)).id != rt.id
    finally:
        manager.close()
        store.close()


# ------------------------------------------------------------------------- dashboard
def test_event_stream_of_a_deleted_experiment_ends(server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        create(c, "watched")
        fill(c, "watched", rounds=1)
    frames: list[str] = []
    ended = threading.Event()

    def watch() -> None:
        url = f"{server.url}/v1/experiments/watched/events?interval=0.2"
        with httpx.stream("GET", url, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event:"):
                    frames.append(line)
        ended.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not frames and time.monotonic() < deadline:
        time.sleep(0.05)
    assert frames, "the stream should send a frame at once"
    assert not ended.is_set()
    assert httpx.delete(f"{server.url}/v1/experiments/watched", timeout=60).status_code == 204
    assert ended.wait(10), "the stream should end once its experiment is deleted"
    t.join(timeout=10)


# ------------------------------------------------------------------------- storage failure
def test_storage_failure_is_503_and_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'ac.db'}"
    entered, release = threading.Event(), threading.Event()

    def failing_delete(conn: Any, experiment_id: str) -> None:
        entered.set()
        release.wait(30)
        raise OperationalError("DELETE FROM events", {}, Exception("disk I/O error"))

    with in_process(url, snapshot_every=5) as c:
        exp_id = create(c, "fragile", teacher="alp_gmm")
        fill(c, "fragile", rounds=4)
        stored = rows_of(url, exp_id)
        before = c.get("/v1/experiments/fragile/state").json()
        export_before = export_rows(c, "fragile")
        agents_before = c.get("/v1/experiments/fragile/agents").json()
        evals_before = c.get("/v1/experiments/fragile/evaluations").json()

        monkeypatch.setattr(Store, "_delete_rows", staticmethod(failing_delete))
        answer: list[httpx.Response] = []
        t = threading.Thread(target=lambda: answer.append(c.delete("/v1/experiments/fragile")))
        t.start()
        assert entered.wait(30)
        # While the delete is under way: gone for new requests, and the name is reserved.
        assert c.get("/v1/experiments/fragile").status_code == 404
        r = c.post(
            "/v1/experiments",
            json={"name": "fragile", "space": BOX2, "teacher": {"kind": "random"}},
        )
        assert r.status_code == 409 and "being deleted" in r.json()["detail"], r.text
        release.set()
        t.join(timeout=60)
        assert answer[0].status_code == 503, answer[0].text
        assert "not deleted" in answer[0].json()["detail"]
        monkeypatch.undo()

        # Nothing was lost, on disk or in memory, and the experiment carries on.
        assert rows_of(url, exp_id) == stored
        assert c.get("/v1/experiments/fragile/state").json() == before
        assert c.get(f"/v1/experiments/{exp_id}").json()["name"] == "fragile"
        assert c.get("/v1/experiments/fragile/agents").json() == agents_before
        assert c.get("/v1/experiments/fragile/evaluations").json() == evals_before
        assert export_rows(c, "fragile") == export_before
        tasks = c.post("/v1/experiments/fragile/tasks", json={"n": 2}).json()["tasks"]
        issued = before["counters"]["tasks_issued"]
        assert [t["id"] for t in tasks] == [f"{exp_id}-{issued}", f"{exp_id}-{issued + 1}"]
        reps = [{"task_id": t["id"], "episode_return": 1.0} for t in tasks]
        assert c.post("/v1/experiments/fragile/reports", json={"reports": reps}).json() == {
            "accepted": 2,
            "duplicates": 0,
            "expired": 0,
        }
        assert c.get("/v1/experiments/fragile/dashboard").status_code == 200
        r = c.post(
            "/v1/experiments",
            json={"name": "fragile", "space": BOX2, "teacher": {"kind": "random"}},
        )
        assert r.status_code == 409 and "already exists" in r.json()["detail"]
        # Once storage works again, the delete goes through.
        assert c.delete("/v1/experiments/fragile").status_code == 204
        assert rows_of(url, exp_id) == NONE
    # ... and a restart agrees.
    with in_process(url) as c:
        assert c.get("/v1/experiments/fragile").status_code == 404
        assert c.get("/v1/experiments").json()["count"] == 0


# ------------------------------------------------------------------------- client, CLI
def _transport(answers: list[Callable[[httpx.Request], httpx.Response]]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE" and request.url.path == "/v1/experiments/x"
        return answers.pop(0)(request)

    return httpx.MockTransport(handler)


def _lost(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset after the server deleted it", request=request)


def _gone(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"detail": "no experiment with id or name 'x'"})


def test_client_delete(server) -> None:
    with TeacherClient(server.url) as client:
        exp = client.create_experiment("by-client", BOX2, {"kind": "random"})
        client.put_agent("by-client", "a", b"weights")
        assert client.delete_experiment("by-client") is None
        with pytest.raises(NotFoundError):
            client.get_experiment(exp.id)
        with pytest.raises(NotFoundError, match="by-client"):
            client.delete_experiment("by-client")
    # A retry after a lost answer finds the experiment gone: that is success.
    with TeacherClient("http://test", transport=_transport([_lost, _gone]), backoff=0) as client:
        client.delete_experiment("x")
    # A 404 on the first attempt is not.
    with TeacherClient("http://test", transport=_transport([_gone]), backoff=0) as client:
        with pytest.raises(NotFoundError):
            client.delete_experiment("x")


def test_cli_delete_asks_first(server) -> None:
    from teacher_service.cli import app

    runner = CliRunner()
    base = ["experiments", "delete", "--server", server.url]
    with TeacherClient(server.url) as client:
        for name in ("cli-a", "cli-b"):
            client.create_experiment(name, BOX2, {"kind": "random"})
        prompt = (
            "Delete experiment cli-a and everything stored for it "
            "(log, snapshots, evaluations, agents)? [y/N]"
        )
        for answer in ("n\n", "", "\n"):  # no, end of input, the default
            res = runner.invoke(app, [*base, "cli-a"], input=answer)
            assert res.exit_code == 1, res.output
            assert prompt in res.output and "nothing was deleted" in res.output
            assert client.get_experiment("cli-a").name == "cli-a"
        res = runner.invoke(app, [*base, "cli-a"], input="y\n")
        assert res.exit_code == 0, res.output
        assert prompt in res.output
        assert "deleted experiment cli-a" in res.output.splitlines()[-1]
        res = runner.invoke(app, [*base, "cli-b", "--yes"])
        assert res.exit_code == 0, res.output
        assert "[y/N]" not in res.output
        assert res.output.strip().splitlines() == [
            "deleted experiment cli-b and everything stored for it "
            "(log, snapshots, evaluations, agents)"
        ]
        assert client.list_experiments() == []
    res = runner.invoke(app, [*base, "cli-b", "--yes"])
    assert res.exit_code == 1
    assert "error:" in res.output and "cli-b" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
