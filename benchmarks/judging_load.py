#!/usr/bin/env python
"""What OMNI's embedding model of interestingness costs the other experiments' requests while
it judges (docs/architecture.md#teachers).

Two servers, started alike except for ``--fit-processes``: **processes** (the default 2: the
model computes in the server's fit processes) and **thread** (0: it computes on the server's
judging thread, the behaviour before, holding the GIL for its Python). On each, a ``random``
experiment takes the load (``--clients`` clients, batch 1, tasks then reports) and an
``omni`` experiment with ``model: "embedding"`` is the one being judged.

Windows alternate between the arms and, within an arm, between **idle** (nothing to judge)
and **judging** (``--tasks`` new tasks with distinct descriptions were added to the ``omni``
experiment just before, so the model embeds them while the window runs; the window records
how many were still unjudged as it closed, which must be > 0 for it to count as judging).
Per arm, the latencies of the load's requests are pooled over its idle and its judging
windows; the figure of interest is the ratio judging / idle of the p99, and of throughput.

Usage::

    .venv/bin/python benchmarks/judging_load.py           # 3 rounds, ~3 min on 2 cores
    .venv/bin/python benchmarks/judging_load.py --quick   # smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.machine import describe_machine
from benchmarks.plots import pyplot_or_none, save_figure
from benchmarks.service_load import BOX2, RawHTTP, _latency, reports_body
from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "judging_load.json"
WORDS = (
    "wood stone iron table furnace bed boat bucket sword pickaxe axe shovel torch door ladder fence"
).split()
ARMS = {"processes": ["--fit-processes", "2"], "thread": ["--fit-processes", "0"]}


def descriptions(first: int, n: int) -> list[dict[str, str]]:
    """``n`` discrete task specs with distinct texts (so none is served from a cache)."""
    out = []
    for k in range(first, first + n):
        a, b, c = WORDS[k % 16], WORDS[(k // 16) % 16], WORDS[(k // 256) % 16]
        out.append({"name": f"t{k}", "description": f"craft a {a} with {b} near the {c}, #{k}"})
    return out


class Arm:
    """One server, its load experiment and its judged experiment."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.server = ServerProcess(
            f"sqlite:///{workdir / f'{name}.db'}",
            extra=ARMS[name],
            log_path=workdir / f"{name}.log",
        )
        self.added = 5
        self.conn: RawHTTP | None = None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.conn is not None
        payload = orjson.dumps(body) if body is not None else None
        try:
            status, data = await self.conn.request(method, path, payload)
        except ConnectionError:  # the server closed the connection while the other arm ran
            await self.conn.close()
            status, data = await self.conn.request(method, path, payload)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
        return orjson.loads(data) if data else None

    async def setup(self) -> None:
        self.conn = RawHTTP("127.0.0.1", self.server.port, timeout=600)
        await self.call(
            "POST",
            "/v1/experiments",
            {"name": "load", "space": BOX2, "teacher": {"kind": "random"}, "seed": 1},
        )
        space = {"kind": "discrete", "tasks": descriptions(0, 5)}
        teacher = {"kind": "omni", "model": "embedding"}
        await self.call(
            "POST", "/v1/experiments", {"name": "judged", "space": space, "teacher": teacher}
        )
        await self.settle()  # the model is loaded and the first tasks judged

    async def unjudged(self) -> int:
        return int((await self.call("GET", "/v1/experiments/judged/state"))["teacher"]["unjudged"])

    async def settle(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while await self.unjudged():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: judging did not finish in {timeout} s")
            await asyncio.sleep(0.2)

    async def window(self, kind: str, args: argparse.Namespace) -> tuple[dict, list[float]]:
        if kind == "judging":
            tasks = descriptions(self.added, args.tasks)
            self.added += args.tasks
            await self.call("POST", "/v1/experiments/judged/space/tasks", {"tasks": tasks})
        at_open = await self.unjudged()
        stop = time.monotonic() + args.duration
        samples: list[float] = []
        done = [0]

        async def client() -> None:
            conn = RawHTTP("127.0.0.1", self.server.port)
            try:
                while time.monotonic() < stop:
                    t0 = time.perf_counter()
                    st1, body = await conn.request("POST", "/v1/experiments/load/tasks", b'{"n":1}')
                    t1 = time.perf_counter()
                    st2, _ = await conn.request(
                        "POST",
                        "/v1/experiments/load/reports",
                        reports_body(orjson.loads(body)["tasks"]),
                    )
                    if (st1, st2) != (200, 200):
                        raise RuntimeError(f"{self.name}: load answered {st1}/{st2}")
                    samples.extend([t1 - t0, time.perf_counter() - t1])
                    done[0] += 1
            finally:
                await conn.close()

        await asyncio.gather(*[client() for _ in range(args.clients)])
        at_close = await self.unjudged()
        await self.settle()
        rec = {
            "arm": self.name,
            "kind": kind,
            "unjudged_at_open": at_open,
            "unjudged_at_close": at_close,
            "episodes_per_s": round(done[0] / args.duration, 1),
            "latency_ms": _latency(samples),
        }
        return rec, samples


async def run(args: argparse.Namespace, workdir: Path, out: dict[str, Any]) -> None:
    arms = [Arm(name, workdir) for name in ARMS]
    for arm in arms:
        await asyncio.to_thread(arm.server.start)
    try:
        for arm in arms:
            await arm.setup()
        pooled: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            # alternate the order of the arms and of idle/judging from round to round
            order = arms if r % 2 == 0 else arms[::-1]
            kinds = ("idle", "judging") if r % 2 == 0 else ("judging", "idle")
            for arm in order:
                for kind in kinds:
                    rec, samples = await arm.window(kind, args)
                    rec["round"] = r
                    out["windows"].append(rec)
                    pooled.setdefault((arm.name, kind), []).extend(samples)
                    lat = rec["latency_ms"]
                    print(
                        f"round {r} {arm.name:>9} {kind:>7}: unjudged {rec['unjudged_at_open']}"
                        f" -> {rec['unjudged_at_close']}, {rec['episodes_per_s']:,.0f} ep/s, "
                        f"p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.1f} ms",
                        flush=True,
                    )
        for arm in arms:
            wins = [w for w in out["windows"] if w["arm"] == arm.name]
            summary: dict[str, Any] = {}
            for kind in ("idle", "judging"):
                mine = [w for w in wins if w["kind"] == kind]
                summary[kind] = {
                    "latency_ms": _latency(pooled[(arm.name, kind)]),
                    "episodes_per_s": round(sum(w["episodes_per_s"] for w in mine) / len(mine), 1),
                }
            judging_windows = [w for w in wins if w["kind"] == "judging"]
            summary["every_judging_window_judged_throughout"] = all(
                w["unjudged_at_close"] > 0 for w in judging_windows
            )
            summary["p99_ratio_judging_to_idle"] = round(
                summary["judging"]["latency_ms"]["p99"] / summary["idle"]["latency_ms"]["p99"], 3
            )
            summary["throughput_ratio_judging_to_idle"] = round(
                summary["judging"]["episodes_per_s"] / summary["idle"]["episodes_per_s"], 3
            )
            out["arms"][arm.name] = summary
    finally:
        for arm in arms:
            if arm.conn is not None:
                await arm.conn.close()
            await asyncio.to_thread(arm.server.stop)


def plot(out: dict[str, Any], path: Path) -> Path | None:
    """p99 and throughput of the load, idle and judging, per arm; None without matplotlib."""
    plt = pyplot_or_none()
    if plt is None:
        return None
    arms = list(out["arms"])
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, label in (
        (axes[0], lambda a, k: a[k]["latency_ms"]["p99"], "p99 of the load's requests (ms)"),
        (axes[1], lambda a, k: a[k]["episodes_per_s"], "load episodes/s"),
    ):
        for j, kind in enumerate(("idle", "judging")):
            vals = [key(out["arms"][a], kind) for a in arms]
            ax.bar([i + (j - 0.5) * 0.38 for i in range(len(arms))], vals, 0.38, label=kind)
        ax.set_xticks(range(len(arms)), [f"model in {a}" for a in arms])
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8, loc="lower right")
    st = out["settings"]
    fig.suptitle(
        f"OMNI embedding judging {st['tasks_per_judging_window']} tasks beside {st['clients']} "
        f"clients at batch 1 ({st['rounds']} x {st['duration_s']:g} s per window kind)",
        fontsize=9,
    )
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds of windows (default 3)")
    p.add_argument("--duration", type=float, default=None, help="seconds per window (5)")
    p.add_argument("--tasks", type=int, default=None, help="tasks added per judging window")
    p.add_argument("--clients", type=int, default=8, help="clients of the load experiment")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round of 1 s windows")
    args = p.parse_args(argv)
    for key, (quick, full) in {
        "rounds": (1, 3),
        "duration": (1.0, 5.0),
        "tasks": (400, 3000),
    }.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.rounds < 1 or args.duration <= 0 or args.tasks < 1 or args.clients < 1:
        p.error("--rounds, --duration, --tasks and --clients must be positive")
    out: dict[str, Any] = {
        "benchmark": "judging_load",
        "command": "python benchmarks/judging_load.py " + " ".join(argv or sys.argv[1:]),
        "machine": describe_machine(),
        "note": "load generator and servers share the same machine",
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "tasks_per_judging_window": args.tasks,
            "clients": args.clients,
            "batch": 1,
            "arms": {k: " ".join(v) for k, v in ARMS.items()},
        },
        "windows": [],
        "arms": {},
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="judging-load-") as tmp:
        asyncio.run(run(args, Path(tmp), out))
    out["total_runtime_s"] = round(time.time() - t0, 1)
    for name, a in out["arms"].items():
        print(
            f"{name:>9}: p99 idle {a['idle']['latency_ms']['p99']:.2f} ms, judging "
            f"{a['judging']['latency_ms']['p99']:.2f} ms (x{a['p99_ratio_judging_to_idle']}); "
            f"throughput x{a['throughput_ratio_judging_to_idle']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} in {out['total_runtime_s']} s")
    if plot(out, args.out.with_suffix(".png")) is not None:
        print(f"plot: {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
