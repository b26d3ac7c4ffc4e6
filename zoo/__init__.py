"""The LRA model zoo: configs, data, models and training built on keras_ssm.

Importing it before Keras (as every zoo and tuning script does) keeps TensorFlow's C++ start-up lines
(absl's "All log messages before absl::InitializeLog() ...", oneDNN's "custom operations are on", the CPU
feature notice, the CUDA plugin re-registrations) off the terminal on every backend and CPU kind, without
changing what TensorFlow computes: TensorFlow is imported by Keras itself on the tensorflow backend and by
the tf.data input pipeline on the others. ``TF_CPP_MIN_LOG_LEVEL=2`` silences its later info and warning
lines but not those start-up lines (absl prints them before it reads any setting), so the first
``import tensorflow`` runs with the process's stderr captured, and every captured line that is not one of
those is written back. Errors are still printed; set ``TF_CPP_MIN_LOG_LEVEL=0`` and
``KERAS_SSM_TF_STARTUP_LINES=1`` to see everything.
"""

import importlib
import os as _os

from zoo.quiet import quiet_tensorflow_startup as _quiet_tensorflow_startup

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_quiet_tensorflow_startup()

from keras_ssm import devices as _devices  # noqa: E402  (imports neither keras nor TensorFlow)

#: The model-zoo API, loaded on first use (so that ``import zoo``, run by every ``zoo.*`` import, costs no
#: Keras import (6 s measured) and the line above takes effect before Keras loads):
#: ``zoo.build_model("listops", preset="full")`` returns the preset's uncompiled model, ``zoo.load_run(run_dir)``
#: a run's best model and config, ``zoo.evaluate_run(run_dir)`` its test accuracy and loss.
_LAZY = {"build_model": "zoo.models", "get_config": "zoo.configs", "load_run": "zoo.runs",
         "evaluate_run": "zoo.runs", "train": "zoo.runs"}
__all__ = sorted(_LAZY)

#: How a checkout of this repository installs the GPU stack, and checks it: the zoo's words in
#: keras_ssm.devices' idle-GPU warning.
GPU_INSTALL = 'pip install -e ".[all-gpu]"   (or pip install "keras-ssm[all-gpu]")'
GPU_CHECK = "Check with: python benchmarks/gpu_check.py"


def report_devices(print_fn=print) -> dict:
    """`keras_ssm.devices.report_devices` whose idle-GPU warning names the checkout's install and check commands,
    then a line saying where the backend came from and how to choose another (:func:`backend_choice`)."""
    info = _devices.report_devices(print_fn=print_fn, install=GPU_INSTALL, advice=GPU_CHECK)
    if print_fn is not None:
        print_fn(backend_choice(info["backend"]))
    return info


def backend_choice(backend: str) -> str:
    """'backend: jax (from KERAS_BACKEND); ...': which setting chose Keras' backend, and how to pick another."""
    others = " or ".join(f"KERAS_BACKEND={b}" for b in ("jax", "tensorflow", "torch") if b != backend)
    keras_json = _os.path.join(_os.environ.get("KERAS_HOME", _os.path.expanduser("~/.keras")), "keras.json")
    if _os.environ.get("KERAS_BACKEND"):
        source = "from KERAS_BACKEND"
    elif backend != "tensorflow" and _os.path.isfile(keras_json):  # Keras writes the file itself, with tensorflow
        source = f"from {keras_json}"
    else:
        source = "Keras' default, as KERAS_BACKEND is not set"
    return f"backend: {backend} ({source}); to choose another, start the command with {others}"


def check_data_parallel(info: dict) -> str:
    """`keras_ssm.devices.check_data_parallel` in the words of the zoo's ``--distribute data`` option."""
    return _devices.check_data_parallel(info, name="--distribute data", alternative="train without --distribute")


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
