"""The ``paired`` teacher (PAIRED, docs/algorithms.md#paired) and its numpy adversary: paired
roles, regret, adversary updates and learning, expiry, exact snapshots, and the HTTP
service."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from api_schemas.spaces import BoxSpace, LevelSpace
from api_schemas.teachers import PAIREDConfig
from env_generators.levels import LAVA, WALL, Level
from teacher_service.spaces import check_proposal
from teacher_service.storage.codec import pack_state, unpack_state
from teacher_service.teachers.adversary import LevelAdversary, Trajectory
from teacher_service.teachers.base import TaskProposal, TaskResult
from teacher_service.teachers.paired import PAIREDTeacher
from teacher_service.teachers.registry import make_teacher


def _space(size: int = 9, max_walls: int = 10) -> LevelSpace:
    return LevelSpace(
        kind="level", generator="minigrid", config={"size": size, "max_walls": max_walls}
    )


def _teacher(seed: int = 0, size: int = 9, max_walls: int = 10, **cfg) -> PAIREDTeacher:
    t = make_teacher(_space(size, max_walls), PAIREDConfig(**cfg), seed)
    assert isinstance(t, PAIREDTeacher)
    return t


def _result(task: TaskProposal, ret: float) -> TaskResult:
    return TaskResult(task=task, episode_return=ret)


def _play(t: PAIREDTeacher, returns: Callable[[TaskProposal], float], n: int) -> None:
    """Propose and report ``n`` tasks, each with the return ``returns(task)``."""
    t.observe([_result(p, returns(p)) for p in t.propose(n)])


def _interior_walls(level: Level) -> int:
    return int(np.count_nonzero(level.tiles[1:-1, 1:-1] == WALL))


# ---------------------------------------------------------------- proposals


def test_roles_come_in_pairs_on_the_same_level() -> None:
    t = _teacher(episodes_per_role=2)
    first = t.propose(3)  # P, A, P of level 0; its last A stays queued
    assert t.view()["queue"] == 1
    second = t.propose(3)  # A of level 0, then P, A of level 1
    tasks = first + second
    assert [p.role for p in tasks] == ["protagonist", "antagonist"] * 3
    assert [p.params for p in tasks] == [{"level_id": 0}] * 4 + [{"level_id": 1}] * 2
    assert all(p.agent_id == p.role and p.mode.value == "train" for p in tasks)
    assert len({p.level for p in tasks[:4]}) == 1
    assert t.view()["queue"] == 2 and t.view()["levels_built"] == 2
    assert len(t.propose(0)) == 0
    assert len(t.propose(7)) == 7 and t.view()["queue"] == 3


def test_same_seed_same_levels_and_space_check() -> None:
    a, b = _teacher(seed=5), _teacher(seed=5)
    assert a.propose(10) == b.propose(10)
    assert _teacher(seed=6).propose(10) != _teacher(seed=5).propose(10)
    box = BoxSpace(kind="box", dims=[{"name": "x", "low": 0.0, "high": 1.0}])
    with pytest.raises(ValueError, match="level"):
        PAIREDTeacher(box, PAIREDConfig(), np.random.default_rng(0))


def test_levels_parse_and_respect_max_walls() -> None:
    space = _space(9, 10)
    t = _teacher(size=9, max_walls=10, episodes_per_role=1)
    levels = {p.params["level_id"]: p.level for p in t.propose(2 * 60)}
    assert len(levels) == 60
    walls = []
    for text in levels.values():
        check_proposal(space, TaskProposal(level=text))
        lv = Level.parse(text)
        assert lv.width == lv.height == 9 and lv.count(LAVA) == 0
        assert lv.agent != lv.goal
        walls.append(_interior_walls(lv))
    assert max(walls) <= 10 and min(walls) >= 1  # repeats of a wall tile are no-ops
    v = t.view()
    assert 0.0 <= v["solvable_fraction"] <= 1.0 and v["mean_walls"] == pytest.approx(np.mean(walls))
    # The teacher's own max_walls overrides the space's.
    small = make_teacher(space, PAIREDConfig(max_walls=3), 1)
    for p in small.propose(20):
        assert _interior_walls(Level.parse(p.level)) <= 3


def test_check_result_wants_a_role() -> None:
    t = _teacher()
    p = t.propose(1)[0]
    assert t.check_result(p, {}) is None
    assert "role" in t.check_result(TaskProposal(level=p.level, params=p.params), {})
    bad = TaskProposal(level=p.level, params=p.params, role="referee")
    assert "referee" in t.check_result(bad, {})


# ------------------------------------------------------------------ regret


def test_regret_is_antagonist_max_minus_protagonist_mean() -> None:
    t = _teacher(episodes_per_role=2, update_every=100)
    tasks = t.propose(4)
    returns = {"antagonist": iter([0.2, 0.9]), "protagonist": iter([0.5, 0.3])}
    results = [_result(p, next(returns[p.role])) for p in tasks]
    t.observe(results[:3])
    assert t.view()["levels_completed"] == 0 and t.view()["levels_pending"] == 1
    t.observe(results[3:])
    v = t.view()
    assert v["levels_completed"] == 1 and v["levels_pending"] == 0
    assert v["mean_regret"] == pytest.approx(0.9 - 0.4)  # max(0.2, 0.9) - mean(0.5, 0.3)
    assert v["protagonist_mean_return"] == pytest.approx(0.4)
    assert v["antagonist_max_return"] == pytest.approx(0.9)
    # The protagonist beats the antagonist: the regret is floored at 0.
    _play(t, lambda p: 0.1 if p.role == "antagonist" else 0.8, 4)
    v = t.view()
    assert v["levels_completed"] == 2 and v["mean_regret"] == pytest.approx(0.25)
    assert [d["regret"] for d in v["top_levels"]] == pytest.approx([0.5, 0.0])
    assert v["top_levels"][0]["level"] == tasks[0].level
    assert [h["regret"] for h in v["regret_history"]] == pytest.approx([0.5, 0.0])
    json.dumps(v)  # JSON-able


def test_results_of_unknown_levels_are_ignored() -> None:
    t = _teacher(episodes_per_role=1)
    p = t.propose(2)[0]
    stray = TaskProposal(level=p.level, params={"level_id": 999}, role="antagonist")
    t.observe([_result(stray, 1.0), _result(TaskProposal(level=p.level, role="antagonist"), 1.0)])
    assert t.view()["levels_completed"] == 0 and t.view()["levels_pending"] == 1


def test_adversary_update_every_n_levels() -> None:
    t = _teacher(episodes_per_role=1, update_every=3)
    w0 = t.adversary.params["w2"].copy()
    updates = []
    for k in range(7):
        _play(t, lambda p, k=k: float(p.role == "antagonist") * (k % 2), 2)
        updates.append(t.view()["adversary_updates"])
    assert updates == [0, 0, 1, 1, 1, 2, 2]
    assert not np.array_equal(t.adversary.params["w2"], w0)
    assert t.view()["last_update"]["mean_regret"] == pytest.approx(2 / 3)  # levels 3..5: 1, 0, 1
    assert len(t.batch_) == 1


def test_the_adversary_learns_to_place_the_goal_where_regret_is() -> None:
    target = (3, 2)  # (x, y) of the goal tile that earns regret
    t = _teacher(
        seed=1,
        size=7,
        max_walls=2,
        episodes_per_role=1,
        update_every=8,
        lr=0.02,
        entropy_coef=0.0,
    )
    i = (target[1] - 1) * 5 + (target[0] - 1)
    p0 = t.goal_probabilities().ravel()[i]
    assert p0 == pytest.approx(1 / 25, rel=0.2)  # near-uniform at first
    hits = []
    while t.view()["adversary_updates"] < 30:
        tasks = t.propose(2)
        hit = Level.parse(tasks[0].level).goal == target
        hits.append(hit)
        # Regret 1 when the goal is on the target tile, else 0.
        t.observe([_result(p, float(hit and p.role == "antagonist")) for p in tasks])
    p1 = t.goal_probabilities().ravel()[i]
    assert p1 > 0.5 and p1 > 10 * p0
    assert np.mean(hits[-40:]) > np.mean(hits[:40]) + 0.3
    assert t.view()["mean_regret"] > 0.3


# ------------------------------------------------------------------ expiry


def test_expire_drops_the_level() -> None:
    t = _teacher(episodes_per_role=2, update_every=1)
    tasks = t.propose(3)  # P, A, P of level 0; A of level 0 queued
    t.observe([_result(tasks[0], 0.5), _result(tasks[1], 1.0)])
    t.expire([tasks[2]])
    v = t.view()
    assert v["levels_dropped"] == 1 and v["levels_pending"] == 0
    assert v["queue"] == 0  # the level's queued task is withdrawn with it
    nxt = t.propose(2)
    assert [p.params["level_id"] for p in nxt] == [1, 1]
    # A late result of the dropped level changes nothing.
    t.observe([_result(tasks[2], 0.0), _result(tasks[1], 1.0)])
    assert t.view()["levels_completed"] == 0 and t.view()["adversary_updates"] == 0
    t.expire([tasks[0]])  # already dropped: no double count
    assert t.view()["levels_dropped"] == 1


# ---------------------------------------------------------------- snapshots


def _script(t: PAIREDTeacher, rng: np.random.Generator, steps: int) -> list:
    """A mixed sequence of propose / observe / expire; returns what the teacher said."""
    out: list = []
    for _ in range(steps):
        tasks = t.propose(int(rng.integers(1, 6)))
        out.append([p.to_dict() for p in tasks])
        lost = rng.random(len(tasks)) < 0.1
        keep = [p for p, x in zip(tasks, lost, strict=True) if not x]
        gone = [p for p, x in zip(tasks, lost, strict=True) if x]
        t.observe([_result(p, float(rng.random())) for p in keep])
        if gone:
            t.expire(gone)
        out.append(t.view())
    return out


def _stored(state: dict) -> dict:
    """``state`` after the store's codec (JSON tree + raw arrays), as a restart reads it."""
    return unpack_state(pack_state(state))


def test_snapshot_round_trip_through_the_store_codec_is_exact() -> None:
    t = _teacher(seed=3, episodes_per_role=2, update_every=2)
    _script(t, np.random.default_rng(0), 40)
    if t.view()["queue"] == 0:
        t.propose(1)  # leave tasks queued, so the snapshot must carry them
    assert t.view()["adversary_updates"] > 0 and t.view()["queue"] > 0
    state = _stored(t.state_dict())
    u = _teacher(seed=99, episodes_per_role=2, update_every=2)
    u.load_state_dict(state)
    assert u.view() == t.view()
    assert pack_state(u.state_dict()) == pack_state(t.state_dict())
    live = t.state_dict()
    frozen = pack_state(live)
    # the adversary's weights and Adam moments are stored raw: 8 bytes a number, not JSON text
    n_numbers = 3 * sum(v.size for v in t.adversary.params.values())
    assert len(frozen) < 8 * n_numbers + 200_000
    assert _script(u, np.random.default_rng(1), 30) == _script(t, np.random.default_rng(1), 30)
    assert pack_state(live) == frozen  # a snapshot shares no mutable state with the teacher
    loaded = _stored(live)
    w = _teacher(seed=5, episodes_per_role=2, update_every=2)
    w.load_state_dict(loaded)
    before = pack_state(w.state_dict())
    for arr in loaded["adversary"]["params"].values():
        arr[...] = 0.0  # the loaded teacher shares no arrays with the state it was given
    assert pack_state(w.state_dict()) == before
    for k in t.adversary.params:
        assert np.array_equal(u.adversary.params[k], t.adversary.params[k])


def test_corrupted_snapshot_is_refused() -> None:
    from teacher_service.teachers.base import TeacherStateError

    t = _teacher()
    state = _stored(t.state_dict())
    del state["queue"]
    with pytest.raises(TeacherStateError):
        _teacher().load_state_dict(state)
    other = _stored(_teacher(size=7, max_walls=2).state_dict())
    with pytest.raises(TeacherStateError):
        t.load_state_dict(other)


# ---------------------------------------------------------------- adversary


def _random_batch(rng: np.random.Generator, obs_dim: int, n_act: int) -> list[Trajectory]:
    trajs = []
    for steps in (3, 5):
        obs = rng.standard_normal((steps, obs_dim))
        masks = rng.random((steps, n_act)) < 0.7
        masks[:, 0] = True
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        trajs.append(Trajectory(obs, masks, actions))
    return trajs


def test_adversary_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    adv = LevelAdversary(obs_dim=6, n_actions=5, hidden=4, lr=1e-3, rng=rng)
    adv.params["w2"] = rng.standard_normal(adv.params["w2"].shape)  # non-trivial head
    adv.params["b1"] = rng.standard_normal(4) * 0.1
    trajs = _random_batch(rng, 6, 5)
    advantages = [0.7, -0.3]
    _, grads, _ = adv.loss_and_grads(trajs, advantages, 0.2)
    eps = 1e-6
    for name, w in adv.params.items():
        num = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + eps
            up = adv.loss_and_grads(trajs, advantages, 0.2)[0]
            w[idx] = old - eps
            down = adv.loss_and_grads(trajs, advantages, 0.2)[0]
            w[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], num, rtol=1e-5, atol=1e-7, err_msg=name)


def test_adversary_act_respects_mask_and_state_round_trips() -> None:
    rng = np.random.default_rng(1)
    adv = LevelAdversary(obs_dim=6, n_actions=5, hidden=8, lr=0.01, rng=rng)
    mask = np.array([False, True, False, True, False])
    seen = set()
    for _ in range(200):
        a, logp, ent = adv.act(rng.standard_normal(6), mask, rng)
        seen.add(a)
        assert logp <= 0.0 and 0.0 <= ent <= np.log(2) + 1e-12
    assert seen == {1, 3}
    adv.update(_random_batch(rng, 6, 5), [1.0, -1.0], 0.01)
    other = LevelAdversary(obs_dim=6, n_actions=5, hidden=8, lr=0.01, rng=np.random.default_rng(9))
    other.load_state_dict(unpack_state(pack_state(adv.state_dict())))
    assert pack_state(other.state_dict()) == pack_state(adv.state_dict())
    # snapshots written before the arrays were stored raw held them as JSON lists
    state = adv.state_dict()
    as_lists = {**state, **{p: {k: v.tolist() for k, v in state[p].items()} for p in "mv"}}
    as_lists["params"] = {k: v.tolist() for k, v in state["params"].items()}
    old = LevelAdversary(obs_dim=6, n_actions=5, hidden=8, lr=0.01, rng=np.random.default_rng(4))
    old.load_state_dict(json.loads(json.dumps(as_lists)))
    assert pack_state(old.state_dict()) == pack_state(adv.state_dict())
    x = rng.standard_normal(6)
    assert np.array_equal(other.probs(x, mask), adv.probs(x, mask))
    with pytest.raises(ValueError):
        LevelAdversary(obs_dim=7, n_actions=5, hidden=8, lr=0.01, rng=rng).load_state_dict(
            adv.state_dict()
        )


# --------------------------------------------------------------------- HTTP


def test_runtime_replay_rebuilds_the_same_teacher(tmp_path) -> None:
    """Snapshots plus the event log (tasks, reports, expiries) give back the same PAIRED
    teacher: the restarted runtime proposes the same tasks and shows the same view."""
    from api_schemas.experiments import ExperimentCreate
    from api_schemas.reports import Report
    from teacher_service.runtime import ExperimentRuntime
    from teacher_service.storage import ExperimentRecord, Store

    now = [1000.0]
    store = Store(f"sqlite:///{tmp_path / 'paired.db'}")
    spec = ExperimentCreate(
        name="p",
        space=_space().model_dump(),
        teacher={"kind": "paired", "update_every": 2},
        seed=2,
        lease_seconds=10.0,
    )
    rec = ExperimentRecord("exp1", "p", spec.model_dump(mode="json"), 0.0)
    store.create_experiment(rec).result()
    kw = {"snapshot_every": 7, "clock": lambda: now[0]}
    rt = ExperimentRuntime(rec, store, **kw)
    rng = np.random.default_rng(0)
    for step in range(25):
        tasks, _ = rt.propose(int(rng.integers(1, 6)))
        done = [t for t in tasks if rng.random() > 0.1]
        if done:
            rt.report([Report(task_id=t.id, episode_return=float(rng.random())) for t in done])
        if step % 8 == 7:
            now[0] += 11.0  # the unreported tasks expire
            rt.sweep()
    assert rt.teacher.view()["adversary_updates"] > 0
    assert rt.teacher.view()["levels_dropped"] > 0
    store.barrier().result()
    twin = ExperimentRuntime.load(rt.record, store, **kw)
    assert twin.teacher.view() == rt.teacher.view()
    a, b = rt.propose(5)[0], twin.propose(5)[0]
    assert [(t.level, t.role, t.params) for t in a] == [(t.level, t.role, t.params) for t in b]
    rt.close()
    twin.close()
    store.close()
