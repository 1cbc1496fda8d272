"""The event log module: typed events, their stored encoding (unchanged), the one rule for an
unknown kind (replay, export, dashboard and the API all answer it the same way), and the
export columns built from the event definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from api_schemas.experiments import ExperimentCreate
from api_schemas.reports import Report
from api_schemas.tasks import TaskMode
from teacher_service import export
from teacher_service.dashboard.history import ExperimentHistory
from teacher_service.event_log import (
    EVENT_TYPES,
    KINDS,
    EventLogError,
    ExpireEvent,
    JudgementEvent,
    LoggedEvent,
    MalformedEventError,
    ReportEntry,
    ReportEvent,
    SpaceEvent,
    TaskEvent,
    UnknownEventError,
    decode,
    encode,
    read_events,
)
from teacher_service.runtime import ExperimentRuntime
from teacher_service.storage import EventRow, ExperimentRecord, Store
from teacher_service.teachers.base import TaskProposal
from tests.conftest import BOX2

EXAMPLES = [
    TaskEvent(
        n=2,
        worker="w0",
        first=5,
        deadline=1010.5,
        tasks=(
            TaskProposal(params={"x": 0.25, "y": 0.5}),
            TaskProposal(level="L1", mode=TaskMode.EXPLORE, agent_id="a", role="antagonist"),
        ),
    ),
    ReportEvent(
        (
            ReportEntry(5, 1.5, success=True, length=7, scores={"s": 0.5}, episodes=2),
            ReportEntry(6, -0.25),
        )
    ),
    ExpireEvent((7, 8)),
    SpaceEvent(({"name": "boat", "description": "sail a boat", "category": "water"},)),
    JudgementEvent(
        {"model": "llm", "tasks": [3], "pairs": [[3, 1, None]], "answers": [[3, "No."]]}
    ),
]


def row(seq: int, kind: str, payload: Any, at: float = 12.5) -> EventRow:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return EventRow(seq, kind, data, at)


# -------------------------------------------------------------------- encoding
@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.kind)
def test_every_kind_round_trips_through_the_stored_form(event) -> None:
    kind, payload = encode(event)
    assert kind == event.kind and isinstance(payload, bytes)
    assert decode(row(3, kind, payload), "e0") == LoggedEvent(3, 12.5, event)


def test_kinds_and_types_are_one_table() -> None:
    assert KINDS == {"tasks", "reports", "expire", "space", "judgement"} == set(EVENT_TYPES)
    assert all(cls.kind == kind for kind, cls in EVENT_TYPES.items())


def test_stored_bytes_are_those_of_earlier_versions() -> None:
    # What the runtime wrote before this module existed, byte for byte.
    tasks = EXAMPLES[0]
    assert encode(tasks)[1] == orjson.dumps(
        {
            "n": 2,
            "worker": "w0",
            "first": 5,
            "deadline": 1010.5,
            "tasks": [p.to_dict() for p in tasks.tasks],
        }
    )
    reports = [
        Report(task_id="t", episode_return=1),
        Report(task_id="t", episode_return=0.5, success=False, length=0),
        Report(task_id="t", episode_return=2, scores={"a": 1}, episodes=3, success=True),
        Report(task_id="t", episode_return=2, scores={}, episodes=1, success=None),
    ]
    entries = tuple(ReportEntry.from_report(i, r) for i, r in enumerate(reports))
    old = [
        {"i": i, **r.model_dump(exclude_defaults=True, exclude={"task_id"})}
        for i, r in enumerate(reports)
    ]
    assert encode(ReportEvent(entries)) == ("reports", orjson.dumps({"reports": old}))
    assert encode(ExpireEvent((3, 4))) == ("expire", b'{"indices":[3,4]}')


def test_payloads_written_by_earlier_versions_decode() -> None:
    # As stored since the first version: report keys at their default left out; a task
    # without the keys at their default (hand-written logs) reads as the proposal's defaults.
    tasks = {"n": 1, "worker": None, "first": 0, "deadline": 9.0, "tasks": [{"params": {"x": 1}}]}
    got = decode(row(1, "tasks", tasks), "e0").event
    assert got == TaskEvent(1, None, 0, 9.0, (TaskProposal(params={"x": 1}),))
    got = decode(row(2, "reports", {"reports": [{"i": 0, "episode_return": 3.0}]}), "e0").event
    assert got == ReportEvent((ReportEntry(0, 3.0, None, None, {}, 1),))


# ------------------------------------------------------------ the unknown-kind rule
def test_an_unknown_kind_is_a_named_error_naming_experiment_seq_and_kind() -> None:
    with pytest.raises(UnknownEventError) as info:
        decode(row(42, "promote", {"anything": 1}), "exp7")
    err = info.value
    assert isinstance(err, EventLogError) and isinstance(err, ValueError)
    assert (err.experiment_id, err.seq, err.kind) == ("exp7", 42, "promote")
    msg = str(err)
    assert "exp7" in msg and "event 42" in msg and "'promote'" in msg and "newer version" in msg


def test_a_known_kind_that_does_not_decode_is_a_named_error_too() -> None:
    with pytest.raises(MalformedEventError, match=r"experiment e0: event 3 .*'tasks'.*first"):
        decode(row(3, "tasks", {"n": 1, "worker": None, "deadline": 1.0, "tasks": []}), "e0")
    with pytest.raises(MalformedEventError, match="event 4"):
        decode(row(4, "expire", b"not json"), "e0")


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'log.db'}")
    yield s
    s.close()


def a_log_with_a_newer_event(store: Store) -> tuple[ExperimentRuntime, int]:
    """An experiment with tasks, reports and an expiry logged by this version, then one
    event of a kind it does not know, written straight into the store. Returns the runtime
    and that event's seq."""
    spec = ExperimentCreate(
        name="e", space=BOX2, teacher={"kind": "random"}, seed=1, lease_seconds=10
    )
    rec = ExperimentRecord("exp1", "e", spec.model_dump(mode="json"), 0.0)
    store.create_experiment(rec).result()
    now = [1000.0]
    rt = ExperimentRuntime(rec, store, clock=lambda: now[0])
    tasks, _ = rt.propose(3, worker="w")
    rt.report([Report(task_id=tasks[0].id, episode_return=0.5, success=True)])
    now[0] += 60  # the lease of tasks 1 and 2 runs out: the next call expires them
    rt.propose(1)
    store.barrier().result()
    kinds = [e.event.kind for e in read_events(store, rt.id)]
    assert kinds == ["tasks", "reports", "expire", "tasks"]
    store.append_event(rt.id, rt.seq + 1, "promote", b'{"level": 1}').result()
    return rt, rt.seq + 1


def test_replay_export_and_dashboard_raise_the_same_error(store: Store) -> None:
    rt, seq = a_log_with_a_newer_event(store)
    raised: list[UnknownEventError] = []

    def catch(fn) -> None:
        with pytest.raises(UnknownEventError) as info:
            fn()
        raised.append(info.value)

    catch(lambda: ExperimentRuntime.load(rt.record, store))  # replay at start-up
    # The export fails before its first byte, in every format.
    full = export.ExportPlan(rt.id, rt.name, rt.record.spec, 0.0, {}, seq)
    catch(lambda: next(export.iter_rows(store, full)))
    catch(lambda: next(export.iter_export(store, full, "jsonl")))
    history = ExperimentHistory(store, rt.id)
    catch(history.refresh)
    assert history.seq == seq - 1  # everything before it is folded; it is not skipped
    catch(history.refresh)
    assert {(e.experiment_id, e.seq, e.kind, str(e)) for e in raised} == {
        (rt.id, seq, "promote", str(raised[0]))
    }

    # An export planned before the newer event is unaffected (the event is left out).
    rows = list(export.iter_rows(store, export.plan_export(rt)))
    assert [r["type"] for r in rows[1:]] == ["task"] * 3 + ["report", "expire", "expire", "task"]


def test_a_runtime_rebuilding_after_an_error_stops_at_the_event(store: Store) -> None:
    rt, _ = a_log_with_a_newer_event(store)
    rt.broken = True  # as after a failed write
    for _ in range(2):  # and stays stopped: a partial replay is never served from
        with pytest.raises(UnknownEventError):
            rt.propose(1)


# ---------------------------------------------------------------- export columns
def test_export_columns_are_built_from_the_event_definitions() -> None:
    assert dict(export.FIELDS) == {
        kind: tuple(c.name for c in cols) for kind, cols in export.COLUMNS.items()
    }
    types = {c.name: c.dtype for cols in export.COLUMNS.values() for c in cols}
    # Types follow the event module's annotations (and the wire models').
    assert types["deadline"] == "float64" and types["worker"] == "string"  # TaskEvent
    assert types["mode"] == "string" and types["params"] == "json"  # TaskProposal
    assert types["success"] == "bool" and types["length"] == "int64"  # ReportEntry
    assert types["episodes"] == "int64" and types["scores"] == "json"
    assert types["index"] == "int64" and types["seq"] == "int64" and types["time"] == "float64"
    # The Parquet schema: every column once, in order of first use; earlier ones keep their places.
    assert export._PARQUET_COLUMNS == (
        ("type", "string"),
        ("seq", "int64"),
        ("time", "float64"),
        ("task_id", "string"),
        ("index", "int64"),
        ("worker", "string"),
        ("deadline", "float64"),
        ("mode", "string"),
        ("params", "string"),
        ("level", "string"),
        ("agent_id", "string"),
        ("role", "string"),
        ("init_from", "string"),
        ("episode_return", "float64"),
        ("success", "bool"),
        ("length", "int64"),
        ("episodes", "int64"),
        ("scores", "string"),
        ("env", "string"),
        ("solve_rate", "float64"),
        ("mean_return", "float64"),
        ("env_steps", "int64"),
        ("checkpoint", "string"),
        ("tasks", "string"),  # added by the space rows, after every earlier column
        ("judgement", "string"),  # added by the judgement rows, after those
    )
    assert export._JSON_COLUMNS == {"params", "scores", "tasks", "judgement"}


def test_column_types_must_be_exportable_and_agree() -> None:
    class Odd:
        a: list[int]

    with pytest.raises(TypeError, match="no export column type"):
        export._columns_of(Odd, "a")
    clash = {"x": (export.Column("n", "int64"),), "y": (export.Column("n", "string"),)}
    with pytest.raises(TypeError, match="'n' has two types"):
        export._distinct(clash)


def test_parquet_schema_is_the_column_table(store: Store) -> None:
    import pyarrow as pa

    rt, _ = a_log_with_a_newer_event(store)
    plan = export.plan_export(rt)
    schema = export.parquet_schema(plan)
    want = [
        (f"param.{d}", "double") if name == "params" else (name, str(pa.type_for_alias(t)))
        for name, t in export._PARQUET_COLUMNS
        for d in (["x", "y"] if name == "params" else [None])
    ]
    assert [(f.name, str(f.type)) for f in schema] == want


def test_export_rows_have_exactly_their_columns(store: Store) -> None:
    rt, _ = a_log_with_a_newer_event(store)
    store.add_evaluations(
        rt.id, ['{"env":"A","episodes":1,"solve_rate":0.5,"mean_return":0.4}']
    ).result()
    rows = list(export.iter_rows(store, export.plan_export(rt)))
    types = [r["type"] for r in rows[1:]]
    assert types == [*["task"] * 3, "report", "expire", "expire", "task", "evaluation"]
    for r in rows[1:]:
        assert tuple(r) == export.FIELDS[r["type"]], r
    task, report, expire = rows[1], rows[4], rows[5]
    assert task == {
        "type": "task",
        "seq": 1,
        "time": task["time"],
        "task_id": f"{rt.id}-0",
        "index": 0,
        "worker": "w",
        "deadline": task["deadline"],
        "mode": "train",
        "params": task["params"],
        "level": None,
        "agent_id": None,
        "role": None,
        "init_from": None,
    }
    assert report | {"time": 0} == {
        "type": "report",
        "seq": 2,
        "time": 0,
        "task_id": f"{rt.id}-0",
        "index": 0,
        "episode_return": 0.5,
        "success": True,
        "length": None,
        "episodes": 1,
        "scores": {},
    }
    assert (expire["seq"], expire["index"], expire["task_id"]) == (3, 1, f"{rt.id}-1")
