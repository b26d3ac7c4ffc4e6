"""S4D: the diagonal structured state space layer (Gu, Gupta, Goel, Re 2022)."""

import keras
import numpy as np
from keras import ops

from keras_ssm.layers.base import BaseSSM, complex_from_pairs
from keras_ssm.ops.diagonal import (
    complex_multiply,
    diagonal_step,
    discretize_diagonal,
    vandermonde_kernel,
)
from keras_ssm.ops.discrete import discretize_diagonal_numpy
from keras_ssm.ops.init import resolve_eigenvalue_init

@keras.saving.register_keras_serializable(package="keras_ssm")
class S4D(BaseSSM):
    """Diagonal state space layer: (batch, length, H) -> (batch, length, H).

    Per feature h, N/2 complex modes a_n = -exp(log_a_real) + i a_imag (one of each conjugate pair),
    B = 1, step dt = exp(log_dt), discretized by ZOH or bilinear into lambda = dA and dB. The kernel

        K[h, l] = 2 Re( sum_n C[h, n] dB[h, n] lambda[h, n]^l ),   l = 0..L-1

    is applied by FFT convolution, plus the skip D u, then (optionally) GELU, dropout and a gated
    position-wise Dense(2H) + GLU as in the reference S4D module.

    Args:
        n: state size N (even, >= 2); N/2 complex modes are stored.
        init: eigenvalue initialisation: a name, "inv", "lin", "real", "legs", "random" (continuous,
            scaled by dt), or a discrete family at dt = 1, "linear_magnitudes" or "unity_rings", with
            optional parameters ("unity_rings:rho=0.99,p=4", see `keras_ssm.ops.init`); or any set:
            a complex array (N/2,) or (H, N/2) of continuous eigenvalues a (Re a <= -1e-4, one of each
            conjugate pair; a real a is one real state dimension), a path to such a .npy file, or
            `keras_ssm.DiscreteEigenvalues(lam)` (|lam| < 1, used at dt = 1, i.e. log_dt = 0, so the
            layer's discretization gives back lam). Saved with the layer's config.
        trainable_eigenvalues: False freezes log_a_real, a_imag and (by default) log_dt: the
            reservoir-computing setting. C, D and the output mixing still train.
        trainable_dt: whether log_dt trains; None follows `trainable_eigenvalues`.
        dt_min, dt_max: log-uniform range of the initial step sizes.
        discretization: "zoh" or "bilinear".
        bidirectional: add an anticausal kernel (own C, shared eigenvalues) on future inputs.
        dropout: rate of the channel dropout after the activation.
        activation: activation after the SSM (None for none).
        gated_output: apply Dense(2H) + GLU at the end. `activation=None, gated_output=False`
            gives the pure linear SSM y = K * u + D u.
        seed: integer seed of every random initial value.
        frozen_modes: freeze part of the eigenvalues of a layer whose eigenvalues train: a fraction
            f in [0, 1] (round(f N/2) modes of every channel, chosen at random from the seed) or a
            boolean mask (N/2,) or (H, N/2) (True = frozen). Frozen modes live in non-trainable
            variables (`log_a_real_frozen`, `a_imag_frozen`), so they stay bit-identical in training
            and parameter counts are exact. dt is governed by `trainable_dt`.

    Call arguments: inputs (batch, length, H); mask (batch, length) booleans, padded positions are
    zeroed before the convolution and the mask is propagated.
    """

    def _build_state_matrix(self, H):
        a, _ = resolve_eigenvalue_init(self.init, self.n, H, self.discretization, seed=self._next_seed())
        self._add_eigenvalue_weights(a)

    is_diagonal = True

    @property
    def eigenvalue_variables(self):
        return [self.log_dt] + self._mode_variables

    def _discrete(self):
        """(log|lambda|, arg lambda, Re dB, Im dB), each (H, N/2) float32."""
        a_real, a_imag = self._continuous_eigenvalues()
        dt = ops.exp(self._read(self.log_dt))
        return discretize_diagonal(dt, a_real, a_imag, self.discretization)

    def convolution_kernel(self, length):
        log_mag, angle, db_re, db_im = self._discrete()
        C = ops.cast(self.C, "float32")
        w_re, w_im = complex_multiply(C[..., 0], C[..., 1], db_re[None], db_im[None])
        return vandermonde_kernel(w_re, w_im, log_mag, angle, length)

    def state_shape(self, batch_size):
        return (batch_size, self.features, self.n // 2, 2)

    def _recurrence(self, u, state):
        """s_t = lambda s_{t-1} + dB u_t,  y_t = 2 Re(sum_n C s_t)."""
        s_re, s_im = diagonal_step(state[..., 0], state[..., 1], u, *self._discrete())
        C = ops.cast(self.C[0], "float32")
        y = 2.0 * ops.sum(C[..., 0] * s_re - C[..., 1] * s_im, axis=-1)
        return y, ops.stack([s_re, s_im], axis=-1)

    # numpy views (float64) for analysis ----------------------------------------------------------
    def _discrete_numpy(self):
        dt = np.exp(np.asarray(self.log_dt.numpy(), np.float64))
        return discretize_diagonal_numpy(dt[:, None], self.continuous_eigenvalues(), self.discretization)

    def discrete_eigenvalues(self):
        """Discrete eigenvalues lambda = dA, one of each conjugate pair: complex128 (H, N/2)."""
        return self._discrete_numpy()[0]

    def discrete_state_space(self):
        """(dA, dB, C) as complex128 numpy arrays: (H, N/2, N/2) diagonal, (H, N/2), (channels, H, N/2).

        The real output is y_t = 2 Re(C x_t) + D u_t with x_t = dA x_{t-1} + dB u_t.
        """
        lam, db = self._discrete_numpy()
        dA = np.zeros(lam.shape + (lam.shape[-1],), dtype=np.complex128)
        idx = np.arange(lam.shape[-1])
        dA[:, idx, idx] = lam
        return dA, db, complex_from_pairs(self.C.numpy())
