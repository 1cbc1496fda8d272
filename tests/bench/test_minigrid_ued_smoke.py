"""Smoke test of ``benchmarks/minigrid_ued.py``: three methods (PAIRED with two learners), one
seed, a few thousand steps; checks the JSON, the plot and that the saved (weights-only)
checkpoints score on a MiniGrid env id through ``autocurriculum evaluate`` (the measured
figures come from full runs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def combine(*parts: Path, into: Path) -> subprocess.CompletedProcess:
    """``minigrid_ued.py --combine`` of ``parts`` into ``into`` (and its .png beside it)."""
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "minigrid_ued.py"), "--combine",
         *map(str, parts), "--out", str(into), "--plot", str(into.with_suffix(".png"))],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


@pytest.mark.timeout(400)
def test_minigrid_ued_benchmark_runs_and_checkpoints_evaluate(tmp_path: Path) -> None:
    out, png, ckpts = tmp_path / "ued.json", tmp_path / "ued.png", tmp_path / "ckpt"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "minigrid_ued.py"),
        "--methods", "random", "plr_classic", "accel", "paired", "--seeds", "0", "--steps", "4096",
        "--workers", "1", "--progress-every", "0",
        "--eval-episodes", "1", "--mazes", "FourRooms", "Corridor", "--buffer-size", "16",
        "--out", str(out), "--plot", str(png), "--checkpoints", str(ckpts),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=380, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    # --progress-every 0: a line after every update of every run, budget and time left
    assert re.search(
        r"accel +seed 0: [\d,]+ / 4,096 steps +\d+ steps/s .* updates \d+.* ~\d+ min left",
        res.stderr,
    )
    data = json.loads(out.read_text())
    assert data["benchmark"] == "minigrid_ued" and data["machine"]["cores"] >= 1
    assert set(data["methods"]) == {"random", "plr_classic", "accel", "paired"}
    for run in data["runs"]:
        assert run["env_steps"] >= 4096 and set(run["solve_rate"]) == {"FourRooms", "Corridor"}
        assert 0.0 <= run["mean_solve_rate"] <= 1.0
    accel = next(r for r in data["runs"] if r["method"] == "accel")
    assert accel["teacher"]["proposals"]["new"] > 0 and accel["trained_steps"] < 4096
    assert data["methods"]["accel"]["published_solve_rate"] == 0.88
    classic = next(r for r in data["runs"] if r["method"] == "plr_classic")
    assert classic["trained_steps"] == classic["env_steps"]  # classic PLR trains on new levels
    assert png.stat().st_size > 1000
    ckpt = Path(accel["checkpoint"])
    assert ckpt.parent == ckpts and ckpt.stat().st_size < 500_000  # weights only: small
    res = subprocess.run(
        [sys.executable, "-m", "student_workers", "evaluate", "--checkpoint", str(ckpt),
         "--env", "MiniGrid-Empty-5x5-v0", "--episodes", "2"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["env"] == "MiniGrid-Empty-5x5-v0" and got["episodes"] == 2

    # --combine merges runs of the same settings (e.g. one seed per job)
    other = json.loads(out.read_text())
    for run in other["runs"]:
        run["seed"], run["mean_solve_rate"] = 1, 1.0 - run["mean_solve_rate"]
    out1, merged = tmp_path / "ued1.json", tmp_path / "merged.json"
    out1.write_text(json.dumps(other))
    res = combine(out, out1, into=merged)
    assert res.returncode == 0, res.stderr[-3000:]
    both = json.loads(merged.read_text())
    assert both["settings"]["seeds"] == [0, 1] and len(both["runs"]) == 2 * len(data["runs"])
    for agg in both["methods"].values():
        assert agg["seeds"] == 2 and agg["mean_solve_rate"] == pytest.approx(0.5)
    # a combined file combines again (e.g. a method run later): one flat list of commands
    for run in other["runs"]:
        run["seed"] = 2
    out2, merged3 = tmp_path / "ued2.json", tmp_path / "merged3.json"
    out2.write_text(json.dumps(other))
    res = combine(merged, out2, into=merged3)
    assert res.returncode == 0, res.stderr[-3000:]
    three = json.loads(merged3.read_text())
    assert three["settings"]["seeds"] == [0, 1, 2] and len(three["command"]) == 3
    assert all(isinstance(c, str) for c in three["command"])
    # files written before fixed_minibatch and optimizer steps existed still merge: they ran
    # without it; their methods' mean optimizer steps are then unknown
    legacy = json.loads(json.dumps(other))
    del legacy["settings"]["ppo"]["fixed_minibatch"]
    for run in legacy["runs"]:
        del run["optimizer_steps"]
    out1.write_text(json.dumps(legacy))
    res = combine(out, out1, into=merged)
    assert res.returncode == 0, res.stderr[-3000:]
    mixed = json.loads(merged.read_text())
    assert all(agg["optimizer_steps"] is None for agg in mixed["methods"].values())
    assert data["methods"]["random"]["optimizer_steps"] == data["runs"][0]["optimizer_steps"] > 0
    for key, value in (("steps", 8192), ("budget", "trained"), ("ppo", "fixed_minibatch")):
        changed = json.loads(json.dumps(other))
        if key == "ppo":
            changed["settings"]["ppo"][value] = True
        else:
            changed["settings"][key] = value
        out1.write_text(json.dumps(changed))
        res = combine(out, out1, into=merged)
        assert res.returncode != 0 and "Traceback" not in res.stderr
        assert f"differs from {out} in {key}" in res.stderr
    # rows of one method scored differently (e.g. --score max_mc) are not one method
    changed = json.loads(json.dumps(other))
    changed["settings"]["teachers"]["accel"]["score"] = "max_mc"
    out1.write_text(json.dumps(changed))
    res = combine(out, out1, into=merged)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{out1} differs from {out} in teachers.accel" in res.stderr
    # ...named against the file that brought the method's config, not just the first file
    no_accel = json.loads(out.read_text())
    del no_accel["settings"]["teachers"]["accel"]
    no_accel["runs"] = [r for r in no_accel["runs"] if r["method"] != "accel"]
    first, second = tmp_path / "no_accel.json", tmp_path / "ued2.json"
    first.write_text(json.dumps(no_accel))
    second.write_text(out.read_text())
    res = combine(first, second, out1, into=merged)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{out1} differs from {second} in teachers.accel" in res.stderr


@pytest.mark.timeout(300)
def test_trained_budget_gives_every_method_the_same_gradient_samples(tmp_path: Path) -> None:
    """--budget trained (the papers' equal-PPO-updates budget): PLR⊥ (here with the MaxMC
    score and LSTM students) trains on as many steps as DR and spends more env steps, scoring
    new levels without gradients, to get there."""
    out = tmp_path / "ued.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "minigrid_ued.py"),
        "--methods", "random", "plr", "--seeds", "0", "--steps", "3072", "--budget", "trained",
        "--score", "max_mc", "--lstm", "--fixed-minibatch",
        "--workers", "1", "--buffer-size", "8", "--eval-episodes", "1", "--mazes", "FourRooms",
        "--out", str(out), "--plot", str(tmp_path / "ued.png"),
        "--checkpoints", str(tmp_path / "ckpt"),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["settings"]["budget"] == "trained" and data["settings"]["ppo"]["lstm"]
    runs = {r["method"]: r for r in data["runs"]}
    # one rollout is 1024 steps (1 worker x 8 envs x 128): the run stops at the first
    # rollout that brings the trained steps to the budget
    assert runs["random"]["trained_steps"] == runs["random"]["env_steps"] == 3072
    plr = runs["plr"]
    assert plr["teacher"]["score_function"] == "max_mc"  # --score reached the teacher
    assert 3072 <= plr["trained_steps"] < 3072 + 1024
    assert plr["env_steps"] > plr["trained_steps"] and plr["teacher"]["proposals"]["new"] > 0
    # --fixed-minibatch: DR takes 4 epochs x 2 minibatches (1024 / 512 samples) per update;
    # PLR⊥'s rollouts are partly explore steps, so it takes fewer per update (the rule itself
    # is checked in test_ppo.py)
    assert data["settings"]["ppo"]["fixed_minibatch"] is True
    dr = runs["random"]
    assert dr["optimizer_steps"] == dr["updates"] * 4 * 2
    assert 0 < plr["optimizer_steps"] < plr["updates"] * 4 * 2
    assert plr["optimizer_steps"] % 4 == 0  # whole passes of 4 epochs
