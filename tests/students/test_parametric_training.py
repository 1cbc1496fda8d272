"""Box teachers drive the Ray students through the parametric maze generator (the ALP-GMM
paper's setting): ``alp_gmm`` and ``lp_tree`` propose parameters, every task carries the level
they build, and ``autocurriculum train`` plays and reports those levels."""

from __future__ import annotations

import json

import httpx
import pytest

from env_generators.parametric import ParametricMazes
from teacher_service.client import TeacherClient, read_export
from tests.students.helpers import ENVS, cli, finish

SPACE = ParametricMazes().space(
    {"size": (5, 9), "wall_density": (0.0, 0.4), "goal_distance": (0.0, 1.0), "seed": (0, 1000)}
)


@pytest.mark.parametrize(
    "teacher",
    [{"kind": "alp_gmm", "bootstrap": 16, "fit_rate": 16, "fit_delay": 4}, {"kind": "lp_tree"}],
    ids=lambda t: t["kind"],
)
def test_a_box_teacher_trains_the_students_on_parametric_mazes(server, tmp_path, teacher):
    name = f"params-{teacher['kind']}"
    TeacherClient(server.url).create_experiment(name, SPACE, teacher, seed=2)
    args = [
        "train", "--server", server.url, "--experiment", name, "--workers", "2",
        "--envs-per-worker", str(ENVS), "--steps", "3000", "--num-steps", "64",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--eval-interval", "0",
    ]  # fmt: skip
    code, out, err = finish(cli(*args))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["actions"] == "navigation" and summary["env_steps"] >= 3000
    rows = read_export(httpx.get(f"{server.url}/v1/experiments/{name}/export", timeout=60).content)
    tasks = {r["index"]: r for r in rows if r["type"] == "task"}
    reports = [r for r in rows if r["type"] == "report"]
    assert len(reports) == summary["episodes"] > 0
    # the students played the levels the params build: a report's length fits its level
    gen = ParametricMazes()
    for r in reports[:20]:
        params = tasks[r["index"]]["params"]
        side = round(gen.resolve(params)["size"])
        assert 5 <= side <= 9 and r["length"] >= 1
    assert len({round(tasks[r["index"]]["params"]["seed"]) for r in reports}) > 5
