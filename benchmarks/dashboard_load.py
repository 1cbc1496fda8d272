#!/usr/bin/env python
"""Does the live dashboard keep up with a fast experiment, and what does it cost it?

Starts a real server on a fresh SQLite file, fills one experiment with a long history, then
drives it as fast as a few HTTP clients can (``POST /tasks`` then ``POST /reports``) twice
for the same time: without any page open (the baseline) and with ``--watchers`` live
streams (``/events``, as the dashboard reads them) open on it. It records:

- ``reports_per_s`` of both phases and their ratio (the dashboard's cost to the experiment);
- per stream: frames received, frame size (bytes: bounded by server-side downsampling,
  whatever the history), and the lag between the last logged event and the frame's seq;
- the time to the first frame of a page opened on the long history (cold: the history is
  folded from the log once) and of a second page (warm: shared and incremental).

Usage::

    .venv/bin/python benchmarks/dashboard_load.py            # ~2 minutes on 2 cores
    .venv/bin/python benchmarks/dashboard_load.py --quick    # smoke test, ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.machine import describe_machine
from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "dashboard_load.json"
SPACE = {
    "kind": "box",
    "dims": [{"name": "x", "low": 0.0, "high": 1.0}, {"name": "y", "low": 0.0, "high": 1.0}],
}


def _reports(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    # A smooth made-up return so ALP-GMM has learning progress to fit.
    return {
        "reports": [
            {
                "task_id": t["id"],
                "episode_return": round((t["params"]["x"] + t["params"]["y"]) / 2, 4),
                "success": t["params"]["x"] > 0.5,
            }
            for t in tasks
        ]
    }


async def _client_loop(c: httpx.AsyncClient, exp: str, batch: int, stop: float) -> int:
    done = 0
    while time.monotonic() < stop:
        r = await c.post(f"/v1/experiments/{exp}/tasks", json={"n": batch})
        tasks = r.json()["tasks"]
        r = await c.post(f"/v1/experiments/{exp}/reports", json=_reports(tasks))
        r.raise_for_status()
        done += len(tasks)
    return done


async def drive(url: str, exp: str, clients: int, batch: int, seconds: float) -> float:
    """Feed the experiment for ``seconds``; return reports per second."""
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        t0 = time.monotonic()
        counts = await asyncio.gather(*(_client_loop(c, exp, batch, stop) for _ in range(clients)))
        return sum(counts) / (time.monotonic() - t0)


async def watch(url: str, exp: str, interval: float, stop: asyncio.Event) -> dict[str, Any]:
    """Read the live stream until ``stop``; frame sizes and seq lags as the page sees them."""
    sizes: list[int] = []
    lags: list[int] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=None) as c,
        c.stream("GET", f"/v1/experiments/{exp}/events", params={"interval": interval}) as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                frame = orjson.loads(line[5:])
                sizes.append(len(line))
                # how far the frame is behind the runtime when it was made
                lags.append(frame["counters"]["events"] - frame["seq"])
            if stop.is_set():
                break
    return {
        "frames": len(sizes),
        "frame_bytes_mean": statistics.fmean(sizes) if sizes else None,
        "frame_bytes_max": max(sizes) if sizes else None,
        "seq_lag_mean": statistics.fmean(lags) if lags else None,
        "seq_lag_max": max(lags) if lags else None,
    }


async def first_frame_s(url: str, exp: str) -> float:
    """Seconds until the first frame of a newly opened stream."""
    t0 = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=url, timeout=None) as c,
        c.stream("GET", f"/v1/experiments/{exp}/events") as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                return time.monotonic() - t0
    raise RuntimeError("the stream ended without a frame")


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Fill, then the two phases; returns the results."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        r = await c.post(
            "/v1/experiments",
            json={"name": "dash-bench", "space": SPACE, "teacher": {"kind": "alp_gmm"}},
        )
        r.raise_for_status()
        exp = r.json()["id"]
    t0 = time.monotonic()
    filled = 0
    while filled < args.history:
        filled += int(await drive(url, exp, args.clients, 1000, 1.0))
    fill_s = time.monotonic() - t0
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        history = (await c.get(f"/v1/experiments/{exp}")).json()["counters"]
    cold = await first_frame_s(url, exp)
    warm = await first_frame_s(url, exp)
    baseline = await drive(url, exp, args.clients, args.batch, args.seconds)
    stop = asyncio.Event()
    watchers = [
        asyncio.create_task(watch(url, exp, args.interval, stop)) for _ in range(args.watchers)
    ]
    await asyncio.sleep(0.5)
    watched = await drive(url, exp, args.clients, args.batch, args.seconds)
    stop.set()
    streams = await asyncio.gather(*watchers)
    return {
        "history": {"reports": history["reports_accepted"], "events": history["events"]},
        "fill_s": fill_s,
        "first_frame_cold_s": cold,
        "first_frame_warm_s": warm,
        "reports_per_s_baseline": baseline,
        "reports_per_s_watched": watched,
        "watched_over_baseline": watched / baseline,
        "streams": streams,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--history", type=int, default=200_000, help="Reports filled first.")
    p.add_argument("--seconds", type=float, default=20.0, help="Length of each phase.")
    p.add_argument("--clients", type=int, default=4, help="Concurrent feeding clients.")
    p.add_argument("--batch", type=int, default=32, help="Tasks per request while measuring.")
    p.add_argument("--watchers", type=int, default=4, help="Live streams open in phase two.")
    p.add_argument("--interval", type=float, default=0.5, help="Stream check interval (s).")
    p.add_argument("--quick", action="store_true", help="Tiny sizes (smoke test).")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where the JSON goes.")
    args = p.parse_args(argv)
    if args.quick:
        args.history, args.seconds, args.watchers = 3000, 3.0, 2
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp:
        srv = ServerProcess(f"sqlite:///{Path(tmp) / 'bench.db'}", log_path=Path(tmp) / "log")
        srv.start()
        try:
            results = asyncio.run(run(args, srv.url))
        finally:
            srv.stop()
    out = {
        "benchmark": "dashboard_load",
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe_machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    r = results
    biggest = max(s["frame_bytes_max"] or 0 for s in r["streams"])
    print(
        f"history {r['history']['reports']:,} reports: first frame {r['first_frame_cold_s']:.2f} s "
        f"cold, {r['first_frame_warm_s']:.3f} s warm; reports/s {r['reports_per_s_baseline']:.0f} "
        f"alone vs {r['reports_per_s_watched']:.0f} with {args.watchers} pages open "
        f"(ratio {r['watched_over_baseline']:.2f}); frames "
        f"{[s['frames'] for s in r['streams']]}, largest {biggest:,} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
