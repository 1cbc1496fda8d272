"""Describe the machine a benchmark ran on (recorded in every results JSON)."""

from __future__ import annotations

import os
import platform
from typing import Any


def describe_machine(with_gpu: bool = False) -> dict[str, Any]:
    """CPU model, core count, memory, OS and Python version; with ``with_gpu`` also the GPU
    torch sees (:func:`gpu_name`; otherwise ``gpu`` is None and torch is not imported)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu_name() if with_gpu else None,
    }


def gpu_name() -> str | None:
    """The first CUDA device's name when torch is installed and sees one, else None (torch is
    imported here only, so the service never needs it)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # no torch, or a broken driver: report no GPU
        return None
