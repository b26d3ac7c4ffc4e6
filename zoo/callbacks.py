"""Callbacks of the zoo runs: divergence guard, epoch timing, resumable checkpoint + best model."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN/inf or blew up; the message says where and what to try."""


def _as_float(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training with :class:`TrainingDivergedError` when the loss is NaN/inf or diverges.

    Checked after every training batch (the running epoch loss Keras reports) and at every epoch end
    (train and validation loss). "Diverges" means the running loss exceeds ``factor`` times the first
    loss seen in this run (``factor=None``: only non-finite losses stop the run). Raising stops
    ``fit`` before the epoch-end callbacks run, so the last checkpoint on disk stays the last good one.

    Args:
        factor: divergence threshold relative to the first loss, > 1, or None.
        checkpoint_hint: where the last good checkpoint lives (quoted in the message).
    """

    def __init__(self, factor=20.0, checkpoint_hint=None):
        super().__init__()
        if factor is not None and not factor > 1.0:
            raise ValueError(f"`factor` must be > 1 or None, got {factor!r}.")
        self.factor = factor
        self.checkpoint_hint = checkpoint_hint
        self.reference_loss = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _fail(self, what, value, where):
        hint = f" The last good checkpoint (end of the previous epoch) is kept in {self.checkpoint_hint}." \
            if self.checkpoint_hint else ""
        raise TrainingDivergedError(
            f"Training diverged: {what} = {value} at {where}.{hint} "
            f"Try a lower learning rate (--lr / --ssm-lr, or a longer warmup: --set warmup_fraction=...)."
        )

    def _check(self, name, value, where, against_reference):
        value = _as_float(value)
        if value is None:
            return
        if not math.isfinite(value):
            self._fail(name, value, where)
        if self.reference_loss is None:
            self.reference_loss = value
        elif against_reference and self.factor is not None and value > self.factor * max(self.reference_loss, 1e-8):
            self._fail(name, f"{value:.4g} (> {self.factor:g} x the initial {self.reference_loss:.4g})", where)

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            self._check("loss", logs["loss"], f"epoch {self._epoch + 1}, batch {batch + 1}", True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name in ("loss", "val_loss"):
            if name in logs:
                self._check(name, logs[name], f"the end of epoch {epoch + 1}", name == "loss")


class EpochTimer(keras.callbacks.Callback):
    """Adds ``train_time_s`` (training batches only, no validation), ``train_steps`` and ``learning_rate``
    to each epoch's logs (so CSVLogger, TensorBoard and the history record them)."""

    def __init__(self):
        super().__init__()
        self.epochs = []  # (epoch, steps, seconds)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._last = self._start
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._last - self._start
        self.epochs.append((epoch, self._steps, seconds))
        if logs is not None:
            logs["train_time_s"] = seconds
            logs["train_steps"] = self._steps
            lr = current_learning_rate(self.model.optimizer)
            if lr is not None:
                logs["learning_rate"] = lr

    def steps_per_second(self):
        """Training steps per second over this process's epochs, leaving out the first (compilation)
        when there are several; None before any epoch."""
        epochs = self.epochs[1:] if len(self.epochs) > 1 else self.epochs
        steps = sum(e[1] for e in epochs)
        seconds = sum(e[2] for e in epochs)
        return steps / seconds if seconds > 0 else None


def current_learning_rate(optimizer):
    """The learning rate the optimizer uses at its current iteration, as a float (None if unknown)."""
    if optimizer is None:
        return None
    try:
        lr = optimizer.learning_rate
        if callable(lr):  # a schedule object
            lr = lr(optimizer.iterations)
        return float(keras.ops.convert_to_numpy(lr))
    except Exception:  # noqa: BLE001 - logging only
        return None


# ---------------------------------------------------------------------------------------------
STATE_FILE = "state.json"


def read_checkpoint_state(checkpoint_dir) -> dict | None:
    """The resumable state written by :class:`RunCheckpoint`, or None when there is none."""
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    weights = Path(checkpoint_dir) / state["weights"]
    if not weights.exists():
        raise FileNotFoundError(f"Checkpoint state {path} names {weights}, which is missing.")
    return state


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class RunCheckpoint(keras.callbacks.Callback):
    """Per-epoch resumable checkpoint plus the best model by a monitored metric.

    At the end of every epoch:

    1. if ``logs[monitor]`` beats the best so far, save the whole model to ``best_model_path``
       (``.keras``, written to a temporary file then renamed);
    2. save weights + optimizer state to ``checkpoint_dir/epoch-<k>.weights.h5``;
    3. atomically replace ``checkpoint_dir/state.json`` = {epoch: k (completed epochs), weights,
       best, best_epoch, train_time_s, wall_time_s, ...} and delete the previous weights file.

    A process killed at any point leaves a consistent (state.json, weights) pair of the last completed
    epoch. ``initial_state`` carries the counters of a resumed run.
    """

    def __init__(self, checkpoint_dir, best_model_path, monitor="val_accuracy", initial_state=None,
                 wall_clock_start=None):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.best_model_path = Path(best_model_path)
        self.monitor = monitor
        state = dict(initial_state or {})
        self.best = state.get("best", -math.inf)
        self.best_epoch = state.get("best_epoch")
        self.train_time_s = state.get("train_time_s", 0.0)
        self.previous_wall_time_s = state.get("wall_time_s", 0.0)
        self.wall_clock_start = time.perf_counter() if wall_clock_start is None else wall_clock_start

    def wall_time_s(self):
        return self.previous_wall_time_s + time.perf_counter() - self.wall_clock_start

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        value = _as_float(logs.get(self.monitor))
        if value is not None and math.isfinite(value) and value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            tmp = self.best_model_path.with_name(f".tmp-{self.best_model_path.name}")
            self.model.save(tmp)
            os.replace(tmp, self.best_model_path)
        self.train_time_s += float(logs.get("train_time_s", 0.0))
        weights_name = f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(self.checkpoint_dir / weights_name)
        previous = read_checkpoint_state(self.checkpoint_dir) if (self.checkpoint_dir / STATE_FILE).exists() else None
        _write_json_atomic(
            self.checkpoint_dir / STATE_FILE,
            {
                "epoch": epoch + 1,
                "weights": weights_name,
                "monitor": self.monitor,
                "best": self.best,
                "best_epoch": self.best_epoch,
                "train_time_s": self.train_time_s,
                "wall_time_s": self.wall_time_s(),
            },
        )
        if previous is not None and previous["weights"] != weights_name:
            (self.checkpoint_dir / previous["weights"]).unlink(missing_ok=True)


def tensorboard_callback(log_dir):
    """Keras' TensorBoard callback, or None when the ``tensorboard`` package is missing
    (it comes with ``pip install keras-ssm[data]``)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False)
