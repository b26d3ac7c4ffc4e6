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
from keras_ssm.ops import fft, reference
from keras_ssm.ops.diagonal import complex_multiply, fft_convolution, fft_length


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


def pad_last_axis(x, n):
    return ops.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[0, n - x.shape[-1]]])


def autodiff_convolution(u, causal, anticausal=None):
    """The convolution written directly in keras.ops' (real, imag) FFTs, no custom gradient: the reference."""
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


@pytest.mark.parametrize("bidirectional", [False, True])
def test_skip_folded_into_the_kernel_equals_adding_d_u(bidirectional):
    """fft_convolution(..., skip=D) = fft_convolution(...) + D u, in value and in every gradient
    (dL/dD[h] = sum_{b,t} w[b, h, t] u[b, h, t])."""
    rng = np.random.default_rng(7)
    u, k1, k2, d = rng.normal(size=(3, 4, 29)), rng.normal(size=(4, 29)), rng.normal(size=(4, 29)), rng.normal(size=4)
    weights = ops.convert_to_tensor(rng.normal(size=(3, 4, 29)).astype("float32"))

    def folded(u, d, a, *b):
        return ops.sum(weights * fft_convolution(u, a, *b, skip=d))

    def added(u, d, a, *b):
        return ops.sum(weights * (fft_convolution(u, a, *b) + d[:, None] * u))

    args = (u, d, k1, k2) if bidirectional else (u, d, k1)
    value, grads = gradients(folded, *args)
    ref_value, ref_grads = gradients(added, *args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, expected in zip(grads, ref_grads):
        np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(grads[1], np.einsum("bht,bht->h", to_numpy(weights), u), rtol=1e-4)


@pytest.mark.parametrize("length, n", [(5, 12), (16, 16), (20, 16)])
@pytest.mark.parametrize("path", ["backend", "keras.ops pairs"])
def test_complex_fft_pair_equals_numpy(length, n, path):
    """rfft of the last axis zero-padded or cut to n, and its inverse, against numpy in float64."""
    rfft, irfft = {"backend": (fft.complex_rfft, fft.complex_irfft),
                   "keras.ops pairs": (fft.pair_rfft, fft.pair_irfft)}[path]
    x = np.random.default_rng(length).normal(size=(2, 3, length))
    spectrum = rfft(ops.convert_to_tensor(x.astype("float32")), n)
    expected = np.fft.rfft(x, n=n)
    got = to_numpy(spectrum)
    assert got.dtype == np.complex64 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    back = to_numpy(irfft(spectrum, n))
    np.testing.assert_allclose(back, np.fft.irfft(expected, n=n), atol=1e-5 * np.abs(x).max())


def _legs_layer(bidirectional=True, seed=0, **kwargs):
    layer = keras_ssm.S4(n=16, rank=2, bidirectional=bidirectional, seed=seed, **kwargs)
    layer.build((None, None, 3))
    rng = np.random.default_rng(seed)  # move P, B, Lambda and C away from their initial values
    for var, scale in ((layer.P, 0.5), (layer.B, 0.5), (layer.a_imag, 0.3), (layer.C, 0.5)):
        var.assign(var.numpy() + scale * rng.normal(size=var.shape).astype("float32"))
    return layer


@pytest.mark.parametrize("length", [1, 2, 5, 64, 300])
def test_s4_power_kernel_equals_generating_function_and_float64(length):
    """The python-int path (chunked powers) against the generating-function path taken for a length
    known only at run time, and against the float64 reference (dA^l dB summed step by step)."""
    layer = _legs_layer(dt_min=1e-3, dt_max=0.2)
    got = to_numpy(layer.convolution_kernel(length))
    generating = to_numpy(layer.convolution_kernel(ops.convert_to_tensor(length, dtype="int32")))
    expected = reference.s4_kernel(layer, length)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=2e-5)
    np.testing.assert_allclose(generating / scale, expected / scale, atol=2e-5)


@pytest.mark.parametrize("cls", [keras_ssm.S4D, keras_ssm.S4])
def test_frozen_eigenvalues_give_the_same_outputs_and_gradients(cls):
    """stop_gradient on frozen variables changes nothing but the work: same outputs, same gradients
    for every trainable variable, and no gradient path to the frozen ones."""
    x = np.random.default_rng(1).normal(size=(2, 24, 3)).astype("float32")
    layers = [cls(n=8, bidirectional=True, trainable_eigenvalues=t, seed=5) for t in (True, False)]
    for layer in layers:
        layer.build(x.shape)
    source = {v.name: v for v in layers[0].weights}
    for v in layers[1].weights:
        v.assign(source[v.name].numpy())
    learned, frozen = layers
    assert not any(v.trainable for v in frozen.eigenvalue_variables)

    def loss_of(layer, names):
        def loss(*values):
            mapping = {name: value for name, value in zip(names, values)}
            trainable = [mapping.get(v.name, v.value) for v in layer.trainable_variables]
            fixed = [mapping.get(v.name, v.value) for v in layer.non_trainable_variables]
            y, _ = layer.stateless_call(trainable, fixed, ops.convert_to_tensor(x))
            return ops.sum(y * y)
        return loss

    names = [v.name for v in frozen.trainable_variables]
    values = [v.numpy() for v in frozen.trainable_variables]
    value_l, grads_l = gradients(loss_of(learned, names), *values)
    value_f, grads_f = gradients(loss_of(frozen, names), *values)
    np.testing.assert_allclose(value_f, value_l, rtol=1e-6)
    for name, gl, gf in zip(names, grads_l, grads_f):
        np.testing.assert_allclose(gf, gl, rtol=1e-5, atol=1e-6 * np.abs(gl).max(), err_msg=name)
    # and the learned layer does get a gradient for its eigenvalue variables
    eig = [v.name for v in learned.eigenvalue_variables]
    _, grads = gradients(loss_of(learned, eig), *[v.numpy() for v in learned.eigenvalue_variables])
    assert all(np.abs(g).max() > 0 for g in grads)
