"""S4D layer: kernel against the float64 reference (keras_ssm.ops.reference), discrete eigenvalues, initial values
and seeds, gradients for every init, argument errors. Backend: KERAS_BACKEND.

What every layer class must do (config and .keras round trips, masking, dtype policy, causality, step
mode = convolution, training and frozen variables, length / feature errors) is checked for S4D and
SSMBlock by the layer harness: tests/test_layer_harness.py."""

import numpy as np
import pytest

import keras

import keras_ssm
from layer_helpers import fit_a_few_steps, inputs, regression_model, to_numpy
from keras_ssm.ops import reference

INITS = ["inv", "lin", "real", "legs", "random"]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_kernel_matches_float64_formula(init, discretization):
    layer = keras_ssm.S4D(n=16, init=init, discretization=discretization, bidirectional=True,
                          dt_min=1e-3, dt_max=1e-1, seed=3)
    layer.build((None, None, 5))
    length = 300  # not a multiple of the power chunk size
    expected = reference.s4d_kernel(layer, length)
    got = layer.kernel(length)
    assert got.shape == (2, 5, length)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=5e-5)


def test_kernel_long_length_stays_accurate():
    layer = keras_ssm.S4D(n=64, init="inv", seed=0)
    layer.build((None, None, 4))
    expected = reference.s4d_kernel(layer, 4096)[0]
    got = layer.kernel(4096)
    assert got.shape == (4, 4096)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=1e-4)


def test_discrete_eigenvalues_and_frozen_flags():
    layer = keras_ssm.S4D(n=8, init="lin", trainable_eigenvalues=False, seed=0)
    layer.build((None, None, 3))
    lam = layer.discrete_eigenvalues()
    assert lam.shape == (3, 4) and lam.dtype == np.complex128
    assert np.all(np.abs(lam) < 1)
    dt = np.exp(layer.log_dt.numpy().astype(np.float64))[:, None]
    np.testing.assert_allclose(lam, np.exp(dt * (-0.5 + 1j * np.pi * np.arange(4))), rtol=1e-6)
    assert not any(v.trainable for v in layer.eigenvalue_variables)
    assert layer.C.trainable and layer.D.trainable
    dA, dB, C = layer.discrete_state_space()
    assert dA.shape == (3, 4, 4) and dB.shape == (3, 4) and C.shape == (1, 3, 4)
    np.testing.assert_allclose(np.diagonal(dA, axis1=1, axis2=2), lam)


def test_pure_linear_ssm_is_kernel_convolution_plus_skip():
    x = inputs(batch=1, length=30, features=3)
    layer = keras_ssm.S4D(n=8, activation=None, gated_output=False, seed=2)
    y = to_numpy(layer(x))[0]
    k = layer.kernel(30)
    d = layer.D.numpy()
    expected = np.stack(
        [np.convolve(x[0, :, h], k[h])[:30] + d[h] * x[0, :, h] for h in range(3)], axis=-1
    )
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 7}, "`n`"),
        ({"n": 0}, "`n`"),
        ({"n": 2.0}, "`n`"),
        ({"init": "hippo"}, "`init`"),
        ({"discretization": "euler"}, "`discretization`"),
        ({"dt_min": 0.0}, "`dt_min`"),
        ({"dt_min": -1e-3}, "`dt_min`"),
        ({"dt_min": 0.1, "dt_max": 0.1}, "`dt_min` must be < `dt_max`"),
        ({"dt_max": float("nan")}, "`dt_max`"),
        ({"dropout": 1.0}, "`dropout`"),
        ({"bidirectional": "yes"}, "`bidirectional`"),
        ({"trainable_dt": 1}, "`trainable_dt`"),
        # Wrong types are named too, never a bare TypeError from a comparison or silently accepted.
        ({"dt_min": True, "dt_max": 10.0}, "`dt_min`"),
        ({"dt_max": True}, "`dt_max`"),
        ({"dt_max": "0.1"}, "`dt_max`"),
        ({"dropout": "0.1"}, "`dropout`"),
        ({"dropout": None}, "`dropout`"),
        ({"dropout": True}, "`dropout`"),
        ({"seed": "7"}, "`seed`"),
        ({"seed": 1.5}, "`seed`"),
        ({"seed": -1}, "`seed`"),
        ({"seed": True}, "`seed`"),
        ({"n": "8"}, "`n`"),
        ({"n": True}, "`n`"),
        ({"init": ["inv"]}, "`init`"),
        ({"activation": "no_such_activation"}, "`activation`"),
        ({"activation": 3}, "`activation`"),
        ({"gated_output": None}, "`gated_output`"),
        ({"trainable_eigenvalues": 0}, "`trainable_eigenvalues`"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_ssm.S4D(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": "0.1"}, "`dropout`"),
        ({"dropout": None}, "`dropout`"),
        ({"norm_momentum": "0.9"}, "`norm_momentum`"),
        ({"norm_momentum": 1.0}, "`norm_momentum`"),
        ({"prenorm": "yes"}, "`prenorm`"),
        ({"norm": ["batch"]}, "`norm`"),
    ],
)
def test_bad_block_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_ssm.SSMBlock(keras_ssm.S4D(n=4), **kwargs)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    layer = keras_ssm.S4D(n=np.int64(4), dt_min=np.float32(1e-3), dropout=np.float64(0.1), seed=np.int32(3))
    config = layer.get_config()
    assert config["n"] == 4 and config["seed"] == 3 and type(config["seed"]) is int
    assert config["dropout"] == pytest.approx(0.1)


def test_bad_kernel_lengths_and_block_layers_raise_clear_errors():
    # rank, feature dimension and step-API errors: tests/test_layer_harness.py (errors, unknown_features)
    with pytest.raises(ValueError, match="`length`"):
        layer = keras_ssm.S4D(n=4)
        layer.build((None, None, 3))
        layer.kernel(0)
    with pytest.raises(ValueError, match="`norm`"):
        keras_ssm.SSMBlock(keras_ssm.S4D(n=4), norm="group")
    with pytest.raises(ValueError, match="`layer`"):
        keras_ssm.SSMBlock("s4d")


@pytest.mark.parametrize("init", INITS)
def test_gradients_are_finite_for_every_init(init):
    layer = keras_ssm.S4D(n=8, init=init, dt_min=1e-4, dt_max=1.0, bidirectional=True, seed=0)
    model = regression_model(layer)
    fit_a_few_steps(model)
    for v in layer.weights:
        assert np.isfinite(v.numpy()).all(), v.path


@pytest.mark.slow
def test_learns_sklearn_digits_pixel_by_pixel():
    from sklearn.datasets import load_digits  # 1.4 s to import, for this slow test only
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images.reshape(-1, 64, 1) / 16.0).astype("float32")
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    inp = keras.Input((64, 1))
    h = keras.layers.Dense(64)(inp)
    for i in range(2):
        h = keras_ssm.SSMBlock(keras_ssm.S4D(n=32, dt_min=1e-2, dt_max=1e-1, seed=i), norm="layer")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.90, accuracy


def test_seed_gives_the_same_initial_values_on_every_backend():
    layer = keras_ssm.S4D(n=8, dt_min=1e-3, dt_max=1e-1, seed=11)
    layer.build((None, None, 5))
    rng = np.random.default_rng(11)  # the layer's documented source of random initial values
    expected_log_dt = rng.uniform(np.log(1e-3), np.log(1e-1), size=5)
    np.testing.assert_allclose(layer.log_dt.numpy(), expected_log_dt.astype("float32"))
    again = keras_ssm.S4D(n=8, dt_min=1e-3, dt_max=1e-1, seed=11)
    again.build((None, None, 5))
    for a, b in zip(layer.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_set_random_seed_makes_unseeded_layers_reproducible():
    def initial_weights(seed):
        keras.utils.set_random_seed(seed)
        layer = keras_ssm.S4D(n=8, init="random")
        layer.build((None, None, 3))
        return {w.name: w.numpy() for w in layer.weights}

    first, second, other = initial_weights(5), initial_weights(5), initial_weights(6)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert not np.array_equal(first["C"], other["C"])
    assert not np.array_equal(first["a_imag"], other["a_imag"])


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_small_steps_keep_float32_accuracy(discretization):
    # dt down to 1e-5 (Path-X uses dt_min = 1e-4): exp(dt a) - 1 and log|1 + dt a / 2| must not cancel.
    layer = keras_ssm.S4D(n=16, init="real", discretization=discretization, dt_min=1e-5, dt_max=1e-4, seed=0)
    layer.build((None, None, 6))
    expected = reference.s4d_kernel(layer, 256)
    got = layer.kernel(256)[None]
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=2e-5)
