"""The SSM convolution kernels in float64 numpy, written straight from the math: the reference values.

The tests and `benchmarks/gpu_check.py` compare the layers' kernels (keras.ops, float32, on any device)
with these. Nothing here calls the code it checks: every function starts from the raw parameters.

Diagonal system (S4D), per channel h and mode n, with one of each conjugate pair stored (N/2 modes):

    a = -exp(log_a_real) + i a_imag,   dt = exp(log_dt),   B = 1
    ZOH:       lambda = exp(dt a),                    dB = (lambda - 1) / a
    bilinear:  lambda = (1 + dt a/2) / (1 - dt a/2),  dB = dt / (1 - dt a/2)
    K[c, h, l] = 2 Re( sum_n C[c, h, n] dB[h, n] lambda[h, n]^l )     (the conjugate half gives 2 Re)

DPLR system (S4), on the conjugate-expanded complex state of size N (bilinear only):

    A = diag([Lambda, conj Lambda]) - sum_j p_j p_j^*,   p_j = [P_j; conj P_j]
    B = [B; conj B],   C = [C, conj C]
    dA = (I - dt/2 A)^{-1} (I + dt/2 A),   dB = (I - dt/2 A)^{-1} dt B
    K[c, h, l] = Re( C[c, h] dA[h]^l dB[h] )

Complex parameters are stored as (..., 2) [real, imag] pairs, as in the layers.
"""

import numpy as np

POWER_CHUNK = 1024  # lambda^l is formed for this many l at a time: (H, N/2, 1024) complex128 at most


def pairs_to_complex(x):
    """float (..., 2) [real, imag] -> complex128 (...)."""
    x = np.asarray(x, dtype=np.float64)
    return x[..., 0] + 1j * x[..., 1]


def continuous_eigenvalues(log_a_real, a_imag):
    """a = -exp(log_a_real) + i a_imag, complex128 of their shape."""
    return -np.exp(np.asarray(log_a_real, np.float64)) + 1j * np.asarray(a_imag, np.float64)


def discretize_diagonal(dt, a, method):
    """(lambda, dB) of x' = a x + u by "zoh" or "bilinear" (module docstring); dt broadcasts against a."""
    x = dt * a
    if method == "zoh":
        lam = np.exp(x)
        return lam, (lam - 1.0) / a
    if method == "bilinear":
        return (1 + x / 2) / (1 - x / 2), dt / (1 - x / 2)
    raise ValueError(f"`method` must be 'zoh' or 'bilinear', got {method!r}.")


def vandermonde_kernel(weights, lam, length):
    """K[..., h, l] = 2 Re( sum_n weights[..., h, n] lam[h, n]^l ): weights (..., H, M), lam (H, M) -> (..., H, L)."""
    weights = np.asarray(weights)
    kernel = np.empty(weights.shape[:-1] + (length,))
    for start in range(0, length, POWER_CHUNK):
        powers = lam[..., None] ** np.arange(start, min(start + POWER_CHUNK, length))  # (H, M, chunk)
        kernel[..., start:start + POWER_CHUNK] = 2 * np.real(np.einsum("...hn,hnl->...hl", weights, powers))
    return kernel


def dplr_dense(dt, lam, P, B):
    """A, dA, dB of the conjugate-expanded DPLR system (module docstring), complex128.

    Args:
        dt (H,), lam (H, M), P (rank, H, M), B (H, M): complex (lam, P, B) and real (dt) float64.

    Returns:
        A (H, 2M, 2M), dA (H, 2M, 2M), dB (H, 2M).
    """
    p = np.concatenate([P, P.conj()], axis=-1)                                  # (rank, H, 2M)
    eye = np.eye(p.shape[-1])
    A = np.concatenate([lam, lam.conj()], axis=-1)[..., None] * eye - np.einsum("jhn,jhm->hnm", p, p.conj())
    half = 0.5 * dt[:, None, None] * A
    left = eye - half
    dA = np.linalg.solve(left, eye + half)
    dB = np.linalg.solve(left, (dt[:, None] * np.concatenate([B, B.conj()], axis=-1))[..., None])[..., 0]
    return A, dA, dB


def power_kernel(dA, dB, C, length):
    """K[c, h, l] = Re( C[c, h] dA[h]^l dB[h] ), one step of the recurrence per l: dA (H, N, N), dB (H, N),
    C (channels, H, N) -> (channels, H, L)."""
    state, kernel = dB, np.empty(C.shape[:2] + (length,))
    for step in range(length):
        kernel[..., step] = np.real(np.einsum("chn,hn->ch", C, state))
        state = np.einsum("hnm,hm->hn", dA, state)
    return kernel


# ---------------------------------------------------------------------------------------------
# The same from a built layer's variables (read only, never its methods).

def _values(variable):
    return np.asarray(variable.numpy(), dtype=np.float64)


def s4d_kernel(layer, length):
    """The kernel (channels, H, L) of a built S4D layer (without `frozen_modes`) from its variables."""
    a = continuous_eigenvalues(_values(layer.log_a_real), _values(layer.a_imag))
    lam, dB = discretize_diagonal(np.exp(_values(layer.log_dt))[:, None], a, layer.discretization)
    return vandermonde_kernel(pairs_to_complex(layer.C.numpy()) * dB, lam, length)


def s4_system(layer):
    """A, dA, dB (`dplr_dense`) and C = [C, conj C] (channels, H, 2M) of a built S4 layer, complex128."""
    lam = continuous_eigenvalues(_values(layer.log_a_real), _values(layer.a_imag))
    A, dA, dB = dplr_dense(np.exp(_values(layer.log_dt)), lam, pairs_to_complex(layer.P.numpy()),
                           pairs_to_complex(layer.B.numpy()))
    C = pairs_to_complex(layer.C.numpy())
    return A, dA, dB, np.concatenate([C, C.conj()], axis=-1)


def s4_kernel(layer, length):
    """The kernel (channels, H, L) of a built S4 layer from its variables."""
    _, dA, dB, C = s4_system(layer)
    return power_kernel(dA, dB, C, length)


def layer_kernel(layer, length):
    """`s4_kernel` for a layer with a low-rank term P, else `s4d_kernel`."""
    return s4_kernel(layer, length) if hasattr(layer, "P") else s4d_kernel(layer, length)
