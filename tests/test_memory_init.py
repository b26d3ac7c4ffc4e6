"""init="memory": the eigenvalues designed for the flattest memory, as an init of S4D, S4 and the zoo."""

import keras
import numpy as np
import pytest

import keras_ssm
from keras_ssm.memory import design_eigenvalues
from keras_ssm.ops.init import MAX_DISCRETE_MAGNITUDE, _memory_design_cache, memory_designed

N, HORIZON, H = 8, 48, 3


def _designed():
    return design_eigenvalues(N, HORIZON, seed=0, max_magnitude=MAX_DISCRETE_MAGNITUDE).eigenvalues


@pytest.mark.parametrize("layer_class", [keras_ssm.S4D, keras_ssm.S4])
def test_every_channel_gets_the_designed_eigenvalues(layer_class):
    layer = layer_class(n=N, init=f"memory:horizon={HORIZON}", trainable_eigenvalues=False, seed=1)
    layer.build((None, 16, H))
    expected = np.sort_complex(_designed())
    if layer_class is keras_ssm.S4D:
        got = layer.discrete_eigenvalues()  # (H, N/2), one of each pair
    else:  # S4 returns all N eigenvalues of its dense matrix: keep the upper half plane
        got = layer.discrete_eigenvalues()
        got = np.stack([row[row.imag > 0] for row in got])
    assert got.shape == (H, N // 2)
    for row in got:
        np.testing.assert_allclose(np.sort_complex(row), expected, atol=2e-6)


def test_the_design_is_computed_once_per_size_and_horizon():
    first = memory_designed(N, HORIZON)
    hits = _memory_design_cache.cache_info().hits
    second = memory_designed(N, HORIZON)
    assert _memory_design_cache.cache_info().hits == hits + 1
    np.testing.assert_array_equal(first, second)
    second[0] = 0  # callers get a copy: the cached design cannot be changed through it
    np.testing.assert_array_equal(memory_designed(N, HORIZON), first)


def test_saved_layer_loads_with_the_same_eigenvalues(tmp_path):
    inputs = keras.Input((16, H))
    model = keras.Model(inputs, keras_ssm.S4D(n=N, init=f"memory:horizon={HORIZON}", seed=2)(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.layers[-1].discrete_eigenvalues(), model.layers[-1].discrete_eigenvalues())
    x = np.random.default_rng(0).normal(size=(2, 16, H)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize("init, match", [
    ("memory:horizon=0", "horizon"),
    ("memory:horizon=2.5", "horizon"),
    ("memory:rho=0.5", "parameters of 'memory'"),
])
def test_bad_memory_init_is_a_clear_error(init, match):
    with pytest.raises(ValueError, match=match):
        keras_ssm.S4D(n=N, init=init)


def test_zoo_designs_for_the_task_sequence_length():
    from zoo.configs import get_config
    from zoo.models import build_model, nominal_input_spec

    config = get_config("digits", "quick", num_layers=1, d_model=4, d_state=N, init="memory")
    spec = nominal_input_spec("digits", config.data_options)
    model = build_model(config, spec)
    layer = next(iter(keras_ssm.find_ssm_layers(model).values()))
    assert layer.init == f"memory:horizon={spec.seq_len}"
    assert np.all(np.abs(layer.discrete_eigenvalues()) < 1)
