"""Processes for the teachers' expensive background work (the GMM refits of ALP-GMM and
Covar-GMM), outside the server process.

Why: a refit is ~0.1 s of scikit-learn EM, most of it Python that holds the GIL. Run in a
thread of the server, it held up every request of every experiment while it ran (p99 of a
batch-1 request went from ~10 ms to 90-140 ms during fits). In a process of its own it only
shares the CPU.

What stays the same: a fit is a pure function of inputs fixed when it starts (the rows and a
seed drawn from the teacher's generator), and its result takes effect at a fixed episode, so a
fit computed here, in a thread, or again synchronously after a restore gives the same mixture
bit for bit (every worker runs BLAS and OpenMP on one thread, as the in-process fit does).

Kept light at import (no numpy, no scikit-learn): a spawned worker imports this module first,
and its initializer must set the thread counts before numpy loads.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)

#: Environment variables that fix the thread count of the numeric libraries a worker loads.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(preload: tuple[str, ...], server: int) -> None:
    """Initializer of every worker: one BLAS / OpenMP thread, the setting the in-process fit
    uses (the same bits, and no oversubscription of the server's cores); the modules its work
    needs, imported before it takes any (scikit-learn takes a second or two); and a watch on
    the server, so that a worker does not outlive a server that was killed.

    Workers keep the server's priority: a fit must be done by its due episode, and a lower
    priority on a machine whose cores the requests keep busy makes it late, so that the
    proposals then wait for it (measured in docs/results/service-load.md).
    """
    for name in _ONE_THREAD:
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    # The server's pid comes from the server: a worker whose server was killed while it was
    # still starting (imports take seconds) is already re-parented here, and would take its
    # new parent for the server and never exit.
    threading.Thread(
        target=_exit_with_parent, args=(server,), name="fit-pool-watch", daemon=True
    ).start()
    _import(preload)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Exit when the server that started this worker is gone (a SIGKILLed server cannot
    shut its pool down; the orphan is re-parented, so its parent pid changes)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def _import(modules: tuple[str, ...]) -> int:
    """Import ``modules`` in this worker (and report its pid): also the task that starts a
    worker, whose initializer has imported them already."""
    for module in modules:
        importlib.import_module(module)
    return os.getpid()


class FitPool:
    """A pool of worker processes for pure background computations, started on first use.

    ``submit`` has the :class:`concurrent.futures.Executor` signature, so a teacher treats the
    pool like its own fit thread. A pool whose worker died (killed, out of memory) is replaced
    on the next submit; the futures it failed raise :class:`BrokenProcessPool`, and a teacher
    then computes its fit synchronously.

    Args:
        processes: worker processes (at least 1).
    """

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._warming: list[Future] | None = None  # warm()'s tasks, once called
        self._preload: tuple[str, ...] = ()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the fit pool is closed")
            if self._pool is None:
                # spawn, not fork: the server has threads (the writer, the event loop's pool)
                # whose locks a forked child would inherit held
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(self._preload, os.getpid()),
                )
            return self._pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` in a worker; its future.

        Raises:
            RuntimeError: the pool is closed.
        """
        pool = self._executor()
        try:
            return pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            log.warning("the fit pool lost a worker; starting a new one")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return self._executor().submit(fn, *args, **kwargs)

    def warm(self, *preload: str) -> Future | None:
        """Start the workers now, each importing the ``preload`` modules before it takes any
        work (a spawned worker needs a second or two, more on a busy machine, before it can
        fit); workers already running import the modules they do not have yet. The future
        gives the pid of the first worker done; None when there was nothing to do or the pool
        is closed. Until one is done :meth:`ready` is False.

        A user of the pool calls it with what its work imports, as a GMM teacher does with
        its fit module: whichever user comes first, no later one's first task pays for the
        imports (workers started after a crash import them all in their initializer).
        """
        with self._lock:
            if self._closed:
                return None
            new = tuple(m for m in preload if m not in self._preload)
            if self._warming is not None and not new:
                return None
            self._preload += new  # what workers started from now on import first
            self._warming = []
        # One task per worker: the executor starts a process for each task no idle one takes,
        # and idle workers take one each (a worker that misses one imports on first use).
        started = [self.submit(_import, new) for _ in range(self.processes)]
        with self._lock:
            self._warming = started
        return started[0]

    def ready(self) -> bool:
        """Whether a worker can take work at once, its imports done (after :meth:`warm`)."""
        with self._lock:
            return bool(self._warming) and any(f.done() for f in self._warming)

    def close(self) -> None:
        """Stop the workers; fits still queued are cancelled (teachers recompute them)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
