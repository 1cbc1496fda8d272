"""Smoke test of ``benchmarks/service_load.py``: a tiny grid runs end to end and writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.service_load import last_fit_due

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
        "--refit-compare-processes",
        "1",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())

    assert res["benchmark"] == "service_load"
    assert res["machine"]["cores"] >= 1
    assert "same machine" in res["note"]
    assert res["duration_s"] == 1.0
    assert res["cpu_layout"] is None  # no --fit-cpus: every process shares every CPU
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
    assert {t["teacher"] for t in res["targets"]} == {"random", "alp_gmm"}

    # p99 fresh vs at history (random, 8 clients, batch 1), interleaved windows, and its target.
    (hp,) = res["history_p99"]
    assert (hp["teacher"], hp["clients"], hp["batch"]) == ("random", 8, 1)
    assert hp["pairs"] == 2 and len(hp["windows"]) == 4
    assert [w["kind"] for w in hp["windows"]] == ["fresh", "large", "large", "fresh"]
    assert all(w["errors"] == 0 for w in hp["windows"])
    assert hp["history"] >= 5000
    for kind in ("fresh", "large"):
        assert hp["median_p99_ms"][kind]["worse"] > 0
    assert res["targets_definition"]["history_p99_tolerance"] >= 1.0
    assert "median" in res["targets_definition"]["history_p99"]
    (ht,) = [t for t in res["targets"] if t["target"].startswith("p99 at history")]
    assert ht["teacher"] == "random" and isinstance(ht["pass"], bool)
    assert ht["value"]["ratio"] == hp["ratio"] > 0

    # During refits: alp_gmm past bootstrap at 8 clients, batch 1, fits in worker processes
    # (the main server's 2, and a server with 1) and (a third server) in threads; fits took
    # effect inside every window.
    dr = res["during_refits"]
    assert (dr["teacher"], dr["clients"], dr["batch"]) == ("alp_gmm", 8, 1)
    arms = {"process_pool", "process_pool_1", "threads"}
    assert set(dr["arms"]) == arms
    assert dr["arms"]["process_pool"]["fit_processes"] == 2
    assert dr["arms"]["process_pool_1"]["fit_processes"] == 1
    assert dr["arms"]["threads"]["fit_processes"] == 0
    assert {r["arm"] for r in dr["runs"]} == arms
    for r in dr["runs"]:
        assert r["errors"] == 0, r.get("first_error")
        assert r["episodes_at_open"] >= 250  # past the bootstrap
        # The healthz baseline ran with no fit in progress: the prefill's last fit had taken
        # effect (a proposal at its due point waited for it) before it was measured; the
        # window's warm-up came after it.
        assert r["settled_at"] <= r["episodes_at_open"]
        assert last_fit_due(r["teacher_config"], r["settled_at"]) is None
        assert 0 <= r["quiet_wait_s"] <= 15  # then it waited for the server to idle
        assert r["fits_in_window"] > 0
        assert r["fits_started_and_applied_in_window"] > 0
        assert r["healthz"]["requests_per_s"] > 0 and r["healthz"]["latency_ms"]["p99"] > 0
        # Calls that waited for a late fit, and how long in all, read from /metrics.
        assert r["teacher_waits_in_window"] >= 0 and r["teacher_wait_ms_in_window"] >= 0
        if r["teacher_waits_in_window"] == 0:
            assert r["teacher_wait_ms_in_window"] == 0
    for name, arm in dr["arms"].items():
        assert arm["fits_in_window"] > 0
        runs = [r for r in dr["runs"] if r["arm"] == name]
        assert arm["teacher_waits_in_window"] == sum(r["teacher_waits_in_window"] for r in runs)
        assert arm["healthz_latency_ms"]["p99"] > 0
        for endpoint in ("tasks", "reports"):
            lat = arm["latency_ms"][endpoint]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
            assert arm["p99_ratio_to_healthz_p99"][endpoint] == round(
                lat["p99"] / arm["healthz_latency_ms"]["p99"], 3
            )
    for arm in ("process_pool", "process_pool_1"):  # the fit workers did the work
        assert dr["arms"][arm]["server_children_cpu"] > 0
    assert res["targets_definition"]["during_refits_p99_factor_to_healthz_p99"] == 3.0
    assert (tmp_path / "x_refits.png").stat().st_size > 0  # the arms' plot, beside the JSON
    (rt,) = [t for t in res["targets"] if t["target"].startswith("p99 during refits")]
    assert rt["teacher"] == "alp_gmm" and isinstance(rt["pass"], bool)
    assert rt["value"]["factor"] == 3.0 and rt["value"]["fits_in_window"] > 0


def test_last_fit_due_follows_the_teachers_schedule() -> None:
    paper = {"fit_rate": 250, "bootstrap": 250, "fit_delay": 50}
    assert last_fit_due(paper, 200) is None  # still in the bootstrap
    assert last_fit_due(paper, 1000) == 1050  # the fit started at 1,000 is running
    assert last_fit_due(paper, 1050) == 1050  # due, but no proposal has installed it yet
    assert last_fit_due(paper, 1051) is None
    assert last_fit_due({**paper, "fit_delay": 200}, 1100) == 1200
    assert last_fit_due({**paper, "fit_rate": 10_000}, 10_100) is None  # the control arm
    assert last_fit_due({"fit_rate": 100, "bootstrap": 250, "fit_delay": 50}, 400) == 400
