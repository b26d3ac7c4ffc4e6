"""Any eigenvalue set (arrays, DiscreteEigenvalues, discrete families) and partial freezing (frozen_modes)."""

import numpy as np
import pytest

import keras
import keras_ssm
from keras_ssm.memory import memory_function
from keras_ssm.ops.init import (
    DiscreteEigenvalues,
    check_eigenvalue_init,
    continuous_from_discrete,
    linear_magnitudes,
    unity_rings,
)

H, N, L = 3, 8, 16


def _build(layer, length=L, features=H):
    layer(np.zeros((1, length, features), "float32"))
    return layer


def _lam(n=N):
    return np.array([0.9, 0.5 + 0.5j, -0.3 + 0.6j, 0.2j])[: n // 2]


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_discrete_eigenvalues_are_reproduced_at_dt_one(discretization):
    lam = _lam()
    layer = _build(keras_ssm.S4D(n=N, init=DiscreteEigenvalues(lam), discretization=discretization, seed=0))
    np.testing.assert_array_equal(layer.log_dt.numpy(), 0.0)
    np.testing.assert_allclose(layer.discrete_eigenvalues(), np.tile(lam, (H, 1)), atol=1e-6)


def test_continuous_from_discrete_inverts_both_discretizations():
    lam = _lam()
    np.testing.assert_allclose(np.exp(continuous_from_discrete(lam, "zoh")), lam, atol=1e-14)
    a = continuous_from_discrete(lam, "bilinear")
    np.testing.assert_allclose((1 + a / 2) / (1 - a / 2), lam, atol=1e-14)
    assert np.all(a.real < 0)


def test_s4_with_discrete_eigenvalues_is_diagonal_with_those_eigenvalues():
    lam = _lam()
    layer = _build(keras_ssm.S4(n=N, init=DiscreteEigenvalues(lam), seed=0))
    expected = np.sort_complex(np.concatenate([lam, lam.conj()]))
    np.testing.assert_allclose(np.sort_complex(layer.discrete_eigenvalues()[0]), expected, atol=1e-6)


def test_per_channel_continuous_array_and_channel_mismatch():
    a = -np.linspace(0.1, 1.0, H * N // 2).reshape(H, N // 2) + 1j * np.arange(H * N // 2).reshape(H, N // 2)
    layer = _build(keras_ssm.S4D(n=N, init=a, seed=0))
    np.testing.assert_allclose(layer.continuous_eigenvalues(), a, rtol=1e-6)
    with pytest.raises(ValueError, match="H = 5 features"):
        _build(keras_ssm.S4D(n=N, init=a, seed=0), features=5)


def test_named_discrete_families():
    np.testing.assert_allclose(linear_magnitudes(8, rho=0.8), [0.2, 0.4, 0.6, 0.8])
    rings = unity_rings(16, rho=0.9, p=2)
    assert rings.shape == (8,)
    np.testing.assert_allclose(np.sort(np.unique(np.round(np.abs(rings), 12))), [0.45, 0.9])
    assert np.all(rings.imag >= 0)
    with pytest.raises(ValueError, match="`p` must divide"):
        unity_rings(16, p=3)
    layer = _build(keras_ssm.S4D(n=N, init="linear_magnitudes:rho=0.95", seed=0))
    np.testing.assert_allclose(layer.discrete_eigenvalues()[0], linear_magnitudes(N, 0.95), atol=1e-6)
    # Real eigenvalues are one real state dimension each: rank N/2, not N.
    assert memory_function(layer.discrete_eigenvalues()[0], horizon=64).rank == N // 2


@pytest.mark.parametrize(
    "init, message",
    [
        (DiscreteEigenvalues([0.5, 1.0, 0.2, 0.1]), r"\|lambda\| < 1"),
        (DiscreteEigenvalues([0.5, 0.9999999, 0.2, 0.1]), "exp"),
        (np.array([-1.0, 0.5 + 1j, -1.0, -2.0]), "Re a <="),
        (np.array([-1.0, -1.0]), "N/2 = 4"),
        (np.array([-1 + 1j, -1 - 1j, -1.0, -2.0]), "one of each conjugate"),
        (np.array([-1.0, np.nan, -1.0, -2.0]), "finite"),
        ("nope", "must be one of"),
        ("inv:rho=0.5", "takes no parameters"),
        ("unity_rings:rho=1.5", "rho"),
        ("unity_rings:q=2", "parameters of"),
    ],
)
def test_bad_eigenvalue_sets_are_clear_errors(init, message):
    with pytest.raises(ValueError, match=message):
        keras_ssm.S4D(n=N, init=init)


def test_npy_file_init(tmp_path):
    a = np.array([-0.5 + 1j, -0.5 + 2j, -1.0, -0.2 + 3j])
    path = tmp_path / "eig.npy"
    np.save(path, a)
    layer = _build(keras_ssm.S4D(n=N, init=str(path), seed=0))
    np.testing.assert_allclose(layer.continuous_eigenvalues()[0], a, rtol=1e-6)
    assert layer.get_config()["init"]["kind"] == "continuous"  # the values are saved, not the path
    with pytest.raises(ValueError, match="could not be read"):
        check_eigenvalue_init(str(tmp_path / "missing.npy"), N)


@pytest.mark.parametrize("init", [np.array([-0.5 + 1j, -0.5 + 2j, -1.0, -0.2 + 3j]), DiscreteEigenvalues(_lam())])
def test_array_inits_round_trip_through_keras_files(tmp_path, init):
    layer = keras_ssm.S4D(n=N, init=init, frozen_modes=[True, False, True, False], seed=0)
    model = keras.Sequential([keras.Input((L, H)), layer])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, L, H)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    restored = loaded.layers[-1].init
    values = restored.values if isinstance(restored, DiscreteEigenvalues) else restored
    given = init.values if isinstance(init, DiscreteEigenvalues) else init
    assert type(restored) is type(init) and np.array_equal(values, given)  # bit-identical
    np.testing.assert_array_equal(loaded.layers[-1].frozen_mask, layer.frozen_mask)


# ------------------------------------------------------------------------------------------------
# Partial freezing

def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize("model_cls", [keras_ssm.S4D, keras_ssm.S4])
def test_frozen_modes_split_keeps_outputs_and_counts_exactly(model_cls):
    init = "inv" if model_cls is keras_ssm.S4D else "lin"
    plain = _build(model_cls(n=N, init=init, seed=3))
    half = _build(model_cls(n=N, init=init, seed=3, frozen_modes=0.5))
    x = np.random.default_rng(1).normal(size=(2, L, H)).astype("float32")
    np.testing.assert_array_equal(np.asarray(half(x)), np.asarray(plain(x)))  # same initial values, same order
    assert half.frozen_mask.sum(axis=1).tolist() == [N // 4] * H
    assert _count(half.non_trainable_weights) == 2 * H * N // 4
    assert _count(half.trainable_weights) == _count(plain.trainable_weights) - 2 * H * N // 4
    assert half.count_params() == plain.count_params()


def test_frozen_modes_stay_bit_identical_while_the_rest_train():
    inputs = keras.Input((L, H))
    layer = keras_ssm.S4D(n=N, seed=0, frozen_modes=0.5, dt_min=0.1, dt_max=1.0)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(layer(inputs))))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = layer.continuous_eigenvalues()
    frozen_before = [v.numpy().copy() for v in (layer.log_a_real_frozen, layer.a_imag_frozen)]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, L, H)).astype("float32")
    model.fit(x, x[:, -3, :1] * 3.0, epochs=3, batch_size=8, verbose=0)
    after = layer.continuous_eigenvalues()
    mask = layer.frozen_mask
    assert np.array_equal(after[mask], before[mask])
    assert np.all(after[~mask] != before[~mask])
    for var, old in zip((layer.log_a_real_frozen, layer.a_imag_frozen), frozen_before):
        assert np.array_equal(var.numpy(), old)


def test_frozen_mask_per_channel_and_validation():
    mask = np.zeros((H, N // 2), bool)
    mask[0, 1] = mask[2, :] = True
    layer = _build(keras_ssm.S4D(n=N, frozen_modes=mask, seed=0))
    np.testing.assert_array_equal(layer.frozen_mask, mask)
    assert layer.log_a_real_frozen.shape == (int(mask.sum()),)
    assert _build(keras_ssm.S4D(n=N, frozen_modes=0.0, seed=0)).log_a_real.shape == (H, N // 2)
    assert _build(keras_ssm.S4D(n=N, frozen_modes=1.0, seed=0)).log_a_real.shape == (0,)
    for bad, message in ((1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"), (np.zeros(3, bool), "shape"),
                         (np.zeros(N // 2), "boolean mask"), ("half", "boolean mask")):
        with pytest.raises(ValueError, match=message):
            keras_ssm.S4D(n=N, frozen_modes=bad)
    with pytest.raises(ValueError, match="trainable_eigenvalues=False"):
        keras_ssm.S4D(n=N, frozen_modes=0.5, trainable_eigenvalues=False)
    with pytest.raises(ValueError, match="rows"):
        _build(keras_ssm.S4D(n=N, frozen_modes=np.zeros((2, N // 2), bool)))
