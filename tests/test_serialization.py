"""`import keras_ssm` is all a fresh process needs to load a saved .keras file (layers, SSMBlock,
pooling, a compiled zoo model with its SSMAdamW optimizer), and it still imports no keras by itself.

Every check runs in its own interpreter, so nothing registered by this test process can help."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_python(code, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


SAVE = """
import numpy as np
import keras
import keras_ssm
from zoo.configs import get_config
from zoo.models import InputSpec, build_model
from zoo.core import compile_model

out = {out!r}
keras.utils.set_random_seed(0)
inp = keras.Input((12, 3))
h = keras_ssm.SSMBlock(keras_ssm.S4D(n=4, seed=1, bidirectional=True), norm="batch")(inp)
h = keras_ssm.SSMBlock(keras_ssm.S4(n=4, seed=2), norm="layer", prenorm=False)(h)
h = keras.layers.Concatenate()([keras_ssm.MaskedMeanPooling()(h), keras_ssm.LastStep()(h)])
plain = keras.Model(inp, keras.layers.Dense(2)(h))
plain.save(out + "/plain.keras")
np.savez(out + "/plain_weights.npz", *plain.get_weights())

config = get_config("listops", "quick", num_layers=1, d_model=8, d_state=4)
model = build_model(config, InputSpec(10, 16, None, 10))
compile_model(model, config, steps_per_epoch=2)
model.optimizer.build(model.trainable_variables)   # saved with its state, as best.keras is
model.optimizer.iterations.assign(3)
model.save(out + "/zoo.keras")
np.savez(out + "/zoo_weights.npz", *model.get_weights())
print("SAVED")
"""

LOAD = """
{imports}
import numpy as np
out = {out!r}
plain = keras.saving.load_model(out + "/plain.keras")

def same_weights(model, name):
    with np.load(out + name) as saved:
        expected = [saved[f"arr_{{i}}"] for i in range(len(saved.files))]
    got = model.get_weights()
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


same_weights(plain, "/plain_weights.npz")
assert {{"SSMBlock", "MaskedMeanPooling", "LastStep"}} <= {{type(layer).__name__ for layer in plain.layers}}
model = keras.saving.load_model(out + "/zoo.keras")
assert type(model.optimizer).__name__ == "SSMAdamW", type(model.optimizer)
assert 0 < model.optimizer.ssm_lr_scale < 1
from keras_ssm.discovery import find_ssm_layers
ssm = [v for layer in find_ssm_layers(model).values() for v in layer.ssm_variables]
assert ssm and all(model.optimizer.is_ssm_variable(v) for v in ssm)   # found again in the loaded model
assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 3   # the optimizer state came back
same_weights(model, "/zoo_weights.npz")
import sys
print("LOADED", "zoo" in sys.modules)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved")
    assert "SAVED" in run_python(SAVE.format(out=str(out)))
    return out


KERAS_SSM_FIRST = """
import sys, keras_ssm
print("KERAS", "keras" in sys.modules)   # import keras_ssm alone stays cheap: it imports no keras
import keras
"""

KERAS_FIRST = """
import keras
try:   # guards the test: without keras_ssm these classes really cannot be found
    keras.saving.load_model({out!r} + "/plain.keras")
    print("LOADED WITHOUT keras_ssm")
except TypeError as err:
    assert "keras_ssm" in str(err), err
import keras_ssm
"""


@pytest.mark.parametrize("imports", [KERAS_SSM_FIRST, KERAS_FIRST], ids=["keras_ssm_first", "keras_first"])
def test_a_fresh_process_loads_after_import_keras_ssm(saved, imports):
    output = run_python(LOAD.format(imports=imports.format(out=str(saved)), out=str(saved)))
    assert "LOADED False" in output  # loaded without the zoo ever being imported
    assert "LOADED WITHOUT" not in output
    if "KERAS" in output:
        assert "KERAS False" in output
