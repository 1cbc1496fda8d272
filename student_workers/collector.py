"""Collecting PPO rollouts from a gymnasium vector env of MiniGrid envs (dict observations
with ``image`` and ``direction``): the stepping loop of the rollout workers
(:mod:`student_workers.rollout_worker`), which add the teacher's tasks and reports.

One policy acts in every env, or, for teachers with student roles (PAIRED's protagonist and
antagonist), each env acts with the policy of its current role (:attr:`RolloutCollector.policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from student_workers.ppo import MiniGridAgent, Rollout


@dataclass
class EpisodeLog:
    """Finished episodes seen while collecting: (step, env index, return, length)."""

    episodes: list[tuple[int, int, float, int]] = field(default_factory=list)


class RolloutCollector:
    """Steps a vector env with a policy and keeps the state between rollouts.

    Args:
        envs: a gymnasium vector env made with ``autoreset_mode=AutoresetMode.SAME_STEP``
            (the observation returned with an episode's end is already the next episode's
            first, so every stored transition is a real one).
        seed: seeds the first reset and the action sampling generator.
        device: where the policy runs.
    """

    def __init__(self, envs: Any, seed: int = 0, device: str = "cpu") -> None:
        mode = envs.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "name", str(mode)) != "SAME_STEP":
            raise ValueError(f"the vector env must autoreset in SAME_STEP mode, not {mode}")
        self.envs = envs
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.obs, _ = envs.reset(seed=seed)
        self.num_envs = envs.num_envs
        self.done = np.ones(self.num_envs)  # each env starts an episode
        self._ret = np.zeros(self.num_envs)
        self._len = np.zeros(self.num_envs, dtype=np.int64)
        self.train_flags = np.ones(self.num_envs)  # 0 while an env plays an explore task
        # With several policies: the index of the one each env acts with. Like train_flags it
        # is set by the caller from an episode's task, so it changes only at a reset.
        self.policy = np.zeros(self.num_envs, dtype=np.int64)
        self.state: Any = None  # the agent's recurrent state (LSTM agents), kept across rollouts

    def collect(
        self,
        agent: MiniGridAgent | Sequence[MiniGridAgent],
        num_steps: int,
        after_step: Callable[[int, np.ndarray], None] | None = None,
    ) -> tuple[Rollout, EpisodeLog]:
        """``num_steps`` steps of every env with ``agent`` (no gradients).

        ``agent`` may be a sequence of agents (one per student role, all feed-forward or all
        LSTM agents of one width): env ``e`` then acts, and is valued, with
        ``agent[policy[e]]``; the rollout's ``role_index`` records which one acted at every
        step, and the bootstrap value after the last step comes from the policy of each env's
        current role. An env's recurrent state is that of the policy it acts with: the role
        changes only at a reset, where the state starts from zero anyway. With one agent (not
        a sequence) every env acts with it in one batch and ``role_index`` is ``None``.
        The sequence is read as it is at each step: ``after_step`` may append to a list (a
        population's worker adds the policy of an agent first met at a reset).

        ``after_step(t, ended)`` runs after every env step with the mask of envs whose episode
        just ended (and whose next one has already begun); a rollout worker uses it to set
        :attr:`train_flags` (and :attr:`policy`) from the new episode's task.
        """
        roles = not isinstance(agent, MiniGridAgent)
        # Not copied: a list that grows in after_step hands its new policies to the next steps.
        agents = [agent] if isinstance(agent, MiniGridAgent) else agent
        if not agents:
            raise ValueError("no agents to act with")
        if roles:
            if len({(a.recurrent, a.hidden if a.recurrent else 0) for a in agents}) > 1:
                raise ValueError(
                    "several policies must be all feed-forward or all LSTM agents of one width"
                )
            if self.policy.min() < 0 or self.policy.max() >= len(agents):
                raise ValueError(f"policy indices {self.policy} out of range for {len(agents)}")
        n = self.num_envs
        if agents[0].recurrent and self.state is None:
            self.state = agents[0].initial_state(n)
        initial_state = None
        if self.state is not None:
            initial_state = tuple(x.cpu().numpy().copy() for x in self.state)
        view = self.obs["image"].shape[1:]
        images = np.zeros((num_steps, n, *view), dtype=np.uint8)
        directions = np.zeros((num_steps, n), dtype=np.int64)
        actions = np.zeros((num_steps, n), dtype=np.int64)
        logprobs = np.zeros((num_steps, n), dtype=np.float32)
        rewards = np.zeros((num_steps, n), dtype=np.float32)
        dones = np.zeros((num_steps, n), dtype=np.float32)
        values = np.zeros((num_steps, n), dtype=np.float32)
        train_mask = np.zeros((num_steps, n), dtype=np.float32)
        role_index = np.zeros((num_steps, n), dtype=np.int16) if roles else None
        log = EpisodeLog()
        for t in range(num_steps):
            images[t], directions[t], dones[t] = self.obs["image"], self.obs["direction"], self.done
            train_mask[t] = self.train_flags
            if role_index is not None:
                role_index[t] = self.policy
            for p, envs in self._groups(roles):
                with torch.no_grad():
                    a, lp, _, v, state = agents[p].act(
                        torch.as_tensor(images[t][envs], device=self.device),
                        torch.as_tensor(directions[t][envs], device=self.device),
                        self._state_of(envs),
                        torch.as_tensor(dones[t][envs], device=self.device),
                        generator=self.generator,
                    )
                self._set_state(envs, state)
                actions[t, envs], logprobs[t, envs] = a.cpu().numpy(), lp.cpu().numpy()
                values[t, envs] = v.cpu().numpy()
            self.obs, r, term, trunc, _ = self.envs.step(actions[t])
            rewards[t] = r
            self._ret += r
            self._len += 1
            ended = np.logical_or(term, trunc)
            for e in np.flatnonzero(ended):
                log.episodes.append((t, int(e), float(self._ret[e]), int(self._len[e])))
                self._ret[e], self._len[e] = 0.0, 0
            # Same-step autoreset: the next observation already starts a new episode.
            # Truncated episodes are cut like terminated ones (no bootstrap), as in CleanRL.
            self.done = ended.astype(np.float32)
            if after_step is not None:
                after_step(t, ended)  # may switch the policy of the envs that just reset
        last_value = np.zeros(n, dtype=np.float32)
        for p, envs in self._groups(roles):
            with torch.no_grad():
                v = agents[p].value(
                    torch.as_tensor(self.obs["image"][envs], device=self.device),
                    torch.as_tensor(self.obs["direction"][envs], device=self.device),
                    self._state_of(envs),
                    torch.as_tensor(self.done[envs], device=self.device),
                )
            last_value[envs] = v.cpu().numpy()
        rollout = Rollout(
            images=images, directions=directions, actions=actions, logprobs=logprobs,
            rewards=rewards, dones=dones, values=values, last_value=last_value,
            last_done=self.done.copy(), train_mask=train_mask, initial_state=initial_state,
            role_index=role_index,
        )  # fmt: skip
        return rollout, log

    def _state_of(self, envs: np.ndarray | slice) -> Any:
        """The recurrent state of ``envs`` (``None`` for feed-forward agents)."""
        if self.state is None or isinstance(envs, slice):
            return self.state
        idx = torch.as_tensor(envs, device=self.device)
        return tuple(x[:, idx] for x in self.state)

    def _set_state(self, envs: np.ndarray | slice, state: Any) -> None:
        """Store the new recurrent state of ``envs`` (a policy's group, or all envs)."""
        if state is None:
            return
        if isinstance(envs, slice):
            self.state = state
            return
        idx = torch.as_tensor(envs, device=self.device)
        h, c = (x.clone() for x in self.state)
        h[:, idx], c[:, idx] = state
        self.state = (h, c)

    def _groups(self, roles: bool) -> list[tuple[int, np.ndarray | slice]]:
        """(policy, envs) pairs that cover every env once: one full slice for a single
        policy, or when every env has the same role (no gather and scatter then)."""
        first = int(self.policy[0]) if roles else 0
        if not roles or (self.policy == first).all():
            return [(first, slice(None))]
        return [(int(p), np.flatnonzero(self.policy == p)) for p in np.unique(self.policy)]
