"""Robust PLR and ACCEL (teachers/plr.py, accel.py, level_buffer.py): the exact rules of
docs/algorithms.md#robust-plr and #accel against hand-computed cases, snapshot round trips,
and the HTTP path (422 for reports without the score, kill -9 and restart continuing like a
twin)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from api_schemas.spaces import LevelSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import ACCELConfig, PLRConfig
from env_generators.levels import Level
from teacher_service.teachers import TaskResult, make_teacher
from teacher_service.teachers.accel import ACCELTeacher
from teacher_service.teachers.level_buffer import LevelBuffer, Lineage, Outcome
from teacher_service.teachers.plr import PLRTeacher

SPACE = LevelSpace(config={"size": 9, "max_walls": 10})


def plr(**kw: Any) -> PLRTeacher:
    return make_teacher(SPACE, PLRConfig(**kw), seed=0)  # type: ignore[return-value]


def accel(**kw: Any) -> ACCELTeacher:
    return make_teacher(SPACE, ACCELConfig(**kw), seed=0)  # type: ignore[return-value]


def level(k: int) -> str:
    """A distinct valid level per k < 42 (the agent's position encodes k)."""
    rows = ["#" * 9] + ["#" + "." * 7 + "#" for _ in range(7)] + ["#" * 9]
    r = list(rows[1 + k // 7])
    r[1 + k % 7] = ">"
    rows[1 + k // 7] = "".join(r)
    rows[7] = rows[7][:7] + "G#"
    return "\n".join(rows)


def fill(buf: LevelBuffer, scores: list[float], counter: int = 0) -> None:
    for k, s in enumerate(scores):
        outcome, _ = buf.consider(level(k), s, 0.0, counter, Lineage(k))
        assert outcome is Outcome.INSERTED


def result(task: Any, ret: float = 0.0, length: int | None = None, **scores: float) -> TaskResult:
    return TaskResult(task=task, episode_return=ret, length=length, scores=scores)


# ----------------------------------------------------------------- prioritisation
def test_rank_prioritisation_matches_hand_computation() -> None:
    buf = LevelBuffer(10, "rank", temperature=0.5, staleness_coef=0.0)
    fill(buf, [0.1, 0.5, 0.3])
    # ranks 3, 1, 2 -> h = 1/3, 1, 1/2 -> h^(1/0.5) = 1/9, 1, 1/4
    w = np.array([1 / 9, 1.0, 1 / 4])
    np.testing.assert_allclose(buf.probabilities(counter=0), w / w.sum(), rtol=1e-12)


def test_power_prioritisation_matches_hand_computation() -> None:
    buf = LevelBuffer(10, "power", temperature=0.5, staleness_coef=0.0)
    fill(buf, [1.0, 2.0, 0.0])
    np.testing.assert_allclose(buf.probabilities(0), [1 / 5, 4 / 5, 0.0], rtol=1e-12)
    buf = LevelBuffer(10, "power", temperature=1.0, staleness_coef=0.0)
    fill(buf, [0.0, 0.0])
    np.testing.assert_allclose(buf.probabilities(0), [0.5, 0.5])  # all zero: uniform


def test_tiny_temperature_neither_overflows_nor_vanishes() -> None:
    buf = LevelBuffer(10, "power", temperature=1e-3, staleness_coef=0.0)
    fill(buf, [3.0, 2.9, 1e-9])
    p = buf.probabilities(0)
    assert np.all(np.isfinite(p)) and p[0] == pytest.approx(1.0)


def test_staleness_mix_matches_hand_computation() -> None:
    buf = LevelBuffer(10, "rank", temperature=1.0, staleness_coef=0.3)
    fill(buf, [0.9, 0.5, 0.1])
    buf.last_sampled[:3] = [0, 5, 8]
    p_s = np.array([1.0, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)
    p_c = np.array([10.0, 5.0, 2.0]) / 17.0  # c - C_i at c = 10
    np.testing.assert_allclose(buf.probabilities(10), 0.7 * p_s + 0.3 * p_c, rtol=1e-12)


def test_sampling_marks_staleness_and_counts_replays() -> None:
    buf = LevelBuffer(10, "rank", temperature=0.3, staleness_coef=0.3)
    fill(buf, [0.9, 0.5, 0.1])
    slot = buf.sample(np.random.default_rng(0), counter=42)
    assert buf.last_sampled[slot] == 42 and buf.replays[slot] == 1


# ------------------------------------------------------------ replay decision
def test_no_replay_before_half_full_then_replay_probability_is_p_not_the_fill() -> None:
    t = plr(buffer_size=10, replay_prob=0.9)
    fill(t.buffer, [0.1, 0.2, 0.3, 0.4])  # 4 of 10: below half
    assert all(p.params["origin"] == "new" for p in t.propose(500))
    t.buffer.consider(level(4), 0.5, 0.0, 0, Lineage(4))  # 5 of 10: exactly half
    origins = [p.params["origin"] for p in t.propose(4000)]
    rate = origins.count("replay") / len(origins)
    # p = 0.9; the filled fraction (0.5) would be far outside this band
    assert 0.88 < rate < 0.92


def test_replay_share_steps_corrects_the_probability_by_episode_lengths() -> None:
    t = plr(buffer_size=10, replay_prob=0.5, replay_share="steps")
    fill(t.buffer, [0.1, 0.2, 0.3, 0.4, 0.5])  # half full: replays may start
    assert t.replay_probability() == 0.5  # no lengths reported yet
    lengths = {"replay": 20, "new": 180}
    tasks = t.propose(40)
    assert {p.params["origin"] for p in tasks} == {"new", "replay"}
    t.observe([result(p, 0.5, lengths[p.params["origin"]], positive_value_loss=0.0) for p in tasks])
    # q = p L_n / (p L_n + (1 - p) L_r) = 0.5 * 180 / (0.5 * 180 + 0.5 * 20) = 0.9, which puts
    # 0.9 * 20 / (0.9 * 20 + 0.1 * 180) = 1/2 of the env steps on replays, as p says
    assert t.replay_probability() == pytest.approx(0.9)
    origins = [p.params["origin"] for p in t.propose(4000)]
    assert 0.88 < origins.count("replay") / len(origins) < 0.92
    # played out: the share of reported steps on replays tends to p
    for _ in range(300):
        batch = t.propose(8)
        t.observe(
            [result(p, 0.5, lengths[p.params["origin"]], positive_value_loss=0.0) for p in batch]
        )
    view = t.view()
    assert view["replay_share"] == "steps" and view["replay_probability"] == pytest.approx(0.9)
    assert 0.45 < view["replay_step_share"] < 0.55
    # the default counts episodes: the same lengths leave the probability at p
    e = plr(buffer_size=10, replay_prob=0.5)
    fill(e.buffer, [0.1, 0.2, 0.3, 0.4, 0.5])
    batch = e.propose(40)
    e.observe([result(p, 0.5, lengths[p.params["origin"]], positive_value_loss=0.0) for p in batch])
    assert e.replay_probability() == 0.5 and e.view()["replay_step_share"] < 0.2


def test_robust_mode_never_issues_a_new_level_as_train() -> None:
    t = plr(buffer_size=8, replay_prob=0.5)
    rng = np.random.default_rng(3)
    modes: dict[str, set[TaskMode]] = {"new": set(), "replay": set()}
    for _ in range(50):
        tasks = t.propose(4)
        for p in tasks:
            modes[p.params["origin"]].add(p.mode)
        t.observe([result(p, float(rng.random()), positive_value_loss=rng.random()) for p in tasks])
    assert modes == {"new": {TaskMode.EXPLORE}, "replay": {TaskMode.TRAIN}}
    classic = plr(buffer_size=8, robust=False)
    assert {p.mode for p in classic.propose(20)} == {TaskMode.TRAIN}


# -------------------------------------------------------------- replacement
def test_replacement_only_when_the_new_score_is_at_least_the_minimum() -> None:
    t = plr(buffer_size=3)
    tasks = t.propose(6)  # buffer empty: all new levels
    t.observe(
        [result(p, positive_value_loss=s) for p, s in zip(tasks[:3], [0.2, 0.5, 0.7], strict=True)]
    )
    assert sorted(t.buffer.scores[:3]) == [0.2, 0.5, 0.7]
    t.observe([result(tasks[3], positive_value_loss=0.1)])  # below the minimum: rejected
    assert tasks[3].level not in t.buffer.levels and t.outcomes_["rejected"] == 1
    t.observe([result(tasks[4], positive_value_loss=0.2)])  # equal to the minimum: replaces it
    assert t.buffer.levels[0] == tasks[4].level and tasks[0].level not in t.buffer.levels
    t.observe([result(tasks[5], positive_value_loss=0.6)])  # replaces the new minimum (0.2)
    assert t.buffer.levels[0] == tasks[5].level
    assert sorted(t.buffer.scores[:3]) == [0.5, 0.6, 0.7]
    assert t.outcomes_ == {"updated": 0, "inserted": 3, "replaced": 2, "rejected": 1}


def test_identical_levels_are_deduplicated() -> None:
    t = plr(buffer_size=4)
    a, b = t.propose(2)
    same = type(b)(level=a.level, mode=b.mode, params=b.params)
    t.observe([result(a, positive_value_loss=0.3), result(same, positive_value_loss=0.8)])
    assert t.buffer.size == 1 and t.buffer.scores[0] == 0.8


def test_replayed_level_score_is_refreshed() -> None:
    t = plr(buffer_size=2, replay_prob=1.0)
    t.observe([result(p, positive_value_loss=0.4) for p in t.propose(2)])
    (p,) = t.propose(1)
    assert p.params["origin"] == "replay"
    t.observe([result(p, positive_value_loss=0.05)])
    slot = t.buffer.slot_of(p.level)
    assert t.buffer.scores[slot] == 0.05 and t.buffer.replays[slot] == 1


def test_view_holds_scores_closer_than_float_resolution_at_their_magnitude() -> None:
    # 1e15 and its next float differ by 0.125: numpy cannot make 20 distinct bins of that.
    t = plr(buffer_size=2)
    a, b = t.propose(2)
    t.observe([result(a, positive_value_loss=1e15), result(b, positive_value_loss=1e15 + 0.125)])
    hist = t.view()["scores"]["histogram"]
    assert hist == {"edges": [1e15, 1e15 + 0.125], "counts": [2]}
    json.dumps(t.view(), allow_nan=False)


def test_max_mc_uses_the_tracked_highest_return() -> None:
    t = plr(buffer_size=2, replay_prob=1.0, score="max_mc")
    a, b = t.propose(2)
    t.observe([result(a, 0.8, mean_value=0.1), result(b, 0.0, mean_value=0.0)])
    slot = t.buffer.slot_of(a.level)
    assert t.buffer.scores[slot] == pytest.approx(0.8 - 0.1)
    replay = TaskProposalLike(a, origin="replay")
    t.observe([result(replay, 0.3, mean_value=0.5)])  # R_max stays 0.8, not this 0.3
    assert t.buffer.scores[slot] == pytest.approx(0.8 - 0.5)
    t.observe([result(replay, 0.9, mean_value=0.5)])  # a new best return raises R_max
    assert t.buffer.scores[slot] == pytest.approx(0.9 - 0.5)
    assert t.buffer.max_returns[slot] == 0.9


def TaskProposalLike(p: Any, **params: Any) -> Any:  # noqa: N802 - reads like a constructor
    """``p`` with some params changed (how a replay of the same level comes back)."""
    return type(p)(level=p.level, mode=TaskMode.TRAIN, params={**p.params, **params})


def test_check_result_names_the_missing_score() -> None:
    t = plr(score="max_mc")
    (p,) = t.propose(1)
    assert "mean_value" in t.check_result(p, {"positive_value_loss": 1.0})
    assert t.check_result(p, {"mean_value": 0.3}) is None


# -------------------------------------------------------------------- ACCEL
def test_accel_new_levels_are_empty_rooms() -> None:
    t = accel(buffer_size=100)
    for p in t.propose(20):
        lv = Level.parse(p.level)
        assert lv.count("#") == 4 * 9 - 4 and lv.count("G") == 1
        assert p.mode == TaskMode.EXPLORE and p.params["depth"] == 0


def test_accel_edits_the_lowest_return_minus_value_loss_levels() -> None:
    t = accel(buffer_size=4, replay_prob=1.0, edit_batch=4, edit_parents=2, num_edits=3)
    t.observe([result(p, positive_value_loss=0.5) for p in t.propose(4)])
    replays = t.propose(4)
    assert all(p.params["origin"] == "replay" for p in replays)
    # keys = return - |l1|: 0.9-0.1, 0.1-0.1, 0.5-0.6, 0.2-0.0 -> lowest: #2 (-0.1), #1 (0.0)
    outcomes = [(0.9, 0.1), (0.1, 0.1), (0.5, 0.6), (0.2, 0.0)]
    t.observe(
        [
            result(p, ret, positive_value_loss=0.5, l1_value_loss=l1)
            for p, (ret, l1) in zip(replays, outcomes, strict=True)
        ]
    )
    assert t.edit_rounds_ == 1 and len(t.children_) == 4
    children = t.propose(4)  # children come first
    parents = [replays[2].params["level_id"], replays[1].params["level_id"]]
    assert [c.params["parent"] for c in children] == parents * 2
    for c in children:
        assert c.params["origin"] == "edit" and c.mode == TaskMode.EXPLORE
        assert c.params["edits"] == 3 and c.params["depth"] == 1
        Level.parse(c.level)
    assert t.propose(1)[0].params["origin"] == "replay"
    # a child that scores at least the minimum enters the buffer with its lineage
    t.observe([result(children[0], positive_value_loss=0.9)])
    slot = t.buffer.slot_of(children[0].level)
    assert slot is not None and t.buffer.lineage(slot) == Lineage(
        children[0].params["level_id"], parents[0], 3, 1
    )
    view = t.view()
    assert view["lineage"]["max_depth"] == 1 and view["editor"]["rounds"] == 1


def test_accel_steps_share_gives_children_as_many_env_steps_as_replays() -> None:
    """replay_share='steps': an edit round waits until its replays took edit_batch x the mean
    child length in env steps (the reference's children rollout is as long as the replay
    rollout); with 'episodes' it comes after every edit_batch replays."""
    t = accel(buffer_size=4, replay_prob=1.0, edit_batch=2, edit_parents=1, replay_share="steps")
    t.observe([result(p, 0.0, 30, positive_value_loss=0.5) for p in t.propose(4)])
    assert t.round_steps_needed() == 0  # no replay or child length reported yet
    t.observe([result(p, 0.5, 30, positive_value_loss=0.5) for p in t.propose(2)])
    assert t.edit_rounds_ == 1  # first round: after edit_batch replays
    children = t.propose(2)
    assert [c.params["origin"] for c in children] == ["edit", "edit"]
    t.observe([result(c, 0.0, 100, positive_value_loss=0.0) for c in children])
    # children last 100 steps: the next round needs 2 x 100 = 200 replay steps, i.e. 7
    # replays of 30 steps (6 make 180), not 2
    assert t.round_steps_needed() == 200
    for k in range(1, 8):
        t.observe([result(t.propose(1)[0], 0.5, 30, positive_value_loss=0.5)])
        assert t.edit_rounds_ == (1 if k < 7 else 2), k
        assert t.view()["editor"]["round_steps"] == (30 * k if k < 7 else 0)
    view = t.view()["editor"]
    assert view["round_steps_needed"] == 200 and view["children_waiting"] == 2
    # a replay reported without a length counts as one of mean replay length (30)
    for _ in range(2):
        t.observe([result(t.propose(1)[0], 0.0, 100, positive_value_loss=0.0)])  # the children
    t.observe([result(t.propose(1)[0], 0.5, None, positive_value_loss=0.5)])
    assert t.view()["editor"]["round_steps"] == 30
    # 'episodes' (the default): the same lengths leave a round per edit_batch replays
    e = accel(buffer_size=4, replay_prob=1.0, edit_batch=2, edit_parents=1)
    e.observe([result(p, 0.0, 30, positive_value_loss=0.5) for p in e.propose(4)])
    e.observe([result(p, 0.5, 30, positive_value_loss=0.5) for p in e.propose(2)])
    e.observe([result(c, 0.0, 100, positive_value_loss=0.0) for c in e.propose(2)])
    e.observe([result(p, 0.5, 30, positive_value_loss=0.5) for p in e.propose(2)])
    assert e.edit_rounds_ == 2 and e.round_steps_needed() == 0


def test_accel_grows_complexity_from_empty_rooms() -> None:
    """A student that finds walled levels hard: the buffer fills with edited, deeper levels."""
    t = accel(buffer_size=40, edit_batch=8, edit_parents=2)
    for _ in range(150):
        tasks = t.propose(8)
        t.observe(
            [result(p, positive_value_loss=Level.parse(p.level).count("#") / 81) for p in tasks]
        )
    n = t.buffer.size
    assert t.buffer.depths[:n].mean() > 2
    assert np.mean([Level.parse(lv).count("#") for lv in t.buffer.levels]) > 40


# ---------------------------------------------------------------- snapshots
def drive(t: Any, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        tasks = t.propose(int(rng.integers(1, 6)))
        kept = tasks[: max(1, len(tasks) - 1)]  # one task per batch stays unreported
        t.observe(
            [
                result(
                    p,
                    float(rng.random()),
                    int(rng.integers(1, 250)),
                    positive_value_loss=float(rng.random()),
                    l1_value_loss=float(rng.random()),
                    mean_value=float(rng.random()),
                )
                for p in kept
            ]
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: plr(buffer_size=16),
        lambda: plr(buffer_size=16, score="max_mc", prioritization="power", robust=False),
        lambda: plr(buffer_size=16, replay_share="steps"),
        lambda: accel(buffer_size=16, edit_batch=5, edit_parents=2),
        lambda: accel(buffer_size=16, edit_batch=5, edit_parents=2, replay_share="steps"),
    ],
)
def test_snapshot_round_trip_is_exact(make: Any) -> None:
    a = make()
    drive(a, 40, seed=1)
    state = json.loads(json.dumps(a.state_dict()))
    b = make()
    b.load_state_dict(state)
    assert json.dumps(b.state_dict()) == json.dumps(a.state_dict())
    assert b.view() == a.view()
    drive(a, 30, seed=2)
    drive(b, 30, seed=2)
    assert a.propose(10) == b.propose(10) and a.view() == b.view()


# ---------------------------------------------------------------------- HTTP
