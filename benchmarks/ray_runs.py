"""What the benchmarks that train the Ray students share (``minigrid_ued.py``,
``minigrid_suite.py``): their fast PPO settings, a progress line per run, the small
checkpoints they keep, and the mean and spread over seeds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from student_workers.demo_setup import demo_ppo
from student_workers.ppo import PPOConfig
from student_workers.train import TrainProgress


def fast_ppo_config(
    workers: int, envs_per_worker: int, minibatch_size: int, **overrides: Any
) -> PPOConfig:
    """The demo's fast-learning PPO settings (:func:`~student_workers.demo_setup.demo_ppo`)
    with minibatches of about ``minibatch_size`` samples, so a machine with more workers
    (bigger batches) takes proportionally more gradient steps per update instead of fewer."""
    fast = demo_ppo()
    batch = workers * envs_per_worker * fast.num_steps
    minibatches = max(1, round(batch / minibatch_size))
    return PPOConfig(**{**fast.model_dump(), "num_minibatches": minibatches, **overrides})


def progress_printer(
    method: str, seed: int, every_s: float, width: int = 11, eta: bool = True
) -> Callable[[TrainProgress], None] | None:
    """A train() progress hook that writes one line to stderr at most every ``every_s``
    seconds (a run takes minutes to hours: show it is moving and when it should end); None
    when ``every_s`` is negative (silent). ``width``: the method name's column; ``eta``:
    whether to estimate the minutes left from the step budget (not for runs cut by time)."""
    if every_s < 0:
        return None
    last = -float("inf")

    def show(p: TrainProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < every_s:
            return
        last = now
        # steps_per_s counts env steps; with --budget trained the budget grows slower
        rate = p.steps_per_s * p.budget_steps / max(p.env_steps, 1)
        minutes_left = (p.total_steps - p.budget_steps) / rate / 60 if rate > 0 else float("nan")
        total = f" / {p.total_steps:,}" if eta else ""
        left = f"  ~{max(minutes_left, 0):.0f} min left" if eta else ""
        print(
            f"{method:{width}s} seed {seed}: {p.budget_steps:,}{total} steps  {p.describe()}{left}",
            file=sys.stderr,
            flush=True,
        )

    return show


def small_checkpoint(src: Path, dst: Path) -> Path:
    """Copy a checkpoint without its optimizer state (evaluation needs the weights only)."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt.pop("optimizer", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)
    return dst


def mean_sd(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
