"""``MemoryTracker``: a Keras callback that records how training moves each SSM layer's eigenvalues and memory."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from keras_ssm.gradients import BatchGradients, layer_lag_gradient, select_ssm_layers
from keras_ssm.memory.core import memory_length
from keras_ssm.memory.models import layer_memory_function
from keras_ssm.memory.tracking import (
    MemoryTracking,
    load_memory_tracking,
    plot_memory_tracking,
    save_memory_tracking,
)

__all__ = ["MemoryTracker"]

UNITS = ("step", "epoch")


def _norm(*arrays) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in arrays)))


class MemoryTracker(keras.callbacks.Callback):
    """Record, every ``every`` steps or epochs, what training does to each SSM layer's eigenvalues and memory.

    Per SSM layer of the model (``keras_ssm.find_ssm_layers``) and record: the discrete eigenvalues
    lambda (H, N/2), log dt (H,), the memory function's summary per feature (memory length, MF at
    ``lags``; closed form over ``horizon`` lags) and, given a held ``batch``, the gradient norms of the
    eigenvalue parameters (log_a_real and a_imag), of log dt, of C and of the output mixing (the layer's
    Dense(2H)), with the memory push by lag of diagonal layers (``keras_ssm.gradient_by_lag``: > 0 where the
    input at that lag pulls the eigenvalues toward longer memory). The gradients come from the held batch
    with ``training=False`` and change nothing in training. S4D's eigenvalue gradients are the closed-form
    ones, defined even when the eigenvalues are frozen; S4's come from autodiff and are NaN when frozen.

    Files (``keras_ssm.memory.tracking``): ``memory_tracking.json`` and ``memory_tracking.npz`` in
    ``directory``, replaced atomically at every record; ``plot_memory_tracking(directory, path)`` draws them.

    Resume: at the start of ``fit`` the records after the optimizer's current step are dropped (training
    a resumed run repeats), and a scheduled record that is missing at that step is taken, so a run killed
    and resumed from a checkpoint has every scheduled record once.

    Args:
        directory: where the two files go (created).
        every: record every this many ``unit``s (an integer >= 1). The state before training (step 0) is
            always recorded.
        unit: "step" (optimizer steps) or "epoch".
        lags: the lags whose MF is recorded (integers in [0, horizon)).
        layers: None (every SSM layer) or a list of layer paths or names.
        batch: (x, y) held batch for the gradients; None: no gradient records.
        horizon: lags of the closed-form memory function.
        loss: the loss of the gradients (name, object or function); None: the model's compiled loss.

    Example:

    ```python
    tracker = keras_ssm.MemoryTracker("runs/tracked", every=20, lags=(1, 10, 100), batch=(x[:32], y[:32]))
    model.fit(x, y, epochs=3, callbacks=[tracker])
    keras_ssm.plot_memory_tracking("runs/tracked", "runs/tracked/memory_tracking.png")
    ```
    """

    def __init__(self, directory, every: int = 1, unit: str = "epoch", lags=(1, 10, 100), layers=None,
                 batch=None, horizon: int = 1024, loss=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"`every` must be an integer >= 1, got {every!r}.")
        if unit not in UNITS:
            raise ValueError(f"`unit` must be one of {UNITS}, got {unit!r}.")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"`horizon` must be an integer >= 1, got {horizon!r}.")
        try:
            lags = [int(k) for k in lags]
            ok = len(lags) > 0 and all(0 <= k < horizon for k in lags) and all(
                not isinstance(k, bool) and float(k) == int(k) for k in lags)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"`lags` must be a non-empty list of integers in [0, horizon = {horizon}), got {lags!r}.")
        if layers is not None and (isinstance(layers, str) or not layers
                                   or not all(isinstance(name, str) for name in layers)):
            raise ValueError(f"`layers` must be None or a non-empty list of layer paths or names, got {layers!r}.")
        if batch is not None and (not isinstance(batch, (tuple, list)) or len(batch) != 2):
            raise ValueError("`batch` must be None or a tuple (x, y) of one batch of inputs and targets.")
        self.directory = Path(directory)
        self.every, self.unit, self.lags, self.horizon = int(every), unit, sorted(set(lags)), int(horizon)
        self.layer_names, self.batch, self.loss = layers, batch, loss
        self.tracking = self._gradients = None
        self.record_seconds = []

    # Keras hooks ----------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._layers = select_ssm_layers(self.model, self.layer_names)
        settings = {"every": self.every, "unit": self.unit, "lags": self.lags, "horizon": self.horizon,
                    "layers": list(self._layers), "gradients": self.batch is not None}
        step = self._step()
        if self.tracking is None:
            try:
                self.tracking = load_memory_tracking(self.directory)
            except FileNotFoundError:
                self.tracking = MemoryTracking(settings=settings, records=[], arrays={})
        previous = {k: v for k, v in self.tracking.settings.items() if k != "gradients"}
        if previous != {k: v for k, v in settings.items() if k != "gradients"}:
            raise ValueError(f"{self.directory} holds a memory tracking with other settings ({previous}); "
                             f"use another directory or the same settings ({settings}).")
        self.tracking.truncate(step)
        if step == 0:
            self._record_if_missing(0, epoch=0, boundary=0)
        elif self.unit == "step" and step % self.every == 0:
            self._record_if_missing(step, epoch=None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)
        if self.unit == "epoch" and epoch % self.every == 0 and not any(
                r.get("epoch_boundary") == epoch for r in self.tracking.records):
            self._record_if_missing(self._step(), epoch=epoch, boundary=epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.unit == "step":
            step = self._step()
            if step % self.every == 0:
                self._record_if_missing(step, epoch=getattr(self, "_epoch", None))

    def on_epoch_end(self, epoch, logs=None):
        if self.unit == "epoch" and (epoch + 1) % self.every == 0:
            self._record_if_missing(self._step(), epoch=epoch + 1, boundary=epoch + 1)

    # recording ------------------------------------------------------------------------------------
    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "iterations"):
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _record_if_missing(self, step, epoch, boundary=None):
        if any(r["step"] == step for r in self.tracking.records):
            return
        start = time.perf_counter()
        # Inside an epoch, Keras' jax trainer keeps the weights in its own state and puts them back into the
        # variables only at the epoch end; its public `jax_state_sync` does it now.
        sync = getattr(self.model, "jax_state_sync", None)
        if callable(sync):
            sync()
        record = {"step": int(step), "epoch": epoch, "layers": {}}
        if boundary is not None:
            record["epoch_boundary"] = int(boundary)
        for path, values in self._measure().items():
            summary = values.pop("summary")
            record["layers"][path] = summary
            for name, value in values.items():
                self.tracking.arrays.setdefault(f"{path}/{name}", []).append(value)
        self.tracking.records.append(record)
        save_memory_tracking(self.directory, self.tracking)
        self.record_seconds.append(time.perf_counter() - start)

    def _measure(self) -> dict:
        out = {}
        for path, layer in self._layers.items():
            mf = layer_memory_function(layer, self.horizon).values               # (H, horizon)
            length = np.asarray(memory_length(mf), np.float64)
            lam = np.asarray(layer.discrete_eigenvalues())
            out[path] = {
                "eigenvalues": lam.astype(np.complex64),
                "log_dt": np.asarray(layer.log_dt.numpy(), np.float32),
                "length": length.astype(np.float32),
                "mf": mf[:, self.lags].astype(np.float32),
                "summary": {"capacity": float(np.mean(np.sum(mf, axis=-1))), "length": float(np.mean(length)),
                            "mf": [float(v) for v in np.mean(mf[:, self.lags], axis=0)]},
            }
        if self.batch is not None:
            self._add_gradients(out)
        return out

    def _add_gradients(self, out):
        diagonal = [path for path, layer in self._layers.items() if layer.is_diagonal]
        dense_paths = [path for path in self._layers if path not in diagonal]
        variables, owners = [], []
        for path, layer in self._layers.items():
            mixing = [layer.output_dense.kernel, layer.output_dense.bias] if layer.gated_output else []
            extra = [] if layer.is_diagonal else [v for v in layer.eigenvalue_variables if v.trainable] + [layer.C]
            variables += mixing + extra
            owners += [(path, "output_mixing")] * len(mixing) + [(path, "s4")] * len(extra)
        x, y = self.batch
        if getattr(self, "_gradients", None) is None:
            self._gradients = BatchGradients.cached(self.model, x, loss=self.loss, layers=diagonal or [],
                                                    variables=variables)
        loss, kernel_grads, grads = self._gradients(x, y)
        for path in dense_paths:  # S4: autodiff through the kernel
            layer = self._layers[path]
            eig = [g for (p, kind), g, v in zip(owners, grads, variables) if p == path and kind == "s4" and v is not layer.C]
            c = [g for (p, kind), g, v in zip(owners, grads, variables) if p == path and v is layer.C]
            out[path]["summary"]["gradient_norm"] = {"eigenvalues": _norm(*eig) if eig else float("nan"),
                                                     "log_dt": float("nan"), "C": _norm(*c)}
        for path in diagonal:
            parts = layer_lag_gradient(self._layers[path], kernel_grads[path], loss)
            out[path]["summary"]["gradient_norm"] = {
                "eigenvalues": _norm(parts.total("log_a_real"), parts.total("a_imag")),
                "log_dt": _norm(parts.total("log_dt")), "C": _norm(parts.total("C"))}
            push = parts.total("memory_push")
            out[path]["summary"]["memory_push"] = float(np.sum(push))
            out[path]["memory_push"] = push.astype(np.float32)
            out[path]["push_by_lag"] = parts.push_by_lag().astype(np.float32)
        for path in self._layers:
            mixing = [g for (p, kind), g in zip(owners, grads) if p == path and kind == "output_mixing"]
            out[path]["summary"]["gradient_norm"]["output_mixing"] = _norm(*mixing) if mixing else float("nan")
            out[path]["summary"]["loss"] = loss

    # results -----------------------------------------------------------------------------------------
    def plot(self, path=None, **kwargs):
        """``keras_ssm.plot_memory_tracking`` of this tracking (``path`` None: ``directory/memory_tracking.png``)."""
        return plot_memory_tracking(self.tracking if self.tracking is not None else self.directory,
                                    self.directory / "memory_tracking.png" if path is None else path, **kwargs)
