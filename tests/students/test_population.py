"""Students of a population teacher (POET), without Ray: the rollout workers' policies per agent
(made lazily in the protocol's order: the store's copy, else ``init_from``'s, else a fresh
network), the population learner (an agent per ``agent_id``, each trained on its own steps),
population rollouts side by side, and the driver's book of the agents (docs/poet.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from api_schemas.tasks import Task, TaskMode
from student_workers.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from student_workers.population import (
    AgentStart,
    PopulationBook,
    PopulationLearner,
    agent_seed,
    fresh_agent,
)
from student_workers.ppo import (
    MiniGridAgent,
    PPOConfig,
    PPOLearner,
    Rollout,
    agent_rollout,
    concat_rollouts,
)
from student_workers.rollout_worker import RolloutWorker
from tests.students.helpers import FakeSession

PPO = PPOConfig(num_steps=24, hidden=16, update_epochs=1)
RUN_SEED = 7

#: (agent_id, init_from, mode) of the tasks, handed out in turn (env e starts with the e-th):
#: agent-0 is the broadcast's; agent-1 is in the store (which wins over its init_from);
#: agent-2 starts from the broadcast's agent-0; agent-3 from agent-9, found only in the store;
#: agent-4 is new (a fresh network); agent-5 only plays evaluate tasks.
AGENTS: list[tuple[str, str | None, TaskMode]] = [
    ("agent-0", None, TaskMode.TRAIN),
    ("agent-1", "agent-0", TaskMode.TRAIN),
    ("agent-2", "agent-0", TaskMode.TRAIN),
    ("agent-3", "agent-9", TaskMode.TRAIN),
    ("agent-4", None, TaskMode.TRAIN),
    ("agent-5", None, TaskMode.EVALUATE),
]


class PopulationSession(FakeSession):
    """Hands out small levels for the agents of :data:`AGENTS` in turn."""

    def __init__(self, agents: list[tuple[str, str | None, TaskMode]] = AGENTS) -> None:
        super().__init__()
        self.agents = agents

    def next_task(self, timeout: float | None = None) -> Task:
        task = super().next_task(timeout)
        agent_id, init_from, mode = self.agents[(len(self.issued) - 1) % len(self.agents)]
        task = task.model_copy(update={"agent_id": agent_id, "init_from": init_from, "mode": mode})
        self.issued[-1] = task
        return task


class FakeStore:
    """An agents store in memory: ``fetch`` gives the stored checkpoint dicts (and records who
    asked), ``put`` stores a file's checkpoint and counts versions."""

    def __init__(self, ckpts: dict[str, dict[str, Any]] | None = None) -> None:
        self.ckpts = dict(ckpts or {})
        self.fetched: list[str] = []
        self.versions: dict[str, int] = {}

    def fetch(self, agent_id: str) -> dict[str, Any] | None:
        self.fetched.append(agent_id)
        return self.ckpts.get(agent_id)

    def put(self, agent_id: str, path: Path) -> int:
        self.ckpts[agent_id] = torch.load(path, weights_only=True)
        self.versions[agent_id] = self.versions.get(agent_id, 0) + 1
        return self.versions[agent_id]


def stored_checkpoint(seed: int, updates: int = 3) -> dict[str, Any]:
    """A stored agent's checkpoint: distinct weights, an optimizer that took a step."""
    learner = PPOLearner(PPO, view=5, n_actions=3, device="cpu", seed=seed)
    loss = sum(p.sum() for p in learner.agent.parameters())
    loss.backward()
    learner.optimizer.step()
    learner.updates = updates
    return {**learner.checkpoint(), "format": CHECKPOINT_FORMAT, "meta": {}}


def sharp(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with a sharper policy, so that its actions differ from other agents'."""
    out = {k: v.clone() for k, v in weights.items()}
    out["actor.weight"] *= 100.0
    return out


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def make_worker(store: FakeStore, seed: int = 0, num_envs: int = len(AGENTS)) -> RolloutWorker:
    return RolloutWorker("unused", "x", session=PopulationSession(), num_envs=num_envs, ppo=PPO,
                         seed=seed, population=True, run_seed=RUN_SEED,
                         agent_store=store)  # fmt: skip


def population_store() -> FakeStore:
    return FakeStore({"agent-1": stored_checkpoint(11), "agent-9": stored_checkpoint(19)})


# -- rollout workers ----------------------------------------------------------------------------


def test_a_worker_makes_each_new_agents_policy_in_the_protocols_order() -> None:
    store = population_store()
    broadcast = {"agent-0": sharp(MiniGridAgent(5, 3, PPO.hidden).state_dict())}
    worker = make_worker(store)
    rollout, stats = worker.collect(broadcast)
    worker.close()
    # Every env's first agent acted (each env started with another one).
    assert set(rollout.agent_ids or ()) == {a for a, _, _ in AGENTS}
    expected = {
        "agent-0": broadcast["agent-0"],
        "agent-1": store.ckpts["agent-1"]["weights"],  # the store's copy beats init_from
        "agent-2": broadcast["agent-0"],  # init_from, from the broadcast
        "agent-3": store.ckpts["agent-9"]["weights"],  # init_from, from the store
        "agent-4": fresh_agent(PPO, 5, 3, RUN_SEED, "agent-4").state_dict(),
        "agent-5": fresh_agent(PPO, 5, 3, RUN_SEED, "agent-5").state_dict(),
    }
    for agent_id, weights in expected.items():
        assert same_weights(worker.held[agent_id].state_dict(), weights), agent_id
    assert not same_weights(expected["agent-4"], expected["agent-5"])
    # The store was asked for each new agent first, and for init_from only when not broadcast.
    assert store.fetched == ["agent-1", "agent-2", "agent-3", "agent-9", "agent-4", "agent-5"]
    sources = {a: s["source"] for a, s in stats["new_agents"].items()}
    assert sources == {"agent-1": "store", "agent-2": "init_from", "agent-3": "init_from",
                       "agent-4": "fresh", "agent-5": "fresh"}  # fmt: skip
    assert stats["new_agents"]["agent-3"]["init_from"] == "agent-9"
    parents = dict(zip(rollout.agent_ids or (), rollout.init_from or (), strict=True))
    assert parents == {a: p for a, p, _ in AGENTS}


def test_each_env_acts_with_its_agents_policy_and_the_stats_are_per_agent() -> None:
    ppo = PPO.model_copy(update={"num_steps": 64})
    broadcast = {"agent-0": sharp(MiniGridAgent(5, 3, ppo.hidden).state_dict())}
    session = PopulationSession()
    worker = RolloutWorker("unused", "x", session=session, num_envs=4, ppo=ppo, seed=0,
                           population=True, run_seed=RUN_SEED,
                           agent_store=population_store())  # fmt: skip
    switches, episodes = 0, {}
    for _ in range(3):
        rollout, stats = worker.collect(broadcast)
        assert rollout.role_index is not None and rollout.agent_ids is not None
        # An agent changes only where a new episode starts.
        changed = rollout.role_index[1:] != rollout.role_index[:-1]
        assert (rollout.dones[1:][changed] == 1).all()
        switches += int(changed.sum())
        images = torch.as_tensor(rollout.images.reshape(-1, 5, 5, 3))
        dirs = torch.as_tensor(rollout.directions.reshape(-1))
        acts = torch.as_tensor(rollout.actions.reshape(-1))
        flat = rollout.role_index.reshape(-1)
        # The agents numbered: those that acted, and those whose episode began at the end.
        acted = {rollout.agent_ids[i] for i in np.unique(flat)}
        current = {env.task.agent_id for env in worker.envs.envs}
        assert acted <= set(rollout.agent_ids) <= acted | current
        for i, agent_id in enumerate(rollout.agent_ids):
            mine = flat == i
            with torch.no_grad():
                _, logp, _, value, _ = worker.held[agent_id].act(images, dirs, action=acts)
            np.testing.assert_allclose(rollout.logprobs.reshape(-1)[mine], logp.numpy()[mine],
                                       atol=1e-5)  # fmt: skip
            np.testing.assert_allclose(rollout.values.reshape(-1)[mine], value.numpy()[mine],
                                       atol=1e-5)  # fmt: skip
            own = stats["agents"][agent_id]
            assert own["env_steps"] == int(mine.sum())
            assert own["train_steps"] == int(rollout.train_mask.reshape(-1)[mine].sum())
            episodes[agent_id] = episodes.get(agent_id, 0) + own["episodes"]
        per_agent = stats["agents"].values()
        assert sum(s["train_steps"] for s in per_agent) == stats["train_steps"]
        assert sum(s["episodes"] for s in per_agent) == stats["episodes"]
    worker.close()
    assert switches > 0  # envs moved on to other agents' tasks
    # One report per finished episode; the per-agent counts match the reported tasks' agents.
    agent_of = {t.id: t.agent_id for t in session.issued}
    reported: dict[str, int] = {}
    for r in session.reports:
        reported[agent_of[r["task_id"]]] = reported.get(agent_of[r["task_id"]], 0) + 1
    assert reported == {a: n for a, n in episodes.items() if n}


def test_fresh_agents_are_the_same_in_every_worker_and_a_round_holds_the_broadcast() -> None:
    agents = [("agent-4", None, TaskMode.TRAIN)]
    workers = [
        RolloutWorker(
            "unused",
            "x",
            session=PopulationSession(agents),
            num_envs=2,
            ppo=PPO,
            seed=s,
            population=True,
            run_seed=RUN_SEED,
            agent_store=FakeStore(),
        )
        for s in (1, 2)
    ]
    for w in workers:
        w.collect({})
    a, b = (w.held["agent-4"].state_dict() for w in workers)
    assert same_weights(a, b)  # different worker seeds, one run seed: one network
    # A later round holds exactly the broadcast's agents (the learner's): the new weights.
    newer = sharp(a)
    workers[0].collect({"agent-4": newer})
    assert set(workers[0].held) == {"agent-4"}
    assert same_weights(workers[0].held["agent-4"].state_dict(), newer)
    assert "new_agents" in workers[0].collect({"agent-4": newer})[1]
    for w in workers:
        w.close()


def test_a_population_worker_refuses_tasks_without_an_agent() -> None:
    worker = RolloutWorker("unused", "x", session=FakeSession(), num_envs=1, ppo=PPO,
                           population=True, agent_store=FakeStore())  # fmt: skip
    with pytest.raises(ValueError, match="names no agent_id"):
        worker.collect({})
    worker.close()


# -- rollouts side by side ------------------------------------------------------------------


def _rollout(role_index: list[list[int]], agent_ids: tuple[str, ...]) -> Rollout:
    idx = np.array(role_index, dtype=np.int16)
    steps, envs = idx.shape
    z = np.zeros((steps, envs), dtype=np.float32)
    return Rollout(
        images=np.zeros((steps, envs, 5, 5, 3), dtype=np.uint8),
        directions=z.astype(np.int64), actions=z.astype(np.int64), logprobs=z, rewards=z,
        dones=z, values=z, last_value=np.zeros(envs), last_done=np.zeros(envs),
        train_mask=np.ones((steps, envs), dtype=np.float32), advantages=z, returns=z,
        role_index=idx,
        agent_ids=agent_ids, init_from=tuple(f"{a}-parent" for a in agent_ids),
    )  # fmt: skip


def test_population_rollouts_of_two_workers_share_one_agent_numbering() -> None:
    a = _rollout([[0, 1], [0, 1]], ("agent-1", "agent-2"))
    b = _rollout([[0, 1], [1, 1]], ("agent-3", "agent-1"))
    both = concat_rollouts([a, b])
    assert both.agent_ids == ("agent-1", "agent-2", "agent-3")
    assert both.init_from == ("agent-1-parent", "agent-2-parent", "agent-3-parent")
    ids = np.array(both.agent_ids)[both.role_index]
    np.testing.assert_array_equal(ids, [["agent-1", "agent-2", "agent-3", "agent-1"],
                                        ["agent-1", "agent-2", "agent-1", "agent-1"]])  # fmt: skip
    own = agent_rollout(both, "agent-1")
    np.testing.assert_array_equal(own.train_mask, (ids == "agent-1").astype(np.float32))
    assert own.role_index is None and own.agent_ids is None and own.images is both.images
    assert not agent_rollout(both, "agent-7").train_mask.any()  # did not act: nothing
    with pytest.raises(ValueError, match="population rollouts and others"):
        concat_rollouts([a, agent_rollout(b, "agent-3")])
    with pytest.raises(ValueError, match="no agent_ids"):
        agent_rollout(own, "agent-1")


# -- the population learner ---------------------------------------------------------------------


def test_the_learner_starts_each_agent_where_the_workers_did_and_trains_it_on_its_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = population_store()
    learner = PopulationLearner(PPO, 5, RUN_SEED, store=store, restarted=False)
    assert learner.ensure("agent-0") == "fresh"
    before = learner.weights()
    worker = make_worker(store)
    rollouts = [worker.collect(before)[0]]
    acted = {a: agent.state_dict() for a, agent in worker.held.items()}  # every env's first
    rollouts.append(worker.collect(before)[0])
    worker.close()
    # A second learner, given the same agent-0, starts every agent from the weights the
    # worker acted with.
    twin = PopulationLearner(PPO, 5, RUN_SEED, store=store, restarted=False)
    twin.ensure("agent-0")
    assert set(acted) == {a for a, _, _ in AGENTS}
    for agent_id, init_from, _ in AGENTS:
        twin.ensure(agent_id, init_from)
        assert same_weights(twin.learners[agent_id].weights(), acted[agent_id]), agent_id

    seen: dict[int, Rollout] = {}
    real_update = PPOLearner.update

    def update(self: PPOLearner, rollout: Rollout) -> dict[str, float]:
        seen[id(self)] = rollout
        return real_update(self, rollout)

    monkeypatch.setattr(PPOLearner, "update", update)
    result = learner.update(*rollouts)
    assert {a: c["source"] for a, c in result["created"].items()} == {
        "agent-1": "store", "agent-2": "init_from", "agent-3": "init_from",
        "agent-4": "fresh", "agent-5": "fresh",
    }  # fmt: skip
    assert result["created"]["agent-2"]["init_from"] == "agent-0"
    # Each agent with train steps was updated once, on exactly its own train steps; agent-5
    # (evaluate tasks only) is held but not updated.
    both = concat_rollouts(rollouts)
    assert both.agent_ids is not None and both.role_index is not None
    assert sorted(result["updated"]) == [f"agent-{i}" for i in range(5)]
    for agent_id in result["updated"]:
        own = seen[id(learner.learners[agent_id])]
        i = both.agent_ids.index(agent_id)
        expected = ((both.role_index == i) & (both.train_mask > 0)).astype(np.float32)
        np.testing.assert_array_equal(own.train_mask, expected)
        assert result["trained_steps"][agent_id] == int(expected.sum()) > 0
    assert id(learner.learners["agent-5"]) not in seen
    weights = learner.weights()
    assert set(weights) == {a for a, _, _ in AGENTS}
    assert same_weights(weights["agent-5"], acted["agent-5"])
    assert not same_weights(weights["agent-0"], before["agent-0"])
    # A resumed agent goes on with its optimizer and update count; one made from another
    # starts a fresh optimizer.
    steps = {a: _adam_steps(learner.learners[a]) for a in ("agent-1", "agent-2")}
    n = int(result["optimizer_steps"] / len(result["updated"]))  # the same for every agent
    assert steps == {"agent-1": 1 + n, "agent-2": n}
    assert learner.learners["agent-1"].updates == 3 + 1
    assert learner.learners["agent-2"].updates == 1
    info = learner.info()
    assert info["agents"]["agent-1"] == {"updates": 4, "source": "store"}
    # Retiring an agent hands over its final checkpoint.
    final = learner.drop(["agent-3", "agent-8"])
    assert list(final) == ["agent-3"] and "agent-3" not in learner.weights()
    assert same_weights(final["agent-3"]["weights"], weights["agent-3"])


def _adam_steps(learner: PPOLearner) -> int:
    state = learner.optimizer.state_dict()["state"]
    return int(next(iter(state.values()))["step"])


def test_a_restarted_learner_takes_its_agents_up_from_the_store_or_its_files(
    tmp_path: Path,
) -> None:
    store = FakeStore({"agent-1": stored_checkpoint(11, updates=5)})
    local = PPOLearner(PPO, view=5, n_actions=3, device="cpu", seed=3)
    local.updates = 9
    save_checkpoint(local, tmp_path / "agent-7.pt", agent_id="agent-7")
    first = PopulationLearner(PPO, 5, RUN_SEED, store=store, agents_dir=str(tmp_path),
                              restarted=False)  # fmt: skip
    # A first start never reads the local files: agent-7 starts from its init_from.
    assert first.resume(["agent-1", "agent-7"]) == {"agent-1": True, "agent-7": False}
    assert first.ensure("agent-7", "agent-1") == "init_from"
    assert same_weights(first.learners["agent-7"].weights(), store.ckpts["agent-1"]["weights"])
    again = PopulationLearner(PPO, 5, RUN_SEED, store=store, agents_dir=str(tmp_path),
                              restarted=True)  # fmt: skip
    assert again.resume(["agent-1", "agent-7", "agent-8"]) == {
        "agent-1": True, "agent-7": True, "agent-8": False,
    }  # fmt: skip
    assert again.sources == {"agent-1": "store", "agent-7": "local"}
    assert again.learners["agent-7"].updates == 9 and again.learners["agent-1"].updates == 5
    assert same_weights(again.learners["agent-7"].weights(), local.weights())
    assert (
        agent_seed(RUN_SEED, "agent-7")
        == agent_seed(RUN_SEED, "agent-7")
        != agent_seed(RUN_SEED + 1, "agent-7")
    )


# -- the driver's book --------------------------------------------------------------------------


def _pair(agent_id: str, score: float | None) -> dict[str, Any]:
    return {"agent_id": agent_id, "score": score}


def test_the_book_picks_latest_retires_the_dead_and_uploads_what_changed(tmp_path: Path) -> None:
    store = FakeStore()
    book = PopulationBook(tmp_path / "agents", store)
    for agent_id in ("agent-0", "agent-1", "agent-2", "agent-3"):
        book.started(agent_id, "fresh")
    assert book.best() == "agent-0"  # no view: the most updated held agent, first met
    view = {
        "pairs": [_pair("agent-0", 0.5), _pair("agent-1", 0.8), _pair("agent-2", 0.8),
                  _pair("agent-9", 1.0), _pair("agent-3", None)],
        "agents": {"active": ["agent-0", "agent-1", "agent-2", "agent-9"],
                   "candidates": ["agent-4"], "archived": ["agent-3"]},
    }  # fmt: skip
    assert book.to_retire(view) == ["agent-3"]  # archived: neither active nor candidate
    assert book.best() == "agent-1"  # ties: the oldest pair; agent-9 is not held here
    assert book.to_retire({"pairs": []}) == []  # a view without agents retires nobody
    # Uploads: an agent is uploaded after an update, not again while unchanged.
    ckpt = PPOLearner(PPO, view=5, n_actions=3, device="cpu").checkpoint()
    book.updated(["agent-1"])
    book.save({"agent-1": ckpt, "agent-2": ckpt}, upload=True, env_steps=10)
    assert store.versions == {"agent-1": 1}
    book.save({"agent-1": ckpt}, upload=True, env_steps=20)
    assert store.versions == {"agent-1": 1}
    book.updated(["agent-1"])
    book.save({"agent-1": ckpt}, upload=True, env_steps=30)
    assert store.versions == {"agent-1": 2}
    _, meta = load_checkpoint(tmp_path / "agents" / "agent-2.pt")  # saved locally all the same
    assert meta == {"env_steps": 10, "agent_id": "agent-2"}
    book.retired(["agent-3"])
    summary = book.summary({}, {"agent-1": 2})
    assert summary["agent-3"]["retired"] is True and summary["agent-1"]["stored_version"] == 2
    assert summary["agent-3"]["retirements"] == 1
    # an archived agent comes back to be scored, then goes again: both retirements counted
    book.started("agent-3", "store")
    assert book.summary({}, {})["agent-3"]["retired"] is False and "agent-3" in book.held
    book.retired(["agent-3"])
    assert book.summary({}, {})["agent-3"]["retirements"] == 2
    assert summary["agent-1"]["updates"] == 2 and summary["agent-1"]["total_updates"] == 2
    assert book.held == {"agent-0", "agent-1", "agent-2"}
    assert AgentStart("fresh", None).checkpoint is None
