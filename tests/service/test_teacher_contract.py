"""The contract every registered teacher kind keeps, checked kind by kind.

For each kind of ``available_kinds()``: the same seed gives the same proposals and the same
state; a snapshot restores exactly (directly, and through the runtime's log replay); every
proposal fits the space; invalid hyper-parameters are answered 422 naming the field; and
``GET /v1/teachers`` lists it. A kind registered without an entry in ``TEST_CONFIGS`` fails
here: adding a teacher means adding its test configuration.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_schemas.experiments import ExperimentCreate
from api_schemas.reports import Report
from api_schemas.spaces import BoxDim, BoxSpace, DiscreteSpace, DiscreteTaskSpec, LevelSpace
from env_generators.parametric import ParametricMazes
from teacher_service.runtime import ExperimentRuntime
from teacher_service.spaces import check_proposal, normalise_space
from teacher_service.storage import ExperimentRecord, Store, pack_state, unpack_state
from teacher_service.teachers import TaskProposal, TaskResult, Teacher, available_kinds
from teacher_service.teachers.registry import make_teacher, teacher_class, teacher_config_class

#: One example of every space kind a teacher may accept.
SPACES: dict[str, Any] = {
    "box": BoxSpace(
        dims=[BoxDim(name="x", low=0.0, high=1.0), BoxDim(name="y", low=-2.0, high=2.0)]
    ),
    "discrete": DiscreteSpace(
        tasks=[
            DiscreteTaskSpec(name=f"task{i}", category=f"c{i % 3}", description=f"collect {w}")
            for i, w in enumerate(["wood", "wood again", "stone", "stone again", "iron", "gold"])
        ]
    ),
    "level": normalise_space(LevelSpace(config={"size": 7, "max_walls": 6})),
}
#: Kinds that need another example of a space kind: POET mutates box parameters through a
#: parametric generator, so its box space names one.
KIND_SPACES: dict[str, dict[str, Any]] = {
    "poet": {
        "box": BoxSpace.model_validate(
            ParametricMazes().space({"size": (5, 9), "wall_density": (0.0, 0.4), "seed": (0, 99)})
        )
    },
}


def space_for(kind: str, space: str) -> Any:
    """The example ``space`` kind that ``kind`` is checked on."""
    return KIND_SPACES.get(kind, {}).get(space, SPACES[space])


#: Hyper-parameters each kind is checked with: small, so that its model updates (GMM fits,
#: region splits, replay and edits, adversary updates) all happen within a few hundred
#: episodes. Every registered kind needs an entry.
TEST_CONFIGS: dict[str, dict[str, Any]] = {
    "random": {},
    "alp_gmm": {"fit_rate": 20, "bootstrap": 20, "fit_delay": 5, "max_k": 4},
    "covar_gmm": {"fit_rate": 20, "bootstrap": 20, "fit_delay": 5, "max_k": 4},
    "riac": {"max_region_size": 20, "min_region_points": 4, "alp_window": 20},
    "lp_tree": {"window": 16, "split_every": 4, "split_min": 8, "min_leaf": 2, "lp_window": 4},
    "plr": {"buffer_size": 8, "replay_prob": 0.5},
    "accel": {"buffer_size": 8, "edit_batch": 4, "edit_parents": 2, "num_edits": 3},
    "paired": {"episodes_per_role": 1, "update_every": 4, "hidden": 8},
    "lp": {"eval_episodes": 2, "eval_interval": 16},
    "omni": {"model": "tfidf", "eval_episodes": 2, "eval_interval": 16, "similarity": 0.3},
    "sec": {"arms": "category", "batch_episodes": 8},
    "poet": {
        "iteration_episodes": 2,
        "eval_episodes": 1,
        "transfer_every": 1,
        "reproduce_every": 2,
        "repro_threshold": 0.0,
        "mc_low": 0.0,
        "mc_high": 0.9,
        "fine_tune_episodes": 1,
        "max_active": 3,
    },
}

ROUNDS, BATCH, SNAPSHOT_AT = 40, 8, 20

#: Tasks that join a discrete space mid-run in the log-replay check.
NEW_TASKS = [
    DiscreteTaskSpec(name="new0", description="collect wood again", category="c0"),
    DiscreteTaskSpec(name="new1", description="sail a boat", category="boats"),
]


def setups(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(space kind, teacher config) for every space kind ``kind`` accepts."""
    config = {"kind": kind, **TEST_CONFIGS[kind]}  # KeyError: the kind has no test config
    return [(space, config) for space in teacher_config_class(kind).SPACES]


def outcome(p: TaskProposal) -> TaskResult:
    """A deterministic stand-in student: the task's hash decides its return and scores."""
    h = zlib.crc32(json.dumps(p.to_dict(), sort_keys=True).encode()) % 1000 / 1000
    scores = {"positive_value_loss": 0.5 * h, "mean_value": 0.3 * h, "l1_value_loss": 0.7 * h}
    return TaskResult(p, episode_return=h, success=h > 0.5, length=5 + int(20 * h), scores=scores)


def play(teacher: Teacher, rounds: int) -> list[dict[str, Any]]:
    """``rounds`` of propose-then-observe; every fifth round's last task expires instead.
    Returns every proposal made."""
    made = []
    for r in range(rounds):
        proposals = teacher.propose(BATCH)
        made += [p.to_dict() for p in proposals]
        results = [outcome(p) for p in proposals]
        for res in results:
            assert teacher.check_result(res.task, res.scores) is None
        if r % 5 == 4:
            teacher.observe(results[:-1])
            teacher.expire([proposals[-1]])
        else:
            teacher.observe(results)
    return made


def build(kind: str, space: str, config: dict[str, Any], seed: int) -> Teacher:
    spec = ExperimentCreate(name="c", space=space_for(kind, space), teacher=config, seed=seed)
    return make_teacher(spec.space, spec.teacher, seed)


def test_every_kind_has_a_test_config() -> None:
    assert sorted(TEST_CONFIGS) == sorted(available_kinds())
    for kind in available_kinds():
        assert teacher_config_class(kind).SPACES, kind
        assert set(teacher_config_class(kind).SPACES) <= set(SPACES), kind


@pytest.mark.parametrize("kind", available_kinds())
def test_the_implementation_declares_the_registered_config(kind: str) -> None:
    cls = teacher_class(kind)
    assert cls.config_model is teacher_config_class(kind) and cls.kind == kind


@pytest.mark.parametrize("kind", available_kinds())
def test_same_seed_same_proposals_and_state(kind: str) -> None:
    for space, config in setups(kind):
        a, b, c = (build(kind, space, config, seed) for seed in (7, 7, 8))
        try:
            made = play(a, ROUNDS)
            assert made == play(b, ROUNDS), (kind, space)
            assert pack_state(a.state_dict()) == pack_state(b.state_dict()), (kind, space)
            assert made != play(c, ROUNDS), f"{kind} on {space}: the seed changes nothing"
        finally:
            for t in (a, b, c):
                t.close()


@pytest.mark.parametrize("kind", available_kinds())
def test_snapshot_round_trip_is_exact(kind: str) -> None:
    for space, config in setups(kind):
        live = build(kind, space, config, seed=3)
        restored = build(kind, space, config, seed=99)  # the snapshot replaces the seed
        try:
            play(live, SNAPSHOT_AT)
            snapshot = pack_state(live.state_dict())
            restored.load_state_dict(unpack_state(snapshot))
            assert pack_state(restored.state_dict()) == snapshot, (kind, space)
            rest = ROUNDS - SNAPSHOT_AT
            assert play(live, rest) == play(restored, rest), (kind, space)
            assert pack_state(live.state_dict()) == pack_state(restored.state_dict())
        finally:
            live.close()
            restored.close()


@pytest.mark.parametrize("kind", available_kinds())
def test_every_proposal_fits_the_space(kind: str) -> None:
    for space, config in setups(kind):
        teacher = build(kind, space, config, seed=5)
        try:
            for p in play(teacher, ROUNDS):
                check_proposal(space_for(kind, space), TaskProposal.from_dict(p))
        finally:
            teacher.close()


class Clock:
    """The runtime's wall clock, moved by hand so that leases expire on cue."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reports_for(tasks: list) -> list[Report]:
    """The stand-in student's report of each task."""
    out = []
    for task in tasks:
        res = outcome(TaskProposal(params=task.params, level=task.level))
        out.append(
            Report(
                task_id=task.id,
                episode_return=res.episode_return,
                success=res.success,
                length=res.length,
                scores=dict(res.scores),
            )
        )
    return out


def replay_matches(space: str, config: dict[str, Any], store: Store, snapshot_every: int) -> None:
    """Drive a runtime (propose, report, let leases expire), reload it from the store and
    compare the rebuilt teacher with the live one."""
    clock = Clock()
    spec = ExperimentCreate(
        name="c",
        space=space_for(config["kind"], space),
        teacher=config,
        seed=11,
        lease_seconds=60,
    )
    rec = ExperimentRecord("exp", "c", spec.model_dump(mode="json"), 0.0)
    store.create_experiment(rec).result()
    live = ExperimentRuntime(rec, store, snapshot_every=snapshot_every, clock=clock)
    for r in range(ROUNDS // 2):
        if r == 3 and space == "discrete":  # the task set grows mid-run
            live.add_tasks(NEW_TASKS)[1].result()
        tasks, written = live.propose(BATCH)
        written.result()
        live.report(reports_for(tasks[:-1] if r % 5 == 4 else tasks))[1].result()
        if r % 5 == 4:  # the round's last task expires
            clock.t += 61
            live.sweep()
    store.barrier().result()  # every queued event and snapshot is written
    replayed = ExperimentRuntime.load(rec, store, clock=clock)
    try:
        assert replayed.space == live.space
        assert pack_state(replayed.teacher.state_dict()) == pack_state(live.teacher.state_dict())
        assert [p.to_dict() for p in replayed.teacher.propose(BATCH)] == [
            p.to_dict() for p in live.teacher.propose(BATCH)
        ]
    finally:
        live.close()
        replayed.close()


@pytest.mark.parametrize("kind", available_kinds())
def test_log_replay_rebuilds_the_same_teacher(kind: str, tmp_path: Path) -> None:
    """Through the runtime, with expiries (and, on a discrete space, tasks added mid-run):
    from snapshots every 7 events plus the log's tail, and from the log alone."""
    for space, config in setups(kind):
        for every in (7, 100_000):
            store = Store(f"sqlite:///{tmp_path / f'{kind}-{space}-{every}.db'}")
            try:
                replay_matches(space, config, store, every)
            finally:
                store.close()


def invalid_configs(kind: str) -> list[tuple[dict[str, Any], str]]:
    """(config, the field a 422 must name): an unknown field, and each numeric field just
    outside its lower bound."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": kind, "not_a_hyperparameter": 1}, "not_a_hyperparameter")
    ]
    schema = teacher_config_class(kind).model_json_schema()
    for name, prop in schema["properties"].items():
        if "minimum" in prop:
            cases.append(({"kind": kind, name: prop["minimum"] - 1}, name))
        elif "exclusiveMinimum" in prop:
            cases.append(({"kind": kind, name: prop["exclusiveMinimum"]}, name))
    return cases


@pytest.mark.parametrize("kind", available_kinds())
def test_invalid_hyperparameters_are_refused_naming_the_field(kind: str, shared_server) -> None:
    space = teacher_config_class(kind).SPACES[0]
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        cases = invalid_configs(kind)
        assert len(cases) > (1 if TEST_CONFIGS[kind] else 0), kind
        for config, field in cases:
            body = {
                "name": f"bad-{kind}-{field}",
                "space": space_for(kind, space).model_dump(mode="json"),
                "teacher": config,
            }
            r = c.post("/v1/experiments", json=body)
            assert r.status_code == 422, (kind, field, r.text)
            locs = [e["loc"] for e in r.json()["errors"]]
            assert any(loc[-1] == field for loc in locs), (kind, field, locs)
        assert all(e["name"] != f"bad-{kind}" for e in c.get("/v1/experiments").json()["data"])


def test_get_teachers_lists_every_kind(shared_server) -> None:
    listed = httpx.get(f"{shared_server.url}/v1/teachers", timeout=30).json()["data"]
    assert [t["kind"] for t in listed] == available_kinds()
    for info in listed:
        cfg = teacher_config_class(info["kind"])
        assert info["spaces"] == list(cfg.SPACES)
        assert info["description"] == cfg.DESCRIPTION and info["description"]
        assert info["hyperparameters"] == cfg.model_json_schema()
