"""PAIRED's level-designing adversary (Dennis et al. 2020; docs/algorithms.md#paired) as a small
numpy policy: the teacher service never imports torch.

One tanh hidden layer maps an observation vector to logits over the level's interior tiles;
invalid tiles are masked out of the softmax. Learning is REINFORCE with a baseline (the
advantage is given by the caller), gradients are derived by hand, and steps are Adam's.
The reference adversary is a conv + LSTM net trained with PPO; this smaller policy keeps the
same action space (one tile per step) and the same reward (the regret).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

#: Parameter names, in the order they are serialised.
PARAMS = ("w1", "b1", "w2", "b2")


class Trajectory(NamedTuple):
    """One level's design episode: what the adversary saw and did at each step.

    Attributes:
        obs: (T, obs_dim) observations.
        masks: (T, n_actions) booleans, True where an action is allowed.
        actions: (T,) chosen actions.
    """

    obs: np.ndarray
    masks: np.ndarray
    actions: np.ndarray


def orthogonal(rows: int, cols: int, gain: float, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns, scaled by ``gain``
    (Saxe et al. 2014, the usual init of the reference's policies)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # a uniform draw from the orthogonal group
    if rows < cols:
        q = q.T
    return gain * q[:rows, :cols]


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log-probabilities of a softmax restricted to ``mask`` (-inf elsewhere); works on
    one row or a batch of rows."""
    z = np.where(mask, logits, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class LevelAdversary:
    """A masked categorical MLP policy with manual backprop and Adam.

    Args:
        obs_dim: length of an observation vector.
        n_actions: number of actions (the interior tiles of a level).
        hidden: tanh hidden units.
        lr: Adam step size.
        rng: source of the initial weights (the teacher's generator).
        max_grad_norm: global gradient-norm clip (the reference's PPO uses 0.5).
    """

    betas = (0.9, 0.999)
    eps = 1e-5  # the reference adversary's Adam epsilon

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: int,
        lr: float,
        rng: np.random.Generator,
        max_grad_norm: float = 0.5,
    ) -> None:
        self.obs_dim = int(obs_dim)
        self.n_actions = int(n_actions)
        self.hidden = int(hidden)
        self.lr = float(lr)
        self.max_grad_norm = float(max_grad_norm)
        # Orthogonal init: sqrt(2) on the hidden layer, 0.01 on the policy head so the first
        # levels are designed by a near-uniform policy (the reference's Categorical head).
        self.params: dict[str, np.ndarray] = {
            "w1": orthogonal(self.hidden, self.obs_dim, math.sqrt(2.0), rng),
            "b1": np.zeros(self.hidden),
            "w2": orthogonal(self.n_actions, self.hidden, 0.01, rng),
            "b2": np.zeros(self.n_actions),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.steps = 0

    # ------------------------------------------------------------------ policy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        h = np.tanh(x @ p["w1"].T + p["b1"])
        return h, h @ p["w2"].T + p["b2"]

    def log_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Masked log-probabilities of every action (-inf where masked)."""
        return masked_log_softmax(self._forward(np.asarray(obs, dtype=np.float64))[1], mask)

    def probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Masked action probabilities (0 where masked)."""
        return np.exp(self.log_probs(obs, mask))

    def act(
        self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[int, float, float]:
        """Sample an allowed action. Returns (action, its log-probability, entropy)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            raise ValueError("no allowed action")
        logp = self.log_probs(obs, mask)
        p = np.exp(logp)
        a = int(rng.choice(self.n_actions, p=p))  # masked actions have probability 0
        entropy = float(-(p[mask] * logp[mask]).sum())
        return a, float(logp[a]), entropy

    # ---------------------------------------------------------------- learning

    def loss_and_grads(
        self,
        trajectories: Sequence[Trajectory],
        advantages: Sequence[float],
        entropy_coef: float,
    ) -> tuple[float, dict[str, np.ndarray], float]:
        """REINFORCE with baseline (Williams 1992) over a batch of design episodes:
        ``loss = -(1/B) sum_b sum_t logp(a_bt) adv_b - entropy_coef * mean_bt H_bt``.

        Returns (loss, gradients by parameter name, mean entropy)."""
        if len(trajectories) != len(advantages) or not trajectories:
            raise ValueError("need one advantage per trajectory, and at least one")
        x = np.concatenate([np.asarray(t.obs, dtype=np.float64) for t in trajectories])
        mask = np.concatenate([np.asarray(t.masks, dtype=bool) for t in trajectories])
        act = np.concatenate([np.asarray(t.actions, dtype=np.int64) for t in trajectories])
        # Reward only at the end and no discount: every step's return is the level's regret.
        adv = np.concatenate(
            [
                np.full(len(t.actions), float(a))
                for t, a in zip(trajectories, advantages, strict=True)
            ]
        )
        n_traj, n_steps = len(trajectories), len(act)
        rows = np.arange(n_steps)
        if not mask[rows, act].all():
            raise ValueError("a trajectory holds a masked action")
        h, z = self._forward(x)
        logp = masked_log_softmax(z, mask)
        p = np.exp(logp)
        safe_logp = np.where(mask, logp, 0.0)
        ent = -(p * safe_logp).sum(axis=1)
        loss = -(logp[rows, act] * adv).sum() / n_traj - entropy_coef * ent.mean()
        # d logp(a)/dz = onehot(a) - p;  dH/dz = -p (log p + H)  (both 0 on masked actions).
        dz = p * (adv / n_traj)[:, None]
        dz[rows, act] -= adv / n_traj
        dz += (entropy_coef / n_steps) * p * (safe_logp + ent[:, None])
        w2 = self.params["w2"]
        da = (dz @ w2) * (1.0 - h * h)
        grads = {"w1": da.T @ x, "b1": da.sum(axis=0), "w2": dz.T @ h, "b2": dz.sum(axis=0)}
        return float(loss), grads, float(ent.mean())

    def update(
        self,
        trajectories: Sequence[Trajectory],
        advantages: Sequence[float],
        entropy_coef: float,
    ) -> dict[str, float]:
        """One policy-gradient step (global-norm clip, then Adam). Returns its statistics:
        loss, mean entropy and the gradient norm before clipping."""
        loss, grads, entropy = self.loss_and_grads(trajectories, advantages, entropy_coef)
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        scale = min(1.0, self.max_grad_norm / (norm + 1e-12)) if self.max_grad_norm > 0 else 1.0
        self.steps += 1
        b1, b2 = self.betas
        # Adam (Kingma & Ba 2015) with bias correction.
        lr_t = self.lr * math.sqrt(1.0 - b2**self.steps) / (1.0 - b1**self.steps)
        for k in PARAMS:
            g = grads[k] * scale
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g
            self.params[k] = self.params[k] - lr_t * self.m[k] / (np.sqrt(self.v[k]) + self.eps)
        return {"loss": loss, "entropy": entropy, "grad_norm": norm}

    # ------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Weights and Adam moments as float64 array copies: the snapshot codec stores them raw
        (exact, 8 bytes a number; as JSON text they made a trained PAIRED snapshot ~2.8 MB)."""
        return {
            "shape": [self.obs_dim, self.hidden, self.n_actions],
            "steps": self.steps,
            "params": {k: self.params[k].copy() for k in PARAMS},
            "m": {k: self.m[k].copy() for k in PARAMS},
            "v": {k: self.v[k].copy() for k in PARAMS},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (``ValueError`` on a shape mismatch)."""
        shape = [int(s) for s in state["shape"]]
        if shape != [self.obs_dim, self.hidden, self.n_actions]:
            raise ValueError(
                f"adversary snapshot has shape {shape}, expected "
                f"{[self.obs_dim, self.hidden, self.n_actions]}"
            )
        loaded: dict[str, dict[str, np.ndarray]] = {}
        for part in ("params", "m", "v"):
            loaded[part] = {}
            for k in PARAMS:
                arr = np.array(state[part][k], dtype=np.float64)  # a copy: no aliasing
                if arr.shape != self.params[k].shape:
                    raise ValueError(f"adversary {part}.{k} has shape {arr.shape}")
                loaded[part][k] = arr
        self.params, self.m, self.v = loaded["params"], loaded["m"], loaded["v"]
        self.steps = int(state["steps"])
