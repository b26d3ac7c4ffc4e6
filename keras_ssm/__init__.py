"""keras_ssm: structured state space models (S4, S4D) for Keras 3.

Submodules load on first use (PEP 562), so numpy-only tools such as `python -m keras_ssm.memory`
start without importing keras or a backend (6 s with jax, measured on our 2-core CPU). `_EXPORTS` below is
the whole import graph of the top-level names: name -> the module that defines it.

`import keras_ssm` still registers every serializable class (the layers, `SSMBlock`, the pooling
layers of the zoo models, `SSMAdamW`) with `keras.saving`, so a `.keras` file loads in a process
that only imported keras_ssm: at once when keras is already imported, otherwise right after keras'
own import finishes (a one-shot import hook on the top-level `keras` package).
"""

import importlib
import sys

__version__ = "0.1.0"

_EXPORTS = {
    "BaseSSM": "keras_ssm.layers",
    "S4D": "keras_ssm.layers",
    "S4": "keras_ssm.layers",
    "SSMBlock": "keras_ssm.layers",
    "MaskedMeanPooling": "keras_ssm.layers",
    "LastStep": "keras_ssm.layers",
    "MemoryFunction": "keras_ssm.memory",
    "memory_function": "keras_ssm.memory",
    "memory_capacity": "keras_ssm.memory",
    "memory_length": "keras_ssm.memory",
    "memory_accuracy": "keras_ssm.memory",
    "layer_memory_function": "keras_ssm.memory",
    "model_memory_functions": "keras_ssm.memory",
    "empirical_memory_function": "keras_ssm.memory",
    "plot_memory_functions": "keras_ssm.memory",
    "plot_memory_comparison": "keras_ssm.memory",
    "find_ssm_layers": "keras_ssm.discovery",
    "design_eigenvalues": "keras_ssm.memory",
    "EigenvalueDesign": "keras_ssm.memory",
    "SSMAdamW": "keras_ssm.optimizers",
    "MemoryTracker": "keras_ssm.callbacks",
    "gradient_by_lag": "keras_ssm.gradients",
    "LagGradient": "keras_ssm.memory",
    "load_memory_tracking": "keras_ssm.memory",
    "plot_memory_tracking": "keras_ssm.memory",
    "DiscreteEigenvalues": "keras_ssm.ops.init",
    "device_info": "keras_ssm.devices",
    "report_devices": "keras_ssm.devices",
}
_SUBMODULES = ("callbacks", "devices", "gradients", "layers", "memory", "ops", "optimizers")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_ssm.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_ssm' has no attribute {name!r}")


def __dir__():
    return __all__


#: Modules whose import registers the serializable classes (`keras.saving.register_keras_serializable`).
_SERIALIZABLE_MODULES = ("keras_ssm.layers", "keras_ssm.optimizers")


def register_serializables():
    """Import the modules that register keras_ssm's classes with `keras.saving` (imports keras)."""
    for module in _SERIALIZABLE_MODULES:
        importlib.import_module(module)


class _RegisterAfterKerasImport:
    """A `sys.meta_path` finder that finds nothing itself: when `keras` is first imported, it wraps
    keras' loader so that `register_serializables` runs as soon as keras' own `__init__` has finished.
    (Not an `importlib.abc.MetaPathFinder` subclass: importing that module would double the import time.)"""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _remove_hook()
        import importlib.util

        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                register_serializables()
            except Exception as err:  # never break `import keras`; loading a .keras file will name the class
                import warnings

                warnings.warn(f"keras_ssm could not register its layers with keras.saving: {err!r}", stacklevel=2)

        loader.exec_module = exec_then_register
        return spec


def _remove_hook():
    for finder in list(sys.meta_path):
        if isinstance(finder, _RegisterAfterKerasImport):
            sys.meta_path.remove(finder)


if "keras" in sys.modules:
    register_serializables()
elif not any(type(finder).__name__ == "_RegisterAfterKerasImport" for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKerasImport())
