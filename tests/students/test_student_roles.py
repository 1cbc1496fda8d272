"""Student roles (PAIRED's protagonist and antagonist): one policy per role in the rollout
workers, one learner per role, each training only on the steps its policy took."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch

from api_schemas.tasks import Task, TaskMode
from student_workers.actors import LearnerActor
from student_workers.checkpoints import load_checkpoint
from student_workers.ppo import (
    MiniGridAgent,
    PPOConfig,
    PPOLearner,
    compute_gae,
    concat_rollouts,
    role_rollout,
)
from student_workers.rollout_worker import RolloutWorker
from teacher_service.client import TeacherClient
from teacher_service.storage.store import Store
from tests.students.helpers import FakeSession, cli, finish, logged_reports, train_args

ROLES = ("protagonist", "antagonist")
SMALL_LEVELS = {
    "kind": "level",
    "generator": "minigrid",
    "config": {"size": 9, "max_walls": 10},
}


class RoleSession(FakeSession):
    """Hands out small levels for alternating roles (every third one an explore task, so that
    every role/mode pair occurs); records reports."""

    def __init__(self, roles: tuple[str | None, ...] = ROLES) -> None:
        super().__init__()
        self.roles = roles

    def next_task(self, timeout: float | None = None) -> Task:
        task = super().next_task(timeout)
        role = self.roles[(len(self.issued) - 1) % len(self.roles)]
        task = task.model_copy(update={"role": role, "agent_id": role})
        self.issued[-1] = task
        return task


def _role_weights(worker: RolloutWorker) -> dict[str, dict[str, torch.Tensor]]:
    """Clearly different networks per role (the antagonist's are re-initialised)."""
    out = {}
    for i, role in enumerate(ROLES):
        torch.manual_seed(100 + i)
        agent = MiniGridAgent(5, 3, worker.ppo.hidden, worker.ppo.lstm)
        with torch.no_grad():  # a non-trivial policy, so that the two roles act differently
            agent.actor.weight.mul_(100.0)
        out[role] = {k: v.clone() for k, v in agent.state_dict().items()}
    return out


def _recording(worker: RolloutWorker) -> list[list[Task]]:
    """Record, for every env step, the task each env was playing when it acted."""
    acting: list[list[Task]] = []
    real_step = worker.envs.step

    def step(actions: Any) -> Any:
        acting.append([worker.envs.envs[e].task for e in range(worker.envs.num_envs)])
        return real_step(actions)

    worker.envs.step = step  # the collector steps the same vector env object
    return acting


def test_each_env_acts_with_its_roles_policy_and_each_role_trains_on_its_own_steps() -> None:
    session = RoleSession()
    ppo = PPOConfig(num_steps=40, hidden=16)
    worker = RolloutWorker("unused", "x", session=session, num_envs=4, ppo=ppo, seed=3,
                           roles=ROLES)  # fmt: skip
    weights = _role_weights(worker)
    agents = {}
    for role in ROLES:
        agents[role] = MiniGridAgent(5, 3, ppo.hidden)
        agents[role].load_state_dict(weights[role])
    acting = _recording(worker)
    seen_roles: set[str] = set()
    steps_per_role = dict.fromkeys(ROLES, 0)
    for _ in range(5):
        acting.clear()
        rollout, stats = worker.collect(weights)
        assert rollout.role_index is not None and len(acting) == ppo.num_steps
        tasks = np.array(acting, dtype=object)  # (steps, envs) task that acted
        role_of = np.vectorize(lambda t: ROLES.index(t.role))(tasks)
        train_of = np.vectorize(lambda t: t.mode == TaskMode.TRAIN)(tasks)
        # Every step is attributed to the role of the task its env was playing.
        np.testing.assert_array_equal(rollout.role_index, role_of)
        np.testing.assert_array_equal(rollout.train_mask, train_of.astype(np.float32))
        # A role changes only where a new episode starts (its first step is a reset).
        changed = rollout.role_index[1:] != rollout.role_index[:-1]
        assert (rollout.dones[1:][changed] == 1).all()
        # Log-probs and values are the acting policy's (and differ from the other one's).
        images = torch.as_tensor(rollout.images.reshape(-1, 5, 5, 3))
        dirs = torch.as_tensor(rollout.directions.reshape(-1))
        acts = torch.as_tensor(rollout.actions.reshape(-1))
        flat_role = rollout.role_index.reshape(-1)
        for i, role in enumerate(ROLES):
            with torch.no_grad():
                _, logp, _, value, _ = agents[role].act(images, dirs, action=acts)
            mine = flat_role == i
            seen_roles |= {role} if mine.any() else set()
            np.testing.assert_allclose(
                rollout.logprobs.reshape(-1)[mine], logp.numpy()[mine], rtol=1e-5, atol=1e-5
            )
            np.testing.assert_allclose(
                rollout.values.reshape(-1)[mine], value.numpy()[mine], rtol=1e-5, atol=1e-5
            )
            if mine.any():
                other = agents[ROLES[1 - i]]
                with torch.no_grad():
                    other_value = other.value(images[mine], dirs[mine]).numpy()
                assert np.abs(other_value - rollout.values.reshape(-1)[mine]).max() > 1e-4
            # Each role's rollout masks out every step the other policy took.
            own = role_rollout(rollout, i)
            assert own.role_index is None and own.images is rollout.images
            expected = ((rollout.role_index == i) & train_of).astype(np.float32)
            np.testing.assert_array_equal(own.train_mask, expected)
            assert stats["roles"][role]["train_steps"] == int(expected.sum())
            steps_per_role[role] += int(mine.sum())
        # The bootstrap value after the last step is the current role's policy's.
        for e in range(worker.envs.num_envs):
            role = worker.envs.envs[e].task.role
            obs = worker.collector.obs
            with torch.no_grad():
                v = agents[role].value(
                    torch.as_tensor(obs["image"][e : e + 1]),
                    torch.as_tensor(obs["direction"][e : e + 1]),
                )
            assert rollout.last_value[e] == pytest.approx(float(v[0]), abs=1e-5)
        # GAE over the whole rollout with the acting policies' values.
        adv, _ = compute_gae(rollout.rewards, rollout.values, rollout.dones, rollout.last_value,
                             rollout.last_done, ppo.gamma, ppo.gae_lambda)  # fmt: skip
        np.testing.assert_allclose(rollout.advantages, adv, rtol=1e-6)
        assert sum(s["train_steps"] for s in stats["roles"].values()) == stats["train_steps"]
        assert sum(s["episodes"] for s in stats["roles"].values()) == stats["episodes"]
    worker.close()
    assert seen_roles == set(ROLES) and min(steps_per_role.values()) > 0
    # One report per finished episode with the usual scores; the per-role episode counts
    # match the roles of the reported tasks.
    role_of_task = {t.id: t.role for t in session.issued}
    ids = [r["task_id"] for r in session.reports]
    assert ids and len(ids) == len(set(ids)) == worker.totals["episodes"]
    for r in session.reports:
        assert set(r["scores"]) == {"positive_value_loss", "l1_value_loss", "mean_value"}
        assert all(math.isfinite(v) for v in r["scores"].values())
    assert {role_of_task[i] for i in ids} == set(ROLES)


def test_a_role_learner_updates_only_on_its_own_roles_steps() -> None:
    session = RoleSession()
    ppo = PPOConfig(num_steps=24, hidden=16, update_epochs=1)
    worker = RolloutWorker("unused", "x", session=session, num_envs=3, ppo=ppo, seed=0,
                           roles=ROLES)  # fmt: skip
    weights = _role_weights(worker)
    rollouts = [worker.collect(weights)[0] for _ in range(2)]
    worker.close()
    both = concat_rollouts(rollouts)
    assert both.role_index is not None and both.role_index.shape == (24, 6)
    with pytest.raises(ValueError, match="several roles"):
        concat_rollouts([rollouts[0], role_rollout(rollouts[1], 0)])
    # A plain learner refuses steps of several policies.
    with pytest.raises(ValueError, match="role_rollout"):
        PPOLearner(ppo, device="cpu").update(both)
    for i in range(len(ROLES)):
        learner = LearnerActor(ppo, 5, seed=i, role_index=i)
        stats = learner.update(*rollouts)
        mine = int(((both.role_index == i) & (both.train_mask > 0)).sum())
        assert mine > 0 and stats["trained_steps"] == mine and stats["updates"] == 1.0
    with pytest.raises(ValueError, match="single policy"):
        role_rollout(role_rollout(both, 0), 0)


def test_lstm_students_per_role_keep_each_envs_state_and_re_run_exactly() -> None:
    """LSTM agents with roles: each env carries the state of the policy it acts with (zeroed
    where a role's episode starts), so each role's learner re-computes, from the rollout's
    initial state, exactly the log-probs and values its policy had on its own steps, also
    for episodes that began in an earlier rollout."""
    session = RoleSession()
    ppo = PPOConfig(num_steps=30, hidden=16, lstm=True, update_epochs=1)
    worker = RolloutWorker("unused", "x", session=session, num_envs=4, ppo=ppo, seed=5,
                           roles=ROLES)  # fmt: skip
    weights = _role_weights(worker)
    agents = {}
    for role in ROLES:
        agents[role] = MiniGridAgent(5, 3, ppo.hidden, lstm=True)
        agents[role].load_state_dict(weights[role])
    rollouts = [worker.collect(weights)[0] for _ in range(4)]
    worker.close()
    crossing = 0  # envs whose first steps continue an episode of the previous rollout
    for rollout in rollouts[1:]:
        assert rollout.initial_state is not None and rollout.role_index is not None
        assert np.abs(rollout.initial_state[0]).sum() > 0
        crossing += int((rollout.dones[0] == 0).sum())
        for i, role in enumerate(ROLES):
            own = role_rollout(rollout, i)
            with torch.no_grad():
                logp, _, value = agents[role].evaluate_sequence(
                    torch.as_tensor(own.images), torch.as_tensor(own.directions),
                    torch.as_tensor(own.actions), torch.as_tensor(own.dones),
                    tuple(torch.as_tensor(x) for x in own.initial_state),
                )  # fmt: skip
            mine = rollout.role_index == i
            assert mine.any()
            np.testing.assert_allclose(logp.numpy()[mine], rollout.logprobs[mine], atol=1e-5)
            np.testing.assert_allclose(value.numpy()[mine], rollout.values[mine], atol=1e-5)
            # the other role's steps were not this policy's: its values differ there
            assert np.abs(value.numpy()[~mine] - rollout.values[~mine]).max() > 1e-4
    assert crossing > 0
    for i in range(len(ROLES)):  # each role's LSTM learner trains on its own steps only
        stats = LearnerActor(ppo, 5, seed=i, role_index=i).update(*rollouts)
        mine = sum(int(((r.role_index == i) & (r.train_mask > 0)).sum()) for r in rollouts)
        assert mine > 0 and stats["trained_steps"] == mine


def test_the_worker_refuses_tasks_without_one_of_its_roles() -> None:
    ppo = PPOConfig(num_steps=8, hidden=16)
    with pytest.raises(ValueError, match="role None"):
        RolloutWorker("unused", "x", session=RoleSession((None,)), num_envs=1, ppo=ppo,
                      roles=ROLES)  # fmt: skip
    with pytest.raises(ValueError, match="role 'villain'"):
        RolloutWorker("unused", "x", session=RoleSession(("villain",)), num_envs=1, ppo=ppo,
                      roles=ROLES)  # fmt: skip
    # the policies of one collector are all feed-forward or all LSTM agents of one width
    worker = RolloutWorker("unused", "x", session=RoleSession(), num_envs=2, ppo=ppo,
                           roles=ROLES)  # fmt: skip
    mixed = [MiniGridAgent(5, 3, 16), MiniGridAgent(5, 3, 16, lstm=True)]
    with pytest.raises(ValueError, match="all feed-forward or all LSTM"):
        worker.collector.collect(mixed, 4)
    worker.close()
    # Without roles, a worker ignores task roles: one policy, no role index.
    worker = RolloutWorker("unused", "x", session=RoleSession(), num_envs=2, ppo=ppo)
    rollout, stats = worker.collect(worker.agent.state_dict())
    worker.close()
    assert rollout.role_index is None and "roles" not in stats


def test_paired_experiment_trains_a_learner_per_role(server, tmp_path: Path) -> None:
    client = TeacherClient(server.url)
    exp = client.create_experiment("dr", SMALL_LEVELS, {"kind": "paired"})
    assert exp.teacher.ROLES == ROLES
    ckpt = tmp_path / "ckpt"
    # LSTM students, as the reference PAIRED agents (feed-forward roles: the UED smoke test)
    code, out, err = finish(cli(*train_args(server.url, ckpt, 3000, "--lstm")))
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["env_steps"] >= 3000 and summary["worker_failures"] == 0
    assert json.loads((ckpt / "summary.json").read_text()) == summary
    per_role = summary["roles"]
    assert set(per_role) == set(ROLES)
    assert sum(r["episodes"] for r in per_role.values()) == summary["episodes"]
    assert sum(r["trained_steps"] for r in per_role.values()) == summary["trained_steps"]
    assert summary["updates"] == per_role["protagonist"]["updates"]
    for role, r in per_role.items():
        assert r["updates"] >= 3 and r["episodes"] > 0 and r["trained_steps"] > 0, role
        assert r["learner_failures"] == 0 and r["learner_resumed"] is False

    # Both checkpoints exist and load; latest.pt is the protagonist (the one evaluated).
    files = {"protagonist": ckpt / "latest.pt", "antagonist": ckpt / "antagonist.pt"}
    learners = {}
    for role, path in files.items():
        assert per_role[role]["checkpoint"] == str(path)
        learners[role], meta = load_checkpoint(path)
        assert meta["role"] == role and meta["env_steps"] == summary["env_steps"]
        assert learners[role].agent.recurrent
        assert learners[role].updates == per_role[role]["updates"]
    assert summary["checkpoint"] == str(files["protagonist"])
    a, b = (learners[r].agent.critic.weight for r in ROLES)
    assert not torch.equal(a, b)  # two students, not one saved twice
    assert summary["evaluation"]["posted"] is True
    # The final weights of both roles are on the server too (agent id = role), byte-exact.
    stored = {a.agent_id: a for a in client.list_agents("dr")}
    assert set(stored) == set(ROLES)
    for role, path in files.items():
        assert client.get_agent("dr", role) == path.read_bytes()

    # Every finished episode was reported with its scores, for tasks of both roles.
    tasks = _task_roles(server.db, exp.id)
    reports = logged_reports(server.db, exp.id)
    assert len(reports) == summary["episodes"] == client.state("dr").counters.reports_accepted
    by_role = dict.fromkeys(ROLES, 0)
    for r in reports:
        assert set(r["scores"]) == {"positive_value_loss", "l1_value_loss", "mean_value"}
        by_role[tasks[r["i"]]] += 1
    assert by_role == {role: per_role[role]["episodes"] for role in ROLES}

    code, out, err = finish(cli("evaluate", "--checkpoint", str(files["antagonist"]),
                                "--env", "MiniGrid-Empty-5x5-v0", "--episodes", "2"))  # fmt: skip
    assert code == 0 and json.loads(out)["episodes"] == 2, err


def _task_roles(db: str, exp_id: str) -> dict[int, str | None]:
    """Issue index -> role of every task the service logged as issued (logged reports name
    their task by this index, ``i``)."""
    store = Store(db)
    try:
        out = {}
        for ev in store.iter_events(exp_id):
            if ev.kind == "tasks":
                payload = orjson.loads(ev.payload)
                for k, t in enumerate(payload["tasks"]):
                    out[payload["first"] + k] = t["role"]
        return out
    finally:
        store.close()
