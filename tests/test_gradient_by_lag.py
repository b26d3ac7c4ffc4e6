"""keras_ssm.gradient_by_lag: the per-lag parts of a diagonal layer's gradients sum to autodiff's gradient, and
the memory push is the first-order change of log|lambda| under a gradient-descent step."""

import keras
import numpy as np
import pytest

import keras_ssm
from keras_ssm.gradients import batch_gradients
from keras_ssm.memory.gradient import lag_gradient
from keras_ssm.ops.discrete import discretize_diagonal_numpy


def classifier(*layers, length=48):
    inputs = keras.Input((length, 3))
    h = inputs
    for layer in layers:
        h = layer(h)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def batch(length=48):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, length, 3)).astype("float32")
    return x, (x[:, -4, 0] > 0).astype("int32")


@pytest.mark.parametrize("discretization, bidirectional", [("zoh", False), ("bilinear", True)])
def test_parts_sum_to_the_autodiff_gradient(discretization, bidirectional):
    keras.utils.set_random_seed(0)
    layer = keras_ssm.S4D(n=8, seed=1, discretization=discretization, bidirectional=bidirectional,
                          dt_min=0.01, dt_max=0.5)
    model = classifier(layer)
    x, y = batch()
    parts = keras_ssm.gradient_by_lag(model, x, y)[layer.name]
    assert parts.log_a_real.shape == (3, 4, 48) and parts.log_dt.shape == (3, 48)
    loss, _, grads = batch_gradients(model, x, y, layers=[],
                                     variables=[layer.log_a_real, layer.a_imag, layer.log_dt, layer.C])
    assert loss == pytest.approx(parts.loss, rel=1e-6)
    for name, expected in zip(("log_a_real", "a_imag", "log_dt", "C"), grads):
        total = parts.total(name)
        assert total.shape == expected.shape, name
        scale = np.max(np.abs(expected))
        assert scale > 0, name
        np.testing.assert_allclose(total, expected, atol=2e-5 * scale, err_msg=name)  # float32 round-off


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_memory_push_is_the_first_order_change_of_log_magnitude(discretization):
    rng = np.random.default_rng(3)
    H, M, L = 2, 3, 20
    log_a_real, a_imag, log_dt = rng.normal(size=(H, M)), rng.normal(size=(H, M)) * 3, rng.uniform(-4, -1, (H,))
    C = rng.normal(size=(1, H, M)) + 1j * rng.normal(size=(1, H, M))
    G = rng.normal(size=(1, H, L))

    def log_magnitude(lar, ai, ldt):
        return np.log(np.abs(discretize_diagonal_numpy(np.exp(ldt)[:, None], -np.exp(lar) + 1j * ai,
                                                       discretization)[0]))

    parts = lag_gradient(G, -np.exp(log_a_real) + 1j * a_imag, np.exp(log_dt), C, discretization)
    eps = 1e-6
    stepped = log_magnitude(log_a_real - eps * parts.total("log_a_real"), a_imag - eps * parts.total("a_imag"),
                            log_dt - eps * parts.total("log_dt"))
    np.testing.assert_allclose((stepped - log_magnitude(log_a_real, a_imag, log_dt)) / eps,
                               parts.total("memory_push"), rtol=1e-4, atol=1e-9)
    assert parts.push_by_lag().shape == (L,)


def test_frozen_eigenvalues_still_get_their_would_be_gradient():
    layer = keras_ssm.S4D(n=8, seed=1, trainable_eigenvalues=False)
    model = classifier(layer)
    parts = keras_ssm.gradient_by_lag(model, *batch())[layer.name]
    assert np.all(np.isfinite(parts.memory_push)) and np.any(parts.total("log_a_real") != 0)


def test_bad_input_is_named():
    x, y = batch()
    plain = keras.Sequential([keras.Input((48, 3)), keras.layers.Dense(2)])
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match="has no SSM layer"):
        keras_ssm.gradient_by_lag(plain, x, y)
    s4 = classifier(keras_ssm.S4(n=8, seed=1))
    with pytest.raises(ValueError, match="needs diagonal SSM layers"):
        keras_ssm.gradient_by_lag(s4, x, y)
    model = classifier(keras_ssm.S4D(n=8, seed=1, name="ssm"))
    with pytest.raises(ValueError, match="no SSM layer 'nope'.*ssm"):
        keras_ssm.gradient_by_lag(model, x, y, layers=["nope"])
    uncompiled = keras.Model(model.inputs, model.outputs)
    with pytest.raises(ValueError, match="No loss to differentiate"):
        keras_ssm.gradient_by_lag(uncompiled, x, y)
    with pytest.raises(ValueError, match="`name` must be one of"):
        keras_ssm.gradient_by_lag(model, x, y)["ssm"].total("D")
