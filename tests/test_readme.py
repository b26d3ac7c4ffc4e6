"""Every Python code block of README.md runs, in order, in one namespace (so the README cannot drift).

The fixture fills the README's placeholders (an S4 layer ``s4_layer``, a target ``profile``, an
``eigenvalues.npy`` file) at small sizes, in a temporary working directory with its own data cache.
"""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture
def placeholders(tmp_path, monkeypatch):
    import keras_ssm

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_SSM_DATA", str(tmp_path / "data"))
    np.save(tmp_path / "eigenvalues.npy", -0.5 + 1j * np.pi * np.arange(32))
    s4_layer = keras_ssm.S4(n=16)
    s4_layer.build((None, 32, 4))
    return {
        "s4_layer": s4_layer,
        "profile": np.exp(-np.arange(256) / 64.0),  # a target MF profile over lags 0..255
    }


def test_readme_has_python_blocks():
    assert len(python_blocks(README.read_text())) >= 5


@pytest.mark.slow
def test_every_readme_python_block_runs(placeholders):
    namespace = dict(placeholders)
    for index, block in enumerate(python_blocks(README.read_text()), start=1):
        try:
            exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"README.md python block {index} failed:\n{block}") from error
