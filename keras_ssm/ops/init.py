"""Initial values of SSM parameters, computed once in float64 numpy at build time.

Nothing here runs inside a layer's `call()`; the layers turn these arrays into variables through
`keras_ssm.ops.ArrayInitializer`.
"""

import numpy as np

EIGENVALUE_INITS = ("inv", "lin", "real", "legs", "random")


def hippo_legs(N):
    """HiPPO-LegS state matrix and input vector.

    A[n, k] = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) for n = k, 0 for n < k;  B[n] = sqrt(2n+1).

    Returns:
        (A, B): float64 arrays of shapes (N, N) and (N,).
    """
    q = np.sqrt(2.0 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(q, q), k=-1) - np.diag(np.arange(N) + 1.0)
    return A, q.copy()


def nplr_legs(N, rank=1):
    """Normal-plus-low-rank (NPLR) form of HiPPO-LegS, with conjugate pairs kept once.

    With P[n] = sqrt(n + 1/2), S = A + P P^T = -1/2 I + (skew-symmetric), so S = V diag(Lambda) V^* with
    V unitary. Keeping the N/2 eigenvalues with Im > 0 (their conjugates carry the same information
    for real inputs), the HiPPO matrix is A = V (Lambda - P~ P~^*) V^* with P~ = V^* P, B~ = V^* B.

    Args:
        N: state size (even, >= 2).
        rank: rank of the low-rank term. Rank 1 is the exact LegS correction; for rank 2 a second,
            zero column is appended (a trainable slot that starts inactive).

    Returns:
        (Lambda, P, B, V): complex128 arrays of shapes (N/2,), (rank, N/2), (N/2,), (N, N/2).
        Lambda is sorted by increasing imaginary part.
    """
    _check_state_size(N)
    if rank not in (1, 2):
        raise ValueError(f"`rank` must be 1 or 2, got {rank!r}.")
    A, B = hippo_legs(N)
    P = np.sqrt(np.arange(N) + 0.5)
    S = A + np.outer(P, P)
    skew = 0.5 * (S - S.T)
    # -i * skew is Hermitian, so eigh gives real w and unitary V with skew = V (i w) V^*.
    w, V = np.linalg.eigh(-1j * skew)
    keep = np.argsort(w)[N // 2 :]
    w, V = w[keep], V[:, keep]
    Lambda = np.mean(np.diag(S)) + 1j * w
    P_t = V.conj().T @ P
    B_t = V.conj().T @ B
    P_all = np.zeros((rank, N // 2), dtype=np.complex128)
    P_all[0] = P_t
    return Lambda, P_all, B_t, V


def initial_eigenvalues(init, n, num_channels=1, seed=None):
    """Continuous-time eigenvalues a_n of the diagonal state matrix, n = 0..N/2-1.

    | init   | a_n                                          |
    |--------|----------------------------------------------|
    | lin    | -1/2 + i pi n                                |
    | inv    | -1/2 + i (N/pi) (N/(2n+1) - 1)               |
    | real   | -(n+1)                                       |
    | legs   | eigenvalues of the normal part of HiPPO-LegS (real part -1/2, Im > 0) |
    | random | -1/2 + i U(0, pi N/2), drawn per channel     |

    Args:
        init: one of `EIGENVALUE_INITS`.
        n: state size N (even, >= 2); N/2 eigenvalues are returned (one of each conjugate pair).
        num_channels: H, the number of independent channels.
        seed: integer seed for "random".

    Returns:
        complex128 array of shape (num_channels, N/2).
    """
    _check_state_size(n)
    half = n // 2
    k = np.arange(half, dtype=np.float64)
    if init == "lin":
        a = -0.5 + 1j * np.pi * k
    elif init == "inv":
        a = -0.5 + 1j * (n / np.pi) * (n / (2 * k + 1) - 1)
    elif init == "real":
        a = -(k + 1) + 0j
    elif init == "legs":
        a = nplr_legs(n)[0]
    elif init == "random":
        rng = np.random.default_rng(seed)
        imag = rng.uniform(0.0, np.pi * n / 2, size=(num_channels, half))
        return -0.5 + 1j * np.sort(imag, axis=-1)
    else:
        raise ValueError(f"`init` must be one of {EIGENVALUE_INITS}, got {init!r}.")
    return np.tile(a[None, :], (num_channels, 1))


def _check_state_size(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or n % 2:
        raise ValueError(f"`n` (state size) must be an even integer >= 2, got {n!r}.")
