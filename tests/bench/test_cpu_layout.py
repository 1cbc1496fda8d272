"""``benchmarks/cpu_layout.py`` and ``service_load.py --fit-cpus``: the fit workers of a real
server are moved, every thread of them, to the CPUs asked for."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.cpu_layout import parse_cpu_list, pin_process, process_cpus, split_cpus
from benchmarks.service_load import Bench, parse_args, plot_refits
from teacher_service.testing import ServerProcess
from tests.helpers import fit_workers

REPO = Path(__file__).resolve().parents[2]
ALLOWED = frozenset(os.sched_getaffinity(0))


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("1") == {1}
    assert parse_cpu_list("0, 3") == {0, 3}
    assert parse_cpu_list("2-4,7") == {2, 3, 4, 7}
    for bad in ("", "a", "1,", "-1", "3-2", "1-x"):
        with pytest.raises(ValueError, match="not a CPU list"):
            parse_cpu_list(bad)


def test_split_cpus_leaves_the_others_and_refuses_what_cannot_be() -> None:
    with pytest.raises(ValueError, match="not available"):
        split_cpus(frozenset({max(ALLOWED) + 1}))
    with pytest.raises(ValueError, match="leave no CPU"):
        split_cpus(ALLOWED)
    if len(ALLOWED) > 1:
        fit = frozenset({max(ALLOWED)})
        assert split_cpus(fit) == ALLOWED - fit


def test_pin_process_moves_every_thread() -> None:
    # A child with a second thread started before it is moved: each thread keeps its own
    # affinity, so moving the process's main thread alone would leave this one behind.
    code = (
        "import threading, time, sys; threading.Thread(target=time.sleep, args=(60,)).start();"
        "print('up', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        target = frozenset({max(ALLOWED)})
        assert pin_process(child.pid, target) == 2
        for tid in os.listdir(f"/proc/{child.pid}/task"):
            assert os.sched_getaffinity(int(tid)) == target
        assert process_cpus(child.pid) == target
    finally:
        child.kill()
        child.wait()
    assert pin_process(child.pid, ALLOWED) == 0  # gone: nothing to move


def test_fit_cpus_option_pins_a_real_servers_fit_workers(tmp_path: Path) -> None:
    if len(ALLOWED) < 2:  # no layout exists on one CPU: the option is refused
        with pytest.raises(SystemExit):
            parse_args(["--fit-cpus", str(max(ALLOWED))])
        return
    fit = frozenset({max(ALLOWED)})
    args = parse_args(["--fit-cpus", str(max(ALLOWED)), "--quick"])
    assert args.fit_cpus == fit and args.other_cpus == ALLOWED - fit
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'p.db'}",
        log_path=tmp_path / "p.log",
        extra=["--fit-processes", "1"],
    ).start()
    try:
        bench = Bench(server, args)
        # A GMM teacher warms the fit pool: its worker (and the pool's resource tracker)
        # start as children of the server, on the server's CPUs.
        asyncio.run(bench.create("pin", "alp_gmm"))
        deadline = time.time() + 60
        children: list[int] = []
        while time.time() < deadline:
            children = fit_workers(server.proc.pid)
            if children:
                break
            time.sleep(0.2)
        assert children, "the server started no fit worker"
        assert process_cpus(children[0]) == ALLOWED
        assert bench.pin_fit_workers() >= 1
        for pid in children:
            assert process_cpus(pid) == fit
        assert process_cpus(server.proc.pid) == ALLOWED  # the server itself is not moved
    finally:
        server.stop()


def test_the_plot_names_the_layout(tmp_path: Path) -> None:
    res = json.loads((REPO / "benchmarks/results/service_load_fit_cpus.json").read_text())
    assert res["cpu_layout"] == {"fit_workers": [1], "servers_and_load": [0]}
    assert all(
        r["server_children_pinned"] >= 1
        for r in res["during_refits"]["runs"]
        if r["fit_processes"] > 0
    )
    png = tmp_path / "layout.png"
    assert plot_refits(res["during_refits"], png, res["cpu_layout"]) == png
    assert png.stat().st_size > 0
