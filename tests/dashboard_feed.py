"""Feed running experiments with fake but plausible traffic, for the dashboard's browser
tests and for looking at the dashboard by hand.

* Box experiments: tasks answered by the ALP-GMM paper's simulated student
  (:class:`env_generators.simulated_student.SimulatedStudent`), so returns rise along a
  learnable frontier and the GMM teachers have something to fit.
* Level experiments (PLR, ACCEL): synthetic reports with the per-level scores those
  teachers require (``positive_value_loss``, ``l1_value_loss``, ``mean_value``), derived
  from the level's layout so that the buffer's scores spread out.
* Every experiment: held-out evaluations for a few test mazes
  (:func:`env_generators.held_out.held_out_names`) with rising solve rates.

By hand: start a server, then ``python -m tests.dashboard_feed --url http://127.0.0.1:8000``
creates three demo experiments and feeds them until interrupted.
"""

from __future__ import annotations

import argparse
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from env_generators.held_out import held_out_names
from env_generators.simulated_student import SimulatedStudent
from env_generators.tech_tree import TechTreeStudent
from teacher_service.client import TeacherClient

#: Test mazes whose (fake) solve rates are posted.
EVAL_ENVS = tuple(held_out_names()[:3])


def box_space(ndim: int) -> dict[str, Any]:
    """A box of ``ndim`` dimensions; the first two are what the simulated student uses.
    Bounds differ from the unit square so that unit-cube -> task-unit scaling is visible."""
    dims = [{"name": "x", "low": 0.0, "high": 10.0}, {"name": "y", "low": -1.0, "high": 1.0}]
    dims += [{"name": f"z{i}", "low": 0.0, "high": 1.0} for i in range(ndim - 2)]
    return {"kind": "box", "dims": dims[:ndim]}


#: A level space small enough for fast generation (as in tests/unit/test_ued_teachers.py).
LEVEL_SPACE = {"kind": "level", "generator": "minigrid", "config": {"size": 9, "max_walls": 10}}

#: ALP-GMM that fits early and fast: first fit after 40 episodes, then every 40.
FAST_ALP_GMM = {
    "kind": "alp_gmm",
    "bootstrap": 40,
    "fit_rate": 40,
    "fit_delay": 0,
    "max_k": 4,
}

FAST_PLR = {"kind": "plr", "buffer_size": 24, "replay_prob": 0.5}


def level_report(task: dict[str, Any] | Any) -> dict[str, Any]:
    """A deterministic fake student for a level task: scores from its layout.

    For PAIRED's roles the antagonist does better than the protagonist (positive regret)."""
    get = task.get if isinstance(task, dict) else lambda k: getattr(task, k)
    # a stable pseudo-random number per level (Python's hash() is salted per process)
    h = zlib.crc32(get("level").encode())
    ret = (h % 97) / 97
    if get("role") == "protagonist":
        ret *= 0.4
    return {
        "task_id": get("id"),
        "episode_return": round(ret, 6),
        "success": h % 3 != 0,
        "length": 10 + h % 240,
        "scores": {
            "positive_value_loss": round((h % 101) / 101, 6),
            "l1_value_loss": round((h % 53) / 53, 6),
            "mean_value": round((h % 31) / 31, 6),
        },
    }


#: POET that turns over fast: every iteration transfers and reproduces, every child passes
#: the minimal criterion, so pairs are admitted (and agents transferred) within a few rounds.
FAST_POET = {
    "kind": "poet",
    "iteration_episodes": 2,
    "eval_episodes": 1,
    "transfer_every": 1,
    "reproduce_every": 1,
    "repro_threshold": 0.0,
    "mc_low": 0.0,
    "mc_high": 1.0,
    "fine_tune_episodes": 1,
}

#: POET's level space: small levels (a poet pair's card draws its environment).
POET_LEVEL_SPACE = {
    "kind": "level",
    "generator": "minigrid",
    "config": {"size": 7, "max_walls": 8},
}


def poet_report(task: Any) -> dict[str, Any]:
    """A deterministic fake student for a poet task: a return in [0, 1] from the level, the
    agent and the mode (train episodes do a little better), so that agents differ per
    environment and transfers happen."""
    h = zlib.crc32(f"{task.level}|{task.agent_id}|{task.init_from}".encode())
    ret = (h % 89) / 88
    if task.mode == "train":
        ret = min(1.0, ret + 0.1)
    return {"task_id": task.id, "episode_return": round(ret, 6), "length": 5 + h % 50}


def feed_poet(
    client: TeacherClient,
    experiment: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    batch: int = 8,
    max_rounds: int = 400,
) -> dict[str, Any]:
    """Answer a poet experiment's tasks with :func:`poet_report` until ``done(view)`` holds
    for its teacher view (from /state); returns that view. Raises after ``max_rounds``."""
    view: dict[str, Any] = {}
    for _ in range(max_rounds):
        view = client.state(experiment).teacher
        if done(view):
            return view
        tasks = client.sample(experiment, batch)
        client.report(experiment, [poet_report(t) for t in tasks])
    raise AssertionError(f"poet did not get there in {max_rounds} rounds: {view}")


@dataclass
class BoxFeed:
    """One box experiment answered by its own simulated student."""

    experiment: str
    space: dict[str, Any]
    # 5 x 5 cells: coarse enough that returns visibly rise within a short test
    student: SimulatedStudent = field(default_factory=lambda: SimulatedStudent(cells=5))

    def reports(self, tasks: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for t in tasks:
            # the student lives in the unit square: map the first two dims there
            unit = [
                (float(t.params[d["name"]]) - d["low"]) / (d["high"] - d["low"])
                for d in self.space["dims"][:2]
            ]
            r = self.student.episode(unit)
            out.append({"task_id": t.id, "episode_return": r, "success": r >= 0.75})
        return out


class Feeder:
    """Feeds experiments round-robin from a background thread until :meth:`stop`.

    Args:
        url: the server.
        token: its bearer token, if any.
        batch: tasks per request.
        pause: seconds between rounds (keeps the browser's live updates visible without
            hogging a small CI machine).
        eval_every: post held-out results every this many rounds.
        env_steps: whether those results say the training env steps (else the dashboard
            plots them against time).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        batch: int = 8,
        pause: float = 0.05,
        eval_every: int = 5,
        env_steps: bool = True,
    ) -> None:
        self.client = TeacherClient(url, token=token, timeout=30.0)
        self.batch = batch
        self.pause = pause
        self.eval_every = eval_every
        self.env_steps = env_steps
        self.box: list[BoxFeed] = []
        self.levels: list[str] = []
        self.discrete: list[tuple[str, TechTreeStudent]] = []
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- experiments
    def add_box(self, name: str, ndim: int = 2, teacher: dict[str, Any] | None = None) -> str:
        """Create a box experiment (ALP-GMM by default) and feed it."""
        space = box_space(ndim)
        exp = self.client.create_experiment(
            name, space=space, teacher=teacher or FAST_ALP_GMM, seed=1
        )
        self.box.append(BoxFeed(exp.id, space))
        return exp.id

    def add_level(self, name: str, teacher: dict[str, Any] | None = None) -> str:
        """Create a level experiment (PLR by default) and feed it."""
        exp = self.client.create_experiment(
            name, space=LEVEL_SPACE, teacher=teacher or FAST_PLR, seed=1
        )
        self.levels.append(exp.id)
        return exp.id

    def add_discrete(self, name: str, teacher: dict[str, Any]) -> str:
        """Create an experiment on the tech-tree student's tasks and feed it that student."""
        student = TechTreeStudent(families=3, variants=1, impossible=1, seed=1)
        exp = self.client.create_experiment(name, space=student.space(), teacher=teacher, seed=1)
        self.discrete.append((exp.id, student))
        return exp.id

    # ----------------------------------------------------------------------- feeding
    def step(self) -> None:
        """One round: a batch of tasks and their reports for every experiment, and every
        ``eval_every`` rounds a held-out result per test maze."""
        for feed in self.box:
            tasks = self.client.sample(feed.experiment, self.batch)
            self.client.report(feed.experiment, feed.reports(tasks))
        for exp in self.levels:
            tasks = self.client.sample(exp, self.batch)
            self.client.report(exp, [level_report(t) for t in tasks])
        for exp, student in self.discrete:
            tasks = self.client.sample(exp, self.batch)
            reports = []
            for t in tasks:
                ok = student.episode(t.params["task"], train=t.mode == "train")
                reports.append({"task_id": t.id, "episode_return": float(ok), "success": ok})
            self.client.report(exp, reports)
        if self.rounds % self.eval_every == 0:
            k = self.rounds // self.eval_every
            experiments = [f.experiment for f in self.box] + self.levels
            for exp in experiments + [e for e, _ in self.discrete]:
                self.client.post_evaluations(
                    exp,
                    [
                        {
                            "env": env,
                            "episodes": 10,
                            # rising, different per maze, capped at 1
                            "solve_rate": min(1.0, 0.05 * k / (i + 1)),
                            "mean_return": min(1.0, 0.04 * k / (i + 1)),
                            "env_steps": 1000 * (self.rounds + 1) * self.batch
                            if self.env_steps
                            else None,
                        }
                        for i, env in enumerate(EVAL_ENVS)
                    ],
                )
        self.rounds += 1

    def run(self, rounds: int) -> None:
        """Feed ``rounds`` rounds in the calling thread (no pause)."""
        for _ in range(rounds):
            self.step()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(self.pause)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> Feeder:
        """Feed from a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="dashboard-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop feeding; re-raise what made the thread fail, if anything did."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.client.close()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Create demo experiments on a running server and feed them until interrupted."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--token", default=None)
    p.add_argument("--prefix", default="demo", help="experiment name prefix")
    p.add_argument("--pause", type=float, default=0.2)
    args = p.parse_args(argv)
    feeder = Feeder(args.url, args.token, pause=args.pause)
    feeder.add_box(f"{args.prefix}-alp-gmm-2d", 2)
    feeder.add_box(f"{args.prefix}-alp-gmm-3d", 3)
    feeder.add_level(f"{args.prefix}-plr")
    print(f"feeding; open {args.url}/ (Ctrl-C to stop)")
    feeder.start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        feeder.stop()


if __name__ == "__main__":
    main()
