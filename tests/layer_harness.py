"""One test harness for every sequence layer class of keras_ssm, in the spirit of keras-hub's
``TestCase.run_layer_test``: given a layer class and its init kwargs, each check builds fresh layers
from them and asserts one generic property.

    config        get_config / from_config (and serialize / JSON / deserialize) give the same config,
                  every init kwarg is in it, and the clone with the weights copied gives the same outputs
    save_load     a `.keras` round trip of a model holding the layer: same class, config (sublayers
                  too), weights (values and trainable flags) and outputs
    masking       outputs at real positions do not depend on the padding (length, or NaN / inf there),
                  in inference and, without dropout, in training; weights stay finite; the mask is
                  propagated (compute_mask and through a functional model)
    dtype_policy  under mixed_bfloat16 (global policy, and the `dtype` argument) the layer runs, keeps
                  float32 variables, returns the policy's compute dtype, finite and close to float32
    causality     causal layers: outputs before t do not depend on inputs from t on; bidirectional
                  layers: they do
    step          causal layers with the step API (`get_initial_state`, `step`): stepping from the
                  initial state reproduces the full (convolution) call, from randomly moved weights
    training      two training steps: every trainable weight moves and stays finite (so its gradient
                  is finite and not zero), every non-trainable SSM variable stays bit-identical, the
                  discrete eigenvalues too when none of their variables trains
    errors        length 0, a changed feature count and rank 2 inputs are clear ValueErrors; so is the
                  step API of a bidirectional layer
    unknown_features  building for an unknown feature dimension is a clear ValueError

`run_layer_test(cls, kwargs)` runs every check that applies; `CHECKS` maps names to the checks and
`applicable_checks` says which apply, so a test module can report each (layer, check) on its own.
Init kwargs are passed as given, so a nested layer is given as a config dict (`nested_layer`):
each check builds fresh layers.
"""

import json
import os
import tempfile

import numpy as np
import pytest

import keras
from keras import ops

from keras_ssm.discovery import find_ssm_layers
from layer_helpers import regression_model, step_outputs, to_numpy

#: The one input size of every check (one size keeps jax's compiled-op cache warm across layers).
BATCH, LENGTH, FEATURES = 3, 16, 4
#: Real lengths of the BATCH sequences in the masking check, and the longer padded length.
REAL_LENGTHS = np.array([LENGTH, 11, 5])
PADDED_LENGTH = 24
#: The causality check changes the inputs from this position on.
CUT = 10


def nested_layer(layer_cls, **config):
    """A layer argument as a config dict (deserialized by the receiving layer): fresh for every build."""
    return {"class_name": keras.saving.get_registered_name(layer_cls), "config": config}


def make_inputs(batch=BATCH, length=LENGTH, features=FEATURES, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, length, features)).astype("float32")


def ssm_layers(layer):
    """The keras_ssm SSM layers in `layer` (itself, or those it wraps)."""
    return list(find_ssm_layers(layer).values())


def is_bidirectional(layer):
    return bool(getattr(layer, "bidirectional", False)) or any(s.bidirectional for s in ssm_layers(layer))


def has_step_api(layer):
    return callable(getattr(layer, "step", None)) and callable(getattr(layer, "get_initial_state", None))


def has_dropout(layer):
    """Whether a training-mode call is random (a dropout layer with a rate > 0 somewhere inside)."""
    return any(getattr(sub, "rate", 0) > 0 for sub in layer._flatten_layers(include_self=True))


def has_nested_layer(init_kwargs):
    return any(isinstance(value, (dict, keras.layers.Layer)) for value in init_kwargs.values())


def _sublayer_configs(layer):
    """(class name, config without the auto-generated name) of every sublayer, in tracking order."""
    configs = []
    for sub in layer._flatten_layers(include_self=False):
        config = dict(sub.get_config())
        config.pop("name", None)
        configs.append((type(sub).__name__, config))
    return configs


def _plain(config):
    """A config as JSON would store it (tuples become lists), to compare a loaded layer's with the original's."""
    return json.loads(json.dumps(config))


def _assert_same_weights(got_layer, expected_layer):
    got, expected = got_layer.weights, expected_layer.weights
    assert [v.name for v in got] == [v.name for v in expected]
    for a, b in zip(got, expected):
        assert a.trainable == b.trainable, f"{a.path}: trainable {a.trainable}, expected {b.trainable}"
        assert tuple(a.shape) == tuple(b.shape), a.path
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)


# The checks ------------------------------------------------------------------------------------

def check_config(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    json.dumps(config)  # plain JSON types only
    for key, value in init_kwargs.items():
        if not isinstance(value, dict):
            assert key in config and config[key] == value, f"init kwarg {key}={value!r} not in the config"
    clone = layer_cls.from_config(config)
    assert type(clone) is layer_cls
    assert clone.get_config() == config
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls and revived.get_config() == config

    x = make_inputs()
    expected = to_numpy(layer(x))
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()  # built (a nested layer's config gains its build_config)
    _assert_same_weights(clone, layer)
    np.testing.assert_array_equal(to_numpy(clone(x)), expected)


def check_save_load(layer_cls, init_kwargs):
    keras.utils.set_random_seed(0)
    layer = layer_cls(**init_kwargs)
    inp = keras.Input((LENGTH, FEATURES))
    model = keras.Model(inp, layer(inp))
    x = make_inputs()
    expected = to_numpy(model(x))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    got_layer = loaded.layers[1]
    assert type(got_layer) is layer_cls
    assert _plain(got_layer.get_config()) == _plain(layer.get_config())
    assert _plain(_sublayer_configs(got_layer)) == _plain(_sublayer_configs(layer))
    _assert_same_weights(got_layer, layer)
    np.testing.assert_array_equal(to_numpy(loaded(x)), expected)


def check_masking(layer_cls, init_kwargs):
    keras.utils.set_random_seed(0)
    layer = layer_cls(**init_kwargs)
    x = make_inputs()

    def run(padded_length, fill, training):
        padded = np.zeros((BATCH, padded_length, FEATURES), "float32")
        padded[:, :LENGTH] = x
        mask = np.arange(padded_length)[None] < REAL_LENGTHS[:, None]
        padded[~mask] = fill
        return to_numpy(layer(padded, mask=mask, training=training))

    # Inference first (BatchNormalization's moving statistics at their initial values), then training
    # (random with dropout: skipped there): a training call normalises with the real positions' statistics.
    paddings = {False: ((PADDED_LENGTH, 0.0), (LENGTH, np.nan), (PADDED_LENGTH, np.inf)),
                True: ((PADDED_LENGTH, np.nan),)}
    for training in (False,) if has_dropout(layer) else (False, True):
        expected = run(LENGTH, 0.0, training)
        for padded_length, fill in paddings[training]:
            got = run(padded_length, fill, training)
            for i, n in enumerate(REAL_LENGTHS):
                where = f"training={training}, padded to {padded_length} with {fill}, sequence {i}"
                assert np.isfinite(got[i, :n]).all(), where
                # a longer padding changes the FFT size, so the rounding: a little more room there
                atol = 1e-5 if padded_length == LENGTH else 2e-5
                np.testing.assert_allclose(got[i, :n], expected[i, :n], rtol=1e-5, atol=atol, err_msg=where)
    for v in layer.weights:
        assert np.isfinite(to_numpy(v)).all(), f"{v.path} not finite after calls with NaN/inf padding"

    mask = np.arange(LENGTH)[None] < REAL_LENGTHS[:, None]
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(x, mask)), mask)
    tokens = keras.Input((LENGTH,), dtype="int32")
    embedded = keras.layers.Embedding(5, FEATURES, mask_zero=True)(tokens)
    out = layer_cls(**init_kwargs)(embedded)
    assert getattr(out, "_keras_mask", None) is not None, "the mask is not propagated"


def check_dtype_policy(layer_cls, init_kwargs, policy="mixed_bfloat16"):
    x = make_inputs()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = layer_cls(**init_kwargs)  # nested layers built from configs follow the global policy too
        y = layer(x)
    finally:
        keras.config.set_dtype_policy(previous)
    layers = [(layer, y)]
    if not has_nested_layer(init_kwargs):  # the `dtype` argument (a nested layer keeps its own policy)
        by_argument = layer_cls(**init_kwargs, dtype=policy)
        assert by_argument.dtype_policy.name == policy
        layers.append((by_argument, by_argument(x)))
    policy = keras.dtype_policies.get(policy)
    reference = layer_cls(**init_kwargs)  # float32, given the same weights
    reference.build(x.shape)
    for layer, y in layers:
        for sub in layer._flatten_layers(include_self=True):
            assert sub.dtype_policy.name == policy.name, f"{sub.name} runs under {sub.dtype_policy.name}"
        for v in layer.weights:
            assert keras.backend.standardize_dtype(v.dtype) == policy.variable_dtype, v.path
        assert keras.backend.standardize_dtype(y.dtype) == policy.compute_dtype
        y = to_numpy(ops.cast(y, "float32"))
        assert np.isfinite(y).all()
        reference.set_weights(layer.get_weights())
        expected = to_numpy(reference(x))
        # bfloat16 keeps 8 significant bits: a few of its roundings, relative to the output's scale
        assert np.abs(y - expected).max() <= 0.05 * np.abs(expected).max(), np.abs(y - expected).max()


def check_causality(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    x = make_inputs()
    changed = x.copy()
    changed[:, CUT:] += make_inputs(seed=1)[:, CUT:]  # not a constant shift: a layer norm would remove it
    y, y2 = to_numpy(layer(x)), to_numpy(layer(changed))
    if is_bidirectional(layer):
        assert np.abs(y[:, :CUT] - y2[:, :CUT]).max() > 1e-2, "a bidirectional layer does not see the future"
        # the position just before the change sees it (through the anticausal kernel only)
        assert np.abs(y[:, CUT - 1] - y2[:, CUT - 1]).max() > 1e-3
    else:
        np.testing.assert_allclose(y[:, :CUT], y2[:, :CUT], atol=1e-5, err_msg="a causal layer sees the future")
        assert np.abs(y[:, CUT:] - y2[:, CUT:]).max() > 1e-2


def check_step(layer_cls, init_kwargs, scale=0.3):
    layer = layer_cls(**init_kwargs)
    x = make_inputs()
    layer.build(x.shape)
    rng = np.random.default_rng(0)  # a 'trained' layer: every weight moved away from its initial value
    for v in layer.weights:
        v.assign(to_numpy(v) + scale * rng.normal(size=v.shape).astype("float32"))
    expected = to_numpy(layer(x))
    state = layer.get_initial_state(BATCH)
    assert tuple(state.shape) == tuple(layer.state_shape(BATCH))
    assert keras.backend.standardize_dtype(state.dtype) == "float32"
    assert not to_numpy(state).any()
    np.testing.assert_allclose(step_outputs(layer, x), expected, atol=2e-5, rtol=1e-4)


def check_training(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    model = regression_model(layer, length=LENGTH, features=FEATURES)
    if keras.backend.backend() == "tensorflow":
        # Eager steps: tracing a tf.function train step costs ~2 s a layer on a CPU, 4x the eager fit.
        # Training in a tf.function stays with test_s4d.py's gradients for every init (S4D, graph-mode fit).
        model.compile(optimizer=model.optimizer, loss=model.loss, run_eagerly=True)
    ssms = ssm_layers(layer)
    ssm_ids = {id(v) for s in ssms for v in s.weights}
    for s in ssms:
        for v in s.eigenvalue_variables:
            if v is s.log_dt:
                expected = s.trainable_dt
            else:
                expected = s.trainable_eigenvalues and not v.name.endswith("_frozen")
            assert v.trainable == expected, f"{v.path}: trainable {v.trainable}"
    before = {v.path: to_numpy(v).copy() for v in layer.weights}
    eigenvalues = [s.discrete_eigenvalues().copy() for s in ssms]
    rng = np.random.default_rng(0)
    for _ in range(2):  # two Adam steps on a running-sum target (needs memory: every SSM weight gets gradient)
        x = rng.normal(size=(8, LENGTH, FEATURES)).astype("float32")
        model.train_on_batch(x, np.cumsum(x, axis=1)[..., :1])
    for v in layer.weights:
        value = to_numpy(v)
        assert np.isfinite(value).all(), f"{v.path} not finite after fit"
        if v.trainable:
            assert np.abs(value - before[v.path]).max() > 1e-6, f"{v.path} did not train (no gradient?)"
        elif id(v) in ssm_ids:
            assert np.array_equal(value, before[v.path]), f"frozen {v.path} changed in fit"
    for s, lam0 in zip(ssms, eigenvalues):
        lam1 = s.discrete_eigenvalues()
        if not any(v.trainable for v in s.eigenvalue_variables):
            assert np.array_equal(lam1, lam0), f"frozen discrete eigenvalues of {s.name} changed"
        elif all(v.trainable for v in s.eigenvalue_variables):
            assert np.abs(lam1 - lam0).max() > 1e-6


def check_errors(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    layer(make_inputs())
    with pytest.raises(ValueError, match="length >= 1"):
        layer(np.zeros((BATCH, 0, FEATURES), "float32"))
    with pytest.raises(ValueError, match="length >= 1"):
        layer_cls(**init_kwargs)(np.zeros((BATCH, 0, FEATURES), "float32"))
    for features in (1, FEATURES + 2):
        with pytest.raises(ValueError, match="axis -1"):
            layer(np.zeros((BATCH, LENGTH, features), "float32"))
    with pytest.raises(ValueError, match="rank 3"):
        layer_cls(**init_kwargs)(np.zeros((BATCH, LENGTH), "float32"))
    if has_step_api(layer) and is_bidirectional(layer):
        with pytest.raises(ValueError, match="bidirectional"):
            layer.get_initial_state(1)


def check_unknown_features(layer_cls, init_kwargs):
    with pytest.raises(ValueError, match="feature dimension"):
        layer_cls(**init_kwargs).build((None, LENGTH, None))


CHECKS = {
    "config": check_config,
    "save_load": check_save_load,
    "masking": check_masking,
    "dtype_policy": check_dtype_policy,
    "causality": check_causality,
    "step": check_step,
    "training": check_training,
    "errors": check_errors,
    "unknown_features": check_unknown_features,
}


def applicable_checks(layer_cls, init_kwargs):
    """The names of the CHECKS that apply to this layer (step mode: causal layers with the step API)."""
    layer = layer_cls(**init_kwargs)
    names = list(CHECKS)
    if not has_step_api(layer) or is_bidirectional(layer):
        names.remove("step")
    return names


def run_layer_test(layer_cls, init_kwargs, checks=None):
    """Run the named checks (default: every one that applies) on layers built from `init_kwargs`."""
    for name in checks if checks is not None else applicable_checks(layer_cls, init_kwargs):
        CHECKS[name](layer_cls, init_kwargs)
