"""ExperimentRuntime against a real SQLite store: leases, limits, snapshots, write failures."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import teacher_service.storage.store as store_module
from api_schemas.experiments import ExperimentCreate
from api_schemas.reports import Report
from teacher_service.api.deps import call_runtime
from teacher_service.errors import BatchTooLargeError, TaskNotFoundError
from teacher_service.runtime import ExperimentRuntime, status_from_runs, status_runs
from teacher_service.storage import ExperimentRecord, Store, pack_state, unpack_state
from teacher_service.storage.tables import snapshots
from tests.conftest import BOX2
from tests.helpers import HeldExecutor


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


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_status_runs_round_trip(n: int) -> None:
    rng = np.random.default_rng(n)
    for status in (
        rng.integers(0, 3, n).astype(np.uint8),  # worst case: short runs
        np.ones(n, dtype=np.uint8),  # the usual case: everything reported
        np.repeat(np.array([1, 2, 1, 0], dtype=np.uint8), -(-n // 4))[:n],
    ):
        runs = status_runs(status)
        assert np.array_equal(status_from_runs(runs, n), status)
        assert len(runs["starts"]) == (0 if n == 0 else 1 + np.count_nonzero(np.diff(status)))


def test_broken_status_runs_are_refused() -> None:
    good = status_runs(np.array([1, 1, 0, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="differ in length"):
        status_from_runs({"starts": good["starts"], "codes": good["codes"][:-1]}, 4)
    with pytest.raises(ValueError, match="not increasing"):
        status_from_runs({"starts": np.array([0, 2, 2]), "codes": good["codes"]}, 4)
    with pytest.raises(ValueError, match="not increasing"):
        status_from_runs(good, 3)  # a run starts past the tasks


def test_snapshots_stay_small_as_the_history_grows(store: Store) -> None:
    # One byte per task ever issued made a 10^6-episode snapshot a megabyte; the runs of an
    # all-reported history are a few bytes, and a restore rebuilds the statuses exactly.
    rt = make(store, snapshot_every=20)  # every 10 rounds of a batch and its report
    sizes = []
    for rounds in (10, 200):
        for _ in range(rounds):
            tasks, _ = rt.propose(64)
            rt.report([rep(t.id) for t in tasks])
        store.barrier().result()
        (seq, load), *_ = store.snapshots_newest_first(rt.id)
        assert seq == rt.seq
        with store.engine.connect() as conn:
            data = conn.execute(snapshots.select().where(snapshots.c.seq == seq)).one().data
        sizes.append(len(data))
        assert np.array_equal(load()["status_runs"]["codes"], [1])  # one run: all reported
    assert sizes[1] - sizes[0] < 64, sizes  # 12,800 more tasks, the same size
    pending, _ = rt.propose(3)  # three outstanding at the end: a second run
    rt.report([rep(pending[1].id)])
    rt._snapshot()
    store.barrier().result()
    twin = reload(rt)
    assert np.array_equal(twin.status[: twin.next_index], rt.status[: rt.next_index])
    assert twin.counters == rt.counters
    with pytest.raises(TaskNotFoundError):  # reported twice is a duplicate, not a new report
        twin.report([rep("exp1-999999")])
    rt.close()
    twin.close()


def test_an_unreported_task_does_not_keep_the_settled_batches_after_it(store: Store) -> None:
    rt = make(store)
    (straggler,), _ = rt.propose(1)  # never reported: its batch waits for its lease
    for _ in range(300):
        tasks, _ = rt.propose(4)
        rt.report([rep(t.id) for t in tasks])
    last, _ = rt.propose(2)
    rt.report([rep(last[0].id)])
    rt._drop_settled_batches()
    # only the batches holding an outstanding task are kept, in issue order
    assert [int(b[1]) for b in rt.batches] == [0, 1201]
    rt.clock = lambda: 10**12  # past every lease: the same tasks expire as if all were kept
    rt.sweep()
    assert rt.counters.expired == 2 and sorted(rt.outstanding) == []
    assert straggler.id == "exp1-0"
    rt.close()


def test_snapshots_are_packed_off_the_writer_thread_and_barriers_wait_for_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed_on: list[str] = []
    release = threading.Event()
    real = store_module.pack_state

    def slow_pack(state):
        packed_on.append(threading.current_thread().name)
        release.wait(10)  # a large state being encoded
        return real(state)

    monkeypatch.setattr(store_module, "pack_state", slow_pack)
    rt = make(store)
    _tasks, _ = rt.propose(2)
    snap = store.put_snapshot(rt.id, rt.seq, rt._state_dict())
    barrier = store.barrier()
    # events queued while the snapshot is being packed commit without waiting for it
    _, written = rt.propose(1)
    written.result(timeout=10)
    assert not snap.done() and not barrier.done()
    release.set()
    assert snap.result(timeout=10) > 0 and barrier.result(timeout=10) is None
    assert packed_on and all(name.startswith("store-packer") for name in packed_on)
    # the snapshot (after event 1) was written after event 2; a restore replays event 2
    assert next(seq for seq, _ in store.snapshots_newest_first(rt.id)) == 1
    twin = reload(rt)
    assert twin.seq == rt.seq == 2 and twin.counters == rt.counters
    rt.close()
    twin.close()


def test_a_snapshot_that_cannot_be_packed_fails_its_future_only(store: Store) -> None:
    rt = make(store)
    rt.propose(1)[1].result()
    bad = store.put_snapshot(rt.id, rt.seq, {"x": object()})
    with pytest.raises(TypeError):
        bad.result(timeout=10)
    _, written = rt.propose(1)
    assert written.result(timeout=10) is None and store.barrier().result(timeout=10) is None
    rt.close()


def test_snapshots_with_a_raw_status_array_still_load(store: Store) -> None:
    # the format before run-length statuses
    rt = make(store)
    tasks, _ = rt.propose(5)
    rt.report([rep(t.id) for t in tasks[:3]])
    state = rt._state_dict()
    runs = state.pop("status_runs")
    state["status"] = status_from_runs(runs, rt.next_index)
    store.put_snapshot(rt.id, rt.seq, state).result()
    twin = reload(rt)
    assert np.array_equal(twin.status[:5], [1, 1, 1, 0, 0]) and twin.counters == rt.counters
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


def test_a_proposal_waits_for_its_fit_without_holding_the_lock_and_the_wait_is_counted(
    store: Store,
) -> None:
    fits = HeldExecutor()
    teacher = {"kind": "alp_gmm", "fit_rate": 20, "bootstrap": 20, "fit_delay": 5}
    rt = make(store, teacher=teacher, background=fits)
    spare, _ = rt.propose(1)  # reported while a proposal waits
    for _ in range(25):  # the fit starts at 20 and falls due at 25; reports never wait
        tasks, _ = rt.propose(1)
        rt.report([rep(tasks[0].id, tasks[0].params["x"])])
    assert rt.may_block(0) and not rt.may_block(1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(rt.propose, 2)
        time.sleep(0.2)
        assert not waiting.done()
        # Meanwhile the experiment's lock is free: reports and reads go on.
        assert rt.lock.acquire(blocking=False)
        rt.lock.release()
        assert rt.report([rep(spare[0].id)])[0].accepted == 1
        assert rt.state().counters.reports_accepted == 26
        fits.gate.set()
        proposed, _ = waiting.result(timeout=60)
    assert rt.teacher.n_fits_ == 1 and not rt.may_block(0)
    # The wait is counted (wall time since this process started; not in the log).
    assert rt.waits == 1 and rt.wait_seconds >= 0.2
    store.barrier().result()
    twin = reload(rt)  # the replay proposes what the live runtime proposes next
    assert [t.params for t in twin.propose(4)[0]] == [t.params for t in rt.propose(4)[0]]
    assert len(proposed) == 2
    assert twin.waits == 0 and twin.wait_seconds == 0.0
    rt.close()
    twin.close()
    fits.shutdown()


def test_call_runtime_never_waits_for_the_lock_on_the_event_loop(store: Store) -> None:
    rt = make(store)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with rt.lock:
            held.set()
            release.wait(timeout=60)

    async def main() -> tuple[list[float], float]:
        ticks: list[float] = []

        async def heartbeat() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.05)
        start = time.monotonic()
        tasks, fut = await call_runtime(rt, 0, rt.propose, 1)
        took = time.monotonic() - start
        await asyncio.wrap_future(fut)
        beat.cancel()
        assert len(tasks) == 1
        return ticks, took

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=10)
    threading.Timer(0.5, release.set).start()
    ticks, took = asyncio.run(main())
    holder.join()
    assert took >= 0.4  # it waited for the lock...
    assert max(np.diff(ticks)) < 0.25  # ...in a worker thread: the loop kept running
    assert rt.counters.tasks_issued == 1
    rt.close()
