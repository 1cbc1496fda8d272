"""Student checkpoints: written atomically, loaded with a clear error, and evaluated.

A checkpoint is a :meth:`~student_workers.ppo.PPOLearner.checkpoint` dict (CPU tensors, so it
loads anywhere; it records the view size and the number of actions) plus a format number and
free-form ``meta`` (training writes the action set there as ``actions``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from student_workers.eval_episodes import actions_of, make_eval_env, run_episodes
from student_workers.ppo import PPOLearner
from teacher_service.client.files import atomic_write

#: Checkpoint format version written beside the weights.
CHECKPOINT_FORMAT = 1


def save_checkpoint(
    learner: PPOLearner | dict[str, Any], path: str | os.PathLike[str], **meta: Any
) -> Path:
    """Write a learner's checkpoint (or a :meth:`PPOLearner.checkpoint` dict; CPU tensors, so
    it loads anywhere) plus ``meta`` to ``path`` atomically: a crash mid-write leaves the
    previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = dict(learner.checkpoint() if isinstance(learner, PPOLearner) else learner)
    ckpt["format"] = CHECKPOINT_FORMAT
    ckpt["meta"] = meta
    with atomic_write(path) as f:
        torch.save(ckpt, f)
    return path


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def load_checkpoint(path: str | os.PathLike[str], device: str = "cpu") -> tuple[PPOLearner, dict]:
    """(learner, meta) from a file written by :func:`save_checkpoint`, on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an autocurriculum student checkpoint")
    try:
        learner = PPOLearner.from_checkpoint(ckpt, device=device)
    except Exception as exc:
        raise CheckpointError(f"{path} does not match the student network: {exc}") from exc
    return learner, dict(ckpt.get("meta") or {})


def evaluate_checkpoint(
    path: str | os.PathLike[str],
    env: str,
    episodes: int = 100,
    *,
    greedy: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"env", "episodes", "solve_rate", "mean_return"}`` of a saved student on ``env``
    (played with the view size and the action set it was trained with).

    Raises:
        CheckpointError: ``path`` is no readable checkpoint of ours.
        EnvNotFoundError: ``env`` is neither a held-out maze nor a MiniGrid env id.
    """
    learner, _ = load_checkpoint(path)
    # The network's output size is the action set (meta's ``actions`` says the same for
    # checkpoints of training runs; older ones lack it).
    actions = actions_of(learner.agent.n_actions)
    made = make_eval_env(env, view=learner.agent.view, actions=actions)
    try:
        res = run_episodes(learner.agent, made, episodes, greedy=greedy, seed=seed)
    finally:
        made.close()
    return {
        "env": env,
        "episodes": res["episodes"],
        "solve_rate": res["solve_rate"],
        "mean_return": res["mean_return"],
    }
