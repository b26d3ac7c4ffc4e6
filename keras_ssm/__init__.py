"""keras_ssm: structured state space models (S4, S4D) for Keras 3.

Submodules load on first use (PEP 562), so numpy-only tools such as `python -m keras_ssm.memory`
start without importing keras or a backend.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BaseSSM": "keras_ssm.layers",
    "S4D": "keras_ssm.layers",
    "S4": "keras_ssm.layers",
    "SSMBlock": "keras_ssm.layers",
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
    "find_ssm_layers": "keras_ssm.memory",
    "SSMAdamW": "keras_ssm.optimizers",
    "device_info": "keras_ssm.devices",
    "report_devices": "keras_ssm.devices",
}
_SUBMODULES = ("devices", "layers", "memory", "ops", "optimizers")

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
