"""Smoke test of ``benchmarks/judging_load.py``: both arms run, judge inside their judging
windows, and the JSON holds the ratios the results page reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_judging_load_quick(tmp_path: Path) -> None:
    out = tmp_path / "j.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "judging_load.py"),
        "--quick",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert (tmp_path / "j.png").stat().st_size > 0  # the plot, beside the JSON
    assert res["benchmark"] == "judging_load" and res["machine"]["cores"] >= 1
    assert set(res["arms"]) == {"processes", "thread"}
    assert len(res["windows"]) == 4  # 1 round x 2 arms x (idle, judging)
    for w in res["windows"]:
        assert w["episodes_per_s"] > 0 and w["latency_ms"]["n"] > 0
        if w["kind"] == "judging":
            assert w["unjudged_at_open"] == 400
        else:
            assert w["unjudged_at_open"] == w["unjudged_at_close"] == 0
    for arm in res["arms"].values():
        idle, judging = arm["idle"], arm["judging"]
        assert arm["p99_ratio_judging_to_idle"] == round(
            judging["latency_ms"]["p99"] / idle["latency_ms"]["p99"], 3
        )
        assert arm["throughput_ratio_judging_to_idle"] > 0
        assert isinstance(arm["every_judging_window_judged_throughout"], bool)
