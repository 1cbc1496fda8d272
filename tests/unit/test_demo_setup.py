"""What the demo trains on: each teacher's space, the refusal of teachers that cannot run it,
and the comparison line read from the benchmark's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_schemas.teachers import TEACHER_CONFIGS
from env_generators.parametric import ParametricMazes
from student_workers.demo_setup import (
    DEFAULT_TEACHER,
    PARAMETRIC_RANGES,
    benchmark_line,
    demo_space,
    measured,
)


def test_level_teachers_get_the_dr_mazes_and_box_teachers_the_parametric_ones() -> None:
    for kind in ("random", "plr", "accel", "paired", "poet"):
        assert demo_space(kind) == {"kind": "level", "generator": "minigrid"}
    for kind in ("lp_tree", "alp_gmm", "covar_gmm", "riac"):
        space = demo_space(kind)
        assert space == ParametricMazes().space(PARAMETRIC_RANGES)
        assert space["generator"] == "minigrid_params"
    assert DEFAULT_TEACHER in {c.kind_name() for c in TEACHER_CONFIGS}
    assert DEFAULT_TEACHER != "random"  # the demo shows a curriculum


def test_teachers_the_demo_cannot_run_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'sec' teacher takes discrete spaces only.*lp_tree"):
        demo_space("sec")
    with pytest.raises(ValueError, match=r"unknown teacher 'nope'; known: \[.*'random'"):
        demo_space("nope")


def results(tmp_path: Path, teachers: dict) -> Path:
    path = tmp_path / "demo_teachers.json"
    path.write_text(json.dumps({"settings": {"minutes": 3.0}, "teachers": teachers}))
    return path


def row(rate: float, sd: float) -> dict:
    return {"seeds": 3, "test_solve_rate": rate, "test_solve_rate_sd": sd}


def test_the_summary_line_sets_the_teacher_beside_dr(tmp_path) -> None:
    path = results(tmp_path, {"random": row(0.25, 0.05), "lp_tree": row(0.4, 0.1)})
    assert measured("lp_tree", path) == {"minutes": 3.0, **row(0.4, 0.1)}
    line = benchmark_line("lp_tree", path)
    assert line is not None
    assert "lp_tree reached 40% ± 10% and DR (random) 25% ± 5% in 3 min" in line
    assert "over 3 seeds" in line
    # a teacher the benchmark did not run: DR's figure alone
    assert "DR (random) reached 25% ± 5%" in benchmark_line("riac", path)
    assert "DR (random) reached 25% ± 5%" in benchmark_line("random", path)


def test_missing_or_broken_results_give_no_line(tmp_path) -> None:
    assert benchmark_line("lp_tree", tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert measured("random", broken) is None and benchmark_line("random", broken) is None
    assert benchmark_line("lp_tree", results(tmp_path, {"lp_tree": row(0.4, 0.1)})) is None
