"""``CurriculumWrapper`` inside RLlib env runners: PPO on the new API stack (RLModule/Learner,
EnvRunner/ConnectorV2) with 2 remote env runners of 2 sub-envs each, on a local Ray cluster,
against a real server; then ``examples/rllib_minigrid.py`` end to end.

What is checked: every episode RLlib counts as finished (``num_episodes_lifetime``) was
reported exactly once, every report is of a task the teacher issued, and the reports of the
last episodes were not lost when training stopped. The wrappers are given a flush interval
longer than the run, so every report waits in its env runner's session until ``algo.stop()``:
that calls each env runner's ``stop()``, which closes its vector env and so every wrapper,
and ``CurriculumWrapper.close()`` flushes. Were the envs not closed (or the flush lost), the
server would have accepted nothing.
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import ray
from ray import cloudpickle

from student_workers.actors import start_ray
from teacher_service.client import TeacherClient, read_export
from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rllib_minigrid.py"
LEVELS = {"kind": "level", "generator": "minigrid", "config": {"size": 7, "max_walls": 3}}
RUNNERS, ENVS_PER_RUNNER, MAX_STEPS, ITERATIONS, BATCH = 2, 2, 24, 3, 512


def load_example() -> ModuleType:
    """``examples/rllib_minigrid.py`` as a module whose functions Ray ships by value.

    ``register_env`` pickles the env creator with Ray's cloudpickle, by reference to its
    module; ``examples/`` is no package the env runner processes can import, so the module is
    registered to be pickled by value (as it would be when run as ``__main__``).
    """
    spec = importlib.util.spec_from_file_location("rllib_minigrid", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module


@pytest.fixture
def local_ray() -> Iterator[None]:
    """An embedded loopback Ray cluster with a CPU per env runner, shut down afterwards."""
    started = start_ray(num_cpus=RUNNERS)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def export_rows(url: str, experiment: str) -> list[dict]:
    """The experiment's history (tasks issued, reports accepted...)."""
    return read_export(httpx.get(f"{url}/v1/experiments/{experiment}/export", timeout=60).content)


@pytest.mark.timeout(180)
def test_rllib_ppo_reports_every_finished_episode_exactly_once(
    server: ServerProcess, local_ray: None
) -> None:
    exp = "rllib-levels"
    with TeacherClient(server.url) as c:
        c.create_experiment(exp, LEVELS, {"kind": "random"}, seed=3)
    example = load_example()
    config = example.build_config(
        server.url,
        exp,
        num_env_runners=RUNNERS,
        num_envs_per_env_runner=ENVS_PER_RUNNER,
        train_batch_size=BATCH,
        minibatch_size=128,
        num_epochs=2,
        max_episode_steps=MAX_STEPS,
        # Nothing is sent before close(): the counts below need algo.stop() to flush.
        wrapper_kwargs={"flush_interval": 600.0},
    )
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2
    results = example.train(config, ITERATIONS)  # stops the algorithm: envs closed, flushed

    # Training ran: ITERATIONS results, BATCH more env steps each, and learner updates.
    assert [r["training_iteration"] for r in results] == list(range(1, ITERATIONS + 1))
    runners = results[-1]["env_runners"]
    steps = int(runners["num_env_steps_sampled_lifetime"])
    assert steps >= ITERATIONS * BATCH
    learner = results[-1]["learners"]["default_policy"]
    assert math.isfinite(learner["total_loss"]) and learner["num_module_steps_trained"] > 0
    episodes = int(runners["num_episodes_lifetime"])
    assert episodes >= steps // MAX_STEPS - RUNNERS * ENVS_PER_RUNNER

    # Every finished episode reported exactly once; nothing else reported.
    with TeacherClient(server.url) as c:
        counters = c.state(exp).counters
    assert (counters.reports_accepted, counters.duplicates) == (episodes, 0)
    rows = export_rows(server.url, exp)
    issued = {r["task_id"]: r["worker"] for r in rows if r["type"] == "task"}
    reports = [r for r in rows if r["type"] == "report"]
    assert len(reports) == episodes
    assert len({r["task_id"] for r in reports}) == episodes, "a task was reported twice"
    assert {r["task_id"] for r in reports} <= set(issued), "a report of a task never issued"
    assert all(1 <= r["length"] <= MAX_STEPS for r in reports)
    # The steps not in a reported episode are those of the episodes still running when
    # training stopped (one per sub-env at most, each shorter than MAX_STEPS): they are
    # neither counted by RLlib nor reported.
    unreported_steps = steps - sum(r["length"] for r in reports)
    assert 0 <= unreported_steps <= RUNNERS * ENVS_PER_RUNNER * (MAX_STEPS - 1)

    # The episodes were played in the two env runner actors (tasks carry the label host:pid
    # of the process that asked for them), none in this driver process.
    by_worker = Counter(issued[r["task_id"]] for r in reports)
    assert len(by_worker) == RUNNERS, by_worker
    assert f"{socket.gethostname()}:{os.getpid()}" not in by_worker


@pytest.mark.timeout(180)
def test_rllib_example_runs(server: ServerProcess) -> None:
    args = "--experiment rllib-example --create --iterations 1 --train-batch-size 256"
    args += " --minibatch-size 128 --num-epochs 1 --max-episode-steps 16 --size 7 --max-walls 3"
    res = subprocess.run(
        [sys.executable, str(EXAMPLE), "--server", server.url, *args.split()],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "trained 1 iterations" in res.stdout and "duplicates=0" in res.stdout
    episodes = int(res.stdout.split(" episodes")[0].rsplit(" ", 1)[-1])
    assert episodes > 0 and f"reports_accepted={episodes} " in res.stdout
