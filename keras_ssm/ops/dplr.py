"""Diagonal-plus-low-rank (DPLR) state space math for S4, in real arithmetic with keras.ops.

Conventions (one feature h; M = N/2 complex modes stored, rank r):

    continuous  x' = A x + B u,   A = diag(Lambda) - sum_j P_j P_j^*     on the FULL complex state
                y  = C x                                                 x_full = [x; conj(x)] (size N)

with Lambda_full = [Lambda, conj(Lambda)], P_full = [P; conj(P)], B_full = [B; conj(B)],
C_full = [C, conj(C)]. Only the halves are stored. On the stored half x the low-rank term reads

    (P_full P_full^* x_full)_half = P * 2 Re(P^* x),

which is real-linear but not complex-linear: the half-size dynamics couple each mode with the
conjugates of all modes. So every Cauchy sum adds each mode's conjugate term, and the dense
discrete system is written on the REAL state of dimension N, interleaved as

    s = [Re x_0, Im x_0, Re x_1, Im x_1, ..., Re x_{M-1}, Im x_{M-1}],

where A_s = blockdiag_n([[Re l_n, -Im l_n], [Im l_n, Re l_n]]) - 2 sum_j p_j p_j^T,
p_j = interleave(Re P_j, Im P_j), b = interleave(Re B, Im B) and the output row is
c = interleave(2 Re C, -2 Im C), so that y = c^T s = 2 Re(C x).

Bilinear discretization with step dt:

    E  = I - (dt/2) A_s = D0 + dt sum_j p_j p_j^T,     D0 = blockdiag(1 - dt Lambda / 2)
    dA = E^{-1} (I + (dt/2) A_s) = 2 E^{-1} - I,        dB = dt E^{-1} b

and E^{-1} follows from the Woodbury identity with an r x r inverse.

The layer's kernel for a python-int length is `power_kernel` (chunked powers of I - dA, see there).
For a length known only at run time it is the truncated generating function (S4, Algorithm 1) at
the roots w_k = exp(-2 pi i k / L):

    K^(w) = sum_{l<L} K_l w^l = C~ (I - w dA)^{-1} dB,      C~ = C (I - dA^L),

and since I - w dA = E^{-1} (1 + w)(dt/2) (z I - A) with z = (2/dt)(1 - w)/(1 + w),

    K^(w) = 2/(1 + w) C~_full (z - A)^{-1} B_full
          = (1 + i tau) [ r_{C~B}(z) - r_{C~P}(z) (I_r + R_{PP}(z))^{-1} r_{PB}(z) ]      (Woodbury),
    r_{ab}(z) = sum_n a_n b_n / (z - lambda_n) over all N modes (each stored mode plus its conjugate),

with tau = tan(pi k / L): on the unit circle 2/(1 + w) = 1 + i tau and z = i (2/dt) tau is purely
imaginary, which makes every Cauchy term a cheap real expression. The one pole, w = -1 (k = L/2 for
even L), is the Nyquist bin, where (I + dA)^{-1} dB = dt b / 2 gives K^(-1) = dt Re(sum_n C~_n B_n).
The real kernel K (length L) is irfft(K^ at k = 0..L//2, fft_length=L).
"""

import math

import numpy as np
from keras import ops

from keras_ssm.ops.diagonal import complex_divide, complex_multiply
from keras_ssm.ops.precision import precise_einsum, precise_matmul

MAX_RANK = 2


def _check_rank(rank):
    if rank < 1 or rank > MAX_RANK:
        raise ValueError(f"`rank` must be 1 or 2, got {rank!r}.")


# ---------------------------------------------------------------------------------------------
# Generating function at the roots of unity (keras.ops, float32)

def bilinear_frequencies(dt, length):
    """tau_k = tan(pi k / L) and t_hk = (2 / dt_h) tau_k (z = i t) for k = 0..L//2, and the Nyquist mask.

    At the Nyquist bin (k = L/2, even L only) tau is set to 0 instead of infinity; its kernel value
    comes from the separate closed form (see module docstring).

    Args:
        dt: (H,) step sizes.
        length: L, python int or scalar integer tensor.

    Returns:
        tau: (K,); t: (H, K); is_nyquist: (K,) bool; with K = L//2 + 1.
    """
    k = ops.arange(length // 2 + 1, dtype="int32")
    is_nyquist = ops.equal(2 * k, length)
    angle = (math.pi / ops.cast(length, "float32")) * ops.cast(k, "float32")
    tau = ops.tan(ops.where(is_nyquist, 0.0, angle))
    return tau, (2.0 / dt[:, None]) * tau[None, :], is_nyquist


def conjugate_pair_cauchy(v_re, v_im, lam_re, lam_im, t):
    """r[h, w, k] = sum_m v[h,w,m] / (i t_hk - lam_hm) + conj(v[h,w,m]) / (i t_hk - conj(lam_hm)).

    The second term is the conjugate mode of each stored mode (a real-linear system). Each pair
    is summed over a common denominator, with z = i t:

        v / (z - lam) + conj(v) / (z - conj(lam)) = (a + i t b) / q,
        a = -2 Re(v conj(lam)),  b = 2 Re(v),  q = (z - lam)(z - conj(lam)) = |lam|^2 - t^2 - 2 i Re(lam) t,

    so only 1/q, two (H, M, K) arrays, is formed, and r = (A_re - t B_im) + i (A_im + t B_re) with
    A = sum_m a / q, B = sum_m b / q (matrix products). 1/q = conj(q) / (|z - lam|^2 |z - conj(lam)|^2)
    is evaluated as conj(q) times two separate reciprocals, which neither overflows nor underflows
    in float32 for large t (small dt, long L).

    Args:
        v_re, v_im: (H, W, M) numerators (one row per Cauchy sum wanted).
        lam_re, lam_im: (H, M) continuous eigenvalues of the diagonal part (one of each pair).
        t: (H, K) imaginary parts of the evaluation points.

    Returns:
        (r_re, r_im), each (H, W, K).
    """
    W = v_re.shape[1]
    a = -2.0 * (v_re * lam_re[:, None, :] + v_im * lam_im[:, None, :])
    ab = ops.concatenate([a, 2.0 * v_re], axis=1)  # (H, 2W, M)
    l_re, l_im, tk = lam_re[..., None], lam_im[..., None], t[:, None, :]
    gap1, gap2 = tk - l_im, tk + l_im  # (H, M, K)
    l_re2 = l_re * l_re
    inv_den = 1.0 / (l_re2 + gap1 * gap1)
    inv_den = inv_den / (l_re2 + gap2 * gap2)
    q_inv_re = (l_re2 - gap1 * gap2) * inv_den
    q_inv_im = (2.0 * l_re * tk) * inv_den
    x_re = precise_einsum("hwm,hmk->hwk", ab, q_inv_re)
    x_im = precise_einsum("hwm,hmk->hwk", ab, q_inv_im)
    t = t[:, None, :]
    return x_re[:, :W] - t * x_im[:, W:], x_im[:, :W] + t * x_re[:, W:]


def woodbury_resolvent(r_cb, r_cp, r_pb, r_pp):
    """C~ (z - A)^{-1} B = r_CB - r_CP (I_r + R_PP)^{-1} r_PB for rank r in {1, 2}.

    Args:
        r_cb: pair (channels, H, K). r_cp: pair (channels, r, H, K). r_pb: pair (r, H, K).
        r_pp: pair (r, r, H, K), r_pp[i][j] = r_{P_i P_j}.

    Returns:
        (re, im), each (channels, H, K).
    """
    rank = r_pb[0].shape[0]
    _check_rank(rank)

    def entry(x, *index):
        return x[0][index], x[1][index]

    # X = I + R_PP, entries (H, K) pairs
    X = [[None] * rank for _ in range(rank)]
    for i in range(rank):
        for j in range(rank):
            re, im = entry(r_pp, i, j)
            X[i][j] = (re + (1.0 if i == j else 0.0), im)
    # y = X^{-1} r_PB: (H, K) pairs, by the explicit inverse of a 1x1 or 2x2 matrix
    if rank == 1:
        y = [complex_divide(*entry(r_pb, 0), *X[0][0])]
    else:
        det = _sub(complex_multiply(*X[0][0], *X[1][1]), complex_multiply(*X[0][1], *X[1][0]))
        y0 = _sub(complex_multiply(*X[1][1], *entry(r_pb, 0)), complex_multiply(*X[0][1], *entry(r_pb, 1)))
        y1 = _sub(complex_multiply(*X[0][0], *entry(r_pb, 1)), complex_multiply(*X[1][0], *entry(r_pb, 0)))
        y = [complex_divide(*y0, *det), complex_divide(*y1, *det)]
    out_re, out_im = r_cb
    for j in range(rank):
        re, im = complex_multiply(r_cp[0][:, j], r_cp[1][:, j], y[j][0][None], y[j][1][None])
        out_re, out_im = out_re - re, out_im - im
    return out_re, out_im


def _sub(a, b):
    return a[0] - b[0], a[1] - b[1]


def dplr_kernel(c_re, c_im, lam_re, lam_im, p_re, p_im, b_re, b_im, dt, length):
    """Real convolution kernel of the bilinear DPLR system from its generating function.

    K[c, h, l] = C~ dA^l dB (l < L) where C~ = C (I - dA^L) is passed in (see module docstring).

    Args:
        c_re, c_im: (channels, H, M) C~ (already multiplied by I - dA^L).
        lam_re, lam_im: (H, M) Lambda.  p_re, p_im: (r, H, M) P.  b_re, b_im: (H, M) B.
        dt: (H,) step sizes.  length: L (python int or scalar tensor).

    Returns:
        (channels, H, L) float32.
    """
    channels, rank = c_re.shape[0], p_re.shape[0]
    _check_rank(rank)
    tau, t, is_nyquist = bilinear_frequencies(dt, length)
    H, M = lam_re.shape
    # Numerators a_m b_m of every Cauchy sum, stacked along W: C~B, C~P_j, conj(P_i)B, conj(P_i)P_j.
    cb = complex_multiply(c_re, c_im, b_re[None], b_im[None])  # (channels, H, M)
    nums = [
        cb,
        complex_multiply(c_re[:, None], c_im[:, None], p_re[None], p_im[None]),  # (channels, r, H, M)
        complex_multiply(p_re, -p_im, b_re[None], b_im[None]),  # (r, H, M)
        complex_multiply(p_re[:, None], -p_im[:, None], p_re[None], p_im[None]),  # (r, r, H, M)
    ]
    v_re = ops.concatenate([ops.reshape(n[0], (-1, H, M)) for n in nums], axis=0)  # (W, H, M)
    v_im = ops.concatenate([ops.reshape(n[1], (-1, H, M)) for n in nums], axis=0)
    r_re, r_im = conjugate_pair_cauchy(
        ops.transpose(v_re, (1, 0, 2)), ops.transpose(v_im, (1, 0, 2)), lam_re, lam_im, t
    )
    r_re, r_im = ops.transpose(r_re, (1, 0, 2)), ops.transpose(r_im, (1, 0, 2))  # (W, H, K)
    sizes = [channels, channels * rank, rank, rank * rank]
    starts = np.cumsum([0] + sizes)

    def block(i, shape):
        s = slice(int(starts[i]), int(starts[i + 1]))
        return ops.reshape(r_re[s], shape + (-1,)), ops.reshape(r_im[s], shape + (-1,))

    res_re, res_im = woodbury_resolvent(
        block(0, (channels, H)), block(1, (channels, rank, H)), block(2, (rank, H)), block(3, (rank, rank, H))
    )
    # times 2/(1 + w) = 1 + i tau
    k_re, k_im = res_re - tau * res_im, res_im + tau * res_re
    nyquist = (dt * ops.sum(cb[0], axis=-1))[..., None]  # dt Re(sum_n C~_n B_n), (channels, H, 1)
    k_re = ops.where(is_nyquist, nyquist, k_re)
    k_im = ops.where(is_nyquist, 0.0, k_im)
    return ops.irfft((k_re, k_im), fft_length=length)


# ---------------------------------------------------------------------------------------------
# Dense real discrete system and powers (keras.ops, float32)

def interleave(re, im):
    """(..., M) real and imaginary parts -> (..., 2M) as [re_0, im_0, re_1, im_1, ...]."""
    x = ops.stack([re, im], axis=-1)
    shape = ops.shape(re)
    return ops.reshape(x, tuple(shape[:-1]) + (2 * shape[-1],))


def deinterleave(x):
    """Inverse of `interleave`: (..., 2M) -> ((..., M), (..., M))."""
    shape = ops.shape(x)
    x = ops.reshape(x, tuple(shape[:-1]) + (shape[-1] // 2, 2))
    return x[..., 0], x[..., 1]


def complex_block_diagonal(re, im):
    """Real N x N matrix of x -> diag(re + i im) x on the interleaved real state: (H, M) -> (H, 2M, 2M)."""
    M = re.shape[-1]
    blocks = ops.stack([ops.stack([re, -im], axis=-1), ops.stack([im, re], axis=-1)], axis=-2)  # (H, M, 2, 2)
    eye = ops.eye(M, dtype=re.dtype)
    dense = eye[None, :, None, :, None] * blocks[:, :, :, None, :]  # (H, M, 2, M, 2)
    return ops.reshape(dense, (-1, 2 * M, 2 * M))


def _reciprocal(re, im):
    denom = re * re + im * im
    return re / denom, -im / denom


def _small_inverse(matrix):
    """Inverse of real (..., r, r) matrices, r in {1, 2}, by the explicit formula."""
    rank = matrix.shape[-1]
    _check_rank(rank)
    if rank == 1:
        return 1.0 / matrix
    a, b, c, d = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    return ops.stack([ops.stack([d, -b], axis=-1), ops.stack([-c, a], axis=-1)], axis=-2) / det[..., None, None]


def bilinear_woodbury_factors(lam_re, lam_im, p_re, p_im, dt):
    """Pieces of E^{-1} = D0^{-1} - U G^{-1} V^T, E = I - (dt/2) A_s (see module docstring).

    Args:
        lam_re, lam_im: (H, M). p_re, p_im: (r, H, M). dt: (H,).

    Returns:
        e: pair (H, M), D0^{-1} = diag(e) with e = 1 / (1 - dt Lambda / 2);
        U: (H, N, r) real, columns interleave(e P_j) = D0^{-1} p_j;
        V: (H, N, r) real, columns interleave(conj(e) P_j) = D0^{-T} p_j;
        G_inv: (H, r, r) inverse of G = I / dt + p^T D0^{-1} p.
    """
    half_dt = 0.5 * dt[:, None]
    e = _reciprocal(1.0 - half_dt * lam_re, -half_dt * lam_im)
    ep = complex_multiply(e[0][None], e[1][None], p_re, p_im)  # (r, H, M)
    cep = complex_multiply(e[0][None], -e[1][None], p_re, p_im)
    U = ops.transpose(interleave(*ep), (1, 2, 0))
    V = ops.transpose(interleave(*cep), (1, 2, 0))
    p = ops.transpose(interleave(p_re, p_im), (1, 2, 0))
    rank = p_re.shape[0]
    G = ops.eye(rank, dtype=dt.dtype)[None] / dt[:, None, None] + precise_einsum("hnr,hns->hrs", p, U)
    return e, U, V, _small_inverse(G)


def bilinear_dplr_dense(lam_re, lam_im, p_re, p_im, b_re, b_im, dt):
    """Dense real bilinear discretization, with I - dA formed without cancellation.

    I - dA = 2 (I - E^{-1}) = 2 [ blockdiag(-(dt/2) Lambda e) + U G^{-1} V^T ]  (e = 1 / (1 - dt Lambda / 2)),
    which is O(dt) and accurate to float32 relative precision even when dA is close to I.

    Returns:
        one_minus_dA: (H, N, N) I - dA.  dB: (H, N) dt E^{-1} b.
    """
    e, U, V, G_inv = bilinear_woodbury_factors(lam_re, lam_im, p_re, p_im, dt)
    low_rank = precise_einsum("hnr,hrs,hms->hnm", U, G_inv, V)
    half_dt = 0.5 * dt[:, None]
    d_re, d_im = complex_multiply(-half_dt * lam_re, -half_dt * lam_im, e[0], e[1])
    one_minus_dA = 2.0 * (complex_block_diagonal(d_re, d_im) + low_rank)
    E_inv = complex_block_diagonal(*e) - low_rank
    dB = dt[:, None] * precise_einsum("hnm,hm->hn", E_inv, interleave(b_re, b_im))
    return one_minus_dA, dB


def bilinear_dplr_step(state, u, lam_re, lam_im, p_re, p_im, b_re, b_im, dt):
    """One step s_t = dA s_{t-1} + dB u_t = E^{-1}(2 s_{t-1} + dt b u_t) - s_{t-1}, in O(H N r).

    Args:
        state: (batch, H, N) interleaved real state. u: (batch, H) inputs. Others as in
            `bilinear_woodbury_factors`; b_re, b_im: (H, M).

    Returns:
        (batch, H, N) new state.
    """
    e, U, V, G_inv = bilinear_woodbury_factors(lam_re, lam_im, p_re, p_im, dt)
    rhs = 2.0 * state + (dt[:, None] * interleave(b_re, b_im))[None] * u[..., None]
    r_re, r_im = deinterleave(rhs)
    d0_inv_rhs = interleave(*complex_multiply(e[0][None], e[1][None], r_re, r_im))
    low_rank = precise_einsum("hnr,hrs,bhs->bhn", U, G_inv, precise_einsum("hns,bhn->bhs", V, rhs))
    return d0_inv_rhs - low_rank - state


def output_row(c_re, c_im):
    """Real output row c = interleave(2 Re C, -2 Im C), so that c^T s = 2 Re(C x)."""
    return interleave(2.0 * c_re, -2.0 * c_im)


def row_times_one_minus_power(row, one_minus_matrix, power):
    """row (I - A^power) by repeated squaring of F = I - A: (C, H, N), (H, N, N) -> (C, H, N).

    Works on F_k = I - A^k throughout, F_{2k} = 2 F_k - F_k^2 and row F_{a+b} = row F_a + (row - row F_a) F_b,
    so the result keeps float32 relative precision when A^power is close to I (small dt, short length),
    where forming I - A^power from A^power would cancel.

    A python int power costs floor(log2(power)) squarings of the (H, N, N) matrix. A tensor power
    (length unknown at trace time, e.g. tensorflow with a None sequence length) runs an
    `ops.while_loop` over its bits.
    """

    def accumulate(result, F):
        return result + precise_einsum("chn,hnm->chm", row - result, F)

    def square(F):
        return 2.0 * F - precise_matmul(F, F)

    result = ops.zeros_like(row)
    F = one_minus_matrix
    if isinstance(power, (int, np.integer)):
        if power < 0:
            raise ValueError(f"`power` must be >= 0, got {power!r}.")
        power = int(power)
        while power:
            if power & 1:
                result = accumulate(result, F)
            power >>= 1
            if power:
                F = square(F)
        return result

    def cond(remaining, result, F):
        return remaining > 0

    def body(remaining, result, F):
        odd = ops.cast(remaining % 2, result.dtype)
        result = odd * accumulate(result, F) + (1.0 - odd) * result
        return remaining // 2, result, square(F)

    _, result, _ = ops.while_loop(cond, body, (ops.cast(power, "int32"), result, F))
    return result


def power_kernel(row, one_minus_matrix, column, length):
    """K[c, h, l] = row[c, h] A^l column[h] for l < L, by chunked powers of F = I - A (A = dA).

    With l = s j + i (chunk s a power of two near sqrt(L), J = ceil(L / s) chunks):

        K[c, h, s j + i] = (row A^(s j)) . (A^i column)    ->  a (J, N) @ (N, s) product per channel,

    and both factors come from doubling: columns A^(i + 2^k) v = A^i v - F_(2^k) A^i v for k < log2 s,
    rows r A^(s (j + 2^k)) = r A^(s j) - r A^(s j) F_(s 2^k), with F_(2m) = 2 F_m - F_m^2 (the powers
    of A are carried as I - A^m, which keeps float32 relative precision when A is close to I).
    Cost: about log2(L) batched N x N squarings plus O(H N L) for the products; no (H, N, L)
    tensor, no FFT and no truncation factor (A^l itself is formed, so K is exact at every L).
    The squarings are stable because the bilinear DPLR matrix is a contraction (||dA||_2 <= 1
    whenever Re(Lambda) <= 0, as A_s + A_s^T = 2 Re(Lambda) - 4 p p^T is negative semidefinite).

    Args:
        row: (C, H, N) output rows (e.g. `output_row(C)`).
        one_minus_matrix: (H, N, N) I - A.
        column: (H, N) input column (e.g. dB).
        length: L, a python int.

    Returns:
        (C, H, L) float32.
    """
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"`length` must be a positive python integer, got {length!r}.")
    length = int(length)
    chunk = 1 << max(0, math.ceil(math.log2(math.sqrt(length))))
    num_chunks = -(-length // chunk)

    def square(F):
        return 2.0 * F - precise_matmul(F, F)

    F = one_minus_matrix
    columns = column[..., None]  # (H, N, 1): A^0 column
    size = 1
    while size < chunk:  # F = I - A^size
        columns = ops.concatenate([columns, columns - precise_matmul(F, columns)], axis=-1)
        size *= 2
        F = square(F)
    # F = I - A^chunk. Rows are kept feature-major, (H, C, J, N), so that every product is a
    # plain batched matrix product over h.
    channels, features, state = row.shape[0], row.shape[1], row.shape[2]
    rows = ops.transpose(row, (1, 0, 2))[:, :, None, :]  # (H, C, 1, N): row A^0
    count = 1
    while count < num_chunks:  # F = I - A^(chunk * count)
        new = rows[:, :, : num_chunks - count]
        step = precise_matmul(ops.reshape(new, (features, -1, state)), F)
        rows = ops.concatenate([rows, new - ops.reshape(step, ops.shape(new))], axis=2)
        count *= 2
        if count < num_chunks:
            F = square(F)
    kernel = precise_matmul(ops.reshape(rows, (features, -1, state)), columns)  # (H, C J, chunk)
    kernel = ops.reshape(kernel, (features, channels, -1))[..., :length]
    return ops.transpose(kernel, (1, 0, 2))


def truncated_output_row(c_re, c_im, one_minus_dA, length):
    """C~ = C (I - dA^L) as complex halves, from the real output row c and I - dA.

    Args:
        c_re, c_im: (channels, H, M) true output matrix C.
        one_minus_dA: (H, N, N) I - dA on the real state.
        length: L.

    Returns:
        (re, im) of C~, each (channels, H, M).
    """
    row = row_times_one_minus_power(output_row(c_re, c_im), one_minus_dA, length)
    r_re, r_im = deinterleave(row)
    return 0.5 * r_re, -0.5 * r_im


# ---------------------------------------------------------------------------------------------
# float64 numpy twins for analysis (init and inspection time, never inside call())

def interleave_numpy(x):
    """complex (..., M) -> real (..., 2M) as [Re x_0, Im x_0, ...]."""
    x = np.asarray(x)
    return np.stack([x.real, x.imag], axis=-1).reshape(x.shape[:-1] + (2 * x.shape[-1],))


def dplr_real_state_matrix_numpy(lam, P):
    """Continuous real state matrix A_s = blockdiag(Lambda) - 2 sum_j p_j p_j^T on the interleaved state.

    Args:
        lam: complex (H, M). P: complex (r, H, M).

    Returns:
        float64 (H, N, N).
    """
    lam = np.asarray(lam, dtype=np.complex128)
    H, M = lam.shape
    blocks = np.zeros((H, M, 2, M, 2))
    idx = np.arange(M)
    blocks[:, idx, 0, idx, 0] = lam.real
    blocks[:, idx, 0, idx, 1] = -lam.imag
    blocks[:, idx, 1, idx, 0] = lam.imag
    blocks[:, idx, 1, idx, 1] = lam.real
    p = interleave_numpy(np.asarray(P, dtype=np.complex128))  # (r, H, N)
    return blocks.reshape(H, 2 * M, 2 * M) - 2.0 * np.einsum("rhn,rhm->hnm", p, p)


def bilinear_dense_numpy(A, b, dt):
    """Bilinear discretization of dense real systems: A (H, N, N), b (H, N), dt (H,) -> dA, dB in float64."""
    dt = np.asarray(dt, dtype=np.float64)[:, None, None]
    eye = np.eye(A.shape[-1])[None]
    E = eye - 0.5 * dt * A
    dA = np.linalg.solve(E, eye + 0.5 * dt * A)
    dB = np.linalg.solve(E, dt * np.asarray(b, dtype=np.float64)[..., None])[..., 0]
    return dA, dB
