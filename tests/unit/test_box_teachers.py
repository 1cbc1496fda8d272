"""Covar-GMM, RIAC and LP-Tree (teachers/covar_gmm.py, riac.py, lp_tree.py): their rules
against hand-computed cases, determinism, and exact snapshot/replay round trips."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from api_schemas.experiments import ExperimentCreate
from api_schemas.reports import Report
from api_schemas.spaces import BoxDim, BoxSpace, DiscreteSpace, DiscreteTaskSpec
from api_schemas.teachers import CovarGMMConfig, LPTreeConfig, RIACConfig
from env_generators.simulated_student import SimulatedStudent, make_student
from teacher_service.runtime import ExperimentRuntime
from teacher_service.storage import ExperimentRecord, Store, pack_state, unpack_state
from teacher_service.teachers import make_teacher
from teacher_service.teachers.base import TaskProposal, TaskResult, Teacher, TeacherStateError
from teacher_service.teachers.gmm_base import GMMParams
from teacher_service.teachers.lp_tree import LPTreeTeacher, best_split, progress_lcb
from teacher_service.teachers.riac import RIACTeacher, region_alp

UNIT2 = BoxSpace(dims=[BoxDim(name="x", low=0.0, high=1.0), BoxDim(name="y", low=0.0, high=1.0)])
#: A non-unit box, so that the unit-cube mapping is exercised too.
WIDE = BoxSpace(dims=[BoxDim(name="x", low=-2.0, high=2.0), BoxDim(name="y", low=10, high=20)])
#: Small hyper-parameters so that each teacher's machinery runs within a few hundred episodes.
SMALL = {
    "covar_gmm": {"fit_rate": 40, "bootstrap": 40, "fit_delay": 10, "max_k": 4},
    "riac": {"max_region_size": 40, "min_region_points": 5, "alp_window": 40},
    "lp_tree": {},
}
KINDS = list(SMALL)


def make(kind: str, seed: int = 0, space: BoxSpace = UNIT2, **cfg) -> Teacher:
    from benchmarks.teacher_quality import parse_teacher

    return make_teacher(space, parse_teacher({"kind": kind, **SMALL[kind], **cfg}), seed)


def play(teacher: Teacher, student: SimulatedStudent, episodes: int, batch: int = 5) -> list:
    """Propose, practise on the toy (in unit coordinates), report; return the proposals."""
    scaler_lo = np.array([d.low for d in teacher.space.dims])
    scaler_hi = np.array([d.high for d in teacher.space.dims])
    proposed = []
    done = 0
    while done < episodes:
        props = teacher.propose(min(batch, episodes - done))
        results = []
        for p in props:
            x = np.array(list(p.params.values()))
            proposed.append(tuple(x))
            unit = (x - scaler_lo) / (scaler_hi - scaler_lo)
            results.append(TaskResult(task=p, episode_return=student.episode(unit)))
        teacher.observe(results)
        done += len(props)
    return proposed


def result(params: dict[str, float], ret: float) -> TaskResult:
    return TaskResult(task=TaskProposal(params=params), episode_return=ret)


# --------------------------------------------------------------------------- common contract


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_under_a_seed_and_in_bounds(kind: str) -> None:
    a, b, c = make(kind, 3, WIDE), make(kind, 3, WIDE), make(kind, 4, WIDE)
    pa = play(a, SimulatedStudent(), 600)
    assert pa == play(b, SimulatedStudent(), 600)
    assert pa != play(c, SimulatedStudent(), 600)
    xs = np.array(pa)
    assert xs[:, 0].min() >= -2 and xs[:, 0].max() <= 2
    assert xs[:, 1].min() >= 10 and xs[:, 1].max() <= 20
    for t in (a, b, c):
        t.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("episodes", [0, 37, 450])
def test_snapshot_round_trip_is_exact(kind: str, episodes: int) -> None:
    original = make(kind, 5, WIDE)
    student = SimulatedStudent()
    play(original, student, episodes, batch=3)
    state = pickle.loads(pickle.dumps(original.state_dict()))
    state = unpack_state(pack_state(state))  # the runtime's snapshot codec
    restored = make(kind, 999, WIDE)  # the seed does not matter: the RNG is restored
    restored.load_state_dict(state)
    assert json.dumps(restored.view()) == json.dumps(original.view())
    twin = copy.deepcopy(student)
    assert play(original, student, 400, batch=7) == play(restored, twin, 400, batch=7)
    assert json.dumps(restored.view()) == json.dumps(original.view())
    original.close()
    restored.close()


@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_or_foreign_snapshots_are_refused(kind: str) -> None:
    teacher = make(kind)
    play(teacher, SimulatedStudent(), 200)
    state = teacher.state_dict()
    broken = dict(state)
    del broken["n_observed"]
    fresh = make(kind)
    with pytest.raises(TeacherStateError, match=kind):
        fresh.load_state_dict(broken)
    with pytest.raises(TeacherStateError, match="not"):
        fresh.load_state_dict({**state, "kind": "random"})
    teacher.close()
    fresh.close()


@pytest.mark.parametrize("kind", KINDS)
def test_input_errors(kind: str) -> None:
    discrete = DiscreteSpace(tasks=[DiscreteTaskSpec(name="a"), DiscreteTaskSpec(name="b")])
    with pytest.raises(ValueError, match="box"):
        make(kind, space=discrete)
    teacher = make(kind)
    with pytest.raises(ValueError, match="n must be"):
        teacher.propose(-1)
    assert teacher.propose(0) == []
    with pytest.raises(ValueError, match="finite"):
        teacher.observe([result({"x": 0.5, "y": 0.5}, float("nan"))])
    with pytest.raises(ValueError, match="params"):
        teacher.observe([TaskResult(task=TaskProposal(level="x"), episode_return=1.0)])
    teacher.close()


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_snapshot_plus_replay_continues_exactly(kind: str, tmp_path: Path) -> None:
    """Through the service's runtime: reload = newest snapshot + replay of the later log."""
    store = Store(f"sqlite:///{tmp_path / 'rt.db'}")
    spec = ExperimentCreate(
        name="e", space=UNIT2, teacher={"kind": kind, **SMALL[kind]}, seed=1, lease_seconds=60
    )
    rec = ExperimentRecord("exp1", "e", spec.model_dump(mode="json"), 0.0)
    store.create_experiment(rec).result()
    rt = ExperimentRuntime(rec, store, snapshot_every=7)
    student = SimulatedStudent()
    for _ in range(60):
        tasks, _ = rt.propose(4)
        rt.report(
            [
                Report(task_id=t.id, episode_return=student.episode([t.params["x"], t.params["y"]]))
                for t in tasks
            ]
        )
    store.barrier().result()
    twin = ExperimentRuntime.load(rt.record, store)
    assert twin.seq == rt.seq and twin.counters == rt.counters
    assert [t.params for t in twin.propose(9)[0]] == [t.params for t in rt.propose(9)[0]]
    rt.close()
    twin.close()
    store.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda: CovarGMMConfig(min_k=4, max_k=3), "min_k"),
        (lambda: CovarGMMConfig(fit_rate=50, fit_delay=50), "fit_delay"),
        (lambda: RIACConfig(p_uniform=0.8, p_perturb=0.3), "p_uniform"),
        (lambda: RIACConfig(max_region_size=10, min_region_points=6), "min_region_points"),
        (lambda: RIACConfig(reward_low=1, reward_high=0), "reward_low"),
        (lambda: LPTreeConfig(p_uniform=0.6, p_expand=0.6), "p_expand"),
        (lambda: LPTreeConfig(window=8, min_leaf=5), "min_leaf"),
        (lambda: LPTreeConfig(lp_window=100), "lp_window"),
        (lambda: LPTreeConfig(split_t=float("nan")), "finite"),
    ],
)
def test_invalid_hyper_parameters_are_refused(config, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config()


# --------------------------------------------------------------------------- Covar-GMM


def test_covar_gmm_rows_carry_time_in_window_and_reward() -> None:
    teacher = make("covar_gmm", fit_rate=20, bootstrap=30, fit_delay=0, max_k=2)
    play(teacher, SimulatedStudent(), 70, batch=1)
    teacher.propose(0)  # installs the fit started at 70
    rows, returns = teacher.recent_.last(70)
    # The fit windows are episodes 10-29, 30-49, 50-69 (fits at 30, 50, 70): t restarts
    # at 0 with each, so every fit sees t = 0, 1/20, ..., 19/20 in order.
    np.testing.assert_allclose(rows[:, 2], np.tile(np.arange(20) / 20, 4)[10:80])
    np.testing.assert_allclose(rows[:, 3], np.clip(returns, 0, 1))
    assert teacher.n_fits_ == 3
    teacher.close()


def test_covar_gmm_component_lp_is_time_reward_covariance() -> None:
    cov = np.zeros((3, 4, 4))
    for i, c in enumerate([0.02, -0.05, 0.0]):
        cov[i] = np.diag([1e-4, 1e-4, 0.1, 0.1])  # positive definite with |c| < 0.1
        cov[i, 2, 3] = cov[i, 3, 2] = c
    means = np.array([[0.2, 0.2, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [0.8, 0.8, 0.5, 0.5]])
    gmm = GMMParams(weights=np.full(3, 1 / 3), means=means, covariances=cov)
    plain = make("covar_gmm", random_task_ratio=0.0)
    absolute = make("covar_gmm", random_task_ratio=0.0, absolute_lp=True)
    np.testing.assert_allclose(plain._component_lp(gmm), [0.02, 0.0, 0.0])
    np.testing.assert_allclose(absolute._component_lp(gmm), [0.02, 0.05, 0.0])
    # Sampling follows that LP and drops the time and reward coordinates.
    for teacher, expected in ((plain, [1.0, 0.0, 0.0]), (absolute, [2 / 7, 5 / 7, 0.0])):
        teacher.gmm_ = gmm
        xy = np.array([list(p.params.values()) for p in teacher.propose(3000)])
        assert xy.shape == (3000, 2)
        nearest = np.argmin(np.abs(xy[:, :1] - means[:, 0][None, :]), axis=1)
        np.testing.assert_allclose(np.bincount(nearest, minlength=3) / 3000, expected, atol=0.03)


def test_covar_gmm_view_is_json() -> None:
    teacher = make("covar_gmm")
    play(teacher, SimulatedStudent(), 120)
    view = json.loads(json.dumps(teacher.view()))
    assert view["gmm"] is not None and len(view["gmm"]["lp"]) == view["gmm"]["k"]
    assert len(view["recent"]["times"]) == len(view["recent"]["rewards"]) == 120
    teacher.close()


# --------------------------------------------------------------------------- RIAC


def test_region_alp_by_hand() -> None:
    r = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.9])
    assert region_alp(r, window=6, min_points=2) == pytest.approx(abs(0.1 - (0.3 + 0.5 + 0.9) / 3))
    # Only the last `window` rewards count; odd windows put the extra one in the first half.
    assert region_alp(r, window=5, min_points=2) == pytest.approx(abs(0.2 - 0.7))
    assert region_alp(r, window=6, min_points=6) == 0.0  # too few episodes yet


def test_riac_split_score_uses_episode_counts() -> None:
    """The fixed rule: the cut maximising n1 * n2 * |alp1 - alp2| (the reference's 2 * 2 made
    every admissible cut with the same ALP gap score alike)."""
    teacher: RIACTeacher = make(
        "riac", max_region_size=40, min_region_points=5, alp_window=40, split_attempts=400
    )
    rng = np.random.default_rng(0)
    # x < 0.5: rewards improve over time (ALP ~0.5); x >= 0.5: flat. y is a distractor.
    for i in range(41):
        x, y = rng.random(), rng.random()
        teacher.observe([result({"x": x, "y": y}, i / 40 if x < 0.5 else 0.3)])
    assert teacher.n_splits_ == 1
    root = teacher.regions_[0]
    dim, at = root.split
    tasks, rewards = root.tasks[: root.n], root.rewards[: root.n]

    def score(d: int, cut: float) -> float:
        left = tasks[:, d] < cut
        n1, n2 = int(left.sum()), int((~left).sum())
        if min(n1, n2) < 5:
            return -1.0
        a1, a2 = region_alp(rewards[left], 40, 5), region_alp(rewards[~left], 40, 5)
        return n1 * n2 * abs(a1 - a2)

    # The chosen cut scores the best of every possible partition along either dimension.
    best = max(score(d, c) for d in (0, 1) for c in tasks[:, d])
    assert dim == 0 and score(dim, at) == pytest.approx(best)
    left, right = (teacher.regions_[i] for i in root.children)
    # It separates the improving half from the flat one (no improving task on the right).
    assert np.all(right.tasks[: right.n, 0] >= 0.5)
    assert left.n + right.n == 41  # the children share out the parent's episodes...
    assert root.n == 41  # ...and the parent keeps its own
    assert np.all(left.tasks[: left.n, 0] < at) and np.all(right.tasks[: right.n, 0] >= at)


def test_riac_respects_min_points_and_min_width() -> None:
    teacher: RIACTeacher = make(
        "riac", max_region_size=40, min_region_points=15, alp_window=40, min_dims_range_ratio=0.3
    )
    rng = np.random.default_rng(1)
    for i in range(200):
        x, y = rng.random(), rng.random()
        teacher.observe([result({"x": x, "y": y}, i / 200 if x < 0.1 else 0.0)])
    for r in teacher.regions_:
        assert np.all(r.hi - r.lo >= 0.3 - 1e-12)
    assert teacher.n_splits_ >= 1
    for r in teacher.regions_[1:]:
        assert r.n >= 15  # children start with >= min_region_points and only grow


def test_riac_regions_hold_their_own_episodes() -> None:
    teacher: RIACTeacher = make("riac")
    play(teacher, SimulatedStudent(), 600)
    assert teacher.n_splits_ >= 2
    # Each region's episodes all lie inside its box.
    for r in teacher.regions_:
        pts = r.tasks[: r.n]
        assert np.all(pts >= r.lo - 1e-12) and np.all(pts <= r.hi + 1e-12)
    view = json.loads(json.dumps(teacher.view()))
    assert len(view["regions"]) == len(teacher.regions_) and view["splits"] == teacher.n_splits_
    assert sum(r["leaf"] for r in view["regions"]) == teacher.n_splits_ + 1


def test_riac_perturbation_mode_starts_from_the_lowest_reward_task() -> None:
    teacher: RIACTeacher = make("riac", p_uniform=0.0, p_perturb=1.0, perturb_sd=1e-6)
    teacher.observe([result({"x": 0.9, "y": 0.9}, 0.8), result({"x": 0.25, "y": 0.75}, 0.1)])
    xy = np.array([list(p.params.values()) for p in teacher.propose(50)])
    np.testing.assert_allclose(xy, np.tile([0.25, 0.75], (50, 1)), atol=1e-4)


# --------------------------------------------------------------------------- LP-Tree


def test_progress_lcb_by_hand() -> None:
    line = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert progress_lcb(line, 0.0) == pytest.approx(0.1)
    assert progress_lcb(line, 5.0) == pytest.approx(0.1)  # a perfect line has no error
    assert progress_lcb(line[::-1].copy(), 0.0) == pytest.approx(0.1)  # forgetting counts
    noisy = np.array([0.0, 0.3, 0.0, 0.3, 0.1])
    slope = np.polyfit(np.arange(5), noisy, 1)[0]
    resid = noisy - np.polyval(np.polyfit(np.arange(5), noisy, 1), np.arange(5))
    se = np.sqrt(resid @ resid / 3 / 10)
    assert progress_lcb(noisy, 0.5) == pytest.approx(max(abs(slope) - 0.5 * se, 0))
    assert progress_lcb(np.array([0.1, 0.9]), 0.0) == 0.0  # fewer than three: no line


def test_best_split_finds_a_step_and_ignores_distractors() -> None:
    rng = np.random.default_rng(0)
    tasks = rng.random((64, 3))
    rewards = np.where(tasks[:, 1] < 0.3, 0.8, 0.1) + rng.normal(0, 0.05, 64)
    t, dim, at = best_split(tasks, rewards, np.zeros(3), np.ones(3), 4, 0.025)
    assert dim == 1 and at == pytest.approx(0.3, abs=0.05) and t > 20
    # Pure noise: the best cut exists but is far from significant.
    t_noise, _, _ = best_split(tasks, rng.normal(0, 0.1, 64), np.zeros(3), np.ones(3), 4, 0.025)
    assert t_noise < 5
    # Constraints: every admissible cut leaves >= min_leaf episodes and >= min_width.
    assert best_split(tasks[:7], rewards[:7], np.zeros(3), np.ones(3), 4, 0.025) is None
    assert best_split(tasks, rewards, np.zeros(3), np.ones(3), 4, 0.6) is None


def test_lp_tree_grows_along_real_differences_only() -> None:
    teacher: LPTreeTeacher = make(
        "lp_tree", space=BoxSpace(dims=[BoxDim(name=f"d{i}", low=0.0, high=1.0) for i in range(6)])
    )
    student = make_student("dim5", 0)  # one more distractor than dim5 expects: harmless
    play(teacher, student, 8000, batch=25)
    assert student.score() > 15
    # Cuts concentrate on the two dimensions the student uses (2 of 6: a third of the cuts
    # by chance). Distractors are still cut sometimes: the best of many candidate cuts on
    # rewards that change over time passes the t test now and then.
    dims = [node[0] for node in teacher.nodes_]
    assert len(dims) >= 10
    assert sum(d in (0, 1) for d in dims) >= 0.5 * len(dims)
    # The tree partitions the cube: leaf volumes sum to 1 and each episode lies in its leaf.
    vol = sum(float(np.prod(leaf.hi - leaf.lo)) for leaf in teacher.leaves_)
    assert vol == pytest.approx(1.0)
    for leaf in teacher.leaves_:
        pts = leaf.tasks[: leaf.n]
        assert np.all(pts >= leaf.lo) and np.all(pts <= leaf.hi)
    assert len(teacher.nodes_) == len(teacher.leaves_) - 1
    view = json.loads(json.dumps(teacher.view()))
    assert len(view["leaves"]) == len(teacher.leaves_)


def test_lp_tree_samples_leaves_by_progress_and_their_neighbourhood() -> None:
    teacher: LPTreeTeacher = make("lp_tree", bootstrap=0, p_uniform=0.0, p_expand=0.0)
    # Uniform until some leaf shows progress.
    assert teacher.lp_.sum() == 0
    # Leaf x < 0.5 improving, x >= 0.5 flat: after a split, nearly all tasks go left.
    for i in range(64):
        x = (i % 8) / 8 + 0.01
        teacher.observe([result({"x": x, "y": 0.5}, i / 64 if x < 0.5 else 0.0)])
    assert len(teacher.leaves_) >= 2
    xs = np.array([p.params["x"] for p in teacher.propose(500)])
    assert np.mean(xs < 0.5) > 0.95
    # With p_expand = 1 tasks come from the chosen leaves grown by `expand` per side.
    teacher.config = LPTreeConfig(bootstrap=0, p_uniform=0.0, p_expand=1.0, expand=0.5)
    xs = np.array([p.params["x"] for p in teacher.propose(2000)])
    assert 0.2 < np.mean(xs >= 0.5) < 0.5


def test_lp_tree_leaf_cap() -> None:
    teacher: LPTreeTeacher = make("lp_tree", max_leaves=5)
    play(teacher, SimulatedStudent(), 3000, batch=25)
    assert len(teacher.leaves_) == 5
    teacher.close()
