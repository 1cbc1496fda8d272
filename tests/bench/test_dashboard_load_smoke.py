"""Smoke test of ``benchmarks/dashboard_load.py``: tiny sizes, end to end, JSON written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dashboard_load_quick(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    cmd = [sys.executable, "benchmarks/dashboard_load.py", "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())["results"]
    assert res["history"]["reports"] >= 3000
    assert res["reports_per_s_baseline"] > 0 and res["reports_per_s_watched"] > 0
    assert len(res["streams"]) == 2
    for s in res["streams"]:
        # frames kept coming while the experiment ran (interval 0.5 s over ~3 s)
        assert s["frames"] >= 2 and 0 < s["frame_bytes_max"] < 200_000
    assert res["first_frame_cold_s"] > 0
