"""S4: the structured state space layer with a diagonal-plus-low-rank state matrix (Gu, Goel, Re 2022)."""

import keras
import numpy as np
from keras import ops

from keras_ssm.layers.base import ArrayInitializer, BaseSSM, complex_from_pairs
from keras_ssm.ops.dplr import (
    MAX_RANK,
    bilinear_dense_numpy,
    bilinear_dplr_dense,
    bilinear_dplr_step,
    dplr_kernel,
    dplr_real_state_matrix_numpy,
    interleave_numpy,
    output_row,
    power_kernel,
    truncated_output_row,
)
from keras_ssm.ops.init import nplr_legs, resolve_eigenvalue_init


@keras.saving.register_keras_serializable(package="keras_ssm")
class S4(BaseSSM):
    """S4 layer, state matrix A = Lambda - P P^* (NPLR / DPLR): (batch, length, H) -> (batch, length, H).

    Per feature h, the continuous system on the full complex state x_full = [x; conj(x)] (size N) is

        x' = (diag(Lambda_full) - sum_j P_full,j P_full,j^*) x + B_full u,    y = C_full x = 2 Re(C x),

    with Lambda = -exp(log_a_real) + i a_imag, P (rank r) and B stored for one mode of each conjugate
    pair (N/2 complex modes). On the stored half the low-rank term is x -> P 2 Re(P^* x): real-linear,
    so the layer's state is the REAL vector s = [Re x_0, Im x_0, Re x_1, Im x_1, ...] of size N.
    The system is discretized by the bilinear transform with step dt = exp(log_dt), and the kernel

        K[h, l] = C dA^l dB,   l = 0..L-1

    is computed from the dense real discrete system by chunked powers (`keras_ssm.ops.dplr.power_kernel`:
    l = s j + i with s ~ sqrt(L), K = (C dA^(s j)) . (dA^i dB), both factors by doubling with the powers
    carried as I - dA^k, which keeps float32 relative precision when dA is close to I), then applied
    by FFT convolution, plus the skip D u and the same output path as `S4D` (activation, dropout,
    gated Dense(2H) + GLU). The stored C is the true output matrix and dA^l itself is formed, so the
    kernel is exact at every length L (no truncation factor), and the step mode and the analysis
    views use the same C. Cost per call: about log2(L) batched N x N squarings, O(H N^3 log L),
    plus O(H N L) for the products. When the length is only known at run time (a traced None
    length), the kernel is the generating function at the roots of unity instead (Cauchy sums and
    the Woodbury identity, with the truncation factor C (I - dA^L) by repeated squaring; see
    `keras_ssm.ops.dplr`); both paths agree to float32 round-off.

    Initialisations: "legs" (default) is HiPPO-LegS in its NPLR form: Lambda = eigenvalues of the
    normal part (real part -1/2), P = V^* sqrt(n + 1/2), B = V^* sqrt(2n + 1) (`nplr_legs`); the
    continuous eigenvalues of A are then those of HiPPO-LegS, -1, ..., -N. The diagonal inits
    "inv", "lin", "real", "random" take Lambda from `initial_eigenvalues` (as S4D) with P = 0 and
    B = 1, i.e. a diagonal SSM (S4D with bilinear discretization). P = 0 is a stationary point of
    the loss in P (every P-dependent term is quadratic in P), so P stays 0 in training; the same
    holds for the second column that rank=2 adds to "legs", which starts at zero as in the
    reference implementation.

    Args:
        n: state size N (even, >= 2); N/2 complex modes are stored, the real state has size N.
        init: "legs", "inv", "lin", "real" or "random", a discrete family, an eigenvalue array or
            `DiscreteEigenvalues` (all as for `S4D`; every init but "legs" gives P = 0, B = 1).
        rank: rank r of the low-rank term, 1 or 2.
        trainable_eigenvalues: False freezes log_a_real, a_imag, P and (by default) log_dt.
            B, C, D and the output mixing still train.
        trainable_dt: whether log_dt trains; None follows `trainable_eigenvalues`.
        dt_min, dt_max: log-uniform range of the initial step sizes.
        discretization: only "bilinear" (the generating-function kernel needs it).
        bidirectional, dropout, activation, gated_output, seed, frozen_modes: as for `S4D`
            (`frozen_modes` splits Lambda; P follows `trainable_eigenvalues`).

    Call arguments: inputs (batch, length, H); mask (batch, length) booleans, padded positions are
    zeroed before the convolution and the mask is propagated.
    """

    default_init = "legs"
    default_discretization = "bilinear"
    allowed_discretizations = ("bilinear",)
    is_diagonal = False

    def __init__(self, n=64, init=None, rank=1, **kwargs):
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= MAX_RANK:
            raise ValueError(f"`rank` must be 1 or 2, got {rank!r}.")
        discretization = kwargs.get("discretization")
        if discretization not in (None, "bilinear"):
            raise ValueError(
                "`discretization` must be 'bilinear' for S4 (its kernel is the generating function of "
                f"the bilinear system), got {discretization!r}."
            )
        super().__init__(n=n, init=init, **kwargs)
        self.rank = int(rank)

    def _build_state_matrix(self, H):
        M = self.n // 2
        # Drawn for every init so the seed stream (and so dt, C, D) matches S4D with the same seed.
        seed = self._next_seed()
        if isinstance(self.init, str) and self.init == "legs":
            lam, P, B, _ = nplr_legs(self.n, self.rank)
            lam = np.tile(lam[None], (H, 1))
            P = np.tile(P[:, None], (1, H, 1))
            B = np.tile(B[None], (H, 1))
        else:
            lam, _ = resolve_eigenvalue_init(self.init, self.n, H, "bilinear", seed=seed)
            P = np.zeros((self.rank, H, M), dtype=np.complex128)
            B = np.ones((H, M), dtype=np.complex128)
        self._add_eigenvalue_weights(lam)
        self.P = self.add_weight(
            name="P", shape=(self.rank, H, M, 2), initializer=ArrayInitializer(_pairs(P)),
            trainable=self.trainable_eigenvalues,
        )
        self.B = self.add_weight(name="B", shape=(H, M, 2), initializer=ArrayInitializer(_pairs(B)))

    @property
    def eigenvalue_variables(self):
        return [self.log_dt] + self._mode_variables + [self.P]

    @property
    def ssm_variables(self):
        return self.eigenvalue_variables + [self.B]

    def _dplr_tensors(self):
        """float32 (Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, dt): (H, M) x2, (r, H, M) x2, (H, M) x2, (H,)."""
        lam_re, lam_im = self._continuous_eigenvalues()
        P = self._read(self.P)
        B = self._read(self.B)
        dt = ops.exp(self._read(self.log_dt))
        return lam_re, lam_im, P[..., 0], P[..., 1], B[..., 0], B[..., 1], dt

    def convolution_kernel(self, length):
        lam_re, lam_im, p_re, p_im, b_re, b_im, dt = self._dplr_tensors()
        one_minus_dA, dB = bilinear_dplr_dense(lam_re, lam_im, p_re, p_im, b_re, b_im, dt)
        C = ops.cast(self.C, "float32")
        if isinstance(length, (int, np.integer)):
            return power_kernel(output_row(C[..., 0], C[..., 1]), one_minus_dA, dB, int(length))
        # Length known only at run time (e.g. a tf.function with a None sequence length): the
        # generating function, whose shapes do not depend on how the length splits into chunks.
        ct_re, ct_im = truncated_output_row(C[..., 0], C[..., 1], one_minus_dA, length)
        return dplr_kernel(ct_re, ct_im, lam_re, lam_im, p_re, p_im, b_re, b_im, dt, length)

    def state_shape(self, batch_size):
        """The real interleaved state [Re x_0, Im x_0, ...]: (batch, H, N)."""
        return (batch_size, self.features, self.n)

    def _recurrence(self, u, state):
        """s_t = dA s_{t-1} + dB u_t (structured, O(H N r)),  y_t = c^T s_t = 2 Re(C x_t)."""
        state = bilinear_dplr_step(state, u, *self._dplr_tensors())
        C = ops.cast(self.C[0], "float32")
        y = ops.sum(output_row(C[..., 0], C[..., 1]) * state, axis=-1)
        return y, state

    # numpy views (float64) for analysis ----------------------------------------------------------
    def dplr_parameters(self):
        """(Lambda, P, B) as used by the layer, complex128: (H, N/2), (rank, H, N/2), (H, N/2)."""
        return self.continuous_eigenvalues(), complex_from_pairs(self.P.numpy()), complex_from_pairs(self.B.numpy())

    def continuous_state_space(self):
        """Dense real continuous system (A, B): float64 (H, N, N), (H, N), on the interleaved real state."""
        lam, P, B = self.dplr_parameters()
        return dplr_real_state_matrix_numpy(lam, P), interleave_numpy(B)

    def discrete_state_space(self):
        """(dA, dB, C) of the dense REAL discrete system, float64: (H, N, N), (H, N), (channels, H, N).

        The state is s = [Re x_0, Im x_0, Re x_1, Im x_1, ...] (real dimension N) and

            s_t = dA s_{t-1} + dB u_t,    y_t = C s_t + D u_t

        (no factor 2 and no real part, unlike S4D's complex half-state view).
        """
        A, B = self.continuous_state_space()
        dt = np.exp(np.asarray(self.log_dt.numpy(), np.float64))
        dA, dB = bilinear_dense_numpy(A, B, dt)
        C = complex_from_pairs(self.C.numpy())
        return dA, dB, interleave_numpy(2.0 * C.real - 2.0j * C.imag)

    def discrete_eigenvalues(self):
        """All N eigenvalues of the real discrete matrix dA (low-rank term included): complex128 (H, N).

        Unlike S4D's (H, N/2) "one of each conjugate pair", every eigenvalue is listed (sorted by
        real then imaginary part), as the low-rank term mixes the pairs; for HiPPO-LegS they are real,
        (1 - dt k/2) / (1 + dt k/2) for k = 1..N in exact arithmetic.

        Caution: the LegS matrix is far from normal, so its eigenvalues are ill-conditioned. Even
        from the exact float64 NPLR parameters, numpy's eigenvalues of the continuous matrix miss
        -1..-N by about 3e-4 at N = 16, 8 at N = 32 and 60 at N = 64 (measured), and the float32
        storage of Lambda and P perturbs them further. For memory analysis of S4 at N >= 32 use
        the state-space view (`discrete_state_space`, Krylov vectors dA^k dB), not these values.
        """
        dA = self.discrete_state_space()[0]
        return np.sort(np.linalg.eigvals(dA).astype(np.complex128), axis=-1)

    def get_config(self):
        config = super().get_config()
        config["rank"] = self.rank
        return config


def _pairs(x):
    """complex (...) -> float (..., 2) [real, imag]."""
    x = np.asarray(x)
    return np.stack([x.real, x.imag], axis=-1)
