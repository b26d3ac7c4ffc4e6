"""TensorFlow's C++ start-up lines stay off the terminal of every zoo command, on every backend.

``TF_ENABLE_ONEDNN_OPTS=1`` makes TensorFlow print them on this CPU too (its oneDNN notice is on by default
only on some CPUs); the control test checks that they really are printed without the zoo.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.quiet import STARTUP_LINES, filtered_stderr

ROOT = Path(__file__).resolve().parents[2]
NOISY = {"TF_ENABLE_ONEDNN_OPTS": "1"}
USE_TENSORFLOW = "import tensorflow as tf; print(float(tf.reduce_sum(tf.constant([1.0, 2.0]))))"


def _run(code, backend="jax", **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    environment.update(KERAS_BACKEND=backend, **NOISY, **env)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return result


def test_tensorflow_prints_its_startup_lines_here_when_the_zoo_lets_it():
    stderr = _run(f"import zoo; {USE_TENSORFLOW}", KERAS_SSM_TF_STARTUP_LINES="1").stderr
    assert "All log messages before absl::InitializeLog() is called" in stderr
    assert "oneDNN custom operations are on" in stderr


@pytest.mark.parametrize("backend", ["jax", pytest.param("tensorflow", marks=pytest.mark.slow),
                                     pytest.param("torch", marks=pytest.mark.slow)])
def test_no_startup_line_after_import_zoo(backend):
    result = _run(f"import zoo, keras, zoo.runs; {USE_TENSORFLOW}; import os; "
                  f"print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))", backend)
    assert result.stdout.split() == ["3.0", "1"]  # TensorFlow computes, with oneDNN as the user set it
    assert not STARTUP_LINES.search(result.stderr), result.stderr
    assert "absl" not in result.stderr and "I0000" not in result.stderr, result.stderr


def test_other_lines_written_during_the_import_are_kept(capfd):
    with filtered_stderr():
        os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"E0000 something TensorFlow really wants to say\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"a Python traceback line\n")
    assert capfd.readouterr().err == "E0000 something TensorFlow really wants to say\na Python traceback line\n"
