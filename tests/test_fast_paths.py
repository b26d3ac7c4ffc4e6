"""The faster code paths equal the plain ones they replace, in values and gradients, on the active
backend (KERAS_BACKEND): the FFT convolution's hand-written gradient against automatic
differentiation of the same formula, S4's power kernel against the generating-function kernel and a
float64 brute force, and the frozen-eigenvalue path against the learned one."""

import numpy as np
import pytest

import keras
from keras import ops

import keras_ssm
from layer_helpers import to_numpy
from keras_ssm.ops.diagonal import complex_multiply, fft_convolution, fft_length, pad_last_axis


def gradients(fn, *args):
    """fn(*args) (a scalar) and its gradients with respect to every argument, as numpy, on any backend."""
    backend = keras.backend.backend()
    args = [ops.convert_to_tensor(np.asarray(a, dtype="float32")) for a in args]
    if backend == "jax":
        import jax

        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args)
    else:
        import torch

        args = [a.detach().clone().requires_grad_(True) for a in args]
        value = fn(*args)
        grads = torch.autograd.grad(value, args)
    return to_numpy(value), [to_numpy(g) for g in grads]


def autodiff_convolution(u, causal, anticausal=None):
    """The convolution written directly in keras.ops (no custom gradient): the reference."""
    length = u.shape[-1]
    n = fft_length(length)
    kernel = causal
    if anticausal is not None:
        gap = ops.zeros((causal.shape[0], n - 2 * length))
        kernel = ops.concatenate([causal, gap, ops.flip(anticausal, axis=-1)], axis=-1)
    u_f = ops.rfft(pad_last_axis(u, n), fft_length=n)
    k_f = ops.rfft(pad_last_axis(kernel, n), fft_length=n)
    return ops.irfft(complex_multiply(*u_f, *k_f), fft_length=n)[..., :length]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("length", [37, 64])
def test_fft_convolution_gradient_equals_automatic_differentiation(bidirectional, length):
    rng = np.random.default_rng(length)
    u = rng.normal(size=(3, 4, length))
    k1, k2 = rng.normal(size=(4, length)), rng.normal(size=(4, length))
    weights = ops.convert_to_tensor(rng.normal(size=(3, 4, length)).astype("float32"))

    def loss(conv):
        if bidirectional:
            return lambda u, a, b: ops.sum(weights * conv(u, a, b))
        return lambda u, a: ops.sum(weights * conv(u, a))

    args = (u, k1, k2) if bidirectional else (u, k1)
    value, grads = gradients(loss(fft_convolution), *args)
    ref_value, ref_grads = gradients(loss(autodiff_convolution), *args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, expected in zip(grads, ref_grads):
        np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    # and the gradient is the direct sum: dL/du[b, h, s] = sum_t w[b, h, t] K[h, t - s]
    w = to_numpy(weights)
    du = np.zeros_like(u)
    for s in range(length):
        du[..., s] = np.einsum("bht,ht->bh", w[..., s:], k1[:, : length - s])
        if bidirectional:
            du[..., s] += np.einsum("bht,ht->bh", w[..., :s], k2[:, :s][:, ::-1])
    np.testing.assert_allclose(grads[0], du, atol=1e-4 * np.abs(du).max())
