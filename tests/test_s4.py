"""S4 layer (DPLR state matrix): kernel against the brute-force float64 dense system built independently
(keras_ssm.ops.reference), HiPPO-LegS initialisation, equality with S4D when P = 0, discrete eigenvalues, variable
groups, an unknown length at trace time, argument errors. Backend: KERAS_BACKEND.

What every layer class must do (config and .keras round trips, masking, dtype policy, causality, step
mode = convolution, training and frozen variables, length / feature errors) is checked for S4 by the
layer harness: tests/test_layer_harness.py."""

import numpy as np
import pytest

import keras

import keras_ssm
from layer_helpers import inputs, to_numpy
from keras_ssm.layers.s4 import S4
from keras_ssm.ops import reference
from keras_ssm.ops.init import hippo_legs, nplr_legs
from keras_ssm.ops.reference import pairs_to_complex


def randomise_dplr(layer, seed=0):
    """Move P, B, Lambda and C away from their initial values (a 'trained' DPLR system)."""
    rng = np.random.default_rng(seed)
    for var, scale in ((layer.P, 0.5), (layer.B, 0.5), (layer.a_imag, 0.3), (layer.C, 0.5)):
        var.assign(var.numpy() + scale * rng.normal(size=var.shape).astype("float32"))


def assert_kernels_close(got, expected, atol=2e-5):
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=atol)


@pytest.mark.parametrize(
    "init, rank, bidirectional, randomise",
    [("legs", 1, False, False), ("legs", 2, True, True), ("inv", 1, False, False), ("real", 1, True, True)],
)
def test_kernel_matches_brute_force_dense_float64(init, rank, bidirectional, randomise):
    layer = S4(n=8, init=init, rank=rank, bidirectional=bidirectional, dt_min=1e-2, dt_max=0.5, seed=3)
    layer.build((None, None, 3))
    if randomise:
        randomise_dplr(layer)
    for length in (48, 29):  # the second length differs from the first call
        got = layer.kernel(length)
        expected = reference.s4_kernel(layer, length)
        assert got.shape == ((2,) if bidirectional else ()) + (3, length)
        assert_kernels_close(got, expected if bidirectional else expected[0])


def test_kernel_is_exact_when_the_state_has_not_decayed_within_the_length():
    """Small dt and a short length: dA^L is far from 0, so the truncation factor (I - dA^L) matters."""
    layer = S4(n=8, dt_min=1e-3, dt_max=2e-3, seed=0)
    layer.build((None, None, 3))
    expected = reference.s4_kernel(layer, 48)[0]
    _, dA, _, _ = reference.s4_system(layer)
    assert np.abs(np.linalg.eigvals(dA)).max() ** 48 > 0.9
    assert_kernels_close(layer.kernel(48), expected)


def test_legs_init_is_the_hippo_legs_matrix():
    n = 8
    layer = S4(n=n, seed=0)
    layer.build((None, None, 2))
    A, _, _, _ = reference.s4_system(layer)
    B = pairs_to_complex(layer.B)
    V = nplr_legs(n)[3]
    W = np.concatenate([V, V.conj()], axis=1)  # unitary basis change of the conjugate-expanded state
    A_legs, B_legs = hippo_legs(n)
    for h in range(2):
        np.testing.assert_allclose(W @ A[h] @ W.conj().T, A_legs, atol=1e-5)
        np.testing.assert_allclose(W @ np.concatenate([B[h], B[h].conj()]), B_legs, atol=1e-5)


def test_with_p_zero_equals_s4d_bilinear():
    x = inputs(length=48, features=3)
    s4 = S4(n=8, init="inv", bidirectional=True, seed=1)
    s4d = keras_ssm.S4D(n=8, init="inv", discretization="bilinear", bidirectional=True, seed=2)
    s4.build(x.shape)
    s4d.build(x.shape)
    assert np.all(s4.P.numpy() == 0.0)
    np.testing.assert_array_equal(pairs_to_complex(s4.B), 1.0)
    for source, target in ((s4d.log_dt, s4.log_dt), (s4d.log_a_real, s4.log_a_real),
                           (s4d.a_imag, s4.a_imag), (s4d.C, s4.C), (s4d.D, s4.D),
                           (s4d.output_dense.kernel, s4.output_dense.kernel),
                           (s4d.output_dense.bias, s4.output_dense.bias)):
        target.assign(source.numpy())
    assert_kernels_close(s4.kernel(48), s4d.kernel(48), atol=2e-5)
    np.testing.assert_allclose(to_numpy(s4(x)), to_numpy(s4d(x)), atol=2e-5)


def test_discrete_state_space_is_the_documented_real_system():
    layer = S4(n=8, rank=2, bidirectional=True, dt_min=1e-2, dt_max=0.5, seed=0)
    layer.build((None, None, 3))
    randomise_dplr(layer, seed=1)
    dA, dB, C = layer.discrete_state_space()
    assert dA.shape == (3, 8, 8) and dB.shape == (3, 8) and C.shape == (2, 3, 8)
    assert dA.dtype == dB.dtype == C.dtype == np.float64
    assert_kernels_close(reference.power_kernel(dA, dB, C, 30), reference.s4_kernel(layer, 30), atol=1e-9)


@pytest.mark.parametrize("init, randomise", [("legs", False), ("legs", True), ("lin", False)])
def test_discrete_eigenvalues_are_those_of_the_dense_discrete_matrix(init, randomise):
    layer = S4(n=8, init=init, dt_min=1e-2, dt_max=0.5, seed=0)
    layer.build((None, None, 3))
    if randomise:
        randomise_dplr(layer)
    got = layer.discrete_eigenvalues()
    assert got.shape == (3, 8) and got.dtype == np.complex128
    assert np.all(np.abs(got) < 1.0)
    _, dA, _, _ = reference.s4_system(layer)
    for h in range(3):
        expected = np.linalg.eigvals(dA[h])
        distance = np.abs(got[h][:, None] - expected[None, :])
        # every eigenvalue has a partner in the other set (and back): a sorted, pairing-free comparison
        assert distance.min(axis=1).max() < 1e-6 and distance.min(axis=0).max() < 1e-6
        np.testing.assert_allclose(np.sort(got[h].real), np.sort(expected.real), atol=1e-6)
    if init == "legs" and not randomise:
        dt = np.exp(layer.log_dt.numpy().astype(np.float64))[:, None]
        k = np.arange(1, 9)
        legs = np.sort((1 - dt * k / 2) / (1 + dt * k / 2), axis=-1)
        # HiPPO-LegS eigenvalues are real; float32 storage of Lambda and P perturbs them slightly.
        np.testing.assert_allclose(got, legs, atol=1e-3)


def test_variable_groups():
    """P (with Lambda and dt) sets the eigenvalues and freezes with them; B gets the SSM learning rate only."""
    layer = S4(n=8, rank=2, trainable_eigenvalues=False, seed=0)
    layer.build((None, None, 3))
    assert any(v is layer.P for v in layer.eigenvalue_variables)
    assert any(v is layer.B for v in layer.ssm_variables)
    assert not any(v is layer.B for v in layer.eigenvalue_variables)
    assert not any(v.trainable for v in layer.eigenvalue_variables) and layer.B.trainable


def test_config_and_step_state():
    """The config names the rank and the resolved discretization; the step state is the real interleaved
    state (batch, H, N). The generic round trips and step = convolution: tests/test_layer_harness.py."""
    config = S4(n=8, rank=2).get_config()
    assert config["rank"] == 2 and config["discretization"] == "bilinear"
    layer = S4(n=8, seed=0)
    layer.build((None, None, 3))
    assert tuple(layer.get_initial_state(2).shape) == (2, 3, 8)


def test_unknown_length_at_trace_time_matches_eager_call():
    """A model with a None length (tensorflow traces it with a dynamic length) gives the eager result."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 3))
    layer = S4(n=8, activation=None, gated_output=False, seed=0)
    model = keras.Model(inp, layer(inp))
    for length in (48, 29):  # the second predict call retraces with a None length on tensorflow
        x = inputs(length=length, features=3)
        np.testing.assert_allclose(model.predict(x, batch_size=2, verbose=0), to_numpy(layer(x)), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 7}, "`n`"),
        ({"rank": 3}, "`rank`"),
        ({"rank": 0}, "`rank`"),
        ({"rank": True}, "`rank`"),
        ({"discretization": "zoh"}, "`discretization` must be 'bilinear'"),
        ({"init": "hippo"}, "`init`"),
        ({"dt_min": 0.1, "dt_max": 0.1}, "`dt_min` must be < `dt_max`"),
        ({"rank": "1"}, "`rank`"),
        ({"rank": 1.0}, "`rank`"),
        ({"dt_min": True, "dt_max": 10.0}, "`dt_min`"),
        ({"dropout": "0.1"}, "`dropout`"),
        ({"seed": 2.5}, "`seed`"),
        ({"activation": "no_such_activation"}, "`activation`"),
        ({"bidirectional": None}, "`bidirectional`"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S4(**kwargs)
