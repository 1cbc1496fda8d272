"""The discrete-task teachers' rules against hand-computed cases: ``lp`` (OMNI's learning
progress) and ``sec`` (Self-Evolving Curriculum)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from api_schemas.spaces import BoxDim, BoxSpace, DiscreteSpace, DiscreteTaskSpec
from api_schemas.tasks import TaskMode
from api_schemas.teachers import LPConfig, OMNIConfig, SECConfig
from teacher_service.teachers import TaskProposal, TaskResult
from teacher_service.teachers.learning_progress import LPTeacher, lp_weights, reweight
from teacher_service.teachers.omni import (
    BORING,
    INTERESTING,
    OMNITeacher,
    moi_walk,
    tfidf_similarity,
)
from teacher_service.teachers.sec import SECTeacher, arm_rewards, softmax

SPACE = DiscreteSpace(tasks=[DiscreteTaskSpec(name=n) for n in ("a", "b", "c", "d")])


def result(task: str, success: bool, mode: TaskMode = TaskMode.TRAIN, **scores: float) -> Any:
    proposal = TaskProposal(params={"task": task}, mode=mode)
    return TaskResult(proposal, float(success), success=success, scores=scores)


def evaluate(teacher: LPTeacher, successes: dict[str, list[bool]]) -> None:
    """Play the queued evaluation round with these outcomes per task, in order."""
    given = {k: list(v) for k, v in successes.items()}
    round_ = teacher.propose(len(teacher.queue_))
    assert all(p.mode == TaskMode.EVALUATE for p in round_)
    teacher.observe(
        [result(p.params["task"], given[p.params["task"]].pop(0), p.mode) for p in round_]
    )


# ----------------------------------------------------------------------------------- lp
def test_reweighting_magnifies_low_success() -> None:
    f = reweight(np.array([0.0, 0.1, 0.5, 1.0]), 0.1)
    # f(0.1) = 0.9 * 0.1 / (0.1 + 0.1 * 0.8) = 0.5; f(0.5) = 0.9 * 0.5 / 0.5 = 0.9
    np.testing.assert_allclose(f, [0.0, 0.5, 0.9, 1.0])


def test_weights_zscore_sigmoid_and_the_zero_weight_rule() -> None:
    w = lp_weights(np.array([0.2, 0.0, 0.1, 0.0]), np.array([0.5, 0.3, 0.0, 0.0]))
    # kept: LP > 0 or success > 0 -> a, b, c; z = (lp - 0.1) / sqrt(0.02 / 3)
    z = np.array([0.1, -0.1, 0.0]) / math.sqrt(0.02 / 3)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(w, [*(s / s.sum()), 0.0])
    assert lp_weights(np.zeros(4), np.zeros(4)).tolist() == [0.25] * 4  # nothing kept: all


def test_the_emas_follow_the_paper_on_a_hand_computed_case() -> None:
    cfg = LPConfig(eval_episodes=5, eval_interval=3, random_success={"a": 0.2})
    t = LPTeacher(SPACE, cfg, np.random.default_rng(0))
    never = [False] * 5
    evaluate(t, {"a": [True, True, True, False, False], "b": never, "c": never, "d": never})
    # a: raw 0.6, normalised (0.6 - 0.2) / 0.8 = 0.5; both EMAs start at the first measurement
    assert t.fast_[0] == pytest.approx(0.5) and t.slow_[0] == pytest.approx(0.5)
    assert t.lp()[0] == 0.0
    t.observe([result("a", True)] * 3)  # eval_interval training episodes: a new round
    assert len(t.queue_) == 4 * 5
    evaluate(t, {"a": [True] * 5, "b": never, "c": never, "d": never})
    # a: normalised 1.0; fast = 0.5 + 0.1 * 0.5 = 0.55; slow = 0.5 + 0.1 * 0.05 = 0.505
    assert t.fast_[0] == pytest.approx(0.55) and t.slow_[0] == pytest.approx(0.505)
    lp = 0.9 * 0.55 / (0.55 - 0.01) - 0.9 * 0.505 / (0.505 - 0.001)
    assert t.lp()[0] == pytest.approx(lp)
    # b, c, d: no success, no progress -> weight 0; all training goes to a
    assert t.weights_.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert {p.params["task"] for p in t.propose(50)} == {"a"}


def test_the_first_round_measures_the_random_baseline_and_every_task_stays_measured() -> None:
    t = LPTeacher(SPACE, LPConfig(eval_episodes=2, eval_interval=4), np.random.default_rng(1))
    first = t.propose(3)
    assert [p.params["task"] for p in first] == ["a", "b", "c"]  # interleaved, before training
    assert all(p.mode == TaskMode.EVALUATE for p in first)
    t.observe([result(p.params["task"], p.params["task"] == "b", p.mode) for p in first])
    rest = t.propose(5)  # the round's last five evaluate tasks
    assert [p.mode for p in rest] == [TaskMode.EVALUATE] * 5
    t.observe([result(p.params["task"], p.params["task"] == "b", p.mode) for p in rest])
    # the untrained policy always solves b: its baseline is 1 and its normalised success 0
    assert t.baseline_.tolist() == [0.0, 1.0, 0.0, 0.0] and t.rounds_ == 1
    assert np.all(t.fast_ == 0.0)
    # training episodes; after eval_interval of them every task is evaluated again
    train = t.propose(4)
    assert all(p.mode == TaskMode.TRAIN for p in train)
    t.observe([result(p.params["task"], False) for p in train])
    again = t.propose(8)
    assert sorted(p.params["task"] for p in again) == sorted("abcd" * 2)


def test_an_expired_evaluate_task_does_not_stall_the_round() -> None:
    t = LPTeacher(SPACE, LPConfig(eval_episodes=1, eval_interval=4), np.random.default_rng(2))
    round_ = t.propose(4)
    t.observe([result(p.params["task"], True, p.mode) for p in round_[:3]])
    assert t.rounds_ == 0
    t.expire([round_[3]])
    assert t.rounds_ == 1 and np.isnan(t.fast_[3]) and t.fast_[:3].tolist() == [0.0] * 3


def test_lp_refuses_other_spaces_and_unknown_baselines() -> None:
    with pytest.raises(ValueError, match="unknown tasks"):
        LPTeacher(SPACE, LPConfig(random_success={"zz": 0.1}), np.random.default_rng(0))
    box = BoxSpace(dims=[BoxDim(name="x", low=0.0, high=1.0)])
    with pytest.raises(ValueError, match="lp needs a 'discrete' task space, got 'box'"):
        LPTeacher(box, LPConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sec needs a 'discrete' task space"):
        SECTeacher(box, SECConfig(), np.random.default_rng(0))


# ---------------------------------------------------------------------------------- sec
def test_softmax_and_arm_rewards_by_hand() -> None:
    np.testing.assert_allclose(softmax(np.array([0.0, math.log(2)]), 1.0), [1 / 3, 2 / 3])
    np.testing.assert_allclose(softmax(np.array([1000.0, 0.0]), 1.0), [1.0, 0.0])  # no overflow
    r = arm_rewards(
        values=np.array([0.6, 0.0, 0.0]),
        valued=np.array([2, 0, 0]),
        successes=np.array([0, 1, 0]),
        episodes=np.array([2, 2, 0]),
    )
    # a: mean |advantage| 0.3; b: binary, p = 0.5 -> 2 sqrt(0.25) = 1; c: no episodes -> 0
    np.testing.assert_allclose(r, [0.3, 1.0, 0.0])


def test_sec_td0_update_of_the_sampled_arms() -> None:
    t = SECTeacher(SPACE, SECConfig(alpha=0.5, batch_episodes=4), np.random.default_rng(0))
    t.q_[2] = 0.4
    t.observe([
        result("a", True, l1_value_loss=0.2),
        result("a", False, l1_value_loss=-0.4),  # |advantage|
        result("b", True),
        result("b", False),
    ])  # fmt: skip
    # a: r = 0.3 -> 0.15; b: r = 1.0 -> 0.5; c, d unsampled: unchanged
    np.testing.assert_allclose(t.q_, [0.15, 0.5, 0.4, 0.0])
    decaying = SECTeacher(
        SPACE,
        SECConfig(alpha=0.5, batch_episodes=2, decay_unsampled=True),
        np.random.default_rng(0),
    )
    decaying.q_[:] = [0.0, 0.0, 0.4, 0.2]
    decaying.observe([result("a", True, abs_advantage=0.8, l1_value_loss=9.0)] * 2)
    # abs_advantage is preferred; absent arms move towards 0
    np.testing.assert_allclose(decaying.q_, [0.4, 0.0, 0.2, 0.1])


def test_sec_samples_by_softmax_and_arms_can_be_categories() -> None:
    t = SECTeacher(SPACE, SECConfig(tau=0.5), np.random.default_rng(3))
    t.q_[:] = [0.0, 0.0, 0.0, 2.0]
    counts = {n: 0 for n in "abcd"}
    for p in t.propose(4000):
        counts[p.params["task"]] += 1
    want = softmax(np.array([0.0, 0.0, 0.0, 2.0]), 0.5)  # e^4 / (3 + e^4) for d
    assert counts["d"] / 4000 == pytest.approx(want[3], abs=0.02)
    grouped = DiscreteSpace(
        tasks=[
            DiscreteTaskSpec(name="easy1", category="easy"),
            DiscreteTaskSpec(name="easy2", category="easy"),
            DiscreteTaskSpec(name="hard1", category="hard"),
            DiscreteTaskSpec(name="solo"),
        ]
    )
    by_cat = SECTeacher(grouped, SECConfig(arms="category"), np.random.default_rng(4))
    assert by_cat.arms == ["easy", "hard", "solo"]
    assert by_cat.tasks_of == [["easy1", "easy2"], ["hard1"], ["solo"]]
    by_cat.q_[:] = [50.0, 0.0, 0.0]  # practically always the easy arm, either of its tasks
    assert {p.params["task"] for p in by_cat.propose(200)} == {"easy1", "easy2"}
    view = by_cat.view()
    assert view["arms"][0]["arm"] == "easy" and view["arms"][0]["probability"] > 0.99


# --------------------------------------------------------------------------------- omni
def test_the_moi_walk_by_hand() -> None:
    # success order: c (0.9), a (0.5), d (0.4), b (0.1); c ~ b and a ~ d are "similar"
    success = np.array([0.5, 0.1, 0.9, 0.4])
    similar = np.eye(4, dtype=bool)
    similar[1, 2] = similar[2, 1] = similar[0, 3] = similar[3, 0] = True
    label, against = moi_walk(success, similar)
    # c interesting, b boring given c; a interesting, d boring given a
    assert label.tolist() == [INTERESTING, BORING, INTERESTING, BORING]
    assert against.tolist() == [0, 2, 2, 0]
    # judgements may be one-way (as a language model's are): d is boring given c, not c given d
    one_way = np.eye(4, dtype=bool)
    one_way[3, 2] = True
    assert moi_walk(success, one_way)[0].tolist() == [INTERESTING, INTERESTING, INTERESTING, BORING]


def test_tfidf_similarity_sees_near_duplicates() -> None:
    sim = tfidf_similarity(["collect wood", "collect wood again variant 2", "make a pickaxe"])
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 1] > 0.5 and sim[0, 2] == 0.0


def test_omni_makes_near_duplicates_of_a_learned_task_boring() -> None:
    space = DiscreteSpace(
        tasks=[
            DiscreteTaskSpec(name="wood", description="collect wood"),
            DiscreteTaskSpec(name="wood2", description="collect wood again, variant 2"),
            DiscreteTaskSpec(name="stone", description="collect stone with a pickaxe"),
        ]
    )
    cfg = OMNIConfig(
        model="tfidf", eval_episodes=4, eval_interval=1, random_success={}, similarity=0.4
    )
    t = OMNITeacher(space, cfg, np.random.default_rng(0))
    evaluate(
        t,
        {
            "wood": [True] * 4,
            "wood2": [True, False, False, False],
            "stone": [True] * 2 + [False] * 2,
        },
    )
    # success: wood 1.0 > stone 0.5 > wood2 0.25; wood2 is boring given wood
    view = {task["task"]: task for task in t.view()["tasks"]}
    assert view["wood"]["interesting"] and view["stone"]["interesting"]
    assert not view["wood2"]["interesting"] and view["wood2"]["judged_against"] == "wood"
    assert view["wood2"]["similarity"] >= 0.4
    # its LP weight, times 0.001, renormalised
    lp_w = lp_weights(t.lp(), np.nan_to_num(t.fast_))
    w = lp_w * np.array([1.0, 0.001, 1.0])
    np.testing.assert_allclose(t.weights_, w / w.sum())
