"""S4D layer: kernel against an independent float64 computation, step mode, causality, freezing,
serialization, mixed precision, masking, argument errors. Backend: KERAS_BACKEND."""

import numpy as np
import pytest

import keras
from keras import ops

import keras_ssm
from layer_helpers import fit_a_few_steps, inputs, regression_model, step_outputs, to_numpy

INITS = ["inv", "lin", "real", "legs", "random"]


def reference_kernel(layer, length):
    """K[c, h, l] = 2 Re(sum_n C dB lambda^l), written directly from the S4D kernel in float64 numpy:
    lambda = exp(dt A), dB = (lambda - 1) / A (ZOH) or lambda = (1 + dt A/2) / (1 - dt A/2),
    dB = dt / (1 - dt A/2) (bilinear); the conjugate half of the spectrum gives the factor 2 Re."""
    a = -np.exp(layer.log_a_real.numpy().astype(np.float64)) + 1j * layer.a_imag.numpy().astype(np.float64)
    dt = np.exp(layer.log_dt.numpy().astype(np.float64))[:, None]
    if layer.discretization == "zoh":
        lam = np.exp(dt * a)
        db = (lam - 1.0) / a
    else:
        lam = (1 + dt * a / 2) / (1 - dt * a / 2)
        db = dt / (1 - dt * a / 2)
    c = layer.C.numpy().astype(np.float64)
    c = c[..., 0] + 1j * c[..., 1]
    powers = lam[..., None] ** np.arange(length)
    return 2 * np.real(np.einsum("chn,hnl->chl", c * db[None], powers))


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_kernel_matches_float64_formula(init, discretization):
    layer = keras_ssm.S4D(n=16, init=init, discretization=discretization, bidirectional=True,
                          dt_min=1e-3, dt_max=1e-1, seed=3)
    layer.build((None, None, 5))
    length = 300  # not a multiple of the power chunk size
    expected = reference_kernel(layer, length)
    got = layer.kernel(length)
    assert got.shape == (2, 5, length)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=5e-5)


def test_kernel_long_length_stays_accurate():
    layer = keras_ssm.S4D(n=64, init="inv", seed=0)
    layer.build((None, None, 4))
    expected = reference_kernel(layer, 4096)[0]
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


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("gated", [True, False])
def test_convolution_equals_step_mode(discretization, gated):
    x = inputs(length=64)
    layer = keras_ssm.S4D(n=16, discretization=discretization, gated_output=gated,
                          activation="gelu" if gated else None, seed=1)
    y = to_numpy(layer(x))
    np.testing.assert_allclose(step_outputs(layer, x), y, atol=2e-5, rtol=1e-4)


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


def test_causality_and_bidirectional_sees_future():
    x = inputs(length=50)
    x2 = x.copy()
    x2[:, 30:] += 1.0
    causal = keras_ssm.S4D(n=16, seed=0)
    y, y2 = to_numpy(causal(x)), to_numpy(causal(x2))
    np.testing.assert_allclose(y[:, :30], y2[:, :30], atol=1e-5)
    assert np.abs(y[:, 30:] - y2[:, 30:]).max() > 1e-2
    bidir = keras_ssm.S4D(n=16, bidirectional=True, seed=0)
    y, y2 = to_numpy(bidir(x)), to_numpy(bidir(x2))
    assert np.abs(y[:, :30] - y2[:, :30]).max() > 1e-2
    # The anticausal part sees strictly future inputs only: nothing before t=29 depends on x[30] alone
    # through the causal kernel, so t=29 must change (it sees x[30]) while the causal layer did not.
    assert np.abs(y[:, 29] - y2[:, 29]).max() > 1e-3


@pytest.mark.parametrize("trainable", [False, True])
def test_frozen_eigenvalues_are_bit_identical_after_fit(trainable):
    layer = keras_ssm.S4D(n=8, trainable_eigenvalues=trainable, seed=0)
    model = regression_model(layer)
    lam0 = layer.discrete_eigenvalues().copy()
    c0, d0 = layer.C.numpy().copy(), layer.D.numpy().copy()
    w0 = layer.output_dense.kernel.numpy().copy()
    fit_a_few_steps(model)
    lam1 = layer.discrete_eigenvalues()
    if trainable:
        assert np.abs(lam1 - lam0).max() > 1e-6
    else:
        assert np.array_equal(lam1, lam0)
    assert np.abs(layer.C.numpy() - c0).max() > 1e-6
    assert np.abs(layer.D.numpy() - d0).max() > 1e-6
    assert np.abs(layer.output_dense.kernel.numpy() - w0).max() > 1e-6


def test_trainable_dt_alone():
    layer = keras_ssm.S4D(n=8, trainable_eigenvalues=False, trainable_dt=True, seed=0)
    model = regression_model(layer)
    a0 = layer.continuous_eigenvalues().copy()
    dt0 = layer.log_dt.numpy().copy()
    fit_a_few_steps(model)
    assert np.array_equal(layer.continuous_eigenvalues(), a0)
    assert np.abs(layer.log_dt.numpy() - dt0).max() > 1e-6


def test_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((20, 4))
    h = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, bidirectional=True, trainable_eigenvalues=False,
                                         init="legs", discretization="bilinear", dropout=0.1, seed=4),
                           norm="batch", prenorm=False, dropout=0.1, norm_momentum=0.8)(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    x = inputs(length=20, features=4)
    expected = to_numpy(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), expected)
    assert loaded.layers[1].norm_layer.momentum == 0.8
    ssm = loaded.layers[1].layer
    assert isinstance(ssm, keras_ssm.S4D)
    assert ssm.trainable_eigenvalues is False and ssm.init == "legs" and ssm.bidirectional
    assert not any(v.trainable for v in ssm.eigenvalue_variables)


def test_get_config_round_trip():
    layer = keras_ssm.S4D(n=6, init="real", trainable_eigenvalues=False, trainable_dt=True,
                          dt_min=1e-4, dt_max=0.5, activation=None, gated_output=False, seed=7)
    clone = keras_ssm.S4D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_mixed_bfloat16_runs_and_stays_finite():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = keras_ssm.S4D(n=16, bidirectional=True, seed=0)
        block = keras_ssm.SSMBlock(layer, norm="layer")
        y = block(inputs(length=64, features=8))
        assert layer.log_dt.dtype == "float32"
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        assert np.isfinite(to_numpy(ops.cast(y, "float32"))).all()
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_masking_invariance_to_padding_length(norm):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(3, 25))
    lengths = np.array([25, 17, 9])
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    embed = keras.layers.Embedding(20, 8, mask_zero=True)
    block = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, bidirectional=True, seed=0), norm=norm, prenorm=True)
    second = keras_ssm.S4D(n=8, bidirectional=True, seed=1)

    def run(padded_length):
        x = np.zeros((3, padded_length), dtype="int32")
        x[:, :25] = tokens
        h = embed(x)
        mask = embed.compute_mask(x)
        h = block(h, mask=mask, training=False)
        return to_numpy(second(h, mask=mask))

    short, long = run(25), run(60)
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(long[i, :n], short[i, :n], atol=2e-5)


def test_mask_is_propagated():
    inp = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(5, 4, mask_zero=True)(inp)
    h = keras_ssm.SSMBlock(keras_ssm.S4D(n=4, seed=0))(h)
    h = keras_ssm.S4D(n=4, seed=1)(h)
    assert h._keras_mask is not None


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


def test_length_zero_is_a_clear_error_not_a_hang():
    layer = keras_ssm.S4D(n=4, seed=0)
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="length >= 1"):
        layer(np.zeros((2, 0, 3), "float32"))
    with pytest.raises(ValueError, match="length >= 1"):
        keras_ssm.S4D(n=4, seed=0)(np.zeros((2, 0, 3), "float32"))
    with pytest.raises(ValueError, match="length >= 1"):
        keras_ssm.SSMBlock(keras_ssm.S4D(n=4, seed=0))(np.zeros((1, 0, 3), "float32"))


@pytest.mark.parametrize("features", [1, 6])
def test_a_built_layer_called_with_another_feature_count_is_a_clear_error(features):
    layer = keras_ssm.S4D(n=4, seed=0)
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        layer(np.zeros((2, 5, features), "float32"))
    block = keras_ssm.SSMBlock(keras_ssm.S4D(n=4, seed=0))
    block(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        block(np.zeros((2, 5, features), "float32"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_at_padded_positions_cannot_reach_real_positions(bad):
    x = inputs(batch=2, length=12, features=3, seed=4)
    mask = np.ones((2, 12), dtype=bool)
    mask[0, 8:] = False
    poisoned = x.copy()
    poisoned[0, 8:] = bad
    clean = x.copy()
    clean[0, 8:] = 0.0
    layer = keras_ssm.S4D(n=4, bidirectional=True, seed=0)
    block = keras_ssm.SSMBlock(keras_ssm.S4D(n=4, bidirectional=True, seed=1), norm="batch")
    for training in (False, True):
        got = to_numpy(block(layer(poisoned, mask=mask), mask=mask, training=training))
        expected = to_numpy(block(layer(clean, mask=mask), mask=mask, training=training))
        assert np.isfinite(got[0, :8]).all() and np.isfinite(got[1]).all()
        np.testing.assert_allclose(got[0, :8], expected[0, :8], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)


def test_bad_input_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="rank 3"):
        keras_ssm.S4D(n=4)(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="feature dimension"):
        keras_ssm.S4D(n=4).build((None, 10, None))
    with pytest.raises(ValueError, match="bidirectional"):
        layer = keras_ssm.S4D(n=4, bidirectional=True)
        layer.build((None, None, 3))
        layer.get_initial_state(1)
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
    from sklearn.datasets import load_digits
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
    expected = reference_kernel(layer, 256)
    got = layer.kernel(256)[None]
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(got / scale, expected / scale, atol=2e-5)
