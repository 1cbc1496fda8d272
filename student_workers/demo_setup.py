"""What ``autocurriculum demo`` trains on: the task space each teacher gets, the training
settings, and the teacher it runs by default (docs/results/demo-teachers.md).

``benchmarks/demo_teachers.py`` builds its runs from these same functions, so the figures it
measures for each teacher are the demo's own. Torch is imported only by the functions that
build training settings: the CLI imports this module at start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api_schemas.teachers import TEACHER_CONFIGS
from env_generators.parametric import ParametricMazes

if TYPE_CHECKING:
    from student_workers.ppo import PPOConfig
    from student_workers.train import TrainConfig

#: The teacher the demo runs unless ``--teacher`` says otherwise: of the curriculum teachers
#: measured in the demo's minutes on 2 cores, the best on the held-out mazes
#: (``benchmarks/results/demo_teachers.json``).
DEFAULT_TEACHER = "alp_gmm"

#: The held-out mazes the demo evaluates on while it trains.
DEMO_TEST_MAZES: tuple[str, ...] = ("FourRooms", "SixteenRooms", "Corridor", "Pillars")

#: Where the benchmark of the demo's teachers writes its figures (read for the summary line).
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "demo_teachers.json"

#: The parametric box of the box teachers: room side 5-15, up to ~60 walls in a 15x15 room
#: (the level generator's range), any goal distance, any seed; no lava, as in the test mazes.
PARAMETRIC_RANGES: dict[str, tuple[float, float]] = {
    "size": (5, 15),
    "wall_density": (0.0, 0.35),
    "goal_distance": (0.0, 1.0),
    "seed": (0, 1_000_000),
}


def demo_space(teacher: str) -> dict[str, Any]:
    """The task space of a demo experiment run by ``teacher``: 15x15 MiniGrid levels with
    0-60 random walls for the teachers of level spaces (``random`` there is the reference
    DR), the parametric mazes of :data:`PARAMETRIC_RANGES` for the box-only teachers
    (ALP-GMM's setting: a teacher sampling a procedural generator's parameters).

    Raises:
        ValueError: ``teacher`` is unknown or takes neither kind of space.
    """
    kinds = {c.kind_name(): c.SPACES for c in TEACHER_CONFIGS}
    if teacher not in kinds:
        raise ValueError(f"unknown teacher {teacher!r}; known: {sorted(kinds)}")
    if "level" in kinds[teacher]:
        return {"kind": "level", "generator": "minigrid"}
    if "box" in kinds[teacher]:
        return ParametricMazes().space(PARAMETRIC_RANGES)
    demo_kinds = sorted(k for k, s in kinds.items() if "level" in s or "box" in s)
    raise ValueError(
        f"the {teacher!r} teacher takes {'/'.join(kinds[teacher])} spaces only, and the demo "
        f"trains on MiniGrid levels; pick one of {demo_kinds}"
    )


def describe_space(space: dict[str, Any]) -> str:
    """A few words on what a demo space proposes."""
    if space["kind"] == "box":
        return "MiniGrid mazes from parameters (room side 5-15, wall density, goal distance)"
    return "15x15 MiniGrid levels with 0-60 random walls"


def demo_ppo() -> PPOConfig:
    """Faster-learning PPO settings than the reference defaults, for a minutes-long run."""
    from student_workers.ppo import PPOConfig

    return PPOConfig(
        num_steps=128, learning_rate=5e-4, ent_coef=0.01, update_epochs=4, num_minibatches=4,
        gamma=0.99,
    )  # fmt: skip


def demo_train_config(
    url: str, experiment: str, *, workers: int, minutes: float, steps: int, out: Path,
    seed: int,
) -> TrainConfig:  # fmt: skip
    """The demo's training run: ``workers`` rollout workers of 8 envs, one learner, an
    evaluation on :data:`DEMO_TEST_MAZES` every 10 updates, ``minutes`` of training."""
    from student_workers.train import TrainConfig

    return TrainConfig(
        server=url, experiment=experiment, workers=workers, envs_per_worker=8, steps=steps,
        checkpoint_dir=out, max_minutes=minutes, eval_interval=10, eval_envs=DEMO_TEST_MAZES,
        eval_episodes=5, seed=seed, ppo=demo_ppo(),
    )  # fmt: skip


def measured(teacher: str, results: Path = RESULTS) -> dict[str, Any] | None:
    """The benchmark's figures for ``teacher`` (``{"minutes", "seeds", "test_solve_rate",
    "test_solve_rate_sd", ...}``), or None when the results file or the teacher is missing."""
    try:
        data = json.loads(results.read_text())
        row = data["teachers"][teacher]
        return {"minutes": data["settings"]["minutes"], **row}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def benchmark_line(teacher: str, results: Path = RESULTS) -> str | None:
    """The demo's closing line: what the benchmark measured for ``teacher`` and for DR in the
    demo's setting, on the same test mazes (None when the results are missing)."""
    dr = measured("random", results)
    if dr is None:
        return None
    own = measured(teacher, results) if teacher != "random" else None

    def figure(row: dict[str, Any]) -> str:
        return f"{100 * row['test_solve_rate']:.0f}% ± {100 * row['test_solve_rate_sd']:.0f}%"

    where = (
        f"in {dr['minutes']:g} min of this demo on a 2-core machine, over {dr['seeds']} seeds "
        f"(mean solve rate on the test mazes; benchmarks/demo_teachers.py)"
    )
    if own is None:
        return f"For comparison, DR (random) reached {figure(dr)} {where}."
    return f"For comparison, {teacher} reached {figure(own)} and DR (random) {figure(dr)} {where}."
