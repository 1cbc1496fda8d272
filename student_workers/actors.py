"""Ray plumbing of the students: the local loopback-only cluster and the actor kinds.

The classes themselves (:class:`RolloutWorker`, :class:`LearnerActor`, :class:`Evaluator`, and
for a population :class:`~student_workers.population.PopulationLearner`) are plain Python; this
module only decides how Ray runs them: resources, restarts, and the cluster they live in. Ray
is imported lazily so that the rest of the package (and the teacher service) never needs it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import torch

from student_workers.checkpoints import CheckpointError, load_checkpoint
from student_workers.ppo import PPOConfig, PPOLearner, concat_rollouts, role_rollout

logger = logging.getLogger(__name__)


class LearnerActor:
    """The PPO learner behind Ray: concatenates the workers' rollouts, updates, and serves
    the weights the driver broadcasts. With student roles there is one per role, each
    training only on the steps its role's policy took.

    Args:
        ppo: hyper-parameters.
        view: agent view size.
        seed: network init and minibatch order.
        resume_from: the driver's latest checkpoint: a learner that Ray re-creates after a
            failure starts from it (when it exists) instead of starting over. A first start
            never reads it, so a new run in an old directory starts fresh.
        threads: torch threads for the update on CPU.
        role_index: with student roles, this learner's role (its index in the experiment's
            roles): each update keeps only the rollout steps of that role
            (:func:`~student_workers.ppo.role_rollout`). ``None``: one student.
        n_actions: size of the student's action set (3: navigation, 7: all of MiniGrid's).
    """

    def __init__(
        self,
        ppo: PPOConfig,
        view: int,
        seed: int,
        resume_from: str | None = None,
        threads: int = 1,
        role_index: int | None = None,
        n_actions: int = 3,
    ) -> None:
        torch.set_num_threads(max(threads, 1))
        self.role_index = role_index
        self.learner = PPOLearner(ppo, view=view, n_actions=n_actions, seed=seed)
        self.resumed = False
        if resume_from and _restarted_actor() and Path(resume_from).is_file():
            try:
                loaded, _ = load_checkpoint(resume_from, device=str(self.learner.device))
            except CheckpointError as exc:
                logger.warning("not resuming: %s", exc)
            else:
                self.learner = loaded
                self.resumed = True

    def update(self, *rollouts: Any) -> dict[str, float]:
        """One PPO update on the rollouts (Ray resolves the object refs before the call);
        with a role, on that role's train steps only."""
        rollout = concat_rollouts(list(rollouts))
        if self.role_index is not None:
            rollout = role_rollout(rollout, self.role_index)
        stats = self.learner.update(rollout)
        stats["updates"] = float(self.learner.updates)
        return stats

    def weights(self) -> dict[str, torch.Tensor]:
        """The current weights (CPU tensors)."""
        return self.learner.weights()

    def checkpoint(self) -> dict[str, Any]:
        """The learner's checkpoint dict (CPU tensors); the driver writes it to disk."""
        return self.learner.checkpoint()

    def info(self) -> dict[str, Any]:
        """Device, updates so far and whether this incarnation resumed from a checkpoint."""
        return {
            "device": str(self.learner.device),
            "updates": self.learner.updates,
            "resumed": self.resumed,
        }


class RayConnectError(RuntimeError):
    """Joining the given Ray cluster failed."""


def _ray_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nobody listens on (ray.init retries it for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise RayConnectError(
            f"could not join the Ray cluster at {address}: nothing answers there ({exc})"
        ) from exc


def _restarted_actor() -> bool:
    """Whether this process is a Ray actor re-created after a failure (max_restarts)."""
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return False
    return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray; return True when this call started a local cluster (to shut it down).

    Without ``address`` an embedded single-node cluster starts on 127.0.0.1 only, without
    Ray's dashboard or job API (exposed Ray clusters have been hijacked in the wild).
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is what keeps Ray 2.60's processes on loopback
    (docs/architecture.md#students). With ``address`` it joins that cluster as a driver.
    """
    loopback = address is None or address.split(":")[0] in ("127.0.0.1", "localhost")
    if loopback:
        # Also when joining a loopback cluster: otherwise this driver advertises the machine's
        # primary address and never finds the cluster's raylet on 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is not None and _ray_token_available():
        # Ray 2.60 clusters require their token; a driver given an explicit address only
        # sends it in token mode, read when ray is imported (RAY_AUTH_MODE=disabled opts out).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
        try:
            extra = {"_node_ip_address": "127.0.0.1"} if loopback else {}
            ray.init(address=address, log_to_driver=False, **extra)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayConnectError(
                f"could not join the Ray cluster at {address}: {exc} (is it running, and is its "
                "auth token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token?)"
            ) from exc
        return False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        object_store_memory=256 * 1024 * 1024,
    )
    return True


def remote_classes(max_restarts: int = 10) -> dict[str, Any]:
    """The Ray actor classes: ``worker``, ``learner``, ``population_learner``, ``evaluator``.

    Rollout workers take a CPU each and restart on failure (a restarted worker opens a new
    session; its in-flight tasks expire by lease). The evaluator takes no reserved CPU (it
    runs now and then). Calls are not retried: a lost rollout is dropped, not replayed.
    """
    import ray

    from student_workers.evaluator import Evaluator
    from student_workers.population import PopulationLearner
    from student_workers.rollout_worker import RolloutWorker

    return {
        "worker": ray.remote(num_cpus=1, max_restarts=max_restarts, max_task_retries=0)(
            RolloutWorker
        ),
        "learner": ray.remote(max_restarts=max_restarts, max_task_retries=0)(LearnerActor),
        "population_learner": ray.remote(max_restarts=max_restarts, max_task_retries=0)(
            PopulationLearner
        ),
        "evaluator": ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(Evaluator),
    }
