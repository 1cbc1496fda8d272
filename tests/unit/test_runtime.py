"""ExperimentRuntime against a real SQLite store: leases, limits, snapshots, write failures."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from api_schemas.experiments import ExperimentCreate
from api_schemas.reports import Report
from teacher_service.errors import BatchTooLargeError, TaskNotFoundError
from teacher_service.runtime import ExperimentRuntime
from teacher_service.storage import ExperimentRecord, Store, pack_state, unpack_state
from teacher_service.storage.tables import snapshots
from tests.conftest import BOX2


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'rt.db'}")
    yield s
    s.close()


def make(store: Store, teacher: dict | None = None, lease: float = 10.0, **kw) -> ExperimentRuntime:
    spec = ExperimentCreate(
        name="e", space=BOX2, teacher=teacher or {"kind": "random"}, seed=1, lease_seconds=lease
    )
    rec = ExperimentRecord("exp1", "e", spec.model_dump(mode="json"), 0.0)
    store.create_experiment(rec).result()
    return ExperimentRuntime(rec, store, **kw)


def reload(rt: ExperimentRuntime, **kw) -> ExperimentRuntime:
    return ExperimentRuntime.load(rt.record, rt.store, **kw)


def rep(task_id: str, r: float = 0.5) -> Report:
    return Report(task_id=task_id, episode_return=r)


def test_codec_round_trip_keeps_arrays_and_big_ints() -> None:
    rng = np.random.default_rng(123)
    state = {
        "rng": rng.bit_generator.state,
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "nested": [{"b": np.array([True, False])}, 3, "x", None],
    }
    back = unpack_state(pack_state(state))
    assert back["rng"] == state["rng"]
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["a"].dtype == np.float32 and back["a"].shape == (3, 4)
    np.testing.assert_array_equal(back["nested"][0]["b"], [True, False])
    assert back["nested"][1:] == [3, "x", None]
    with pytest.raises(ValueError, match="truncated"):
        unpack_state(pack_state(state)[:-3])


def test_lease_expiry_is_logged_and_replayed(store: Store) -> None:
    clock = Clock()
    rt = make(store, clock=clock)
    tasks, f = rt.propose(4)
    f.result()
    rt.report([rep(tasks[0].id)])[1].result()
    clock.t += 11  # past the 10 s lease
    rt.sweep()
    assert rt.counters.expired == 3 and rt.counters.outstanding == 0
    ack, _ = rt.report([rep(tasks[1].id), rep(tasks[0].id)])
    assert (ack.accepted, ack.duplicates, ack.expired) == (0, 1, 1)
    store.barrier().result()
    twin = reload(rt, clock=clock)
    assert twin.counters.expired == 3 and twin.counters.outstanding == 0
    assert twin.teacher.state_dict()["rng"] == rt.teacher.state_dict()["rng"]
    a, _ = rt.propose(3)
    b, _ = twin.propose(3)
    assert [t.params for t in a] == [t.params for t in b]


def test_outstanding_cap_expires_oldest_first(store: Store) -> None:
    rt = make(store, max_outstanding=10, clock=Clock())
    first, _ = rt.propose(6)
    rt.propose(6)
    assert rt.counters.outstanding == 12
    rt.propose(1)  # before issuing, the oldest batch is expired to get back under the cap
    assert rt.counters.expired == 6 and rt.counters.outstanding == 7
    assert rt.report([rep(first[0].id)])[0].expired == 1


def test_batch_limits_and_unknown_tasks_change_nothing(store: Store) -> None:
    rt = make(store, max_batch=8)
    with pytest.raises(BatchTooLargeError, match="maximum batch of 8"):
        rt.propose(9)
    tasks, _ = rt.propose(2)
    before = rt.counters.model_copy()
    for bad in ("exp1-99", "other-0", "exp1-x", "exp1--1"):
        with pytest.raises(TaskNotFoundError, match="was not issued"):
            rt.report([rep(tasks[0].id), rep(bad)])
    assert rt.counters == before and rt.counters.outstanding == 2
    assert rt.report([rep(tasks[0].id)])[0].accepted == 1


def test_snapshots_every_n_events_and_fallback_when_corrupted(store: Store) -> None:
    rt = make(
        store,
        teacher={"kind": "alp_gmm", "fit_rate": 20, "bootstrap": 20, "fit_delay": 5},
        snapshot_every=5,
    )
    for _ in range(30):
        tasks, _ = rt.propose(3)
        rt.report([rep(t.id, t.params["x"]) for t in tasks])
    store.barrier().result()
    seqs = [s for s, _ in store.snapshots_newest_first(rt.id)]
    assert len(seqs) == 2 and seqs[0] == 60  # 60 events, snapshot every 5, keep 2
    # Corrupt the newest snapshot: loading falls back to the previous one plus more replay.
    with store.engine.begin() as conn:
        conn.execute(snapshots.update().where(snapshots.c.seq == seqs[0]).values(data=b"garbage"))
    twin = reload(rt)
    assert twin.seq == rt.seq == 60  # snapshot 55 plus 5 replayed events
    assert twin.counters == rt.counters
    assert [t.params for t in twin.propose(5)[0]] == [t.params for t in rt.propose(5)[0]]
    rt.close()
    twin.close()


def test_failed_write_is_not_acknowledged_and_runtime_rebuilds(store: Store) -> None:
    rt = make(store)
    _, f = rt.propose(2)
    f.result()
    real_append = store.append_event

    def failing(*a, **k) -> Future:
        fut: Future = Future()
        fut.set_exception(RuntimeError("disk full"))
        return fut

    store.append_event = failing  # type: ignore[method-assign]
    _, f = rt.propose(3)
    with pytest.raises(RuntimeError, match="disk full"):
        f.result()
    rt.mark_write_failed()  # what the HTTP layer does before answering 503
    store.append_event = real_append  # type: ignore[method-assign]
    # The next call rebuilds from the log: the unacknowledged 3 tasks never happened.
    nxt, f = rt.propose(3)
    f.result()
    assert rt.counters.tasks_issued == 5
    fresh = reload(rt)
    assert fresh.counters == rt.counters
    assert [t.id for t in nxt] == [f"exp1-{i}" for i in range(2, 5)]


def test_sweep_is_cheap_when_nothing_is_due(store: Store) -> None:
    rt = make(store, lease=3600)
    rt.propose(100)
    t0 = time.perf_counter()
    for _ in range(1000):
        rt.sweep()
    assert rt.counters.expired == 0
    assert time.perf_counter() - t0 < 1.0


def test_store_refuses_later_writes_after_a_failure_until_reset(store: Store) -> None:
    store.create_experiment(ExperimentRecord("x", "x", {}, 0.0)).result()
    store.append_event("x", 1, "tasks", b"{}").result()
    bad = store.append_event("x", 1, "tasks", b"{}")  # same seq: the database refuses it
    with pytest.raises(Exception, match="integrity"):
        bad.result()
    later = store.append_event("x", 2, "tasks", b"{}")  # would leave a gap: refused too
    with pytest.raises(Exception, match="earlier write"):
        later.result()
    assert [e.seq for e in store.iter_events("x")] == [1]
    store.barrier().result()
    store.reset_failure("x")
    store.append_event("x", 2, "tasks", b"{}").result()
    assert [e.seq for e in store.iter_events("x")] == [1, 2]
