"""The training driver: one run of Ray rollout workers, PPO learner(s) and an evaluator on a
connected Ray cluster, fed by a teacher experiment over HTTP (docs/architecture.md#students).
:func:`student_workers.train.train` checks the experiment, starts Ray and runs a
:class:`TrainingDriver`.

Each iteration (:meth:`TrainingDriver.iteration`) is one synchronous PPO step, as in the
reference implementations:

1. the latest weights are in the object store once (``ray.put``) and every rollout worker
   collects ``num_steps`` x ``envs_per_worker`` steps with them, reporting each finished
   episode (with its level scores) to the teacher;
2. the rollouts go from the object store straight to the learner(s) (the driver only sees
   small statistics), which run the PPO epochs; their new weights go into the object store;
3. every ``eval_interval`` updates (unless one is still running) the evaluator plays the new
   weights on the test envs (held-out mazes, or a discrete experiment's env ids) in the
   background and posts the results to the service;
   every ``checkpoint_interval`` updates the driver writes a checkpoint.

Failures: a worker that dies, raises or times out mid-rollout costs that rollout (its episodes in
flight); Ray restarts it and the next iteration uses it again. A round in which every rollout
is lost is retried after a second, and the third such round in a row ends the run
(:class:`TrainingError`). A learner that dies is re-created by Ray from its latest checkpoint
while the driver waits (up to ``worker_timeout`` seconds) and repeats the call. A failed
evaluation, or a failed upload of the role checkpoints, is logged and training goes on.

Statistics (:class:`TrainingStats`): env steps, train-mode steps and finished episodes (all
students together and per role, with the returns of the last :data:`RECENT_EPISODES`
episodes, :class:`EpisodeStats`), rounds of updates and each learner's gradient steps,
evaluations, lost rollouts and their env steps, learner failures, and the time spent waiting
for rollouts and updating. The summary (``summary.json``) reports them at the end.

Student roles: a teacher may issue tasks for several students (``teacher.ROLES``; PAIRED's
protagonist and antagonist, each task's ``role`` says which). Then there is one learner per role
(same PPO settings, different seeds), the weights go out as one dict role -> weights, each env of
a worker acts with its current task's role's policy, and each learner trains only on its role's
steps. The first role (PAIRED's protagonist) is the one evaluated and saved as ``latest.pt``;
the others are saved as ``<role>.pt``.

Populations: a population teacher (``teacher.POPULATION``: POET; the contract is docs/poet.md)
names in each task the ``agent_id`` that plays it, and the agents come and go. Then one
:class:`~student_workers.population.PopulationLearner` actor holds a PPO learner per agent, the
weights go out as one dict agent id -> weights, each env of a worker acts with its current task's
agent's policy (a worker makes the policy of an agent it meets first), and each agent trains on
its own steps. After every update the driver writes each updated agent's checkpoint to
``agents/<agent_id>.pt`` and uploads it to the experiment's agents store; after every round it
reads the teacher's view and retires the agents neither active nor candidate (final weights
uploaded, learner dropped). A run starts by taking up the view's active and candidate agents from
the store, so a restarted job continues the population. ``latest.pt`` (the one evaluated) is the
best-scoring active pair's agent (:meth:`PopulationBook.best
<student_workers.population.PopulationBook.best>`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from student_workers.population import AgentStore, PopulationBook
from teacher_service.client import TeacherClient, TeacherClientError

if TYPE_CHECKING:
    from student_workers.train import TrainConfig

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "latest.pt"
SUMMARY_NAME = "summary.json"
#: With a population: the folder (under the checkpoint dir) of every agent's checkpoint.
AGENTS_DIR = "agents"
#: Seed offset between the learners of successive student roles (the first keeps ``seed``).
ROLE_SEED_STRIDE = 1_000_003
#: With ``budget='trained'``, a run also stops after this many times ``steps`` env steps: a
#: curriculum that (almost) never issues a train-mode task must not run forever.
TRAINED_BUDGET_ENV_CAP = 10
#: Finished episodes behind the ``*_last_200`` figures of the summary and the progress line.
RECENT_EPISODES = 200


class TrainingError(RuntimeError):
    """Training cannot go on (bad experiment, too few CPUs, Ray unreachable, every rollout
    lost, learner lost)."""


@dataclass
class TrainProgress:
    """What the driver knows after each update (shown by the CLI's progress bar)."""

    env_steps: int
    budget_steps: int  # the steps counted towards total_steps: env or trained steps
    total_steps: int
    steps_per_s: float
    episodes: int
    mean_return: float | None  # over the last RECENT_EPISODES finished episodes
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


def _mean(values: Collection[float]) -> float | None:
    """Mean of a non-empty collection, ``None`` when empty."""
    return sum(values) / len(values) if len(values) else None


@dataclass
class EpisodeStats:
    """Train-mode steps and finished episodes of the students (all of them, or one role's),
    with the returns of the last :data:`RECENT_EPISODES` episodes."""

    trained_steps: int = 0
    episodes: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))

    def add(self, stats: Mapping[str, Any]) -> None:
        """Count one rollout's ``{"train_steps", "episodes", "returns"}``."""
        self.trained_steps += stats["train_steps"]
        self.episodes += stats["episodes"]
        self.recent.extend(stats["returns"])

    def mean_return(self) -> float | None:
        """Mean return of the recent episodes; ``None`` before the first."""
        return _mean(self.recent)

    def solve_rate(self) -> float | None:
        """Share of the recent episodes with a positive return (MiniGrid: goal reached)."""
        return _mean([r > 0 for r in self.recent])


@dataclass
class TrainingStats:
    """What the driver counts during a run (the learners count their own updates).

    ``optimizer_steps`` and ``learner_failures`` hold one entry per learner, ``roles`` one
    :class:`EpisodeStats` per student role (none without roles), ``agents`` one per agent of a
    population (added as the agents appear).
    """

    optimizer_steps: list[int]
    learner_failures: list[int]
    roles: dict[str, EpisodeStats]
    agents: dict[str, EpisodeStats] = field(default_factory=dict)
    students: EpisodeStats = field(default_factory=EpisodeStats)  # every role together
    env_steps: int = 0
    updates: int = 0  # rounds, each one update of every learner
    evaluations: int = 0
    last_evaluation: dict[str, Any] | None = None
    worker_failures: int = 0  # rollouts lost
    lost_env_steps: int = 0
    collect_s: float = 0.0  # waiting for the workers' rollouts (incl. the first start)
    update_s: float = 0.0  # PPO updates on the learner(s) and the weights broadcast
    # (perf_counter time, env steps) at the first update, once the actors are warm.
    first_update: tuple[float, int] | None = None

    @classmethod
    def for_run(cls, roles: tuple[str, ...], learners: int) -> TrainingStats:
        """Zeroed counters for ``learners`` learners and the student ``roles``."""
        return cls(
            optimizer_steps=[0] * learners,
            learner_failures=[0] * learners,
            roles={role: EpisodeStats() for role in roles},
        )

    def add_rollout(self, stats: Mapping[str, Any]) -> None:
        """Count one worker's rollout statistics (:meth:`RolloutWorker.collect`'s second
        result)."""
        self.env_steps += stats["env_steps"]
        self.students.add(stats)
        for role, role_stats in stats.get("roles", {}).items():
            self.roles[role].add(role_stats)
        for agent_id, agent_stats in stats.get("agents", {}).items():
            self.agents.setdefault(agent_id, EpisodeStats()).add(agent_stats)


def checkpoint_paths(checkpoint_dir: Path, roles: tuple[str, ...]) -> list[Path]:
    """Checkpoint file of each learner: ``latest.pt`` for the only (or the first role's)
    learner, ``<role>.pt`` for the other roles'."""
    names = [CHECKPOINT_NAME] + [f"{role}.pt" for role in roles[1:]]
    return [checkpoint_dir / name for name in names]


class TrainingDriver:
    """One training run on a connected Ray: its actors, its loop and its counters.

    :meth:`start_actors`, then :meth:`run`; :meth:`close` in any case (it flushes the
    workers' queued reports).

    Args:
        cfg: the run's settings.
        exp_id: id of the teacher experiment (checked by the caller).
        roles: the teacher's student roles (empty: one student).
        on_progress: called after every update.
        population: the teacher is a population teacher (POET): train its changing agents.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        exp_id: str,
        roles: tuple[str, ...],
        on_progress: Callable[[TrainProgress], None] | None = None,
        population: bool = False,
    ) -> None:
        self.cfg = cfg
        self.exp_id = exp_id
        self.roles = roles
        self.on_progress = on_progress
        self.ckpt_paths = checkpoint_paths(cfg.checkpoint_dir, roles)
        self.book: PopulationBook | None = None  # with a population: its agents
        self._store_client: TeacherClient | None = None
        if population:
            from student_workers.eval_episodes import action_count

            self._store_client = TeacherClient(cfg.server, token=cfg.token, retries=2)
            store = AgentStore(self._store_client, exp_id, cfg.ppo, cfg.view,
                               action_count(self.actions))  # fmt: skip
            self.book = PopulationBook(cfg.checkpoint_dir / AGENTS_DIR, store)
        self.stats = TrainingStats.for_run(roles, learners=max(len(roles), 1))
        self.learners: list[Any] = []
        self.workers: list[Any] = []
        self.evaluator: Any = None
        self.gpu = False
        self._weights_ref: Any = None
        self._eval_ref: Any = None  # the background evaluation in flight
        self._t0 = 0.0
        self._idle_rounds = 0  # rounds in a row without any rollout
        self._last_error = ""

    # -- actors --------------------------------------------------------------------------

    def start_actors(self) -> None:
        """Create the learner(s), the rollout workers and (with ``eval_interval``) the
        evaluator."""
        import ray

        from student_workers.actors import remote_classes
        from student_workers.eval_episodes import action_count

        cfg, roles = self.cfg, self.roles
        classes = remote_classes(cfg.max_restarts)
        actions = self.actions
        n_learners = len(self.ckpt_paths)
        self.gpu = ray.cluster_resources().get("GPU", 0) >= 1
        if self.book is not None:
            # One actor for the whole population: a learner per agent inside it.
            population_cls = classes["population_learner"].options(
                num_cpus=1, num_gpus=1 if self.gpu else 0
            )
            self.learners = [
                population_cls.remote(
                    cfg.ppo,
                    cfg.view,
                    cfg.seed,
                    server=cfg.server,
                    experiment=self.exp_id,
                    token=cfg.token,
                    agents_dir=str(self.book.agents_dir.resolve()),
                    n_actions=action_count(actions),
                )
            ]
        else:
            learner_cls = classes["learner"].options(
                num_cpus=1, num_gpus=1 / n_learners if self.gpu else 0
            )
            # One learner per role (or one student), each resuming from (and saved to) its own
            # file.
            self.learners = [
                learner_cls.remote(
                    cfg.ppo,
                    cfg.view,
                    cfg.seed + ROLE_SEED_STRIDE * i,
                    str(path.resolve()),
                    threads=1,
                    role_index=i if roles else None,
                    n_actions=action_count(actions),
                )
                for i, path in enumerate(self.ckpt_paths)
            ]
        self.workers = [
            classes["worker"].remote(
                cfg.server,
                self.exp_id,
                token=cfg.token,
                worker_id=f"ray-worker-{i}",
                num_envs=cfg.envs_per_worker,
                ppo=cfg.ppo,
                view=cfg.view,
                seed=cfg.seed * 100_003 + i,
                roles=roles,
                actions=actions,
                population=self.book is not None,
                run_seed=cfg.seed,
            )
            for i in range(cfg.workers)
        ]
        if cfg.eval_interval:
            # With roles it plays the first role's weights (PAIRED evaluates the protagonist);
            # with a population, latest.pt's agent (named at each call).
            self.evaluator = classes["evaluator"].remote(
                cfg.server, self.exp_id, token=cfg.token, envs=cfg.eval_envs,
                episodes=cfg.eval_episodes, ppo=cfg.ppo, view=cfg.view, seed=cfg.seed,
                role=roles[0] if roles else None, actions=actions,
            )  # fmt: skip

    def close(self) -> None:
        """Close the rollout workers, which flushes their queued reports."""
        if self._store_client is not None:
            self._store_client.close()
        if not self.workers:
            return
        import ray

        refs = [w.close.remote() for w in self.workers]
        for ref in refs:
            try:
                ray.get(ref, timeout=90)
            except Exception as exc:  # a dead worker has nothing left to flush
                logger.warning("a rollout worker did not close cleanly: %s", exc)

    @property
    def actions(self) -> str:
        """The students' action set (``cfg.actions``; navigation when left unresolved)."""
        return self.cfg.actions or "navigation"

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train until the budget (or ``max_minutes``) is spent, then evaluate and save the
        final weights.

        Returns:
            The run's summary, also written to ``summary.json``.

        Raises:
            TrainingError: every rollout was lost 3 rounds in a row, or a learner did not
                come back.
        """
        self._t0 = time.perf_counter()
        if self.book is not None:
            self._resume_population()
        self._weights_ref = self._broadcast()
        max_minutes = self.cfg.max_minutes
        deadline = None if max_minutes is None else self._t0 + 60.0 * max_minutes
        # --max-minutes counts from the start, actor start-up included, but a run always makes
        # at least one update (a budget spent starting actors must not end with nothing).
        while self._budget_left() and (
            deadline is None or self.stats.updates == 0 or time.perf_counter() < deadline
        ):
            if self.iteration():
                self._report_progress()
        return self._finish()

    def iteration(self) -> bool:
        """One synchronous PPO round: a rollout from every worker, one update of every
        learner, the new weights broadcast; then the background evaluation polled (a finished
        one taken, the next started when due) and a checkpoint written when due.

        Returns:
            False when every rollout of the round was lost (after a pause of a second).

        Raises:
            TrainingError: the third such round in a row.
        """
        tc = time.perf_counter()
        rollouts = self._collect()
        if not rollouts:
            self._idle_rounds += 1
            if self._idle_rounds >= 3:
                raise TrainingError(f"no rollout in 3 rounds; last error: {self._last_error}")
            time.sleep(1.0)
            return False
        self._idle_rounds = 0
        tu = time.perf_counter()
        self.stats.collect_s += tu - tc
        self._update(rollouts)
        self.stats.update_s += time.perf_counter() - tu
        if self.stats.first_update is None:
            self.stats.first_update = (time.perf_counter(), self.stats.env_steps)
        if self.book is not None:
            self._retire_agents()
        self._poll_evaluation()
        if self.stats.updates % self.cfg.checkpoint_interval == 0:
            self.save_checkpoints()
        return True

    def _collect(self) -> list[Any]:
        """Rollout references of this round's successful workers (their statistics counted;
        the rollouts themselves stay in the object store)."""
        import ray
        from ray.exceptions import (
            ActorUnavailableError,
            GetTimeoutError,
            RayActorError,
            RayTaskError,
        )

        calls = [w.collect.options(num_returns=2).remote(self._weights_ref) for w in self.workers]
        rollouts = []
        for i, (rollout_ref, stats_ref) in enumerate(calls):
            try:
                stats = ray.get(stats_ref, timeout=self.cfg.worker_timeout)
            except (RayActorError, ActorUnavailableError, RayTaskError, GetTimeoutError) as exc:
                self._rollout_lost(i, exc)
                continue
            rollouts.append(rollout_ref)
            self.stats.add_rollout(stats)
        return rollouts

    def _rollout_lost(self, worker: int, exc: Exception) -> None:
        """Count a lost rollout: its episodes in flight. Ray restarts the actor for the next
        round."""
        self.stats.worker_failures += 1
        self.stats.lost_env_steps += self.cfg.ppo.num_steps * self.cfg.envs_per_worker
        self._last_error = f"worker {worker}: {type(exc).__name__}: {str(exc)[:300]}"
        logger.warning("rollout lost (%s)", self._last_error)

    def _update(self, rollouts: list[Any]) -> None:
        """One update of every learner on the rollouts, then broadcast the new weights.

        A worker's node that dies after its rollout was made (its statistics already in)
        takes the rollout with it: the learner's call then fails before it runs, with the
        object lost. That round is dropped like a lost rollout (its steps counted as lost),
        and training goes on with the next one.
        """
        from ray.exceptions import ObjectLostError

        # Every learner reads the same rollouts from the object store; with roles each keeps
        # only the steps its role's policy took.
        try:
            learned = self._call_learners("update", *rollouts)
        except ObjectLostError as exc:  # raised as RayTaskError(ObjectLost...) by ray.get
            self.stats.worker_failures += 1
            lost = len(rollouts) * self.cfg.ppo.num_steps * self.cfg.envs_per_worker
            self.stats.lost_env_steps += lost
            self._last_error = f"update: {type(exc).__name__}: {str(exc)[:300]}"
            logger.warning("a rollout was lost with its node; round dropped (%s)", exc)
            learned = []
        for i, result in enumerate(learned):
            self.stats.optimizer_steps[i] += int(result["optimizer_steps"])
        if self.book is not None and learned:
            self._store_updated(learned[0])
        self._weights_ref = self._broadcast()
        self.stats.updates += bool(learned)

    def _report_progress(self) -> None:
        """Hand ``on_progress`` (if any) the run's figures as a :class:`TrainProgress`."""
        if self.on_progress is None:
            return
        stats = self.stats
        elapsed = time.perf_counter() - self._t0
        self.on_progress(
            TrainProgress(
                env_steps=stats.env_steps,
                budget_steps=self._budget_steps(),
                total_steps=self.cfg.steps,
                steps_per_s=stats.env_steps / max(elapsed, 1e-9),
                episodes=stats.students.episodes,
                mean_return=stats.students.mean_return(),
                train_solve_rate=stats.students.solve_rate(),
                test_solve_rate=(
                    stats.last_evaluation["solve_rate"] if stats.last_evaluation else None
                ),
                updates=stats.updates,
                worker_failures=stats.worker_failures,
            )
        )

    # -- budget --------------------------------------------------------------------------

    def _budget_steps(self) -> int:
        """The steps counted towards ``cfg.steps`` (see ``TrainConfig.budget``)."""
        if self.cfg.budget == "env":
            return self.stats.env_steps
        # With roles, the first role's (the one evaluated); a population's: every agent's.
        counted = self.stats.roles[self.roles[0]] if self.roles else self.stats.students
        return counted.trained_steps

    def _env_cap_reached(self) -> bool:
        """With ``budget='trained'``: the env steps reached their cap."""
        return (
            self.cfg.budget == "trained"
            and self.stats.env_steps >= TRAINED_BUDGET_ENV_CAP * self.cfg.steps
        )

    def _budget_left(self) -> bool:
        """Neither ``cfg.steps`` budget steps nor the env-step cap reached yet."""
        return not self._env_cap_reached() and self._budget_steps() < self.cfg.steps

    # -- learners ------------------------------------------------------------------------

    def _learner_call(self, i: int, method: str, *args: Any, ref: Any = None) -> Any:
        """Call learner ``i`` (``ref``: a call already made), waiting out a restart: Ray
        re-creates a dead learner (from its latest checkpoint) and the call is made again on
        the new one.

        Raises:
            TrainingError: the learner was still failing after ``worker_timeout`` seconds.
        """
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        deadline = time.monotonic() + self.cfg.worker_timeout
        while True:
            if ref is None:
                ref = getattr(self.learners[i], method).remote(*args)
            try:
                return ray.get(ref, timeout=self.cfg.worker_timeout)
            except (RayActorError, ActorUnavailableError) as exc:
                self.stats.learner_failures[i] += 1
                ref = None
                if time.monotonic() > deadline:
                    raise TrainingError(f"the learner did not come back: {exc}") from exc
                logger.warning("the learner failed during %s (%s); waiting for its restart",
                               method, type(exc).__name__)  # fmt: skip
                time.sleep(1.0)

    def _call_learners(self, method: str, *args: Any) -> list[Any]:
        """The same call on every learner, run side by side."""
        refs = [getattr(learner, method).remote(*args) for learner in self.learners]
        return [self._learner_call(i, method, *args, ref=ref) for i, ref in enumerate(refs)]

    def _broadcast(self) -> Any:
        """The learners' weights (a dict role -> weights with roles, agent id -> weights with a
        population) in the object store."""
        import ray

        # Through the driver into the object store once per round (a small network): a learner
        # lost after an update can then never hand the workers a broken reference.
        if self.book is not None:
            return ray.put(self._held("weights"))
        weights = self._call_learners("weights")
        return ray.put(dict(zip(self.roles, weights, strict=True)) if self.roles else weights[0])

    # -- evaluation and checkpoints ------------------------------------------------------

    def _poll_evaluation(self) -> None:
        """Take the background evaluation if it finished; start the next one when due."""
        import ray

        if self._eval_ref is not None and ray.wait([self._eval_ref], timeout=0)[0]:
            self._take_evaluation(self._eval_ref)
            self._eval_ref = None
        if (
            self.evaluator is not None  # None when eval_interval is 0
            and self._eval_ref is None
            and self.stats.updates % self.cfg.eval_interval == 0
            and self._can_evaluate()
        ):
            self._eval_ref = self.evaluator.evaluate.remote(
                self._weights_ref, self.stats.env_steps, agent=self._evaluated_agent()
            )

    def _final_evaluation(self) -> None:
        """Wait for the evaluation in flight, then evaluate the final weights (naming the
        checkpoint about to be written)."""
        if self._eval_ref is not None:
            self._take_evaluation(self._eval_ref)
            self._eval_ref = None
        if self.evaluator is not None and self._can_evaluate():
            self._take_evaluation(
                self.evaluator.evaluate.remote(
                    self._weights_ref,
                    self.stats.env_steps,
                    str(self.ckpt_paths[0]),
                    agent=self._evaluated_agent(),
                )
            )

    def _evaluated_agent(self) -> str | None:
        """With a population, the agent evaluated: latest.pt's (``None`` otherwise)."""
        return None if self.book is None else self.book.best()

    def _can_evaluate(self) -> bool:
        """Whether there are weights to evaluate (a population's learner may hold no agent
        yet)."""
        return self.book is None or self.book.best() is not None

    def _take_evaluation(self, ref: Any) -> None:
        """Wait for an evaluation and keep its result; a failed one is logged and skipped."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            self.stats.last_evaluation = ray.get(ref)
            self.stats.evaluations += 1
        except (RayActorError, RayTaskError) as exc:
            logger.warning("evaluation failed: %s", exc)

    def _meta(self) -> dict[str, Any]:
        """The ``meta`` of the checkpoints written now."""
        cfg = self.cfg
        return {
            "experiment": self.exp_id, "server": cfg.server, "env_steps": self.stats.env_steps,
            "view": cfg.view, "actions": self.actions, "evaluation": self.stats.last_evaluation,
            "saved_at": time.time(),
        }  # fmt: skip

    def save_checkpoints(self) -> None:
        """Write every learner's checkpoint; with roles also upload them to the server. With a
        population: every held agent's checkpoint (uploaded when changed since its last
        upload), and ``latest.pt``, the one of :meth:`PopulationBook.best
        <student_workers.population.PopulationBook.best>`."""
        from student_workers.checkpoints import save_checkpoint

        cfg, roles, meta = self.cfg, self.roles, self._meta()
        if self.book is not None:
            ckpts = self._held("checkpoints")
            self.book.save(ckpts, upload=True, **meta)
            best = self.book.best()
            if best is not None and best in ckpts:
                save_checkpoint(ckpts[best], self.ckpt_paths[0], **meta, agent_id=best)
            return
        for i, ckpt in enumerate(self._call_learners("checkpoint")):
            role = {"role": roles[i]} if roles else {}
            save_checkpoint(ckpt, self.ckpt_paths[i], **meta, **role)
        if roles:  # share each role's weights through the server (agent id = role name)
            try:
                with TeacherClient(cfg.server, token=cfg.token, retries=2) as client:
                    for role_name, path in zip(roles, self.ckpt_paths, strict=True):
                        client.put_agent(self.exp_id, role_name, path)
            except Exception as exc:  # the local checkpoints are written; training goes on
                logger.warning("uploading the role checkpoints to the server failed: %s", exc)

    # -- the population --------------------------------------------------------------------

    def _teacher_view(self) -> dict[str, Any] | None:
        """The teacher's view (``/state``'s ``teacher``); ``None`` when the service failed
        (logged: training goes on, the next round asks again)."""
        assert self._store_client is not None
        try:
            return self._store_client.state(self.exp_id).teacher
        except TeacherClientError as exc:
            logger.warning("could not read the teacher's view: %s", exc)
            return None

    def _resume_population(self) -> None:
        """Take up the view's active and candidate agents from the agents store (a restarted
        job continues the population where the last one uploaded it)."""
        from student_workers.population import alive_agents

        assert self.book is not None
        view = self._teacher_view()
        alive = sorted(alive_agents(view or {}) or ())
        if not alive:
            return
        self.book.view = view or {}
        for agent_id, resumed in self._learner_call(0, "resume", alive).items():
            if resumed:
                self.book.started(agent_id, "store")
        logger.info("resumed %d of the %d live agents from the store",
                    len(self.book.held), len(alive))  # fmt: skip

    def _held(self, method: str, *args: Any) -> dict[str, Any]:
        """The population learner's ``method`` (``weights``, ``checkpoints``): a dict by agent
        id of the held agents (or of those named in ``args``). A learner that Ray re-created
        holds none yet: it takes the missing ones up again from the store (where the driver
        uploads every update), and the call is made again; agents not in the store either
        are no longer held."""
        assert self.book is not None
        got = self._learner_call(0, method, *args)
        wanted = set(args[0]) if args and args[0] is not None else self.book.held
        missing = sorted(wanted - set(got))
        if missing:
            logger.warning("the learner lost %d agents (restarted?); taking them up from the "
                           "store", len(missing))  # fmt: skip
            self._learner_call(0, "resume", missing)
            got = self._learner_call(0, method, *args)
            self.book.held -= set(missing) - set(got)
        return got

    def _store_updated(self, result: dict[str, Any]) -> None:
        """Book an update of the population learner and store every agent it touched:
        ``agents/<id>.pt`` written and uploaded."""
        assert self.book is not None
        for agent_id, start in result["created"].items():
            self.book.started(agent_id, start["source"], start["init_from"])
        self.book.updated(result["updated"])
        if result["updated"]:
            ckpts = self._held("checkpoints", list(result["updated"]))
            self.book.save(ckpts, upload=True, **self._meta())

    def _retire_agents(self) -> None:
        """Retire the held agents the teacher's view lists neither active nor candidate: their
        final checkpoints written (and uploaded when changed), their learners dropped."""
        assert self.book is not None
        view = self._teacher_view()
        retire = [] if view is None else self.book.to_retire(view)
        if retire:
            self.book.save(self._learner_call(0, "drop", retire), upload=True, **self._meta())
            self.book.retired(retire)
            logger.info("retired agents %s", retire)

    # -- the end -------------------------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        """Final evaluation and checkpoint; the summary, written to ``summary.json``."""
        stats = self.stats
        train_end = time.perf_counter()
        wall_s = train_end - self._t0
        env_capped = self._env_cap_reached() and self._budget_steps() < self.cfg.steps
        if env_capped:
            logger.warning(
                "stopped at %d env steps (%d x --steps) with only %d trained steps: the "
                "curriculum rarely issues train-mode tasks", stats.env_steps,
                TRAINED_BUDGET_ENV_CAP, self._budget_steps(),
            )  # fmt: skip
        steady = None
        if stats.first_update is not None and stats.env_steps > stats.first_update[1]:
            first_t, first_steps = stats.first_update
            steady = (stats.env_steps - first_steps) / (train_end - first_t)
        self._final_evaluation()
        self.save_checkpoints()
        summary = self.summary(
            self._call_learners("info"), wall_s=wall_s, env_capped=env_capped, steady=steady
        )
        (self.cfg.checkpoint_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
        return summary

    def summary(
        self,
        infos: list[dict[str, Any]],
        *,
        wall_s: float,
        env_capped: bool,
        steady: float | None,
    ) -> dict[str, Any]:
        """The run's summary (``summary.json``).

        Args:
            infos: every learner's :meth:`LearnerActor.info` (a population's:
                :meth:`PopulationLearner.info
                <student_workers.population.PopulationLearner.info>`), in learner order.
            wall_s: seconds from the start of :meth:`run` to the end of the loop.
            env_capped: the ``budget='trained'`` run stopped at its env-step cap.
            steady: env steps per second after the first update (``None``: no such steps).
        """
        import ray

        cfg, roles, stats = self.cfg, self.roles, self.stats
        summary: dict[str, Any] = {
            "experiment": self.exp_id,
            "server": cfg.server,
            "workers": cfg.workers,
            "envs_per_worker": cfg.envs_per_worker,
            "env_steps": stats.env_steps,
            "trained_steps": stats.students.trained_steps,
            "budget": cfg.budget,
            "budget_env_capped": env_capped,
            # With roles: the first role's learner (the one in latest.pt); else the rounds.
            "updates": infos[0]["updates"] if roles else stats.updates,
            "optimizer_steps": stats.optimizer_steps[0],
            "episodes": stats.students.episodes,
            "mean_return_last_200": stats.students.mean_return(),
            "train_solve_rate_last_200": stats.students.solve_rate(),
            "evaluations": stats.evaluations,
            "evaluation": stats.last_evaluation,
            "worker_failures": stats.worker_failures,
            "learner_failures": sum(stats.learner_failures),
            "learner_resumed": any(info["resumed"] for info in infos),
            "lost_env_steps": stats.lost_env_steps,
            "wall_s": wall_s,
            "steps_per_s": stats.env_steps / max(wall_s, 1e-9),
            # After the first update (actors started, imports done): the rate a long run sees.
            "steady_steps_per_s": steady,
            "collect_s": stats.collect_s,  # waiting for the workers' rollouts (incl. the start)
            "update_s": stats.update_s,  # PPO updates on the learner(s)
            "learner_device": infos[0]["device"],
            "ray_gcs_address": ray.get_runtime_context().gcs_address,
            "gpu": self.gpu,
            "checkpoint": str(self.ckpt_paths[0]),
            "view": cfg.view,
            "actions": self.actions,
            "ppo": cfg.ppo.model_dump(),
        }
        if roles:
            summary["roles"] = {
                role: {
                    "updates": infos[i]["updates"],
                    "optimizer_steps": stats.optimizer_steps[i],
                    "trained_steps": stats.roles[role].trained_steps,
                    "episodes": stats.roles[role].episodes,
                    "mean_return_last_200": stats.roles[role].mean_return(),
                    "train_solve_rate_last_200": stats.roles[role].solve_rate(),
                    "learner_failures": stats.learner_failures[i],
                    "learner_resumed": infos[i]["resumed"],
                    "checkpoint": str(self.ckpt_paths[i]),
                }
                for i, role in enumerate(roles)
            }
        if self.book is not None:
            totals = {a: info["updates"] for a, info in infos[0]["agents"].items()}
            summary["latest_agent"] = self.book.best()
            summary["population"] = self.book.summary(stats.agents, totals)
            summary["agents_stored"] = self._stored_agents()
        return summary

    def _stored_agents(self) -> dict[str, int] | None:
        """The agents store's content: agent id -> version (``None`` when it failed)."""
        assert self._store_client is not None
        try:
            return {a.agent_id: a.version for a in self._store_client.list_agents(self.exp_id)}
        except TeacherClientError as exc:
            logger.warning("could not list the stored agents: %s", exc)
            return None
