"""The loss gradient of a diagonal SSM's parameters, split by input lag (numpy, float64).

A diagonal layer (S4D) convolves each feature h with the kernel

    K_c[h, k] = 2 Re( sum_n C_c[h, n] dB[h, n] lambda[h, n]^k ),      k = 0..L-1,

(c = 0 causal, c = 1 anticausal when bidirectional; lambda, dB from the continuous eigenvalue
a = -exp(log_a_real) + i a_imag and the step dt = exp(log_dt)). The loss L depends on the kernel only,
so with the kernel gradient G_c[h, k] = dL/dK_c[h, k] = sum_{b, t} g_{b,t,h} u_{b,t-k,h} (g the loss
gradient of the convolution's output, u its input: the correlation of the teacher signal with the
input k steps back), every parameter's gradient is a sum over lags,

    dL/dtheta = sum_k P_theta[k],      P_theta[k] = sum_c G_c[h, k] dK_c[h, k]/dtheta,

and P_theta[k] is the part that the input at lag k contributes. With the holomorphic derivative of one
mode's kernel term in a,

    F_n[k] = sum_c G_c[k] C_c,n ( dB'(a) lambda^k + dB k lambda^(k-1) lambda'(a) ),

    P_log_a_real,n[k] = 2 Re( F_n[k] Re(a_n) )        (d a / d log_a_real = -exp(log_a_real) = Re a)
    P_a_imag,n[k]     = -2 Im( F_n[k] )               (d a / d a_imag = i)
    P_log_dt[k]       = 2 Re( sum_n sum_c G_c[k] C_c,n ( dB_dt lambda^k + dB k lambda^(k-1) lambda_dt ) ) dt
    P_C_c,n[k]        = 2 G_c[k] ( Re(dB lambda^k), -Im(dB lambda^k) )    (real and imaginary part of C)

    ZOH:      lambda' = dt lambda,    dB' = (dt lambda - dB) / a,   lambda_dt = a lambda,   dB_dt = lambda
    bilinear: lambda' = dt / d^2,     dB' = dt^2 / (2 d^2),         lambda_dt = a / d^2,    dB_dt = 1 / d^2,
              d = 1 - dt a / 2.

Where Re a is held at -MIN_DECAY (the layer's floor), d a / d log_a_real = 0.

**Memory push.** One plain gradient-descent step (learning rate 1, every one of log_a_real, a_imag,
log_dt trained) changes log|lambda_n| to first order by

    push_n[k] = -( J_lar,n P_log_a_real,n[k] + J_ai,n P_a_imag,n[k] + J_dt,n P_log_dt[k] ),

with J = d log|lambda_n| / d theta = Re( (d lambda_n / d theta) / lambda_n ). push_n[k] > 0: the input at
lag k pulls mode n toward |lambda| = 1 (slower decay, longer memory); < 0: toward faster decay. Adam
rescales each parameter's step, but not its sign.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_ssm.ops.discrete import check_discretization, discretize_diagonal_numpy

__all__ = ["LagGradient", "lag_gradient"]


@dataclasses.dataclass(frozen=True, eq=False)
class LagGradient:
    """The per-lag parts of one diagonal layer's parameter gradients (float64 numpy).

    Attributes (H features, M = N/2 stored modes, L lags, c kernels: 2 when bidirectional):
        lags: (L,) the lags 0..L-1.
        log_a_real, a_imag: (H, M, L) parts of dL/dlog_a_real and dL/da_imag.
        log_dt: (H, L) parts of dL/dlog_dt.
        C: (c, H, M, 2, L) parts of dL/dC (real, imaginary).
        memory_push: (H, M, L) first-order change of log|lambda| in one gradient-descent step, per lag
            (> 0: toward longer memory).
        eigenvalues: (H, M) the discrete eigenvalues lambda the gradient was taken at.
        loss: the loss of the batch.
    """

    lags: np.ndarray
    log_a_real: np.ndarray
    a_imag: np.ndarray
    log_dt: np.ndarray
    C: np.ndarray
    memory_push: np.ndarray
    eigenvalues: np.ndarray
    loss: float = float("nan")

    def total(self, name: str) -> np.ndarray:
        """The whole gradient of parameter ``name`` (or the whole ``memory_push``): the sum over lags."""
        if name not in ("log_a_real", "a_imag", "log_dt", "C", "memory_push"):
            raise ValueError(f"`name` must be one of 'log_a_real', 'a_imag', 'log_dt', 'C', 'memory_push', "
                             f"got {name!r}.")
        return np.sum(getattr(self, name), axis=-1)

    def push_by_lag(self) -> np.ndarray:
        """(L,) the memory push per lag summed over features and modes: which lags lengthen memory."""
        return np.sum(self.memory_push, axis=(0, 1))


def _derivatives(a, dt, method):
    """(lambda, dB, lambda'(a), dB'(a), lambda_dt, dB_dt), each complex (H, M)."""
    lam, db = discretize_diagonal_numpy(dt, a, method)
    if method == "zoh":
        return lam, db, dt * lam, (dt * lam - db) / a, a * lam, lam
    d2 = (1.0 - 0.5 * dt * a) ** 2
    return lam, db, dt / d2, dt * dt / (2.0 * d2), a / d2, 1.0 / d2


def lag_gradient(kernel_gradient, continuous_eigenvalues, dt, C, discretization: str = "zoh", *,
                 decay_floored=None, loss: float = float("nan")) -> LagGradient:
    """Split the loss gradient of a diagonal SSM's parameters by input lag (formulas in the module docstring).

    Args:
        kernel_gradient: dL/dK, real (c, H, L) (or (H, L) for one kernel).
        continuous_eigenvalues: a, complex (H, M).
        dt: (H,) step sizes.
        C: complex (c, H, M) (or (H, M)) output weights.
        discretization: "zoh" or "bilinear".
        decay_floored: optional boolean (H, M), True where Re a is held at the layer's floor (no gradient
            reaches log_a_real there).
        loss: the batch loss, kept with the result.

    Returns:
        A :class:`LagGradient`.
    """
    check_discretization(discretization)
    G = np.asarray(kernel_gradient, np.float64)
    C = np.asarray(C, np.complex128)
    if G.ndim == 2:
        G = G[None]
    if C.ndim == 2:
        C = C[None]
    a = np.asarray(continuous_eigenvalues, np.complex128)
    dt = np.asarray(dt, np.float64).reshape(-1, 1)
    if a.ndim != 2 or G.ndim != 3 or C.shape != (G.shape[0],) + a.shape or G.shape[1] != a.shape[0] \
            or dt.shape[0] != a.shape[0]:
        raise ValueError(f"shapes do not match: kernel_gradient (c, H, L) {G.shape}, continuous_eigenvalues "
                         f"(H, M) {a.shape}, C (c, H, M) {C.shape}, dt (H,) {dt.shape[:1]}.")
    length = G.shape[-1]
    lam, db, lam_a, db_a, lam_dt, db_dt = _derivatives(a, dt, discretization)
    lags = np.arange(length)
    powers = lam[..., None] ** lags                                          # lambda^k, (H, M, L)
    k_powers = lags * np.concatenate([np.zeros_like(lam)[..., None], powers[..., :-1]], axis=-1)  # k lambda^(k-1)
    Q = np.einsum("chk,chm->hmk", G, C)                                      # sum_c G_c[k] C_c,n
    F = Q * (db_a[..., None] * powers + db[..., None] * k_powers * lam_a[..., None])
    a_re_factor = a.real if decay_floored is None else np.where(decay_floored, 0.0, a.real)
    p_log_a_real = 2.0 * np.real(F * a_re_factor[..., None])
    p_a_imag = -2.0 * np.imag(F)
    p_log_dt = 2.0 * np.real(np.sum(Q * (db_dt[..., None] * powers + db[..., None] * k_powers * lam_dt[..., None]),
                                    axis=1)) * dt
    w = db[..., None] * powers                                               # dB lambda^k, (H, M, L)
    p_C = 2.0 * G[:, :, None, None, :] * np.stack([np.real(w), -np.imag(w)], axis=-2)[None]
    j_lar = np.real(lam_a / lam * a_re_factor)
    j_ai = np.real(lam_a / lam * 1j)
    j_dt = np.real(lam_dt / lam) * dt
    push = -(j_lar[..., None] * p_log_a_real + j_ai[..., None] * p_a_imag + j_dt[..., None] * p_log_dt[:, None, :])
    return LagGradient(lags=lags, log_a_real=p_log_a_real, a_imag=p_a_imag, log_dt=p_log_dt, C=p_C,
                       memory_push=push, eigenvalues=lam, loss=float(loss))
