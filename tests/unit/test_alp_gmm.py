"""ALP-GMM teacher (teachers/alp_gmm.py): the rules of
docs/algorithms.md#alp-gmm-covar-gmm-and-riac, background fits, determinism, snapshots, and
the simulated-student quality check."""

from __future__ import annotations

import copy
import json
import pickle
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info

from api_schemas.spaces import BoxDim, BoxSpace, DiscreteSpace, DiscreteTaskSpec
from api_schemas.teachers import ALPGMMConfig
from env_generators.simulated_student import SimulatedStudent
from teacher_service.storage.codec import pack_state, unpack_state
from teacher_service.teachers import gmm_base, make_teacher, teacher_class
from teacher_service.teachers.alp_gmm import ALPGMMTeacher
from teacher_service.teachers.base import TaskProposal, TaskResult, TeacherStateError
from teacher_service.teachers.gmm_base import (
    GMMParams,
    fit_gmms,
    information_criterion,
    n_free_parameters,
)
from teacher_service.teachers.gmm_em import FittedMixture, fit_full_gmm
from tests.helpers import HeldExecutor

UNIT2 = BoxSpace(dims=[BoxDim(name="x", low=0.0, high=1.0), BoxDim(name="y", low=0.0, high=1.0)])
#: Small hyper-parameters so that fits happen within a few hundred episodes.
SMALL = {"fit_rate": 40, "bootstrap": 40, "fit_delay": 15, "max_k": 4}


def make(seed: int = 0, space: BoxSpace = UNIT2, **cfg) -> ALPGMMTeacher:
    return ALPGMMTeacher(space, ALPGMMConfig(**cfg), np.random.default_rng(seed))


def play(
    teacher: ALPGMMTeacher,
    student: SimulatedStudent,
    episodes: int,
    batch: int = 1,
    one_by_one: bool = False,
) -> list[tuple[float, ...]]:
    """Propose ``batch`` tasks, run them on the student, report them; return the proposals."""
    proposed: list[tuple[float, ...]] = []
    done = 0
    while done < episodes:
        props = teacher.propose(min(batch, episodes - done))
        results = []
        for p in props:
            params = tuple(p.params.values())
            proposed.append(params)
            results.append(TaskResult(task=p, episode_return=student.episode(params)))
        if one_by_one:
            for r in results:
                teacher.observe([r])
        else:
            teacher.observe(results)
        done += len(props)
    return proposed


def result(params: dict[str, float], ret: float) -> TaskResult:
    return TaskResult(task=TaskProposal(params=params), episode_return=ret)


def tiny_gmm(mean_alps: list[float]) -> GMMParams:
    """Three near-point components at (0.2, 0.2), (0.5, 0.5), (0.8, 0.8)."""
    centres = [0.2, 0.5, 0.8]
    means = np.array([[c, c, a] for c, a in zip(centres, mean_alps, strict=True)])
    cov = np.repeat(np.eye(3)[None] * 1e-6, 3, axis=0)
    return GMMParams(weights=np.full(3, 1 / 3), means=means, covariances=cov)


def nearest_centre(proposals: list[TaskProposal]) -> np.ndarray:
    xy = np.array([[p.params["x"], p.params["y"]] for p in proposals])
    return np.argmin(np.abs(xy[:, :1] - np.array([[0.2, 0.5, 0.8]])), axis=1)


# --------------------------------------------------------------------------- ALP


def test_alp_on_a_hand_made_case() -> None:
    # Non-unit task bounds and reward bounds: ALP lives in the normalised spaces.
    space = BoxSpace(
        dims=[BoxDim(name="a", low=0.0, high=10.0), BoxDim(name="b", low=-1.0, high=1.0)]
    )
    teacher = make(space=space, reward_low=-1.0, reward_high=3.0)  # r01 = (ret + 1) / 4
    history = [
        ({"a": 0.0, "b": -1.0}, 3.0),  # r01 1.0
        ({"a": 10.0, "b": -1.0}, -1.0),  # 0.0
        ({"a": 0.0, "b": 1.0}, 1.0),  # 0.5
        ({"a": 10.0, "b": 1.0}, 0.0),  # 0.25
        ({"a": 5.0, "b": 0.0}, 7.0),  # clipped to 1.0
        ({"a": 2.5, "b": 0.5}, -5.0),  # clipped to 0.0
    ]
    teacher.observe([result(p, r) for p, r in history])
    teacher.observe([result({"a": 9.0, "b": -0.8}, 2.0)])  # 0.75, nearest (10, -1): 0.0
    teacher.observe([result({"a": 5.0, "b": 0.0}, 1.0)])  # 0.5, nearest (5, 0): 1.0
    # Same task again: (5, 0) was seen twice (rewards 1.0 then 0.5); the tie goes to the
    # earlier one.
    teacher.observe([result({"a": 5.0, "b": 0.0}, 1.0)])
    recent = teacher.view()["recent"]
    # History of <= 5 tasks: ALP 0 (reference rule), even for the clipped extremes.
    assert recent["alps"] == [0.0] * 6 + [0.75, 0.5, 0.5]
    assert recent["returns"] == [3.0, -1.0, 1.0, 0.0, 7.0, -5.0, 2.0, 1.0, 1.0]
    assert recent["tasks"][6] == pytest.approx([9.0, -0.8])


def test_seventh_task_is_the_first_with_alp() -> None:
    teacher = make()
    teacher.observe([result({"x": 0.1 * i, "y": 0.0}, 0.1 * i) for i in range(6)])
    teacher.observe([result({"x": 0.0, "y": 0.0}, 1.0)])
    assert teacher.view()["recent"]["alps"] == [0.0] * 6 + [1.0]


# --------------------------------------------------------------------------- fitting


def blobs(n: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.2, 0.2, 0.05], [0.7, 0.3, 0.3], [0.5, 0.8, 0.1]])
    return centres[rng.integers(0, 3, n)] + rng.normal(0.0, 0.03, (n, 3))


def test_k_range_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    threads: list[int] = []

    def counting_fit(rows: np.ndarray, k: int, random_state: int) -> FittedMixture:
        built.append(k)
        threads.append(max(i["num_threads"] for i in threadpool_info()))
        return fit_full_gmm(rows, k, random_state)

    monkeypatch.setattr(gmm_base, "fit_full_gmm", counting_fit)
    before = [i["num_threads"] for i in threadpool_info()]
    res = fit_gmms(blobs(), random_state=0, min_k=2, max_k=5, criterion="aic")
    # The reference's arange(min_k, max_k) would stop at 4.
    assert built == [2, 3, 4, 5] and res.ks == (2, 3, 4, 5)
    assert threads == [1, 1, 1, 1]  # one BLAS/OpenMP thread per fit...
    assert [i["num_threads"] for i in threadpool_info()] == before  # ...restored after
    built.clear()
    assert fit_gmms(blobs(), 0, 3, 3, "bic").ks == (3,)
    assert built == [3]

    # Fits in other, short-lived threads (each teacher owns one) are limited as well.
    threads.clear()
    for _ in range(2):
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(fit_gmms, blobs(), 0, 2, 3, "aic").result()
    assert threads == [1, 1, 1, 1]
    assert [i["num_threads"] for i in threadpool_info()] == before

    # The teacher uses min_k..max_k inclusive too, with the paper's defaults 2..10.
    built.clear()
    teacher = make(fit_rate=50, bootstrap=50, fit_delay=0)
    play(teacher, SimulatedStudent(), 50)
    teacher.propose(0)  # the first proposal after the fit's episode installs it
    assert built == list(range(2, 11))
    assert teacher.view()["last_fit"]["k"] == list(range(2, 11))


@pytest.mark.parametrize("criterion", ["aic", "bic", "aicc"])
def test_criterion_selection(criterion: str) -> None:
    rows = blobs()
    n = rows.shape[0]
    res = fit_gmms(rows, random_state=11, min_k=1, max_k=6, criterion=criterion)
    for k, score in zip(res.ks, res.scores, strict=True):
        ref = GaussianMixture(k, covariance_type="full", random_state=11).fit(rows)
        aic = ref.aic(rows)  # sklearn counts the same free parameters as we do
        expected = {
            "aic": aic,
            "bic": ref.bic(rows),
            "aicc": aic + 2 * (p := n_free_parameters(k, 3)) * (p + 1) / (n - p - 1),
        }[criterion]
        assert score == pytest.approx(expected, rel=1e-9)
    best = res.ks[int(np.argmin(res.scores))]
    assert res.gmm is not None and res.gmm.k == best
    assert best >= 3  # three well-separated blobs are never explained by fewer components
    ref = GaussianMixture(best, covariance_type="full", random_state=11).fit(rows)
    np.testing.assert_allclose(res.gmm.means, ref.means_)


def test_information_criteria_by_hand() -> None:
    assert n_free_parameters(1, 1) == 2
    assert n_free_parameters(2, 3) == 2 * 3 + 2 * 6 + 1
    assert information_criterion("aic", -10.0, 3, 10) == 26.0
    assert information_criterion("bic", -10.0, 3, 10) == pytest.approx(20.0 + 3 * np.log(10))
    assert information_criterion("aicc", -10.0, 3, 10) == pytest.approx(26.0 + 24.0 / 6.0)
    assert information_criterion("aicc", -10.0, 3, 4) == np.inf  # n <= p + 1: undefined
    with pytest.raises(ValueError, match="criterion"):
        information_criterion("hqic", 0.0, 1, 10)


def test_aicc_undefined_everywhere_falls_back_to_the_smallest_k() -> None:
    res = fit_gmms(blobs(12), random_state=0, min_k=2, max_k=4, criterion="aicc")
    assert res.scores == (np.inf,) * 3
    assert res.gmm is not None and res.gmm.k == 2
    assert fit_gmms(blobs(3), 0, 2, 10, "aic").ks == (2, 3)  # k > rows is not tried


def test_fit_schedule() -> None:
    teacher = make(fit_rate=20, bootstrap=30, fit_delay=0, max_k=3)
    student = SimulatedStudent()
    play(teacher, student, 29)
    teacher.propose(0)  # a proposal installs every fit due by now
    assert teacher.gmm_ is None and teacher.n_fits_ == 0
    play(teacher, student, 1)
    teacher.propose(0)
    assert teacher.n_fits_ == 1 and teacher.last_fit_at_ == 30  # fit_delay 0: at once
    play(teacher, student, 19)
    teacher.propose(0)
    assert teacher.n_fits_ == 1
    play(teacher, student, 1)
    teacher.propose(0)
    assert teacher.n_fits_ == 2 and teacher.last_fit_at_ == 50
    # Without bootstrap the first fit waits for fit_rate rows.
    teacher = make(fit_rate=20, bootstrap=0, fit_delay=0, max_k=3)
    play(teacher, SimulatedStudent(), 19)
    teacher.propose(0)
    assert teacher.n_fits_ == 0
    play(teacher, SimulatedStudent(), 1)
    teacher.propose(0)
    assert teacher.last_fit_at_ == 20


def test_fit_uses_the_last_fit_rate_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []
    real = gmm_base.fit_ks

    def spy(rows, *args):
        seen.append(rows.copy())
        return real(rows, *args)

    monkeypatch.setattr(gmm_base, "fit_ks", spy)
    teacher = make(fit_rate=20, bootstrap=20, fit_delay=0, max_k=2)
    play(teacher, SimulatedStudent(), 40)
    teacher.propose(0)  # waits for the fit started at 40
    rows, _ = teacher.recent_.last(20)
    assert len(seen) == 2 and rows.shape == (20, 3)  # [x, y, alp]
    np.testing.assert_array_equal(seen[1], rows)


# --------------------------------------------------------------------------- sampling


def test_component_choice_is_proportional_to_mean_alp() -> None:
    teacher = make(random_task_ratio=0.0)
    teacher.gmm_ = tiny_gmm([0.0, 1.0, 3.0])
    counts = np.bincount(nearest_centre(teacher.propose(4000)), minlength=3) / 4000
    assert counts[0] == 0.0
    assert counts[2] == pytest.approx(0.75, abs=0.03)
    # All mean ALPs zero (or negative): uniform over components.
    teacher.gmm_ = tiny_gmm([0.0, -0.5, 0.0])
    counts = np.bincount(nearest_centre(teacher.propose(3000)), minlength=3) / 3000
    np.testing.assert_allclose(counts, [1 / 3, 1 / 3, 1 / 3], atol=0.03)


def test_random_task_ratio() -> None:
    teacher = make(random_task_ratio=0.5)
    teacher.gmm_ = tiny_gmm([1.0, 1.0, 1.0])
    xy = np.array([[p.params["x"], p.params["y"]] for p in teacher.propose(4000)])
    at_centre = (np.abs(xy - np.array([[0.2], [0.5], [0.8]])[:, None]).max(axis=2) < 0.01).any(0)
    assert 1.0 - at_centre.mean() == pytest.approx(0.5, abs=0.03)


def test_bounds() -> None:
    space = BoxSpace(
        dims=[
            BoxDim(name="a", low=-2.0, high=3.0),
            BoxDim(name="b", low=10.0, high=20.0),
            BoxDim(name="c", low=0.0, high=1e-3),
        ]
    )
    teacher = make(space=space, random_task_ratio=0.0)
    wide = np.repeat(np.eye(4)[None] * 4.0, 2, axis=0)  # mostly outside the cube: clipped
    teacher.gmm_ = GMMParams(np.array([0.5, 0.5]), np.array([[0.0] * 4, [1.0] * 4]), wide)
    proposals = teacher.propose(2000)
    for p in proposals:
        assert space.validate_params(p.params) == p.params
    values = np.array([list(p.params.values()) for p in proposals])
    assert (values == [-2.0, 10.0, 0.0]).all(axis=1).any()  # corners are reached, not passed
    assert (values == [3.0, 20.0, 1e-3]).all(axis=1).any()
    # And along a real run with fits.
    teacher = make(space=space, **SMALL)
    rng = np.random.default_rng(0)
    for _ in range(150):
        (p,) = teacher.propose(1)
        space.validate_params(p.params)
        teacher.observe([TaskResult(task=p, episode_return=float(rng.random()))])
    assert teacher.n_fits_ >= 2
    teacher.close()


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_proposals_and_seed_zero_is_a_seed() -> None:
    runs = []
    for seed in (0, 0, 1):
        teacher = make_teacher(UNIT2, ALPGMMConfig(**SMALL), seed)
        assert isinstance(teacher, ALPGMMTeacher)
        runs.append(play(teacher, SimulatedStudent(), 300, batch=7))
        teacher.close()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_no_global_random_state_is_used() -> None:
    np_state, py_state = np.random.get_state(), random.getstate()
    teacher = make(**SMALL)
    play(teacher, SimulatedStudent(), 200)
    teacher.close()
    after = np.random.get_state()
    assert after[0] == np_state[0] and (after[1] == np_state[1]).all() and after[2] == np_state[2]
    assert random.getstate() == py_state


def test_batch_grouping_of_reports_does_not_matter() -> None:
    # Reports observed one call each or all at once: the fit lands at the same episode.
    a, b = make(**SMALL), make(**SMALL)
    pa = play(a, SimulatedStudent(), 400, batch=16, one_by_one=True)
    pb = play(b, SimulatedStudent(), 400, batch=16, one_by_one=False)
    assert pa == pb
    assert a.n_fits_ == b.n_fits_ == 9
    a.close()
    b.close()


def test_fit_takes_effect_at_k_plus_delay_whatever_the_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = {"fit_rate": 20, "bootstrap": 20, "fit_delay": 5, "max_k": 3}
    real = gmm_base.fit_ks

    def run_to_due(teacher: ALPGMMTeacher, student: SimulatedStudent) -> list:
        """24 episodes, then a batch of 3 that crosses the due episode (25) of the fit
        started at 20: the reports do not need the fit and never wait for it."""
        proposed = play(teacher, student, 24)
        props = teacher.propose(3)
        teacher.observe([TaskResult(task=p, episode_return=0.1) for p in props])
        assert teacher.n_observed_ == 27 and teacher.gmm_ is None
        assert teacher.view()["pending_fit"]["due_at"] == 25
        return proposed + [tuple(p.params.values()) for p in props]

    # Fast fit: done long before it is due, and still used only from episode 25 on.
    fast = make(**cfg)
    student_fast = SimulatedStudent()
    fast_proposed = run_to_due(fast, student_fast)
    fast._pending.future.result(timeout=30)
    assert not fast.would_block(0) and fast.pending_work() is None
    fast_proposed += [tuple(p.params.values()) for p in fast.propose(1)]  # installs it
    assert fast.gmm_ is not None and fast.n_fits_ == 1 and fast.last_fit_at_ == 20

    # Slow fit (held until released): only the proposal made once it is due waits.
    gate = threading.Event()

    def held(*args):
        assert gate.wait(timeout=60)
        return real(*args)

    monkeypatch.setattr(gmm_base, "fit_ks", held)
    slow = make(**cfg)
    student_slow = SimulatedStudent()
    slow_proposed = run_to_due(slow, student_slow)
    assert slow.would_block(0) and slow.pending_work() is slow._pending.future
    assert not slow.would_block(12)  # the next fit starts at 40...
    assert slow.would_block(13)  # ...and would install this one first
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(slow.propose, 1)
        time.sleep(0.2)
        assert not waiting.done()
        gate.set()
        slow_proposed += [tuple(p.params.values()) for p in waiting.result(timeout=60)]
    assert slow.gmm_ is not None and slow.n_fits_ == 1 and slow.last_fit_at_ == 20
    # The same event sequence gives the same proposals, however long the fit took.
    assert fast_proposed == slow_proposed
    assert play(fast, student_fast, 60) == play(slow, student_slow, 60)
    fast.close()
    slow.close()


def test_close_keeps_the_teacher_usable_and_identical() -> None:
    a, b = make(**SMALL), make(**SMALL)
    sa, sb = SimulatedStudent(), SimulatedStudent()
    assert play(a, sa, 45) == play(b, sb, 45)
    assert b._pending is not None
    b.close()  # mid-fit
    b.close()  # twice is fine
    assert play(a, sa, 200) == play(b, sb, 200)
    a.close()
    b.close()


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("episodes", [0, 30, 50, 55, 120])  # 50: fit pending; 55: just landed
def test_snapshot_round_trip(episodes: int) -> None:
    original = make(seed=5, **SMALL)
    student = SimulatedStudent()
    play(original, student, episodes, batch=3)
    state = original.state_dict()
    if episodes == 50:
        assert state["pending_fit"] is not None and state["pending_fit"]["due_at"] == 55
    state = pickle.loads(pickle.dumps(state))  # survives serialisation...
    state = unpack_state(pack_state(state))  # ...including the runtime's snapshot codec
    restored = make(seed=999, **SMALL)  # the seed does not matter: the RNG is restored
    restored.load_state_dict(state)
    twin = copy.deepcopy(student)
    assert restored.view() == original.view()
    assert play(original, student, 300, batch=5) == play(restored, twin, 300, batch=5)
    assert restored.state_dict()["n_fits"] == original.state_dict()["n_fits"]
    original.close()
    restored.close()


def test_state_dict_returns_copies() -> None:
    teacher = make(**SMALL)
    play(teacher, SimulatedStudent(), 90)  # a mixture from episode 40, a fit pending from 80
    state = teacher.state_dict()
    frozen = copy.deepcopy(state)
    state["nn_points"][:] = 0.5
    state["recent"]["rows"][:] = 7.0
    state["gmm"]["means"][:] = 7.0
    state["pending_fit"]["rows"][:] = 7.0
    again = teacher.state_dict()
    np.testing.assert_array_equal(again["nn_points"], frozen["nn_points"])
    np.testing.assert_array_equal(again["recent"]["rows"], frozen["recent"]["rows"])
    np.testing.assert_array_equal(again["gmm"]["means"], frozen["gmm"]["means"])
    np.testing.assert_array_equal(again["pending_fit"]["rows"], frozen["pending_fit"]["rows"])
    teacher.close()


def test_bad_snapshots_are_rejected() -> None:
    teacher = make()
    state = teacher.state_dict()
    with pytest.raises(TeacherStateError, match="random"):
        teacher.load_state_dict({**state, "kind": "random"})
    broken = dict(state)
    del broken["nn_points"]
    with pytest.raises(TeacherStateError, match="nn_points"):
        teacher.load_state_dict(broken)


# --------------------------------------------------------------------------- interface


def test_view_is_json_and_small() -> None:
    teacher = make(**SMALL)
    view = teacher.view()
    assert view["episodes"] == 0 and view["gmm"] is None and not view["bootstrap_done"]
    json.dumps(view)
    play(teacher, SimulatedStudent(), 450)
    view = teacher.view()
    text = json.dumps(view, allow_nan=False)
    assert len(text) < 60_000
    assert view["episodes"] == 450 and view["bootstrap_done"] and view["fits"] == 10
    gmm = view["gmm"]
    assert len(gmm["weights"]) == len(gmm["means"]) == len(gmm["mean_alp"]) == gmm["k"]
    assert len(gmm["means"][0]) == 3 and len(gmm["covariances"][0]) == 3
    assert view["last_fit"]["k"] == [2, 3, 4]
    assert len(view["recent"]["tasks"]) == len(view["recent"]["alps"]) == 200
    assert view["pending_fit"] == {"started_at": 440, "due_at": 455, "rows": 40}
    assert view["recent_mean_alp"] >= 0.0
    teacher.close()


def test_registry_and_input_errors() -> None:
    assert teacher_class("alp_gmm") is ALPGMMTeacher
    discrete = DiscreteSpace(tasks=[DiscreteTaskSpec(name="a")])
    with pytest.raises(ValueError, match="box"):
        ALPGMMTeacher(discrete, ALPGMMConfig(), np.random.default_rng(0))
    teacher = make()
    with pytest.raises(ValueError, match="n must be"):
        teacher.propose(-1)
    assert teacher.propose(0) == []
    with pytest.raises(ValueError, match="finite"):
        teacher.observe([result({"x": 0.5, "y": 0.5}, float("nan"))])
    with pytest.raises(ValueError, match="min_k"):
        ALPGMMConfig(min_k=5, max_k=4)


# --------------------------------------------------------------------------- quality


@pytest.mark.slow
def test_simulated_student_quality() -> None:
    """The paper's benchmark: 20k episodes on the 10x10 student; reference 36.3 +- 2.4 %."""
    scores = []
    for seed in (0, 1):
        teacher = make_teacher(UNIT2, ALPGMMConfig(), seed)
        student = SimulatedStudent(seed=seed)
        play(teacher, student, 20_000)
        teacher.close()
        scores.append(student.score())
    assert np.mean(scores) >= 30.0, scores


def test_would_block_only_around_due_fits() -> None:
    cfg = ALPGMMConfig(fit_rate=20, bootstrap=20, fit_delay=5)
    t = ALPGMMTeacher(UNIT2, cfg, np.random.default_rng(0))
    pool = HeldExecutor()
    t.use_background(pool)

    def episodes(n: int) -> None:
        t.observe([TaskResult(task=p, episode_return=0.5) for p in t.propose(n)])

    try:
        # Reports start fits but never wait for one; the first fit (20) needs no other.
        assert not t.would_block(0) and not t.would_block(25) and not t.would_block(39)
        assert t.would_block(40)  # the fit of 40 would install the (running) fit of 20
        episodes(22)  # the fit of 20 starts, held
        assert t.pending_work() is t._pending.future
        assert not t.would_block(0)  # due at 25: proposals do not need it yet
        assert not t.would_block(17) and t.would_block(18)  # the fit of 40 would install it
        episodes(3)
        assert t.n_observed_ == 25 and t.gmm_ is None
        assert t.would_block(0)  # due and still running: a proposal waits for it
        pool.gate.set()
        t._pending.future.result()
        # Finished: nothing waits, neither proposals nor the fit of 40.
        assert not t.would_block(0) and not t.would_block(15) and t.pending_work() is None
        episodes(1)
        assert t.gmm_ is not None and t.n_fits_ == 1
    finally:
        t.close()
        pool.gate.set()
        pool.shutdown()
