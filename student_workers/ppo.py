"""PPO for MiniGrid students, in the spirit of CleanRL's single-file PPO
(docs/architecture.md#students).

Everything the Ray learner and rollout workers share lives here: the hyper-parameters
(:class:`PPOConfig`, defaults in docs/algorithms.md#robust-plr), the network
(:class:`MiniGridAgent`: a small CNN over the 5x5x3 partial view plus the direction, optionally
with an LSTM), GAE, the clipped PPO update (:class:`PPOLearner`), and the per-episode level
scores that PLR-style teachers need (:class:`EpisodeScorer`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class PPOConfig(BaseModel):
    """PPO hyper-parameters. Defaults: the papers' maze settings for gamma, lambda, clip and the
    learning rate; the rest as in the UED reference code for MiniGrid mazes
    (docs/algorithms.md#robust-plr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: float = Field(default=0.995, gt=0.0, le=1.0, description="Discount.")
    gae_lambda: float = Field(default=0.95, ge=0.0, le=1.0, description="GAE lambda.")
    clip_coef: float = Field(default=0.2, gt=0.0, le=1.0, description="PPO ratio clip.")
    learning_rate: float = Field(default=1e-4, gt=0.0, le=1.0, description="Adam step size.")
    num_steps: int = Field(default=256, ge=1, description="Rollout length per env.")
    update_epochs: int = Field(default=5, ge=1, description="Passes over each rollout.")
    num_minibatches: int = Field(default=1, ge=1, description="Minibatches per pass.")
    ent_coef: float = Field(default=0.0, ge=0.0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(default=0.5, ge=0.0, description="Value-loss coefficient.")
    max_grad_norm: float = Field(default=0.5, gt=0.0, description="Gradient clip (L2 norm).")
    clip_vloss: bool = Field(default=True, description="Clip the value loss like the policy.")
    norm_adv: bool = Field(default=True, description="Normalise advantages per minibatch.")
    hidden: int = Field(default=128, ge=8, le=4096, description="Width of the torso.")
    lstm: bool = Field(
        default=False,
        description="Add an LSTM after the torso (memory for partial observability); "
        "updates then run over whole per-env sequences, minibatched by env.",
    )
    fixed_minibatch: bool = Field(
        default=False,
        description="Keep minibatches the size of a full rollout's: a rollout whose steps "
        "are partly masked (explore-mode steps, or another student role's) takes "
        "proportionally fewer minibatch steps per pass instead of num_minibatches smaller "
        "ones. The reference Robust PLR / ACCEL code skips the update on all-exploration "
        "rollouts (and PAIRED gives each role a rollout of its own), so its optimizer steps "
        "per trained sample are those of domain randomisation; this matches them when the "
        "replay decision is made per env. Off: every pass takes num_minibatches minibatches.",
    )


# Recurrent state of a batch of envs: (h, c), each (1, batch, hidden); None without an LSTM.
AgentState = tuple[torch.Tensor, torch.Tensor] | None


def _log_prob_entropy(
    logits: torch.Tensor, action: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``action`` and entropy of the categorical policy over ``logits``:
    what ``torch.distributions.Categorical`` gives, without its per-call construction and
    validation (a large share of the acting cost for a network this small)."""
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


class MiniGridAgent(nn.Module):
    """Actor-critic for the standard MiniGrid observation.

    The image (view x view x 3 integer codes: object, colour, state) goes through one 3x3
    convolution; the direction is one-hot; both feed a ReLU torso, optionally an LSTM, then a
    policy and a value head. Small on purpose: the reference UED agents are of this size and
    train on CPU.

    Every method takes the recurrent ``state`` and a ``done`` flag per env ("this step starts
    an episode": the state is zeroed first); both are ignored (and ``None`` is returned as the
    state) by the feed-forward agent.

    Args:
        view: side of the agent's view (5 in the reference setting).
        n_actions: size of the discrete action space (3 for navigation).
        hidden: width of the torso (and of the LSTM).
        lstm: add the LSTM.
    """

    def __init__(
        self, view: int = 5, n_actions: int = 3, hidden: int = 128, lstm: bool = False
    ) -> None:
        super().__init__()
        self.view, self.n_actions, self.hidden = view, n_actions, hidden
        self.conv = nn.Sequential(nn.Conv2d(3, 16, kernel_size=3), nn.ReLU(), nn.Flatten())
        conv_out = 16 * (view - 2) * (view - 2)
        self.torso = nn.Sequential(nn.Linear(conv_out + 4, hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden) if lstm else None
        if self.lstm is not None:
            # As CleanRL's LSTM agent: orthogonal weights, zero biases.
            for name, p in self.lstm.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(p)
                else:
                    nn.init.orthogonal_(p, 1.0)
        self.actor = nn.Linear(hidden, n_actions)
        self.critic = nn.Linear(hidden, 1)
        # Small initial policy logits: a near-uniform first policy (as in CleanRL).
        nn.init.orthogonal_(self.actor.weight, 0.01)
        nn.init.zeros_(self.actor.bias)
        nn.init.orthogonal_(self.critic.weight, 1.0)
        nn.init.zeros_(self.critic.bias)

    @property
    def recurrent(self) -> bool:
        """Whether the agent carries a recurrent state."""
        return self.lstm is not None

    def initial_state(self, batch: int) -> AgentState:
        """Zero recurrent state for ``batch`` envs (``None`` without an LSTM)."""
        if self.lstm is None:
            return None
        dev = self.actor.weight.device
        z = torch.zeros(1, batch, self.hidden, device=dev)
        return (z, z.clone())

    def _features(self, image: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        # MiniGrid codes are small integers (objects < 11, colours < 6, states < 3).
        x = self.conv(image.permute(0, 3, 1, 2).float() / 10.0)
        d = nn.functional.one_hot(direction.long(), 4).float()
        return self.torso(torch.cat([x, d], dim=1))

    def _core(
        self, feats: torch.Tensor, state: AgentState, done: torch.Tensor | None
    ) -> tuple[torch.Tensor, AgentState]:
        """Run the LSTM over (T*B, hidden) features of T steps of B envs (T = 1 when acting)."""
        if self.lstm is None:
            return feats, None
        batch = feats.shape[0] if done is None else done.shape[-1]
        h, c = state if state is not None else self.initial_state(batch)
        x = feats.reshape(-1, batch, feats.shape[-1])
        done = (
            torch.zeros(x.shape[:2], device=x.device) if done is None else done.reshape(x.shape[:2])
        )
        # A new episode forgets the last: the state is zeroed where done[t] is set. Only the
        # steps where some env starts an episode need that, so the LSTM runs in one call over
        # each stretch between them (the same numbers as a step-by-step loop, and several
        # times faster for the sequence re-runs of the recurrent update).
        starts = [0, *torch.nonzero(done[1:].any(dim=1)).squeeze(1).add(1).tolist(), len(x)]
        outs = []
        for s, e in itertools.pairwise(starts):
            keep = (1.0 - done[s].float()).view(1, -1, 1)
            out, (h, c) = self.lstm(x[s:e], (h * keep, c * keep))
            outs.append(out)
        return torch.cat(outs).reshape(-1, feats.shape[-1]), (h, c)

    def value(
        self,
        image: torch.Tensor,
        direction: torch.Tensor,
        state: AgentState = None,
        done: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """V(s), shape (batch,)."""
        h, _ = self._core(self._features(image, direction), state, done)
        return self.critic(h).squeeze(-1)

    def act(
        self,
        image: torch.Tensor,
        direction: torch.Tensor,
        state: AgentState = None,
        done: torch.Tensor | None = None,
        *,
        action: torch.Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, AgentState]:
        """(action, log-prob, entropy, value, next state) for one step of a batch of envs;
        samples (from ``generator``, never the global RNG) unless ``action`` is given or
        ``greedy``."""
        h, state = self._core(self._features(image, direction), state, done)
        logits = self.actor(h)
        if action is None:
            if greedy:
                action = logits.argmax(-1)
            else:
                probs = torch.softmax(logits, -1)
                action = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        logp, entropy = _log_prob_entropy(logits, action)
        return action, logp, entropy, self.critic(h).squeeze(-1), state

    def evaluate_sequence(
        self,
        images: torch.Tensor,
        directions: torch.Tensor,
        actions: torch.Tensor,
        dones: torch.Tensor,
        state: AgentState,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob, entropy, value) of ``actions`` along (T, B) sequences that start from
        ``state``: what the recurrent PPO update re-computes. Each output is (T, B)."""
        steps, batch = actions.shape
        feats = self._features(images.reshape(-1, *images.shape[2:]), directions.reshape(-1))
        h, _ = self._core(feats, state, dones)
        logp, entropy = _log_prob_entropy(self.actor(h), actions.reshape(-1))
        shape = (steps, batch)
        value = self.critic(h).squeeze(-1)
        return logp.reshape(shape), entropy.reshape(shape), value.reshape(shape)


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    last_done: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over a (steps, envs) rollout.

    ``dones[t]`` says whether step ``t`` *started* an episode (the observation at ``t`` is a
    fresh reset), CleanRL's convention; ``last_done`` is that flag for the state after the
    rollout. Returns (advantages, returns).
    """
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    last = np.zeros(rewards.shape[1], dtype=np.float64)
    for t in reversed(range(steps)):
        if t == steps - 1:
            nonterminal = 1.0 - last_done
            next_value = last_value
        else:
            nonterminal = 1.0 - dones[t + 1]
            next_value = values[t + 1]
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


@dataclass
class Rollout:
    """One rollout of ``num_steps`` x ``num_envs`` transitions (numpy, CPU)."""

    images: np.ndarray
    directions: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    values: np.ndarray
    last_value: np.ndarray
    last_done: np.ndarray
    train_mask: np.ndarray  # (steps, envs): 0 for explore-mode steps (no gradients)
    advantages: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # LSTM agents: the (h, c) state before the first step, each (1, envs, hidden).
    initial_state: tuple[np.ndarray, np.ndarray] | None = None
    # Rollouts of several policies (student roles, e.g. PAIRED's protagonist and antagonist):
    # (steps, envs) index of the policy that acted at each step; None for a single policy.
    # A learner trains on one role's steps only: see :func:`role_rollout`.
    role_index: np.ndarray | None = None
    # Population rollouts (POET): the agent id of each ``role_index`` value, and the agent
    # each one starts from (its tasks' ``init_from``) for a learner that does not hold it yet.
    # A learner of the population trains each agent on its own steps: see :func:`agent_rollout`.
    agent_ids: tuple[str, ...] | None = None
    init_from: tuple[str | None, ...] | None = None

    @property
    def num_steps(self) -> int:
        """Steps per env."""
        return int(self.rewards.shape[0])

    @property
    def num_envs(self) -> int:
        """Envs side by side."""
        return int(self.rewards.shape[1])


def finish_rollout(rollout: Rollout, config: PPOConfig) -> Rollout:
    """Fill in ``rollout``'s GAE advantages and returns (with ``config``'s gamma and lambda)
    from the values it was collected with; returns it."""
    rollout.advantages, rollout.returns = compute_gae(
        rollout.rewards, rollout.values, rollout.dones, rollout.last_value,
        rollout.last_done, config.gamma, config.gae_lambda,
    )  # fmt: skip
    return rollout


def concat_rollouts(rollouts: list[Rollout]) -> Rollout:
    """Side-by-side rollouts of equal length (e.g. one per worker) as one, along the env axis."""
    if not rollouts:
        raise ValueError("no rollouts to concatenate")
    if len({r.num_steps for r in rollouts}) != 1:
        raise ValueError("rollouts must have the same number of steps")
    if len(rollouts) == 1:
        return rollouts[0]
    if len({r.agent_ids is None for r in rollouts}) > 1:
        raise ValueError("cannot mix population rollouts and others")
    if rollouts[0].agent_ids is not None:
        rollouts = _common_agent_ids(rollouts)
    axis = {"last_value": 0, "last_done": 0}
    out: dict[str, Any] = {}
    for name in Rollout.__dataclass_fields__:
        parts = [getattr(r, name) for r in rollouts]
        if name in ("agent_ids", "init_from"):
            out[name] = parts[0]  # the same in every part now
        elif name == "role_index":
            missing = sum(p is None for p in parts)
            if 0 < missing < len(parts):
                raise ValueError("cannot mix rollouts of one policy and of several roles")
            out[name] = None if missing else np.concatenate(parts, axis=1)
        elif name == "initial_state":
            missing = sum(p is None for p in parts)
            if 0 < missing < len(parts):
                raise ValueError("cannot mix rollouts of recurrent and feed-forward agents")
            out[name] = (
                None
                if missing
                else tuple(np.concatenate([p[i] for p in parts], axis=1) for i in (0, 1))
            )
        else:
            out[name] = np.concatenate(parts, axis=axis.get(name, 1))
    return Rollout(**out)


def _common_agent_ids(rollouts: list[Rollout]) -> list[Rollout]:
    """Population rollouts re-indexed onto one list of agent ids (the union, in order of first
    appearance): each worker numbers the agents it met in its own order."""
    ids: dict[str, str | None] = {}  # agent id -> init_from, insertion-ordered
    for r in rollouts:
        assert r.agent_ids is not None and r.init_from is not None
        for agent_id, parent in zip(r.agent_ids, r.init_from, strict=True):
            ids.setdefault(agent_id, parent)
    order = {agent_id: i for i, agent_id in enumerate(ids)}
    dtype = np.int16 if len(ids) <= np.iinfo(np.int16).max else np.int32
    out = []
    for r in rollouts:
        assert r.agent_ids is not None and r.role_index is not None
        remap = np.array([order[a] for a in r.agent_ids] or [0], dtype=dtype)
        out.append(
            replace(
                r,
                role_index=remap[r.role_index],
                agent_ids=tuple(ids),
                init_from=tuple(ids.values()),
            )
        )
    return out


def agent_rollout(rollout: Rollout, agent_id: str) -> Rollout:
    """The part of a population rollout that the learner of ``agent_id`` trains on: like
    :func:`role_rollout` for that agent's index (every step masked out when the agent did not
    act), with ``agent_ids`` and ``init_from`` cleared too.

    Raises:
        ValueError: ``rollout`` is not a population rollout.
    """
    if rollout.agent_ids is None:
        raise ValueError("the rollout has no agent_ids: it was not collected for a population")
    if agent_id in rollout.agent_ids:
        own = role_rollout(rollout, rollout.agent_ids.index(agent_id))
    else:  # the agent did not act here: nothing of this rollout is its own
        own = replace(rollout, train_mask=np.zeros_like(rollout.train_mask), role_index=None)
    return replace(own, agent_ids=None, init_from=None)


def role_rollout(rollout: Rollout, index: int) -> Rollout:
    """The part of a several-policy rollout that the learner of role ``index`` trains on.

    Returns a shallow copy (the arrays are shared) whose ``train_mask`` also masks out every
    step another role's policy took, and whose ``role_index`` is ``None``. The advantages were
    computed per env with the acting policies' values, and an episode never spans two roles
    (the role changes only at a reset), so this role's steps carry its own GAE targets.
    """
    if rollout.role_index is None:
        raise ValueError("the rollout has no role_index: it was collected by a single policy")
    mine = (rollout.role_index == index).astype(rollout.train_mask.dtype)
    return replace(rollout, train_mask=rollout.train_mask * mine, role_index=None)


class EpisodeScorer:
    """Per-episode level scores from a worker's own value estimates
    (docs/algorithms.md#robust-plr).

    Accumulates, for each env, the GAE advantages and values of the steps of its running
    episode across rollouts, and emits when the episode ends: ``positive_value_loss`` =
    mean(max(A_t, 0)), ``l1_value_loss`` = mean(|A_t|), ``mean_value`` = mean(V_t) (the
    teacher turns the latter into MaxMC with the highest return it has seen).
    """

    def __init__(self, num_envs: int) -> None:
        self._pos = np.zeros(num_envs)
        self._abs = np.zeros(num_envs)
        self._val = np.zeros(num_envs)
        self._n = np.zeros(num_envs)

    def add(self, rollout: Rollout) -> list[tuple[int, int, dict[str, float]]]:
        """Fold in a rollout whose advantages are computed; return (step, env, scores) for
        every episode that ended in it (its last step is ``step``)."""
        out = []
        steps = rollout.rewards.shape[0]
        for t in range(steps):
            ended = rollout.dones[t + 1] if t + 1 < steps else rollout.last_done
            a, v = rollout.advantages[t], rollout.values[t]
            self._pos += np.maximum(a, 0.0)
            self._abs += np.abs(a)
            self._val += v
            self._n += 1
            for e in np.flatnonzero(ended):
                n = self._n[e]
                out.append(
                    (
                        t,
                        int(e),
                        {
                            "positive_value_loss": float(self._pos[e] / n),
                            "l1_value_loss": float(self._abs[e] / n),
                            "mean_value": float(self._val[e] / n),
                        },
                    )
                )
                self._pos[e] = self._abs[e] = self._val[e] = self._n[e] = 0.0
        return out


def _to_cpu(obj: Any) -> Any:
    """A copy of nested dicts/lists of tensors with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _split(order: torch.Tensor, chunks: int) -> list[torch.Tensor]:
    """``order`` cut into ``chunks`` minibatches of near-equal size (fewer when shorter)."""
    return [idx for idx in torch.tensor_split(order, min(chunks, len(order))) if len(idx)]


# What the loss needs of each training step besides the re-computed policy and value.
_TARGETS = ("old_logp", "advantages", "returns", "old_values")


class PPOLearner:
    """The clipped PPO update on rollouts (optionally on a GPU).

    Args:
        config: hyper-parameters.
        view: agent view size.
        n_actions: action count.
        device: ``"cuda"`` when available unless given.
        seed: seeds torch's generator for the network init and minibatch order.
    """

    def __init__(
        self,
        config: PPOConfig | None = None,
        *,
        view: int = 5,
        n_actions: int = 3,
        device: str | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config or PPOConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # network init only; sampling uses the explicit generator
        self.agent = MiniGridAgent(view, n_actions, self.config.hidden, self.config.lstm).to(
            self.device
        )
        self.optimizer = torch.optim.Adam(
            self.agent.parameters(), lr=self.config.learning_rate, eps=1e-5
        )
        self.updates = 0

    def finish(self, rollout: Rollout) -> Rollout:
        """Fill in the rollout's GAE advantages and returns."""
        return finish_rollout(rollout, self.config)

    def update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs over the rollout's train-mode steps; returns loss statistics.

        Feed-forward agents take random minibatches of transitions; LSTM agents take
        minibatches of whole env sequences, re-run from the rollout's initial state (as
        CleanRL's recurrent PPO), with explore-mode steps masked out of every loss.
        """
        c = self.config
        if rollout.role_index is not None:
            raise ValueError(
                "the rollout mixes the steps of several roles' policies: pick this learner's "
                "role with role_rollout() first"
            )
        mask = rollout.train_mask.astype(bool)
        if not mask.any():
            return {"trained_steps": 0.0, "optimizer_steps": 0.0}
        dev = self.device

        def t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=dev)

        data = {
            "images": t(rollout.images, torch.uint8),
            "directions": t(rollout.directions, torch.long),
            "actions": t(rollout.actions, torch.long),
            "old_logp": t(rollout.logprobs),
            "advantages": t(rollout.advantages),
            "returns": t(rollout.returns),
            "old_values": t(rollout.values),
        }
        stats: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": [], "kl": []}
        chunks = self.minibatch_count(mask)
        if self.agent.recurrent:
            self._update_recurrent(rollout, data, t(mask, torch.bool), chunks, stats)
        else:
            flat_mask = torch.as_tensor(mask.reshape(-1), device=dev)
            flat = {k: v.reshape(-1, *v.shape[2:])[flat_mask] for k, v in data.items()}
            n = flat["actions"].shape[0]
            for _ in range(c.update_epochs):
                order = torch.randperm(n, generator=self.generator).to(dev)
                for idx in _split(order, chunks):
                    _, logp, ent, value, _ = self.agent.act(
                        flat["images"][idx], flat["directions"][idx], action=flat["actions"][idx]
                    )
                    self._step(logp, ent, value, {k: flat[k][idx] for k in _TARGETS}, stats)
        self.updates += 1
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        out["trained_steps"] = float(mask.sum())
        # Gradient steps of this update: with fixed_minibatch, what equal-compute comparisons
        # of masked (robust) and unmasked (DR) students count.
        out["optimizer_steps"] = float(len(stats["pg_loss"]))  # one entry per step taken
        return out

    def minibatch_count(self, mask: np.ndarray) -> int:
        """Minibatches per pass over a rollout whose train-mode steps are ``mask``.

        ``num_minibatches``, or with ``fixed_minibatch`` that many times the share of
        train-mode steps, rounded (at least one): the same samples per minibatch as a rollout
        without explore steps.
        """
        c = self.config
        if not c.fixed_minibatch:
            return c.num_minibatches
        # half rounds up (Python's round() would make 2.5 -> 2 but 3.5 -> 4)
        return max(1, int(c.num_minibatches * float(mask.sum()) / mask.size + 0.5))

    def _update_recurrent(
        self,
        rollout: Rollout,
        data: dict[str, torch.Tensor],
        mask: torch.Tensor,
        chunks: int,
        stats: dict[str, list[float]],
    ) -> None:
        c, dev = self.config, self.device
        if rollout.initial_state is None:
            raise ValueError("an LSTM agent needs the rollout's initial_state")
        h0, c0 = (
            torch.as_tensor(x, dtype=torch.float32, device=dev) for x in rollout.initial_state
        )
        dones = torch.as_tensor(rollout.dones, dtype=torch.float32, device=dev)
        envs = torch.nonzero(mask.any(0)).squeeze(1)  # envs with at least one train step
        for _ in range(c.update_epochs):
            order = envs[torch.randperm(len(envs), generator=self.generator).to(dev)]
            for idx in _split(order, chunks):
                logp, ent, value = self.agent.evaluate_sequence(
                    data["images"][:, idx], data["directions"][:, idx], data["actions"][:, idx],
                    dones[:, idx], (h0[:, idx], c0[:, idx]),
                )  # fmt: skip
                m = mask[:, idx]
                batch = {k: data[k][:, idx][m] for k in _TARGETS}
                self._step(logp[m], ent[m], value[m], batch, stats)

    def _step(
        self,
        logp: torch.Tensor,
        ent: torch.Tensor,
        value: torch.Tensor,
        batch: dict[str, torch.Tensor],
        stats: dict[str, list[float]],
    ) -> None:
        """One clipped-PPO gradient step on a minibatch (flat tensors of its train steps)."""
        c = self.config
        old_logp, adv, returns, old_values = (
            batch["old_logp"], batch["advantages"], batch["returns"], batch["old_values"],
        )  # fmt: skip
        ratio = (logp - old_logp).exp()
        if c.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg_loss = torch.max(
            -adv * ratio, -adv * ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef)
        ).mean()
        if c.clip_vloss:
            clipped = old_values + (value - old_values).clamp(-c.clip_coef, c.clip_coef)
            v_loss = 0.5 * torch.max((value - returns) ** 2, (clipped - returns) ** 2).mean()
        else:
            v_loss = 0.5 * ((value - returns) ** 2).mean()
        entropy = ent.mean()
        loss = pg_loss - c.ent_coef * entropy + c.vf_coef * v_loss
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.agent.parameters(), c.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            stats["kl"].append(float(((ratio - 1) - (logp - old_logp)).mean()))
        stats["pg_loss"].append(float(pg_loss.detach()))
        stats["v_loss"].append(float(v_loss.detach()))
        stats["entropy"].append(float(entropy.detach()))

    def weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the network weights (what the learner broadcasts)."""
        return {k: v.detach().cpu().clone() for k, v in self.agent.state_dict().items()}

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to evaluate or resume (loads on any device)."""
        return {
            "config": self.config.model_dump(),
            "view": self.agent.view,
            "n_actions": self.agent.n_actions,
            "weights": self.weights(),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "updates": self.updates,
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], device: str | None = None) -> PPOLearner:
        """Inverse of :meth:`checkpoint`."""
        learner = cls(
            PPOConfig(**ckpt["config"]), view=ckpt["view"], n_actions=ckpt["n_actions"],
            device=device,
        )  # fmt: skip
        learner.agent.load_state_dict(ckpt["weights"])
        if "optimizer" in ckpt:  # absent from weights-only checkpoints (evaluation only)
            learner.optimizer.load_state_dict(ckpt["optimizer"])
        learner.updates = int(ckpt["updates"])
        return learner
