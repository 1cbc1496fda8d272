"""Smoke test of ``benchmarks/minigrid_suite.py``: two methods on two suite envs, one seed, a
few thousand steps, then ``--merge`` of a third method into the same results; checks the
JSON, the plot and that a saved checkpoint scores on an env id through ``autocurriculum
evaluate`` (the measured figures come from full runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENVS = ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0"]


def suite(tmp: Path, *methods: str, merge: bool = False) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "minigrid_suite.py"),
        "--methods", *methods, "--seeds", "0", "--steps", "4096", "--workers", "1",
        "--envs-per-worker", "4", "--eval-episodes", "1", "--envs", *ENVS,
        "--progress-every", "-1", "--out", str(tmp / "suite.json"),
        "--plot", str(tmp / "suite.png"), "--checkpoints", str(tmp / "ckpt"),
        *(["--merge"] if merge else []),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=REPO)


@pytest.mark.timeout(600)
def test_minigrid_suite_benchmark_runs_merges_and_checkpoints_evaluate(tmp_path: Path) -> None:
    res = suite(tmp_path, "lp", "random")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    first = json.loads((tmp_path / "suite.json").read_text())
    assert first["benchmark"] == "minigrid_suite" and first["settings"]["actions"] == "full"
    # the hard envs are measured zero-shot even when the suite trains without them
    hard = {"MiniGrid-DoorKey-8x8-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-MultiRoom-N2-S4-v0"}
    assert set(first["settings"]["eval_envs"]) == set(ENVS) | hard
    for run in first["runs"]:
        assert run["env_steps"] >= 4096 and 0.0 <= run["hard_solve_rate"] <= 1.0
    lp = next(r for r in first["runs"] if r["method"] == "lp")
    assert lp["trained_steps"] < lp["env_steps"]  # its evaluate episodes train nothing
    assert (tmp_path / "suite.png").stat().st_size > 1000

    res = suite(tmp_path, "omni-tfidf", merge=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    merged = json.loads((tmp_path / "suite.json").read_text())
    assert [r["method"] for r in merged["runs"]] == ["lp", "random", "omni-tfidf"]
    assert merged["runs"][:2] == first["runs"] and len(merged["commands"]) == 2
    assert set(merged["methods"]) == {"lp", "random", "omni-tfidf"}
    assert merged["total_wall_s"] > first["total_wall_s"]

    ckpt = tmp_path / "ckpt" / "lp-seed0.pt"
    res = subprocess.run(
        [sys.executable, "-m", "student_workers", "evaluate", "--checkpoint", str(ckpt),
         "--env", "MiniGrid-DoorKey-5x5-v0", "--episodes", "2"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "solve" in res.stdout.lower()
