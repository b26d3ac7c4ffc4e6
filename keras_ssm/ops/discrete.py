"""Discretization of diagonal continuous systems in float64 numpy (analysis and reference values).

The keras.ops twin used inside layers is `keras_ssm.ops.diagonal.discretize_diagonal`.
"""

import numpy as np

DISCRETIZATIONS = ("zoh", "bilinear")


def check_discretization(method, name="discretization"):
    if method not in DISCRETIZATIONS:
        raise ValueError(f"`{name}` must be one of {DISCRETIZATIONS}, got {method!r}.")


def discretize_diagonal_numpy(dt, a, method):
    """Discrete eigenvalues and input weights of x' = a x + u (B = 1), complex128.

    ZOH:      lambda = exp(dt a),                       dB = (exp(dt a) - 1) / a
    bilinear: lambda = (1 + dt a / 2) / (1 - dt a / 2), dB = dt / (1 - dt a / 2)

    Args:
        dt: step sizes, broadcastable against a (e.g. (H, 1) for a of shape (H, M)).
        a: complex continuous eigenvalues.
        method: "zoh" or "bilinear".

    Returns:
        (lambda, dB), complex128 arrays of the broadcast shape.
    """
    check_discretization(method)
    dt = np.asarray(dt, dtype=np.float64)
    a = np.asarray(a, dtype=np.complex128)
    x = dt * a
    if method == "zoh":
        lam = np.exp(x)
        return lam, (lam - 1.0) / a
    den = 1.0 - 0.5 * x
    return (1.0 + 0.5 * x) / den, dt / den
