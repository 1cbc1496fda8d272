"""Cost of one GMM teacher fit cycle: scikit-learn's ``GaussianMixture`` against the
teachers' lean EM (``teacher_service/teachers/gmm_em.py``), same rows, same seeds.

A fit cycle is what ALP-GMM and Covar-GMM run every ``fit_rate`` episodes: one full-covariance
mixture per ``k = 2..10`` on the last 250 rows. Both arms run in this process with one BLAS
and one OpenMP thread (as the teachers' fits do), in interleaved rounds, and the CPU time of
each cycle is recorded. Every cycle of the lean arm is also compared with scikit-learn's
mixtures (weights, means, covariances, log-likelihood): the JSON says whether all were equal
bit for bit.

    python benchmarks/gmm_fit.py            # 15 rounds
    python benchmarks/gmm_fit.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from benchmarks.machine import describe_machine
from teacher_service.teachers.gmm_em import fit_full_gmm

RESULTS = Path(__file__).resolve().parent / "results" / "gmm_fit.json"
KS = range(2, 11)
ROWS = 250


def alp_rows(rng: np.random.Generator) -> np.ndarray:
    """ALP-GMM's rows: a 2-D task and its ALP, high on one half of the task square."""
    task = rng.random((ROWS, 2))
    alp = np.abs(rng.normal(0.0, 0.1, ROWS)) * (task[:, 0] > 0.5)
    return np.column_stack([task, alp])


def covar_rows(rng: np.random.Generator) -> np.ndarray:
    """Covar-GMM's rows: a 2-D task, the time within the fit window and the reward."""
    task = rng.random((ROWS, 2))
    t = np.arange(ROWS) / ROWS
    reward = np.clip(task[:, 0] * t + rng.normal(0.0, 0.1, ROWS), 0.0, 1.0)
    return np.column_stack([task, t, reward])


SHAPES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "alp_gmm": alp_rows,
    "covar_gmm": covar_rows,
}


def sklearn_cycle(rows: np.ndarray, seed: int) -> list[tuple[np.ndarray, ...]]:
    out = []
    for k in KS:
        gmm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed)
        gmm.fit(rows)
        ll = np.array(float(gmm.score(rows)) * rows.shape[0])
        out.append((gmm.weights_, gmm.means_, gmm.covariances_, ll))
    return out


def lean_cycle(rows: np.ndarray, seed: int) -> list[tuple[np.ndarray, ...]]:
    out = []
    for k in KS:
        f = fit_full_gmm(rows, k, seed)
        out.append((f.weights, f.means, f.covariances, np.array(f.log_likelihood)))
    return out


def timed(fn: Callable[[np.ndarray, int], Any], rows: np.ndarray, seed: int) -> tuple[float, Any]:
    start = time.process_time()
    result = fn(rows, seed)
    return (time.process_time() - start) * 1000.0, result


def run(rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(20261206)
    shapes: dict[str, Any] = {}
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, make_rows in SHAPES.items():
            sklearn_cycle(make_rows(rng), 0)  # imports and caches warm
            lean_cycle(make_rows(rng), 0)
            times: dict[str, list[float]] = {"sklearn": [], "gmm_em": []}
            identical = True
            for r in range(rounds):
                rows, seed = make_rows(rng), int(rng.integers(0, 2**31))
                # alternate which arm goes first, so neither always runs on a warmer cache
                order = [("sklearn", sklearn_cycle), ("gmm_em", lean_cycle)]
                results = {}
                for arm, fn in order if r % 2 == 0 else order[::-1]:
                    ms, results[arm] = timed(fn, rows, seed)
                    times[arm].append(ms)
                identical &= all(
                    np.array_equal(a, b)
                    for ref, got in zip(results["sklearn"], results["gmm_em"], strict=True)
                    for a, b in zip(ref, got, strict=True)
                )
            med = {arm: round(statistics.median(v), 2) for arm, v in times.items()}
            shapes[name] = {
                "rows": ROWS,
                "dims": int(rows.shape[1]),
                "cpu_ms_per_cycle": {
                    arm: {"median": m, "runs": [round(v, 2) for v in times[arm]]}
                    for arm, m in med.items()
                },
                "speedup": round(med["sklearn"] / med["gmm_em"], 3),
                "identical": identical,
            }
            print(
                f"{name:<10} sklearn {med['sklearn']:7.1f} ms  gmm_em {med['gmm_em']:7.1f} ms"
                f"  speedup x{shapes[name]['speedup']:.2f}  identical {identical}"
            )
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 rounds")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 15)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    import sklearn

    result = {
        "benchmark": "gmm_fit",
        "machine": describe_machine(),
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "ks": list(KS),
        "rounds": rounds,
        "shapes": run(rounds),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
