"""The zoo's training core: ``fit_and_evaluate(config, data) -> RunResult``, the one fit loop.

Every zoo training goes through it: a run directory (:mod:`zoo.runs`, which adds files, locking and
resume around it), the memory-horizon experiment (one compiled model for several delays) and the sweeps'
hypermodel (:mod:`tuning.hypermodel`, KerasTuner's trials). It knows nothing about files:

    data   = load_training_data(config)                    # TrainingData: train / val / test splits
    result = fit_and_evaluate(config, data)                # build, compile, fit, keep the best, test it
    result.to_dict()                                       # the one results layout (results.json)

One fit, per epoch e:  train on the batches of epoch e (order fixed by (seed, e)) -> validation metrics
-> the row {"epoch": e, metric: value, train_time_s, train_steps, learning_rate} appended to
``TrainingState.history`` -> the weights kept in memory when ``val_accuracy`` is the best so far (first
on ties). A NaN/inf loss or a loss above ``divergence_factor`` x the first batch loss stops the fit
(:class:`zoo.callbacks.DivergenceGuard`). After the fit the model holds the best epoch's weights and is
evaluated on the test split.

A resumed fit passes the :class:`TrainingState` restored from a backup (history rows, divergence
reference, best epoch and its weights) and ``initial_epoch``; callers add their own callbacks (backup,
files, TensorBoard), which run after the core's and see the state as it stands.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import keras
import numpy as np

from keras_ssm.devices import device_info
from zoo.callbacks import (
    EpochLine,
    EpochTimer,
    QuietEpochLogs,
    TrainingDivergedError,
    divergence_callbacks,
    divergence_errors,
)
from zoo.configs import TrainConfig
from zoo.data import TaskInfo, load_task, load_task_arrays
from zoo.data.pipeline import make_dataset, tensorflow
from zoo.interrupts import LatchStopRequest, StopAtStepBoundary, fit_scope
from zoo.models import build_model, count_parameters, input_spec_from_info
from zoo.optim import make_optimizer

#: The metric whose best epoch is kept (and tested).
MONITOR = "val_accuracy"
#: What ``fit_and_evaluate`` does when the loss diverges.
ON_DIVERGENCE = ("raise", "keep_best")


# ---------------------------------------------------------------------------------------------
# Data

@dataclass(frozen=True)
class TrainingData:
    """The splits one fit trains, validates and tests on.

    Attributes:
        train: ``train(first, stop)`` -> a tf.data dataset of the full training batches of epochs
            first..stop-1 (epoch e's order given by (seed, e) alone, so a resumed fit sees the same
            batches), or a pair (x, y) of arrays that Keras batches and shuffles itself.
        val, test: a tf.data dataset of (x, y) or (x, y, sample_weight) batches, or a pair (x, y) of
            arrays; ``test`` None: no test evaluation.
        info: TaskInfo of the train split; ``val_info``/``test_info`` those of the others (None when absent).
        steps_per_epoch: full training batches per epoch; batch_size: examples per batch.
        padded_evaluation: evaluation batches carry zero-weight padding rows (data parallelism).
    """

    train: Callable | tuple
    val: object
    test: object | None
    info: TaskInfo
    val_info: TaskInfo | None
    test_info: TaskInfo | None
    steps_per_epoch: int
    batch_size: int
    padded_evaluation: bool = False

    @property
    def test_majority_rate(self) -> float | None:
        """Accuracy of always predicting the test split's most frequent class (None without a test split)."""
        return None if self.test_info is None else self.test_info.majority_rate

    @property
    def val_majority_rate(self) -> float | None:
        """The same for the validation split."""
        return None if self.val_info is None else self.val_info.majority_rate

    @property
    def num_examples(self) -> dict:
        return {split: (None if info is None else int(info.num_examples))
                for split, info in (("train", self.info), ("val", self.val_info), ("test", self.test_info))}


def full_batches_per_epoch(config, info) -> int:
    """Training steps per epoch: the full batches of ``config.batch_size`` in the train split ``info``
    (the remainder is dropped: one compiled train step, even device shards)."""
    steps = info.num_examples // config.batch_size
    if steps < 1:
        raise ValueError(f"The {config.task} train split has {info.num_examples} examples, fewer than one batch "
                         f"of {config.batch_size}.")
    return steps


def load_training_data(config: TrainConfig, *, test: bool = True, pad_evaluation: int | None = None,
                       static_padding: bool = False) -> TrainingData:
    """The train, val and (``test``) test splits of ``config``'s task as zoo pipelines.

    Training batches all have ``config.batch_size`` rows (the remainder is dropped); epoch e is shuffled by
    (``config.seed``, e). Evaluation sees every example; with ``pad_evaluation`` = m its batches are padded
    to a multiple of m rows of weight 0 (:func:`pad_batches`; ``static_padding``: every batch exactly m).
    """
    common = dict(data_dir=config.data_dir, cache_dir=config.cache_dir, **config.data_options)
    train_split, info, encoding = load_task_arrays(config.task, "train", **common)
    steps = full_batches_per_epoch(config, info)

    def train(first: int, stop: int):
        return make_dataset(train_split, seq_len=info.seq_len, encoding=encoding, batch_size=config.batch_size,
                            shuffle=True, seed=config.seed, drop_remainder=True, epochs=(first, stop))

    splits = {}
    for split in ("val", "test") if test else ("val",):
        dataset, split_info = load_task(config.task, split, batch_size=config.batch_size, seed=config.seed,
                                        **common)
        if pad_evaluation:
            dataset = pad_batches(dataset, pad_evaluation, static=static_padding)
        splits[split] = (dataset, split_info)
    test_ds, test_info = splits.get("test", (None, None))
    return TrainingData(train=train, val=splits["val"][0], test=test_ds, info=info, val_info=splits["val"][1],
                        test_info=test_info, steps_per_epoch=steps, batch_size=config.batch_size,
                        padded_evaluation=bool(pad_evaluation))


def pad_batches(dataset, multiple, *, static: bool = False):
    """Pad every batch of a tf.data (x, y) dataset to a multiple of ``multiple`` rows.

    Returns (x, y, sample_weight) batches where the padding rows repeat the first row and have weight
    0, so weighted metrics (accuracy) count only real examples while every batch splits evenly over
    ``multiple`` devices. ``static=True`` (batches of at most ``multiple`` rows) gives every batch the
    static size ``multiple``, which Keras needs to shard a batch over processes.
    """
    tf = tensorflow()

    def pad(x, y):
        size = tf.shape(y)[0]
        extra = (-size) % multiple
        index = tf.concat([tf.range(size), tf.zeros([extra], tf.int32)], axis=0)
        weight = tf.concat([tf.ones([size], tf.float32), tf.zeros([extra], tf.float32)], axis=0)
        if static:
            index, weight = tf.ensure_shape(index, [multiple]), tf.ensure_shape(weight, [multiple])
        take = lambda t: tf.gather(t, index)  # noqa: E731
        x = tuple(take(t) for t in x) if isinstance(x, tuple) else take(x)
        return x, take(y), weight

    return dataset.map(pad)


# ---------------------------------------------------------------------------------------------
# Model

def classification_loss():
    """Cross-entropy on logits, weighted, so that zero-weight padding rows (data parallel evaluation) do
    not count."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def compile_model(model, config: TrainConfig, steps_per_epoch: int, *, padded_evaluation: bool = False) -> None:
    """Compile ``model`` as every zoo fit does: SSMAdamW with warmup + cosine over ``config.epochs *
    steps_per_epoch`` steps, cross-entropy on logits, accuracy.

    ``padded_evaluation``: evaluation batches carry zero-weight padding rows (data parallelism). Keras
    averages the per-batch loss weighted by the batch's row count, padding included, so the reported
    ``loss`` of such batches is slightly off; the weighted metric ``cross_entropy`` added here is the exact
    mean over the real examples (the run's ``test_loss``).
    """
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if padded_evaluation:
        metrics.append(keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy"))
    model.compile(
        optimizer=make_optimizer(lr=config.lr, ssm_lr=config.ssm_lr, weight_decay=config.weight_decay,
                                 total_steps=config.epochs * steps_per_epoch, warmup_fraction=config.warmup_fraction),
        loss=classification_loss(),
        weighted_metrics=metrics,
    )


def build_compiled_model(config: TrainConfig, data: TrainingData):
    """``zoo.models.build_model`` for the task's input shape, compiled (:func:`compile_model`); the weights are
    drawn after ``keras.utils.set_random_seed(config.seed)``."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, input_spec_from_info(data.info))
    compile_model(model, config, data.steps_per_epoch, padded_evaluation=data.padded_evaluation)
    return model


# ---------------------------------------------------------------------------------------------
# State and result

def best_epoch(rows, key: str = MONITOR):
    """(1-based epoch, value) of the first row with the highest finite ``key``; (None, None) if none."""
    best = (None, None)
    for row in rows:
        value = row.get(key)
        if value is not None and math.isfinite(value) and (best[1] is None or value > best[1]):
            best = (int(row["epoch"]) + 1, float(value))
    return best


@dataclass
class TrainingState:
    """What a fit has done so far; the part that a backup saves and a resumed fit starts from.

    Attributes:
        history: one row per completed epoch, ``{"epoch": e (0-based), metric: float, ...}``, epochs ascending.
        divergence_reference: the first batch loss of the run (the divergence threshold's reference).
        best_weights: the weights of the best epoch of ``history`` (``get_weights()`` order), None when no epoch
            has a finite ``val_accuracy`` or they were not restored.
        epoch_step, epoch_train_time_s: finished training steps and seconds of the epoch in progress (kept
            up to date during the fit); a fit given ``epoch_step`` = s > 0 resumes epoch ``initial_epoch``
            after its first s batches (a mid-epoch backup).
    """

    history: list = field(default_factory=list)
    divergence_reference: float | None = None
    best_weights: list | None = None
    epoch_step: int = 0
    epoch_train_time_s: float = 0.0

    @property
    def best(self):
        """(1-based best epoch, its val_accuracy) of :attr:`history`."""
        return best_epoch(self.history)

    def backup_record(self) -> dict:
        """What a backup keeps of this state (``run_state`` of :class:`zoo.callbacks.RunBackup`; the best
        weights are kept apart, in the best-model file)."""
        return {"history": self.history, "divergence_reference": self.divergence_reference,
                "epoch_train_time_s": self.epoch_train_time_s}

    @classmethod
    def from_backup(cls, backup: dict | None) -> "TrainingState":
        """The state a fit resumes from after ``backup`` (:func:`zoo.callbacks.read_backup`; None: a fresh one)."""
        if backup is None:
            return cls()
        run = backup.get("run", {})
        return cls(history=list(run.get("history", [])), divergence_reference=run.get("divergence_reference"),
                   epoch_step=int(backup.get("batch", 0)),
                   epoch_train_time_s=float(run.get("epoch_train_time_s", 0.0)))


class EpochRecord(keras.callbacks.Callback):
    """Appends each epoch's finite logs to ``state.history`` (an epoch retrained after a resume replaces
    its row) and keeps the weights of the best ``val_accuracy`` so far in ``state.best_weights``."""

    def __init__(self, state: TrainingState, guard):
        super().__init__()
        self.state = state
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        for key, value in (logs or {}).items():
            try:
                row[key] = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
        _, best = self.state.best
        self.state.history = [r for r in self.state.history if r["epoch"] < epoch] + [row]
        self.state.divergence_reference = self.guard.reference_loss
        value = row.get(MONITOR)
        if value is not None and math.isfinite(value) and (best is None or value > best):
            self.state.best_weights = self.model.get_weights()


@dataclass
class RunResult:
    """The one results layout of a zoo fit (``results.json`` of runs, experiments and sweep trials).

    ``test_*`` and ``majority_class_rate`` are None without a test split; ``best_*`` None when no epoch had
    a finite val_accuracy; ``diverged`` the divergence event (what, value, epoch, batch, message) of a fit
    that stopped on divergence, else None; ``history`` the per-epoch rows of :class:`TrainingState`;
    ``labels`` what an experiment adds to identify the run (e.g. setting, delay, mode).
    """

    task: str
    preset: str
    model: str
    eigenvalues: str
    seed: int
    test_accuracy: float | None
    test_loss: float | None
    majority_class_rate: float | None
    best_val_accuracy: float | None
    best_epoch: int | None
    epochs_completed: int
    diverged: dict | None
    params_trainable: int
    params_frozen: int
    frozen_fraction: float
    params_norm_statistics: dict
    train_time_s: float
    train_steps_per_second: float | None
    steps_per_epoch: int
    wall_time_s: float
    build_time_s: float
    backend: str
    devices: int
    device: dict
    num_examples: dict
    seq_len: int
    config: dict
    history: list
    resumed_from_epoch: int = 0
    divergences: list = field(default_factory=list)
    artifacts: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The fit

def fit_and_evaluate(config: TrainConfig, data: TrainingData, *, model=None, state: TrainingState | None = None,
                     callbacks=(), initial_epoch: int = 0, epochs: int | None = None, devices: int = 1,
                     on_divergence: str = "raise", verbose: int | None = None, announce=None) -> RunResult:
    """Fit ``config``'s model on ``data`` from ``initial_epoch`` to ``epochs``, then test its best epoch.

    Args:
        config: the resolved TrainConfig (epochs, divergence_factor, seed, verbose, ...).
        data: the splits (:func:`load_training_data`, or arrays).
        model: a compiled model to train (its weights and optimizer state as the caller left them);
            None: :func:`build_compiled_model`.
        state: the state of a resumed fit (updated in place); None: a fresh one.
        callbacks: extra Keras callbacks, run after the core's (divergence stop, epoch timer, record).
        initial_epoch, epochs: the epochs to run (``epochs`` None: ``config.epochs``).
        devices: devices the batch is split over (recorded in the result).
        on_divergence: "raise" (re-raise :class:`zoo.callbacks.TrainingDivergedError` after the fit, nothing
            evaluated) or "keep_best" (the best finished epoch is tested; ``result.diverged`` says what happened).
        verbose: None: ``config.verbose``; 0 silent, 1 Keras' progress bar, 2 one line per epoch
            (:class:`zoo.callbacks.EpochLine`).
        announce: called with a line before each phase that prints nothing of its own (the test evaluation).

    Returns:
        The :class:`RunResult`; the model holds the best epoch's weights (when any epoch finished).
    """
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"`on_divergence` must be one of {ON_DIVERGENCE}, got {on_divergence!r}.")
    start = time.perf_counter()
    epochs = config.epochs if epochs is None else int(epochs)
    verbose = config.verbose if verbose is None else verbose
    state = TrainingState() if state is None else state
    if model is None:
        model = build_compiled_model(config, data)
    build_time = time.perf_counter() - start
    guard, stop_on_divergence = divergence_callbacks(config.divergence_factor, state.divergence_reference)
    timer = EpochTimer(progress=state)
    # First the stop signal latch and the divergence stop (a diverged step reaches no later callback), then
    # the timer (its keys go into the record), the record, the caller's callbacks (a backup), and last the
    # latched stop signal's raise.
    fit_callbacks = [LatchStopRequest(), *stop_on_divergence, timer, EpochRecord(state, guard), *callbacks]
    # Short epoch lines: the timings stay in the history, not in the progress bar or the epoch line.
    if verbose == 1:
        fit_callbacks += [QuietEpochLogs(), keras.callbacks.ProgbarLogger()]
    elif verbose:
        fit_callbacks += [QuietEpochLogs(), EpochLine(print_fn=lambda line: print(line, flush=True))]
        verbose = 0
    fit_callbacks.append(StopAtStepBoundary())
    diverged = None
    first_epoch = initial_epoch
    if initial_epoch < epochs:
        try:
            with divergence_errors(guard), fit_scope():
                if state.epoch_step:  # a mid-epoch backup: the rest of its epoch first, then the later epochs
                    _fit(model, data, fit_callbacks, initial_epoch, initial_epoch + 1, verbose,
                         skip_steps=state.epoch_step)
                    initial_epoch += 1
                if initial_epoch < epochs:
                    _fit(model, data, fit_callbacks, initial_epoch, epochs, verbose)
        except TrainingDivergedError as err:
            err.event = dict(guard.event or {})  # what diverged where, for the caller's record
            if on_divergence == "raise":
                raise
            diverged = {**err.event, "message": str(err)}
    test = {}
    if state.best_weights is not None:
        model.set_weights(state.best_weights)
        if data.test is not None:
            if announce is not None:
                announce(f"testing the weights of the best epoch ({state.best[0]}) on the test split")
            test = _evaluate(model, data.test, data.batch_size)
    best, best_value = state.best
    params = count_parameters(model)
    return RunResult(
        task=config.task, preset=config.preset, model=config.model, eigenvalues=config.eigenvalue_mode,
        seed=config.seed,
        test_accuracy=test.get("accuracy"), test_loss=test.get("cross_entropy", test.get("loss")),
        majority_class_rate=data.test_majority_rate, best_val_accuracy=best_value, best_epoch=best,
        epochs_completed=len(state.history), diverged=diverged,
        params_trainable=params["trainable"], params_frozen=params["frozen"],
        frozen_fraction=params["frozen_fraction"], params_norm_statistics=params["statistics"],
        train_time_s=float(sum(row.get("train_time_s", 0.0) for row in state.history)),
        train_steps_per_second=timer.steps_per_second(), steps_per_epoch=data.steps_per_epoch,
        wall_time_s=time.perf_counter() - start, build_time_s=build_time, backend=keras.backend.backend(),
        devices=int(devices), device=device_info(), num_examples=data.num_examples, seq_len=int(data.info.seq_len),
        config=config.to_dict(), history=[dict(row) for row in state.history], resumed_from_epoch=int(first_epoch),
    )


def _fit(model, data, callbacks, initial_epoch, epochs, verbose, skip_steps: int = 0):
    if callable(data.train):
        model.fit(data.train(initial_epoch, epochs).skip(skip_steps), validation_data=data.val, epochs=epochs,
                  initial_epoch=initial_epoch, steps_per_epoch=data.steps_per_epoch - skip_steps,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    elif skip_steps:
        raise ValueError("A fit resumed inside an epoch needs `data.train` as a function of the epochs "
                         "(load_training_data); Keras shuffles array data itself.")
    else:
        x, y = data.train
        model.fit(x, y, validation_data=data.val, epochs=epochs, initial_epoch=initial_epoch,
                  batch_size=data.batch_size, shuffle=True, callbacks=callbacks, verbose=verbose)


def _evaluate(model, split, batch_size) -> dict:
    if isinstance(split, tuple):
        metrics = model.evaluate(*split, batch_size=batch_size, return_dict=True, verbose=0)
    else:
        metrics = model.evaluate(split, return_dict=True, verbose=0)
    return {k: float(v) for k, v in metrics.items()}
