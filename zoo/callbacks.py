"""Callbacks of the zoo runs, on Keras' own: exact resume, best model, divergence, history, timing.

- :class:`RunBackup`: the backup of a run (as ``keras.callbacks.BackupAndRestore``, through the public
  callback hooks only): at the start of ``fit`` it restores the weights, the optimizer state and every
  dropout seed generator (the caller passes ``initial_epoch=read_backup(...)["epoch"]`` to ``fit``); at
  each epoch end it writes them so a kill at any moment leaves a consistent backup: the weights and
  optimizer state go to a new ``epoch-<k>.weights.h5``, then ``training_metadata.json`` (epoch, that
  file's name, the seed generator states, and the run's own state: history rows, divergence reference,
  wall time) is replaced atomically, then the previous weights file is deleted.
- :class:`BestModelCheckpoint`: ``keras.callbacks.ModelCheckpoint(save_best_only=True)`` writing to a
  temporary ``.keras`` file renamed over ``best.keras`` at the epoch end; on resume its threshold is the
  best value of the restored history.
- :class:`DivergenceGuard` next to ``keras.callbacks.TerminateOnNaN(raise_error=True)``: the guard
  stops a loss that exceeds ``factor`` x the run's first loss (the reference is restored on resume) and
  records where a NaN/inf appeared; TerminateOnNaN stops on it, and :func:`divergence_errors` turns its
  RuntimeError into :class:`TrainingDivergedError` with the guard's description.
- :class:`HistoryFile`: history.csv rewritten atomically at every epoch end from the rows kept in the
  backup, so an epoch retrained after a kill appears once.
- :class:`EpochTimer`: training time, steps and learning rate in each epoch's logs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import time
from pathlib import Path

import keras
import numpy as np

from zoo.configs import parse_backup_every
from zoo.interrupts import note_backup, stop_pending
from zoo.rundir import DamagedFileError, read_json, write_csv_atomic, write_json_atomic

BACKUP_METADATA = "training_metadata.json"  # the name keras.callbacks.BackupAndRestore uses too


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN/inf or blew up; the message says where."""


def _as_float(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
class DivergenceGuard(keras.callbacks.Callback):
    """Stop training when the loss diverges; record where a NaN/inf appeared.

    After every training batch the running epoch loss Keras reports is compared with ``factor`` x the
    reference loss (the first batch loss of the run, or ``reference_loss`` restored from a backup):
    above it, :class:`TrainingDivergedError` is raised. A non-finite batch loss is only recorded in
    :attr:`event` (``keras.callbacks.TerminateOnNaN(raise_error=True)``, placed after this guard, stops
    the run; :func:`divergence_errors` gives the error this guard's description). At an epoch end a
    non-finite ``loss`` or ``val_loss`` raises. Raising stops ``fit`` before later epoch-end callbacks
    (history, backup), so the backup on disk stays the last good epoch.

    Args:
        factor: divergence threshold relative to the reference loss, > 1, or None (NaN/inf only).
        reference_loss: the reference of a resumed run (None: the first batch loss).
    """

    def __init__(self, factor=20.0, reference_loss=None):
        super().__init__()
        if factor is not None and not factor > 1.0:
            raise ValueError(f"`factor` must be > 1 or None, got {factor!r}.")
        self.factor = factor
        self.reference_loss = reference_loss
        self.event = None  # {"what", "value", "epoch" (1-based), "batch" (1-based or None), "reference"}
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def describe(self) -> str:
        """'Training diverged: loss = ... at epoch e, batch b.' for the recorded event."""
        e = self.event
        where = f"epoch {e['epoch']}, batch {e['batch']}" if e["batch"] else f"the end of epoch {e['epoch']}"
        value = e["value"]
        if math.isfinite(value) and e.get("reference") is not None:
            value = f"{value:.4g} (> {self.factor:g} x the run's first loss {e['reference']:.4g})"
        return f"Training diverged: {e['what']} = {value} at {where}."

    def _record(self, what, value, epoch, batch):
        self.event = {"what": what, "value": value, "epoch": epoch + 1, "batch": batch,
                      "reference": self.reference_loss}

    def on_train_batch_end(self, batch, logs=None):
        value = _as_float((logs or {}).get("loss"))
        if value is None:
            return
        if not math.isfinite(value):
            self._record("loss", value, self._epoch, batch + 1)  # TerminateOnNaN stops the run
            return
        if self.reference_loss is None:
            self.reference_loss = value
        elif self.factor is not None and value > self.factor * max(self.reference_loss, 1e-8):
            self._record("loss", value, self._epoch, batch + 1)
            raise TrainingDivergedError(self.describe())

    def on_epoch_end(self, epoch, logs=None):
        for name in ("loss", "val_loss"):
            value = _as_float((logs or {}).get(name))
            if value is not None and not math.isfinite(value):
                self._record(name, value, epoch, None)
                raise TrainingDivergedError(self.describe())


def divergence_callbacks(factor, reference_loss=None):
    """(guard, [guard, keras.callbacks.TerminateOnNaN(raise_error=True)]) in the order they must run."""
    guard = DivergenceGuard(factor, reference_loss)
    return guard, [guard, keras.callbacks.TerminateOnNaN(raise_error=True)]


@contextlib.contextmanager
def divergence_errors(guard: DivergenceGuard):
    """Around ``fit``: TerminateOnNaN's RuntimeError becomes :class:`TrainingDivergedError` with
    ``guard``'s description (other errors pass unchanged)."""
    try:
        yield
    except TrainingDivergedError:
        raise
    except RuntimeError as err:
        if guard.event is None:
            raise
        raise TrainingDivergedError(guard.describe()) from err


# ---------------------------------------------------------------------------------------------
def seed_generator_states(model) -> list:
    """The state variables of every ``keras.random.SeedGenerator`` of ``model`` (dropout), in model order.

    ``Model.save_weights`` leaves them out; an exact resume restores them."""
    return [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]


def read_backup(backup_dir) -> dict | None:
    """The metadata of the last backup in ``backup_dir`` (see :class:`RunBackup`), or None when there is none.

    Raises:
        DamagedFileError: the metadata is unreadable or names a missing weights file.
    """
    path = Path(backup_dir) / BACKUP_METADATA
    if not path.exists():
        return None
    fix = (f"Delete {Path(backup_dir)} to restart the run from scratch, or rerun with --overwrite.")
    metadata = read_json(path, fix)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("weights"), str) or "epoch" not in metadata:
        raise DamagedFileError(f"{path} is damaged: it is not a backup of this version. {fix}")
    if not (Path(backup_dir) / metadata["weights"]).exists():
        raise DamagedFileError(f"{path} names {metadata['weights']}, which is missing. {fix}")
    return metadata


class RunBackup(keras.callbacks.Callback):
    """The backup of a run for a bit-exact resume, written atomically (module docstring), at every epoch end
    and, with ``every``, inside epochs too.

    Args:
        backup_dir: the run's ``checkpoints/`` directory.
        run_state: callable returning a JSON-serialisable dict saved with each backup (the run's own
            state: history rows, divergence reference, ...); :func:`read_backup` returns it as ``"run"``.
        every: when to write backups inside epochs too (``TrainConfig.backup_every``: "epoch", "500",
            "10m", "500,10m", see :func:`zoo.configs.parse_backup_every`); and always at the step where a
            stop signal is taken (:mod:`zoo.interrupts`).

    A mid-epoch backup records ``epoch`` (finished epochs), ``batch`` (finished steps of the next epoch) and
    the metric accumulators (the epoch's running train loss and accuracy, which ``save_weights`` leaves out).
    ``fit`` must resume at the backup's epoch, over the batches after ``batch`` of it
    (:func:`zoo.core.fit_and_evaluate` with ``state.epoch_step``): ``keras.callbacks.BackupAndRestore(
    save_freq=N)`` cannot serve, since its restore repeats the whole epoch and loses the accumulators.
    The backup is kept when training ends: it is the run's record of the last epoch and what a diverged
    run continues from.
    """

    def __init__(self, backup_dir, run_state=dict, *, every: str = "epoch"):
        super().__init__()
        self.run_state = run_state
        self.directory = Path(backup_dir)
        self.every_steps, self.every_seconds = parse_backup_every(every)
        self._restored = False
        self._epoch = 0
        self._step_offset = 0  # finished steps of the current epoch before this fit (a mid-epoch resume)
        self._metrics = None  # metric accumulators to restore at the start of the resumed epoch

    def on_train_begin(self, logs=None):
        if not self._restored:  # a mid-epoch resume runs two fits (zoo.core); the backup is restored once
            self._restored = True
            self.restore_backup()
        self._since_step, self._since_time = 0, time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._metrics is not None:  # after Keras reset the accumulators for the epoch
            by_path = {v.path: v for v in self.model.metrics_variables}
            for path, value in self._metrics.items():
                if path in by_path:
                    by_path[path].assign(np.asarray(value, dtype=by_path[path].dtype))
            self._metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self._since_step += 1
        if batch + 1 >= self.params.get("steps", math.inf):
            return  # the epoch's last step: its end-of-epoch backup follows
        due = (stop_pending() is not None
               or (self.every_steps is not None and self._since_step >= self.every_steps)
               or (self.every_seconds is not None and time.perf_counter() - self._since_time >= self.every_seconds))
        if due:
            self.save_backup(self._epoch, batch=self._step_offset + batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._step_offset = 0
        self.save_backup(epoch + 1)

    def save_backup(self, epoch, batch: int = 0):
        """Write the backup after ``epoch`` finished epochs (and ``batch`` finished steps of the next one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if batch and hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()  # the JAX trainer keeps the state off the variables inside an epoch
        previous = read_backup(self.directory)
        name = f"epoch-{epoch}.weights.h5" if not batch else f"epoch-{epoch}-step-{batch}.weights.h5"
        self.model.save_weights(self.directory / name, overwrite=True)
        metadata = {
            "epoch": epoch,
            "batch": batch,
            "weights": name,
            "seed_generators": [np.asarray(v.numpy()).tolist() for v in seed_generator_states(self.model)],
            "metrics": ({v.path: np.asarray(v.numpy()).tolist() for v in self.model.metrics_variables}
                        if batch else {}),
            "run": self.run_state(),
        }
        write_json_atomic(self.directory / BACKUP_METADATA, metadata)
        if previous is not None and previous["weights"] != name:
            (self.directory / previous["weights"]).unlink(missing_ok=True)
        self._since_step, self._since_time = 0, time.perf_counter()
        note_backup(f"the backup of epoch {epoch + 1}, step {batch} in {self.directory}" if batch
                    else f"the backup after epoch {epoch} in {self.directory}")

    def restore_backup(self):
        """Load the last backup's weights, optimizer state and seed generator states into the model (if any);
        a mid-epoch backup's metric accumulators go back at the start of the resumed epoch."""
        metadata = read_backup(self.directory)
        if metadata is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.directory / metadata["weights"])
        states = seed_generator_states(self.model)
        if len(states) != len(metadata["seed_generators"]):
            raise DamagedFileError(
                f"{self.directory / BACKUP_METADATA} holds {len(metadata['seed_generators'])} seed generator "
                f"state(s) but the model has {len(states)}: the backup is of another model."
            )
        for variable, value in zip(states, metadata["seed_generators"]):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self._step_offset = int(metadata.get("batch", 0))
        self._metrics = metadata.get("metrics") or None


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint(save_best_only=True, mode="max")`` of the whole model, replaced atomically.

    Keras writes the model to ``.<name>.partial.keras`` next to ``filepath`` at an epoch end, which is then
    renamed over ``filepath``: a kill while saving leaves the previous best model intact.

    Args:
        filepath: the ``.keras`` file (``best.keras``).
        monitor: the metric to maximise (``val_accuracy``).
        best: the best value so far of a resumed run (None: the first epoch is saved).
    """

    def __init__(self, filepath, monitor="val_accuracy", best=None):
        self.final_path = Path(filepath)
        self.partial_path = self.final_path.with_name(f".{self.final_path.stem}.partial.keras")
        super().__init__(str(self.partial_path), monitor=monitor, mode="max", save_best_only=True,
                         initial_value_threshold=best)

    def on_epoch_end(self, epoch, logs=None):
        self.partial_path.unlink(missing_ok=True)
        super().on_epoch_end(epoch, logs)  # save_freq="epoch": the only place ModelCheckpoint saves
        if self.partial_path.exists():
            self.partial_path.replace(self.final_path)


class HistoryFile(keras.callbacks.Callback):
    """history.csv from ``state.history`` (the rows `zoo.core.EpochRecord` keeps in a
    `zoo.core.TrainingState`, restored from the backup on resume), rewritten atomically at every epoch
    end, so an epoch retrained after a kill appears once. Columns: ``epoch`` (0-based, as
    keras.callbacks.CSVLogger) then the metric keys sorted. Put it after the EpochRecord callback."""

    def __init__(self, path, state):
        super().__init__()
        self.path = Path(path)
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        rows = self.state.history
        keys = sorted({key for row in rows for key in row} - {"epoch"})
        write_csv_atomic(self.path, rows, ["epoch", *keys])


EPOCH_TIMER_KEYS = ("train_time_s", "train_steps", "learning_rate")


class EpochTimer(keras.callbacks.Callback):
    """Adds ``train_time_s`` (training batches only, no validation), ``train_steps`` and ``learning_rate``
    to each epoch's logs (so the history and TensorBoard record them; `QuietEpochLogs` takes them out
    again before the progress bar prints the epoch line).

    Args:
        progress: an object whose ``epoch_step`` and ``epoch_train_time_s`` attributes hold the current
            epoch's finished steps and training seconds (zoo.core.TrainingState): kept up to date at every
            step (what a mid-epoch backup records), and read at the first epoch, which continues from them
            after a mid-epoch resume. None: counted here alone.
    """

    def __init__(self, progress=None):
        super().__init__()
        self.epochs = []  # (epoch, steps, seconds) of this process
        self.progress = progress

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._last = self._start
        self._steps = 0
        resumed = self.progress if self.progress is not None and self.progress.epoch_step else None
        self._before = (resumed.epoch_step, resumed.epoch_train_time_s) if resumed else (0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        self._last = time.perf_counter()
        if self.progress is not None:
            self.progress.epoch_step = self._before[0] + self._steps
            self.progress.epoch_train_time_s = self._before[1] + self._last - self._start

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._last - self._start
        self.epochs.append((epoch, self._steps, seconds))
        if self.progress is not None:
            self.progress.epoch_step, self.progress.epoch_train_time_s = 0, 0.0
        if logs is not None:
            logs["train_time_s"] = self._before[1] + seconds
            logs["train_steps"] = self._before[0] + self._steps
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


class QuietEpochLogs(keras.callbacks.Callback):
    """Removes `EpochTimer`'s keys from each epoch's logs, so the progress bar's epoch line shows only the
    metrics (the keys stay in whatever ran before this callback: history.csv, TensorBoard).

    Keras appends its own ProgbarLogger after every given callback; put this callback last and pass a
    ``keras.callbacks.ProgbarLogger()`` right after it so that the progress bar runs after it.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for key in EPOCH_TIMER_KEYS:
                logs.pop(key, None)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch, for logs and files (``verbose=2``; Keras' own prints an "Epoch k/E" line before it):

        epoch 3/4: 12.1 s, loss 1.6165, accuracy 0.3800, val_loss 1.5841, val_accuracy 0.4120

    Put it after :class:`QuietEpochLogs` and fit with ``verbose=0``."""

    def __init__(self, print_fn=print):
        super().__init__()
        self.print_fn = print_fn
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - (self._start or time.perf_counter())
        metrics = ", ".join(f"{key} {float(value):.4f}" for key, value in (logs or {}).items()
                            if np.ndim(value) == 0)
        self.print_fn(f"epoch {epoch + 1}/{self.params.get('epochs', '?')}: {seconds:.1f} s, {metrics}")


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


def tensorboard_callback(log_dir):
    """Keras' TensorBoard callback, or None when the ``tensorboard`` package is missing
    (it comes with ``pip install keras-ssm[data]``)."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False)
