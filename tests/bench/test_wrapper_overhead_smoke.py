"""Smoke test of ``benchmarks/wrapper_overhead.py``: tiny settings, checks the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_wrapper_overhead_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "wo.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "wrapper_overhead.py"),
        *("--rounds", "2", "--random-steps", "300", "--sb3-envs", "2"),
        *("--sb3-n-steps", "32", "--out", str(out)),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=110, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "wrapper_overhead"
    assert data["command"].startswith("python benchmarks/wrapper_overhead.py --rounds 2")
    assert data["machine"]["cores"] >= 1
    names = [s["scenario"] for s in data["scenarios"]]
    assert names == ["random_policy", "random_policy_short_episodes", "sb3_collect"]
    for s in data["scenarios"]:
        assert s["ratio"] > 0 and {"unwrapped", "wrapped"} <= set(s["median_steps_per_s"])
    assert "control_ratio_unwrapped_copy" in data["scenarios"][0]
    assert isinstance(data["all_meet_target"], bool)
    assert data["reports_exactly_once"] is True
