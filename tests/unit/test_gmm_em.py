"""The lean EM of the GMM teachers against scikit-learn's GaussianMixture: same mixtures, bit
for bit, on the installed versions, including the failures and the non-converged case."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from teacher_service.teachers.gmm_em import fit_full_gmm


def datasets() -> list[tuple[str, np.ndarray]]:
    """Row sets shaped like the teachers' (uniform tasks with an ALP column, blobs, Covar-GMM's
    wider rows), plus edge sizes."""
    rng = np.random.default_rng(20261206)
    out: list[tuple[str, np.ndarray]] = []
    for i in range(6):
        task = rng.random((250, 2))
        alp = np.abs(rng.normal(0.0, 0.1, 250)) * (task[:, :1].ravel() > 0.5)
        out.append((f"alp-{i}", np.column_stack([task, alp])))
    for i in range(4):
        d = 2 + i
        centres = rng.random((4, d))
        blobs = centres[rng.integers(0, 4, 180)] + rng.normal(0, 0.02, (180, d))
        out.append((f"blobs-{d}d", blobs))
    for i in range(3):
        rows = np.column_stack([rng.random((250, 3)), np.linspace(0, 1, 250), rng.random(250)])
        out.append((f"covar-{i}", rows))
    out.append(("one-dim", rng.random((60, 1))))
    out.append(("few-rows", rng.random((12, 3))))
    return out


def reference(rows: np.ndarray, k: int, seed: int, **kw: float) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(n_components=k, covariance_type="full", random_state=seed, **kw).fit(
            rows
        )


@pytest.mark.parametrize(("name", "rows"), [pytest.param(*d, id=d[0]) for d in datasets()])
def test_same_mixture_as_scikit_learn_bit_for_bit(name: str, rows: np.ndarray) -> None:
    n = rows.shape[0]
    for k in (1, 2, 3, 6, 10):
        if k > n:
            continue
        for seed in (0, 7 * k + 1):
            ref = reference(rows, k, seed)
            got = fit_full_gmm(rows, k, seed)
            assert np.array_equal(got.weights, ref.weights_), (name, k, seed)
            assert np.array_equal(got.means, ref.means_), (name, k, seed)
            assert np.array_equal(got.covariances, ref.covariances_), (name, k, seed)
            assert got.log_likelihood == float(ref.score(rows)) * n, (name, k, seed)
            assert (got.n_iter, got.converged) == (ref.n_iter_, ref.converged_), (name, k, seed)


def test_options_and_the_non_converged_case_match_too() -> None:
    rows = datasets()[0][1]
    for kw in ({"max_iter": 2}, {"tol": 1e-8}, {"reg_covar": 1e-3}, {"tol": 10.0}):
        ref = reference(rows, 5, 3, **kw)
        got = fit_full_gmm(rows, 5, 3, **kw)
        assert np.array_equal(got.means, ref.means_) and np.array_equal(
            got.covariances, ref.covariances_
        ), kw
        assert (got.n_iter, got.converged) == (ref.n_iter_, ref.converged_), kw
    assert not fit_full_gmm(rows, 5, 3, max_iter=2).converged


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # k-means, duplicates
def test_bad_rows_raise_value_error_like_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    # Collapsed samples: more components than distinct points, no regularisation.
    collapsed = np.repeat(rng.random((2, 3)), 20, axis=0)
    with pytest.raises(ValueError):
        reference(collapsed, 4, 0, reg_covar=0.0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        fit_full_gmm(collapsed, 4, 0, reg_covar=0.0)
    # Non-finite rows, too few rows, nonsense arguments.
    nan_rows = rng.random((30, 2))
    nan_rows[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_full_gmm(nan_rows, 2, 0)
    with pytest.raises(ValueError, match="cannot fit"):
        fit_full_gmm(rng.random((3, 2)), 4, 0)
    with pytest.raises(ValueError, match="cannot fit"):
        fit_full_gmm(rng.random((30, 2)), 2, 0, max_iter=0)
    for not_a_table in (np.float64(1.0), rng.random(30)):
        with pytest.raises(ValueError, match="cannot fit"):
            fit_full_gmm(not_a_table, 2, 0)


def test_pure_function_of_its_arguments() -> None:
    rows = datasets()[1][1]
    a, b = fit_full_gmm(rows, 6, 11), fit_full_gmm(rows.copy(), 6, 11)
    assert np.array_equal(a.means, b.means) and a.log_likelihood == b.log_likelihood
    assert not np.array_equal(fit_full_gmm(rows, 6, 12).means, a.means)  # the seed matters
