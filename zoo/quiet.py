"""TensorFlow's start-up lines kept off the terminal: its first import runs with stderr (fd 2) captured.

Those lines come from C++ (absl logging, before absl reads ``TF_CPP_MIN_LOG_LEVEL``) while TensorFlow's
shared libraries load, so neither the environment nor Python's ``warnings`` reach them; only the file
descriptor does. Captured lines that are not start-up notices are written back to stderr after the import.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

#: Show TensorFlow's start-up lines after all (any value but "", "0").
SHOW_ENV = "KERAS_SSM_TF_STARTUP_LINES"

#: The start-up notices of TensorFlow 2.x builds (CPU: absl, oneDNN, CPU features; GPU: the CUDA plugins that
#: jax and TensorFlow both register, TensorRT). They carry no error of the user's run.
STARTUP_LINES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|cpu_feature_guard\.cc"
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin"
    r"|computation_placer\.cc.*computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
)


@contextlib.contextmanager
def filtered_stderr(drop=STARTUP_LINES):
    """Capture fd 2 inside the block; afterwards write back every captured line that ``drop`` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not drop.search(line)]
            if kept:
                os.write(2, "".join(kept).encode())


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with a loader that runs its module code inside :func:`filtered_stderr`, and
    uninstalls itself once that code runs (a ``find_spec`` that only asks whether TensorFlow is installed
    leaves it in place)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            find = None if finder is self else getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                uninstall()
                with filtered_stderr():
                    exec_module(module)

            spec.loader.exec_module = quiet_exec_module
        return spec


_FINDER = _QuietTensorFlowFinder()


def quiet_tensorflow_startup() -> None:
    """Make the process's first ``import tensorflow`` (by whoever imports it) drop TensorFlow's start-up lines.

    Nothing happens when TensorFlow is already imported or ``KERAS_SSM_TF_STARTUP_LINES`` is set."""
    if "tensorflow" in sys.modules or os.environ.get(SHOW_ENV, "") not in ("", "0") or _FINDER in sys.meta_path:
        return
    sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo :func:`quiet_tensorflow_startup` (before TensorFlow is imported)."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
