"""Smoke test of ``autocurriculum bench discrete``: tiny settings, in process and over HTTP,
checking the JSON it writes (the two modes give the same figures for the same seeds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from teacher_service.testing import ServerProcess


def bench(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / f"{name}.json"
    args = ["bench", "discrete", "--seeds", "2", "--episodes", "600", "--no-plot"]
    args += [
        "--teacher",
        "random",
        "--teacher",
        '{"kind":"lp","eval_episodes":2,"eval_interval":50}',
    ]
    args += ["--teacher", "sec", "--out", str(out), *extra]
    res = subprocess.run(
        [sys.executable, "-m", "teacher_service", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.with_suffix(".md").read_text().startswith("Families mastered (of 6)")
    return json.loads(out.read_text())


@pytest.mark.timeout(600)
def test_bench_discrete_in_process_and_over_http(tmp_path: Path) -> None:
    local = bench(tmp_path, "local")
    assert local["mode"] == "in-process" and local["families"] == 6
    assert list(local["results"]) == [
        "random",
        '{"eval_episodes": 2, "eval_interval": 50, "kind": "lp"}',
        "sec",
    ]
    for r in local["results"].values():
        assert len(r["finals"]) == 2 and all(0 <= f <= 6 for f in r["finals"])
        assert [len(c) for c in r["curves"]] == [4, 4]  # every 200 of 600 episodes, and 0
    assert local["results"]["random"]["eval_share"] == 0.0
    assert local["results"]["random"]["moi"] is None  # no model of interestingness
    assert (
        0.0
        < local["results"]['{"eval_episodes": 2, "eval_interval": 50, "kind": "lp"}']["eval_share"]
        < 1.0
    )
    srv = ServerProcess(f"sqlite:///{tmp_path / 'bench.db'}", log_path=tmp_path / "log").start()
    try:
        remote = bench(tmp_path, "remote", "--server", srv.url)
    finally:
        srv.stop()
    assert remote["mode"] == "http"
    for label, r in remote["results"].items():
        assert r["curves"] == local["results"][label]["curves"], label
