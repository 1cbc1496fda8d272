"""The ``autocurriculum train`` entry point: :class:`TrainConfig` (the command's options),
the check that the teacher experiment can train Ray students, and :func:`train`, which starts
(or joins) Ray and runs a :class:`~student_workers.driver.TrainingDriver` on it
(docs/architecture.md#students). The driver, its loop, failure handling and statistics are in
:mod:`student_workers.driver`; :class:`TrainProgress` and :class:`TrainingError` come from
there and are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from env_generators.minigrid_env import DEFAULT_VIEW
from student_workers.driver import (
    CHECKPOINT_NAME,
    TRAINED_BUDGET_ENV_CAP,
    TrainingDriver,
    TrainingError,
    TrainProgress,
)
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.ppo import PPOConfig
from teacher_service.client import TeacherClient

__all__ = ["TrainConfig", "TrainProgress", "TrainingError", "train"]


class TrainConfig(BaseModel):
    """Settings of a Ray training run (the options of ``autocurriculum train``)."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(description="URL of the teacher service.")
    experiment: str = Field(min_length=1, description="Experiment id or name (level space).")
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
        "<role>.pt for each other student role."
    )
    ray_address: str | None = Field(default=None, description="Join this Ray cluster.")
    num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of the local cluster (default: enough for all)."
    )
    eval_interval: int = Field(
        default=10, ge=0, description="Updates between evaluations (0: no evaluator)."
    )
    eval_envs: tuple[str, ...] = Field(default=DEFAULT_EVAL_MAZES, min_length=1)
    eval_episodes: int = Field(default=5, ge=1, description="Episodes per test env.")
    checkpoint_interval: int = Field(default=10, ge=1, description="Updates between saves.")
    max_restarts: int = Field(default=10, ge=0, description="Restarts per actor.")
    worker_timeout: float = Field(
        default=300.0, gt=0, description="Seconds a rollout may take before it is dropped."
    )
    seed: int = Field(default=0, ge=0)
    view: int = Field(default=DEFAULT_VIEW, ge=3, le=15)
    ppo: PPOConfig = Field(default_factory=PPOConfig)

    @field_validator("view")
    @classmethod
    def _odd_view(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("the agent view size must be odd")
        return v


def _check_experiment(cfg: TrainConfig) -> tuple[str, tuple[str, ...]]:
    """(experiment id, student roles of its teacher) after checking the students can train."""
    with TeacherClient(cfg.server, token=cfg.token, retries=3) as client:
        exp = client.get_experiment(cfg.experiment)
    if exp.space.kind != "level":
        raise TrainingError(
            f"experiment {exp.name!r} has a {exp.space.kind!r} space; the Ray students play "
            "MiniGrid levels (create the experiment with a level space)"
        )
    roles = tuple(exp.teacher.ROLES)
    bad = [r for r in roles if not r.isidentifier() or f"{r}.pt" == CHECKPOINT_NAME]
    if len(set(roles)) != len(roles) or bad:
        raise TrainingError(f"the {exp.teacher.kind!r} teacher declares bad roles {roles}")
    return exp.id, roles


def train(
    cfg: TrainConfig, on_progress: Callable[[TrainProgress], None] | None = None
) -> dict[str, Any]:
    """Run a training job: check the experiment, start (or join) Ray, run a
    :class:`TrainingDriver` and stop the Ray it started.

    Returns:
        The run's summary, also written to ``summary.json``.

    Raises:
        TrainingError: the experiment cannot train Ray students, too few CPUs, Ray cannot be
            reached, or the run failed (see :meth:`TrainingDriver.run`).
    """
    from student_workers.actors import RayConnectError, start_ray

    exp_id, roles = _check_experiment(cfg)
    n_learners = max(len(roles), 1)
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

    driver = TrainingDriver(cfg, exp_id, roles, on_progress)
    try:
        driver.start_actors()
        return driver.run()
    finally:
        driver.close()
        if started:
            ray.shutdown()
