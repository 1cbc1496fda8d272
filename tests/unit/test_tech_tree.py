"""The tech-tree simulated student: a chain of families, boring variants, impossible tasks."""

from __future__ import annotations

import numpy as np
import pytest

from env_generators.tech_tree import TechTreeStudent


def master(student: TechTreeStudent, name: str) -> int:
    """Train on ``name`` until it is mastered; the episodes it took."""
    n = 0
    while student.skill[student.index[name]] < student.mastery:
        student.episode(name)
        n += 1
        assert n < 10_000, name
    return n


def test_families_unlock_in_a_chain_and_variants_unlock_nothing() -> None:
    s = TechTreeStudent(families=3, variants=2, impossible=1, seed=0)
    assert [s.learnable(n) for n in ("skill0", "skill0-variant0", "skill1", "impossible0")] == [
        True,
        True,
        False,
        False,
    ]
    s.episode("skill1")
    assert s.skill[s.index["skill1"]] == 0.0  # practice before its time teaches nothing
    master(s, "skill0-variant0")
    master(s, "skill0-variant1")
    assert not s.learnable("skill1") and s.score() == 0  # variants unlock nothing
    master(s, "skill0")
    assert s.learnable("skill1") and s.learnable("skill1-variant1") and s.score() == 1
    # practice on a family carries a share of its gain to the next, once that is learnable
    before = s.skill[s.index["skill1"]]
    s.episode("skill0")
    assert s.skill[s.index["skill1"]] == pytest.approx(
        before + 0.25 * (0.02 * (1 - before) + 0.005)
    )
    master(s, "skill1")
    assert s.score() == 2 and s.learnable("skill2")


def test_skill_grows_by_the_stated_rule_and_evaluation_teaches_nothing() -> None:
    s = TechTreeStudent(families=1, variants=0, impossible=1, rate=0.1, floor=0.01, seed=0)
    s.episode("skill0", train=False)
    assert s.skill[0] == 0.0
    s.episode("skill0")
    assert s.skill[0] == pytest.approx(0.1 * 1.0 + 0.01)
    s.episode("skill0")
    assert s.skill[0] == pytest.approx(0.11 + 0.1 * 0.89 + 0.01)
    assert not any(s.episode("impossible0") for _ in range(200))


def test_success_follows_skill_and_the_seed() -> None:
    a, b = (TechTreeStudent(seed=7) for _ in range(2))
    for s in (a, b):
        s.skill[s.index["skill0"]] = 0.3
    outcomes = [a.episode("skill0", train=False) for _ in range(4000)]
    assert outcomes == [b.episode("skill0", train=False) for _ in range(4000)]
    assert np.mean(outcomes) == pytest.approx(0.3, abs=0.03)


def test_the_space_carries_descriptions_categories_and_the_ground_truth() -> None:
    s = TechTreeStudent(families=2, variants=1, impossible=2)
    space = s.space()
    assert space.names == [
        "skill0", "skill0-variant0", "skill1", "skill1-variant0", "impossible0", "impossible1",
    ]  # fmt: skip
    by_name = {t.name: t for t in space.tasks}
    assert by_name["skill1"].description == "place a crafting table"
    assert by_name["skill1-variant0"].description == "place a crafting table again, variant 1"
    assert by_name["skill1-variant0"].category == "family1"
    assert by_name["impossible1"].category == "impossible"
    assert [s.interesting(n) for n in space.names] == [True, False, True, False, False, False]
    with pytest.raises(ValueError):
        TechTreeStudent(families=0)
