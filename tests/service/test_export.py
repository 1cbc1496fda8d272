"""``GET /v1/experiments/{id}/export`` (teacher_service/export.py, api/export.py): the full
history as JSON lines or Parquet, re-imported with ``read_export`` to the same counts and
values that were sent; through the client and the CLI; consistent while the experiment is
being written; identical after a kill -9 and restart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from teacher_service import export
from teacher_service.client import (
    ApiError,
    NotFoundError,
    ServerUnavailableError,
    TeacherClient,
    export_dataframe,
    read_export,
)
from teacher_service.client.exports import flatten_row
from teacher_service.export import ExportFormatError, ExportPlan
from teacher_service.storage import ExperimentRecord, Store
from tests.conftest import BOX2

TOKEN = "s3cret"
LEVEL_SPACE = {"kind": "level", "generator": "minigrid", "config": {"size": 9, "max_walls": 10}}
EVALS = [
    {"env": "Labyrinth", "episodes": 10, "solve_rate": 0.3, "mean_return": 0.21},
    {"env": "Corridor", "episodes": 4, "solve_rate": 1.0, "mean_return": 0.9, "env_steps": 512},
]
EVAL_DEFAULTS = {"env_steps": None, "checkpoint": None, "worker": None}


# ------------------------------------------------------------------------- helpers
def get_export(c: httpx.Client, exp: str, fmt: str = "jsonl") -> bytes:
    r = c.get(f"/v1/experiments/{exp}/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == export.MEDIA_TYPES[fmt]
    assert f".{fmt}" in r.headers["content-disposition"]
    return r.content


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without what legitimately differs between two exports of the same history: the
    export time, and the counters a restart resets (repeats are not logged)."""
    head = {k: v for k, v in rows[0].items() if k != "exported_at"}
    head["counters"] = {
        k: v for k, v in head["counters"].items() if k not in ("duplicates", "late_reports")
    }
    return [head, *rows[1:]]


def by_type(rows: list[dict], kind: str) -> list[dict]:
    return [r for r in rows if r["type"] == kind]


def check_counts(rows: list[dict], counters: dict) -> None:
    """Row counts equal the server's counters; every row has exactly its type's keys."""
    assert rows[0]["type"] == "experiment"
    for r in rows[1:]:
        assert tuple(r) == export.FIELDS[r["type"]], r
    assert len(by_type(rows, "task")) == counters["tasks_issued"]
    assert len(by_type(rows, "report")) == counters["reports_accepted"]
    assert len(by_type(rows, "expire")) == counters["expired"]
    assert len(by_type(rows, "evaluation")) == rows[0]["evaluations"]
    seqs = {r["seq"] for r in rows[1:] if r["type"] != "evaluation"}
    assert seqs == set(range(1, rows[0]["last_seq"] + 1))  # every event, nothing after


def level_report(task: dict, k: int) -> dict:
    return {
        "task_id": task["id"],
        "episode_return": round(0.1 * k, 6),
        "success": k % 2 == 0,
        "length": 10 + k,
        "episodes": 1 + k % 3,
        "scores": {"positive_value_loss": 0.05 * k, "mean_value": -0.5 + 0.01 * k},
    }


def box_report(task: dict, k: int) -> dict:
    return {"task_id": task["id"], "episode_return": 1.5 * k - 2.0, "success": k > 1}


def build_history(c: httpx.Client) -> dict[str, Any]:
    """A box experiment (alp_gmm, short lease: some tasks expire) and a level one (plr, with
    scores); returns what was sent and acknowledged."""
    sent: dict[str, Any] = {"tasks": {}, "reports": {}, "evals": {}}
    r = c.post(
        "/v1/experiments",
        json={
            "name": "box",
            "space": BOX2,
            "teacher": {"kind": "alp_gmm"},
            "seed": 3,
            "lease_seconds": 2.0,
        },
    )
    assert r.status_code == 201, r.text
    r = c.post(
        "/v1/experiments",
        json={"name": "lvl", "space": LEVEL_SPACE, "teacher": {"kind": "plr"}, "seed": 1},
    )
    assert r.status_code == 201, r.text
    # Box: 6 tasks, 4 reported at once, 2 left to expire.
    tasks = c.post("/v1/experiments/box/tasks", json={"n": 6, "worker": "w-1"}).json()["tasks"]
    reports = [box_report(t, k) for k, t in enumerate(tasks[:4])]
    ack = c.post("/v1/experiments/box/reports", json={"reports": reports}).json()
    # A loaded machine may take longer than the lease: then the batch expired as a whole.
    assert ack["accepted"] in (0, 4), ack
    sent["tasks"].update({t["id"]: t for t in tasks})
    if ack["accepted"]:
        sent["reports"].update({rep["task_id"]: rep for rep in reports})
    deadline = time.time() + 30
    while c.get("/v1/experiments/box").json()["counters"]["expired"] < 6 - ack["accepted"]:
        assert time.time() < deadline, "the lease sweep did not expire the tasks"
        time.sleep(0.2)
    # Level: three rounds fully reported, one batch left outstanding.
    for rnd in range(3):
        tasks = c.post("/v1/experiments/lvl/tasks", json={"n": 4}).json()["tasks"]
        reports = [level_report(t, 4 * rnd + k) for k, t in enumerate(tasks)]
        ack = c.post("/v1/experiments/lvl/reports", json={"reports": reports}).json()
        assert ack["accepted"] == 4, ack
        sent["tasks"].update({t["id"]: t for t in tasks})
        sent["reports"].update({rep["task_id"]: rep for rep in reports})
    tasks = c.post("/v1/experiments/lvl/tasks", json={"n": 3, "worker": "w-2"}).json()["tasks"]
    sent["tasks"].update({t["id"]: t for t in tasks})
    for exp, evals in (("box", EVALS), ("lvl", EVALS[:1])):
        r = c.post(f"/v1/experiments/{exp}/evaluations", json={"evaluations": evals})
        assert r.status_code == 201, r.text
        sent["evals"][exp] = evals
    return sent


def check_values(rows: list[dict], sent: dict[str, Any], exp: str) -> None:
    """Tasks, reports, expiries and evaluations in the export equal what was sent."""
    tasks = by_type(rows, "task")
    assert [t["index"] for t in tasks] == list(range(len(tasks)))
    for t in tasks:
        want = sent["tasks"][t["task_id"]]
        assert t["task_id"] == f"{rows[0]['id']}-{t['index']}"
        assert (t["params"], t["level"], t["mode"]) == (want["params"], want["level"], want["mode"])
        assert t["deadline"] == want["lease_expires_at"]
    reported = by_type(rows, "report")
    assert reported, "nothing reported"
    for r in reported:
        want = {"success": None, "length": None, "episodes": 1, "scores": {}}
        want |= sent["reports"][r["task_id"]]
        got = {k: r[k] for k in ("episode_return", "success", "length", "episodes", "scores")}
        assert got == {k: want[k] for k in got}
    expired = {r["task_id"] for r in by_type(rows, "expire")}
    assert expired.isdisjoint(r["task_id"] for r in reported)
    assert all(r["time"] >= tasks[r["index"]]["time"] for r in reported)
    evals = by_type(rows, "evaluation")
    assert [{k: e[k] for k in e if k not in ("type", "seq", "time")} for e in evals] == [
        EVAL_DEFAULTS | e for e in sent["evals"][exp]
    ]
    assert all(e["seq"] is None for e in evals)


# ---------------------------------------------------------------------- over HTTP
def test_round_trip_over_http_client_cli_and_restart(server_factory, tmp_path: Path) -> None:
    srv = server_factory(f"sqlite:///{tmp_path / 'ac.db'}", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    exports: dict[tuple[str, str], list[dict]] = {}
    with httpx.Client(base_url=srv.url, timeout=60, headers=auth) as c:
        sent = build_history(c)
        assert by_type(read_export(get_export(c, "box")), "expire"), "nothing expired"
        for exp in ("box", "lvl"):
            counters = c.get(f"/v1/experiments/{exp}").json()["counters"]
            jsonl, parquet = get_export(c, exp, "jsonl"), get_export(c, exp, "parquet")
            assert parquet[:4] == b"PAR1"
            rows = read_export(jsonl)
            check_counts(rows, counters)
            assert rows[0]["counters"] == counters and rows[0]["name"] == exp
            assert rows[0]["spec"]["space"]["kind"] == ("box" if exp == "box" else "level")
            check_values(rows, sent, exp)
            # Parquet re-imports to exactly the same rows (nested params and scores included).
            assert comparable(read_export(parquet)) == comparable(rows)
            assert comparable(read_export(parquet, format="parquet")) == comparable(rows)
            exports[exp, "jsonl"], exports[exp, "parquet"] = rows, read_export(parquet)
        # Unknown experiment, unknown format, an id instead of the name.
        assert c.get("/v1/experiments/nope/export").status_code == 404
        r = c.get("/v1/experiments/box/export", params={"format": "csv"})
        assert r.status_code == 422 and "jsonl" in r.json()["detail"]
        box_id = exports["box", "jsonl"][0]["id"]
        assert comparable(read_export(get_export(c, box_id))) == comparable(exports["box", "jsonl"])
    # The token is required.
    assert httpx.get(f"{srv.url}/v1/experiments/box/export").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{srv.url}/v1/experiments/box/export", headers=bad).status_code == 401

    # Parquet schema: box params are float64 columns, level params JSON text.
    import pyarrow.parquet as pq

    with httpx.Client(base_url=srv.url, timeout=60, headers=auth) as c:
        box_schema = pq.read_schema(pa_buffer(get_export(c, "box", "parquet")))
        lvl_schema = pq.read_schema(pa_buffer(get_export(c, "lvl", "parquet")))
    assert str(box_schema.field("param.x").type) == "double" and "params" not in box_schema.names
    assert str(lvl_schema.field("params").type) == "string" and "param.x" not in lvl_schema.names

    # Through the client...
    with TeacherClient(srv.url, token=TOKEN) as client:
        p = client.export("lvl", tmp_path / "lvl.jsonl")
        assert p == tmp_path / "lvl.jsonl" and not Path(f"{p}.part").exists()
        assert comparable(read_export(p)) == comparable(exports["lvl", "jsonl"])
        p = client.export("box", tmp_path / "box.parquet", format="parquet")
        assert comparable(read_export(p)) == comparable(exports["box", "jsonl"])
        with pytest.raises(NotFoundError):
            client.export("nope", tmp_path / "nope.jsonl")
        assert not (tmp_path / "nope.jsonl").exists()
    with TeacherClient(srv.url) as client, pytest.raises(ApiError) as ei:
        client.export("box", tmp_path / "x.jsonl")
    assert ei.value.status_code == 401

    # ... and the CLI.
    out = tmp_path / "cli.parquet"
    res = cli("export", "box", "--url", srv.url, "--token", TOKEN, "--format", "parquet", "-o", out)
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout
    assert comparable(read_export(out)) == comparable(exports["box", "jsonl"])
    for args, fragment in [
        (["nope", "--url", srv.url, "--token", TOKEN], "nope"),
        (["box", "--url", srv.url], "401"),
        (["box", "--url", srv.url, "--token", TOKEN, "--format", "csv"], "csv"),
        (["box", "--url", srv.url, "--token", TOKEN, "--out", tmp_path / "no/dir/x"], "no/dir"),
    ]:
        res = cli("export", *args)
        assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout, res.stderr
        assert "error" in res.stderr and fragment in res.stderr, (args, res.stderr)

    # kill -9 and restart: the same history, in both formats.
    srv.kill()
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60, headers=auth) as c:
        for exp in ("box", "lvl"):
            want = comparable(exports[exp, "jsonl"])
            assert comparable(read_export(get_export(c, exp))) == want
            assert comparable(read_export(get_export(c, exp, "parquet"))) == want
            counters = c.get(f"/v1/experiments/{exp}").json()["counters"]
            check_counts(read_export(get_export(c, exp)), counters)


def pa_buffer(data: bytes) -> Any:
    import pyarrow as pa

    return pa.BufferReader(data)


def cli(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "student_workers", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_of_an_experiment_being_written_is_consistent(server) -> None:
    """Exports taken while tasks and reports keep arriving cover exactly the events up to
    the seq taken at request time, with the counters of that moment."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post(
            "/v1/experiments", json={"name": "busy", "space": BOX2, "teacher": {"kind": "random"}}
        )
        assert r.status_code == 201
        stop = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=60) as w:
                    k = 0
                    while not stop.is_set():
                        tasks = w.post("/v1/experiments/busy/tasks", json={"n": 16}).json()
                        reports = [
                            {"task_id": t["id"], "episode_return": float(k)}
                            for t in tasks["tasks"][::2]
                        ]
                        w.post("/v1/experiments/busy/reports", json={"reports": reports})
                        k += 1
            except BaseException as exc:  # surfaced in the main thread
                errors.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        seen: list[int] = []
        try:
            while len(seen) < 6:
                time.sleep(0.1)
                for fmt in ("jsonl", "parquet"):
                    rows = read_export(get_export(c, "busy", fmt))
                    head = rows[0]
                    check_counts(rows, head["counters"])
                    assert head["counters"]["events"] == head["last_seq"]
                    reported = {r["index"] for r in by_type(rows, "report")}
                    issued = {r["index"] for r in by_type(rows, "task")}
                    assert reported <= issued  # no report without its task
                    seen.append(head["last_seq"])
        finally:
            stop.set()
            writer.join(timeout=60)
        assert not errors, errors
        assert seen[-1] > seen[0] > 0, seen  # the experiment really was being written
        final = c.get("/v1/experiments/busy").json()["counters"]
        rows = read_export(get_export(c, "busy"))
        check_counts(rows, final)
        assert rows[0]["last_seq"] == final["events"]


def test_parquet_without_pyarrow_is_a_clear_406(
    server_factory, tmp_path: Path, monkeypatch
) -> None:
    # A pyarrow that fails to import shadows the real one in the server process.
    stub = tmp_path / "stub" / "pyarrow"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('pyarrow hidden by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(stub.parent))
    srv = server_factory(f"sqlite:///{tmp_path / 'ac.db'}")
    monkeypatch.delenv("PYTHONPATH")
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/v1/experiments", json={"name": "e", "space": BOX2, "teacher": {"kind": "random"}})
        c.post("/v1/experiments/e/tasks", json={"n": 3})
        r = c.get("/v1/experiments/e/export", params={"format": "parquet"})
        assert r.status_code == 406
        assert "pip install 'autocurriculum[export]'" in r.json()["detail"]
        assert len(by_type(read_export(get_export(c, "e")), "task")) == 3  # JSONL still works
    with TeacherClient(srv.url) as client, pytest.raises(ApiError) as ei:
        client.export("e", tmp_path / "e.parquet", format="parquet")
    assert ei.value.status_code == 406 and "autocurriculum[export]" in ei.value.detail
    assert not (tmp_path / "e.parquet").exists()
    res = cli("export", "e", "--url", srv.url, "--format", "parquet", "-o", tmp_path / "e.pq")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "autocurriculum[export]" in res.stderr


# ------------------------------------------------------------- client, scripted transport
class _CutStream(httpx.SyncByteStream):
    """A body that breaks off after its first chunk (a server killed mid-export)."""

    def __iter__(self):
        yield b'{"type": "experiment"}\n'
        raise httpx.ReadError("connection lost mid-stream")


def test_client_export_restarts_a_broken_download(tmp_path: Path) -> None:
    body = b'{"type": "experiment"}\n{"type": "task"}\n'
    answers = [
        lambda: httpx.Response(200, stream=_CutStream()),
        lambda: httpx.Response(503, json={"detail": "busy"}),
        lambda: httpx.Response(200, content=body),
    ]
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers[min(len(calls), len(answers)) - 1]()

    transport = httpx.MockTransport(handler)
    with TeacherClient("http://teacher", transport=transport, backoff=0.001) as c:
        path = c.export("run:1", tmp_path / "h.jsonl", format="jsonl")
    assert path.read_bytes() == body and len(calls) == 3
    assert calls[0].url.path == "/v1/experiments/run:1/export"
    assert calls[0].url.params["format"] == "jsonl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl"]  # no .part left

    calls.clear()
    with (
        TeacherClient("http://teacher", transport=transport, retries=0) as c,
        pytest.raises(ServerUnavailableError, match="mid-stream"),
    ):
        c.export("run", tmp_path / "g.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl"]


# ---------------------------------------------------------------- pure logic, no server
@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'unit.db'}")
    yield s
    s.close()


def hand_made_log(store: Store, space: dict, n_batches: int = 5) -> ExportPlan:
    """A log written directly: batches of 3 tasks, 2 reported (one with every field, one with
    defaults omitted as the runtime logs them), 1 expired; then an event past the plan."""
    eid = "e0"
    spec = {"name": "unit", "space": space, "teacher": {"kind": "random"}, "seed": 0}
    store.create_experiment(ExperimentRecord(eid, "unit", spec, 1.0)).result()
    seq = 0
    for b in range(n_batches):
        first = 3 * b
        tasks = [
            {"params": {"x": 0.1 * k, "y": 0.5}, "level": None, "mode": "train"}
            if space["kind"] == "box"
            else {"params": {"level_id": k, "parent": None}, "level": f"L{k}", "mode": "explore"}
            for k in range(first, first + 3)
        ]
        payloads = [
            ("tasks", {"n": 3, "worker": f"w{b}", "first": first, "deadline": 9.0, "tasks": tasks}),
            (
                "reports",
                {
                    "reports": [
                        {
                            "i": first,
                            "episode_return": -1.25,
                            "success": True,
                            "length": 7,
                            "episodes": 2,
                            "scores": {"s": 0.5},
                        },
                        {"i": first + 1, "episode_return": 3.0},
                    ]
                },
            ),
            ("expire", {"indices": [first + 2]}),
        ]
        for kind, payload in payloads:
            seq += 1
            store.append_event(eid, seq, kind, orjson.dumps(payload))
    store.append_event(eid, seq + 1, "expire", orjson.dumps({"indices": [99]}))
    store.add_evaluations(eid, [orjson.dumps(EVALS[0]).decode()]).result()
    store.barrier().result()
    counters = {"tasks_issued": 3 * n_batches, "reports_accepted": 2 * n_batches}
    return ExportPlan(eid, "unit", spec, 1.0, counters | {"expired": n_batches}, seq, 2.0)


def test_rows_follow_the_log_and_stop_at_the_plan(store: Store) -> None:
    plan = hand_made_log(store, BOX2, n_batches=2)
    rows = list(export.iter_rows(store, plan, chunk=2))  # several chunks of events
    assert rows[0] == plan.header(1)
    assert [(r["type"], r["seq"]) for r in rows[1:]] == [
        *[("task", 1)] * 3,
        *[("report", 2)] * 2,
        ("expire", 3),
        *[("task", 4)] * 3,
        *[("report", 5)] * 2,
        ("expire", 6),
        ("evaluation", None),
    ]  # the event logged after the plan (seq 7) is left out
    assert rows[4] == {
        "type": "report",
        "seq": 2,
        "time": rows[4]["time"],
        "task_id": "e0-0",
        "index": 0,
        "episode_return": -1.25,
        "success": True,
        "length": 7,
        "episodes": 2,
        "scores": {"s": 0.5},
    }
    assert {k: rows[5][k] for k in ("success", "length", "episodes", "scores")} == {
        "success": None,
        "length": None,
        "episodes": 1,
        "scores": {},
    }
    assert rows[7]["params"] == {"x": 0.30000000000000004, "y": 0.5}
    assert rows[7]["worker"] == "w1" and rows[7]["deadline"] == 9.0
    assert rows[-1] | {"time": 0} == {"type": "evaluation", "seq": None, "time": 0} | {
        **EVAL_DEFAULTS,
        **EVALS[0],
    }


@pytest.mark.parametrize("space", [BOX2, LEVEL_SPACE], ids=["box", "level"])
def test_formats_stream_in_chunks_and_re_import_identically(store: Store, space: dict) -> None:
    import pyarrow.parquet as pq

    plan = hand_made_log(store, space, n_batches=40)
    want = list(export.iter_rows(store, plan))
    jsonl_chunks = list(export.iter_jsonl(store, plan, chunk_bytes=1024, chunk=7))
    assert len(jsonl_chunks) > 5 and all(jsonl_chunks)
    parquet_chunks = list(export.iter_parquet(store, plan, row_group_rows=50, chunk=7))
    assert len(parquet_chunks) > 5
    jsonl, parquet = b"".join(jsonl_chunks), b"".join(parquet_chunks)
    assert read_export(jsonl) == want == read_export(parquet)
    meta = pq.ParquetFile(pa_buffer(parquet))
    assert meta.num_row_groups == -(-(len(want) - 1) // 50) and meta.metadata.num_rows == 241
    assert b"".join(export.iter_export(store, plan, "jsonl")) == jsonl
    assert b"".join(export.iter_export(store, plan, "parquet", row_group_rows=50)) == parquet
    with pytest.raises(ExportFormatError):
        export.iter_export(store, plan, "csv")  # type: ignore[arg-type]


def test_read_export_from_files_and_errors(store: Store, tmp_path: Path, monkeypatch) -> None:
    plan = hand_made_log(store, BOX2, n_batches=1)
    data = b"".join(export.iter_jsonl(store, plan))
    (tmp_path / "a.jsonl").write_bytes(data + b"\n")  # a trailing blank line is fine
    assert read_export(tmp_path / "a.jsonl") == read_export(str(tmp_path / "a.jsonl"))
    assert read_export(tmp_path / "a.jsonl") == read_export(bytearray(data))
    with pytest.raises(ExportFormatError, match="header"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"a": [1]}), sink)
        read_export(sink.getvalue().to_pybytes())
    # Without pyarrow: Parquet is refused with the install hint, JSON lines still read.
    parquet = b"".join(export.iter_parquet(store, plan))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert not export.parquet_available()
    with pytest.raises(ExportFormatError, match=r"autocurriculum\[export\]"):
        read_export(parquet)
    with pytest.raises(ExportFormatError, match=r"autocurriculum\[export\]"):
        export.iter_export(store, plan, "parquet")
    assert len(read_export(data)) == 8  # header, 3 tasks, 2 reports, 1 expiry, 1 evaluation


def test_dataframe_helper_flattens_and_needs_pandas_only_when_called(
    store: Store, monkeypatch
) -> None:
    plan = hand_made_log(store, BOX2, n_batches=1)
    data = b"".join(export.iter_jsonl(store, plan))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        export_dataframe(data)

    class FakeFrame:
        def __init__(self, records: list[dict]) -> None:
            self.records, self.attrs = records, {}

    fake = types.ModuleType("pandas")
    fake.DataFrame = types.SimpleNamespace(from_records=FakeFrame)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    df = export_dataframe(data)
    assert df.attrs["experiment"]["name"] == "unit"
    task, report = df.records[0], df.records[3]
    assert task["param.x"] == 0.0 and task["param.y"] == 0.5 and "params" not in task
    assert report["score.s"] == 0.5 and "scores" not in report
    assert flatten_row({"type": "task", "params": None}) == {"type": "task"}


def test_export_filename_is_safe() -> None:
    assert export.export_filename("run:1", "jsonl") == "run_1.jsonl"
    for name in ("../..", "a/b", "..", ""):
        got = export.export_filename(name, "parquet")
        assert "/" not in got and not got.startswith(".") and got.endswith(".parquet"), got
