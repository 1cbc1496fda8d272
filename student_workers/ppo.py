"""PPO for MiniGrid students, in the spirit of CleanRL's single-file PPO (DESIGN.md §6).

Everything the Ray learner and rollout workers share lives here: the hyper-parameters
(:class:`PPOConfig`, defaults of ALGORITHMS.md §2), the network (:class:`MiniGridAgent`: a
small CNN over the 5x5x3 partial view plus the direction), GAE, the clipped PPO update
(:class:`PPOLearner`), and the per-episode level scores that PLR-style teachers need
(:class:`EpisodeScorer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.distributions import Categorical


class PPOConfig(BaseModel):
    """PPO hyper-parameters. Defaults: ALGORITHMS.md §2 for gamma, lambda, clip and the
    learning rate; the rest as in the UED reference code for MiniGrid mazes."""

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


class MiniGridAgent(nn.Module):
    """Actor-critic for the standard MiniGrid observation.

    The image (view x view x 3 integer codes: object, colour, state) goes through one 3x3
    convolution; the direction is one-hot; both feed a ReLU torso, then a policy and a value
    head. Small on purpose: the reference UED agents are of this size and train on CPU.

    Args:
        view: side of the agent's view (5 in the reference setting).
        n_actions: size of the discrete action space (3 for navigation).
        hidden: width of the torso.
    """

    def __init__(self, view: int = 5, n_actions: int = 3, hidden: int = 128) -> None:
        super().__init__()
        self.view, self.n_actions = view, n_actions
        self.conv = nn.Sequential(nn.Conv2d(3, 16, kernel_size=3), nn.ReLU(), nn.Flatten())
        conv_out = 16 * (view - 2) * (view - 2)
        self.torso = nn.Sequential(nn.Linear(conv_out + 4, hidden), nn.ReLU())
        self.actor = nn.Linear(hidden, n_actions)
        self.critic = nn.Linear(hidden, 1)
        # Small initial policy logits: a near-uniform first policy (as in CleanRL).
        nn.init.orthogonal_(self.actor.weight, 0.01)
        nn.init.zeros_(self.actor.bias)
        nn.init.orthogonal_(self.critic.weight, 1.0)
        nn.init.zeros_(self.critic.bias)

    def _features(self, image: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        # MiniGrid codes are small integers (objects < 11, colours < 6, states < 3).
        x = self.conv(image.permute(0, 3, 1, 2).float() / 10.0)
        d = nn.functional.one_hot(direction.long(), 4).float()
        return self.torso(torch.cat([x, d], dim=1))

    def value(self, image: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """V(s), shape (batch,)."""
        return self.critic(self._features(image, direction)).squeeze(-1)

    def act(
        self,
        image: torch.Tensor,
        direction: torch.Tensor,
        action: torch.Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-prob, entropy, value) for a batch; samples (from ``generator``, never
        the global RNG) unless ``action`` is given or ``greedy``."""
        h = self._features(image, direction)
        dist = Categorical(logits=self.actor(h))
        if action is None:
            if greedy:
                action = dist.probs.argmax(-1)
            else:
                action = torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)
        return action, dist.log_prob(action), dist.entropy(), self.critic(h).squeeze(-1)


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


class EpisodeScorer:
    """Per-episode level scores from a worker's own value estimates (ALGORITHMS.md §2).

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
        self.agent = MiniGridAgent(view, n_actions, self.config.hidden).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.agent.parameters(), lr=self.config.learning_rate, eps=1e-5
        )
        self.updates = 0

    def finish(self, rollout: Rollout) -> Rollout:
        """Fill in the rollout's GAE advantages and returns."""
        c = self.config
        rollout.advantages, rollout.returns = compute_gae(
            rollout.rewards, rollout.values, rollout.dones, rollout.last_value,
            rollout.last_done, c.gamma, c.gae_lambda,
        )  # fmt: skip
        return rollout

    def update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs over the rollout's train-mode steps; returns loss statistics."""
        c = self.config
        mask = rollout.train_mask.reshape(-1).astype(bool)
        if not mask.any():
            return {"trained_steps": 0.0}
        dev = self.device

        def flat(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            a = a.reshape((-1, *a.shape[2:]))[mask]
            return torch.as_tensor(a, dtype=dtype, device=dev)

        images = flat(rollout.images, torch.uint8)
        directions = flat(rollout.directions, torch.long)
        actions = flat(rollout.actions, torch.long)
        old_logp = flat(rollout.logprobs)
        advantages = flat(rollout.advantages)
        returns = flat(rollout.returns)
        old_values = flat(rollout.values)
        n = images.shape[0]
        mb = max(n // c.num_minibatches, 1)
        stats: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": [], "kl": []}
        for _ in range(c.update_epochs):
            order = torch.randperm(n, generator=self.generator).to(dev)
            for start in range(0, n, mb):
                idx = order[start : start + mb]
                _, logp, ent, value = self.agent.act(images[idx], directions[idx], actions[idx])
                ratio = (logp - old_logp[idx]).exp()
                adv = advantages[idx]
                if c.norm_adv and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef))
                pg_loss = pg.mean()
                if c.clip_vloss:
                    clipped = old_values[idx] + (value - old_values[idx]).clamp(
                        -c.clip_coef, c.clip_coef
                    )
                    v_loss = (
                        0.5
                        * torch.max(
                            (value - returns[idx]) ** 2, (clipped - returns[idx]) ** 2
                        ).mean()
                    )
                else:
                    v_loss = 0.5 * ((value - returns[idx]) ** 2).mean()
                entropy = ent.mean()
                loss = pg_loss - c.ent_coef * entropy + c.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.agent.parameters(), c.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    stats["kl"].append(float(((ratio - 1) - (logp - old_logp[idx])).mean()))
                stats["pg_loss"].append(float(pg_loss.detach()))
                stats["v_loss"].append(float(v_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))
        self.updates += 1
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        out["trained_steps"] = float(n)
        return out

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
            "optimizer": self.optimizer.state_dict(),
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
        learner.optimizer.load_state_dict(ckpt["optimizer"])
        learner.updates = int(ckpt["updates"])
        return learner
