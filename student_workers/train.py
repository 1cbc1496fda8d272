"""The training driver behind ``autocurriculum train``: Ray rollout workers, one PPO learner
(one per student role), an evaluator, all fed by a teacher experiment over HTTP
(docs/architecture.md#students).

Each iteration is one synchronous PPO step, as in the reference implementations:

1. the latest weights go into the object store once (``ray.put``) and every rollout
   worker collects ``num_steps`` x ``envs_per_worker`` steps with them, reporting each
   finished episode (with its level scores) to the teacher;
2. the rollouts go from the object store straight to the learner (the driver only sees
   small statistics), which runs the PPO epochs;
3. every ``eval_interval`` updates the evaluator plays the new weights on the held-out
   mazes in the background and posts the results to the service; every
   ``checkpoint_interval`` updates the driver writes a checkpoint.

A worker that dies mid-rollout costs that rollout (its episodes in flight); Ray restarts it
and the next iteration uses it again.

Student roles: a teacher may issue tasks for several students (``teacher.ROLES``; PAIRED's
protagonist and antagonist, each task's ``role`` says which). Then there is one learner per role
(same PPO settings, different seeds), the weights go out as one dict role -> weights, each env of
a worker acts with its current task's role's policy, and each learner trains only on its role's
steps. The first role (PAIRED's protagonist) is the one evaluated and saved as ``latest.pt``;
the others are saved as ``<role>.pt``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from env_generators.minigrid_env import DEFAULT_VIEW
from student_workers.evaluator import DEFAULT_EVAL_MAZES
from student_workers.ppo import PPOConfig
from teacher_service.client import TeacherClient

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "latest.pt"
SUMMARY_NAME = "summary.json"
#: Seed offset between the learners of successive student roles (the first keeps ``seed``).
ROLE_SEED_STRIDE = 1_000_003
#: With ``budget='trained'``, a run also stops after this many times ``steps`` env steps: a
#: curriculum that (almost) never issues a train-mode task must not run forever.
TRAINED_BUDGET_ENV_CAP = 10


class TrainingError(RuntimeError):
    """Training cannot go on (bad experiment, every worker failing, learner lost)."""


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


@dataclass
class TrainProgress:
    """What the driver knows after each update (shown by the CLI's progress bar)."""

    env_steps: int
    budget_steps: int  # the steps counted towards total_steps: env or trained steps
    total_steps: int
    steps_per_s: float
    episodes: int
    mean_return: float | None  # over the last 200 finished episodes
    train_solve_rate: float | None  # of those episodes
    test_solve_rate: float | None  # mean over the test envs, latest evaluation
    updates: int
    worker_failures: int

    def describe(self) -> str:
        """One line of the figures: steps/s, episodes, return, test solve rate, updates (and
        lost rollouts, if any); the CLI's progress bar and the UED benchmark's log show it."""
        ret = "-" if self.mean_return is None else f"{self.mean_return:.2f}"
        test = "-" if self.test_solve_rate is None else f"{100 * self.test_solve_rate:.0f}%"
        return (
            f"{self.steps_per_s:7.0f} steps/s  episodes {self.episodes:6d}  return {ret}  "
            f"test solved {test}  updates {self.updates}"
            + (f"  lost rollouts {self.worker_failures}" if self.worker_failures else "")
        )


def _mean(values: Any) -> float | None:
    """Mean of a non-empty collection, ``None`` when empty."""
    return sum(values) / len(values) if len(values) else None


def checkpoint_paths(checkpoint_dir: Path, roles: tuple[str, ...]) -> list[Path]:
    """Checkpoint file of each learner: ``latest.pt`` for the only (or the first role's)
    learner, ``<role>.pt`` for the other roles'."""
    names = [CHECKPOINT_NAME] + [f"{role}.pt" for role in roles[1:]]
    return [checkpoint_dir / name for name in names]


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
    """Run a training job; return its summary (also written to ``summary.json``)."""
    from student_workers.actors import RayConnectError, remote_classes, start_ray

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

    ckpt_paths = checkpoint_paths(cfg.checkpoint_dir, roles)
    workers: list[Any] = []
    try:
        classes = remote_classes(cfg.max_restarts)
        gpu = ray.cluster_resources().get("GPU", 0) >= 1
        learner_cls = classes["learner"].options(num_cpus=1, num_gpus=1 / n_learners if gpu else 0)
        if roles:
            # One learner per role, each resuming from (and saved to) its own file.
            seeds = [cfg.seed + ROLE_SEED_STRIDE * i for i in range(len(roles))]
            learners = [
                learner_cls.remote(cfg.ppo, cfg.view, seeds[i], str(path.resolve()), 1, i)
                for i, path in enumerate(ckpt_paths)
            ]
        else:
            learners = [
                learner_cls.remote(cfg.ppo, cfg.view, cfg.seed, str(ckpt_paths[0].resolve()), 1)
            ]
        workers = [
            classes["worker"].remote(
                cfg.server,
                exp_id,
                token=cfg.token,
                worker_id=f"ray-worker-{i}",
                num_envs=cfg.envs_per_worker,
                ppo=cfg.ppo,
                view=cfg.view,
                seed=cfg.seed * 100_003 + i,
                roles=roles,
            )
            for i in range(cfg.workers)
        ]
        evaluator = None
        if cfg.eval_interval:
            # With roles it plays the first role's weights (PAIRED evaluates the protagonist).
            evaluator = classes["evaluator"].remote(
                cfg.server, exp_id, token=cfg.token, envs=cfg.eval_envs,
                episodes=cfg.eval_episodes, ppo=cfg.ppo, view=cfg.view, seed=cfg.seed,
                role=roles[0] if roles else None,
            )  # fmt: skip
        return _loop(cfg, exp_id, roles, learners, workers, evaluator, ckpt_paths, on_progress, gpu)
    finally:
        if workers:
            _close_workers(workers)
        if started:
            ray.shutdown()


def _close_workers(workers: list[Any]) -> None:
    import ray

    refs = [w.close.remote() for w in workers]
    for ref in refs:
        try:
            ray.get(ref, timeout=90)
        except Exception as exc:  # a dead worker has nothing left to flush
            logger.warning("a rollout worker did not close cleanly: %s", exc)


def _loop(
    cfg: TrainConfig,
    exp_id: str,
    roles: tuple[str, ...],
    learners: list[Any],
    workers: list[Any],
    evaluator: Any,
    ckpt_paths: list[Path],
    on_progress: Callable[[TrainProgress], None] | None,
    gpu: bool,
) -> dict[str, Any]:
    import ray
    from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

    from student_workers.checkpoints import save_checkpoint

    t0 = time.perf_counter()
    env_steps = trained_steps = episodes = updates = failures = lost_steps = 0
    learner_failures = [0] * len(learners)
    # Gradient steps of each learner (epochs x minibatches per update; fewer on masked
    # rollouts with PPOConfig.fixed_minibatch).
    optimizer_steps = [0] * len(learners)
    recent: deque[float] = deque(maxlen=200)
    # Per role: train steps, episodes and the last 200 returns of its own episodes.
    role_trained = dict.fromkeys(roles, 0)
    role_episodes = dict.fromkeys(roles, 0)
    role_recent: dict[str, deque[float]] = {role: deque(maxlen=200) for role in roles}
    last_eval: dict[str, Any] | None = None
    evaluations = 0
    eval_ref = None
    idle_rounds = 0
    last_error = ""

    def learner_call(i: int, method: str, *args: Any, ref: Any = None) -> Any:
        """Call learner ``i`` (``ref``: a call already made), waiting out a restart: Ray
        re-creates a dead learner (from its latest checkpoint) and the call is made again on
        the new one."""
        deadline = time.monotonic() + cfg.worker_timeout
        while True:
            if ref is None:
                ref = getattr(learners[i], method).remote(*args)
            try:
                return ray.get(ref, timeout=cfg.worker_timeout)
            except (RayActorError, ActorUnavailableError) as exc:
                learner_failures[i] += 1
                ref = None
                if time.monotonic() > deadline:
                    raise TrainingError(f"the learner did not come back: {exc}") from exc
                logger.warning("the learner failed during %s (%s); waiting for its restart",
                               method, type(exc).__name__)  # fmt: skip
                time.sleep(1.0)

    def call_learners(method: str, *args: Any) -> list[Any]:
        """The same call on every learner, run side by side."""
        refs = [getattr(learner, method).remote(*args) for learner in learners]
        return [learner_call(i, method, *args, ref=ref) for i, ref in enumerate(refs)]

    def broadcast() -> Any:
        """The learners' weights (a dict role -> weights with roles) in the object store."""
        # Through the driver into the object store once per round (a small network): a learner
        # lost after an update can then never hand the workers a broken reference.
        weights = call_learners("weights")
        return ray.put(dict(zip(roles, weights, strict=True)) if roles else weights[0])

    weights_ref = broadcast()
    per_rollout = cfg.ppo.num_steps * cfg.envs_per_worker

    def save() -> None:
        meta = {
            "experiment": exp_id, "server": cfg.server, "env_steps": env_steps,
            "view": cfg.view, "evaluation": last_eval, "saved_at": time.time(),
        }  # fmt: skip
        for i, ckpt in enumerate(call_learners("checkpoint")):
            role = {"role": roles[i]} if roles else {}
            save_checkpoint(ckpt, ckpt_paths[i], **meta, **role)
        if roles:  # share each role's weights through the server (agent id = role name)
            try:
                with TeacherClient(cfg.server, token=cfg.token, retries=2) as client:
                    for role_name, path in zip(roles, ckpt_paths, strict=True):
                        client.put_agent(exp_id, role_name, path)
            except Exception as exc:  # the local checkpoints are written; training goes on
                logger.warning("uploading the role checkpoints to the server failed: %s", exc)

    def take_eval(ref: Any) -> None:
        nonlocal last_eval, evaluations
        try:
            last_eval = ray.get(ref)
            evaluations += 1
        except (RayActorError, RayTaskError) as exc:
            logger.warning("evaluation failed: %s", exc)

    collect_s = update_s = 0.0
    first_update: tuple[float, int] | None = None  # (time, env steps) once actors are warm
    deadline = None if cfg.max_minutes is None else t0 + 60.0 * cfg.max_minutes

    def budget_steps() -> int:
        """The steps counted towards ``cfg.steps`` (see ``TrainConfig.budget``)."""
        if cfg.budget == "env":
            return env_steps
        return role_trained[roles[0]] if roles else trained_steps

    def budget_left() -> bool:
        if cfg.budget == "trained" and env_steps >= TRAINED_BUDGET_ENV_CAP * cfg.steps:
            return False
        return budget_steps() < cfg.steps

    # --max-minutes counts from the start, actor start-up included, but a run always makes
    # at least one update (a budget spent starting actors must not end with nothing).
    while budget_left() and (deadline is None or updates == 0 or time.perf_counter() < deadline):
        tc = time.perf_counter()
        calls = [w.collect.options(num_returns=2).remote(weights_ref) for w in workers]
        rollouts = []
        for i, (rollout_ref, stats_ref) in enumerate(calls):
            try:
                stats = ray.get(stats_ref, timeout=cfg.worker_timeout)
            except (RayActorError, ActorUnavailableError, RayTaskError, GetTimeoutError) as exc:
                # Lost: its episodes in flight. Ray restarts the actor for the next round.
                failures += 1
                lost_steps += per_rollout
                last_error = f"worker {i}: {type(exc).__name__}: {str(exc)[:300]}"
                logger.warning("rollout lost (%s)", last_error)
                continue
            rollouts.append(rollout_ref)
            env_steps += stats["env_steps"]
            trained_steps += stats["train_steps"]
            episodes += stats["episodes"]
            recent.extend(stats["returns"])
            for role, rs in stats.get("roles", {}).items():
                role_trained[role] += rs["train_steps"]
                role_episodes[role] += rs["episodes"]
                role_recent[role].extend(rs["returns"])
        if not rollouts:
            idle_rounds += 1
            if idle_rounds >= 3:
                raise TrainingError(f"no rollout in 3 rounds; last error: {last_error}")
            time.sleep(1.0)
            continue
        idle_rounds = 0
        tu = time.perf_counter()
        collect_s += tu - tc
        # Every learner reads the same rollouts from the object store; with roles each keeps
        # only the steps its role's policy took.
        for i, learned in enumerate(call_learners("update", *rollouts)):
            optimizer_steps[i] += int(learned["optimizer_steps"])
        weights_ref = broadcast()
        updates += 1
        update_s += time.perf_counter() - tu
        if first_update is None:
            first_update = (time.perf_counter(), env_steps)
        if eval_ref is not None and ray.wait([eval_ref], timeout=0)[0]:
            take_eval(eval_ref)
            eval_ref = None
        if evaluator is not None and eval_ref is None and updates % cfg.eval_interval == 0:
            eval_ref = evaluator.evaluate.remote(weights_ref, env_steps)
        if updates % cfg.checkpoint_interval == 0:
            save()
        if on_progress is not None:
            elapsed = time.perf_counter() - t0
            on_progress(
                TrainProgress(
                    env_steps=env_steps,
                    budget_steps=budget_steps(),
                    total_steps=cfg.steps,
                    steps_per_s=env_steps / max(elapsed, 1e-9),
                    episodes=episodes,
                    mean_return=_mean(recent),
                    train_solve_rate=_mean([r > 0 for r in recent]),
                    test_solve_rate=last_eval["solve_rate"] if last_eval else None,
                    updates=updates,
                    worker_failures=failures,
                )
            )
    train_end = time.perf_counter()
    train_wall = train_end - t0
    env_capped = (
        cfg.budget == "trained"
        and budget_steps() < cfg.steps
        and (env_steps >= TRAINED_BUDGET_ENV_CAP * cfg.steps)
    )
    if env_capped:
        logger.warning(
            "stopped at %d env steps (%d x --steps) with only %d trained steps: the "
            "curriculum rarely issues train-mode tasks", env_steps, TRAINED_BUDGET_ENV_CAP,
            budget_steps(),
        )  # fmt: skip
    steady = None
    if first_update is not None and env_steps > first_update[1]:
        steady = (env_steps - first_update[1]) / (train_end - first_update[0])
    # A final evaluation of the final weights, then the final checkpoint.
    if eval_ref is not None:
        take_eval(eval_ref)
    if evaluator is not None:
        take_eval(evaluator.evaluate.remote(weights_ref, env_steps, str(ckpt_paths[0])))
    save()
    infos = call_learners("info")
    summary = {
        "experiment": exp_id,
        "server": cfg.server,
        "workers": cfg.workers,
        "envs_per_worker": cfg.envs_per_worker,
        "env_steps": env_steps,
        "trained_steps": trained_steps,
        "budget": cfg.budget,
        "budget_env_capped": env_capped,
        # With roles: the first role's learner (the one in latest.pt); else the rounds.
        "updates": infos[0]["updates"] if roles else updates,
        "optimizer_steps": optimizer_steps[0],
        "episodes": episodes,
        "mean_return_last_200": _mean(recent),
        "train_solve_rate_last_200": _mean([r > 0 for r in recent]),
        "evaluations": evaluations,
        "evaluation": last_eval,
        "worker_failures": failures,
        "learner_failures": sum(learner_failures),
        "learner_resumed": any(info["resumed"] for info in infos),
        "lost_env_steps": lost_steps,
        "wall_s": train_wall,
        "steps_per_s": env_steps / max(train_wall, 1e-9),
        # After the first update (actors started, imports done): the rate a long run sees.
        "steady_steps_per_s": steady,
        "collect_s": collect_s,  # waiting for the workers' rollouts (incl. the first start)
        "update_s": update_s,  # PPO updates on the learner(s)
        "learner_device": infos[0]["device"],
        "ray_gcs_address": ray.get_runtime_context().gcs_address,
        "gpu": gpu,
        "checkpoint": str(ckpt_paths[0]),
        "ppo": cfg.ppo.model_dump(),
    }
    if roles:
        summary["roles"] = {
            role: {
                "updates": infos[i]["updates"],
                "optimizer_steps": optimizer_steps[i],
                "trained_steps": role_trained[role],
                "episodes": role_episodes[role],
                "mean_return_last_200": _mean(role_recent[role]),
                "train_solve_rate_last_200": _mean([r > 0 for r in role_recent[role]]),
                "learner_failures": learner_failures[i],
                "learner_resumed": infos[i]["resumed"],
                "checkpoint": str(ckpt_paths[i]),
            }
            for i, role in enumerate(roles)
        }
    (cfg.checkpoint_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
    return summary
