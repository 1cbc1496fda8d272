#!/usr/bin/env python
"""Load benchmark of the teacher service over HTTP (docs/architecture.md#tests-and-benchmarks).

Starts a real server (``python -m teacher_service serve``) in a subprocess on a fresh SQLite
file and drives it from this process with asyncio: every virtual client owns one keep-alive
connection and loops ``POST /tasks`` (n = batch) then ``POST /reports`` for exactly those
tasks. For each teacher, concurrency and batch size it measures tasks/s, reports/s and
p50/p99/max latency per endpoint, and divides the request rate by the rate of ``GET /healthz``
at the same concurrency, measured in the same run (the HTTP-stack floor). To check that the
per-request cost does not grow with history, it first fills one experiment per teacher to a
large history (big batches, as fast as possible), then runs every cell of the grid twice back
to back: on a brand-new experiment (history 0) and on the large one. For ``random`` at 8
clients and batch 1 it then compares p99 fresh vs at history over several interleaved pairs of
windows (``history_p99``: one p99 of a few seconds is too noisy to compare alone).

Before the grid, the "during refits" scenario (``during_refits``): ALP-GMM past its bootstrap
at 8 clients and batch 1, so that several GMM refits start and take effect inside every
measured window (counted from ``teacher.fits`` of ``GET /state`` as the window opens and
closes), with ``GET /healthz`` at 8 clients on the same server just before each window, while
no fit runs and the server is otherwise idle (:func:`settle_fits`, :meth:`Bench.quiet`). It runs
on the main server (fits in worker processes, ``--fit-processes``, 2 like the server's
default) and on a second server started with ``--fit-processes 0`` (fits in a thread of the
server, holding its GIL: the behaviour before the pool), windows of the arms interleaved. The
full run adds a server with one fit process, a no-refits control arm and a pair of arms with a
longer ``fit_delay`` (see :func:`refit_arms`).

The load generator and the server share the machine; both are single Python processes, so
on a 2-core machine each gets about one core. The load generator speaks HTTP/1.1 itself over
asyncio streams (``--client raw``, the default), which costs about a sixth of the CPU per
request of ``httpx`` (``--client httpx``). Every scenario records ``server_cpu``,
``client_cpu`` and ``other_cpu`` (CPU seconds per wall second of the server, of this process
and of everything else on the machine) and ``server_cpu_ms_per_request``, the per-request cost
least disturbed by other jobs on a shared machine.

Usage::

    .venv/bin/python benchmarks/service_load.py          # full run: ~20-30 min on 2 cores,
                                                         # mostly alp_gmm's 10^6-episode fill
    .venv/bin/python benchmarks/service_load.py --quick  # smoke test, under a minute
    .venv/bin/python benchmarks/service_load.py --history-teachers random  # skip alp_gmm's fill
    .venv/bin/python benchmarks/service_load.py --teachers alp_gmm --history 0 --clients 8 \
        --batches 1 --fit-cpus 1   # the during-refits arms, fit workers alone on CPU 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families

from api_schemas.limits import MAX_BATCH
from benchmarks.cpu_layout import parse_cpu_list, pin_process, split_cpus
from benchmarks.machine import describe_machine
from benchmarks.plots import pyplot_or_none, save_figure
from teacher_service.teachers.gmm_base import next_fit_start
from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "service_load.json"
BOX2 = {
    "kind": "box",
    "dims": [{"name": "x", "low": 0.0, "high": 1.0}, {"name": "y", "low": 0.0, "high": 1.0}],
}
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (informational: printed as PASS/MISS and stored in the JSON).
TARGET_TASKS_PER_S = 20_000.0  # batch 64, best concurrency
TARGET_P99_MS = 10.0  # batch 1, 8 clients, both endpoints
TARGET_HISTORY_GEOMEAN_BAND = 1.25  # geomean of the large/fresh ratios within x0.8..x1.25
TARGET_HISTORY_CELL_BAND = 2.0  # every single ratio within x0.5..x2 (noise allowance)
# During refits (alp_gmm, 8 clients, batch 1, fits in worker processes): p99 of tasks and of
# reports <= this factor x the p99 of GET /healthz at 8 clients on the same server.
TARGET_REFIT_P99_FACTOR = 3.0
# p99 at history <= fresh p99 (random, 8 clients, batch 1): the medians over interleaved
# windows of the worse endpoint's p99, with this allowance for the noise of a p99 of a few
# seconds on a shared machine (the same x1.25 as the grid's history band above).
TARGET_HISTORY_P99_TOLERANCE = 1.25

REFIT_TEACHER = "alp_gmm"
REFIT_CLIENTS, REFIT_BATCH = 8, 1
HISTORY_P99_CLIENTS, HISTORY_P99_BATCH = 8, 1
# The control arm's fit_rate: no refit within a window (at most a few thousand episodes).
CONTROL_FIT_RATE = 10_000


def episode_return(params: dict[str, float]) -> float:
    """A deterministic stand-in for a student: best at the centre of the unit square."""
    x, y = params["x"], params["y"]
    return 1.0 - 2.0 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)


def reports_body(tasks: list[dict]) -> bytes:
    """The report batch for ``tasks`` (deterministic returns), as JSON bytes."""
    return orjson.dumps(
        {
            "reports": [
                {"task_id": t["id"], "episode_return": episode_return(t["params"])} for t in tasks
            ]
        }
    )


# --------------------------------------------------------------------------- HTTP clients
class HTTPStatusError(RuntimeError):
    """The server answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:300].decode(errors='replace')}")
        self.status = status


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on one asyncio connection.

    Much cheaper per request than a general client, which matters when the load generator
    shares two cores with the server. Handles Content-Length and chunked bodies.
    """

    name = "raw-asyncio"

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._host_line = f"Host: {host}:{port}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request and return ``(status, body)``."""
        reused = self._writer is not None
        if not reused:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        try:
            return await asyncio.wait_for(self._roundtrip(method, path, body), self.timeout)
        except TimeoutError:
            await self.close()  # the answer may still come: never reuse this connection
            raise
        except asyncio.IncompleteReadError as exc:
            await self.close()
            if reused and not exc.partial:
                # The server closed an idle keep-alive connection before reading: retry once.
                return await self.request(method, path, body)
            raise
        except (ConnectionError, OSError):
            await self.close()
            raise

    async def _roundtrip(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        r, w = self._reader, self._writer
        assert r is not None and w is not None
        head = b"%s %s HTTP/1.1\r\n%s" % (method.encode(), path.encode(), self._host_line)
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            w.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                w.write(body)
        else:
            w.write(head + b"\r\n")
        await w.drain()
        raw = await r.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = -1
        chunked = close = False
        for line in raw[:-4].split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await r.readuntil(b"\r\n")
                    break
                parts.append(await r.readexactly(size))
                await r.readexactly(2)
            data = b"".join(parts)
        elif length >= 0:
            data = await r.readexactly(length)
        else:
            data = await r.read()
            close = True
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        """Close the connection (a later request reconnects)."""
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()


class HttpxHTTP:
    """The same interface on ``httpx.AsyncClient`` (one connection per virtual client)."""

    name = "httpx"

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=timeout,
        )
        self._json = {"content-type": "application/json"}

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request and return ``(status, body)``."""
        import httpx

        try:
            r = await self._client.request(
                method, path, content=body, headers=self._json if body is not None else None
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise OSError(str(exc)) from exc
        return r.status_code, r.content

    async def close(self) -> None:
        """Close the client."""
        await self._client.aclose()


CLIENTS = {"raw": RawHTTP, "httpx": HttpxHTTP}


# --------------------------------------------------------------------------- measurement
def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


def _children_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each direct child of ``pid`` (the server's fit worker, its resource
    tracker), found by scanning /proc: this kernel may not expose ``task/*/children``."""
    out: dict[int, float] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                out[int(entry)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return out


def _machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have spent busy (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


def _latency(samples: list[float]) -> dict[str, float]:
    """p50/p99/max/mean in milliseconds of latencies given in seconds."""
    if not samples:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan, "n": 0}
    a = np.asarray(samples) * 1000.0
    p50, p99 = np.percentile(a, [50, 99])
    return {
        "p50": round(float(p50), 4),
        "p99": round(float(p99), 4),
        "max": round(float(a.max()), 4),
        "mean": round(float(a.mean()), 4),
        "n": int(a.size),
    }


@dataclass
class Window:
    """The measured interval.

    Throughput counts requests that complete inside it; latency samples are all requests that
    overlap it, including any that started before it opened or finished after it closed (so
    that a stall shows in p99/max instead of only lowering the throughput).
    """

    t0: float
    t1: float

    def __contains__(self, t: float) -> bool:
        return self.t0 <= t <= self.t1

    def overlaps(self, start: float, end: float) -> bool:
        """Whether a request that ran from ``start`` to ``end`` overlaps the window."""
        return start <= self.t1 and end >= self.t0


@dataclass
class Stats:
    """What the virtual clients of one scenario record."""

    lat: dict[str, list[float]] = field(default_factory=lambda: {"tasks": [], "reports": []})
    tasks: int = 0
    reports: int = 0
    requests: int = 0
    errors: int = 0
    first_error: str | None = None

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = str(exc)[:500]


async def _measure(
    n_clients: int,
    make_conn: Callable[[], Any],
    body: Callable[[Any, Window, Stats], Awaitable[None]],
    warmup: float,
    duration: float,
    server_pid: int,
    on_open: Callable[[], Awaitable[None]] | None = None,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Stats, dict[str, float]]:
    """Run ``body`` in a loop on ``n_clients`` connections until the window closes.

    Args:
        n_clients: concurrent virtual clients, one connection each.
        make_conn: a new connection.
        body: one iteration of a client (records into the :class:`Stats`).
        warmup: un-measured seconds before the window opens.
        duration: seconds the window stays open.
        server_pid: the server process, whose CPU (and its children's) is measured.
        on_open: awaited as the window opens, after the CPU counters are read (e.g. to
            read the teacher's state), while the clients keep going.
        on_close: the same as the window closes.

    Returns:
        The clients' records and the CPU split (``server_cpu``, ``server_children_cpu``,
        ``client_cpu``, ``other_cpu``: CPU seconds per wall second).
    """
    conns = [make_conn() for _ in range(n_clients)]
    stats = Stats()
    start = time.perf_counter()
    win = Window(start + warmup, start + warmup + duration)
    cpu: dict[str, float] = {}

    async def client(conn: Any) -> None:
        while time.perf_counter() < win.t1:
            try:
                await body(conn, win, stats)
            except (HTTPStatusError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                stats.error(exc)
                await asyncio.sleep(0.01)

    async def monitor() -> None:
        await asyncio.sleep(max(0.0, win.t0 - time.perf_counter()))
        m0, s0 = _machine_busy_seconds(), _proc_cpu_seconds(server_pid)
        k0 = _children_cpu_seconds(server_pid)
        c0, w0 = time.process_time(), time.perf_counter()
        if on_open is not None:
            await on_open()
        await asyncio.sleep(max(0.0, win.t1 - time.perf_counter()))
        m1, s1 = _machine_busy_seconds(), _proc_cpu_seconds(server_pid)
        k1 = _children_cpu_seconds(server_pid)
        c1, w1 = time.process_time(), time.perf_counter()
        if on_close is not None:
            await on_close()
        # A child started inside the window (a replaced fit worker) counts from zero.
        kids = sum(t - k0.get(pid, 0.0) for pid, t in k1.items())
        cpu["server_cpu"] = round((s1 - s0) / (w1 - w0), 3)
        # The server's fit worker runs in a child process: its CPU is the server's work too.
        cpu["server_children_cpu"] = round(kids / (w1 - w0), 3)
        cpu["client_cpu"] = round((c1 - c0) / (w1 - w0), 3)
        # Everything else running on the machine meanwhile (other jobs skew the figures).
        cpu["other_cpu"] = round(((m1 - m0) - (s1 - s0) - kids - (c1 - c0)) / (w1 - w0), 3)

    try:
        await asyncio.gather(monitor(), *(client(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return stats, cpu


class Bench:
    """Holds the server address, the HTTP client kind and the timing settings."""

    def __init__(
        self, server: ServerProcess, args: argparse.Namespace, fit_processes: int | None = None
    ) -> None:
        self.server = server
        self.fit_processes = args.fit_processes if fit_processes is None else fit_processes
        self.pid = server.proc.pid if server.proc else -1
        self.host, self.port = "127.0.0.1", server.port
        self.conn_cls = CLIENTS[args.client]
        self.duration = args.duration
        self.warmup = args.warmup
        self.args = args

    def pin_fit_workers(self) -> int | None:
        """With ``--fit-cpus``, move the server's children (its fit workers and their
        pool's resource tracker) to those CPUs and return how many there are; ``None``
        without the option. Called before every measurement: the server starts its workers
        on first use, on its own CPUs."""
        cpus = self.args.fit_cpus
        if cpus is None:
            return None
        children = list(_children_cpu_seconds(self.pid))
        for child in children:
            pin_process(child, cpus)
        return len(children)

    def conn(self) -> Any:
        return self.conn_cls(self.host, self.port, self.args.request_timeout)

    async def fetch(self, method: str, path: str, payload: Any = None, ok: int = 200) -> bytes:
        """One request on a throw-away connection; JSON in, the body's bytes out."""
        c = self.conn()
        try:
            status, data = await c.request(
                method, path, None if payload is None else orjson.dumps(payload)
            )
        finally:
            await c.close()
        if status != ok:
            raise HTTPStatusError(method, path, status, data)
        return data

    async def call(self, method: str, path: str, payload: Any = None, ok: int = 200) -> Any:
        """One request on a throw-away connection; JSON in, JSON out."""
        return orjson.loads(await self.fetch(method, path, payload, ok))

    async def create(
        self, name: str, teacher: str, seed: int = 0, config: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create experiment ``name`` with ``teacher`` (and its ``config`` options)."""
        body = {
            "name": name,
            "space": BOX2,
            "teacher": {"kind": teacher, **(config or {})},
            "seed": seed,
        }
        return await self.call("POST", "/v1/experiments", body, ok=201)

    async def state(self, name: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/experiments/{name}/state")

    async def teacher_waits(self, name: str) -> dict[str, float]:
        """How often, and how many seconds in all, ``name``'s calls have waited for its
        teacher's background work (a fit due but not finished), from ``GET /metrics``."""
        data = await self.fetch("GET", "/metrics")
        names = {
            "autocurriculum_teacher_waits_total": "waits",
            "autocurriculum_teacher_wait_seconds_total": "seconds",
        }
        out = {"waits": 0.0, "seconds": 0.0}
        for family in text_string_to_metric_families(data.decode()):
            for sample in family.samples:
                if sample.name in names and sample.labels.get("experiment") == name:
                    out[names[sample.name]] = sample.value
        return out

    async def quiet(
        self, idle_share: float = 0.05, step: float = 0.25, max_seconds: float = 15.0
    ) -> float:
        """Wait until the server and its children (fit workers) use less than ``idle_share``
        of a core over ``step`` seconds, at most ``max_seconds``: background work left from
        before (fit workers still importing, a snapshot after a large fill) would otherwise
        fall into the next measurement. Returns the seconds waited (``max_seconds`` if the
        server never went quiet)."""
        start = time.perf_counter()

        def busy() -> float:
            return _proc_cpu_seconds(self.pid) + sum(_children_cpu_seconds(self.pid).values())

        while (waited := time.perf_counter() - start) < max_seconds:
            before = busy()
            await asyncio.sleep(step)
            if (busy() - before) / step < idle_share:
                return round(waited, 2)
        return round(max_seconds, 2)

    # ----------------------------------------------------------------- scenarios
    async def healthz(self, clients: int, samples: list[float] | None = None) -> dict[str, Any]:
        """``GET /healthz`` in a loop on ``clients`` connections: the HTTP-stack floor.

        Args:
            clients: concurrent connections.
            samples: if given, the latencies (seconds) of the window are appended to it.
        """

        async def body(conn: Any, win: Window, st: Stats) -> None:
            a = time.perf_counter()
            status, data = await conn.request("GET", "/healthz")
            b = time.perf_counter()
            if status != 200:
                raise HTTPStatusError("GET", "/healthz", status, data)
            if win.overlaps(a, b):
                st.lat["tasks"].append(b - a)
            if b in win:
                st.requests += 1

        st, cpu = await _measure(clients, self.conn, body, self.warmup, self.duration, self.pid)
        if samples is not None:
            samples.extend(st.lat["tasks"])
        return {
            "clients": clients,
            "requests_per_s": round(st.requests / self.duration, 1),
            "latency_ms": _latency(st.lat["tasks"]),
            "errors": st.errors,
            **cpu,
        }

    async def loop(
        self,
        name: str,
        clients: int,
        batch: int,
        duration: float | None = None,
        on_open: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Stats, dict[str, float]]:
        """Every client asks for ``batch`` tasks, reports them, and again (see :func:`_measure`
        for ``on_open`` / ``on_close``); ``duration`` defaults to ``--duration``."""
        tasks_path = f"/v1/experiments/{name}/tasks"
        reports_path = f"/v1/experiments/{name}/reports"
        ask = orjson.dumps({"n": batch})
        self.pin_fit_workers()

        async def body(conn: Any, win: Window, st: Stats) -> None:
            a = time.perf_counter()
            status, data = await conn.request("POST", tasks_path, ask)
            b = time.perf_counter()
            if status != 200:
                raise HTTPStatusError("POST", tasks_path, status, data)
            tasks = orjson.loads(data)["tasks"]
            if win.overlaps(a, b):
                st.lat["tasks"].append(b - a)
            if b in win:
                st.tasks += len(tasks)
                st.requests += 1
            rep = reports_body(tasks)
            c = time.perf_counter()
            status, data = await conn.request("POST", reports_path, rep)
            d = time.perf_counter()
            if status != 200:
                raise HTTPStatusError("POST", reports_path, status, data)
            if win.overlaps(c, d):
                st.lat["reports"].append(d - c)
            if d in win:
                st.reports += orjson.loads(data)["accepted"]
                st.requests += 1

        return await _measure(
            clients,
            self.conn,
            body,
            self.warmup,
            self.duration if duration is None else duration,
            self.pid,
            on_open,
            on_close,
        )

    async def scenario(
        self, teacher: str, name: str, kind: str, history_target: int, clients: int, batch: int
    ) -> dict[str, Any]:
        history = (await self.state(name))["counters"]["reports_accepted"]
        st, cpu = await self.loop(name, clients, batch)
        res = {
            "teacher": teacher,
            "history": history,
            "kind": kind,
            "history_target": history_target,
            "experiment": name,
            "clients": clients,
            "batch": batch,
            "tasks_per_s": round(st.tasks / self.duration, 1),
            "reports_per_s": round(st.reports / self.duration, 1),
            "requests_per_s": round(st.requests / self.duration, 1),
            "latency_ms": {
                "tasks": _latency(st.lat["tasks"]),
                "reports": _latency(st.lat["reports"]),
            },
            "ratio_to_healthz": None,
            "errors": st.errors,
            **cpu,
        }
        # Server CPU per request: the per-request cost least disturbed by other load.
        srv = cpu.get("server_cpu", math.nan)
        res["server_cpu_ms_per_request"] = (
            round(1000.0 * srv / res["requests_per_s"], 4) if res["requests_per_s"] else None
        )
        if st.first_error:
            res["first_error"] = st.first_error
            print(f"    ! {st.errors} errors, first: {st.first_error}", flush=True)
        return res

    # ---------------------------------------------------------------------- fill
    async def fill(
        self, teacher: str, name: str, target: int, quiet: bool = False
    ) -> dict[str, Any]:
        """Bring ``name`` to ``target`` reported episodes with maximal batches."""
        start_hist = (await self.state(name))["counters"]["reports_accepted"]
        issued = [start_hist]
        done = [start_hist]
        lat: dict[str, list[float]] = {"tasks": [], "reports": []}
        t_start = time.perf_counter()
        deadline = t_start + self.args.fill_max_seconds
        tasks_path = f"/v1/experiments/{name}/tasks"
        reports_path = f"/v1/experiments/{name}/reports"

        async def worker() -> None:
            conn = self.conn()
            try:
                while issued[0] < target and time.perf_counter() < deadline:
                    n = min(MAX_BATCH, target - issued[0])
                    issued[0] += n
                    a = time.perf_counter()
                    status, data = await conn.request("POST", tasks_path, orjson.dumps({"n": n}))
                    if status != 200:
                        raise HTTPStatusError("POST", tasks_path, status, data)
                    b = time.perf_counter()
                    tasks = orjson.loads(data)["tasks"]
                    rep = reports_body(tasks)
                    c = time.perf_counter()
                    status, data = await conn.request("POST", reports_path, rep)
                    if status != 200:
                        raise HTTPStatusError("POST", reports_path, status, data)
                    d = time.perf_counter()
                    lat["tasks"].append(b - a)
                    lat["reports"].append(d - c)
                    done[0] += orjson.loads(data)["accepted"]
            finally:
                await conn.close()

        async def progress() -> None:
            last = time.perf_counter()
            last_done = done[0]
            while True:
                await asyncio.sleep(self.args.progress_every)
                now = time.perf_counter()
                rate = (done[0] - last_done) / (now - last)
                overall = (done[0] - start_hist) / (now - t_start)
                eta = (target - done[0]) / overall if overall > 0 else math.inf
                print(
                    f"    fill {teacher}: {done[0]:>10,}/{target:,} episodes  "
                    f"{rate:>9,.0f}/s now  {overall:>9,.0f}/s overall  "
                    f"{now - t_start:6.1f}s elapsed  ETA {eta:6.1f}s",
                    flush=True,
                )
                last, last_done = now, done[0]

        prog = asyncio.create_task(progress() if not quiet else asyncio.sleep(0))
        try:
            await asyncio.gather(*(worker() for _ in range(self.args.fill_clients)))
        finally:
            prog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prog
        secs = time.perf_counter() - t_start
        reached = (await self.state(name))["counters"]["reports_accepted"]
        rate = (reached - start_hist) / secs if secs > 0 else math.nan
        stopped = reached < target
        if not quiet or stopped:
            print(
                f"    fill {name}: {reached:,} episodes in {secs:.1f}s = {rate:,.0f} episodes/s"
                + ("  (stopped by --fill-max-seconds)" if stopped else ""),
                flush=True,
            )
        return {
            "teacher": teacher,
            "experiment": name,
            "target": target,
            "reached": reached,
            "seconds": round(secs, 2),
            "episodes_per_s": round(rate, 1),
            "clients": self.args.fill_clients,
            "batch": MAX_BATCH,
            "stopped_early": stopped,
            "latency_ms": {"tasks": _latency(lat["tasks"]), "reports": _latency(lat["reports"])},
        }


# ------------------------------------------------------------------ during refits, history
def fits_started_and_applied(
    first: int, rate: int, delay: int, episodes_open: int, episodes_close: int
) -> int:
    """Fits that start after ``episodes_open`` episodes and take effect by ``episodes_close``.

    A GMM teacher starts fits at ``first + k * rate`` episodes (:func:`next_fit_start`) and
    installs each ``delay`` episodes later, so these are the fits whose whole life lies
    inside the window.
    """
    start = next_fit_start(episodes_open, first, rate)
    return max(0, (episodes_close - delay - start) // rate + 1)


@dataclass
class RefitArm:
    """One arm of the during-refits scenario: which server, which teacher options."""

    name: str
    bench: Bench
    config: dict[str, Any]
    prefill: int


def refit_arms(
    pool: Bench, threads: Bench, args: argparse.Namespace, other_pool: Bench | None = None
) -> list[RefitArm]:
    """The arms of the during-refits scenario, in the order of the first repeat.

    ``process_pool`` and ``threads`` are the comparison (the default ``fit_delay`` unless
    ``--refit-fit-delay``). ``process_pool_<N>`` (``other_pool``, if given) is a server with
    N fit processes instead of the main server's (``--refit-compare-processes``).
    ``no_refits_control`` fits once during its prefill and not again
    within the window (a fit_rate far above what a window reaches): ALP-GMM's latency with a
    mixture but without refits. The ``*_fit_delay_<D>`` pair gives each fit D episodes instead
    of the default, so that a fit is rarely still running when it falls due (the server then
    waits for it): what remains is the cost of the fit running beside the requests.
    """
    base: dict[str, Any] = {"fit_rate": args.refit_fit_rate}
    if args.refit_fit_delay is not None:
        base["fit_delay"] = args.refit_fit_delay
    arms = [
        RefitArm("process_pool", pool, base, args.refit_prefill),
        RefitArm("threads", threads, base, args.refit_prefill),
    ]
    if other_pool is not None:
        name = f"process_pool_{other_pool.fit_processes}"
        arms.insert(1, RefitArm(name, other_pool, base, args.refit_prefill))
    if args.refit_control:
        # The prefill passes the first fit (at fit_rate) and its fit_delay.
        control = {**base, "fit_rate": CONTROL_FIT_RATE}
        arms.append(RefitArm("no_refits_control", pool, control, CONTROL_FIT_RATE + 100))
    if args.refit_long_delay:
        d = args.refit_long_delay
        long_delay = {**base, "fit_delay": d}
        arms.append(RefitArm(f"process_pool_fit_delay_{d}", pool, long_delay, args.refit_prefill))
        arms.append(RefitArm(f"threads_fit_delay_{d}", threads, long_delay, args.refit_prefill))
    return arms


def last_fit_due(cfg: Mapping[str, Any], episodes: int) -> int | None:
    """The episode count at which the last fit started by ``episodes`` takes effect, if that
    is still ahead (the teacher's schedule, :func:`next_fit_start`, from its first fit at
    ``max(bootstrap, fit_rate)``; a fit takes effect ``fit_delay`` episodes after it starts)."""
    first, rate = max(int(cfg["bootstrap"]), int(cfg["fit_rate"])), int(cfg["fit_rate"])
    started = next_fit_start(episodes, first, rate) - rate  # the last start at or below it
    if started < first:
        return None
    due = started + int(cfg["fit_delay"])
    return due if episodes <= due else None


async def settle_fits(bench: Bench, name: str, cfg: Mapping[str, Any], episodes: int) -> int:
    """Take a prefilled experiment past the due point of the fit its prefill started last, so
    that no fit is running while the window's ``GET /healthz`` baseline is measured.

    The fill's concurrent batches can all be proposed before the count reaches the due point,
    so the last episode is a proposal of its own, made once the count is there: it waits for
    that fit (the server's rule). Returns the episode count reached.
    """
    due = last_fit_due(cfg, episodes)
    if due is None:
        return episodes
    await bench.fill(REFIT_TEACHER, name, due, quiet=True)
    await bench.fill(REFIT_TEACHER, name, due + 1, quiet=True)  # one request, at count = due
    return due + 1


async def refit_window(
    arm: RefitArm, repeat: int, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One "during refits" window on ``bench``'s server: ALP-GMM past bootstrap, 8 clients at
    batch 1, with ``GET /healthz`` at 8 clients on the same server just before.

    Returns:
        The window's record and its raw latencies in seconds (``tasks``, ``reports``,
        ``healthz``) for the pooled per-arm figures.
    """
    bench, prefill = arm.bench, arm.prefill
    name = f"refits-{arm.name}-r{repeat}"
    # The same seed in every arm of a repeat: the same teacher, only the fit placement differs.
    created = await bench.create(name, REFIT_TEACHER, seed=repeat, config=arm.config)
    cfg = created["teacher"]
    await bench.fill(REFIT_TEACHER, name, prefill, quiet=True)
    settled = await settle_fits(bench, name, cfg, prefill)
    pinned = bench.pin_fit_workers()
    quiet_wait = await bench.quiet()
    hz_samples: list[float] = []
    hz = await bench.healthz(REFIT_CLIENTS, hz_samples)
    marks: dict[str, dict[str, float]] = {}

    def mark(key: str) -> Callable[[], Awaitable[None]]:
        async def read() -> None:
            st = await bench.state(name)
            waits = await bench.teacher_waits(name)
            marks[key] = {
                "fits": int(st["teacher"]["fits"]),
                "episodes": int(st["teacher"]["episodes"]),
                "waits": int(waits["waits"]),
                "wait_s": waits["seconds"],
            }

        return read

    st, cpu = await bench.loop(
        name,
        REFIT_CLIENTS,
        REFIT_BATCH,
        duration=args.refit_duration,
        on_open=mark("open"),
        on_close=mark("close"),
    )
    dur = args.refit_duration
    first = max(int(cfg["bootstrap"]), int(cfg["fit_rate"]))
    lat = {k: _latency(st.lat[k]) for k in ("tasks", "reports")}
    hz_p99 = hz["latency_ms"]["p99"]
    rec: dict[str, Any] = {
        "arm": arm.name,
        "fit_processes": bench.fit_processes,
        "repeat": repeat,
        "experiment": name,
        "teacher": REFIT_TEACHER,
        "teacher_config": {k: cfg[k] for k in ("fit_rate", "bootstrap", "fit_delay")},
        "clients": REFIT_CLIENTS,
        "batch": REFIT_BATCH,
        "episodes_at_open": marks["open"]["episodes"],
        "episodes_at_close": marks["close"]["episodes"],
        "fits_at_open": marks["open"]["fits"],
        "fits_at_close": marks["close"]["fits"],
        "prefill": prefill,
        "settled_at": settled,
        "quiet_wait_s": quiet_wait,
        "server_children_pinned": pinned,
        "fits_in_window": marks["close"]["fits"] - marks["open"]["fits"],
        "fits_started_and_applied_in_window": fits_started_and_applied(
            first,
            int(cfg["fit_rate"]),
            int(cfg["fit_delay"]),
            int(marks["open"]["episodes"]),
            int(marks["close"]["episodes"]),
        ),
        # Calls that waited for a fit due but not finished, and how long in all.
        "teacher_waits_in_window": marks["close"]["waits"] - marks["open"]["waits"],
        "teacher_wait_ms_in_window": round(
            1e3 * (marks["close"]["wait_s"] - marks["open"]["wait_s"]), 1
        ),
        "tasks_per_s": round(st.tasks / dur, 1),
        "reports_per_s": round(st.reports / dur, 1),
        "requests_per_s": round(st.requests / dur, 1),
        "latency_ms": lat,
        "healthz": {
            "requests_per_s": hz["requests_per_s"],
            "latency_ms": hz["latency_ms"],
            "server_cpu": hz.get("server_cpu"),
            "other_cpu": hz.get("other_cpu"),
        },
        "p99_ratio_to_healthz_p99": {
            k: round(lat[k]["p99"] / hz_p99, 3) if hz_p99 else None for k in ("tasks", "reports")
        },
        "errors": st.errors + hz["errors"],
        **cpu,
    }
    if st.first_error:
        rec["first_error"] = st.first_error
    raw = {"tasks": st.lat["tasks"], "reports": st.lat["reports"], "healthz": hz_samples}
    return rec, raw


def _fmt_refit(r: dict[str, Any]) -> str:
    lt, lr = r["latency_ms"]["tasks"], r["latency_ms"]["reports"]
    ratio = r["p99_ratio_to_healthz_p99"]
    return (
        f"  {r['arm']:>26} #{r['repeat']} fits {r['fits_in_window']:>2} "
        f"(whole life in window {r['fits_started_and_applied_in_window']:>2})  "
        f"{r['tasks_per_s']:>6,.0f} tasks/s  tasks p50/p99/max {lt['p50']:.2f}/{lt['p99']:.2f}/"
        f"{lt['max']:.1f}  reports {lr['p50']:.2f}/{lr['p99']:.2f}/{lr['max']:.1f}  healthz p99 "
        f"{r['healthz']['latency_ms']['p99']:.2f}  ratio {ratio['tasks']}/{ratio['reports']}  "
        f"cpu srv {r.get('server_cpu', math.nan):.2f} fit-worker "
        f"{r.get('server_children_cpu', math.nan):.2f} other {r.get('other_cpu', math.nan):.2f}  "
        f"waits for fits {r['teacher_waits_in_window']} ({r['teacher_wait_ms_in_window']:.0f} ms)"
    )


async def during_refits(
    pool_bench: Bench, args: argparse.Namespace, workdir: Path, out: dict[str, Any]
) -> None:
    """ALP-GMM at 8 clients, batch 1, while its GMM refits run: on the main server (fits in a
    worker process) and on a second server with fits in threads (the "before" arm), plus the
    optional arms of :func:`refit_arms`; the windows of all arms interleaved so that drift of
    a shared machine hits them alike. Fills ``out["during_refits"]``.

    Args:
        pool_bench: the main server's bench (its fits run in a worker process).
        args: the command line.
        workdir: where the second server keeps its database and log.
        out: the results, filled in place.
    """
    dr: dict[str, Any] = {
        "teacher": REFIT_TEACHER,
        "clients": REFIT_CLIENTS,
        "batch": REFIT_BATCH,
        "fit_rate": args.refit_fit_rate,
        "fit_delay": args.refit_fit_delay,
        "prefill": args.refit_prefill,
        "control": args.refit_control,
        "long_delay": args.refit_long_delay,
        "compare_processes": args.refit_compare_processes,
        "duration_s": args.refit_duration,
        "warmup_s": args.warmup,
        "repeats": args.refit_repeats,
        "method": (
            f"each window: a new {REFIT_TEACHER} experiment filled to {args.refit_prefill} "
            "episodes (past its bootstrap) and on past the due point of the last fit the fill "
            "started, one proposal made there waiting for it (settled_at), so that no fit runs "
            "during the baseline; a wait until the server and its fit workers are idle "
            f"(quiet_wait_s); GET /healthz at {REFIT_CLIENTS} clients on the same server; then "
            f"{REFIT_CLIENTS} clients at batch {REFIT_BATCH} for {args.warmup} s "
            f"+ {args.refit_duration} s; teacher.fits of GET /state is read as the window opens "
            "and closes (fits_in_window: fits that took effect inside it). Per arm, latencies "
            "are pooled over its windows; ratio = pooled p99 / pooled healthz p99. "
            f"Arms: process_pool (the main server, fits in {args.fit_processes} worker "
            "processes), process_pool_N if compare_processes is N (a server with N), threads "
            "(a server with --fit-processes 0, the behaviour before the pool); if "
            f"control is true, no_refits_control (the main server, fit_rate "
            f"{CONTROL_FIT_RATE} and a prefill past its first fit: a mixture, no refit in "
            "the window); if long_delay is D, process_pool_fit_delay_D and "
            "threads_fit_delay_D (fit_delay D: a fit is rarely still running when it falls "
            "due, which makes the server wait for it). fit_delay null: the teacher's "
            "default (50)."
        ),
        "runs": [],
        "arms": {},
    }
    out["during_refits"] = dr
    log = args.server_log.with_suffix(".threads.log") if args.server_log else None
    thread_server = ServerProcess(
        f"sqlite:///{workdir / 'threads.db'}",
        log_path=log or workdir / "threads-server.log",
        extra=["--fit-processes", "0"],
    )
    other_server: ServerProcess | None = None
    n_other = args.refit_compare_processes
    if n_other and n_other != args.fit_processes:
        other_log = args.server_log.with_suffix(f".pool{n_other}.log") if args.server_log else None
        other_server = ServerProcess(
            f"sqlite:///{workdir / f'pool{n_other}.db'}",
            log_path=other_log or workdir / f"pool{n_other}-server.log",
            extra=["--fit-processes", str(n_other)],
        )
        await asyncio.to_thread(other_server.start)
    await asyncio.to_thread(thread_server.start)
    try:
        thread_bench = Bench(thread_server, args, fit_processes=0)
        other_bench = Bench(other_server, args, n_other) if other_server is not None else None
        arms = refit_arms(pool_bench, thread_bench, args, other_bench)
        raw: dict[str, dict[str, list[float]]] = {
            arm.name: {"tasks": [], "reports": [], "healthz": []} for arm in arms
        }
        print(
            f"\nduring refits: {REFIT_TEACHER}, {REFIT_CLIENTS} clients, batch {REFIT_BATCH}, "
            f"fit_rate {args.refit_fit_rate}, {args.refit_repeats} x {args.refit_duration} s "
            "per arm",
            flush=True,
        )
        for repeat in range(args.refit_repeats):
            # Rotate the order of the arms from one repeat to the next (drift hits all alike).
            shift = repeat % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                rec, samples = await refit_window(arm, repeat, args)
                dr["runs"].append(rec)
                for k, v in samples.items():
                    raw[arm.name][k].extend(v)
                print(_fmt_refit(rec), flush=True)
        for arm in arms:
            runs = [r for r in dr["runs"] if r["arm"] == arm.name]
            lat = {k: _latency(raw[arm.name][k]) for k in ("tasks", "reports")}
            hz = _latency(raw[arm.name]["healthz"])
            dr["arms"][arm.name] = {
                "fit_processes": arm.bench.fit_processes,
                "teacher_config": runs[0]["teacher_config"],
                "windows": len(runs),
                "fits_in_window": sum(r["fits_in_window"] for r in runs),
                "fits_in_window_per_run": [r["fits_in_window"] for r in runs],
                "fits_started_and_applied_in_window": sum(
                    r["fits_started_and_applied_in_window"] for r in runs
                ),
                "teacher_waits_in_window": sum(r["teacher_waits_in_window"] for r in runs),
                "teacher_wait_ms_in_window": round(
                    sum(r["teacher_wait_ms_in_window"] for r in runs), 1
                ),
                "tasks_per_s": round(float(np.mean([r["tasks_per_s"] for r in runs])), 1),
                "latency_ms": lat,
                "healthz_latency_ms": hz,
                "healthz_requests_per_s": round(
                    float(np.mean([r["healthz"]["requests_per_s"] for r in runs])), 1
                ),
                "p99_ratio_to_healthz_p99": {
                    k: round(lat[k]["p99"] / hz["p99"], 3) if hz["p99"] else None
                    for k in ("tasks", "reports")
                },
                "median_window_p99_ms": {
                    k: round(float(np.median([r["latency_ms"][k]["p99"] for r in runs])), 4)
                    for k in ("tasks", "reports")
                },
                "server_cpu": round(float(np.mean([r["server_cpu"] for r in runs])), 3),
                "server_children_cpu": round(
                    float(np.mean([r["server_children_cpu"] for r in runs])), 3
                ),
                "other_cpu": round(float(np.mean([r["other_cpu"] for r in runs])), 3),
                "errors": sum(r["errors"] for r in runs),
            }
    finally:
        await asyncio.to_thread(thread_server.stop)
        if other_server is not None:
            await asyncio.to_thread(other_server.stop)


def refit_target(dr: dict[str, Any]) -> dict[str, Any] | None:
    """PASS/MISS of "p99 during refits <= TARGET_REFIT_P99_FACTOR x healthz p99" for the
    process-pool arm (the threads arm's figures are shown next to it, not judged)."""
    pool = dr.get("arms", {}).get("process_pool")
    if not pool:
        return None
    runs = [r for r in dr["runs"] if r["arm"] == "process_pool"]
    hz = pool["healthz_latency_ms"]["p99"]
    factor = TARGET_REFIT_P99_FACTOR
    p99 = {k: pool["latency_ms"][k]["p99"] for k in ("tasks", "reports")}
    # A window without a fit in it would not test anything: it counts as a miss.
    every_window_fits = all(r["fits_in_window"] >= 1 for r in runs)
    threads = dr["arms"].get("threads", {})
    control = dr["arms"].get("no_refits_control")
    return {
        "target": f"p99 during refits <= {factor:g} x GET /healthz p99 at {dr['clients']} clients "
        f"({dr['teacher']}, batch {dr['batch']}, fits in worker processes; tasks and reports, "
        "latencies pooled over the windows; every window has a fit)",
        "teacher": dr["teacher"],
        "history": min((r["episodes_at_open"] for r in runs), default=0),
        "value": {
            "factor": factor,
            "p99_ms": p99,
            "healthz_p99_ms": hz,
            "ratio": pool["p99_ratio_to_healthz_p99"],
            "fits_in_window": pool["fits_in_window"],
            "threads_arm_p99_ms": {k: threads["latency_ms"][k]["p99"] for k in ("tasks", "reports")}
            if threads
            else None,
            "threads_arm_ratio": threads.get("p99_ratio_to_healthz_p99"),
            # the same teacher without a refit in the window: what refits add to its p99
            "ratio_to_no_refits_control": {
                k: round(p99[k] / control["latency_ms"][k]["p99"], 3) for k in ("tasks", "reports")
            }
            if control
            else None,
        },
        "pass": bool(hz)
        and every_window_fits
        and pool["errors"] == 0
        and all(v <= factor * hz for v in p99.values()),
    }


async def history_p99(
    bench: Bench, teacher: str, hist_name: str, args: argparse.Namespace
) -> dict[str, Any]:
    """p99 at batch 1 with 8 clients, fresh vs at history, over ``--history-pairs`` pairs of
    windows interleaved fresh/history, history/fresh, ... (so drift cancels in the medians)."""
    fresh_name = f"{teacher}-p99-fresh"
    await bench.create(fresh_name, teacher)
    if args.base_history > 0:
        await bench.fill(teacher, fresh_name, args.base_history, quiet=True)
    clients, batch = HISTORY_P99_CLIENTS, HISTORY_P99_BATCH
    windows = []
    print(
        f"\n{teacher}: p99 fresh vs at history, {clients} clients, batch {batch}, "
        f"{args.history_pairs} interleaved pairs",
        flush=True,
    )
    for i in range(args.history_pairs):
        order = [("fresh", fresh_name, args.base_history), ("large", hist_name, args.history)]
        for kind, exp, target in order if i % 2 == 0 else reversed(order):
            s = await bench.scenario(teacher, exp, kind, target, clients, batch)
            lat = s["latency_ms"]
            windows.append(
                {
                    "pair": i,
                    "kind": kind,
                    "history": s["history"],
                    "tasks_per_s": s["tasks_per_s"],
                    "latency_ms": lat,
                    "p99_worse_ms": max(lat["tasks"]["p99"], lat["reports"]["p99"]),
                    "server_cpu": s.get("server_cpu"),
                    "client_cpu": s.get("client_cpu"),
                    "other_cpu": s.get("other_cpu"),
                    "errors": s["errors"],
                }
            )
            print(_fmt_row(s), flush=True)

    def med(kind: str, key: str) -> float:
        vals = [
            w["p99_worse_ms"] if key == "worse" else w["latency_ms"][key]["p99"]
            for w in windows
            if w["kind"] == kind
        ]
        return round(float(np.median(vals)), 4) if vals else math.nan

    medians = {
        kind: {key: med(kind, key) for key in ("tasks", "reports", "worse")}
        for kind in ("fresh", "large")
    }
    fresh, large = medians["fresh"]["worse"], medians["large"]["worse"]
    return {
        "teacher": teacher,
        "clients": clients,
        "batch": batch,
        "pairs": args.history_pairs,
        "duration_s": args.duration,
        "history": min(w["history"] for w in windows if w["kind"] == "large"),
        "fresh_history": min(w["history"] for w in windows if w["kind"] == "fresh"),
        "windows": windows,
        "median_p99_ms": medians,
        "ratio": round(large / fresh, 4) if fresh else None,
        "tolerance": TARGET_HISTORY_P99_TOLERANCE,
        "errors": sum(w["errors"] for w in windows),
    }


def history_p99_target(h: dict[str, Any]) -> dict[str, Any]:
    """PASS/MISS of "p99 at history <= fresh p99" as defined in ``targets_definition``."""
    tol = TARGET_HISTORY_P99_TOLERANCE
    fresh, large = h["median_p99_ms"]["fresh"]["worse"], h["median_p99_ms"]["large"]["worse"]
    ok = math.isfinite(fresh) and math.isfinite(large) and h["errors"] == 0
    return {
        "target": f"p99 at history <= fresh p99 ({h['clients']} clients, batch {h['batch']}; "
        f"median over {h['pairs']} interleaved windows each of the worse endpoint's p99, "
        f"within x{tol:g} for noise)",
        "teacher": h["teacher"],
        "history": h["history"],
        "value": {
            "median_p99_fresh_ms": fresh,
            "median_p99_history_ms": large,
            "ratio": h["ratio"],
            "tolerance": tol,
            "strict_pass": ok and large <= fresh,
            "per_endpoint": h["median_p99_ms"],
        },
        "pass": ok and large <= tol * fresh,
    }


# ------------------------------------------------------------------------------ report
def _fmt_row(s: dict[str, Any]) -> str:
    lt, lr = s["latency_ms"]["tasks"], s["latency_ms"]["reports"]
    ratio = s.get("ratio_to_healthz")
    return (
        f"{s['teacher']:>8} {s['history']:>9,} {s['clients']:>4} {s['batch']:>5} "
        f"{s['tasks_per_s']:>10,.0f} {s['reports_per_s']:>10,.0f} "
        f"{lt['p50']:>7.2f} {lt['p99']:>7.2f} {lt['max']:>7.1f} "
        f"{lr['p50']:>7.2f} {lr['p99']:>7.2f} {lr['max']:>7.1f} "
        f"{(ratio if ratio is not None else math.nan):>6.3f} "
        f"{s.get('server_cpu', math.nan):>5.2f} {s.get('client_cpu', math.nan):>5.2f} "
        f"{s.get('other_cpu', math.nan):>5.2f}"
    )


HEADER = (
    f"{'teacher':>8} {'history':>9} {'cli':>4} {'batch':>5} {'tasks/s':>10} {'reports/s':>10} "
    f"{'t.p50':>7} {'t.p99':>7} {'t.max':>7} {'r.p50':>7} {'r.p99':>7} {'r.max':>7} "
    f"{'/hlth':>6} {'srvC':>5} {'cliC':>5} {'othC':>5}"
)


def _geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return float(math.exp(sum(math.log(x) for x in xs) / len(xs))) if xs else math.nan


def history_ratios(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Large-history vs fresh, per (teacher, clients, batch)."""
    fresh = {(s["teacher"], s["clients"], s["batch"]): s for s in scenarios if s["kind"] == "fresh"}
    out = []
    for s in scenarios:
        if s["kind"] != "large":
            continue
        f = fresh.get((s["teacher"], s["clients"], s["batch"]))
        if f is None:
            continue

        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 4) if b and math.isfinite(a) and math.isfinite(b) else None

        out.append(
            {
                "teacher": s["teacher"],
                "clients": s["clients"],
                "batch": s["batch"],
                "history": s["history"],
                "fresh_history": f["history"],
                "p50_ratio": {
                    k: ratio(s["latency_ms"][k]["p50"], f["latency_ms"][k]["p50"])
                    for k in ("tasks", "reports")
                },
                "p99_ratio": {
                    k: ratio(s["latency_ms"][k]["p99"], f["latency_ms"][k]["p99"])
                    for k in ("tasks", "reports")
                },
                "throughput_ratio": ratio(s["tasks_per_s"], f["tasks_per_s"]),
                "server_cpu_per_request_ratio": ratio(
                    s.get("server_cpu_ms_per_request") or math.nan,
                    f.get("server_cpu_ms_per_request") or math.nan,
                ),
            }
        )
    return out


def evaluate_targets(
    scenarios: list[dict[str, Any]], ratios: list[dict[str, Any]], teachers: list[str]
) -> list[dict[str, Any]]:
    """PASS/MISS of each target, per teacher and history size."""
    out: list[dict[str, Any]] = []
    for teacher in teachers:
        for kind in ("fresh", "large"):
            rows = [s for s in scenarios if s["teacher"] == teacher and s["kind"] == kind]
            if not rows:
                continue
            hist = rows[0]["history_target"]
            b64 = [s for s in rows if s["batch"] == 64]
            if b64:
                best = max(b64, key=lambda s: s["tasks_per_s"])
                out.append(
                    {
                        "target": f">= {TARGET_TASKS_PER_S:,.0f} tasks/s at batch 64 "
                        "(best concurrency)",
                        "teacher": teacher,
                        "history": hist,
                        "value": best["tasks_per_s"],
                        "at_clients": best["clients"],
                        "pass": best["tasks_per_s"] >= TARGET_TASKS_PER_S,
                    }
                )
            b1c8 = [s for s in rows if s["batch"] == 1 and s["clients"] == 8]
            if b1c8:
                s = b1c8[0]
                p99 = max(s["latency_ms"]["tasks"]["p99"], s["latency_ms"]["reports"]["p99"])
                out.append(
                    {
                        "target": f"p99 < {TARGET_P99_MS:g} ms at batch 1 with 8 clients "
                        "(worse endpoint)",
                        "teacher": teacher,
                        "history": hist,
                        "value": p99,
                        "pass": p99 < TARGET_P99_MS,
                    }
                )
        rs = [r for r in ratios if r["teacher"] == teacher]
        if rs:
            p50s = [r["p50_ratio"][k] for r in rs for k in ("tasks", "reports")]
            thrs = [r["throughput_ratio"] for r in rs]
            cpus = [r["server_cpu_per_request_ratio"] for r in rs]
            missing = sum(v is None for v in p50s + thrs)
            p50s = [v for v in p50s if v is not None]
            thrs = [v for v in thrs if v is not None]
            g_p50, g_thr = _geomean(p50s), _geomean(thrs)
            band, cell = TARGET_HISTORY_GEOMEAN_BAND, TARGET_HISTORY_CELL_BAND

            def within(x: float, b: float) -> bool:
                return math.isfinite(x) and 1.0 / b <= x <= b

            out.append(
                {
                    "target": f"history ratio near 1 (geomeans over the grid of the p50 and the "
                    f"throughput ratios within x{1 / band:.2f}..x{band}, every cell within "
                    f"x{1 / cell:.2f}..x{cell}, no cell without data)",
                    "teacher": teacher,
                    "history": rs[0]["history"],
                    "value": {
                        "geomean_p50_ratio": round(g_p50, 3),
                        "geomean_throughput_ratio": round(g_thr, 3),
                        "p50_ratio_range": [min(p50s, default=None), max(p50s, default=None)],
                        "throughput_ratio_range": [
                            min(thrs, default=None),
                            max(thrs, default=None),
                        ],
                        "geomean_server_cpu_per_request_ratio": round(
                            _geomean([v for v in cpus if v is not None]), 3
                        ),
                        "cells_without_data": missing,
                    },
                    "pass": missing == 0
                    and within(g_p50, band)
                    and within(g_thr, band)
                    and all(within(v, cell) for v in p50s + thrs),
                }
            )
    return out


def _sqlite_sizes(db: Path) -> dict[str, int]:
    sizes = {
        suffix or "db": (
            db.with_name(db.name + suffix).stat().st_size
            if db.with_name(db.name + suffix).exists()
            else 0
        )
        for suffix in ("", "-wal", "-shm")
    }
    sizes["total"] = sum(sizes.values())
    return sizes


def _count_events(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        snaps = conn.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM snapshots")
        n_snap, snap_bytes = snaps.fetchone()
    return {"events": int(events), "snapshots": int(n_snap), "snapshot_bytes": int(snap_bytes)}


# -------------------------------------------------------------------------------- main
async def run(bench: Bench, args: argparse.Namespace, out: dict[str, Any], workdir: Path) -> None:
    """The whole benchmark; fills ``out`` as it goes (so a failure still leaves a record).

    Args:
        bench: the main server's bench.
        args: the command line.
        out: the results, filled in place.
        workdir: where a second server (the threads arm of "during refits") keeps its files.
    """
    # First, while the main server's store is small: the same for both arms of the comparison.
    if args.refit_repeats > 0:
        await during_refits(bench, args, workdir, out)
    grid = [(c, b) for c in args.clients for b in args.batches]

    async def healthz(clients: int, teacher: str) -> float:
        h = await bench.healthz(clients)
        h["teacher_round"] = teacher
        out["healthz"].append(h)
        print(
            f"  healthz clients={clients:>3}: {h['requests_per_s']:>9,.0f} req/s  "
            f"p50 {h['latency_ms']['p50']:.2f} ms  p99 {h['latency_ms']['p99']:.2f} ms  "
            f"cpu: server {h['server_cpu']:.2f} client {h['client_cpu']:.2f} "
            f"other {h['other_cpu']:.2f}",
            flush=True,
        )
        return h["requests_per_s"]

    for teacher in args.teachers:
        try:
            await bench.create(f"{teacher}-probe", teacher)
        except HTTPStatusError as exc:
            print(f"  ! skipping teacher {teacher}: {exc}", flush=True)
            out["skipped"].append({"teacher": teacher, "reason": str(exc)})
            continue
        hist_name = None
        if teacher in args.history_teachers and args.history > 0:
            hist_name = f"{teacher}-history"
            await bench.create(hist_name, teacher)
            print(
                f"  filling {hist_name} to {args.history:,} episodes (batch {MAX_BATCH})",
                flush=True,
            )
            out["fill"][teacher] = await bench.fill(teacher, hist_name, args.history)
        # The /healthz floor is measured just before the cells of its concurrency, and each
        # cell runs on a brand-new experiment (history 0, or --base-history) then at once on
        # the large one, so that drift of a shared machine affects both sides of every ratio.
        base: float | None = None
        for i, (clients, batch) in enumerate(grid):
            if i == 0 or grid[i - 1][0] != clients:
                base = await healthz(clients, teacher)
                print(HEADER, flush=True)
            name = f"{teacher}-fresh-c{clients}-b{batch}"
            await bench.create(name, teacher)
            if args.base_history > 0:
                await bench.fill(teacher, name, args.base_history, quiet=True)
            runs = [(name, "fresh", args.base_history)]
            if hist_name:
                runs.append((hist_name, "large", args.history))
            for exp, kind, target in runs:
                s = await bench.scenario(teacher, exp, kind, target, clients, batch)
                s["healthz_requests_per_s"] = base
                s["ratio_to_healthz"] = round(s["requests_per_s"] / base, 4) if base else None
                out["scenarios"].append(s)
                print(_fmt_row(s), flush=True)
        if hist_name and teacher in args.history_p99_teachers and args.history_pairs > 0:
            out["history_p99"].append(await history_p99(bench, teacher, hist_name, args))

    states = {}
    for s in out["scenarios"]:
        if s["experiment"] not in states:
            states[s["experiment"]] = (await bench.state(s["experiment"]))["counters"]
    out["server_counters"] = {
        "events": sum(c["events"] for c in states.values()),
        "tasks_issued": sum(c["tasks_issued"] for c in states.values()),
        "reports_accepted": sum(c["reports_accepted"] for c in states.values()),
        "by_experiment": states,
    }


def finish(out: dict[str, Any], args: argparse.Namespace) -> None:
    """Ratios, targets, summary table."""
    out["history_ratios"] = history_ratios(out["scenarios"])
    teachers = [t for t in args.teachers if any(s["teacher"] == t for s in out["scenarios"])]
    out["targets"] = evaluate_targets(out["scenarios"], out["history_ratios"], teachers)
    out["targets"] += [history_p99_target(h) for h in out.get("history_p99", [])]
    refit = refit_target(out["during_refits"]) if out.get("during_refits") else None
    if refit is not None:
        out["targets"].append(refit)

    print("\nsummary (latencies in ms; /hlth = request rate / healthz rate at that concurrency,")
    print("measured just before; srvC/cliC/othC = CPU seconds per second of the server / the")
    print(f"load generator / everything else on the machine, which has {os.cpu_count()} cores)")
    busy = [s["other_cpu"] for s in out["scenarios"] if s.get("other_cpu") is not None]
    if busy and float(np.mean(busy)) > 0.25:
        print(
            f"note: other work used {np.mean(busy):.2f} CPU on average during the scenarios;"
            " absolute figures are lower than on an idle machine (ratios are less affected)"
        )
    print(HEADER)
    for s in out["scenarios"]:
        print(_fmt_row(s))
    if out["history_ratios"]:
        print("\nhistory vs fresh (ratios of p50 latency, of tasks/s, of server CPU per request)")
        for r in out["history_ratios"]:
            print(
                f"  {r['teacher']:>8} history {r['history']:>9,} clients {r['clients']:>3} "
                f"batch {r['batch']:>3}: p50 tasks x{r['p50_ratio']['tasks']}, "
                f"reports x{r['p50_ratio']['reports']}; throughput x{r['throughput_ratio']}; "
                f"server CPU/request x{r['server_cpu_per_request_ratio']}"
            )
    for h in out.get("history_p99", []):
        m = h["median_p99_ms"]
        print(
            f"\n{h['teacher']} p99 (ms, worse endpoint, median of {h['pairs']} windows each) at "
            f"{h['clients']} clients batch {h['batch']}: fresh {m['fresh']['worse']:.2f}, "
            f"history {h['history']:,} {m['large']['worse']:.2f} (x{h['ratio']})"
        )
    if out.get("during_refits", {}).get("arms"):
        dr = out["during_refits"]
        print(
            f"\nduring refits ({dr['teacher']}, {dr['clients']} clients, batch {dr['batch']}; "
            f"ms, pooled over {dr['repeats']} windows of {dr['duration_s']} s per arm)"
        )
        if out.get("cpu_layout"):
            lay = out["cpu_layout"]
            print(
                f"  CPUs: fit workers {lay['fit_workers']}, servers and load generator "
                f"{lay['servers_and_load']}"
            )
        for arm, a in dr["arms"].items():
            lt, lr = a["latency_ms"]["tasks"], a["latency_ms"]["reports"]
            print(
                f"  {arm:>26} (fit_processes {a['fit_processes']}): fits {a['fits_in_window']:>3}"
                f"  tasks/s {a['tasks_per_s']:>6,.0f}  tasks p50 {lt['p50']:.2f} p99 "
                f"{lt['p99']:.2f} max {lt['max']:.1f}  reports p50 {lr['p50']:.2f} p99 "
                f"{lr['p99']:.2f} max {lr['max']:.1f}  healthz p99 "
                f"{a['healthz_latency_ms']['p99']:.2f}  p99/healthz p99 "
                f"{a['p99_ratio_to_healthz_p99']['tasks']}/"
                f"{a['p99_ratio_to_healthz_p99']['reports']}  waits for fits "
                f"{a['teacher_waits_in_window']} ({a['teacher_wait_ms_in_window']:.0f} ms)"
            )
    print("\ntargets (informational)")
    for t in out["targets"]:
        val = t["value"]
        shown = json.dumps(val) if isinstance(val, dict) else f"{val:,.2f}"
        print(
            f"  {'PASS' if t['pass'] else 'MISS'}  {t['teacher']:>8} history {t['history']:>9,}: "
            f"{t['target']}: {shown}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Load benchmark of the teacher service (tasks/s, reports/s, latency, "
        "ratio to /healthz, growth with history).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per scenario (default 4; 1 with --quick)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="un-measured seconds before each scenario (default 0.5; 0.2 with --quick)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=None,
        help="episodes of history for the second grid (default 1,000,000; "
        "20,000 with --quick; 0 skips it)",
    )
    p.add_argument("--teachers", default="random,alp_gmm", help="comma-separated teacher kinds")
    p.add_argument(
        "--history-teachers",
        default=None,
        help="teachers that get the history fill (default: all of --teachers)",
    )
    p.add_argument(
        "--base-history",
        type=int,
        default=0,
        help="episodes given to each 'fresh' experiment before it is measured (e.g. "
        "1000 to get alp_gmm past its 250-episode uniform bootstrap)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the server process (repeatable), "
        "e.g. OPENBLAS_NUM_THREADS=1",
    )
    p.add_argument(
        "--history-p99-teachers",
        default="random",
        help="teachers (among --history-teachers) whose p99 at 8 clients, batch 1 is compared "
        "fresh vs at history over --history-pairs interleaved pairs of windows",
    )
    p.add_argument(
        "--history-pairs",
        type=int,
        default=None,
        help="fresh/history window pairs of that comparison (default 5; 2 with --quick; "
        "0 skips it)",
    )
    p.add_argument(
        "--fit-processes",
        type=int,
        default=2,
        help="fit worker processes of the main server (the 'process_pool' arm of the "
        "during-refits scenario; its 'threads' arm runs on a second server with 0)",
    )
    p.add_argument(
        "--fit-cpus",
        default=None,
        metavar="CPUS",
        help="run the servers' fit workers on these CPUs (e.g. 1, or 2-3) and this load "
        "generator and the servers on the others: what a machine with cores to spare for the "
        "fits gives (Linux; default: everything shares every CPU)",
    )
    p.add_argument(
        "--refit-repeats",
        type=int,
        default=None,
        help="during-refits windows per arm, interleaved (default 3; 1 with --quick; "
        "0 skips the scenario)",
    )
    p.add_argument(
        "--refit-duration",
        type=float,
        default=None,
        help="measured seconds of each during-refits window (default 6; 2 with --quick)",
    )
    p.add_argument(
        "--refit-fit-rate",
        type=int,
        default=None,
        help="alp_gmm fit_rate of the during-refits experiments (default 250, the paper's; "
        "100 with --quick, so that a short window still holds fits)",
    )
    p.add_argument(
        "--refit-prefill",
        type=int,
        default=None,
        help="episodes given to each during-refits experiment before it is measured, past "
        "the 250-episode bootstrap (default 1,000; 400 with --quick)",
    )
    p.add_argument(
        "--refit-fit-delay",
        type=int,
        default=None,
        help="alp_gmm fit_delay of the during-refits experiments (default: the teacher's, 50 "
        "episodes between the start of a fit and the moment it takes effect)",
    )
    p.add_argument(
        "--refit-control",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run a no-refits control arm of the during-refits scenario (default: on; "
        "off with --quick)",
    )
    p.add_argument(
        "--refit-compare-processes",
        type=int,
        default=None,
        help="fit processes of one more during-refits arm on a server of its own, "
        "process_pool_N (default 1; 0 with --quick, or equal to --fit-processes: no such arm)",
    )
    p.add_argument(
        "--refit-long-delay",
        type=int,
        default=None,
        help="fit_delay of a diagnostic pair of during-refits arms (process pool, threads), "
        "long enough that fits are done when they fall due (default 200; 0 with --quick: "
        "no such arms)",
    )
    p.add_argument("--clients", default="1,8,64", help="comma-separated concurrency levels")
    p.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    p.add_argument(
        "--client", choices=sorted(CLIENTS), default="raw", help="HTTP client of the load generator"
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=120.0,
        help="seconds before one request is abandoned (counted as an error)",
    )
    p.add_argument("--fill-clients", type=int, default=3, help="concurrent clients of the fill")
    p.add_argument(
        "--fill-max-seconds",
        type=float,
        default=900.0,
        help="stop a teacher's fill after this long (the history reached is recorded)",
    )
    p.add_argument("--progress-every", type=float, default=5.0, help="seconds between fill lines")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="plot of the during-refits arms (default: beside --out, <name>_refits.png)",
    )
    p.add_argument(
        "--server-log",
        type=Path,
        default=None,
        help="keep the server's log here (default: in the temp dir, removed)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 s per scenario, 20,000 episodes of history",
    )
    args = p.parse_args(argv)
    if args.plot is None:
        args.plot = args.out.with_name(f"{args.out.stem}_refits.png")
    if args.duration is None:
        args.duration = 1.0 if args.quick else 4.0
    if args.warmup is None:
        args.warmup = 0.2 if args.quick else 0.5
    if args.history is None:
        args.history = 20_000 if args.quick else 1_000_000
    quick_or_full = {
        "history_pairs": (2, 5),
        "refit_repeats": (1, 3),
        "refit_duration": (2.0, 6.0),
        "refit_fit_rate": (100, 250),
        "refit_prefill": (400, 1000),
        "refit_control": (False, True),
        "refit_long_delay": (0, 200),
        "refit_compare_processes": (0, 1),
    }
    for key, (quick, full) in quick_or_full.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.history_p99_teachers = [
        t.strip() for t in args.history_p99_teachers.split(",") if t.strip()
    ]
    args.teachers = [t.strip() for t in args.teachers.split(",") if t.strip()]
    args.history_teachers = (
        args.teachers
        if args.history_teachers is None
        else [t.strip() for t in args.history_teachers.split(",") if t.strip()]
    )
    args.clients = [int(x) for x in args.clients.split(",")]
    args.batches = [int(x) for x in args.batches.split(",")]
    if args.duration <= 0 or args.warmup < 0 or min(args.clients) < 1:
        p.error("--duration must be > 0, --warmup >= 0, --clients >= 1")
    if not 1 <= min(args.batches) <= max(args.batches) <= MAX_BATCH:
        p.error(f"--batches must be in 1..{MAX_BATCH}")
    if args.fit_processes < 1 or args.refit_compare_processes < 0:
        p.error(
            "--fit-processes must be >= 1 (the threads arm runs on a second server) and "
            "--refit-compare-processes >= 0"
        )
    if args.history_pairs < 0 or args.refit_repeats < 0 or args.refit_duration <= 0:
        p.error("--history-pairs and --refit-repeats must be >= 0, --refit-duration > 0")
    delay = 50 if args.refit_fit_delay is None else args.refit_fit_delay
    if args.refit_long_delay and not 0 < args.refit_long_delay < args.refit_fit_rate:
        p.error("--refit-long-delay must be below --refit-fit-rate (0: no such arms)")
    if not 0 <= delay < args.refit_fit_rate or args.refit_prefill < 250:
        p.error(
            "--refit-fit-rate must be above the fit delay (--refit-fit-delay, default 50) and "
            "--refit-prefill >= 250 (past the bootstrap)"
        )
    if args.base_history < 0 or (args.history > 0 and args.base_history >= args.history):
        p.error("--base-history must be >= 0 and below --history")
    env = {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--server-env expects KEY=VALUE, got {item!r}")
        env[key] = value
    args.server_env = env
    args.other_cpus = None
    if args.fit_cpus is not None:
        try:
            args.fit_cpus = parse_cpu_list(args.fit_cpus)
            args.other_cpus = split_cpus(args.fit_cpus)
        except ValueError as exc:
            p.error(f"--fit-cpus: {exc}")
    return args


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    if args.fit_cpus is not None:
        # Before any thread or server is started: they inherit this thread's CPUs.
        pin_process(os.getpid(), args.other_cpus)
    signal.signal(signal.SIGTERM, _on_sigterm)
    t_start = time.time()
    out: dict[str, Any] = {
        "benchmark": "service_load",
        "command": shlex.join(
            ["python", os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": describe_machine(),
        "note": "load generator and server share the same machine",
        "client": CLIENTS[args.client].name,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "grid": {"clients": args.clients, "batches": args.batches, "teachers": args.teachers},
        "history_target": args.history,
        "base_history": args.base_history,
        "server_env": args.server_env,
        "history_teachers": args.history_teachers,
        "history_p99_teachers": args.history_p99_teachers,
        "history_pairs": args.history_pairs,
        "fit_processes": args.fit_processes,
        "cpu_layout": None
        if args.fit_cpus is None
        else {"fit_workers": sorted(args.fit_cpus), "servers_and_load": sorted(args.other_cpus)},
        "targets_definition": {
            "tasks_per_s_batch64": TARGET_TASKS_PER_S,
            "p99_ms_batch1_clients8": TARGET_P99_MS,
            "history_geomean_ratio_band": TARGET_HISTORY_GEOMEAN_BAND,
            "history_cell_ratio_band": TARGET_HISTORY_CELL_BAND,
            "during_refits_p99_factor_to_healthz_p99": TARGET_REFIT_P99_FACTOR,
            "during_refits": (
                f"{REFIT_TEACHER}, {REFIT_CLIENTS} clients, batch {REFIT_BATCH}, fits in a "
                "worker process: p99 of POST /tasks and of POST /reports, each pooled over "
                "the arm's windows, <= during_refits_p99_factor_to_healthz_p99 x the p99 of "
                f"GET /healthz at {REFIT_CLIENTS} clients pooled over the windows measured on "
                "the same server just before each; every window must hold a fit that took "
                "effect inside it. The threads arm is shown, not judged."
            ),
            "history_p99_tolerance": TARGET_HISTORY_P99_TOLERANCE,
            "history_p99": (
                f"{HISTORY_P99_CLIENTS} clients, batch {HISTORY_P99_BATCH}: per window, the "
                "worse of the tasks and reports p99; over history_pairs pairs of windows "
                "run fresh-then-history, history-then-fresh, ... (so drift cancels), the "
                "median at history must be <= history_p99_tolerance x the median fresh "
                "(strict_pass in the value: without the allowance)"
            ),
        },
        "loadavg_start": list(os.getloadavg()),
        "scenarios": [],
        "healthz": [],
        "history_ratios": [],
        "fill": {},
        "skipped": [],
        "history_p99": [],
    }
    status = 0
    with tempfile.TemporaryDirectory(prefix="service_load_") as tmp:
        db = Path(tmp) / "bench.db"
        log_path = args.server_log or Path(tmp) / "server.log"
        server = ServerProcess(
            f"sqlite:///{db}",
            log_path=log_path,
            extra=["--fit-processes", str(args.fit_processes)],
        )
        try:
            try:
                import uvloop

                loop_factory: Any = uvloop.new_event_loop
                out["event_loop"] = "uvloop"
            except ImportError:
                loop_factory = None
                out["event_loop"] = "asyncio"
            os.environ.update(args.server_env)  # ServerProcess passes os.environ on
            server.start()
            print(f"server {server.url} pid {server.proc.pid} on {db}", flush=True)
            bench = Bench(server, args)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(run(bench, args, out, Path(tmp)))
            out["sqlite_bytes_live"] = _sqlite_sizes(db)
        except KeyboardInterrupt:
            print("interrupted: stopping the server", file=sys.stderr, flush=True)
            out["interrupted"] = True
            status = 130
        except Exception as exc:  # record it, stop the server, exit non-zero
            print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            out["error"] = f"{type(exc).__name__}: {exc}"
            status = 1
        finally:
            server.stop()
            if status and log_path.exists():
                tail = log_path.read_text(errors="replace")[-3000:]
                if tail.strip():
                    print(f"--- server log tail ---\n{tail}", file=sys.stderr)
        if db.exists():
            out["sqlite_bytes"] = _sqlite_sizes(db)
            with contextlib.suppress(sqlite3.Error):
                out["storage"] = _count_events(db)
    out["total_runtime_s"] = round(time.time() - t_start, 1)
    out["loadavg_end"] = list(os.getloadavg())
    if out["scenarios"] or out.get("during_refits"):
        finish(out, args)
    if "storage" in out:
        st = out["storage"]
        print(
            f"\nstorage: {st['events']:,} events, {st['snapshots']} snapshots "
            f"({st['snapshot_bytes'] / 2**20:.1f} MiB); SQLite file "
            f"{out['sqlite_bytes']['total'] / 2**20:.1f} MiB (db+wal+shm after stop)"
        )
    if out["skipped"]:
        print(f"skipped teachers: {[s['teacher'] for s in out['skipped']]}")
        if not out["scenarios"]:
            status = status or 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_clean(out), indent=1, allow_nan=False))
    print(f"total runtime {out['total_runtime_s']:.1f}s; wrote {args.out}")
    if out.get("during_refits", {}).get("arms") and args.plot is not None:
        if plot_refits(out["during_refits"], args.plot, out.get("cpu_layout")) is not None:
            print(f"plot: {args.plot}")
    return status


def plot_refits(
    dr: dict[str, Any], path: Path, layout: Mapping[str, list[int]] | None = None
) -> Path | None:
    """p99 of tasks and reports per during-refits arm, with each arm's healthz p99 (and 3x
    it, the target) as marks; the title names the CPU ``layout`` (the results' ``cpu_layout``)
    if there was one. None when matplotlib is missing."""
    plt = pyplot_or_none()
    if plt is None:
        return None
    arms = list(dr["arms"])
    x = np.arange(len(arms))
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, endpoint in enumerate(("tasks", "reports")):
        p99 = [dr["arms"][a]["latency_ms"][endpoint]["p99"] for a in arms]
        ax.bar(x + (k - 0.5) * 0.38, p99, 0.38, label=f"POST /{endpoint} p99")
    hz = [dr["arms"][a]["healthz_latency_ms"]["p99"] for a in arms]
    ax.scatter(x, hz, marker="_", s=600, color="black", label="GET /healthz p99", zorder=3)
    ax.scatter(
        x,
        [TARGET_REFIT_P99_FACTOR * h for h in hz],
        marker="_",
        s=600,
        color="red",
        label=f"{TARGET_REFIT_P99_FACTOR:g} x healthz p99 (target)",
        zorder=3,
    )
    labels = [f"{a.replace('_', ' ')}\n({dr['arms'][a]['fit_processes']} fit proc.)" for a in arms]
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("ms")
    ax.set_title(
        f"{dr['teacher']} during refits: {dr['clients']} clients, batch {dr['batch']}, "
        f"{dr['repeats']} x {dr['duration_s']:g} s per arm"
        + (
            f"\nfit workers on CPUs {layout['fit_workers']}, servers and load on "
            f"{layout['servers_and_load']}"
            if layout
            else ""
        )
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


if __name__ == "__main__":
    sys.exit(main())
