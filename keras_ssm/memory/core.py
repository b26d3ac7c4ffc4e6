"""Closed-form memory functions of linear state space models (numpy/scipy, float64).

A linear SSM driven by a scalar i.i.d. zero-mean input u_t has the real state

    x_t = sum_{k >= 0} v_k u_{t-k},        v_k = A^k b   (real state dimension d).

The memory function is the fraction of the variance of u_{t-k} that the best linear
readout of x_t recovers,

    MF(k) = 1 - min_w E[(u_{t-k} - w^T x_t)^2] / E[u^2] = v_k^T G^+ v_k,   G = sum_j v_j v_j^T,

and the memory capacity is MC = sum_k MF(k) <= rank(G) <= d.

Finite horizon T (state started at zero T steps ago): stack the v_k^T as the rows of the
T x d "feature" matrix X (a real Vandermonde matrix for a diagonal A, a Krylov matrix
otherwise). MF(k) is the leverage score of row k, [X (X^T X)^+ X^T]_kk = ||U_r[k, :]||^2 for
the thin SVD X = U S V^T truncated at the numerical rank r (singular values
sigma > sigma_max * eps * max(T, d)); so sum_k MF(k) = r exactly. G is never inverted:
Vandermonde matrices of slow eigenvalues reach condition numbers of 1e16.

Infinite horizon: G = sum_{k >= 0} v_k v_k^T is accumulated as a square-root factor,
G = R^T R, by doubling, G_{2T} = G_T + A^T G_T (A^T)^T, R_{2T} = qr([R_T; R_T (A^T)^T]),
until ||A^T||_2 <= eps (a square-root Smith iteration, which works on R, whose condition
number is that of X, rather than on G, whose condition number is its square). Then
MF(k) = ||S_r^{-1} V_r^T v_k||^2 from the SVD R = U S V^T with the same rank cut.

Conjugate pairs. A diagonal SSM stores one eigenvalue lambda of each conjugate pair. A
stored eigenvalue with Im(lambda) != 0 stands for the pair, i.e. two real state dimensions
with features (Re(b lambda^k), Im(b lambda^k)); an eigenvalue with Im(lambda) == 0 is one
real state dimension with feature |b| lambda^k. Any nonzero input weight b cancels out of
MF (MF is invariant to invertible changes of state coordinates), so b only matters where
it is zero (an unreachable mode).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import scipy.linalg

from keras_ssm.ops.discrete import DISCRETIZATIONS, check_discretization, discretize_diagonal_numpy

__all__ = [
    "MEMORY_LENGTH_FRACTION",
    "MemoryFunction",
    "memory_function",
    "memory_capacity",
    "memory_length",
    "memory_accuracy",
    "memory_summary",
    "memory_function_gradient",
    "discretize_eigenvalues",
    "DISCRETIZATIONS",
]

#: Memory length = the smallest lag by which this fraction of the memory capacity is reached.
MEMORY_LENGTH_FRACTION = 0.9

_EPS = np.finfo(np.float64).eps
# Doublings of the infinite-horizon Gramian: 2**200 * horizon steps exceeds any
# decay time representable with |lambda| < 1 in float64.
_MAX_DOUBLINGS = 200
# Channels processed together: bounds the (chunk, horizon, 2N) feature tensors.
_CHANNEL_CHUNK = 64


@dataclasses.dataclass(frozen=True, eq=False)
class MemoryFunction:
    """A memory-function curve with the numerical facts needed to trust it.

    Attributes:
        values: float64 (..., horizon). MF(k) for lags k = 0..horizon-1 (one curve per
            leading index, e.g. per channel: (H, horizon) for a layer).
        rank: int (...). Numerical rank r of the feature matrix (finite horizon: of X,
            so ``values.sum(-1) == rank``; infinite horizon: of the Gramian factor, the
            curve beyond ``horizon`` holds the remaining ``rank - capacity``).
        condition_number: float (...). sigma_max / sigma_min of the feature matrix over
            its ``state_dim`` structural columns (inf when exactly singular). Values
            near or above 1/eps ~ 4.5e15 mean the curve is at the edge of float64 and
            ``rank < state_dim`` was decided by the rank cut.
        state_dim: int (...). Real state dimension d (for a diagonal system: 2 per
            complex stored eigenvalue, 1 per real one).
        infinite_horizon: whether G sums over all lags (True) or the last ``horizon``
            inputs only (False; state started at zero ``horizon`` steps ago).
    """

    values: np.ndarray
    rank: np.ndarray
    condition_number: np.ndarray
    state_dim: np.ndarray
    infinite_horizon: bool = False

    @property
    def horizon(self) -> int:
        """Number of lags in ``values``."""
        return self.values.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        """Leading shape of ``values`` (e.g. ``(H,)`` for a layer, ``()`` for one system)."""
        return self.values.shape[:-1]

    @property
    def lags(self) -> np.ndarray:
        """Lags 0..horizon-1 (int)."""
        return np.arange(self.horizon)

    @property
    def capacity(self):
        """Memory capacity over the returned lags, MC = sum_k MF(k), shape ``batch_shape``."""
        return memory_capacity(self)

    def memory_length(self, fraction: float = MEMORY_LENGTH_FRACTION):
        """See :func:`memory_length`."""
        return memory_length(self, fraction)

    def accuracy(self, fraction: float = MEMORY_LENGTH_FRACTION):
        """See :func:`memory_accuracy`."""
        return memory_accuracy(self, fraction)

    def __getitem__(self, index) -> "MemoryFunction":
        """Select curves along the leading (channel) axes, e.g. ``mf[3]`` or ``mf[:8]``."""
        if not self.batch_shape:
            raise IndexError("this MemoryFunction holds a single curve and cannot be indexed")
        index = index if isinstance(index, tuple) else (index,)
        if Ellipsis in index:
            raise IndexError("Ellipsis is not supported when indexing a MemoryFunction")
        return MemoryFunction(
            values=self.values[index],
            rank=np.asarray(self.rank)[index],
            condition_number=np.asarray(self.condition_number)[index],
            state_dim=np.asarray(self.state_dim)[index],
            infinite_horizon=self.infinite_horizon,
        )

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single-curve MemoryFunction has no len(); use .horizon")
        return self.batch_shape[0]

    def __repr__(self) -> str:
        mc = np.asarray(self.capacity)
        rank = np.asarray(self.rank)
        if mc.ndim == 0:
            facts = f"capacity={float(mc):.4g}, rank={int(rank)}, condition_number={float(self.condition_number):.3g}"
        else:
            facts = f"capacity mean={mc.mean():.4g}, rank range=[{rank.min()}, {rank.max()}]"
        return (f"MemoryFunction(batch_shape={self.batch_shape}, horizon={self.horizon}, "
                f"infinite_horizon={self.infinite_horizon}, {facts})")


# ---------------------------------------------------------------------------------------
# Input validation


def _check_horizon(horizon) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral):
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    if horizon <= 0:
        raise ValueError(f"horizon must be a positive int, got {horizon}")
    return int(horizon)


def _check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    return float(fraction)


def _as_finite_array(x, name: str, min_ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {err}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be a numeric (real or complex) array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim or arr.size == 0:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) and be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no nan/inf)")
    return arr


def _memory_values(memory) -> np.ndarray:
    values = memory.values if isinstance(memory, MemoryFunction) else memory
    values = _as_finite_array(values, "memory", 1)
    if np.iscomplexobj(values):
        raise ValueError("memory must be a MemoryFunction or a real array of MF values (..., horizon)")
    return values.astype(np.float64, copy=False)


# ---------------------------------------------------------------------------------------
# Linear systems as feature generators: rows are v_k^T written in real coordinates.
#
# Both classes keep a "power" operator P(s) = A^s and apply it to feature rows,
# v_{k+s}^T = v_k^T (A^s)^T, which lets the features of T lags and the infinite-horizon
# Gramian be built by O(log) doublings of vectorised products.


class _DiagonalSystem:
    """x_{t} = diag(lambda) x_{t-1} + b u_t with one stored eigenvalue per conjugate pair.

    Feature columns: [Re z_n (m columns), Im z_n (m columns)] with z_n = b_n lambda_n^k
    (|b_n| lambda_n^k for real lambda_n, whose Im column is then exactly zero).
    """

    def __init__(self, eigenvalues: np.ndarray, input_vector: np.ndarray):
        self.eigenvalues = eigenvalues.astype(np.complex128)
        real_mode = self.eigenvalues.imag == 0
        weights = input_vector.astype(np.complex128)
        self.initial = np.where(real_mode, np.abs(weights), weights)
        self.num_modes = eigenvalues.shape[-1]
        self.num_columns = 2 * self.num_modes
        reachable = self.initial != 0
        self.state_dim = np.sum(np.where(real_mode, 1, 2) * reachable, axis=-1)

    @property
    def batch_shape(self):
        return self.eigenvalues.shape[:-1]

    def take(self, index) -> "_DiagonalSystem":
        out = object.__new__(_DiagonalSystem)
        out.eigenvalues = self.eigenvalues[index]
        out.initial = self.initial[index]
        out.num_modes, out.num_columns = self.num_modes, self.num_columns
        out.state_dim = self.state_dim[index]
        return out

    def spectral_radius(self) -> np.ndarray:
        return np.max(np.abs(self.eigenvalues), axis=-1)

    def first_row(self) -> np.ndarray:
        z = self.initial[..., None, :]
        return np.concatenate([z.real, z.imag], axis=-1)

    def power(self, steps: int) -> np.ndarray:
        return _elementwise_power(self.eigenvalues, steps)

    @staticmethod
    def square(power: np.ndarray) -> np.ndarray:
        return power * power

    @staticmethod
    def power_norm(power: np.ndarray) -> np.ndarray:
        return np.max(np.abs(power), axis=-1)

    def advance(self, rows: np.ndarray, power: np.ndarray) -> np.ndarray:
        m = self.num_modes
        z = (rows[..., :m] + 1j * rows[..., m:]) * power[..., None, :]
        return np.concatenate([z.real, z.imag], axis=-1)


class _DenseSystem:
    """x_t = A x_{t-1} + b u_t for a dense (m, m) A.

    Real A and b: a real state of dimension m, features v_k = A^k b.
    Complex A or b: a complex state whose real and imaginary parts form the real state
    (dimension 2m), features [Re(A^k b), Im(A^k b)].
    """

    def __init__(self, state_matrix: np.ndarray, input_vector: np.ndarray):
        self.is_complex = bool(np.iscomplexobj(state_matrix) or np.iscomplexobj(input_vector))
        dtype = np.complex128 if self.is_complex else np.float64
        self.state_matrix = state_matrix.astype(dtype)
        self.initial = input_vector.astype(dtype)
        self.num_modes = state_matrix.shape[-1]
        self.num_columns = 2 * self.num_modes if self.is_complex else self.num_modes
        self.state_dim = np.full(self.batch_shape, self.num_columns, dtype=np.int64)

    @property
    def batch_shape(self):
        return self.state_matrix.shape[:-2]

    def take(self, index) -> "_DenseSystem":
        out = object.__new__(_DenseSystem)
        out.is_complex = self.is_complex
        out.state_matrix = self.state_matrix[index]
        out.initial = self.initial[index]
        out.num_modes, out.num_columns = self.num_modes, self.num_columns
        out.state_dim = self.state_dim[index]
        return out

    def spectral_radius(self) -> np.ndarray:
        return np.max(np.abs(np.linalg.eigvals(self.state_matrix)), axis=-1)

    def first_row(self) -> np.ndarray:
        z = self.initial[..., None, :]
        return np.concatenate([z.real, z.imag], axis=-1) if self.is_complex else z

    def power(self, steps: int) -> np.ndarray:
        return np.linalg.matrix_power(self.state_matrix, steps)

    @staticmethod
    def square(power: np.ndarray) -> np.ndarray:
        return power @ power

    @staticmethod
    def power_norm(power: np.ndarray) -> np.ndarray:
        return np.linalg.norm(power, ord=2, axis=(-2, -1))

    def advance(self, rows: np.ndarray, power: np.ndarray) -> np.ndarray:
        transposed = np.swapaxes(power, -1, -2)
        if not self.is_complex:
            return rows @ transposed
        m = self.num_modes
        z = (rows[..., :m] + 1j * rows[..., m:]) @ transposed
        return np.concatenate([z.real, z.imag], axis=-1)


def _elementwise_power(base: np.ndarray, exponent: int) -> np.ndarray:
    """base**exponent by repeated squaring (exact for 0**0 = 1, accurate for complex base)."""
    result = np.ones_like(base)
    square = base.copy()
    while exponent:
        if exponent & 1:
            result = result * square
        exponent >>= 1
        if exponent:
            square = square * square
    return result


def _feature_rows(system, horizon: int) -> np.ndarray:
    """Rows v_0^T..v_{horizon-1}^T in real coordinates, (..., horizon, num_columns)."""
    rows = system.first_row()
    power = system.power(1)
    while rows.shape[-2] < horizon:
        rows = np.concatenate([rows, system.advance(rows, power)], axis=-2)
        if rows.shape[-2] < horizon:
            power = system.square(power)
    return rows[..., :horizon, :]


def _rank_tolerance(singular_values: np.ndarray, shape: tuple) -> np.ndarray:
    """sigma_max * eps * max(shape), (..., 1)."""
    return singular_values[..., :1] * _EPS * max(shape)


def _condition_number(singular_values: np.ndarray, state_dim: np.ndarray) -> np.ndarray:
    """sigma_max / sigma_{d-1}, d = structural dimension (capped at the number of singular values)."""
    last = np.clip(np.asarray(state_dim) - 1, 0, singular_values.shape[-1] - 1)
    smallest = np.take_along_axis(singular_values, last[..., None], axis=-1)[..., 0]
    largest = singular_values[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(smallest > 0, largest / np.where(smallest > 0, smallest, 1.0), np.inf)
    return np.where(largest > 0, cond, np.inf)


def _finite_horizon(system, horizon: int):
    features = _feature_rows(system, horizon)
    left, singular_values, _ = np.linalg.svd(features, full_matrices=False)
    keep = singular_values > _rank_tolerance(singular_values, features.shape[-2:])
    values = np.einsum("...tr,...r->...t", left * left, keep.astype(np.float64))
    return values, keep.sum(-1), _condition_number(singular_values, system.state_dim)


def _infinite_horizon(system, horizon: int):
    features = _feature_rows(system, horizon)
    factor = np.linalg.qr(features, mode="r")
    power = system.power(horizon)
    for _ in range(_MAX_DOUBLINGS):
        if np.all(system.power_norm(power) <= _EPS):
            break
        factor = np.linalg.qr(np.concatenate([factor, system.advance(factor, power)], axis=-2), mode="r")
        power = system.square(power)
    _, singular_values, right_t = np.linalg.svd(factor, full_matrices=False)
    keep = singular_values > _rank_tolerance(singular_values, (horizon, system.num_columns))
    inverse = np.where(keep, 1.0 / np.where(keep, singular_values, 1.0), 0.0)
    whitened = (features @ np.swapaxes(right_t, -1, -2)) * inverse[..., None, :]
    values = np.sum(whitened * whitened, axis=-1)
    return values, keep.sum(-1), _condition_number(singular_values, system.state_dim)


def _evaluate(system, horizon: int, infinite_horizon: bool) -> MemoryFunction:
    batch_shape = tuple(system.batch_shape)
    flat_count = int(np.prod(batch_shape, dtype=np.int64))
    compute = _infinite_horizon if infinite_horizon else _finite_horizon
    values = np.empty((flat_count, horizon))
    rank = np.empty(flat_count, dtype=np.int64)
    cond = np.empty(flat_count)
    state_dim = np.asarray(system.state_dim).reshape(flat_count)
    flat_system = _reshape_system(system, flat_count)
    for start in range(0, flat_count, _CHANNEL_CHUNK):
        chunk = slice(start, min(start + _CHANNEL_CHUNK, flat_count))
        values[chunk], rank[chunk], cond[chunk] = compute(flat_system.take(chunk), horizon)
    return MemoryFunction(
        values=values.reshape(batch_shape + (horizon,)),
        rank=rank.reshape(batch_shape)[()],
        condition_number=cond.reshape(batch_shape)[()],
        state_dim=state_dim.reshape(batch_shape)[()],
        infinite_horizon=bool(infinite_horizon),
    )


def _reshape_system(system, flat_count: int):
    """View a system with batch shape (...) as one with batch shape (flat_count,)."""
    out = object.__new__(type(system))
    out.__dict__.update(system.__dict__)
    if isinstance(system, _DiagonalSystem):
        out.eigenvalues = system.eigenvalues.reshape(flat_count, -1)
    else:
        out.state_matrix = system.state_matrix.reshape((flat_count,) + system.state_matrix.shape[-2:])
    out.initial = system.initial.reshape(flat_count, -1)
    out.state_dim = np.asarray(system.state_dim).reshape(flat_count)
    return out


# ---------------------------------------------------------------------------------------
# Public API


def memory_function(
    eigenvalues=None,
    *,
    state_matrix=None,
    input_vector=None,
    horizon: int = 1024,
    infinite_horizon: bool = False,
    full_spectrum: bool = False,
) -> MemoryFunction:
    """Closed-form memory function MF(k), k = 0..horizon-1, of a linear SSM.

    Give exactly one of:

    * ``eigenvalues``: (..., m) discrete eigenvalues lambda of a diagonal SSM, one per
      conjugate pair (Im != 0: a pair, two real state dims; Im == 0: one real dim).
      ``input_vector`` (broadcastable to (..., m), default ones) only matters where it
      is zero (that mode is unreachable and drops out). With ``full_spectrum=True``,
      ``eigenvalues`` is instead the whole spectrum of a real state matrix, both members
      of every conjugate pair listed (e.g. S4's ``discrete_eigenvalues()``); the members
      with Im < 0 are dropped, their partners standing for the pairs. (Without the flag
      the curve and rank would come out the same, since a conjugate's features are
      collinear with its partner's, but ``state_dim`` and ``condition_number`` would not.)
    * ``state_matrix``: (..., m, m) dense discrete state matrix A with ``input_vector``
      b (..., m) (required), x_t = A x_{t-1} + b u_t. Real A and b mean a real state of
      dimension m; complex A or b a complex state whose real and imaginary parts are
      the real state (dimension 2m), as in S4's ``discrete_state_space()``.

    Leading axes (e.g. channels) are vectorised: ``values`` has shape (..., horizon).

    Finite horizon (``infinite_horizon=False``, state started at zero ``horizon`` steps
    ago, e.g. horizon = sequence length): MF(k) is the leverage of row k of the
    horizon x d feature matrix X (rows v_k = A^k b in real coordinates) from its thin SVD
    with rank cut sigma > sigma_max * eps * max(horizon, d); ``values.sum(-1) == rank``.
    For slow systems (decay time >~ horizon) the curve rises again at the last lags: the
    oldest inputs have no predecessors to be confused with (an edge effect of the
    finite window, absent from the infinite-horizon curve).

    Infinite horizon: MF(k) = v_k^T G^+ v_k with G = sum_{j>=0} v_j v_j^T accumulated as a
    QR factor by doubling (needs every |eigenvalue| < 1); the same rank cut applies, and
    ``values`` are the first ``horizon`` lags of a curve that sums to ``rank`` over all lags.

    Returns:
        :class:`MemoryFunction` with ``values`` (..., horizon), ``rank``,
        ``condition_number``, ``state_dim`` (shapes (...)) and ``capacity``.

    Raises:
        ValueError: naming the argument, for a missing/duplicate system, wrong shapes,
        non-finite values, horizon <= 0, or |lambda| >= 1 with ``infinite_horizon``.
    """
    horizon = _check_horizon(horizon)
    if (eigenvalues is None) == (state_matrix is None):
        raise ValueError("give exactly one of eigenvalues (diagonal SSM) or state_matrix (dense SSM)")
    if full_spectrum and eigenvalues is None:
        raise ValueError("full_spectrum=True applies to eigenvalues only, not to state_matrix")
    if eigenvalues is not None:
        lam = _as_finite_array(eigenvalues, "eigenvalues", 1)
        weights = np.ones(lam.shape) if input_vector is None else _as_finite_array(input_vector, "input_vector", 1)
        try:
            weights = np.broadcast_to(weights, lam.shape)
        except ValueError:
            raise ValueError(
                f"input_vector shape {np.shape(weights)} does not broadcast to eigenvalues shape {lam.shape}"
            ) from None
        if full_spectrum:
            upper = np.sum(lam.imag > 0, axis=-1)
            lower = np.sum(lam.imag < 0, axis=-1)
            if np.any(upper != lower):
                raise ValueError(
                    "eigenvalues with full_spectrum=True must list conjugate pairs completely (as many "
                    "eigenvalues with Im > 0 as with Im < 0 in every row)"
                )
            weights = np.where(lam.imag < 0, 0, weights)
        system = _DiagonalSystem(lam, weights)
        name = "eigenvalues"
    else:
        matrix = _as_finite_array(state_matrix, "state_matrix", 2)
        if matrix.shape[-1] != matrix.shape[-2]:
            raise ValueError(f"state_matrix must be square in its last two axes (..., m, m), got shape {matrix.shape}")
        if input_vector is None:
            raise ValueError("input_vector (..., m) is required with state_matrix")
        weights = _as_finite_array(input_vector, "input_vector", 1)
        if weights.shape[-1] != matrix.shape[-1]:
            raise ValueError(
                f"input_vector must have shape (..., {matrix.shape[-1]}) to match state_matrix {matrix.shape}, "
                f"got {weights.shape}"
            )
        try:
            batch = np.broadcast_shapes(matrix.shape[:-2], weights.shape[:-1])
        except ValueError:
            raise ValueError(
                f"batch axes of state_matrix {matrix.shape[:-2]} and input_vector {weights.shape[:-1]} do not broadcast"
            ) from None
        m = matrix.shape[-1]
        system = _DenseSystem(np.broadcast_to(matrix, batch + (m, m)), np.broadcast_to(weights, batch + (m,)))
        name = "state_matrix"
    if infinite_horizon:
        radius = system.spectral_radius()
        if np.any(radius >= 1.0):
            raise ValueError(
                f"{name} must have all |eigenvalues| < 1 for infinite_horizon=True "
                f"(largest is {float(np.max(radius)):.17g}); use a finite horizon instead"
            )
    return _evaluate(system, horizon, bool(infinite_horizon))


def _diagonal_powers(eigenvalues: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """lambda_n^k for the given lags k >= 0, (m, len(lags)), from two short power tables.

    lambda^(b j + i) = lambda^(b j) lambda^i with b ~ sqrt(max lag): about 2 sqrt(max lag) powers
    per mode plus one complex product per entry (no transcendental call per entry).
    """
    block = max(1, int(np.ceil(np.sqrt(int(lags.max()) + 1))))
    small = eigenvalues[:, None] ** np.arange(block)[None, :]
    large = eigenvalues[:, None] ** (block * np.arange(int(lags.max()) // block + 1))[None, :]
    return large[:, lags // block] * small[:, lags % block]


def memory_function_gradient(eigenvalues, horizon=None, weights=None, *, lags=None, ridge: float = 0.0):
    """Infinite-horizon MF of a diagonal SSM and the gradient of sum_k weights_k MF(k).

    The differentiable twin of ``memory_function(eigenvalues, horizon=horizon,
    infinite_horizon=True).values`` for one system whose stored eigenvalues lambda (m,)
    are all non-real (each stands for a conjugate pair, N = 2m real state dims):

        x_k = [Re lambda^k, Im lambda^k]  (N,),      G = sum_{k>=0} x_k x_k^T + ridge I,
        MF(k) = x_k^T G^{-1} x_k,                      k = 0..horizon-1 (or the given lags).

    G in closed form from S1_ij = 1/(1 - lambda_i conj(lambda_j)) and S2_ij = 1/(1 - lambda_i lambda_j):
    G_RR = Re(S1 + S2)/2, G_II = Re(S1 - S2)/2, G_RI = Im(S2 - S1)/2, G_IR = G_RI^T; MF(k) = ||L^{-1} x_k||^2
    with the Cholesky factor L L^T = G. For f = sum_k w_k MF(k), with a_k = G^{-1} x_k and
    B = sum_k w_k a_k a_k^T,

        df = 2 sum_k w_k a_k^T dx_k - tr(dG B),

    where dx_k comes from d(lambda^k) = k lambda^(k-1) dlambda and dG from dS1_ij = S1_ij^2
    (dlambda_i conj(lambda_j) + lambda_i conj(dlambda_j)), dS2_ij = S2_ij^2 (dlambda_i lambda_j +
    lambda_i dlambda_j). Cost O(L N^2 + N^3) for L lags; no simulation, no SVD.

    Unlike :func:`memory_function` there is no rank cut: G must be positive definite
    (distinct, non-real eigenvalues, each |lambda| < 1). ``ridge`` > 0 (absolute; G's diagonal
    entries are about 1 / (2 (1 - |lambda|^2))) makes the function, and its exact gradient (the
    ridge is a constant, so dG is unchanged), defined through near-coincident eigenvalues, at the
    price of MF values below the exact ones by about ridge / sigma_min(G) relative.

    Args:
        eigenvalues: complex (m,) with 0 < |lambda| < 1 and Im(lambda) != 0.
        horizon: lags 0..horizon-1 (positive int); or give ``lags`` instead.
        weights: None (values only) or real weights w_k, one per lag.
        lags: 1-D array of nonnegative int lags (any order), instead of ``horizon``.
        ridge: nonnegative float, default 0.

    Returns:
        (values, gradient): float64 MF(k) per lag, and complex128 (m,) with
        gradient_n = df/dRe(lambda_n) + i df/dIm(lambda_n), i.e. df = Re(sum_n conj(gradient_n)
        dlambda_n) (None when ``weights`` is None).

    Raises:
        ValueError: naming the argument, for wrong shapes, non-finite values, real or unstable
        or zero eigenvalues, a negative ridge, or a Gramian that is not positive definite.
    """
    if (horizon is None) == (lags is None):
        raise ValueError("give exactly one of horizon (lags 0..horizon-1) or lags (an array of lags)")
    if lags is None:
        lag_array = np.arange(_check_horizon(horizon))
    else:
        lag_array = _as_finite_array(lags, "lags", 1)
        if lag_array.ndim != 1 or not np.issubdtype(lag_array.dtype, np.integer) or np.any(lag_array < 0):
            raise ValueError(f"lags must be a 1-D array of nonnegative ints, got {lag_array.dtype} {lag_array.shape}")
        lag_array = lag_array.astype(np.int64)
    lam = _as_finite_array(eigenvalues, "eigenvalues", 1).astype(np.complex128)
    if lam.ndim != 1:
        raise ValueError(f"eigenvalues must be one system's stored eigenvalues, shape (m,), got {lam.shape}")
    if np.any(lam.imag == 0):
        raise ValueError("eigenvalues must all be non-real (each stands for a conjugate pair); "
                         "use memory_function for real eigenvalues")
    radius = np.abs(lam)
    if np.any(radius >= 1.0):
        raise ValueError(f"eigenvalues must satisfy |lambda| < 1, got |lambda| up to {float(radius.max()):.17g}")
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not ridge >= 0 or not np.isfinite(ridge):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if weights is not None:
        weights = _as_finite_array(weights, "weights", 1)
        if np.iscomplexobj(weights) or weights.shape != lag_array.shape:
            raise ValueError(f"weights must be a real array of shape {lag_array.shape} (one per lag), "
                             f"got {weights.dtype} {weights.shape}")
        weights = weights.astype(np.float64)
    parts = _stationary_parts(lam, lag_array, float(ridge))
    if weights is None:
        return parts.values, None
    return parts.values, _stationary_gradient(parts, weights)


@dataclasses.dataclass(frozen=True)
class _StationaryParts:
    """Intermediate results of :func:`memory_function_gradient`, reused by its gradient."""

    eigenvalues: np.ndarray
    lags: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    cholesky: np.ndarray
    powers: np.ndarray
    whitened: np.ndarray
    values: np.ndarray


def _stationary_parts(lam: np.ndarray, lags: np.ndarray, ridge: float) -> _StationaryParts:
    """Closed-form Gramian, its Cholesky factor and MF at ``lags`` (validated inputs)."""
    s1 = 1.0 / (1.0 - lam[:, None] * lam.conj()[None, :])
    s2 = 1.0 / (1.0 - lam[:, None] * lam[None, :])
    gram = 0.5 * np.block([[(s1 + s2).real, (s2 - s1).imag], [(s2 - s1).imag.T, (s1 - s2).real]])
    gram = 0.5 * (gram + gram.T)
    if ridge:
        gram[np.diag_indices_from(gram)] += ridge
    try:
        chol = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        raise ValueError("the Gramian of these eigenvalues is not positive definite (coincident "
                         "eigenvalues, or conjugates of each other); pass ridge > 0 or use memory_function") from None
    powers = _diagonal_powers(lam, lags)
    features = np.concatenate([powers.real, powers.imag])  # (N, L): columns x_k
    whitened = scipy.linalg.solve_triangular(chol, features, lower=True)
    values = np.einsum("nk,nk->k", whitened, whitened)
    return _StationaryParts(lam, lags, s1, s2, chol, powers, whitened, values)


def _stationary_gradient(parts: _StationaryParts, weights: np.ndarray) -> np.ndarray:
    """Gradient (df/dRe + i df/dIm per eigenvalue) of f = sum_k weights_k MF(k)."""
    lam, s1, s2 = parts.eigenvalues, parts.s1, parts.s2
    m = lam.shape[0]
    solved = scipy.linalg.solve_triangular(parts.cholesky.T, parts.whitened, lower=False)  # a_k = G^{-1} x_k
    # 2 sum_k w_k a_k^T dx_k = Re sum_n dlambda_n [2 sum_k w_k (aR - i aI)_nk k lambda_n^(k-1)]
    # (lambda != 0: a zero eigenvalue is real, which is rejected).
    weighted = (solved[:m] - 1j * solved[m:]) * (weights * parts.lags)
    from_features = 2.0 * np.einsum("nk,nk->n", weighted, parts.powers) / lam
    b = (solved * weights) @ solved.T
    b_rr, b_ri, b_ir, b_ii = b[:m, :m], b[:m, m:], b[m:, :m], b[m:, m:]
    m1 = s1**2 * (b_rr + b_ii + 1j * (b_ri - b_ir)) / 2
    m2 = s2**2 * (b_rr - b_ii - 1j * (b_ri + b_ir)) / 2
    from_gram = m1 @ lam.conj() + (m1.T @ lam).conj() + (m2 + m2.T) @ lam
    return (from_features - from_gram).conj()


def memory_capacity(memory):
    """Memory capacity MC = sum_k MF(k) over the lags of ``memory``.

    Args:
        memory: a :class:`MemoryFunction` or an array of MF values (..., horizon).
    Returns:
        float64 array of shape (...) (a numpy scalar for a single curve).
    """
    return _memory_values(memory).sum(axis=-1)[()]


def memory_length(memory, fraction: float = MEMORY_LENGTH_FRACTION):
    """Lag by which ``fraction`` of the memory capacity is reached.

    l = min { k : sum_{j<=k} MF(j) >= fraction * MC },  MC = sum over all returned lags,
    so lags 0..l hold at least ``fraction`` of the capacity (l is a 0-based lag; a curve
    with MC = 0 gives 0).

    Args:
        memory: a :class:`MemoryFunction` or an array of MF values (..., horizon).
        fraction: in (0, 1].
    Returns:
        int64 array of shape (...).
    """
    fraction = _check_fraction(fraction)
    values = np.clip(_memory_values(memory), 0.0, None)
    cumulative = np.cumsum(values, axis=-1)
    reached = cumulative >= fraction * cumulative[..., -1:]
    return np.argmax(reached, axis=-1)[()]


def memory_accuracy(memory, fraction: float = MEMORY_LENGTH_FRACTION):
    """Mean MF over the lags that carry the memory: the "accuracy" side of the trade-off.

    accuracy = (1 / (l + 1)) * sum_{k=0}^{l} MF(k),  l = memory_length(memory, fraction),

    a number in [0, 1]: 1 means every lag up to l is reconstructed perfectly (short,
    exact memory); a small value means the same capacity is spread thinly over many
    lags (long but inaccurate memory). Since sum_{k<=l} MF(k) >= fraction * MC,
    accuracy * (l + 1) >= fraction * MC: for a given capacity, length and accuracy
    trade off against each other.

    Returns:
        float64 array of shape (...).
    """
    fraction = _check_fraction(fraction)
    values = np.clip(_memory_values(memory), 0.0, None)
    length = np.asarray(memory_length(values, fraction))
    cumulative = np.cumsum(values, axis=-1)
    reached_mass = np.take_along_axis(cumulative, length[..., None], axis=-1)[..., 0]
    return (reached_mass / (length + 1))[()]


def memory_summary(memory, fraction: float = MEMORY_LENGTH_FRACTION) -> dict:
    """Channel-averaged summary of a memory function, for tables.

    Args:
        memory: a MemoryFunction, or its values (..., horizon) as an array.

    Returns a dict with ``capacity`` (mean MC), ``length`` (mean memory_length),
    ``accuracy`` (mean memory_accuracy) and, for a MemoryFunction, ``rank`` (mean numerical rank),
    ``state_dim`` (mean real state dimension) and ``condition_number`` (largest over channels).
    """
    try:
        values = memory.values if isinstance(memory, MemoryFunction) else np.asarray(memory, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"memory must be a MemoryFunction or an array (..., horizon), got {type(memory).__name__}") from None
    if values.ndim < 1 or values.shape[-1] < 1:
        raise ValueError(f"memory must be a MemoryFunction or an array (..., horizon), got shape {values.shape}")
    summary = {
        "capacity": float(np.mean(memory_capacity(values))),
        "length": float(np.mean(memory_length(values, fraction))),
        "accuracy": float(np.mean(memory_accuracy(values, fraction))),
    }
    if isinstance(memory, MemoryFunction):
        summary.update(rank=float(np.mean(memory.rank)), state_dim=float(np.mean(memory.state_dim)),
                       condition_number=float(np.max(memory.condition_number)))
    return summary


def discretize_eigenvalues(continuous_eigenvalues, dt, method: str = "zoh") -> np.ndarray:
    """Discrete eigenvalues of continuous ones a with step dt (broadcast), complex128.

    ZOH: lambda = exp(dt a).  Bilinear: lambda = (1 + dt a / 2) / (1 - dt a / 2).
    Both map Re(a) < 0 to |lambda| < 1.
    """
    check_discretization(method, name="method")
    a = _as_finite_array(continuous_eigenvalues, "continuous_eigenvalues", 0).astype(np.complex128)
    step = _as_finite_array(dt, "dt", 0).astype(np.float64)
    if np.any(step <= 0):
        raise ValueError("dt must be positive")
    if method == "bilinear" and np.any(step * a / 2 == 1):
        raise ValueError("bilinear discretization is singular where dt * a / 2 == 1")
    return discretize_diagonal_numpy(step, a, method)[0]
