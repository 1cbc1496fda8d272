"""Smoke test of ``benchmarks/ray_scaling.py``: one worker count, a few seconds, checks the
JSON it writes (the measured figures come from full runs, not from tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_ray_scaling_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "rs.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "ray_scaling.py"),
        "--workers", "1", "--seconds", "4", "--num-steps", "32", "--out", str(out),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "ray_scaling" and data["machine"]["cores"] >= 1
    (row,) = data["rows"]
    assert row["workers"] == 1 and row["env_steps"] >= 8 * 32 and row["updates"] >= 1
    assert row["steps_per_s"] is None or row["steps_per_s"] > 0
    assert row["collect_steps_per_s"] > 0 and row["worker_failures"] == 0
