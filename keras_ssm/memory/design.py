"""Eigenvalue sets designed for memory: stable discrete eigenvalues whose memory function
matches a target profile up to a horizon.

HiPPO-derived initialisations (S4D-Inv, S4D-Lin, S4D-LegS) optimise a polynomial projection
measure, not the memory function MF(k) that multiplies the teacher signal in the readout's
gradient. :func:`design_eigenvalues` optimises MF itself. It finds N/2 discrete eigenvalues
lambda (one of each conjugate pair, as S4D's ``discrete_eigenvalues()`` stores them, i.e. the
eigenvalues at dt = 1) that maximise

    s = min_{k in K} MF(k) / p(k),     K = {k < horizon : p(k) > 0},

for a target profile p (default: p = 1 for all lags, the flattest memory up to the horizon).
Since sum_k MF(k) <= N over all lags and MF is nonincreasing in k (below), s P(k) <= MF(k) with
the envelope P(k) = max_{j >= k} p(j), so s <= bound = min(1, N / sum_k P(k)) (N / horizon for the
flat profile): ``match = s / bound`` says how close the result gets.

MF is the infinite-horizon (stationary) memory function, MF(k) = x_k^T G^{-1} x_k with the
Gramian G = sum_{j >= 0} x_j x_j^T over all past inputs. It is a lower bound on the
finite-horizon MF of a state started at zero any number t > k of steps ago (G_t <= G in the
PSD order, so x_k^T G_t^{-1} x_k >= x_k^T G^{-1} x_k): what the design guarantees holds at
every position of a sequence, including the finite-horizon curve of
``memory_function(..., horizon=T)``.

This stationary MF is nonincreasing in k for every linear system (G = A G A^T + b b^T >= A G A^T
gives A^T G^{-1} A <= G^{-1}, so MF(k + 1) <= MF(k)). A target concentrated on one lag k0 therefore
cannot move the peak of MF to k0 (MF(k) >= MF(k0) for k < k0): the design maximises MF(k0) itself,
which is what a dependency at lag k0 needs (e.g. N = 16, horizon 256, k0 = 100: 0.135, against
0.055 for the flat design; tests/test_memory_design.py measures this).

Method (deterministic for a seed, float64, closed form only):

* Parameters: |lambda| = r_max * sigmoid(alpha), arg(lambda) = pi * sigmoid(beta), so every
  eigenvalue is stable (|lambda| < r_max < 1) and non-real (one member of a conjugate pair)
  by construction.
* Smooth max-min objective: the log of the power mean with exponent -q of the ratios,
  F_q = -(1/q) log( mean_{k in K} (MF(k)/p(k))^(-q) ), which increases to log s as q grows;
  it is maximised for q = 4, 32 and then ``sharpness`` (continuation), each stage with
  scipy's L-BFGS-B and the analytic gradient of the closed form
  (:func:`keras_ssm.memory.core.memory_function_gradient`, with a tiny constant ridge on G).
* Long horizons: the stages run on max(256, 4 N) lags of K (every step-th one; MF values
  there are exact, not approximated); a final stage at q = ``sharpness`` adds as many lags
  of K where MF(k) / p(k) is smallest at that point (an active set), so the lags that bind
  between the samples are optimised too. The result's ``scale`` is always measured on every
  lag of K.
* Start: the best of a small grid of "harmonic" sets, phases (n + 1/2) * min(2 pi / P, pi / m)
  and magnitude exp(-1 / D), with P and D proportional to the last lag the target covers
  (the flat optimum looks like this: MF is scale-free in the horizon), whose phases are then
  jittered by 2% from ``numpy.random.default_rng(seed)``.

BLAS runs single-threaded during the design when threadpoolctl is installed: the matrices are
small (N x N, N x L), and a fixed thread count keeps the summation order, so the result, the
same from run to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers

import numpy as np
import scipy.optimize
import scipy.special

from keras_ssm.memory.core import (
    MEMORY_LENGTH_FRACTION,
    MemoryFunction,
    _as_finite_array,
    _stationary_gradient,
    _stationary_parts,
    memory_function,
    memory_function_gradient,
    memory_length,
)

__all__ = ["EigenvalueDesign", "design_eigenvalues"]

# Continuation of the power-mean exponent q before the final ``sharpness``.
_CONTINUATION = (4.0, 32.0)
# Lags used by the continuation stages (every step-th lag of the target's support):
# max(_COARSE_LAGS, _COARSE_LAGS_PER_STATE * N), enough to follow MF's oscillations.
_COARSE_LAGS = 256
_COARSE_LAGS_PER_STATE = 4
# Ridge added to G, relative to the largest diagonal entry G can have, 1 / (2 (1 - r_max^2)).
_RELATIVE_RIDGE = 1e-12
# Harmonic starting sets: period P and decay time D, in units of the target's last lag + 1.
_START_PERIODS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_START_DECAYS = (0.25, 0.5, 1.0, 2.0)
_START_JITTER = 0.02
# Objective value returned where the closed form is not finite (L-BFGS-B then backtracks).
_INVALID = 1e10


@dataclasses.dataclass(frozen=True, eq=False)
class EigenvalueDesign:
    """A designed eigenvalue set and how close its memory gets to the target.

    Attributes:
        eigenvalues: complex128 (N/2,) discrete eigenvalues, one of each conjugate pair
            (0 < arg < pi), sorted by phase; |lambda| < 1. Use them at dt = 1.
        horizon: number of lags designed for.
        target: float64 (horizon,) target profile scaled to max 1, or None (flat).
        memory: infinite-horizon :class:`MemoryFunction` over lags 0..horizon-1 (computed by
            :func:`memory_function` with its SVD path, not by the optimiser's Cholesky).
        finite_memory: finite-horizon :class:`MemoryFunction` (state started ``horizon``
            steps ago); at every lag >= ``memory``.
        scale: s = min over the target's support of MF(k) / p(k) from ``memory`` (flat: the
            smallest MF up to the horizon).
        bound: min(1, N / sum_k max_{j >= k} p(j)), an upper bound on s for any N-dimensional
            linear state (N / horizon for the flat profile).
        objective: final smoothed objective exp(F_q) (power mean of MF/p with exponent -q).
        sharpness: the final power-mean exponent q.
        iterations: L-BFGS-B iterations over all stages.
        evaluations: closed-form evaluations (value and gradient) over all stages.
        converged: whether the final stage met L-BFGS-B's tolerances within its iterations.
        message: L-BFGS-B's message for the final stage.
        seed: the seed used.
    """

    eigenvalues: np.ndarray
    horizon: int
    target: np.ndarray | None
    memory: MemoryFunction
    finite_memory: MemoryFunction
    scale: float
    bound: float
    objective: float
    sharpness: float
    iterations: int
    evaluations: int
    converged: bool
    message: str
    seed: int

    @property
    def n(self) -> int:
        """State size N (real state dimensions)."""
        return 2 * self.eigenvalues.shape[0]

    @property
    def match(self) -> float:
        """scale / bound in [0, 1] (1 would meet the bound, which need not be reachable)."""
        return self.scale / self.bound

    @property
    def min_memory(self) -> float:
        """Smallest infinite-horizon MF over lags 0..horizon-1."""
        return float(np.min(self.memory.values))

    @property
    def capacity(self) -> float:
        """Infinite-horizon memory capacity over lags 0..horizon-1 (<= N; the rest lies beyond)."""
        return float(self.memory.capacity)

    @property
    def flat_bound(self) -> float:
        """min(1, N / horizon): the largest smallest-MF a flat memory up to the horizon can have."""
        return min(1.0, self.n / self.horizon)

    def summary(self, fraction: float = MEMORY_LENGTH_FRACTION) -> dict:
        """Plain numbers for tables: min MF, MC, memory length (infinite horizon), scale, bound, match."""
        return {
            "n": self.n,
            "horizon": self.horizon,
            "min_memory": self.min_memory,
            "capacity": self.capacity,
            "length": int(memory_length(self.memory, fraction)),
            "scale": self.scale,
            "bound": self.bound,
            "match": self.match,
            "flat_bound": self.flat_bound,
            "converged": self.converged,
        }

    def __repr__(self) -> str:
        kind = "flat" if self.target is None else "target"
        return (f"EigenvalueDesign(n={self.n}, horizon={self.horizon}, {kind}, scale={self.scale:.4g}, "
                f"bound={self.bound:.4g}, match={self.match:.3f}, capacity={self.capacity:.3f}, "
                f"converged={self.converged})")


# ---------------------------------------------------------------------------------------
# Validation


def _check_state_size(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2 or n % 2:
        raise ValueError(f"n (state size N) must be an even integer >= 2, got {n!r}")
    return int(n)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_target(target, horizon: int) -> np.ndarray | None:
    if target is None:
        return None
    arr = _as_finite_array(target, "target", 1)
    if np.iscomplexobj(arr) or arr.ndim != 1:
        raise ValueError(f"target must be a real 1-D array of length horizon = {horizon}, "
                         f"got dtype {arr.dtype}, shape {arr.shape}")
    if arr.shape[0] != horizon:
        raise ValueError(f"target must have length horizon = {horizon} (one value per lag 0..{horizon - 1}), "
                         f"got length {arr.shape[0]}")
    arr = arr.astype(np.float64)
    if np.any(arr < 0):
        raise ValueError(f"target must be nonnegative, got a smallest value of {float(arr.min())!r}")
    if not np.any(arr > 0):
        raise ValueError("target must have at least one positive value (it is all zero)")
    return arr / arr.max()


def _check_max_magnitude(max_magnitude, horizon: int) -> float:
    if max_magnitude is None:
        return float(np.exp(-1.0 / (100.0 * horizon)))
    if (isinstance(max_magnitude, bool) or not isinstance(max_magnitude, numbers.Real)
            or not 0.0 < max_magnitude < 1.0):
        raise ValueError(f"max_magnitude must be a number in (0, 1), got {max_magnitude!r}")
    return float(max_magnitude)


def _check_sharpness(sharpness) -> float:
    if (isinstance(sharpness, bool) or not isinstance(sharpness, numbers.Real) or not np.isfinite(sharpness)
            or sharpness < 1.0):
        raise ValueError(f"sharpness (final power-mean exponent q) must be a finite number >= 1, got {sharpness!r}")
    return float(sharpness)


# ---------------------------------------------------------------------------------------
# Optimisation


@contextlib.contextmanager
def _single_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class _Objective:
    """-F_q(x) and its gradient for L-BFGS-B, x = [alpha (m), beta (m)]."""

    def __init__(self, lags, profile, max_magnitude, ridge, sharpness):
        self.lags, self.log_profile = lags, np.log(profile)
        self.max_magnitude, self.ridge, self.sharpness = max_magnitude, ridge, sharpness
        self.evaluations = 0

    def eigenvalues(self, x):
        m = x.shape[0] // 2
        return self.max_magnitude * scipy.special.expit(x[:m]) * np.exp(1j * np.pi * scipy.special.expit(x[m:]))

    def value(self, lam) -> float:
        """F_q at lam (no gradient)."""
        values, _ = memory_function_gradient(lam, lags=self.lags, ridge=self.ridge)
        return self._smooth_min(values)[0]

    def _smooth_min(self, values):
        q = self.sharpness
        z = -q * (np.log(np.maximum(values, 1e-300)) - self.log_profile)  # -q log(MF / p)
        top = z.max()
        e = np.exp(z - top)
        total = e.sum()
        objective = -(top + np.log(total / z.shape[0])) / q
        weights = (e / total) / np.maximum(values, 1e-300)  # dF/dMF(k)
        return objective, weights

    def __call__(self, x):
        self.evaluations += 1
        m = x.shape[0] // 2
        sa, sb = scipy.special.expit(x[:m]), scipy.special.expit(x[m:])
        phase = np.exp(1j * np.pi * sb)
        lam = self.max_magnitude * sa * phase
        if np.any(lam.imag == 0):  # arg = 0 or pi after rounding: not one member of a pair
            return _INVALID, np.zeros_like(x)
        try:
            parts = _stationary_parts(lam, self.lags, self.ridge)
        except ValueError:  # not positive definite despite the ridge: treat as a bad step
            return _INVALID, np.zeros_like(x)
        objective, weights = self._smooth_min(parts.values)
        grad = _stationary_gradient(parts, weights)
        d_radius = np.real(grad.conj() * phase)
        d_phase = np.real(grad.conj() * 1j * lam)
        gradient = np.concatenate([d_radius * self.max_magnitude * sa * (1 - sa), d_phase * np.pi * sb * (1 - sb)])
        if not (np.isfinite(objective) and np.all(np.isfinite(gradient))):
            return _INVALID, np.zeros_like(x)
        return -objective, -gradient


def _harmonic_start(m, reach, objective, max_magnitude, rng):
    """Best harmonic set on the grid (by the first-stage objective), with seeded phase jitter."""
    best, best_value = None, -np.inf
    index = np.arange(m) + 0.5
    for period in _START_PERIODS:
        for decay in _START_DECAYS:
            phase = index * min(2 * np.pi / (period * reach), np.pi / m)
            radius = min(np.exp(-1.0 / (decay * reach)), 0.999 * max_magnitude)
            lam = radius * np.exp(1j * phase)
            try:
                value = objective.value(lam)
            except ValueError:
                continue
            if value > best_value:
                best, best_value = lam, value
    if best is None:  # pragma: no cover - every grid point failed
        best = 0.5 * max_magnitude * np.exp(1j * index * np.pi / m)
    phase = np.clip(np.angle(best) * np.exp(rng.normal(0.0, _START_JITTER, m)), 1e-9, np.pi * (1 - 1e-9))
    radius = np.abs(best) / max_magnitude
    return np.concatenate([scipy.special.logit(radius), scipy.special.logit(phase / np.pi)])


def design_eigenvalues(
    n: int,
    horizon: int,
    target=None,
    *,
    seed: int = 0,
    sharpness: float = 256.0,
    max_magnitude: float | None = None,
    max_iterations: int = 200,
) -> EigenvalueDesign:
    """N/2 stable discrete eigenvalues whose memory function best matches a target up to ``horizon``.

    Maximises s = min_{k < horizon, p(k) > 0} MF(k) / p(k) (through a power-mean smooth
    minimum, see the module docstring), MF the closed-form infinite-horizon memory function,
    p the target (default 1 at every lag: the flattest memory). s <= min(1, N / sum_k
    max_{j >= k} p(j)), so the flat design's smallest MF is at most N / horizon.

    Args:
        n: state size N (even, >= 2); N/2 eigenvalues are returned.
        horizon: lags 0..horizon-1 that the memory should cover (>= 1), e.g. the sequence length.
        target: None (flat), or a nonnegative real profile of length ``horizon`` (only its shape
            matters; lags where it is 0 are not constrained), e.g. a task's lag distribution.
        seed: seed of the jitter of the starting phases (same seed, same result).
        sharpness: final power-mean exponent q (>= 1); larger is closer to the exact minimum.
        max_magnitude: r_max in (0, 1), the largest |lambda| allowed (default
            exp(-1 / (100 horizon)): decay time at most 100 horizons).
        max_iterations: L-BFGS-B iterations per stage (>= 1).

    Returns:
        :class:`EigenvalueDesign` with the eigenvalues, their memory functions (infinite and
        finite horizon), scale s, bound and match = s / bound, and the optimiser's record.

    Raises:
        ValueError: naming the argument: n odd or < 2, horizon < 1, a target that is not a
        finite real 1-D array of length ``horizon``, negative or all zero, or a bad
        seed, sharpness, max_magnitude or max_iterations.
    """
    n = _check_state_size(n)
    horizon = _check_positive_int(horizon, "horizon")
    profile = _check_target(target, horizon)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a nonnegative integer, got {seed!r}")
    sharpness = _check_sharpness(sharpness)
    max_magnitude = _check_max_magnitude(max_magnitude, horizon)
    max_iterations = _check_positive_int(max_iterations, "max_iterations")

    m = n // 2
    full_profile = np.ones(horizon) if profile is None else profile
    support = np.flatnonzero(full_profile > 0)
    coarse_count = max(_COARSE_LAGS, _COARSE_LAGS_PER_STATE * n)
    step = -(-support.shape[0] // coarse_count)
    coarse = np.unique(np.concatenate([support[::step], support[-1:]]))
    ridge = _RELATIVE_RIDGE / (2.0 * (1.0 - max_magnitude**2))
    exponents = [q for q in _CONTINUATION if q < sharpness] + [sharpness]

    iterations = evaluations = 0
    with _single_blas_thread():
        x = _harmonic_start(m, int(support[-1]) + 1, _Objective(coarse, full_profile[coarse], max_magnitude, ridge,
                                                                exponents[0]),
                            max_magnitude, np.random.default_rng(seed))
        stages = [(q, coarse) for q in exponents]
        while stages:
            q, lags = stages.pop(0)
            objective = _Objective(lags, full_profile[lags], max_magnitude, ridge, q)
            result = scipy.optimize.minimize(objective, x, jac=True, method="L-BFGS-B",
                                             options={"maxiter": max_iterations})
            x = result.x
            iterations += int(result.nit)
            evaluations += objective.evaluations
            if not stages and lags is coarse and coarse.shape[0] < support.shape[0]:
                # Active set: the coarse lags plus the lags of the whole support where MF / p is
                # smallest now, so the lags that bind between the samples are optimised exactly.
                values, _ = memory_function_gradient(objective.eigenvalues(x), lags=support, ridge=ridge)
                evaluations += 1
                log_ratio = np.log(np.maximum(values, 1e-300)) - np.log(full_profile[support])
                binding = support[np.argsort(log_ratio, kind="stable")[:coarse.shape[0]]]
                stages.append((sharpness, np.union1d(coarse, binding)))
        lam = objective.eigenvalues(x)
        lam = lam[np.argsort(np.angle(lam))]
        memory = memory_function(lam, horizon=horizon, infinite_horizon=True)
        finite = memory_function(lam, horizon=horizon)
    with np.errstate(over="ignore"):  # MF / p overflows to inf where p ~ 1e-308: not the minimum
        scale = float(np.min(memory.values[support] / full_profile[support]))
    envelope = np.maximum.accumulate(full_profile[::-1])[::-1]  # max_{j >= k} p(j)
    bound = min(1.0, n / float(envelope.sum()))
    return EigenvalueDesign(
        eigenvalues=lam,
        horizon=horizon,
        target=None if profile is None else profile,
        memory=memory,
        finite_memory=finite,
        scale=scale,
        bound=bound,
        objective=float(np.exp(-result.fun)),
        sharpness=sharpness,
        iterations=iterations,
        evaluations=evaluations,
        converged=bool(result.success),
        message=str(result.message),
        seed=int(seed),
    )
