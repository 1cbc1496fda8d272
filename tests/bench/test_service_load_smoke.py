"""Smoke test of ``benchmarks/service_load.py``: a tiny grid runs end to end and writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "service_load.py"


def test_service_load_quick(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--out",
        str(out),
        "--teachers",
        "random",
        "--history",
        "5000",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())

    assert res["benchmark"] == "service_load"
    assert res["machine"]["cores"] >= 1
    assert "same machine" in res["note"]
    assert res["duration_s"] == 1.0
    clients, batches = res["grid"]["clients"], res["grid"]["batches"]
    assert clients == [1, 8, 64] and batches == [1, 64]

    # The healthz floor at every concurrency, measured next to the scenarios it divides.
    for c in clients:
        rates = [h["requests_per_s"] for h in res["healthz"] if h["clients"] == c]
        assert rates and min(rates) > 0

    # Every scenario of the grid, fresh and at the requested history.
    grid = {(c, b) for c in clients for b in batches}
    fresh = {(s["clients"], s["batch"]) for s in res["scenarios"] if s["kind"] == "fresh"}
    large = [s for s in res["scenarios"] if s["kind"] == "large"]
    assert fresh == grid
    assert {(s["clients"], s["batch"]) for s in large} == grid
    assert len(res["scenarios"]) == 2 * len(grid)
    for s in res["scenarios"]:
        assert s["teacher"] == "random"
        assert s["errors"] == 0, s.get("first_error")
        assert s["tasks_per_s"] > 0 and s["reports_per_s"] > 0
        assert s["ratio_to_healthz"] == round(s["requests_per_s"] / s["healthz_requests_per_s"], 4)
        assert s["ratio_to_healthz"] > 0
        for endpoint in ("tasks", "reports"):
            lat = s["latency_ms"][endpoint]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], (s, endpoint)
    for s in large:
        assert s["history_target"] == 5000 and s["history"] >= 5000

    # History fill and the large-vs-fresh ratios.
    assert res["fill"]["random"]["reached"] == 5000
    assert len(res["history_ratios"]) == len(grid)
    for r in res["history_ratios"]:
        assert r["throughput_ratio"] > 0
        assert r["p50_ratio"]["tasks"] > 0 and r["p50_ratio"]["reports"] > 0

    # Storage at the end: the server's event count and the SQLite file size.
    assert res["server_counters"]["events"] > 0
    assert res["storage"]["events"] >= res["server_counters"]["events"]
    assert res["sqlite_bytes"]["total"] > 0
    assert {t["teacher"] for t in res["targets"]} == {"random"}
