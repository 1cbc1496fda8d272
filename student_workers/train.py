"""The ``autocurriculum train`` entry point: :class:`TrainConfig` (the command's options),
the check that the teacher experiment can train Ray students, and :func:`train`, which starts
(or joins) Ray and runs a :class:`~student_workers.driver.TrainingDriver` on it
(docs/architecture.md#students).

The students play two kinds of task space: ``level`` spaces (MiniGrid levels, navigation
actions by default) and ``discrete`` spaces whose task names are MiniGrid/BabyAI env ids
(``MiniGrid-DoorKey-5x5-v0``; all seven MiniGrid actions by default, for keys and doors; see
:mod:`env_generators.minigrid_suite`). Every name of a discrete space is checked before any
actor starts. The driver, its loop, failure handling and statistics are in
:mod:`student_workers.driver`; :class:`TrainProgress` and :class:`TrainingError` come from
there and are importable from here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from env_generators.minigrid_env import DEFAULT_VIEW
from student_workers.driver import (
    CHECKPOINT_NAME,
    TRAINED_BUDGET_ENV_CAP,
    TrainingDriver,
    TrainingError,
    TrainProgress,
)
from student_workers.eval_episodes import Actions, env_id_problems
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.ppo import PPOConfig
from teacher_service.client import TeacherClient

__all__ = ["CheckedExperiment", "TrainConfig", "TrainProgress", "TrainingError", "train"]

logger = logging.getLogger(__name__)

#: Task names of a discrete experiment evaluated by default (its first ones): the evaluator
#: builds an env per name and plays each one at every evaluation.
MAX_DEFAULT_EVAL_TASKS = 16
#: Bad task names quoted in the error about a discrete space (the rest are counted).
MAX_NAMES_SHOWN = 20


class TrainConfig(BaseModel):
    """Settings of a Ray training run (the options of ``autocurriculum train``)."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(description="URL of the teacher service.")
    experiment: str = Field(
        min_length=1,
        description="Experiment id or name: a level space, or a discrete space of MiniGrid env "
        "ids.",
    )
    token: str | None = Field(default=None, description="Bearer token of the service.")
    workers: int = Field(default=2, ge=1, le=1024, description="Rollout worker actors.")
    envs_per_worker: int = Field(default=4, ge=1, le=256, description="Envs per worker.")
    steps: int = Field(ge=1, description="Steps to train for (all workers together).")
    budget: Literal["env", "trained"] = Field(
        default="env",
        description="What `steps` counts: env steps ('env'), or the steps the (first role's) "
        "student made gradient updates on ('trained': equal samples with gradients, the "
        "counterpart of the PLR⊥/ACCEL papers' PPO-update budget, whose students only score "
        "new or edited levels; such a run "
        f"takes more env steps, at most {TRAINED_BUDGET_ENV_CAP} x steps).",
    )
    max_minutes: float | None = Field(
        default=None, gt=0, description="Also stop after this much training time."
    )
    checkpoint_dir: Path = Field(
        description="Where latest.pt (the first student role's) and summary.json go; "
        "<role>.pt for each other student role; with a population teacher (POET) "
        "agents/<agent_id>.pt for each agent, latest.pt being the best active pair's agent."
    )
    ray_address: str | None = Field(default=None, description="Join this Ray cluster.")
    num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of the local cluster (default: enough for all)."
    )
    eval_interval: int = Field(
        default=10, ge=0, description="Updates between evaluations (0: no evaluator)."
    )
    eval_envs: tuple[str, ...] = Field(
        default=DEFAULT_EVAL_MAZES,
        min_length=1,
        description="Test envs (held-out maze names or MiniGrid env ids). Left out: the 15x15 "
        f"held-out mazes for a level space, the first {MAX_DEFAULT_EVAL_TASKS} task names "
        "(env ids) of a discrete space.",
    )
    eval_episodes: int = Field(default=5, ge=1, description="Episodes per test env.")
    checkpoint_interval: int = Field(default=10, ge=1, description="Updates between saves.")
    max_restarts: int = Field(default=10, ge=0, description="Restarts per actor.")
    worker_timeout: float = Field(
        default=300.0, gt=0, description="Seconds a rollout may take before it is dropped."
    )
    seed: int = Field(default=0, ge=0)
    view: int = Field(default=DEFAULT_VIEW, ge=3, le=15)
    actions: Actions | None = Field(
        default=None,
        description="The students' action set: 'navigation' (left, right, forward) or 'full' "
        "(all 7 MiniGrid actions: pickup, drop and toggle open keys and doors). Default: "
        "navigation for a level space, full for a discrete space of env ids.",
    )
    ppo: PPOConfig = Field(default_factory=PPOConfig)

    @field_validator("view")
    @classmethod
    def _odd_view(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("the agent view size must be odd")
        return v


class CheckedExperiment(NamedTuple):
    """What :func:`check_experiment` found out about the experiment to train on."""

    id: str
    roles: tuple[str, ...]  # the teacher's student roles (empty: one student)
    space: str  # "level" or "discrete"
    tasks: tuple[str, ...]  # a discrete space's task names (MiniGrid env ids); () for levels
    population: bool = False  # a population teacher (POET): a changing set of agents


def _space_error(exp: Any) -> str | None:
    """Why the students cannot play ``exp``'s task space (``None`` when they can)."""
    kind = exp.space.kind
    if kind == "level" or (kind == "box" and getattr(exp.space, "generator", None)):
        return None  # a box space with a generator: every task carries its built level
    if kind == "discrete":
        problems = env_id_problems(exp.space.names)
        if not problems:
            return None
        shown = [f"{name!r} ({why})" for name, why in list(problems.items())[:MAX_NAMES_SHOWN]]
        more = len(problems) - len(shown)
        return (
            f"experiment {exp.name!r} has {len(problems)} discrete task(s) that the Ray "
            f"students cannot play: {', '.join(shown)}{f' and {more} more' if more else ''}. "
            "Each task name must be a registered MiniGrid/BabyAI env id (e.g. "
            "MiniGrid-DoorKey-5x5-v0) or a held-out maze name"
        )
    return (
        f"experiment {exp.name!r} has a {kind!r} space without a generator; the Ray students "
        "play MiniGrid levels (a level space, or a box space with a parametric generator such "
        "as 'minigrid_params') or MiniGrid env ids (a discrete space whose task names are env "
        "ids such as MiniGrid-DoorKey-5x5-v0). Train a plain box space with your own env "
        "through student_workers.CurriculumWrapper(apply_task=...)"
    )


def check_experiment(cfg: TrainConfig) -> CheckedExperiment:
    """Fetch ``cfg.experiment`` and check that the Ray students can train on it: a level
    space, a box space with a parametric generator (its tasks carry levels), or a discrete
    space whose every task name is a MiniGrid env id, and a teacher whose
    student roles make valid checkpoint names. Also learns whether the teacher trains a
    population (``teacher.POPULATION``: POET).

    Raises:
        TrainingError: the students cannot play the space (the message lists every bad task
            name of a discrete space), or the teacher declares bad roles.
        TeacherClientError: the service cannot be reached, or has no such experiment.
    """
    with TeacherClient(cfg.server, token=cfg.token, retries=3) as client:
        exp = client.get_experiment(cfg.experiment)
    error = _space_error(exp)
    if error is not None:
        raise TrainingError(error)
    roles = tuple(exp.teacher.ROLES)
    bad = [r for r in roles if not r.isidentifier() or f"{r}.pt" == CHECKPOINT_NAME]
    if len(set(roles)) != len(roles) or bad:
        raise TrainingError(f"the {exp.teacher.kind!r} teacher declares bad roles {roles}")
    tasks = tuple(exp.space.names) if exp.space.kind == "discrete" else ()
    population = exp.teacher.POPULATION
    if population and roles:
        raise TrainingError(
            f"the {exp.teacher.kind!r} teacher declares both roles and a population"
        )
    return CheckedExperiment(exp.id, roles, exp.space.kind, tasks, population)


def resolve_config(cfg: TrainConfig, exp: CheckedExperiment) -> TrainConfig:
    """``cfg`` with the defaults that depend on the experiment's space filled in: the action
    set (full for a discrete space, navigation for levels) and, for a discrete space whose
    ``eval_envs`` were not given, its first task names as the test envs."""
    update: dict[str, Any] = {}
    if cfg.actions is None:
        update["actions"] = "full" if exp.space == "discrete" else "navigation"
    if exp.space == "discrete" and "eval_envs" not in cfg.model_fields_set:
        update["eval_envs"] = exp.tasks[:MAX_DEFAULT_EVAL_TASKS]
        if len(exp.tasks) > MAX_DEFAULT_EVAL_TASKS:
            logger.info(
                "evaluating the first %d of %d tasks (give --eval-env to choose)",
                MAX_DEFAULT_EVAL_TASKS, len(exp.tasks),
            )  # fmt: skip
    return cfg.model_copy(update=update) if update else cfg


def train(
    cfg: TrainConfig, on_progress: Callable[[TrainProgress], None] | None = None
) -> dict[str, Any]:
    """Run a training job: check the experiment, start (or join) Ray, run a
    :class:`TrainingDriver` and stop the Ray it started.

    Returns:
        The run's summary, also written to ``summary.json``.

    Raises:
        TrainingError: the experiment cannot train Ray students (see
            :func:`check_experiment`), too few CPUs, Ray cannot be reached, or the run failed
            (see :meth:`TrainingDriver.run`).
    """
    from student_workers.actors import RayConnectError, start_ray

    exp = check_experiment(cfg)
    cfg = resolve_config(cfg, exp)
    exp_id, roles = exp.id, exp.roles
    n_learners = max(len(roles), 1)  # a population's agents share one learner actor
    local_cpus = cfg.num_cpus or max(os.cpu_count() or 1, cfg.workers + n_learners)
    if not cfg.ray_address and local_cpus < cfg.workers + n_learners:
        # Every worker and learner actor holds one CPU: fewer would wait forever.
        raise TrainingError(
            f"--num-cpus {local_cpus} is too few for {cfg.workers} workers + {n_learners} "
            f"learner(s): give at least {cfg.workers + n_learners}"
        )
    try:
        started = start_ray(cfg.ray_address, num_cpus=None if cfg.ray_address else local_cpus)
    except RayConnectError as exc:
        raise TrainingError(str(exc)) from exc
    import ray

    driver = TrainingDriver(cfg, exp_id, roles, on_progress, population=exp.population)
    try:
        driver.start_actors()
        return driver.run()
    finally:
        driver.close()
        if started:
            ray.shutdown()
