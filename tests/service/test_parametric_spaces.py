"""Box spaces with a parametric generator over HTTP: every task carries the level its params
build, and a generator or a dimension the generator does not have is a 422 naming it."""

from __future__ import annotations

import httpx

from env_generators.parametric import ParametricMazes
from teacher_service.client import TeacherClient

SPACE = ParametricMazes().space({"size": (5, 9), "wall_density": (0.0, 0.4), "seed": (0, 1000)})


def test_tasks_of_a_parametric_box_carry_their_levels(shared_server) -> None:
    with TeacherClient(shared_server.url) as c:
        c.create_experiment("params-alp", SPACE, {"kind": "alp_gmm"}, seed=1)
        tasks = c.sample("params-alp", 8)
        shown = c.get_experiment("params-alp")
    assert shown.space.generator == "minigrid_params"
    for t in tasks:
        assert t.level == ParametricMazes().build(t.params)
        assert 5 <= len(t.level.splitlines()) <= 9


def test_a_generator_or_dimension_it_lacks_is_refused(shared_server) -> None:
    cases = [
        ({**SPACE, "generator": "terrain"}, ["space", "generator"], "unknown parametric"),
        (
            {**SPACE, "dims": [{"name": "roughness", "low": 0, "high": 1}]},
            ["space", "dims", 0, "name"],
            "no parameter 'roughness'",
        ),
        (
            {**SPACE, "dims": [{"name": "size", "low": 3, "high": 9}]},
            ["space", "dims", 0],
            "within [5, 15]",
        ),
    ]
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        for i, (space, loc, message) in enumerate(cases):
            body = {"name": f"bad-params-{i}", "space": space, "teacher": {"kind": "random"}}
            r = c.post("/v1/experiments", json=body)
            assert r.status_code == 422, r.text
            assert message in r.text
            assert any(e["loc"][-len(loc) :] == loc for e in r.json()["errors"]), r.json()
            assert c.get(f"/v1/experiments/bad-params-{i}").status_code == 404


def test_the_dashboard_frame_shows_the_levels_the_params_built(shared_server) -> None:
    with TeacherClient(shared_server.url) as c:
        c.create_experiment("params-dash", SPACE, {"kind": "random"}, seed=2)
        tasks = c.sample("params-dash", 10)
    frame = httpx.get(f"{shared_server.url}/v1/experiments/params-dash/dashboard", timeout=30)
    recent = frame.json()["recent_levels"]
    # the last 8 issued, newest first, each the level its params build
    assert [r["index"] for r in recent] == list(range(9, 1, -1))
    by_index = {int(t.id.rsplit("-", 1)[1]): t for t in tasks}
    for r in recent:
        assert (
            r["level"] == by_index[r["index"]].level and r["params"] == by_index[r["index"]].params
        )
