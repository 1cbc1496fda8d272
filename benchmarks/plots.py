"""PNG plot of a teacher-benchmark report (``autocurriculum bench teachers``): one panel per
student variant, the mean score curve of each teacher with a band of one standard deviation,
and the reference figures (docs/algorithms.md#the-simulated-student) as markers on the base
toy. Needs matplotlib (the ``plots`` extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np


def pyplot_or_none() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or None (with a warning) when matplotlib is
    not installed: benchmarks then write their JSON without a plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no plot (pip install '.[plots]')")
        return None
    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay ``fig`` out, write it to ``path`` (folders made) and close it; return ``path``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Draw ``report`` (the JSON the benchmark writes) to ``path``; return ``path``.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    variants = list(report["results"])
    cols = min(4, len(variants))
    rows = -(-len(variants) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True
    )
    colours: dict[str, Any] = {}
    cmap = plt.get_cmap("tab10")
    for ax, variant in zip(axes.flat, variants, strict=False):
        for label, entry in report["results"][variant].items():
            colour = colours.setdefault(label, cmap(len(colours) % 10))
            curves = [np.asarray(run["curve"], dtype=float) for run in entry["runs"]]
            length = min(c.shape[0] for c in curves)
            x = curves[0][:length, 0]
            ys = np.stack([c[:length, 1] for c in curves])
            mean, sd = ys.mean(axis=0), ys.std(axis=0)
            ax.plot(x, mean, color=colour, label=label, linewidth=1.6)
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.18, linewidth=0)
            ref = report.get("reference", {}).get(label) if variant == "base" else None
            if ref:
                eps = [int(k) for k in ref if k.isdigit()]
                ax.scatter(eps, [ref[str(e)] for e in eps], color=colour, marker="x", s=30)
        ax.set_title(variant)
        ax.set_xlabel("episodes")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("% cells mastered")
    for ax in list(axes.flat)[len(variants) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        f"Teachers on the simulated student ({report['seeds']} seeds, mean ± sd; "
        "x: reference figures)"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
