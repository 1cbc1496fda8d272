"""The ``poet`` teacher (docs/algorithms.md#poet) against hand-computed cases: the loop of
train tasks and self-evaluations, the minimal criterion, admission in novelty order (at most
``max_admitted``), the cap and FIFO archive, ANNECS, direct and Enhanced POET transfers,
expiry, box spaces, and exact snapshots mid-check.

A scripted student answers every task with a return chosen by the test from the task's agent,
environment and mode (``success`` is left out, so a score is the mean return).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

from api_schemas.spaces import BoxSpace, LevelSpace
from api_schemas.tasks import TaskMode
from api_schemas.teachers import POETConfig
from env_generators.parametric import ParametricMazes
from teacher_service.storage.codec import pack_state, unpack_state
from teacher_service.teachers.base import TaskProposal, TaskResult
from teacher_service.teachers.poet import POETTeacher
from teacher_service.teachers.poet_rules import knn_novelty
from teacher_service.teachers.registry import make_teacher

LEVEL = LevelSpace(kind="level", generator="minigrid", config={"size": 7, "max_walls": 6})
#: Every check after one report, and nothing periodic unless a test asks for it.
QUICK = dict(
    iteration_episodes=1, eval_episodes=1, fine_tune_episodes=1, transfer_every=1000,
    reproduce_every=1000, repro_threshold=0.5, mc_low=0.2, mc_high=0.8,
)  # fmt: skip

Answer = Callable[[TaskProposal, int], float]


def teacher(space=LEVEL, seed: int = 0, **cfg) -> POETTeacher:
    t = make_teacher(space, POETConfig(**{**QUICK, **cfg}), seed)
    assert isinstance(t, POETTeacher)
    return t


def env_of(t: POETTeacher, task: TaskProposal) -> int:
    env = t._env_of(task)
    assert env is not None
    return env


def play(t: POETTeacher, answer: Answer, n: int) -> list[TaskProposal]:
    """``n`` tasks, one at a time, each answered with ``answer(task, env id)``."""
    made = []
    for _ in range(n):
        (task,) = t.propose(1)
        made.append(task)
        t.observe([TaskResult(task=task, episode_return=answer(task, env_of(t, task)))])
    return made


def pairs(t: POETTeacher) -> list[tuple[int, str]]:
    return [(p["env_id"], p["agent_id"]) for p in t.view()["pairs"]]


# ---------------------------------------------------------------- the loop


def test_first_pair_trains_then_self_evaluates_each_iteration() -> None:
    t = teacher(iteration_episodes=3, eval_episodes=2)
    assert pairs(t) == [(0, "agent-0")]
    tasks = play(t, lambda task, env: 0.4, 5)
    assert [p.mode for p in tasks] == [TaskMode.TRAIN] * 3 + [TaskMode.EVALUATE] * 2
    assert all(p.agent_id == "agent-0" and p.init_from is None for p in tasks)
    assert tasks[0].level is not None and tasks[0].params == {"env_id": 0}
    view = t.view()
    assert view["iteration"] == 1 and view["pairs"][0]["score"] == pytest.approx(0.4)
    assert view["agents"] == {"active": ["agent-0"], "candidates": [], "archived": []}


def test_success_counts_when_reported() -> None:
    t = teacher()
    (task,) = t.propose(1)
    t.observe([TaskResult(task=task, episode_return=0.9, success=False)])
    (ev,) = t.propose(1)
    t.observe([TaskResult(task=ev, episode_return=0.9, success=False)])
    assert t.view()["pairs"][0]["score"] == 0.0


# ---------------------------------------------------------------- reproduction


def reproduce_once(mc: dict[int, float], **cfg) -> POETTeacher:
    """Self-evaluate the first pair at 0.9 (eligible), then answer the children's
    minimal-criterion checks from ``mc`` (child env id -> the parent agent's return)."""
    t = teacher(reproduce_every=1, max_children=4, **cfg)
    play(t, lambda task, env: 0.9, 2)  # train, self-evaluation: iteration 1, children made
    checks = t.propose(len(t.queue_))
    assert {p.mode for p in checks} == {TaskMode.EVALUATE}
    t.observe([TaskResult(task=p, episode_return=mc.get(env_of(t, p), 0.5)) for p in checks])
    return t


def test_minimal_criterion_and_admission_in_novelty_order() -> None:
    probe = teacher(reproduce_every=1, max_children=4)
    play(probe, lambda task, env: 0.9, 2)
    children = sorted({env_of(probe, p) for p in probe.queue_})
    assert len(children) + probe.view()["children"]["duplicates"] == 4
    # the first child is too hard, the second too easy; the others pass
    mc = {children[0]: 0.1, children[1]: 0.95}
    passing = children[2:]
    novelty = {
        c: knn_novelty(
            np.asarray(probe.envs_[c].encoding), np.asarray([probe.envs_[0].encoding]), 3
        )
        for c in passing
    }
    most_novel = max(passing, key=lambda c: (novelty[c], -c))

    t = reproduce_once(mc)  # same seed: the same children
    view = t.view()
    assert view["children"]["mc_failed"] == 2 and view["children"]["mc_passed"] == len(passing)
    assert view["admitted"] == 1 and view["children"]["not_admitted"] == len(passing) - 1
    assert pairs(t) == [(0, "agent-0"), (most_novel, "agent-1")]
    new = view["pairs"][1]
    assert new["parent"] == 0 and new["init_from"] == "agent-0" and new["born"] == 1
    assert view["annecs"] == 1 and view["annecs_history"] == [[0, 0], [1, 1]]
    # the new agent plays its environment, starting from the parent's weights
    task = next(p for p in t.propose(2) if p.agent_id == "agent-1")
    assert task.init_from == "agent-0" and env_of(t, task) == most_novel


def test_at_most_max_admitted_per_round() -> None:
    t = reproduce_once({}, max_admitted=2)
    assert t.view()["admitted"] == 2 and len(pairs(t)) == 3


def test_no_parent_below_the_threshold() -> None:
    t = teacher(reproduce_every=1, repro_threshold=0.95)
    play(t, lambda task, env: 0.9, 2)
    assert t.view()["children"]["made"] == 0 and not t.queue_


def test_cap_archives_the_oldest_pair_and_annecs_needs_the_whole_population() -> None:
    t = reproduce_once({}, max_active=1)
    assert pairs(t)[0][1] == "agent-1"
    view = t.view()
    assert view["archived_count"] == 1 and view["archived"][0]["agent_id"] == "agent-0"
    assert view["agents"]["archived"] == ["agent-0"] and view["archive_size"] == 2
    assert view["annecs"] == 1
    # next round: agent-1 is eligible; the archived agent-0 solves every child (above the
    # criterion), so a child is still admitted (agent-1 passes) but ANNECS does not grow
    env1 = pairs(t)[0][0]
    play(t, lambda task, env: 0.9, 2)  # agent-1 trains and self-evaluates: iteration 2
    assert t.view()["iteration"] == 2 and t.view()["checks"]["reproduction"] != "idle"

    def answer(task: TaskProposal, env: int) -> float:
        if task.mode == TaskMode.TRAIN:
            return 0.0
        return 1.0 if task.agent_id == "agent-0" else 0.5

    while t.view()["checks"]["reproduction"] != "idle":
        play(t, answer, 1)
    view = t.view()
    assert view["admitted"] == 2 and view["annecs"] == 1
    assert [p["agent_id"] for p in view["archived"]] == ["agent-1", "agent-0"]
    assert view["pairs"][0]["parent"] == env1 and view["pairs"][0]["init_from"] == "agent-1"


# ---------------------------------------------------------------- transfer


def two_pairs(**cfg) -> POETTeacher:
    """Two pairs (env 0 with agent-0, a child with agent-1) after the first iteration."""
    t = reproduce_once({}, **cfg)
    assert len(pairs(t)) == 2
    return t


def run_until(t: POETTeacher, answer: Answer, done: Callable[[], bool], limit: int = 200) -> None:
    for _ in range(limit):
        if done():
            return
        play(t, answer, 1)
    raise AssertionError("never done")


@pytest.mark.parametrize("direct", [0.3, 0.35])
def test_direct_transfer_only_when_strictly_better(direct: float) -> None:
    t = two_pairs(transfer_every=2, transfer="direct")
    (e0, _), (e1, _) = pairs(t)

    def answer(task: TaskProposal, env: int) -> float:
        own = (env, task.agent_id) in [(e0, "agent-0"), (e1, "agent-1")]
        return 0.3 if own or task.agent_id == "agent-1" else direct

    run_until(t, answer, lambda: t.view()["iteration"] == 2)  # both self-evaluated at 0.3
    run_until(t, answer, lambda: t.view()["checks"]["transfer"] == "idle")
    view = t.view()
    if direct == 0.3:  # a tie keeps the incumbent
        assert view["transfer_count"] == 0 and pairs(t) == [(e0, "agent-0"), (e1, "agent-1")]
        return
    assert view["transfer_count"] == 1 and pairs(t) == [(e0, "agent-0"), (e1, "agent-2")]
    assert view["transfers"] == [
        {"iteration": 2, "env_id": e1, "from_agent": "agent-0", "agent_id": "agent-2",
         "score": 0.35, "incumbent": 0.3}
    ]  # fmt: skip
    assert view["pairs"][1]["init_from"] == "agent-0" and view["pairs"][1]["score"] == 0.35


@pytest.mark.parametrize("fine_tuned", [0.25, 0.97])
def test_enhanced_transfer_fine_tunes_candidates_that_beat_recent_evaluations(
    fine_tuned: float,
) -> None:
    t = two_pairs(transfer_every=2, transfer="enhanced", recent_evals=5)
    (e0, _), (e1, _) = pairs(t)
    trained: list[TaskProposal] = []

    def answer(task: TaskProposal, env: int) -> float:
        if task.agent_id not in ("agent-0", "agent-1"):  # the candidate
            if task.mode == TaskMode.TRAIN:
                trained.append(task)
            return fine_tuned
        if (env, task.agent_id) in [(e0, "agent-0"), (e1, "agent-1")]:
            return 0.3  # self-evaluations: agent-0 has 0.9 then 0.3 (bar 0.9), agent-1 0.3
        return 0.95 if task.agent_id == "agent-0" else 0.1  # only agent-0 -> e1 qualifies

    run_until(t, answer, lambda: t.view()["iteration"] == 2)
    assert t.view()["checks"]["transfer"] == "direct"
    run_until(t, answer, lambda: t.view()["checks"]["transfer"] == "idle")
    # one candidate, made from agent-0, fine-tuned on e1 (agent-1 -> e0 scored 0.1 < 0.9)
    assert [(p.agent_id, p.init_from, env_of(t, p)) for p in trained] == [
        ("agent-2", "agent-0", e1)
    ]
    view = t.view()
    assert view["agents"]["candidates"] == []
    if fine_tuned < 0.3:  # fine-tuning fell below the incumbent's best: nothing adopted
        assert view["transfer_count"] == 0 and pairs(t)[1] == (e1, "agent-1")
        return
    assert view["transfer_count"] == 1 and pairs(t)[1] == (e1, "agent-2")
    assert view["transfers"][0]["score"] == fine_tuned
    assert view["pairs"][1]["init_from"] == "agent-0"


# ---------------------------------------------------------------- expiry, spaces, snapshots


def test_expired_checks_are_issued_again() -> None:
    t = teacher(eval_episodes=2)
    play(t, lambda task, env: 0.5, 1)
    first = t.propose(2)
    assert [p.mode for p in first] == [TaskMode.EVALUATE] * 2
    t.expire(first[:1])
    t.observe([TaskResult(task=first[1], episode_return=0.5)])
    (again,) = t.propose(1)
    assert again == first[0]
    t.observe([TaskResult(task=again, episode_return=0.5)])
    assert t.view()["iteration"] == 1


def test_box_space_mutates_parameters_from_the_easy_end() -> None:
    space = BoxSpace.model_validate(
        ParametricMazes().space({"size": (5, 11), "wall_density": (0.0, 0.4), "seed": (0, 99)})
    )
    t = teacher(space, reproduce_every=1, max_children=6, mc_low=0.0, mc_high=1.0)
    (task,) = t.propose(1)
    assert task.params == {"size": 5.0, "wall_density": 0.0, "seed": 0.0} and task.level is None
    play(t, lambda task, env: 0.9, 2)
    checks = t.propose(len(t.queue_))
    assert checks and all(p.params != task.params for p in checks)
    t.observe([TaskResult(task=p, episode_return=0.5) for p in checks])
    view = t.view()
    assert view["admitted"] == 1 and view["pairs"][1]["level"].count("\n") >= 4
    assert view["pairs"][1]["params"] is not None


def test_a_box_space_without_a_generator_is_refused() -> None:
    plain = BoxSpace(dims=[{"name": "x", "low": 0.0, "high": 1.0}])
    with pytest.raises(ValueError, match="parametric generator"):
        teacher(plain)


@pytest.mark.parametrize("novelty", ["encoding", "pata_ec"])
def test_snapshot_in_the_middle_of_checks_continues_exactly(novelty: str) -> None:
    cfg = dict(
        transfer_every=1, reproduce_every=1, max_children=3, novelty=novelty, mc_low=0.1,
        mc_high=0.95, repro_threshold=0.3, max_active=3,
    )  # fmt: skip

    def answer(task: TaskProposal, env: int) -> float:
        # crc32, not hash(): string hashes change from one process to the next
        return zlib.crc32(f"{task.agent_id}@{env}:{task.mode.value}".encode()) % 100 / 100

    live = teacher(seed=4, **cfg)
    play(live, answer, 60)
    copy = teacher(seed=99, **cfg)
    copy.load_state_dict(unpack_state(pack_state(live.state_dict())))
    assert copy.view() == live.view()
    a, b = play(live, answer, 80), play(copy, answer, 80)
    assert a == b and pack_state(live.state_dict()) == pack_state(copy.state_dict())
    assert live.view()["admitted"] >= 1
