"""Loss gradients of a Keras model on one batch, on every backend, without changing the model or its training.

- :func:`batch_gradients`: the loss of a batch and its gradient with respect to the convolution kernel of
  each diagonal SSM layer (dL/dK, the quantity the gradient by lag splits) and to chosen variables.
- :func:`gradient_by_lag`: per diagonal SSM layer, the loss gradient of its parameters split by input lag
  (``keras_ssm.memory.gradient``), from the kernel gradient of one batch.

The kernel gradient is taken by handing each layer's kernel to the forward pass as an input to
differentiate (the layer's ``convolution_kernel`` answers with it during that pass), and a variable's
gradient through ``keras.StatelessScope``; the backward pass is the backend's own (``jax.grad``,
``tf.GradientTape``, ``torch.autograd.grad``). The model runs with ``training=False``: no dropout, no
batch-norm statistics update, no optimizer step.
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
from keras import ops

from keras_ssm.discovery import find_ssm_layers
from keras_ssm.layers.base import complex_from_pairs
from keras_ssm.memory.gradient import LagGradient, lag_gradient
from keras_ssm.ops.init import MIN_DECAY

__all__ = ["BatchGradients", "batch_gradients", "gradient_by_lag", "resolve_loss", "select_ssm_layers"]


def resolve_loss(model, loss=None):
    """A function (y_true, y_pred) -> scalar: ``loss`` (a Keras loss name, object or function), else the
    model's compiled loss."""
    loss = getattr(model, "loss", None) if loss is None else loss
    if loss is None:
        raise ValueError("No loss to differentiate: compile the model with a single loss or pass `loss=` "
                         "(a Keras loss name such as 'mse', a keras.losses.Loss or a function (y_true, y_pred)).")
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError(f"The model has several losses ({type(loss).__name__}); pass `loss=` with one function "
                         f"(y_true, y_pred) -> scalar.")
    try:
        fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    except ValueError:
        raise ValueError(f"`loss` must be a Keras loss name, a keras.losses.Loss or a function, got {loss!r}.") from None
    if not callable(fn):
        raise ValueError(f"`loss` must be a Keras loss name, a keras.losses.Loss or a function, got {loss!r}.")
    return lambda y_true, y_pred: ops.mean(fn(y_true, y_pred))


def select_ssm_layers(model, layers=None) -> dict:
    """{path: layer} of the SSM layers of ``model`` (``keras_ssm.find_ssm_layers``), all or those named in
    ``layers`` (paths or layer names). Clear errors for a model without SSM layers and for unknown names."""
    found = find_ssm_layers(model)
    if not found:
        raise ValueError(f"{getattr(model, 'name', type(model).__name__)!r} has no SSM layer: looked for layers "
                         f"with the keras_ssm SSM interface (S4D, S4, or layers with is_diagonal, "
                         f"discrete_eigenvalues() and discrete_state_space()).")
    if layers is None:
        return found
    if isinstance(layers, str) or not all(isinstance(name, str) for name in layers) or not layers:
        raise ValueError(f"`layers` must be None or a non-empty list of layer paths or names, got {layers!r}.")
    chosen = {}
    for name in layers:
        matches = [path for path, layer in found.items() if name in (path, layer.name)]
        if not matches:
            raise ValueError(f"`layers`: no SSM layer {name!r} in the model; its SSM layers are "
                             f"{', '.join(found)} (path or layer name).")
        chosen.update({path: found[path] for path in matches})
    return chosen


class _KernelOverride:
    """During a forward pass, answer ``layer.convolution_kernel(length)`` with a given tensor."""

    def __init__(self, layer):
        self.layer = layer
        self.kernel = None
        self.lengths = []

    def record(self, length):
        self.lengths.append(length)
        return type(self.layer).convolution_kernel(self.layer, length)

    def replay(self, length):
        return self.kernel

    @contextlib.contextmanager
    def patched(self, method):
        self.layer.convolution_kernel = method
        try:
            yield
        finally:
            del self.layer.convolution_kernel


#: model -> {arguments: BatchGradients} (BatchGradients.cached); entries go with their model.
_CACHE = weakref.WeakKeyDictionary()


class BatchGradients:
    """The loss of a batch and its gradients with respect to the diagonal SSM layers' kernels and to chosen
    variables, compiled once (``jax.jit``, ``tf.function``; eager on torch) and reusable on batches of one
    shape: what ``keras_ssm.MemoryTracker`` calls at every record. See :func:`batch_gradients` for the
    arguments; calling the object with (x, y) gives its result."""

    def __init__(self, model, x, *, loss=None, layers=None, variables=()):
        self.model, self.loss_fn = model, resolve_loss(model, loss)
        chosen = {} if layers is not None and not isinstance(layers, str) and len(layers) == 0 else \
            {path: layer for path, layer in select_ssm_layers(model, layers).items() if layer.is_diagonal}
        self.overrides = {path: _KernelOverride(layer) for path, layer in chosen.items()}
        with contextlib.ExitStack() as stack:  # a first pass finds the length each kernel is asked for
            for override in self.overrides.values():
                stack.enter_context(override.patched(override.record))
            model(x, training=False)
        for path, override in self.overrides.items():
            if len(set(override.lengths)) != 1:
                raise ValueError(f"SSM layer {path!r} was called {len(override.lengths)} times in one forward "
                                 f"pass (a shared layer): its kernel gradient is not defined per call.")
        self.variables = list(variables)
        chosen_ids = {id(v) for v in self.variables}
        # On jax every other variable is an input of the compiled function too, so it never holds stale values.
        self.others = [v for v in model.variables if id(v) not in chosen_ids] if keras.backend.backend() == "jax" else []
        self._compiled = None

    @classmethod
    def cached(cls, model, x, *, loss=None, layers=None, variables=()) -> "BatchGradients":
        """The one instance per model and arguments (batch shape included): a second tracker on the same
        model (a new run after ``set_weights``) reuses its compiled function."""
        loss_key = loss if isinstance(loss, str) or loss is None else (
            type(loss).__name__, repr(loss.get_config()) if hasattr(loss, "get_config") else id(loss))
        key = (tuple(np.shape(x)), loss_key,
               None if layers is None else tuple(layers), tuple(id(v) for v in variables))
        per_model = _CACHE.setdefault(model, {})
        if key not in per_model:
            per_model[key] = cls(model, x, loss=loss, layers=layers, variables=variables)
        return per_model[key]

    def _loss(self, leaves, others, x, y):
        kernels = leaves[: len(self.overrides)]
        for override, kernel in zip(self.overrides.values(), kernels):
            override.kernel = kernel
        mapping = list(zip(self.variables, leaves[len(kernels):])) + list(zip(self.others, others))
        with contextlib.ExitStack() as stack:
            for override in self.overrides.values():
                stack.enter_context(override.patched(override.replay))
            stack.enter_context(keras.StatelessScope(state_mapping=mapping))
            return self.loss_fn(y, self.model(x, training=False))

    def _compile(self):
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            return jax.jit(jax.value_and_grad(self._loss))
        if backend == "tensorflow":
            import tensorflow as tf

            @tf.function(reduce_retracing=True)
            def value_and_grad(leaves, others, x, y):
                with tf.GradientTape() as tape:
                    tape.watch(leaves)
                    value = self._loss(leaves, others, x, y)
                return value, tape.gradient(value, leaves, unconnected_gradients=tf.UnconnectedGradients.ZERO)

            return value_and_grad
        if backend == "torch":
            import torch

            def value_and_grad(leaves, others, x, y):
                leaves = [leaf.detach().clone().requires_grad_(True) for leaf in leaves]
                value = self._loss(leaves, others, x, y)
                grads = torch.autograd.grad(value, leaves, allow_unused=True)
                return value.detach(), [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]

            return value_and_grad
        raise ValueError(f"gradients need the jax, tensorflow or torch backend, not {backend!r}.")

    def __call__(self, x, y):
        if self._compiled is None:
            self._compiled = self._compile()
        kernels = [ops.stop_gradient(type(o.layer).convolution_kernel(o.layer, o.lengths[0]))
                   for o in self.overrides.values()]
        leaves = kernels + [ops.convert_to_tensor(v.value) for v in self.variables]
        others = [ops.convert_to_tensor(v.value) for v in self.others]
        value, grads = self._compiled(leaves, others, ops.convert_to_tensor(x), ops.convert_to_tensor(y))
        grads = [np.asarray(ops.convert_to_numpy(g), np.float64) for g in grads]
        n = len(kernels)
        return float(ops.convert_to_numpy(value)), dict(zip(self.overrides, grads[:n])), grads[n:]


def batch_gradients(model, x, y, *, loss=None, layers=None, variables=()):
    """The loss of one batch and its gradients, the model left unchanged.

    Args:
        model: a built Keras model (or layer) holding SSM layers.
        x, y: one batch (inputs and targets, as ``model.fit`` takes them).
        loss: a Keras loss name, object or function (y_true, y_pred); None: the model's compiled loss.
        layers: the SSM layers whose kernel gradient to return (paths or names); None: every diagonal one;
            an empty list: none (every variable's gradient then flows through the layers as in training).
        variables: Keras variables whose gradients to return as well.

    Returns:
        (loss value, {path: dL/dK as float64 numpy (c, H, L)} for the diagonal layers chosen,
        [dL/dv as float64 numpy for v in variables]).
    """
    return BatchGradients.cached(model, x, loss=loss, layers=layers, variables=variables)(x, y)


def layer_lag_gradient(layer, kernel_gradient, loss=float("nan")) -> LagGradient:
    """:func:`keras_ssm.memory.gradient.lag_gradient` for a built diagonal layer and its kernel gradient."""
    log_a_real, _ = layer._mode_arrays()
    return lag_gradient(kernel_gradient, layer.continuous_eigenvalues(), np.exp(np.asarray(layer.log_dt.numpy(),
                        np.float64)), complex_from_pairs(layer.C.numpy()), layer.discretization,
                        decay_floored=np.exp(log_a_real) < MIN_DECAY, loss=loss)


def gradient_by_lag(model, x, y, *, loss=None, layers=None) -> dict:
    """The loss gradient of each diagonal SSM layer's parameters on one batch, split by input lag.

    For every S4D layer (or those named in ``layers``): dL/dlog_a_real, dL/da_imag, dL/dlog_dt and dL/dC as
    sums over lags k = 0..L-1 of the part the input k steps back contributes, and the memory push (the
    change of log|lambda| in one gradient-descent step, > 0 toward longer memory), from the closed-form
    kernel (formulas: ``keras_ssm.memory.gradient``). Works for frozen eigenvalues too: it then says where
    training would move them.

    Example:

    ```python
    model.compile(loss="mse")
    parts = keras_ssm.gradient_by_lag(model, x, y)["s4d"]
    parts.total("log_a_real")        # (H, N/2): equals the autodiff gradient
    parts.push_by_lag()              # (L,): > 0 where the input at that lag lengthens memory
    ```

    Returns:
        {path: :class:`keras_ssm.memory.gradient.LagGradient`}.
    """
    found = select_ssm_layers(model, layers)
    diagonal = {path: layer for path, layer in found.items() if layer.is_diagonal}
    if not diagonal:
        raise ValueError(f"gradient_by_lag needs diagonal SSM layers (S4D); {', '.join(found)} "
                         f"{'is' if len(found) == 1 else 'are'} not diagonal (S4's DPLR kernel has no per-mode form).")
    value, kernel_grads, _ = batch_gradients(model, x, y, loss=loss, layers=list(diagonal))
    return {path: layer_lag_gradient(diagonal[path], kernel_grads[path], value) for path in diagonal}
