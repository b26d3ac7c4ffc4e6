"""Helpers shared by the layer tests (tests/ is on sys.path when pytest imports them)."""

import numpy as np

import keras
from keras import ops


def to_numpy(x):
    return ops.convert_to_numpy(x)


def inputs(batch=2, length=40, features=6, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, length, features)).astype("float32")


def regression_model(layer, length=32, features=4):
    """layer -> Dense(1), compiled with Adam(1e-2) on MSE, seeded."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((length, features))
    out = layer(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(out))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def fit_a_few_steps(model, length=32, features=4):
    """Two epochs of two batches on a running-sum target (needs memory, so every SSM weight gets gradient)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, length, features)).astype("float32")
    y = np.cumsum(x, axis=1)[..., :1].astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)


def step_outputs(layer, x):
    """Run layer.step over x (batch, length, H) from the initial state: outputs (batch, length, H)."""
    state = layer.get_initial_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        outputs.append(to_numpy(y_t))
    return np.stack(outputs, axis=1)
