"""SSMAdamW as a Keras user calls it: Keras AdamW's arguments in Keras' order, the SSM variables found by itself."""

import keras
import numpy as np
import pytest

import keras_ssm
from keras_ssm.optimizers import SSMAdamW, ssm_variable_paths


def _model(trainable_eigenvalues=True):
    inputs = keras.Input((12, 3))
    x = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, seed=0, trainable_eigenvalues=trainable_eigenvalues), norm="layer")(inputs)
    x = keras_ssm.S4(n=8, seed=1)(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


def _fit(model, optimizer):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 12, 3)).astype("float32"), rng.integers(0, 4, size=(16,))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    return [w.copy() for w in model.get_weights()]


def test_learning_rate_comes_first_as_in_keras_adamw():
    optimizer = SSMAdamW(1e-3)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    optimizer = SSMAdamW(0.01, 0.05, 0.8)  # learning_rate, weight_decay, beta_1: Keras AdamW's order
    assert (float(optimizer.learning_rate), optimizer.weight_decay, optimizer.beta_1) == pytest.approx((0.01, 0.05, 0.8))


def test_the_ssm_variables_are_found_in_the_model_it_optimises():
    model = _model()
    optimizer = SSMAdamW(0.01, weight_decay=0.1, ssm_lr_scale=0.1)
    _fit(model, optimizer)
    ssm = set(ssm_variable_paths(model))
    assert len(ssm) == 3 + 5  # S4D: log_dt, log_a_real, a_imag; S4: those, P and B
    for variable in model.trainable_variables:
        assert optimizer.is_ssm_variable(variable) == (variable.path in ssm), variable.path


def test_found_variables_train_exactly_as_the_named_ones():
    auto = _fit(_model(), SSMAdamW(0.01, weight_decay=0.5, ssm_lr_scale=0.1))
    model = _model()
    named = _fit(model, SSMAdamW(0.01, weight_decay=0.5, ssm_lr_scale=0.1, ssm_variable_paths=ssm_variable_paths(model)))
    plain = _fit(_model(), keras.optimizers.AdamW(0.01, weight_decay=0.5))
    for a, b in zip(auto, named):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(auto, plain))  # the SSM setting did change the update


def test_frozen_eigenvalues_leave_only_trainable_ssm_variables():
    model = _model(trainable_eigenvalues=False)
    optimizer = SSMAdamW(0.01)
    _fit(model, optimizer)
    found = [v.path for v in model.trainable_variables if optimizer.is_ssm_variable(v)]
    assert sorted(found) == sorted(p for p in ssm_variable_paths(model) if not p.startswith(model.layers[1].name))


def test_wrong_arguments_are_named():
    with pytest.raises(ValueError, match="`learning_rate`.*ssm_variable_paths="):
        SSMAdamW(["s4d/log_dt"])
    with pytest.raises(ValueError, match="lr"):
        SSMAdamW(lr=1e-3)
    with pytest.raises(ValueError, match="`ssm_lr_scale`"):
        SSMAdamW(1e-3, ssm_lr_scale=-1.0)
    with pytest.raises(ValueError, match="`ssm_variable_paths`"):
        SSMAdamW(1e-3, ssm_variable_paths="s4d/log_dt")


def test_serializes_with_found_or_named_variables():
    for paths in (None, ("a/b",)):
        optimizer = SSMAdamW(0.01, weight_decay=0.1, ssm_variable_paths=paths, ssm_lr_scale=0.1)
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert isinstance(restored, SSMAdamW)
        assert restored.ssm_variable_paths == paths and restored.ssm_lr_scale == 0.1
