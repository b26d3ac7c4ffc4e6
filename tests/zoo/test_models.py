"""Zoo model builders: every preset builds at its real size, parameter counts, masking, two towers."""

import keras
import numpy as np
import pytest

import keras_ssm
from conftest import tiny_config
from keras_ssm import find_ssm_layers
from keras_ssm.optimizers import ssm_variable_paths
from zoo.configs import PRESETS, TASKS, get_config
from zoo.models import (
    InputSpec,
    LastStep,
    MaskedMeanPooling,
    build_model,
    count_parameters,
    nominal_input_spec,
)


def tiny(task="listops", **overrides):
    values = dict(num_layers=2)
    values.update(overrides)
    return tiny_config(task, **values)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_at_its_real_size(preset):
    for task in TASKS:
        config = get_config(task, preset)
        spec = nominal_input_spec(task, config.data_options)
        model = build_model(config, spec)
        counts = count_parameters(model)
        assert counts["trainable"] == sum(int(np.prod(v.shape)) for v in model.trainable_weights) > 0
        assert counts["frozen"] == 0 and counts["frozen_fraction"] == 0.0
        ssm_layers = list(find_ssm_layers(model).values())
        assert len(ssm_layers) == config.num_layers
        assert all(isinstance(layer, keras_ssm.S4D) and layer.n == config.d_state for layer in ssm_layers)
        assert all(layer.features == config.d_model for layer in ssm_layers)
        assert all(layer.bidirectional == config.bidirectional for layer in ssm_layers)
        assert len(model.inputs) == (2 if task == "retrieval" else 1)
        assert model.inputs[0].shape[1] == spec.seq_len


def s4d_layer_parameters(H, N, channels=2):
    """log_dt, log_a_real, a_imag, C (channels, H, N/2, 2), D, gated output Dense(2H)."""
    return H + 2 * H * (N // 2) + channels * H * (N // 2) * 2 + H + (H * 2 * H + 2 * H)


def test_full_listops_parameter_count_matches_the_architecture():
    config = get_config("listops", "full")
    spec = nominal_input_spec("listops")
    H, N, L = config.d_model, config.d_state, config.num_layers
    expected = spec.vocab_size * H + L * (s4d_layer_parameters(H, N) + 2 * H) + H * 10 + 10
    counts = count_parameters(build_model(config, spec))
    assert counts["trainable"] == expected
    assert counts["statistics"] == L * 2 * H  # BatchNormalization moving mean and variance


def test_fixed_eigenvalues_are_counted_as_frozen():
    config = tiny(trainable_eigenvalues=False)
    counts = count_parameters(build_model(config, nominal_input_spec("listops")))
    H, N = config.d_model, config.d_state
    assert counts["frozen"] == config.num_layers * (H + 2 * H * (N // 2))
    assert counts["frozen_fraction"] == pytest.approx(counts["frozen"] / (counts["frozen"] + counts["trainable"]))


def test_partly_frozen_eigenvalues_are_counted_exactly():
    config = tiny(frozen_modes=0.5)
    learned = count_parameters(build_model(tiny(), nominal_input_spec("listops")))
    model = build_model(config, nominal_input_spec("listops"))
    counts = count_parameters(model)
    H, N = config.d_model, config.d_state
    frozen = config.num_layers * 2 * H * round(0.5 * (N // 2))  # Re a and Im a of the frozen modes
    assert counts["frozen"] == frozen
    assert counts["trainable"] == learned["trainable"] - frozen
    # The frozen parts are eigenvalue variables too (they get the SSM learning rate when they train elsewhere).
    assert all(len(layer.eigenvalue_variables) == 5 for layer in find_ssm_layers(model).values())


def test_ssm_variable_paths_name_each_layers_ssm_variables():
    model = build_model(tiny(), nominal_input_spec("listops"))
    paths = ssm_variable_paths(model)
    expected = [v.path for layer in find_ssm_layers(model).values() for v in layer.ssm_variables]
    assert paths == expected and len(paths) == 6
    assert all(p.startswith("block") for p in paths)


def test_retrieval_is_a_two_tower_model_with_a_shared_encoder():
    config = tiny("retrieval")
    spec = InputSpec(seq_len=24, vocab_size=20, n_features=None, num_classes=2, two_inputs=True)
    model = build_model(config, spec)
    assert len(model.inputs) == 2
    assert len(find_ssm_layers(model).values()) == config.num_layers  # one encoder, used twice
    rng = np.random.default_rng(0)
    x1 = rng.integers(1, 20, size=(3, 24)).astype("int32")
    x2 = rng.integers(1, 20, size=(3, 24)).astype("int32")
    logits = keras.ops.convert_to_numpy(model([x1, x2], training=False))
    assert logits.shape == (3, 2) and np.isfinite(logits).all()
    head = model.get_layer("pair_features")
    assert head.output.shape[-1] == 4 * config.d_model


def test_padding_does_not_change_the_prediction():
    """The mask reaches the SSM layers and the pooling: extra padding leaves the logits unchanged."""
    config = tiny(prenorm=True)  # prenorm also exercises the final norm
    tokens = np.array([[3, 5, 7, 2, 9, 4, 0, 0, 0, 0]], dtype="int32")
    short = build_model(config, InputSpec(10, 16, None, 10))
    long = build_model(config, InputSpec(25, 16, None, 10))
    long.set_weights(short.get_weights())
    padded = np.zeros((1, 25), dtype="int32")
    padded[:, :10] = tokens
    a = keras.ops.convert_to_numpy(short(tokens, training=False))
    b = keras.ops.convert_to_numpy(long(padded, training=False))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_real_valued_inputs_use_a_linear_encoder():
    model = build_model(tiny("image", norm="layer"), InputSpec(32, None, 1, 10))
    assert model.get_layer("input_projection") is not None
    x = np.random.default_rng(1).normal(size=(2, 32, 1)).astype("float32")
    assert keras.ops.convert_to_numpy(model(x)).shape == (2, 10)


def test_s4_model_option():
    model = build_model(tiny(model="s4", rank=1), nominal_input_spec("listops"))
    layers = list(find_ssm_layers(model).values())
    assert layers and all(isinstance(layer, keras_ssm.S4) for layer in layers)


def test_last_step_pooling_reads_the_last_real_position(tmp_path):
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    out = keras.ops.convert_to_numpy(LastStep()(x, mask=mask))
    np.testing.assert_array_equal(out, np.stack([x[0, 2], x[1, 4]]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(LastStep()(x)), x[:, -1])

    config = tiny("delayed_recall", num_layers=1)
    assert config.pooling == "last" and not config.bidirectional
    model = build_model(config, InputSpec(12, 9, None, 8))
    tokens = np.random.default_rng(2).integers(1, 9, size=(2, 12)).astype("int32")
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(tokens)),
                               keras.ops.convert_to_numpy(model(tokens)), rtol=1e-5, atol=1e-6)


def test_an_all_padding_example_gives_finite_logits_and_leaves_the_others_alone():
    """Masked mean pooling divides by max(count, 1) and selects (not multiplies) real positions."""
    model = build_model(tiny(), InputSpec(10, 16, None, 10))
    tokens = np.array([[3, 5, 7, 2, 0, 0, 0, 0, 0, 0], [0] * 10], dtype="int32")
    logits = keras.ops.convert_to_numpy(model(tokens, training=False))
    assert np.isfinite(logits).all()
    alone = keras.ops.convert_to_numpy(model(tokens[:1], training=False))
    np.testing.assert_allclose(logits[:1], alone, rtol=1e-5, atol=1e-6)

    x = np.ones((2, 4, 3), dtype="float32")
    x[0, 2:] = np.nan  # padding may hold anything
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    pooled = keras.ops.convert_to_numpy(MaskedMeanPooling()(x, mask=mask))
    np.testing.assert_array_equal(pooled, [[1, 1, 1], [0, 0, 0]])


def test_models_saved_with_the_zoo_s_former_last_step_name_still_load(tmp_path):
    """LastStep moved from zoo.models ("keras_ssm_zoo>LastStep") into keras_ssm: old best.keras files load."""
    import zipfile

    model = build_model(tiny("delayed_recall", num_layers=1), InputSpec(12, 9, None, 8))
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item.filename)
            if item.filename == "config.json":
                assert b'"keras_ssm>LastStep"' in data
                data = data.replace(b'"keras_ssm>LastStep"', b'"keras_ssm_zoo>LastStep"')
            old.writestr(item, data)
    restored = keras.saving.load_model(tmp_path / "old.keras")
    assert isinstance(restored.get_layer("last_step"), LastStep)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
