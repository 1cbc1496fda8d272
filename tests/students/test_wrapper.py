"""``student_workers.wrappers.CurriculumWrapper``: unit behaviour on a fake session, then
SB3 PPO through the wrapper against a real server (``DummyVecEnv``, ``SubprocVecEnv``, and a
server killed and restarted mid-run), and the two examples as subprocesses.

The end-to-end tests count finished episodes on the trainer side (``dones`` seen by an SB3
callback) and check that the server accepted exactly that many reports, without duplicates.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from minigrid.wrappers import ImgObsWrapper
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from api_schemas.tasks import Task
from student_workers import CurriculumWrapper, minigrid_level_env
from teacher_service.client import NotFoundError, TeacherClient, TeacherClientError
from tests.helpers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
# Agent at (1, 1) facing right, goal two tiles ahead: forward, forward reaches it.
CORRIDOR = "#####\n#>.G#\n#####"
LONG_CORRIDOR = "######\n#>..G#\n######"
LEFT, FORWARD = 0, 2
LEVEL_SPACE = {
    "kind": "level",
    "generator": "minigrid",
    "config": {"size": 9, "max_walls": 10, "solvable": True},
}


# ------------------------------------------------------------------------- fakes
def level_task(i: int | str, level: str = CORRIDOR) -> Task:
    """A level task as the server would send it."""
    return Task(id=f"t{i}", level=level, lease_expires_at=0.0)


class FakeSession:
    """Stands in for ``CurriculumSession``: a list of tasks, then ``TimeoutError``."""

    def __init__(self, tasks: list[Task] | None = None) -> None:
        self.tasks: deque[Task] = deque(tasks or [])
        self.reports: list[dict[str, Any]] = []
        self.closed = False
        self.error: Exception | None = None
        self.close_error: Exception | None = None
        self.timeouts: list[float | None] = []

    def next_task(self, timeout: float | None = None) -> Task:
        self.timeouts.append(timeout)
        if self.tasks:
            return self.tasks.popleft()
        if self.error is not None:
            raise self.error
        raise TimeoutError("no task")

    def report(self, report: dict[str, Any]) -> None:
        if self.closed:
            raise TeacherClientError("closed")
        self.reports.append(dict(report))

    def close(self, timeout: float | None = None) -> None:
        self.closed = True
        if self.close_error is not None:
            raise self.close_error

    @property
    def stats(self) -> dict[str, Any]:
        return {"reports_queued": len(self.reports)}


class Factory:
    """A picklable session factory that remembers the sessions it made."""

    def __init__(self, tasks: list[Task] | None = None) -> None:
        self.tasks = tasks or []
        self.made: list[FakeSession] = []

    def __call__(self) -> FakeSession:
        s = FakeSession(list(self.tasks))
        self.made.append(s)
        return s


class ParamEnv(gym.Env):
    """One-step env whose reward is its ``difficulty`` parameter (box-space tasks)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, difficulty: float = 0.0) -> None:
        self.difficulty = difficulty

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return np.array([self.difficulty], np.float32), {}

    def step(self, action: int) -> tuple:
        obs = np.array([self.difficulty], np.float32)
        return obs, self.difficulty, True, False, {}


def set_difficulty(env: gym.Env, task: Task) -> None:
    """``apply_task`` for ParamEnv."""
    env.unwrapped.difficulty = task.params["x"]


def box_task(i: int, x: float) -> Task:
    return Task(id=f"b{i}", params={"x": x}, lease_expires_at=0.0)


def wrap(tasks: list[Task], **kw: Any) -> tuple[CurriculumWrapper, Factory]:
    factory = Factory(tasks)
    env = minigrid_level_env(max_steps=kw.pop("max_steps", 10))
    return CurriculumWrapper(env, "exp", session_factory=factory, **kw), factory


def run_episode(env: gym.Env, actions: list[int]) -> tuple[float, dict]:
    total, info = 0.0, {}
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        total += float(r)
        if term or trunc:
            break
    return total, info


# ------------------------------------------------------------------------- unit tests
def test_one_report_per_finished_episode_including_truncated() -> None:
    w, f = wrap([level_task(1), level_task(2, LONG_CORRIDOR)], max_steps=3)
    _, info = w.reset(seed=0)
    assert (info["task_id"], info["task_mode"]) == ("t1", "train")
    ret, _ = run_episode(w, [FORWARD, FORWARD])  # reaches the goal in 2 steps
    assert ret > 0
    assert w.unwrapped.level.encode() == CORRIDOR
    w.reset()
    assert w.unwrapped.level.encode() == LONG_CORRIDOR  # the task's level is set
    run_episode(w, [LEFT, LEFT, LEFT])  # truncated at max_steps=3
    assert f.made[0].reports == [
        {"task_id": "t1", "episode_return": ret, "success": True, "length": 2},
        {"task_id": "t2", "episode_return": 0.0, "success": False, "length": 3},
    ]
    st = w.curriculum_stats
    assert st["episodes_finished"] == st["episodes_reported"] == 2
    w.close()
    assert f.made[0].closed


def test_mid_episode_reset_abandons_the_task_without_report() -> None:
    w, f = wrap([level_task(1), level_task(2)])
    w.reset()
    w.step(LEFT)
    w.reset()  # the episode of t1 never finished
    run_episode(w, [FORWARD, FORWARD])
    assert [r["task_id"] for r in f.made[0].reports] == ["t2"]
    assert w.curriculum_stats["episodes_abandoned"] == 1


def test_success_from_info_or_success_fn() -> None:
    class Says(gym.Wrapper):
        def step(self, action: Any) -> tuple:
            obs, r, term, trunc, info = self.env.step(action)
            return obs, r, term, trunc, {**info, "is_success": False}

    factory = Factory([level_task(1)])
    w = CurriculumWrapper(Says(minigrid_level_env()), "exp", session_factory=factory)
    w.reset()
    run_episode(w, [FORWARD, FORWARD])
    assert factory.made[0].reports[0]["success"] is False  # info wins over return > 0

    w2, f2 = wrap([level_task(1)], success_fn=lambda ret, info: ret > 0.99)
    w2.reset()
    run_episode(w2, [FORWARD, FORWARD])
    assert f2.made[0].reports[0]["success"] is False


def test_box_tasks_through_apply_task_and_make_env() -> None:
    tasks = [box_task(1, 0.25), box_task(2, 0.75)]
    f1 = Factory(tasks)
    w = CurriculumWrapper(ParamEnv(), "exp", session_factory=f1, apply_task=set_difficulty)
    for _ in tasks:
        obs, _ = w.reset()
        w.step(0)
    assert [r["episode_return"] for r in f1.made[0].reports] == [0.25, 0.75]

    built: list[ParamEnv] = []

    def make_env(task: Task) -> gym.Env:
        built.append(ParamEnv(task.params["x"]))
        return built[-1]

    f2 = Factory(tasks)
    w2 = CurriculumWrapper(ParamEnv(), "exp", session_factory=f2, make_env=make_env)
    obs, _ = w2.reset()
    assert obs[0] == pytest.approx(0.25) and w2.env is built[0]
    w2.step(0)
    w2.reset()
    assert w2.env is built[1]
    w2.step(0)
    assert [r["episode_return"] for r in f2.made[0].reports] == [0.25, 0.75]


def test_a_report_that_cannot_be_sent_is_counted_not_raised() -> None:
    tasks = [box_task(1, float("inf")), box_task(2, 0.5)]
    factory = Factory(tasks)
    w = CurriculumWrapper(ParamEnv(), "exp", session_factory=factory, apply_task=set_difficulty)
    for _ in tasks:
        w.reset()
        w.step(0)  # the first return is infinite: not a valid report
    assert [r["task_id"] for r in factory.made[0].reports] == ["b2"]
    st = w.curriculum_stats
    assert (st["episodes_finished"], st["episodes_reported"], st["reports_failed"]) == (2, 1, 1)


def test_configuration_errors_are_raised() -> None:
    with pytest.raises(ValueError, match="base_url"):
        CurriculumWrapper(ParamEnv(), "exp")
    # A box task needs apply_task or make_env.
    w = CurriculumWrapper(ParamEnv(), "exp", session_factory=Factory([box_task(1, 0.5)]))
    with pytest.raises(TypeError, match="apply_task"):
        w.reset()
    # make_env must keep the spaces.
    other = gym.make("CartPole-v1")
    w = CurriculumWrapper(
        ParamEnv(), "exp", session_factory=Factory([box_task(1, 0.5)]), make_env=lambda t: other
    )
    with pytest.raises(ValueError, match="spaces"):
        w.reset()

    # A 4xx (unknown experiment) with nothing to replay is a misconfiguration.
    def broken() -> FakeSession:
        s = FakeSession()
        s.error = NotFoundError(404, "unknown experiment")
        return s

    w = CurriculumWrapper(minigrid_level_env(), "exp", session_factory=broken, task_timeout=0.01)
    with pytest.raises(NotFoundError):
        w.reset()


def test_outage_replays_last_task_warns_once_and_does_not_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, f = wrap([level_task(1)], task_timeout=0.05)
    w.reset()
    run_episode(w, [FORWARD, FORWARD])
    session = f.made[0]
    with caplog.at_level(logging.INFO, logger="student_workers.wrappers"):
        for _ in range(3):  # three resets during one outage
            _, info = w.reset()
            assert info["task_id"] == "t1"
            run_episode(w, [FORWARD, FORWARD])
        # Only the first reset of the outage waited.
        assert session.timeouts[1:] == [0.05, 0.0, 0.0]
        session.tasks.append(level_task(2))
        _, info = w.reset()  # back
        assert info["task_id"] == "t2"
        run_episode(w, [FORWARD, FORWARD])
        session.tasks.clear()
        w.reset()  # a second outage warns again
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all("replaying" in w for w in warnings), warnings
    assert any("serving tasks again" in r.getMessage() for r in caplog.records)
    assert [r["task_id"] for r in session.reports] == ["t1", "t2"]
    st = w.curriculum_stats
    assert (st["episodes_unreported"], st["outages"], st["fallback_resets"]) == (3, 2, 4)


def test_default_task_when_nothing_was_ever_received() -> None:
    w, f = wrap([], task_timeout=0.01, default_task=level_task("default", LONG_CORRIDOR))
    _, info = w.reset()
    assert info["task_id"] == "tdefault"
    assert w.unwrapped.level.encode() == LONG_CORRIDOR
    run_episode(w, [FORWARD] * 3)
    assert f.made[0].reports == []


def test_close_is_idempotent_and_swallows_server_errors() -> None:
    w, f = wrap([level_task(1)])
    w.reset()
    f.made[0].close_error = TimeoutError("3 reports not acknowledged")
    w.close()
    w.close()
    assert f.made[0].closed
    with pytest.raises(gym.error.ResetNeeded):
        w.reset()


def test_pickled_or_forked_copies_start_their_own_session() -> None:
    factory = Factory([box_task(1, 0.5), box_task(2, 0.5)])
    w = CurriculumWrapper(ParamEnv(), "exp", session_factory=factory, apply_task=set_difficulty)
    w.reset()
    clone = pickle.loads(pickle.dumps(w))  # as a subprocess vector env would receive it
    assert clone._session is None and len(factory.made) == 1
    clone.step(0)  # the episode in flight belongs to the original: not reported twice
    assert clone.curriculum_stats["episodes_reported"] == 0
    clone.reset()
    assert len(clone.session_factory.made) == 2  # its own session, made lazily
    w.step(0)
    assert [r["task_id"] for r in factory.made[0].reports] == ["b1"]

    # A forked child (same object, other pid) neither reuses nor closes the parent's session.
    w.reset()
    w._owner_pid = -1
    w.step(0)  # the parent owns this episode's task
    assert [r["task_id"] for r in factory.made[0].reports] == ["b1"]
    w.reset()
    assert len(factory.made) == 2 and not factory.made[0].closed


# ------------------------------------------------------------------------- real server
class EpisodeCounter(BaseCallback):
    """Finished episodes seen by the trainer (``dones`` of every step)."""

    def __init__(self, on_step: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.episodes = 0
        self.hook = on_step

    def _on_step(self) -> bool:
        self.episodes += int(np.sum(self.locals["dones"]))
        if self.hook is not None:
            self.hook(self.num_timesteps)
        return True


def make_env_fn(url: str, experiment: str, **kw: Any) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        env = minigrid_level_env(max_steps=24)  # short episodes: many reports per test
        return ImgObsWrapper(CurriculumWrapper(env, experiment, base_url=url, **kw))

    return make


def train_ppo(vec: Any, steps: int, counter: EpisodeCounter) -> None:
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", vec, n_steps=128, batch_size=128, n_epochs=2, seed=0)
    model.learn(total_timesteps=steps, callback=counter)


def server_counts(url: str, experiment: str) -> tuple[int, int]:
    with TeacherClient(url) as c:
        counters = c.state(experiment).counters
    return counters.reports_accepted, counters.duplicates


@pytest.mark.timeout(120)
@pytest.mark.parametrize("vec_cls", [DummyVecEnv, SubprocVecEnv])
def test_sb3_ppo_reports_every_episode_exactly_once(server: ServerProcess, vec_cls: type) -> None:
    exp = f"sb3-{vec_cls.__name__}"
    with TeacherClient(server.url) as c:
        c.create_experiment(exp, LEVEL_SPACE, {"kind": "random"}, seed=1)
    vec = vec_cls([make_env_fn(server.url, exp) for _ in range(2)])
    counter = EpisodeCounter()
    try:
        train_ppo(vec, 2048, counter)
        stats = vec.get_attr("curriculum_stats")
    finally:
        vec.close()
    assert counter.episodes >= 2048 // 24 - 2
    assert sum(s["episodes_finished"] for s in stats) == counter.episodes
    assert sum(s["episodes_reported"] for s in stats) == counter.episodes
    assert server_counts(server.url, exp) == (counter.episodes, 0)


@pytest.mark.timeout(120)
def test_sb3_training_survives_a_server_kill_and_restart(server: ServerProcess) -> None:
    exp = "sb3-chaos"
    with TeacherClient(server.url) as c:
        c.create_experiment(exp, LEVEL_SPACE, {"kind": "random"}, seed=2)
    # A tiny buffer and short waits so that the outage really starves the wrappers.
    kw = {"prefetch": 2, "task_timeout": 0.2, "client_kwargs": {"max_backoff": 0.2}}
    vec = DummyVecEnv([make_env_fn(server.url, exp, **kw) for _ in range(2)])
    killed = threading.Event()
    restarted = threading.Event()
    errors: list[BaseException] = []

    def chaos() -> None:
        try:
            server.kill()  # SIGKILL, same DB file on restart
            time.sleep(1.5)
            server.start()
            restarted.set()
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
            restarted.set()

    def on_step(t: int) -> None:
        if t >= 600 and not killed.is_set():
            killed.set()
            threading.Thread(target=chaos, daemon=True).start()
        if t >= 2400 and not restarted.is_set():
            restarted.wait(30)  # keep the second half of the run after the restart

    counter = EpisodeCounter(on_step)
    try:
        train_ppo(vec, 3072, counter)
        stats = vec.get_attr("curriculum_stats")
    finally:
        vec.close()
    assert not errors, errors
    assert killed.is_set() and restarted.is_set()
    finished = sum(s["episodes_finished"] for s in stats)
    reported = sum(s["episodes_reported"] for s in stats)
    replayed = sum(s["episodes_unreported"] for s in stats)
    assert finished == counter.episodes == reported + replayed
    assert replayed > 0  # the outage was felt: the wrappers replayed tasks
    assert sum(s["outages"] for s in stats) >= 1
    accepted, _duplicates = server_counts(server.url, exp)
    # Every report of a fresh task reached the server exactly once (retried answers that
    # were lost in the crash may count as duplicates, which the server ignores).
    assert accepted == reported


# ------------------------------------------------------------------------- examples
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "script,args",
    [
        ("sb3_minigrid.py", ["--steps", "1024", "--n-steps", "128", "--max-episode-steps", "32"]),
        (
            "cleanrl_style_ppo.py",
            ["--steps", "1024", "--num-envs", "2", "--async", "--max-episode-steps", "32"],
        ),
    ],
)
def test_examples_run(script: str, args: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, str(REPO / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "duplicates=0" in res.stdout
    episodes = int(res.stdout.split(" episodes")[0].rsplit(" ", 1)[-1])
    assert f"reports_accepted={episodes} " in res.stdout
