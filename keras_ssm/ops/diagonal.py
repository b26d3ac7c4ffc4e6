"""Diagonal state space math in real arithmetic with keras.ops (runs on every backend and device).

Complex numbers are written as (real, imag) pairs of float32 tensors. A discrete eigenvalue
lambda = exp(log_magnitude + i * angle) is carried in log-polar form, so its powers
lambda^l = exp(l * log_magnitude) * (cos(l * angle) + i sin(l * angle)) need no complex dtype.
"""

import math
import numbers

from keras import ops

from keras_ssm.ops.discrete import DISCRETIZATIONS, check_discretization  # noqa: F401 (re-exported)
from keras_ssm.ops.fft import complex_irfft, complex_rfft
from keras_ssm.ops.precision import precise_matmul


def discretize_diagonal(dt, a_real, a_imag, method):
    """Discretize x' = a x + u (B = 1) with step dt, per channel and mode.

    ZOH:      lambda = exp(dt a),                       dB = (exp(dt a) - 1) / a
    bilinear: lambda = (1 + dt a / 2) / (1 - dt a / 2), dB = dt / (1 - dt a / 2)

    Args:
        dt: (H,) positive step sizes.
        a_real, a_imag: (H, M) real and imaginary parts of the continuous eigenvalues (a_real < 0).
        method: "zoh" or "bilinear".

    Returns:
        (log_magnitude, angle, db_real, db_imag), each (H, M), with lambda = exp(log_magnitude + i angle)
        and the angle wrapped into [-pi, pi).
    """
    check_discretization(method)
    dt = dt[:, None]
    x_re, x_im = dt * a_real, dt * a_imag
    if method == "zoh":
        log_mag, angle = x_re, x_im
        # exp(x) - 1 without cancellation for small dt a (float32 exp(x) - 1 loses ~eps/|x| relative):
        # Re = expm1(x_re) cos(x_im) - 2 sin^2(x_im / 2),  Im = exp(x_re) sin(x_im).
        half_sin = ops.sin(0.5 * x_im)
        num_re = ops.expm1(x_re) * ops.cos(x_im) - 2.0 * half_sin * half_sin
        num_im = ops.exp(x_re) * ops.sin(x_im)
        db_re, db_im = complex_divide(num_re, num_im, a_real, a_imag)
    else:
        num_re, num_im = 1.0 + 0.5 * x_re, 0.5 * x_im
        den_re, den_im = 1.0 - 0.5 * x_re, -0.5 * x_im
        # |1 +- x/2|^2 = 1 +- x_re + |x|^2 / 4, through log1p for the same reason.
        quarter_sq = 0.25 * (x_re * x_re + x_im * x_im)
        log_mag = 0.5 * (ops.log1p(x_re + quarter_sq) - ops.log1p(quarter_sq - x_re))
        angle = ops.arctan2(num_im, num_re) - ops.arctan2(den_im, den_re)
        db_re, db_im = complex_divide(dt, ops.zeros_like(den_im), den_re, den_im)
    return log_mag, wrap_angle(angle), db_re, db_im


def wrap_angle(angle):
    """Map angles to [-pi, pi); lambda is unchanged and later products l * angle stay small."""
    two_pi = 2.0 * math.pi
    return angle - two_pi * ops.floor((angle + math.pi) / two_pi)


def complex_divide(a_re, a_im, b_re, b_im):
    """(a_re + i a_im) / (b_re + i b_im) = (a conj(b)) / |b|^2, elementwise."""
    denom = b_re * b_re + b_im * b_im
    return (a_re * b_re + a_im * b_im) / denom, (a_im * b_re - a_re * b_im) / denom


def complex_multiply(a_re, a_im, b_re, b_im):
    return a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re


def diagonal_step(state_re, state_im, u, log_magnitude, angle, db_re, db_im):
    """One step of the diagonal recurrence s_t = lambda s_{t-1} + dB u_t, lambda = exp(log_magnitude + i angle).

    Args:
        state_re, state_im: (batch, H, N/2) state. u: (batch, H) inputs. log_magnitude, angle, db_re,
            db_im: (H, N/2).

    Returns:
        (s_re, s_im), each (batch, H, N/2).
    """
    magnitude = ops.exp(log_magnitude)
    s_re, s_im = complex_multiply(state_re, state_im, magnitude * ops.cos(angle), magnitude * ops.sin(angle))
    return s_re + db_re * u[..., None], s_im + db_im * u[..., None]


def eigenvalue_powers(log_magnitude, angle, exponents):
    """lambda^e for every mode and exponent: (..., M) and (E,) -> two (..., M, E) tensors."""
    scale = ops.exp(log_magnitude[..., None] * exponents)
    phase = angle[..., None] * exponents
    return scale * ops.cos(phase), scale * ops.sin(phase)


def power_chunk_size(length):
    """Chunk c of the power decomposition l = c*j + i: a power of two near sqrt(length)."""
    return 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(length)))))


def vandermonde_kernel(weight_re, weight_im, log_magnitude, angle, length):
    """K[c, h, l] = 2 Re( sum_m W[c, h, m] lambda[h, m]^l ),  l = 0..length-1.

    Powers are split as lambda^(c j + i) = lambda^(c j) * lambda^i, so the sum over modes becomes one
    real batched matrix product per channel, [Re x, -Im x] (J, 2M) @ [Re lambda^i; Im lambda^i] (2M, c)
    with x[j, m] = W[m] lambda[m]^(c j): no (H, M, L) tensor is ever
    formed (memory O(H M (J + c) + H L) with J c >= L and c ~ sqrt(L)), and only H M (J + c)
    exponentials are evaluated instead of H M L.

    Args:
        weight_re, weight_im: (C, H, M) mode weights, e.g. C * dB.
        log_magnitude, angle: (H, M) discrete eigenvalues in log-polar form, angle in [-pi, pi).
        length: kernel length L (python int, or a scalar tensor when unknown at trace time).

    Returns:
        (C, H, L) float32 kernel.
    """
    if isinstance(length, int):
        chunk = power_chunk_size(length)
        num_chunks = -(-length // chunk)
    else:  # length only known at run time (e.g. a tf.function with unknown sequence length)
        chunk = 64
        num_chunks = (length + chunk - 1) // chunk
    inner_re, inner_im = eigenvalue_powers(
        log_magnitude, angle, ops.arange(chunk, dtype="float32")
    )
    # The outer powers use lambda^c in log-polar form, re-wrapped so the products j * angle stay small.
    outer_re, outer_im = eigenvalue_powers(
        chunk * log_magnitude, wrap_angle(chunk * angle), ops.arange(num_chunks, dtype="float32")
    )
    x_re, x_im = complex_multiply(  # (C, H, J, M): the weights times the outer powers
        weight_re[..., None, :], weight_im[..., None, :],
        ops.swapaxes(outer_re, -1, -2)[None], ops.swapaxes(outer_im, -1, -2)[None],
    )
    # Re(x lambda^i) summed over modes, as one real matmul (C, H, J, 2M) @ (H, 2M, c):
    # [Re x, -Im x] @ [Re lambda^i; Im lambda^i].
    kernel = 2.0 * precise_matmul(
        ops.concatenate([x_re, -x_im], axis=-1), ops.concatenate([inner_re, inner_im], axis=-2)
    )
    shape = ops.shape(kernel)
    return ops.reshape(kernel, (shape[0], shape[1], -1))[..., :length]


def fft_length(length):
    """Smallest n >= 2 * length with no prime factor above 5 (fast for every FFT library); length >= 1."""
    if isinstance(length, numbers.Integral) and length < 1:
        raise ValueError(f"`length` must be >= 1, got {length!r}.")
    n = 2 * length
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def fft_convolution(u, causal_kernel, anticausal_kernel=None, skip=None):
    """Linear (non-circular) convolution of each channel with its kernel via real FFTs.

    y[t] = sum_{j<=t} K[j] u[t-j]  +  sum_{m>=0} K2[m] u[t+1+m]  +  D u[t]
    (the K2 term only if K2 is given, the D term only if `skip` is)

    The anticausal kernel K2 sees strictly future inputs (the present is covered by K[0] and the skip D).
    Both kernels go into one length-n kernel (K2 reversed at the end), so a bidirectional layer costs the
    same FFTs as a causal one; n >= 2L avoids wrap-around. The skip is folded into the kernel
    (K[0] + D), so it costs no pass over the inputs. The gradient is `spectral_convolution`'s.

    Args:
        u: (B, H, L) float32.
        causal_kernel: (H, L).
        anticausal_kernel: optional (H, L).
        skip: optional (H,) D.

    Returns:
        (B, H, L) float32.
    """
    length = u.shape[-1]
    n = fft_length(length) if isinstance(length, int) else 2 * ops.shape(u)[-1]
    if skip is not None:
        causal_kernel = ops.concatenate([causal_kernel[:, :1] + skip[:, None], causal_kernel[:, 1:]], axis=-1)
    if anticausal_kernel is not None:
        gap = ops.zeros((ops.shape(causal_kernel)[0], n - 2 * ops.shape(u)[-1]), dtype=u.dtype)
        kernel = ops.concatenate([causal_kernel, gap, ops.flip(anticausal_kernel, axis=-1)], axis=-1)
    else:
        kernel = causal_kernel
    return spectral_convolution(u, kernel, n)


def spectral_convolution(u, kernel, n):
    """y[b, h, t] = sum_j k[h, j] u[b, h, (t - j) mod n] for t < L: circular convolution of the
    zero-padded inputs, y = irfft(rfft(u) rfft(k))[..., :L], with a hand-written gradient.

    The adjoint of a convolution is a correlation, so with G = rfft(dy) (zero-padded to n)

        du = irfft(G conj(rfft(k)))[..., :L],     dk = irfft(sum_b G conj(rfft(u)))[..., :len(k)],

    which reuses the forward spectra: one rfft and two irffts (one of them per channel only) instead
    of the transposes of rfft that automatic differentiation builds (a complex FFT of the full length
    on some backends), and the same code on every backend. Spectra are complex64 tensors
    (`keras_ssm.ops.fft`), not (real, imag) pairs.

    Args:
        u: (B, H, L) float32 with L <= n.
        kernel: (H, L_k) float32 with L_k <= n (zero-padded to n).
        n: FFT length (python int, or a scalar tensor when L is unknown at trace time).

    Returns:
        (B, H, L) float32.
    """
    length = ops.shape(u)[-1]
    kernel_length = ops.shape(kernel)[-1]

    @ops.custom_gradient
    def convolve(u, kernel):
        u_f = complex_rfft(u, n)
        k_f = complex_rfft(kernel, n)
        y = complex_irfft(u_f * k_f, n)[..., :length]

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            g_f = complex_rfft(upstream, n)
            du = complex_irfft(g_f * ops.conj(k_f), n)[..., :length]
            dk = complex_irfft(ops.sum(g_f * ops.conj(u_f), axis=0), n)
            return du, dk[..., :kernel_length]

        return y, grad

    return convolve(u, kernel)

