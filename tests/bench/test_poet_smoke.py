"""Smoke test of ``benchmarks/poet.py``: one seed, a few thousand env steps for each of the
three runs (POET, DR, the from-scratch control); checks the JSON's shape, the equal env-step
budgets and the plot (the measured figures come from full runs, docs/results/poet.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_poet_benchmark_runs_the_three_arms(tmp_path: Path) -> None:
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "poet.py"), "--seeds", "0",
        "--steps", "6000", "--workers", "1", "--envs-per-worker", "4", "--eval-episodes", "1",
        "--eval-mazes", "FourRooms", "--poll-every", "0", "--progress-every", "-1",
        "--out", str(tmp_path / "poet.json"), "--plot", str(tmp_path / "poet.png"),
        "--checkpoints", str(tmp_path / "ckpt"),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=560, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    out = json.loads((tmp_path / "poet.json").read_text())
    assert out["benchmark"] == "poet" and out["settings"]["seeds"] == [0]
    (run,) = out["runs"]
    steps = run["env_steps"]
    assert steps["poet"] >= 6000 and steps["dr"] >= steps["poet"] <= steps["control"]
    assert run["timeline"] and run["timeline"][-1]["env_steps"] == steps["poet"]
    assert {p["annecs"] for p in run["timeline"]} <= set(range(0, 100))
    assert run["final_envs"] and all(0.0 <= f["control"] <= 1.0 for f in run["final_envs"])
    assert set(run["zero_shot"]) == {"poet", "dr"}
    assert 0.0 <= run["zero_shot"]["poet"]["FourRooms"] <= 1.0
    assert out["summary"]["zero_shot_dr"]["n"] == 1
    assert (tmp_path / "poet.png").stat().st_size > 1000
