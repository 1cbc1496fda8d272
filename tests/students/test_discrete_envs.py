"""Ray students on discrete spaces of MiniGrid env ids (student_workers.train, rollout_worker,
eval_episodes; env_generators.minigrid_suite): a real server, a real local Ray cluster, real
MiniGrid envs built by id. Training runs through the ``autocurriculum train`` command."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import gymnasium as gym
import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from api_schemas.spaces import DiscreteSpace
from api_schemas.tasks import Task, TaskMode
from env_generators.minigrid_suite import HARD_ENVS, SUITE, SUITE_ENVS, suite_entry, suite_space
from student_workers.checkpoints import load_checkpoint
from student_workers.eval_episodes import env_id_problems, make_eval_env
from student_workers.ppo import PPOConfig
from student_workers.rollout_worker import RolloutWorker
from student_workers.train import CheckedExperiment, TrainConfig, resolve_config
from teacher_service.client import TeacherClient, read_export
from tests.students.helpers import ENVS, FakeSession, cli, finish

EASY = ("MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-Random-5x5-v0", "MiniGrid-DoorKey-5x5-v0")


def discrete_train_args(url: str, exp: str, ckpt: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train", "--server", url, "--experiment", exp, "--workers", "2",
        "--envs-per-worker", str(ENVS), "--steps", str(steps), "--checkpoint-dir", str(ckpt),
        "--num-steps", "64", "--checkpoint-interval", "2", *extra,
    ]  # fmt: skip


def export_rows(url: str, exp: str) -> list[dict]:
    return read_export(httpx.get(f"{url}/v1/experiments/{exp}/export", timeout=60).content)


def played(rows: list[dict]) -> tuple[dict[int, dict], list[dict]]:
    """(task rows by index, report rows) of an export."""
    tasks = {r["index"]: r for r in rows if r["type"] == "task"}
    return tasks, [r for r in rows if r["type"] == "report"]


# -- end to end -------------------------------------------------------------------------------


def test_train_lp_on_env_ids_reports_evaluates_and_saves_full_actions(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    # Evaluation rounds of 2 episodes per task, one after every 20 training episodes: the
    # first round (before any training) already issues 6 evaluate tasks.
    teacher = {"kind": "lp", "eval_episodes": 2, "eval_interval": 20}
    client.create_experiment("suite-lp", suite_space(EASY), teacher)
    ckpt = tmp_path / "ckpt"
    args = discrete_train_args(server.url, "suite-lp", ckpt, 4000, "--eval-interval", "2",
                               "--eval-episodes", "2")  # fmt: skip
    code, out, err = finish(cli(*args))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["actions"] == "full" and summary["worker_failures"] == 0
    assert summary["env_steps"] >= 4000 and summary["episodes"] > 0

    # Every finished episode was reported, with success = return > 0, for the env ids.
    assert client.state("suite-lp").counters.reports_accepted == summary["episodes"]
    tasks, reports = played(export_rows(server.url, "suite-lp"))
    assert len(reports) == summary["episodes"]
    for r in reports:
        assert r["success"] == (r["episode_return"] > 0) and r["length"] >= 1
        assert set(r["scores"]) == {"positive_value_loss", "l1_value_loss", "mean_value"}
    reported = Counter(tasks[r["index"]]["params"]["task"] for r in reports)
    assert set(reported) == set(EASY), reported
    # lp's evaluate tasks were played and reported...
    evaluated = [r for r in reports if tasks[r["index"]]["mode"] == "evaluate"]
    assert {tasks[r["index"]]["params"]["task"] for r in evaluated} == set(EASY)
    assert client.state("suite-lp").teacher["rounds"] >= 1
    # ...and never trained on: their steps are among the env steps without gradients.
    untrained = summary["env_steps"] - summary["trained_steps"]
    assert untrained >= sum(r["length"] for r in evaluated) > 0

    # The evaluator played the experiment's env ids (the default test envs of a discrete space).
    evals = client.evaluations("suite-lp")
    assert {e.env for e in evals} == set(EASY)
    assert evals[-1].env_steps == summary["env_steps"]

    # The checkpoint records the full action set; `evaluate` plays an env id with it.
    learner, meta = load_checkpoint(ckpt / "latest.pt")
    assert meta["actions"] == "full" and learner.agent.n_actions == 7
    args = ["evaluate", "--checkpoint", str(ckpt / "latest.pt"), "--env",
            "MiniGrid-DoorKey-5x5-v0", "--episodes", "3"]  # fmt: skip
    code, out, err = finish(cli(*args))
    assert code == 0, err
    res = json.loads(out)
    assert res["env"] == "MiniGrid-DoorKey-5x5-v0" and res["episodes"] == 3
    assert 0 <= res["solve_rate"] <= 1


def test_train_sec_on_env_ids_with_navigation_actions(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    names = ("MiniGrid-Empty-5x5-v0", "MiniGrid-LavaGapS5-v0")
    client.create_experiment("suite-sec", suite_space(names), {"kind": "sec", "batch_episodes": 8})
    ckpt = tmp_path / "ckpt"
    args = discrete_train_args(server.url, "suite-sec", ckpt, 2000, "--eval-interval", "0",
                               "--actions", "navigation")  # fmt: skip
    code, out, err = finish(cli(*args))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["actions"] == "navigation"
    # sec issues train tasks only: every step was trained on
    assert summary["trained_steps"] == summary["env_steps"] >= 2000
    tasks, reports = played(export_rows(server.url, "suite-sec"))
    assert len(reports) == summary["episodes"] > 0
    assert {tasks[r["index"]]["params"]["task"] for r in reports} == set(names)
    assert {t["mode"] for t in tasks.values()} == {"train"}
    learner, meta = load_checkpoint(ckpt / "latest.pt")
    assert meta["actions"] == "navigation" and learner.agent.n_actions == 3


def test_train_refuses_unplayable_task_names_and_box_spaces(server, tmp_path) -> None:
    client = TeacherClient(server.url)
    bad = {"tasks": [{"name": "MiniGrid-Empty-5x5-v0"}, {"name": "Nope-v0"},
                     {"name": "CartPole-v1"}, {"name": "MiniGrid-Bogus-v9"}]}  # fmt: skip
    client.create_experiment("bad-ids", {"kind": "discrete", **bad}, {"kind": "lp"})
    client.create_experiment(
        "boxy", {"kind": "box", "dims": [{"name": "x", "low": 0, "high": 1}]}, {"kind": "random"}
    )
    for exp, messages in (
        ("bad-ids", ["3 discrete task(s)", "'Nope-v0' (not a registered gymnasium env id)",
                     "'CartPole-v1' (not a MiniGrid env)", "'MiniGrid-Bogus-v9'"]),
        ("boxy", ["'box' space", "level space", "discrete space"]),
    ):  # fmt: skip
        code, _, err = finish(
            cli(*discrete_train_args(server.url, exp, tmp_path / "c", 100)), timeout=60
        )
        assert code == 1 and "Traceback" not in err, err
        for message in messages:
            assert message in err, (message, err)
        assert "'MiniGrid-Empty-5x5-v0'" not in err
    code, _, err = finish(
        cli(*discrete_train_args(server.url, "bad-ids", tmp_path / "c", 100, "--actions", "all")),
        timeout=60,
    )
    assert code == 1 and "--actions" in err and "Traceback" not in err
    assert not (tmp_path / "c" / "latest.pt").exists()


# -- the worker without Ray -------------------------------------------------------------------


class DiscreteSession(FakeSession):
    """Hands out the given env ids in turn, every third task in ``evaluate`` mode."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names

    def make_task(self, i: int) -> Task:
        mode = TaskMode.EVALUATE if i % 3 == 2 else TaskMode.TRAIN
        name = self.names[i % len(self.names)]
        return Task(id=f"t{i}", params={"task": name}, mode=mode, lease_expires_at=0.0)


def test_worker_plays_env_ids_masks_evaluate_tasks_and_skips_unplayable_ids(caplog) -> None:
    session = DiscreteSession(("MiniGrid-Empty-5x5-v0", "Nope-v0", "MiniGrid-MultiRoom-N2-S4-v0"))
    ppo = PPOConfig(num_steps=64, hidden=16)
    worker = RolloutWorker(
        "unused", "x", session=session, num_envs=3, ppo=ppo, seed=2, actions="full"
    )
    assert worker.agent.n_actions == 7
    weights = {k: v.clone() for k, v in worker.agent.state_dict().items()}
    built: dict[tuple[int, str], object] = {}
    untrained = 0
    for _ in range(8):
        rollout, stats = worker.collect(weights)
        untrained += stats["env_steps"] - stats["train_steps"]
        assert rollout.actions.max() < 7
        for e, env in enumerate(worker.envs.envs):
            name = env.task.params["task"]
            # one env per id per env slot, built once and reset for every new task
            assert built.setdefault((e, name), env.env) is env.env
            assert env.env.unwrapped.agent_view_size == 5
    worker.close()
    # The unknown id was skipped (never played nor reported), with one warning per worker.
    modes = {t.id: t.mode for t in session.issued}
    names = {t.id: t.params["task"] for t in session.issued}
    assert {names[r["task_id"]] for r in session.reports} == {
        "MiniGrid-Empty-5x5-v0", "MiniGrid-MultiRoom-N2-S4-v0"
    }  # fmt: skip
    assert sum("skipping the tasks of 'Nope-v0'" in m for m in caplog.messages) == 1
    assert all(r["success"] == (r["episode_return"] > 0) for r in session.reports)
    # Evaluate episodes are reported and masked out of the gradient.
    evaluated = [r for r in session.reports if modes[r["task_id"]] == TaskMode.EVALUATE]
    assert evaluated and untrained >= sum(r["length"] for r in evaluated)


def test_worker_refuses_a_task_without_level_or_name() -> None:
    class NoName(DiscreteSession):
        def next_task(self, timeout: float | None = None) -> Task:
            return Task(id="t", params={"x": 0.5}, lease_expires_at=0.0)

    with pytest.raises(ValueError, match="neither a level nor a discrete task name"):
        RolloutWorker("unused", "x", session=NoName(()), num_envs=1, actions="full")


# -- checks and defaults ----------------------------------------------------------------------


def test_env_id_problems_names_each_bad_id() -> None:
    names = ["MiniGrid-DoorKey-5x5-v0", "BabyAI-GoToRedBall-v0", "Labyrinth", "Nope-v0",
             "CartPole-v1"]  # fmt: skip
    problems = env_id_problems(names)
    assert problems == {
        "Nope-v0": "not a registered gymnasium env id",
        "CartPole-v1": "not a MiniGrid env",
    }


def test_config_defaults_follow_the_space() -> None:
    cfg = TrainConfig(server="http://x", experiment="e", steps=10, checkpoint_dir=Path("c"))
    assert cfg.actions is None
    discrete = resolve_config(cfg, CheckedExperiment("id", (), "discrete", EASY))
    assert discrete.actions == "full" and discrete.eval_envs == EASY
    level = resolve_config(cfg, CheckedExperiment("id", (), "level", ()))
    assert level.actions == "navigation" and level.eval_envs == cfg.eval_envs
    chosen = cfg.model_copy(update={"actions": "navigation"})
    given = TrainConfig(**{**cfg.model_dump(), "eval_envs": ("Labyrinth",)})
    assert resolve_config(chosen, CheckedExperiment("i", (), "discrete", EASY)).actions == (
        "navigation"
    )
    assert resolve_config(given, CheckedExperiment("i", (), "discrete", EASY)).eval_envs == (
        "Labyrinth",
    )
    with pytest.raises(ValidationError):
        TrainConfig(server="x", experiment="e", steps=1, checkpoint_dir=Path("c"), actions="all")


# -- the suite --------------------------------------------------------------------------------


def test_suite_space_is_a_valid_discrete_space_of_minigrid_ids() -> None:
    space = suite_space()
    parsed = DiscreteSpace.model_validate(space)
    assert space["kind"] == "discrete" and tuple(parsed.names) == SUITE_ENVS
    assert not env_id_problems(SUITE_ENVS)
    assert set(HARD_ENVS) == {
        "MiniGrid-DoorKey-8x8-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-MultiRoom-N2-S4-v0"
    }  # fmt: skip
    # The hard envs come last (easy to hard); every task says what it asks, in its own words.
    assert SUITE_ENVS[-len(HARD_ENVS) :] == HARD_ENVS
    descriptions = [t["description"] for t in space["tasks"]]
    assert all(d.strip() for d in descriptions) and len(set(descriptions)) == len(descriptions)
    cats = {t["name"]: t["category"] for t in space["tasks"]}
    assert cats["MiniGrid-DoorKey-8x8-v0"] == "doorkey"
    assert cats["MiniGrid-KeyCorridorS3R1-v0"] == "keycorridor"
    assert cats["MiniGrid-MultiRoom-N2-S4-v0"] == "multiroom"
    assert cats["MiniGrid-Empty-5x5-v0"] == cats["MiniGrid-Empty-Random-5x5-v0"] == "empty"
    # Subsets keep the order given; without the hard envs only the others remain.
    easy = suite_space(include_hard=False)
    assert [t["name"] for t in easy["tasks"]] == [e for e in SUITE_ENVS if e not in HARD_ENVS]
    assert [t["name"] for t in suite_space(EASY[::-1])["tasks"]] == list(EASY[::-1])
    with pytest.raises(KeyError, match="not in the MiniGrid suite"):
        suite_space(["MiniGrid-Nope-v0"])
    with pytest.raises(ValueError):
        suite_space(HARD_ENVS, include_hard=False)
    assert suite_entry("MiniGrid-DoorKey-8x8-v0").hard


@pytest.mark.parametrize("entry", SUITE, ids=lambda e: e.env_id)
def test_every_suite_env_builds_with_a_small_view_and_seven_actions(entry) -> None:
    env = make_eval_env(entry.env_id, view=5, actions="full")
    try:
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (5, 5, 3) and obs["image"].dtype == np.uint8
        assert env.action_space == gym.spaces.Discrete(7)
    finally:
        env.close()
