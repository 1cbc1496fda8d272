"""Laying processes out on CPUs for a benchmark (Linux only).

A benchmark that runs the load generator, the server and the server's fit workers on one
small machine measures them sharing cores. To see what a machine with cores to spare for the
fit workers would give, ``service_load.py --fit-cpus`` keeps the fit workers on some CPUs and
everything else on the others. The fit workers are started by the server, and a started
process's threads each keep the affinity they had, so each thread is moved on its own
(``/proc/<pid>/task``).
"""

from __future__ import annotations

import os


def parse_cpu_list(text: str) -> frozenset[int]:
    """CPU numbers from a list such as ``"1"``, ``"1,3"`` or ``"2-3"`` (``taskset -c`` form).

    Raises:
        ValueError: an empty, negative or malformed entry, or a range whose end is below
            its start.
    """
    cpus: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        low, sep, high = item.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(f"not a CPU list: {text!r} (e.g. 1 or 1,3 or 2-3)") from None
        if first < 0 or last < first:
            raise ValueError(f"not a CPU list: {text!r} (e.g. 1 or 1,3 or 2-3)")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def split_cpus(fit_cpus: frozenset[int]) -> frozenset[int]:
    """The CPUs left to everything but the fit workers: this process's CPUs less
    ``fit_cpus``.

    Raises:
        ValueError: this system cannot set affinities, ``fit_cpus`` holds a CPU this process
            may not use, or it leaves none.
    """
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("CPU affinity cannot be set on this system (Linux only)")
    allowed = frozenset(os.sched_getaffinity(0))
    if not fit_cpus <= allowed:
        raise ValueError(
            f"CPUs {sorted(fit_cpus - allowed)} are not available here (this process may "
            f"use {sorted(allowed)})"
        )
    rest = allowed - fit_cpus
    if not rest:
        raise ValueError(f"CPUs {sorted(fit_cpus)} leave no CPU for the server and the load")
    return rest


def pin_process(pid: int, cpus: frozenset[int]) -> int:
    """Move every thread of process ``pid`` to ``cpus``; the number of threads moved.

    A thread that exits meanwhile is skipped; a process that is gone moves none.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    moved = 0
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, FileNotFoundError):
            continue
        moved += 1
    return moved


def process_cpus(pid: int) -> frozenset[int]:
    """The CPUs that every thread of ``pid`` may run on (their union)."""
    cpus: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cpus |= os.sched_getaffinity(int(tid))
        except ProcessLookupError:
            continue
    return frozenset(cpus)
