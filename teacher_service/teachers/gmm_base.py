"""Shared machinery of the Gaussian-mixture teacher family (ALP-GMM, Covar-GMM;
docs/algorithms.md#alp-gmm-covar-gmm-and-riac).

Both teachers keep one row ``[task, extra...]`` per finished episode (``task`` in the unit
cube; ALP-GMM's extra is the episode's absolute learning progress, Covar-GMM's are the time
within the fit window and the reward), refit mixtures with ``min_k..max_k`` components every
``fit_rate`` episodes on the last ``fit_rate`` rows, keep the one with the lowest information
criterion, and sample tasks from components chosen in proportion to a learning-progress value
computed from each component (plus ``random_task_ratio`` uniform tasks).
:class:`GMMTeacher` implements everything but the row and that value.

Fits run in the background: in the server's process pool (:mod:`teacher_service.fit_pool`,
given by :meth:`GMMTeacher.use_background`) so that their Python does not hold the server's
GIL, else in a thread of their own. A fit started when the episode count is ``K`` takes effect
for every proposal made once the count has reached ``K + fit_delay``: a point fixed by the
event sequence (never by wall time), so replays and live twins propose the same tasks. Only
such a proposal can wait for a fit still running; reports never do (they add rows, which no
mixture is needed for), except in the rare case where the next fit starts before any proposal
installed the previous one.

Fit schedule (the reference fits when ``n >= bootstrap and n % fit_rate == 0``): here a fit
starts after the episode that brings the count to ``n``, for
``n = max(bootstrap, fit_rate) + j * fit_rate`` (j = 0, 1, ...). With the paper's defaults
(250/250) this is the reference schedule (250, 500, ...); the ``max`` guarantees that a fit
always sees ``fit_rate`` rows, and fits keep a regular ``fit_rate`` spacing after bootstrap
whatever the two values are.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from api_schemas.teachers import GMMConfigBase
from teacher_service.teachers.base import (
    TaskProposal,
    TaskResult,
    Teacher,
    TeacherStateError,
    box_scaler,
    unit_result,
)
from teacher_service.teachers.gmm_em import fit_full_gmm

logger = logging.getLogger(__name__)

#: Rows of recent history shown by :meth:`GMMTeacher.view`.
VIEW_ROWS = 200


# --------------------------------------------------------------------------- GMM fitting


@dataclass(frozen=True, slots=True)
class GMMParams:
    """A fitted mixture over ``[task, extra...]`` rows (enough to sample from it).

    Attributes:
        weights: (k,) mixing weights.
        means: (k, d + e) component means: ``d`` task coordinates in the unit cube, then
            the ``e`` extra coordinates of the teacher (ALP-GMM: the ALP; Covar-GMM: time
            and reward).
        covariances: (k, d + e, d + e) full covariance matrices.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def k(self) -> int:
        """Number of components."""
        return int(self.weights.shape[0])

    def to_state(self) -> dict[str, np.ndarray]:
        """Copies of the arrays, for snapshots."""
        return {
            "weights": self.weights.copy(),
            "means": self.means.copy(),
            "covariances": self.covariances.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GMMParams:
        """Inverse of :meth:`to_state`."""
        return cls(
            weights=np.array(state["weights"], dtype=np.float64),
            means=np.array(state["means"], dtype=np.float64),
            covariances=np.array(state["covariances"], dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class FitResult:
    """Outcome of one fit cycle.

    Attributes:
        gmm: the selected mixture, or ``None`` when no candidate could be fitted.
        ks: the component counts tried, in order.
        scores: the criterion value of each candidate (``inf`` where undefined).
    """

    gmm: GMMParams | None
    ks: tuple[int, ...]
    scores: tuple[float, ...]


def n_free_parameters(k: int, dim: int) -> int:
    """Free parameters of a ``k``-component full-covariance Gaussian mixture in ``dim`` dims.

    ``k * dim`` means, ``k * dim * (dim + 1) / 2`` covariance entries and ``k - 1`` weights.
    Here ``dim`` counts the extra coordinates too: the reference's AICc used the task
    dimension only, under-counting the parameters of the ``[task, alp]`` mixture.
    """
    return k * dim + k * dim * (dim + 1) // 2 + k - 1


def information_criterion(name: str, log_likelihood: float, n_params: int, n_samples: int) -> float:
    """AIC, BIC or AICc (lower is better).

    AICc = AIC + 2p(p + 1) / (n - p - 1) is undefined when ``n <= p + 1``; it is then
    ``inf`` so that such an over-parameterised model is never preferred.
    """
    aic = -2.0 * log_likelihood + 2.0 * n_params
    if name == "aic":
        return aic
    if name == "bic":
        return -2.0 * log_likelihood + n_params * math.log(n_samples)
    if name == "aicc":
        denom = n_samples - n_params - 1
        return aic + 2.0 * n_params * (n_params + 1) / denom if denom > 0 else math.inf
    raise ValueError(f"unknown criterion {name!r}; expected 'aic', 'bic' or 'aicc'")


class _OneBLASThread:
    """Process-wide "one BLAS thread" (and one OpenMP thread per fitting thread) during fits.

    Why: the reference let BLAS use every core inside each fit (two concurrent runs went ~9x
    slower). Here, with OpenBLAS on 2 cores, a 9-GMM fit that takes ~0.1 s single-threaded
    takes ~4 s when OpenBLAS may use 2 threads for these tiny matrices.

    How:

    * The BLAS limit is process-global, so concurrent fits (several teachers) share it through
      a reference count: the first fit in sets it, the last one out restores it.
    * It is always changed from one dedicated, long-lived thread: with the OpenBLAS builds
      shipped in the numpy/scipy wheels (0.3.30/0.3.31) we observed ``openblas_set_num_threads``
      being ignored when called from any thread other than the live thread that called it
      first, so limits set from short-lived per-teacher fit threads (or from a request thread)
      would silently not apply. If some other code took that role first, a warning says so.
    * OpenMP's thread count (scikit-learn's k-means) is per-thread in libgomp, so it is set
      in the fitting thread itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._blas: threadpool_limits | None = None
        self._owner: ThreadPoolExecutor | None = None
        self._warned = False

    def _on_owner(self, fn: Any) -> Any:
        if self._owner is None:
            self._owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gmm-blas")
        return self._owner.submit(fn).result()

    def _set_blas(self) -> threadpool_limits:
        limiter = threadpool_limits(limits=1, user_api="blas")
        ignored = [
            i["prefix"]
            for i in threadpool_info()
            if i["user_api"] == "blas" and i["num_threads"] != 1
        ]
        if ignored and not self._warned:
            self._warned = True  # once per process: the cause is outside this module
            logger.warning(
                "BLAS libraries %s ignored the 1-thread limit (another thread set their thread "
                "count first); GMM fits may be much slower. Run with OPENBLAS_NUM_THREADS=1.",
                ignored,
            )
        return limiter

    @contextmanager
    def __call__(self) -> Any:
        with self._lock:
            if self._depth == 0:
                self._blas = self._on_owner(self._set_blas)
            self._depth += 1
        openmp = threadpool_limits(limits=1, user_api="openmp")
        try:
            yield
        finally:
            openmp.restore_original_limits()
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._blas is not None:
                    self._on_owner(self._blas.restore_original_limits)
                    self._blas = None


_one_blas_thread = _OneBLASThread()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One fitted candidate mixture of a fit cycle.

    Attributes:
        k: its number of components.
        log_likelihood: total log-likelihood of the rows, or ``None`` when the fit failed.
        gmm: the mixture, or ``None`` when the fit failed.
    """

    k: int
    log_likelihood: float | None
    gmm: GMMParams | None


def fit_ks(rows: np.ndarray, random_state: int, ks: Sequence[int]) -> list[Candidate]:
    """Fit one full-covariance GMM per ``k`` in ``ks`` (each independent of the others given
    ``random_state``, so the candidates can be fitted in any order, in any process).

    Args:
        rows: (n, d + e) ``[task, extra...]`` rows; every ``k`` must be at most ``n``.
        random_state: seed shared by the candidate mixtures.
        ks: the component counts to fit.
    """
    out: list[Candidate] = []
    with _one_blas_thread():
        for k in ks:
            try:
                fitted = fit_full_gmm(rows, k, random_state)
            except (ValueError, np.linalg.LinAlgError) as exc:  # degenerate rows
                logger.warning("GMM fit with k=%d failed: %s", k, exc)
                out.append(Candidate(k, None, None))
                continue
            params = GMMParams(fitted.weights, fitted.means, fitted.covariances)
            out.append(Candidate(k, fitted.log_likelihood, params))
    return out


def candidate_ks(n_rows: int, min_k: int, max_k: int) -> list[int]:
    """``min_k..max_k`` inclusive (the reference's ``arange(min_k, max_k)`` silently skipped
    ``max_k``), without the counts above ``n_rows``, which cannot be fitted."""
    return list(range(min_k, min(max_k, n_rows) + 1))


def select_fit(candidates: Sequence[Candidate], n_rows: int, dim: int, criterion: str) -> FitResult:
    """Keep the candidate with the lowest criterion (ties -> fewer components); when every
    score is infinite, the smallest fitted one.

    Args:
        candidates: the fitted candidates, in any order.
        n_rows: rows they were fitted on.
        dim: width of a row.
        criterion: ``"aic"``, ``"bic"`` or ``"aicc"``.
    """
    ks: list[int] = []
    scores: list[float] = []
    best: tuple[float, GMMParams] | None = None
    fallback: GMMParams | None = None  # smallest fitted k, when every score is inf
    for c in sorted(candidates, key=lambda c: c.k):
        ks.append(c.k)
        if c.gmm is None or c.log_likelihood is None:
            scores.append(math.inf)
            continue
        n_params = n_free_parameters(c.k, dim)
        value = information_criterion(criterion, c.log_likelihood, n_params, n_rows)
        scores.append(value)
        if fallback is None:
            fallback = c.gmm
        if math.isfinite(value) and (best is None or value < best[0]):
            best = (value, c.gmm)
    chosen = best[1] if best is not None else fallback
    return FitResult(gmm=chosen, ks=tuple(ks), scores=tuple(scores))


def fit_gmms(
    rows: np.ndarray, random_state: int, min_k: int, max_k: int, criterion: str
) -> FitResult:
    """Fit full-covariance GMMs with ``k = min_k..max_k`` (inclusive); keep the best.

    A pure function of its arguments (single-threaded BLAS, fixed ``random_state``), so a
    fit re-run after a restore gives the same mixture bit for bit.

    Args:
        rows: (n, d + e) ``[task, extra...]`` rows.
        random_state: seed shared by the candidate mixtures.
        min_k: fewest components tried.
        max_k: most components tried, inclusive.
        criterion: ``"aic"``, ``"bic"`` or ``"aicc"``.

    Returns:
        The selected mixture (lowest criterion; ties -> fewer components) and every score.
    """
    n, dim = rows.shape
    candidates = fit_ks(rows, random_state, candidate_ks(n, min_k, max_k))
    return select_fit(candidates, n, dim, criterion)


def split_ks(ks: Sequence[int], parts: int) -> list[list[int]]:
    """Deal ``ks`` into at most ``parts`` groups of about equal cost (EM's cost grows with
    ``k``): largest first, each to the group with the least total so far; each group in
    ascending order."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(parts, len(ks))))]
    for k in sorted(ks, reverse=True):
        min(groups, key=sum).append(k)
    return [sorted(g) for g in groups if g]


def gather(parts: Sequence[Future[Any]], combine: Callable[[list[Any]], Any]) -> Future[Any]:
    """A future of ``combine([part results...])``, done once every part is; it fails with
    the first failing part's exception (in ``parts`` order)."""
    out: Future[Any] = Future()
    out.set_running_or_notify_cancel()
    remaining = [len(parts)]
    lock = threading.Lock()

    def one_done(_: Future[Any]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        try:
            out.set_result(combine([p.result() for p in parts]))
        except BaseException as exc:  # a part failed or was cancelled: the whole fit did
            out.set_exception(exc)

    if not parts:
        out.set_result(combine([]))
    for p in parts:
        p.add_done_callback(one_done)
    return out


# --------------------------------------------------------------------------- history


class RecentRows:
    """The last ``keep`` rows ``[task, extra...]`` and their raw returns.

    Arrays of capacity ``2 * keep``; when full, the newest ``keep`` rows move to the front,
    so appends are amortised O(1) and memory stays bounded.
    """

    def __init__(self, width: int, keep: int) -> None:
        self.keep = keep
        self.rows = np.empty((2 * keep, width), dtype=np.float64)
        self.returns = np.empty(2 * keep, dtype=np.float64)
        self.n = 0

    def append(self, row: np.ndarray, ret: float) -> None:
        """Add one row and its return."""
        if self.n == self.rows.shape[0]:
            lo = self.n - self.keep
            self.rows[: self.keep] = self.rows[lo : self.n]
            self.returns[: self.keep] = self.returns[lo : self.n]
            self.n = self.keep
        self.rows[self.n] = row
        self.returns[self.n] = ret
        self.n += 1

    def last(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the last ``min(m, available)`` rows and returns (oldest first)."""
        lo = max(self.n - m, 0)
        return self.rows[lo : self.n], self.returns[lo : self.n]

    def export(self) -> dict[str, np.ndarray]:
        """Copies of the kept rows, for snapshots."""
        rows, returns = self.last(self.keep)
        return {"rows": rows.copy(), "returns": returns.copy()}

    def load(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`export`."""
        rows = np.asarray(state["rows"], dtype=np.float64).reshape(-1, self.rows.shape[1])
        returns = np.asarray(state["returns"], dtype=np.float64)
        if returns.shape[0] != rows.shape[0]:
            raise ValueError("rows and returns differ in length")
        m = min(rows.shape[0], self.keep)
        self.rows[:m] = rows[rows.shape[0] - m :]
        self.returns[:m] = returns[returns.shape[0] - m :]
        self.n = m


@dataclass(slots=True)
class _PendingFit:
    """A fit started but not yet in effect; its inputs are enough to recompute it."""

    rows: np.ndarray
    random_state: int
    started_at: int
    due_at: int
    future: Future[FitResult] | None = None
    parts: list[Future[Any]] = field(default_factory=list)  # what ``future`` gathers


def next_fit_start(n: int, first: int, rate: int) -> int:
    """The first episode count above ``n`` at which a fit starts, in the schedule
    ``first + j * rate`` (j = 0, 1, ...) of the module docstring."""
    return first + max(0, -(-(n + 1 - first) // rate)) * rate


def _finished(p: _PendingFit) -> bool:
    """Whether installing ``p`` would not wait: its fit is done (a fit without a future is
    recomputed in place, which waits too)."""
    return p.future is not None and p.future.done()


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# --------------------------------------------------------------------------- teacher


class GMMTeacher(Teacher):
    """Base of the GMM teachers over a box space (see the module docstring).

    Subclasses set ``kind``, ``config_model`` and ``n_extra`` (extra coordinates per row)
    and implement :meth:`_row` (the extra coordinates of one result) and
    :meth:`_component_lp` (the learning progress of each fitted component). One observed
    result is one episode (one row), whatever its ``episodes`` count says.
    """

    n_extra: ClassVar[int]
    config: GMMConfigBase

    def __init__(self, space: Any, config: GMMConfigBase, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        self._scaler = box_scaler(space, self.kind)
        self._ndim = self._scaler.ndim
        self._first_fit_at = max(config.bootstrap, config.fit_rate)
        self._reset_learned_state()
        self._executor: ThreadPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self._background: Executor | None = None  # the server's process pool, when given

    # ------------------------------------------------------------------ subclass hooks

    @abstractmethod
    def _row(self, task: np.ndarray, ret: float) -> np.ndarray:
        """The ``n_extra`` extra coordinates of the row of a finished episode (called in
        episode order, before the row is added)."""

    @abstractmethod
    def _component_lp(self, gmm: GMMParams) -> np.ndarray:
        """Learning progress of each component; components are drawn in proportion."""

    def _reset_learned_state(self) -> None:
        self.n_observed_ = 0
        self.n_fits_ = 0  # fits that took effect
        width = self._ndim + self.n_extra
        self.recent_ = RecentRows(width, max(self.config.fit_rate, VIEW_ROWS))
        self.gmm_: GMMParams | None = None
        self.last_fit_: FitResult | None = None
        self.last_fit_at_: int | None = None
        self._pending: _PendingFit | None = None

    # ------------------------------------------------------------------ Teacher API

    def propose(self, n: int) -> list[TaskProposal]:
        """Draw ``n`` tasks: uniform during bootstrap / with ``random_task_ratio``, else GMM.

        Random numbers are drawn task by task in a fixed order (coin, component,
        Gaussian), so the same state always gives the same proposals.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._apply_due_fit()
        if n == 0:
            return []
        units = np.array([self._sample_unit() for _ in range(n)])
        return [TaskProposal(params=p) for p in self._scaler.to_params_batch(units)]

    def observe(self, results: Sequence[TaskResult]) -> None:
        """Add one row per result and start fits at their episodes.

        A fit that falls due is installed by the next :meth:`propose`, the first call that
        needs it, so reports do not wait for fits (the rows do not depend on the mixture).
        """
        for result in results:
            self._observe_one(result)

    def would_block(self, n_results: int = 0) -> bool:
        """Whether ``propose`` (``n_results == 0``) or ``observe`` of ``n_results`` results
        would wait for a fit: a proposal once a running fit is due; an observation when a
        fit starts within the results while the previous one still runs."""
        p = self._pending
        start = next_fit_start(self.n_observed_, self._first_fit_at, self.config.fit_rate)
        upto = self.n_observed_ + n_results
        if p is not None and not _finished(p):
            if n_results == 0:
                return self.n_observed_ >= p.due_at
            return start <= upto  # _start_fit installs the running fit first
        # two fit starts within the results: the second installs the first
        return n_results > 0 and start + self.config.fit_rate <= upto

    def pending_work(self) -> Future[FitResult] | None:
        """The running fit, which a call that :meth:`would_block` waits for."""
        p = self._pending
        return None if p is None or _finished(p) else p.future

    def view(self) -> dict[str, Any]:
        """JSON-able picture for the dashboard (all plain floats and lists)."""
        cfg = self.config
        rows, returns = self.recent_.last(VIEW_ROWS)
        gmm_view = None
        if self.gmm_ is not None:
            g = self.gmm_
            gmm_view = {
                "k": g.k,
                "weights": g.weights.tolist(),
                "means": g.means.tolist(),
                "covariances": g.covariances.tolist(),
                "lp": self._component_lp(g).tolist(),
                "fitted_at": self.last_fit_at_,
            }
        last_fit = None
        if self.last_fit_ is not None:
            last_fit = {
                "criterion": cfg.criterion,
                "k": list(self.last_fit_.ks),
                "scores": [_json_float(s) for s in self.last_fit_.scores],
            }
        pending = None
        if self._pending is not None:
            pending = {
                "started_at": self._pending.started_at,
                "due_at": self._pending.due_at,
                "rows": int(self._pending.rows.shape[0]),
            }
        return {
            "episodes": self.n_observed_,
            "bootstrap": cfg.bootstrap,
            "bootstrap_done": self.n_observed_ >= cfg.bootstrap,
            "fits": self.n_fits_,
            "dims": list(self._scaler.names),
            "gmm": gmm_view,
            "last_fit": last_fit,
            "pending_fit": pending,
            "recent": {
                "tasks": [list(self._scaler.to_params(t).values()) for t in rows[:, : self._ndim]],
                "returns": returns.tolist(),
                **{name: rows[:, self._ndim + i].tolist() for i, name in self._extra_names()},
            },
        }

    def _extra_names(self) -> list[tuple[int, str]]:
        """Names of the extra coordinates in :meth:`view` (``extra0``... by default)."""
        return [(i, f"extra{i}") for i in range(self.n_extra)]

    def use_background(self, executor: Executor | None) -> None:
        """Run later fits on ``executor`` (the server's process pool) instead of a thread of
        this process; ``None``: back to the thread."""
        self._background = executor
        warm = getattr(executor, "warm", None)
        if warm is not None:  # start the pool's workers (fits import this module) early
            warm(__name__)

    def close(self) -> None:
        """Stop the fit thread. A pending fit is kept as inputs and recomputed if needed."""
        if self._pending is not None and self._pending.future is not None:
            for part in self._pending.parts:
                part.cancel()
            self._pending.future = None  # recomputed synchronously when it falls due
            self._pending.parts = []
        if self._finalizer is not None:
            self._finalizer()  # shuts the executor down (once)
        self._executor = None
        self._finalizer = None

    # ------------------------------------------------------------------ state

    def _extra_state(self) -> dict[str, Any]:
        pending = None
        if self._pending is not None:
            pending = {
                "rows": self._pending.rows.copy(),
                "random_state": self._pending.random_state,
                "started_at": self._pending.started_at,
                "due_at": self._pending.due_at,
            }
        last_fit = None
        if self.last_fit_ is not None:
            last_fit = {"ks": list(self.last_fit_.ks), "scores": list(self.last_fit_.scores)}
        return {
            "n_observed": self.n_observed_,
            "n_fits": self.n_fits_,
            "recent": self.recent_.export(),
            "gmm": None if self.gmm_ is None else self.gmm_.to_state(),
            "last_fit": last_fit,
            "last_fit_at": self.last_fit_at_,
            "pending_fit": pending,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.close()  # drop any fit of the state being replaced
        try:
            self._reset_learned_state()
            self.n_observed_ = int(state["n_observed"])
            self.n_fits_ = int(state["n_fits"])
            self.recent_.load(state["recent"])
            if state.get("gmm") is not None:
                self.gmm_ = GMMParams.from_state(state["gmm"])
            if state.get("last_fit") is not None:
                lf = state["last_fit"]
                self.last_fit_ = FitResult(
                    gmm=self.gmm_,
                    ks=tuple(int(k) for k in lf["ks"]),
                    scores=tuple(float(s) for s in lf["scores"]),
                )
            lfa = state.get("last_fit_at")
            self.last_fit_at_ = None if lfa is None else int(lfa)
            self._load_family_state(state)
            p = state.get("pending_fit")
        except (KeyError, TypeError, ValueError) as exc:
            raise TeacherStateError(f"corrupted {self.kind} snapshot: {exc}") from exc
        if p is not None:
            # Re-run the interrupted fit from its inputs: it is a pure function of them, so
            # the restored teacher continues exactly like one that was never stopped.
            self._submit(
                _PendingFit(
                    rows=np.array(p["rows"], dtype=np.float64),
                    random_state=int(p["random_state"]),
                    started_at=int(p["started_at"]),
                    due_at=int(p["due_at"]),
                )
            )

    def _load_family_state(self, state: Mapping[str, Any]) -> None:
        """Restore what a subclass added to :meth:`_extra_state`."""

    # ------------------------------------------------------------------ internals

    def _sample_unit(self) -> np.ndarray:
        cfg = self.config
        gmm = self.gmm_
        # Uniform during bootstrap (no mixture yet) and with probability random_task_ratio.
        if gmm is None or self.rng.random() < cfg.random_task_ratio:
            return self.rng.random(self._ndim)
        # Component chosen in proportion to its learning progress; uniform if every
        # component has none (the reference's proportional_choice).
        lp = np.maximum(self._component_lp(gmm), 0.0)
        total = lp.sum()
        p = lp / total if total > 0 else np.full(gmm.k, 1.0 / gmm.k)
        c = int(self.rng.choice(gmm.k, p=p))
        # GMM covariances are positive definite (sklearn adds reg_covar); skipping numpy's
        # PSD re-check halves the cost of a draw and does not change it.
        x = self.rng.multivariate_normal(gmm.means[c], gmm.covariances[c], check_valid="ignore")
        return np.clip(x[: self._ndim], 0.0, 1.0)  # drop the extra coordinates, clip

    def _observe_one(self, result: TaskResult) -> None:
        task, ret = unit_result(result, self._scaler, self.kind)
        extra = self._row(task, ret)
        self.recent_.append(np.concatenate([task, extra]), ret)
        self.n_observed_ += 1
        n = self.n_observed_
        if n >= self._first_fit_at and (n - self._first_fit_at) % self.config.fit_rate == 0:
            self._start_fit()

    def _start_fit(self) -> None:
        cfg = self.config
        rows = self.recent_.last(cfg.fit_rate)[0].copy()  # a copy: later rows cannot leak in
        # Drawn now, from the teacher's generator, so the fit is reproducible.
        seed = int(self.rng.integers(0, 2**31 - 1))
        pending = _PendingFit(
            rows=rows,
            random_state=seed,
            started_at=self.n_observed_,
            due_at=self.n_observed_ + cfg.fit_delay,
        )
        if self._pending is not None:  # due (fit_delay < fit_rate), but no proposal took it
            self._install(self._pending)
        self._submit(pending)

    def _submit(self, pending: _PendingFit) -> None:
        self._pending = pending
        # Until the pool's first worker is up (seconds after the server made its first GMM
        # teacher), fit in the thread: the same pure function, so the same mixture.
        ready = getattr(self._background, "ready", None)
        if self._background is not None and (ready is None or ready()):
            try:
                self._run_fit(self._background, pending)
                return
            except RuntimeError as exc:  # the pool is closed (the server is stopping)
                logger.warning("%s: fit pool unavailable (%s); fitting in a thread", self.kind, exc)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"{self.kind}-fit"
            )
            # Shut the thread down if the teacher is dropped without close().
            self._finalizer = weakref.finalize(
                self, self._executor.shutdown, wait=False, cancel_futures=True
            )
        self._run_fit(self._executor, pending)

    def _run_fit(self, executor: Executor, pending: _PendingFit) -> None:
        """Fit ``pending`` on ``executor``, its candidates dealt over the executor's
        ``processes`` (each candidate is independent given the seed, so the selected mixture
        is the same however they are split)."""
        cfg = self.config
        n, dim = pending.rows.shape
        groups = split_ks(candidate_ks(n, cfg.min_k, cfg.max_k), getattr(executor, "processes", 1))
        parts: list[Future[Any]] = []
        try:
            for ks in groups:
                parts.append(executor.submit(fit_ks, pending.rows, pending.random_state, ks))
        except RuntimeError:
            for part in parts:
                part.cancel()
            raise

        def combine(results: list[list[Candidate]]) -> FitResult:
            return select_fit([c for r in results for c in r], n, dim, cfg.criterion)

        pending.parts = parts
        pending.future = gather(parts, combine)

    def _apply_due_fit(self) -> None:
        p = self._pending
        if p is not None and self.n_observed_ >= p.due_at:
            self._install(p)

    def _install(self, p: _PendingFit) -> None:
        cfg = self.config
        result = None
        if p.future is not None and not p.future.cancelled():
            try:
                result = p.future.result()  # waits if the fit is still running
            except (BrokenExecutor, CancelledError) as exc:  # a worker died, or was stopped
                logger.warning("%s: background fit lost (%r); fitting here", self.kind, exc)
        if result is None:  # the same pure function of the same inputs: the same mixture
            result = fit_gmms(p.rows, p.random_state, cfg.min_k, cfg.max_k, cfg.criterion)
        self._pending = None
        self.last_fit_ = result
        self.last_fit_at_ = p.started_at
        self.n_fits_ += 1
        if result.gmm is None:
            logger.warning("%s: no GMM could be fitted at episode %d", self.kind, p.started_at)
            return
        self.gmm_ = result.gmm
