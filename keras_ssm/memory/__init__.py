"""Memory functions and memory capacity of linear SSMs, S4/S4D layers and Keras models.

MF(k) = 1 - min_w E[(u_{t-k} - w^T x_t)^2] / E[u^2] is the fraction of an i.i.d. input
u_{t-k} that the best linear readout of the state x_t recovers (Guan et al., 2025,
"Memory Determines Learning Direction"); MC = sum_k MF(k) <= rank of the state.

* Closed form (numpy/scipy float64): :func:`memory_function` from eigenvalues or a dense
  state matrix, :func:`layer_memory_function` (per channel), :func:`model_memory_functions`.
* Empirical (any model, nonlinear and multi-layer): :func:`empirical_memory_function`.
* Summaries: :func:`memory_capacity`, :func:`memory_length`, :func:`memory_accuracy`.
* Design: :func:`design_eigenvalues` finds N/2 stable discrete eigenvalues whose closed-form
  MF is as flat as possible up to a horizon (or matches a target profile), with the analytic
  gradient :func:`memory_function_gradient`.
* Plots (matplotlib, imported on first use): :func:`plot_memory_functions`,
  :func:`plot_memory_comparison`.
* Learning direction: :func:`lag_gradient` splits a diagonal layer's loss gradient by input lag (the
  keras-facing ``keras_ssm.gradient_by_lag`` takes a model and a batch); the files of
  ``keras_ssm.MemoryTracker``: :func:`load_memory_tracking`, :func:`plot_memory_tracking`.
* CLI: ``python -m keras_ssm.memory --help``.

Nothing here imports keras.
"""

from keras_ssm.memory.core import (
    DISCRETIZATIONS,
    MEMORY_LENGTH_FRACTION,
    MemoryFunction,
    discretize_eigenvalues,
    memory_accuracy,
    memory_capacity,
    memory_function,
    memory_function_gradient,
    memory_length,
    memory_summary,
)
from keras_ssm.memory.design import EigenvalueDesign, design_eigenvalues
from keras_ssm.memory.empirical import empirical_memory_function, simulate_linear_states
from keras_ssm.memory.gradient import LagGradient, lag_gradient
from keras_ssm.memory.models import (
    find_ssm_layers,
    is_ssm_layer,
    layer_memory_function,
    model_memory_functions,
)
from keras_ssm.memory.plotting import plot_memory_comparison, plot_memory_functions
from keras_ssm.memory.tracking import (
    MemoryTracking,
    load_memory_tracking,
    plot_memory_tracking,
)

__all__ = [
    "DISCRETIZATIONS",
    "MEMORY_LENGTH_FRACTION",
    "EigenvalueDesign",
    "LagGradient",
    "MemoryTracking",
    "MemoryFunction",
    "design_eigenvalues",
    "discretize_eigenvalues",
    "empirical_memory_function",
    "find_ssm_layers",
    "is_ssm_layer",
    "lag_gradient",
    "layer_memory_function",
    "load_memory_tracking",
    "memory_accuracy",
    "memory_capacity",
    "memory_function",
    "memory_function_gradient",
    "memory_length",
    "memory_summary",
    "model_memory_functions",
    "plot_memory_comparison",
    "plot_memory_functions",
    "plot_memory_tracking",
    "simulate_linear_states",
]
