"""Students of a population teacher (POET; the contract: docs/poet.md): a changing population of
agents, one network per task ``agent_id``, trained side by side in one Ray job.

- The rollout workers hold a policy per agent of the round's broadcast and create the policy of
  an agent they meet first at a reset (:func:`find_start` gives its first weights).
- One :class:`PopulationLearner` actor holds a :class:`~student_workers.ppo.PPOLearner` per
  agent (its own weights and optimizer) and updates each on the train steps its policy took
  (:func:`~student_workers.ppo.agent_rollout`). One actor, not one per agent: a population
  outgrows the CPUs of a small machine, and the agents' networks are tiny.
- The driver (:mod:`student_workers.driver`) uploads every agent an update touched to the
  experiment's agents store, and retires the agents the teacher's view no longer lists.

Where an agent's first weights come from, in the protocol's order (workers and learner alike,
so that both start it from the same numbers): the agents store's copy of the agent (a
restarted job resumes it), else its ``init_from`` agent's weights (a held copy, else the
store's), else a fresh network seeded from the run's seed and the agent id.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from student_workers.checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint
from student_workers.ppo import MiniGridAgent, PPOConfig, PPOLearner, agent_rollout, concat_rollouts
from teacher_service.client import NotFoundError, TeacherClient, TeacherClientError

logger = logging.getLogger(__name__)

#: A network's weights (a state dict of CPU tensors).
Weights = dict[str, torch.Tensor]
#: Where an agent's first weights came from: the agents store's copy of the agent, this job's
#: own local checkpoint of it (a restarted learner only), its ``init_from`` agent's weights,
#: or a fresh network.
Source = Literal["store", "local", "init_from", "fresh"]


def agent_seed(seed: int, agent_id: str) -> int:
    """The seed of ``agent_id``'s fresh network in a run seeded ``seed``: the same in every
    process (``hash()`` of a string is salted per process; CRC-32 is not)."""
    return (seed * 1_000_003 + zlib.crc32(agent_id.encode())) % 2**31


def fresh_agent(
    ppo: PPOConfig, view: int, n_actions: int, seed: int, agent_id: str
) -> MiniGridAgent:
    """The fresh network of ``agent_id`` (the same wherever it is made), without touching the
    caller's global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(agent_seed(seed, agent_id))
        return MiniGridAgent(view, n_actions, ppo.hidden, ppo.lstm)


class AgentStart(NamedTuple):
    """Where an agent's first weights come from (:func:`find_start`)."""

    source: Source
    #: A checkpoint dict (``"weights"``, and for a stored or local one ``"optimizer"`` and
    #: ``"updates"``); ``None`` for a fresh network.
    checkpoint: dict[str, Any] | None


class AgentStore:
    """The experiment's agents store (``/v1/experiments/{id}/agents``) for one network shape.

    Args:
        client: a client of the service (its retries apply to every call).
        experiment: experiment id or name.
        ppo: the run's network shape (hidden width, LSTM).
        view: agent view size.
        n_actions: size of the action set.
    """

    def __init__(
        self, client: TeacherClient, experiment: str, ppo: PPOConfig, view: int, n_actions: int
    ) -> None:
        self.client = client
        self.experiment = experiment
        self.shape = (view, n_actions, ppo.hidden, ppo.lstm)

    def fetch(self, agent_id: str) -> dict[str, Any] | None:
        """The stored checkpoint dict of ``agent_id``; ``None`` when none is stored, or when it
        cannot be used here (unreadable, another network shape, the service unreachable: the
        caller then goes on down the protocol's list, which is logged)."""
        try:
            data = self.client.get_agent(self.experiment, agent_id)
        except NotFoundError:
            return None
        except TeacherClientError as exc:
            logger.warning("agent %s: the agents store failed (%s); not using it", agent_id, exc)
            return None
        try:
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad bytes
            logger.warning("agent %s: the stored checkpoint is unreadable (%s)", agent_id, exc)
            return None
        problem = checkpoint_problem(ckpt, self.shape)
        if problem:
            logger.warning("agent %s: not using the stored checkpoint: %s", agent_id, problem)
            return None
        return ckpt

    def put(self, agent_id: str, path: Path) -> int:
        """Upload the checkpoint file ``path`` as ``agent_id``; the stored version."""
        return self.client.put_agent(self.experiment, agent_id, path).version


def checkpoint_problem(ckpt: Any, shape: tuple[int, int, int, bool]) -> str | None:
    """Why ``ckpt`` is not a checkpoint of a network of ``shape`` = (view, actions, hidden,
    LSTM), or ``None`` when it is."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        return "not an autocurriculum student checkpoint"
    config = ckpt.get("config") or {}
    got = (ckpt.get("view"), ckpt.get("n_actions"), config.get("hidden"), config.get("lstm"))
    if got != shape:
        return f"its network (view, actions, hidden, lstm) is {got}, this run's {shape}"
    return None


def find_start(
    agent_id: str,
    init_from: str | None,
    *,
    held: Callable[[str], Weights | None],
    store: AgentStore | None,
    local: Callable[[str], dict[str, Any] | None] | None = None,
) -> AgentStart:
    """Where ``agent_id``'s first weights come from, in the protocol's order: the store's copy
    of the agent, then (``local``) this job's own file of it, then ``init_from``'s weights
    (``held``, else the store's), then a fresh network.

    Args:
        agent_id: the agent to start.
        init_from: its tasks' ``init_from`` (``None``: none).
        held: the weights of an agent the caller holds (``None`` when it does not).
        store: the agents store (``None``: none, e.g. a worker without a server).
        local: a restarted learner's own checkpoint of an agent, if it has one.
    """
    if store is not None and (ckpt := store.fetch(agent_id)) is not None:
        return AgentStart("store", ckpt)
    if local is not None and (ckpt := local(agent_id)) is not None:
        return AgentStart("local", ckpt)
    if init_from is not None and init_from != agent_id:
        weights = held(init_from)
        if weights is not None:
            return AgentStart("init_from", {"weights": weights})
        if store is not None and (ckpt := store.fetch(init_from)) is not None:
            # Only the weights: a new agent made from another gets a fresh optimizer.
            return AgentStart("init_from", {"weights": ckpt["weights"]})
        logger.warning("agent %s: no weights of its init_from %s; starting fresh", agent_id,
                       init_from)  # fmt: skip
    return AgentStart("fresh", None)


# -- the teacher's view --------------------------------------------------------------------


def alive_agents(view: Mapping[str, Any]) -> set[str] | None:
    """The agents that still get tasks: the view's ``agents.active`` and ``agents.candidates``;
    ``None`` when the view does not say (an older teacher, or no view yet)."""
    agents = view.get("agents")
    if not isinstance(agents, Mapping):
        return None
    return {str(a) for key in ("active", "candidates") for a in agents.get(key) or ()}


def best_agent(view: Mapping[str, Any], held: Collection[str]) -> str | None:
    """The agent of the active pair with the best score (``None`` scores last; ties: the oldest
    pair, the view lists them oldest first) among the ``held`` ones; ``None`` when no held agent
    has a pair."""
    pairs = [p for p in view.get("pairs") or () if p.get("agent_id") in held]
    if not pairs:
        return None
    # max() keeps the first of equal keys: the oldest pair wins a tie.
    best = max(pairs, key=lambda p: (p.get("score") is not None, p.get("score") or 0.0))
    return str(best["agent_id"])


# -- the learner ---------------------------------------------------------------------------


class PopulationLearner:
    """The PPO learners of a population, one per agent, behind one Ray actor.

    Args:
        ppo: hyper-parameters (every agent's).
        view: agent view size.
        seed: the run's seed (each agent's fresh network and minibatch order derive from it
            and its id).
        server: URL of the service whose agents store to use (when ``store`` is not given;
            a client cannot travel to a Ray actor, its settings can).
        experiment: the experiment of that store.
        token: bearer token of the service, if any.
        store: the agents store (``None`` and no ``server``: none; agents then start from
            ``init_from`` or fresh).
        agents_dir: the driver's local checkpoints of the agents (``agents/<id>.pt``): a learner
            that Ray re-created after a failure falls back on them when the store lacks an agent.
            A first start never reads them, so a new run in an old directory starts from the
            store only.
        threads: torch threads for the updates on CPU.
        n_actions: size of the action set.
        restarted: whether this is a re-created actor (``None``: ask Ray).
    """

    def __init__(
        self,
        ppo: PPOConfig,
        view: int,
        seed: int,
        *,
        server: str | None = None,
        experiment: str | None = None,
        token: str | None = None,
        store: AgentStore | None = None,
        agents_dir: str | None = None,
        threads: int = 1,
        n_actions: int = 3,
        restarted: bool | None = None,
    ) -> None:
        from student_workers.actors import _restarted_actor

        torch.set_num_threads(max(threads, 1))
        self.ppo, self.view, self.seed, self.n_actions = ppo, view, seed, n_actions
        if store is None and server is not None and experiment is not None:
            client = TeacherClient(server, token=token, retries=3)
            store = AgentStore(client, experiment, ppo, view, n_actions)
        self.store = store
        self.agents_dir = Path(agents_dir) if agents_dir else None
        self.restarted = _restarted_actor() if restarted is None else restarted
        self.learners: dict[str, PPOLearner] = {}
        self.sources: dict[str, Source] = {}  # where each held agent started from

    # -- agents ----------------------------------------------------------------------------

    def _held_weights(self, agent_id: str) -> Weights | None:
        learner = self.learners.get(agent_id)
        return None if learner is None else learner.weights()

    def _local(self, agent_id: str) -> dict[str, Any] | None:
        """A restarted learner's own checkpoint of ``agent_id`` (``None`` for a first start)."""
        if not self.restarted or self.agents_dir is None:
            return None
        path = self.agents_dir / f"{agent_id}.pt"
        try:
            learner, _ = load_checkpoint(path)
        except CheckpointError:
            return None
        return learner.checkpoint()

    def _add(self, agent_id: str, start: AgentStart) -> None:
        """Hold a learner for ``agent_id`` starting from ``start``."""
        learner = PPOLearner(
            self.ppo, view=self.view, n_actions=self.n_actions, seed=agent_seed(self.seed, agent_id)
        )
        ckpt = start.checkpoint
        if ckpt is None:  # the same fresh network the workers made
            fresh = fresh_agent(self.ppo, self.view, self.n_actions, self.seed, agent_id)
            learner.agent.load_state_dict(fresh.state_dict())
        else:
            learner.agent.load_state_dict(ckpt["weights"])
        if start.source in ("store", "local") and ckpt is not None:
            # The same agent resumed: its optimizer state and update count go on.
            learner.updates = int(ckpt.get("updates", 0))
            if "optimizer" in ckpt:
                learner.optimizer.load_state_dict(ckpt["optimizer"])
        self.learners[agent_id] = learner
        self.sources[agent_id] = start.source

    def ensure(self, agent_id: str, init_from: str | None = None) -> Source:
        """Hold ``agent_id`` (started as :func:`find_start` says when new); where it started."""
        if agent_id not in self.learners:
            start = find_start(agent_id, init_from, held=self._held_weights, store=self.store,
                               local=self._local)  # fmt: skip
            self._add(agent_id, start)
        return self.sources[agent_id]

    def resume(self, agent_ids: list[str]) -> dict[str, bool]:
        """Take up the agents of ``agent_ids`` that the store (or, restarted, a local file)
        holds and this learner does not; per agent, whether it is held now from there."""
        out = {}
        for agent_id in agent_ids:
            if agent_id not in self.learners:
                ckpt = self.store.fetch(agent_id) if self.store is not None else None
                start = AgentStart("store", ckpt) if ckpt is not None else None
                if start is None and (local := self._local(agent_id)) is not None:
                    start = AgentStart("local", local)
                if start is not None:
                    self._add(agent_id, start)
            out[agent_id] = self.sources.get(agent_id) in ("store", "local")
        return out

    def drop(self, agent_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stop holding ``agent_ids`` (retired agents); their final checkpoints."""
        out = {}
        for agent_id in agent_ids:
            learner = self.learners.pop(agent_id, None)
            self.sources.pop(agent_id, None)
            if learner is not None:
                out[agent_id] = learner.checkpoint()
        return out

    # -- the Ray interface -----------------------------------------------------------------

    def update(self, *rollouts: Any) -> dict[str, Any]:
        """One PPO update of every agent on its own train steps of the population rollouts
        (Ray resolves the object refs before the call). Agents met for the first time are
        created first, all of them before any update: an ``init_from`` agent updated in this
        round must hand its new agent the weights the workers copied.

        Returns:
            ``updated``: the agents with train steps, updated once each; ``created``: agent ->
            ``{"source", "init_from"}`` (where it started), for those new here;
            ``optimizer_steps``: of all agents together; ``trained_steps``: per updated agent.
        """
        rollout = concat_rollouts(list(rollouts))
        if rollout.agent_ids is None or rollout.init_from is None:
            raise ValueError("not a population rollout: it has no agent_ids")
        created = {}
        for agent_id, init_from in zip(rollout.agent_ids, rollout.init_from, strict=True):
            if agent_id not in self.learners:
                source = self.ensure(agent_id, init_from)
                created[agent_id] = {"source": source, "init_from": init_from}
        updated, trained, optimizer_steps = [], {}, 0.0
        for agent_id in rollout.agent_ids:
            own = agent_rollout(rollout, agent_id)
            if not own.train_mask.any():
                continue  # played only evaluate tasks: nothing to learn from
            stats = self.learners[agent_id].update(own)
            updated.append(agent_id)
            trained[agent_id] = int(stats["trained_steps"])
            optimizer_steps += stats["optimizer_steps"]
        return {
            "updated": updated,
            "created": created,
            "optimizer_steps": optimizer_steps,
            "trained_steps": trained,
        }

    def weights(self) -> dict[str, Weights]:
        """Every held agent's weights (CPU tensors), by agent id."""
        return {agent_id: learner.weights() for agent_id, learner in self.learners.items()}

    def checkpoints(self, agent_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The checkpoint dicts of ``agent_ids`` (held ones; default: all held), by agent id."""
        ids = list(self.learners) if agent_ids is None else agent_ids
        return {a: self.learners[a].checkpoint() for a in ids if a in self.learners}

    def info(self) -> dict[str, Any]:
        """Device, whether this incarnation is a restarted actor, and per held agent its
        updates and where it started."""
        first = next(iter(self.learners.values()), None)
        device = (
            str(first.device)
            if first is not None
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        return {
            "device": device,
            "resumed": self.restarted,
            "updates": sum(learner.updates for learner in self.learners.values()),
            "agents": {
                agent_id: {"updates": learner.updates, "source": self.sources[agent_id]}
                for agent_id, learner in self.learners.items()
            },
        }


# -- the driver's book of the population ---------------------------------------------------


@dataclass
class AgentRecord:
    """What the driver knows of one agent of the population in this job."""

    updates: int = 0  # this job's updates of the agent
    source: Source | None = None  # where this job started it from (first time)
    init_from: str | None = None
    resumed: bool = False  # taken up from the agents store (or a restarted learner's file)
    retirements: int = 0  # times the learner let it go (an archived agent comes back to be scored)
    uploaded: int = 0  # its updates in this job when it was last uploaded
    version: int | None = None  # the stored version of this job's latest upload


class PopulationBook:
    """The driver's side of a population: which agents the learner holds, each one's
    :class:`AgentRecord`, the local checkpoints (``<dir>/<agent_id>.pt``) and the uploads.

    Args:
        agents_dir: where every held agent's checkpoint is written.
        store: the agents store uploads go to (``None``: none).
    """

    def __init__(self, agents_dir: Path, store: AgentStore | None) -> None:
        self.agents_dir = agents_dir
        self.store = store
        self.records: dict[str, AgentRecord] = {}
        self.held: set[str] = set()  # the agents the learner holds
        self.view: Mapping[str, Any] = {}  # the teacher's latest view

    def record(self, agent_id: str) -> AgentRecord:
        """The record of ``agent_id`` (made on first use)."""
        return self.records.setdefault(agent_id, AgentRecord())

    def started(self, agent_id: str, source: Source, init_from: str | None = None) -> None:
        """The learner now holds ``agent_id``, started from ``source`` (kept from the first
        time: a restarted learner that takes it up again does not make it another agent)."""
        rec = self.record(agent_id)
        if rec.source is None:
            rec.source, rec.init_from = source, init_from
            rec.resumed = source in ("store", "local")
        self.held.add(agent_id)

    def updated(self, agent_ids: Collection[str]) -> None:
        """One more update of each of ``agent_ids``."""
        for agent_id in agent_ids:
            self.record(agent_id).updates += 1

    def path(self, agent_id: str) -> Path:
        """The local checkpoint of ``agent_id``."""
        return self.agents_dir / f"{agent_id}.pt"

    def save(self, ckpts: Mapping[str, dict[str, Any]], *, upload: bool, **meta: Any) -> None:
        """Write each agent's checkpoint locally (``save_checkpoint`` format, ``meta`` with its
        ``agent_id``) and, with ``upload``, put those changed since their last upload to the
        store. A failed upload is logged and tried again with the next save."""
        from student_workers.checkpoints import save_checkpoint

        for agent_id, ckpt in ckpts.items():
            path = save_checkpoint(ckpt, self.path(agent_id), **meta, agent_id=agent_id)
            rec = self.record(agent_id)
            if not upload or self.store is None or rec.uploaded == rec.updates:
                continue
            try:
                rec.version = self.store.put(agent_id, path)
                rec.uploaded = rec.updates
            except TeacherClientError as exc:  # kept locally; the next save tries again
                logger.warning("uploading agent %s failed: %s", agent_id, exc)

    def to_retire(self, view: Mapping[str, Any]) -> list[str]:
        """Remember ``view``; the held agents it lists neither active nor candidate (none when
        it does not list agents)."""
        self.view = view
        alive = alive_agents(view)
        return [] if alive is None else sorted(self.held - alive)

    def retired(self, agent_ids: Collection[str]) -> None:
        """The learner let ``agent_ids`` go."""
        for agent_id in agent_ids:
            self.record(agent_id).retirements += 1
            self.held.discard(agent_id)

    def best(self) -> str | None:
        """The agent of ``latest.pt``: the best-scoring active pair's held agent (ties: the
        oldest pair); without one, the held agent with the most updates (ties: the first
        met); ``None`` when none is held."""
        best = best_agent(self.view, self.held)
        if best is not None or not self.held:
            return best
        order = list(self.records)
        return max(sorted(self.held, key=order.index), key=lambda a: self.records[a].updates)

    def summary(
        self, episodes: Mapping[str, Any], learner_updates: Mapping[str, int]
    ) -> dict[str, dict[str, Any]]:
        """Per agent: this job's ``updates`` (and the learner's ``total_updates``, which counts
        those before a resume), ``trained_steps``, ``episodes``, ``mean_return_last_200``,
        where it started (``source``, ``init_from``, ``resumed_from_store``), ``retired`` (not
        held at the end), ``retirements`` and ``stored_version``.

        Args:
            episodes: per agent, its :class:`~student_workers.driver.EpisodeStats`.
            learner_updates: per agent the learner holds, its updates in all.
        """
        out = {}
        for agent_id in sorted(set(self.records) | set(episodes)):
            rec, eps = self.record(agent_id), episodes.get(agent_id)
            out[agent_id] = {
                "updates": rec.updates,
                "total_updates": learner_updates.get(agent_id),
                "trained_steps": eps.trained_steps if eps else 0,
                "episodes": eps.episodes if eps else 0,
                "mean_return_last_200": eps.mean_return() if eps else None,
                "source": rec.source,
                "init_from": rec.init_from,
                "resumed_from_store": rec.resumed,
                # retired and not taken up again since
                "retired": rec.retirements > 0 and agent_id not in self.held,
                "retirements": rec.retirements,
                "stored_version": rec.version,
            }
        return out
