"""The fit pool: work runs in another process, a lost worker is replaced, and a GMM teacher
proposes the same tasks whether its fits run in the pool, in a thread, or again in-process
after the pool failed them."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from api_schemas.experiments import ExperimentCreate
from teacher_service.fit_pool import FitPool, _worker_init
from teacher_service.teachers import gmm_base
from teacher_service.teachers.base import TaskResult
from teacher_service.teachers.registry import make_teacher

SPEC = ExperimentCreate(
    name="gmm",
    space={
        "kind": "box",
        "dims": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
    },
    teacher={"kind": "alp_gmm", "fit_rate": 30, "bootstrap": 30, "fit_delay": 10},
    seed=4,
)


def warmed(pool: FitPool) -> FitPool:
    """``pool`` once its first worker can fit (before that, teachers fit in a thread)."""
    first = pool.warm(gmm_base.__name__)
    assert first is not None and first.result(timeout=60) != os.getpid()
    assert pool.ready()
    return pool


@pytest.fixture(scope="module")
def pool() -> Iterator[FitPool]:
    p = FitPool(1)
    yield warmed(p)
    p.close()


def run_teacher(background, rounds: int = 25, on_round=None) -> tuple[list, int]:
    """Proposals of an ALP-GMM teacher over ``rounds`` batches of 8 (a learnable return)."""
    teacher = make_teacher(SPEC.space, SPEC.teacher, SPEC.seed)
    teacher.use_background(background)
    out = []
    for i in range(rounds):
        tasks = teacher.propose(8)
        out += [tuple(t.params.values()) for t in tasks]
        teacher.observe(
            [TaskResult(t, t.params["a"] * (1 - t.params["b"])) for t in tasks]  # type: ignore[arg-type]
        )
        if on_round is not None:
            on_round(i, teacher)
    fits = teacher.n_fits_
    teacher.close()
    return out, fits


def test_work_runs_in_another_process(pool: FitPool) -> None:
    pid = pool.submit(os.getpid).result(timeout=60)
    assert pid != os.getpid()
    assert pool.warm() is None and pool.ready()  # warming happens once


def _start_worker_and_stay(server: int) -> None:
    _worker_init((), server)
    time.sleep(60)


def test_a_worker_whose_server_is_gone_before_it_started_exits() -> None:
    # A server killed while its worker was still starting: the worker, re-parented before
    # its initializer ran, must not take its new parent for the server.
    spawn = multiprocessing.get_context("spawn")
    gone = spawn.Process(target=os.getpid)
    gone.start()
    gone.join()
    worker = spawn.Process(target=_start_worker_and_stay, args=(gone.pid,))
    worker.start()
    worker.join(timeout=30)
    alive = worker.is_alive()
    if alive:
        worker.kill()
    assert not alive and worker.exitcode == 0


def loaded(pool: FitPool, module: str) -> bool:
    """Whether ``module`` is imported in the (one) worker of ``pool``."""
    return pool.submit(eval, f"{module!r} in __import__('sys').modules").result(timeout=60)


def test_a_later_user_s_modules_are_imported_in_running_workers() -> None:
    p = FitPool(1)
    try:
        assert p.warm() is not None and p.warm() is None  # started by a user with no imports
        p.submit(os.getpid).result(timeout=60)
        assert not loaded(p, "colorsys")
        first = p.warm("colorsys")  # a second user, whose work needs colorsys
        assert first is not None
        assert first.result(timeout=60) != os.getpid() and p.ready()
        assert loaded(p, "colorsys")
        assert p.warm("colorsys") is None  # nothing new to import
    finally:
        p.close()


def test_fits_in_the_pool_propose_what_fits_in_a_thread_propose(pool: FitPool) -> None:
    pooled, fits = run_teacher(pool)
    threaded, thread_fits = run_teacher(None)
    assert fits == thread_fits >= 5
    assert pooled == threaded


def test_a_lost_worker_is_replaced_and_its_fit_recomputed_in_process() -> None:
    pool = warmed(FitPool(1))
    try:
        first = pool.submit(os.getpid).result(timeout=60)
        killed = []

        def kill_worker_with_a_fit_pending(_: int, teacher) -> None:
            if not killed and teacher.view()["pending_fit"] is not None:
                os.kill(first, signal.SIGKILL)  # the fit in flight is lost with it
                killed.append(first)

        survived, fits = run_teacher(pool, on_round=kill_worker_with_a_fit_pending)
        assert killed and fits >= 5
        assert survived == run_teacher(None)[0]
        # the pool runs work again, in a new worker
        assert pool.submit(os.getpid).result(timeout=60) not in (first, os.getpid())
    finally:
        pool.close()


class BrokenPool:
    """An executor whose every fit is lost (its worker died before answering)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        fut.set_exception(BrokenProcessPool("a worker died"))
        return fut


def test_fits_the_pool_lost_are_recomputed_in_process(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        lost, fits = run_teacher(BrokenPool())
    assert fits >= 5 and lost == run_teacher(None)[0]
    assert sum("background fit lost" in r.message for r in caplog.records) == fits


def test_a_closed_pool_refuses_work_and_teachers_fit_in_a_thread() -> None:
    pool = FitPool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(os.getpid)
    assert pool.warm() is None
    assert run_teacher(pool)[0] == run_teacher(None)[0]
    with pytest.raises(ValueError, match="processes must be >= 1"):
        FitPool(0)


def test_candidates_dealt_over_two_workers_give_the_same_fits() -> None:
    two = warmed(FitPool(2))
    try:
        dealt: list[list[int]] = []

        def on_round(_: int, teacher) -> None:
            p = teacher._pending
            if p is not None and p.parts and not dealt:
                dealt.append([len(p.parts)])

        split, fits = run_teacher(two, on_round=on_round)
        whole, whole_fits = run_teacher(None)
        assert dealt == [[2]]  # each fit was dealt over both workers
        assert fits == whole_fits >= 5
        assert split == whole  # the same mixtures, bit for bit
    finally:
        two.close()


def test_until_the_pool_is_ready_fits_run_in_a_thread_with_the_same_results() -> None:
    cold = FitPool(1)
    try:
        assert not cold.ready()  # not warmed: no worker can take a fit at once
        used: list[bool] = []
        first_fit_in_pool: list[bool] = []

        def on_round(_: int, teacher) -> None:
            p = teacher._pending
            if p is not None and not used:
                used.append(True)
                first_fit_in_pool.append(bool(p.parts) and teacher._executor is None)

        proposed, fits = run_teacher(cold, on_round=on_round)  # warms it (spawn: seconds)
        assert first_fit_in_pool == [False]  # the first fit went to the teacher's thread
        assert proposed == run_teacher(None)[0] and fits >= 5
        assert cold._warming  # the teacher started the workers, each preloading its module
        assert cold._preload == (gmm_base.__name__,)
    finally:
        cold.close()


def test_split_ks_balances_and_covers_every_k() -> None:
    ks = list(range(2, 11))
    two = gmm_base.split_ks(ks, 2)
    assert sorted(k for g in two for k in g) == ks
    assert abs(sum(two[0]) - sum(two[1])) <= 2 and all(g == sorted(g) for g in two)
    assert gmm_base.split_ks(ks, 1) == [ks]
    assert gmm_base.split_ks([2, 3], 8) == [[3], [2]]
    assert gmm_base.split_ks([], 3) == []


def test_gather_combines_in_order_and_fails_with_a_failed_part() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    both = gmm_base.gather([a, b], lambda rs: rs)
    b.set_result(2)
    assert not both.done()
    a.set_result(1)
    assert both.result(timeout=1) == [1, 2]
    c: Future[int] = Future()
    d: Future[int] = Future()
    failed = gmm_base.gather([c, d], lambda rs: rs)
    c.set_exception(BrokenProcessPool("gone"))
    d.set_result(4)
    with pytest.raises(BrokenProcessPool):
        failed.result(timeout=1)
    assert gmm_base.gather([], lambda rs: rs).result(timeout=1) == []
