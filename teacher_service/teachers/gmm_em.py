"""Full-covariance Gaussian-mixture EM without scikit-learn's per-call overhead.

The GMM teachers fit small mixtures (a few hundred rows, 2..10 components, a handful of
dimensions) many times. At that size ``sklearn.mixture.GaussianMixture`` spends most of its
time in input validation, array-API dispatch and SciPy's checked linear-algebra wrappers, not
in arithmetic: about 75% of a fit cycle. :func:`fit_full_gmm` runs the same algorithm with
the same floating-point operations in the same order (``init_params="kmeans"`` through
scikit-learn's own ``KMeans``, ``n_init=1``, the same M-step, regularisation, precision
Cholesky factors through the same LAPACK routines, log-sum-exp and stopping rule), so its
mixture and log-likelihood equal ``GaussianMixture(n_components=k, covariance_type="full",
random_state=seed).fit(rows)`` bit for bit; ``tests/unit/test_gmm_em.py`` checks that against
the installed scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpotrf, dtrtrs
from sklearn.cluster import KMeans

#: scikit-learn's defaults, which the reference ALP-GMM used.
TOL = 1e-3
REG_COVAR = 1e-6
MAX_ITER = 100

#: ``np.sum`` on arrays, without its Python-level dispatch (same reduction, same bits).
_sum = np.add.reduce

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples)."
)


@dataclass(frozen=True, slots=True)
class FittedMixture:
    """A mixture fitted by :func:`fit_full_gmm`.

    Attributes:
        weights: (k,) mixing weights.
        means: (k, d) means.
        covariances: (k, d, d) covariance matrices (regularised).
        log_likelihood: total log-likelihood of the fitted rows under the mixture.
        n_iter: EM iterations run.
        converged: whether the lower bound changed by less than ``tol`` before ``max_iter``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool


def fit_full_gmm(
    rows: np.ndarray,
    k: int,
    random_state: int,
    *,
    tol: float = TOL,
    reg_covar: float = REG_COVAR,
    max_iter: int = MAX_ITER,
) -> FittedMixture:
    """Fit a ``k``-component full-covariance Gaussian mixture by EM.

    Args:
        rows: (n, d) finite data, ``n >= max(k, 2)``.
        k: number of components.
        random_state: seed of the k-means initialisation.
        tol: stop once the mean log-likelihood changes by less than this.
        reg_covar: added to every covariance's diagonal.
        max_iter: most EM iterations (at least 1).

    Returns:
        The mixture after the last M-step and the rows' log-likelihood under it.

    Raises:
        ValueError: non-finite or too few rows, or a component whose covariance is not
            positive definite (collapsed samples).
    """
    x = np.ascontiguousarray(rows, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < max(k, 2) or k < 1 or max_iter < 1:
        raise ValueError(f"cannot fit {k} components to rows of shape {x.shape}")
    n = x.shape[0]
    if not np.isfinite(x).all():
        raise ValueError("rows contain NaN or infinity")

    # Initialisation: hard k-means assignments, with the RandomState scikit-learn builds
    # from the seed (k-means is its only consumer of randomness here).
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(random_state))
    resp = np.zeros((n, k), dtype=np.float64)
    resp[np.arange(n), kmeans.fit(x).labels_] = 1
    weights, means, covariances = _m_step(x, resp, reg_covar)
    weights /= n
    precisions_chol = _precisions_cholesky(covariances)

    lower_bound = -np.inf
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        previous = lower_bound
        weighted = _log_gaussian(x, means, precisions_chol) + np.log(weights)
        log_norm = _logsumexp_rows(weighted)
        with np.errstate(under="ignore"):
            log_resp = weighted - log_norm[:, np.newaxis]
        lower_bound = np.mean(log_norm)
        weights, means, covariances = _m_step(x, np.exp(log_resp), reg_covar)
        weights /= np.sum(weights)
        precisions_chol = _precisions_cholesky(covariances)
        if abs(lower_bound - previous) < tol:
            converged = True
            break

    weighted = _log_gaussian(x, means, precisions_chol) + np.log(weights)
    log_likelihood = float(np.mean(_logsumexp_rows(weighted))) * n
    return FittedMixture(weights, means, covariances, log_likelihood, n_iter, converged)


def _m_step(
    x: np.ndarray, resp: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised weights (``nk``), means and regularised covariances from responsibilities."""
    nk = _sum(resp, axis=0) + 10 * np.finfo(resp.dtype).eps  # no empty component
    means = (resp.T @ x) / nk[:, np.newaxis]
    d = means.shape[1]
    # All components at once, each slice laid out as scikit-learn's per-component arrays are
    # (so matmul makes the same BLAS call per slice): diff_j, then (resp_j * diff_j.T) @ diff_j.
    diff = x[np.newaxis, :, :] - means[:, np.newaxis, :]
    weighted = resp.T[:, :, np.newaxis] * diff
    covariances = np.matmul(weighted.transpose(0, 2, 1), diff) / nk[:, np.newaxis, np.newaxis]
    diagonal = np.arange(d)
    covariances[:, diagonal, diagonal] += reg_covar
    return nk, means, covariances


def _precisions_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Per component, the transposed inverse of the covariance's lower Cholesky factor."""
    k, d, _ = covariances.shape
    if not np.isfinite(covariances).all():
        raise ValueError(_ILL_DEFINED)
    eye = np.eye(d, dtype=covariances.dtype)
    out = np.empty((k, d, d), dtype=covariances.dtype)
    for j in range(k):
        chol, info = dpotrf(covariances[j, :, :], lower=1, clean=1)
        if info != 0:
            raise ValueError(_ILL_DEFINED)
        # potrf returns a Fortran-ordered factor, which trtrs takes as it is
        inverse, info = dtrtrs(chol, eye, lower=1)
        if info != 0:
            raise ValueError(_ILL_DEFINED)
        out[j, :, :] = inverse.T
    return out


def _log_gaussian(x: np.ndarray, means: np.ndarray, precisions_chol: np.ndarray) -> np.ndarray:
    """(n, k) log-density of each row under each component."""
    d = x.shape[1]
    k = means.shape[0]
    # log|precision|^(1/2) is the sum of the log-diagonal of its Cholesky factor
    log_det = _sum(np.log(precisions_chol.reshape(k, -1)[:, :: d + 1]), axis=1)
    # y_j = x @ L_j - mu_j @ L_j for every component j (one BLAS call per slice, as per j)
    y = np.matmul(x, precisions_chol) - np.matmul(means[:, np.newaxis, :], precisions_chol)
    # C order, like scikit-learn's (n, k) array: the row sums of log-sum-exp depend on it
    squared = np.ascontiguousarray(_sum(np.square(y), axis=2).T)
    return -0.5 * (d * math.log(2 * math.pi) + squared) + log_det


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp, in the form scikit-learn uses: the maximum term is taken out
    exactly (``log1p`` of the others' sum, divided among ties)."""
    a_max = np.max(a, axis=1, keepdims=True)
    is_max = a == a_max
    rest = a.copy()
    rest[is_max] = -np.inf
    ties = _sum(is_max.astype(a.dtype), axis=1, keepdims=True, dtype=a.dtype)
    shift = np.where(np.isfinite(a_max), a_max, 0)
    s = _sum(np.exp(rest - shift), axis=1, keepdims=True, dtype=a.dtype)
    s = np.where(s == 0, s, s / ties)
    return np.squeeze(np.log1p(s) + np.log(ties) + a_max, axis=1)
