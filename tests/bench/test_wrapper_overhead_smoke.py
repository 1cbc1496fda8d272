"""Smoke test of ``benchmarks/wrapper_overhead.py``: tiny settings, checks the JSON it writes."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(tmp_path: Path, *args: str, timeout: float) -> dict:
    """Run the script with ``args`` (and ``--out`` in ``tmp_path``); the JSON it wrote."""
    out = tmp_path / "wo.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "wrapper_overhead.py"), *args]
    res = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True,
                         timeout=timeout, cwd=REPO)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.timeout(120)
def test_wrapper_overhead_benchmark_runs(tmp_path: Path) -> None:
    # The Syllabus arm is part of the default run and `make install` provides syllabus-rl (the
    # dev extra): a missing package is a failure, not a skip.
    try:
        version = importlib.metadata.version("syllabus-rl")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("syllabus-rl is not installed; `make install` (the dev extra) provides it")
    assert version == "0.7"
    data = run_benchmark(
        tmp_path, *("--rounds", "2", "--random-steps", "300", "--sb3-envs", "2"),
        *("--sb3-n-steps", "32"), timeout=110,
    )  # fmt: skip
    assert data["benchmark"] == "wrapper_overhead"
    assert data["command"].startswith("python benchmarks/wrapper_overhead.py --rounds 2")
    assert data["machine"]["cores"] >= 1
    names = [s["scenario"] for s in data["scenarios"]]
    assert names == ["random_policy", "random_policy_short_episodes", "sb3_collect"]
    for s in data["scenarios"]:
        assert s["ratio"] > 0 and {"unwrapped", "wrapped"} <= set(s["median_steps_per_s"])
        # Syllabus's arm, measured in the same rounds, with its own ratio to unwrapped.
        assert s["median_steps_per_s"]["syllabus"] > 0
        assert s["ratio_syllabus"] > 0 and s["ratio_of_totals_syllabus"] > 0
        assert len(s["paired_ratio_quartiles_syllabus"]) == 3
    assert "control_ratio_unwrapped_copy" in data["scenarios"][0]
    assert isinstance(data["all_meet_target"], bool)
    assert data["reports_exactly_once"] is True

    # Episodes flowed through Syllabus's curriculum: every scenario's envs took tasks from it,
    # and the finished episodes reached it (the 25-step cap finishes dozens even here).
    syl = data["syllabus"]
    assert syl["version"] == "0.7" and syl["buffer_size"] == 2
    assert set(syl["scenarios"]) == set(names)
    for stats in syl["scenarios"].values():
        assert stats["tasks_assigned_by_curriculum"] >= stats["levels_set_by_envs"] > 0
    short = syl["scenarios"]["random_policy_short_episodes"]
    assert short["episodes_seen_by_curriculum"] >= 10
    assert short["steps_seen_by_curriculum"] >= short["episodes_seen_by_curriculum"]
    assert syl["all_episodes_reached_curriculum"] is True


@pytest.mark.timeout(60)
def test_wrapper_overhead_skip_syllabus(tmp_path: Path) -> None:
    data = run_benchmark(
        tmp_path, *("--rounds", "2", "--random-steps", "200", "--skip-sb3", "--no-control"),
        "--skip-syllabus", timeout=50,
    )  # fmt: skip
    assert data["syllabus"] is None
    for s in data["scenarios"]:
        assert set(s["median_steps_per_s"]) == {"unwrapped", "wrapped"}
        assert "ratio_syllabus" not in s and s["ratio"] > 0
