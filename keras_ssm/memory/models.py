"""Memory functions of S4/S4D layers and of every such layer inside a Keras model.

Layers are recognised by the keras_ssm SSM layer interface (duck typing, so this module
never imports keras): ``is_diagonal``, ``discrete_eigenvalues()`` -> (H, N/2) complex and
``discrete_state_space()`` -> (dA (H, N/2, N/2), dB (H, N/2), C). The walk over a model's SSM
layers (:func:`find_ssm_layers`, :func:`is_ssm_layer`) lives in :mod:`keras_ssm.discovery` and is
re-exported here unchanged.
"""

from __future__ import annotations

import numpy as np

from keras_ssm.discovery import find_ssm_layers, is_ssm_layer
from keras_ssm.memory.core import MemoryFunction, memory_function

__all__ = ["is_ssm_layer", "find_ssm_layers", "layer_memory_function", "model_memory_functions"]


def _check_built(layer):
    if getattr(layer, "built", True) is False:
        raise ValueError(
            f"layer {getattr(layer, 'name', layer)!r} is not built: call it on an input (or build the model) first"
        )


def layer_memory_function(layer, horizon: int = 1024, *, infinite_horizon: bool = False) -> MemoryFunction:
    """Per-channel memory function of an S4D or S4 layer, ``values`` of shape (H, horizon).

    MF is a property of the state recurrence x_t = dA x_{t-1} + dB u_t of each channel
    (the best linear readout of the state; the layer's own C, D and output nonlinearity do
    not enter). Diagonal layers (``layer.is_diagonal``) use ``discrete_eigenvalues()``
    (one per conjugate pair; dB cancels); others (S4) use the dense
    ``discrete_state_space()`` (dA, dB): a real (H, N, N) matrix on the real state, or a
    complex (H, N/2, N/2) one on a complex half-state whose real and imaginary parts are
    the N real state dimensions. The dense path is preferred there because eigenvalues of
    the far-from-normal S4 matrices are computed with errors well above round-off.

    Bidirectional layers share one state recurrence between the two directions; the curve
    returned is the causal memory of that shared state (MF over past lags). The backward
    direction runs the same recurrence on the reversed sequence, so its anti-causal memory
    over future lags is the same curve.

    Args:
        layer: a built S4D/S4 layer (anything with the keras_ssm SSM layer interface).
        horizon: number of lags T (finite horizon: state started T steps ago).
        infinite_horizon: use the infinite-horizon Gramian (see :func:`memory_function`).
    """
    if not is_ssm_layer(layer):
        raise ValueError(
            f"layer must be an S4/S4D layer (with is_diagonal, discrete_eigenvalues(), discrete_state_space()), "
            f"got {type(layer).__name__}"
        )
    _check_built(layer)
    if layer.is_diagonal:
        eigenvalues = np.asarray(layer.discrete_eigenvalues())
        return memory_function(eigenvalues, horizon=horizon, infinite_horizon=infinite_horizon)
    state_matrix, input_vector, _ = layer.discrete_state_space()
    return memory_function(
        state_matrix=np.asarray(state_matrix),
        input_vector=np.asarray(input_vector),
        horizon=horizon,
        infinite_horizon=infinite_horizon,
    )


def model_memory_functions(model, horizon: int = 1024, *, infinite_horizon: bool = False) -> dict:
    """{layer path: per-channel MemoryFunction (H, horizon)} for every S4/S4D layer in ``model``.

    See :func:`find_ssm_layers` for the paths and :func:`layer_memory_function` for the
    curves. Compare a model before and after training with
    :func:`keras_ssm.memory.plot_memory_comparison`.

    Raises:
        ValueError: if ``model`` contains no S4/S4D layer, or one is not built.
    """
    layers = find_ssm_layers(model)
    if not layers:
        raise ValueError(f"model {getattr(model, 'name', model)!r} contains no S4/S4D layer")
    return {
        path: layer_memory_function(layer, horizon, infinite_horizon=infinite_horizon)
        for path, layer in layers.items()
    }
