"""End-to-end zoo training: ``train(config) -> results`` (what ``python zoo/train.py TASK`` runs).

A run writes into its output directory (``config.resolved_output_dir()``):

    config.json              the resolved TrainConfig
    history.csv              per-epoch metrics (CSVLogger, appended across resumes)
    tensorboard/             TensorBoard logs (when the tensorboard package is installed)
    best.keras               the model with the best validation accuracy
    checkpoints/             state.json + epoch-<k>.weights.h5 (weights and optimizer state) for resuming,
                             initial.weights.h5 (the weights before training)
    results.json             test accuracy of best.keras, parameter counts, timing, majority-class rate
    training_curves.png      loss and accuracy per epoch
    memory_functions.png     per-layer memory functions before vs after training

Rerunning the same command after an interruption resumes from the last completed epoch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from zoo.callbacks import (
    DivergenceGuard,
    EpochTimer,
    RunCheckpoint,
    read_checkpoint_state,
    tensorboard_callback,
)
from keras_ssm.devices import check_data_parallel, device_info, report_devices
from keras_ssm.memory import model_memory_functions, plot_memory_comparison
from zoo.configs import TrainConfig
from zoo.models import build_model, count_parameters, input_spec_from_info
from zoo.optim import make_optimizer

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
BEST_MODEL_FILE = "best.keras"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"
INITIAL_WEIGHTS_FILE = "initial.weights.h5"
CURVES_FILE = "training_curves.png"
MEMORY_PLOT_FILE = "memory_functions.png"

# Fields that may differ between the run in a directory and a resuming invocation.
_RESUME_INDEPENDENT = ("output_dir", "verbose", "data_dir", "cache_dir")


class RunDirectoryError(ValueError):
    """The output directory holds a different run (or is not a run directory) and cannot be reused."""


def train(config: TrainConfig, *, overwrite: bool = False, callbacks=()) -> dict:
    """Train ``config``'s model on its task, resuming from the output directory's checkpoint if any.

    Args:
        config: the resolved TrainConfig.
        overwrite: delete a previous run in the output directory and start afresh.
        callbacks: extra Keras callbacks (run after the checkpoint callback).

    Returns:
        The results dict written to ``results.json``. If the output directory already holds a
        finished run of the same config (and not ``overwrite``), its results are returned as they are.

    Raises:
        RunDirectoryError: the output directory holds a run of a different config.
        zoo.callbacks.TrainingDivergedError: the loss became NaN/inf or diverged.
    """
    wall_start = time.perf_counter()
    check_environment(config)
    out = Path(config.resolved_output_dir())
    previous = _prepare_output_dir(out, config, overwrite)
    if previous is not None:
        _say(config, f"{out} already holds the finished run; pass --overwrite to train again.")
        return previous

    with _distribution_scope(config):
        return _train(config, out, wall_start, callbacks)


def _train(config, out, wall_start, extra_callbacks):
    from zoo.data import load_task

    keras.utils.set_random_seed(config.seed)
    device = report_devices(print_fn=lambda line: _say(config, line))  # backend, device model and count
    devices = _device_count(config)
    if config.batch_size % devices:
        raise ValueError(
            f"`batch_size` ({config.batch_size}) must be divisible by the number of devices ({devices}) "
            f"for --distribute data."
        )
    common = dict(data_dir=config.data_dir, cache_dir=config.cache_dir, batch_size=config.batch_size,
                  seed=config.seed, **config.data_options)
    # Training batches all have the full batch size (one compiled train step, even device shards);
    # evaluation sees every example (last batch padded with zero-weight rows under data parallelism).
    train_ds, train_info = load_task(config.task, "train", drop_remainder=True, **common)
    val_ds, val_info = load_task(config.task, "val", **common)
    test_ds, test_info = load_task(config.task, "test", **common)
    if devices > 1:
        val_ds, test_ds = pad_batches(val_ds, devices), pad_batches(test_ds, devices)
    majority_rate = max(test_info.class_counts) / sum(test_info.class_counts)
    steps_per_epoch = train_info.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The {config.task} train split has {train_info.num_examples} examples, fewer than one batch "
            f"of {config.batch_size}."
        )

    model = build_model(config, input_spec_from_info(train_info))
    params = count_parameters(model)
    checkpoint_dir = out / CHECKPOINT_DIR
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = read_checkpoint_state(checkpoint_dir)
    if state is None:
        model.save_weights(checkpoint_dir / INITIAL_WEIGHTS_FILE)

    compile_model(model, config, steps_per_epoch)
    initial_epoch = 0
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint_dir / state["weights"])
        initial_epoch = int(state["epoch"])

    _say(config, str(config))
    _say(config, f"{config.task}: {train_info.num_examples} train / {val_info.num_examples} val / "
                 f"{test_info.num_examples} test examples, length {train_info.seq_len}, "
                 f"{train_info.num_classes} classes, test majority-class rate {majority_rate:.4f}")
    _say(config, f"parameters: {params['trainable']:,} trainable, {params['frozen']:,} frozen "
                 f"({100 * params['frozen_fraction']:.1f}%); {steps_per_epoch} steps/epoch on "
                 f"{devices} device(s); output {out}")
    if initial_epoch:
        _say(config, f"resuming from {checkpoint_dir / state['weights']} after epoch {initial_epoch} "
                     f"(optimizer step {int(model.optimizer.iterations.numpy())})")

    timer = EpochTimer()
    checkpoint = RunCheckpoint(checkpoint_dir, out / BEST_MODEL_FILE, monitor="val_accuracy",
                               initial_state=state, wall_clock_start=wall_start)
    callbacks = [
        DivergenceGuard(config.divergence_factor, checkpoint_hint=str(checkpoint_dir)),
        timer,
        keras.callbacks.CSVLogger(str(out / HISTORY_FILE), append=True),
        *_tensorboard(out),
        checkpoint,
        *extra_callbacks,
    ]
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=config.verbose, shuffle=False)

    best_path = out / BEST_MODEL_FILE
    best = keras.saving.load_model(best_path)
    # Evaluate with the already compiled model holding the best weights (no second compilation).
    model.set_weights(best.get_weights())
    test_metrics = model.evaluate(test_ds, return_dict=True, verbose=0)
    artifacts = {"config": CONFIG_FILE, "history": HISTORY_FILE, "best_model": BEST_MODEL_FILE,
                 "checkpoints": CHECKPOINT_DIR}
    if (out / "tensorboard").exists():
        artifacts["tensorboard"] = "tensorboard"
    if plot_training_curves(out / HISTORY_FILE, out / CURVES_FILE, majority_rate=majority_rate):
        artifacts["training_curves"] = CURVES_FILE
    if plot_memory_before_after(config, train_info, checkpoint_dir / INITIAL_WEIGHTS_FILE, best,
                                out / MEMORY_PLOT_FILE):
        artifacts["memory_functions"] = MEMORY_PLOT_FILE

    final_state = read_checkpoint_state(checkpoint_dir) or {}
    results = {
        "task": config.task,
        "preset": config.preset,
        "model": config.model,
        "eigenvalues": config.eigenvalue_mode,
        "seed": config.seed,
        "test_accuracy": float(test_metrics["accuracy"]),
        "test_loss": float(test_metrics["loss"]),
        "majority_class_rate": majority_rate,
        "best_val_accuracy": float(checkpoint.best),
        "best_epoch": checkpoint.best_epoch,
        "epochs_completed": int(final_state.get("epoch", initial_epoch)),
        "resumed_from_epoch": initial_epoch,
        "params_trainable": params["trainable"],
        "params_frozen": params["frozen"],
        "frozen_fraction": params["frozen_fraction"],
        "params_norm_statistics": params["statistics"],
        "train_time_s": checkpoint.train_time_s,
        "train_steps_per_second": timer.steps_per_second(),
        "steps_per_epoch": steps_per_epoch,
        "wall_time_s": checkpoint.wall_time_s(),
        "backend": keras.backend.backend(),
        "devices": devices,
        "device": device,
        "num_examples": {"train": train_info.num_examples, "val": val_info.num_examples,
                         "test": test_info.num_examples},
        "seq_len": train_info.seq_len,
        "artifacts": artifacts,
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    _say(config, f"test accuracy {results['test_accuracy']:.4f} (majority-class rate {majority_rate:.4f}), "
                 f"best val accuracy {results['best_val_accuracy']:.4f} at epoch {results['best_epoch']}, "
                 f"wall time {results['wall_time_s']:.0f} s; results in {out / RESULTS_FILE}")
    return results


# ---------------------------------------------------------------------------------------------
def compile_model(model, config: TrainConfig, steps_per_epoch: int) -> None:
    """Compile ``model`` as every zoo run does: SSMAdamW with warmup + cosine over ``config.epochs *
    steps_per_epoch`` steps, cross-entropy on logits, accuracy."""
    model.compile(
        optimizer=make_optimizer(model, lr=config.lr, ssm_lr=config.ssm_lr, weight_decay=config.weight_decay,
                                 total_steps=config.epochs * steps_per_epoch,
                                 warmup_fraction=config.warmup_fraction),
        # Weighted, so that zero-weight padding rows (data parallel evaluation) do not count.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _say(config, message):
    if config.verbose:
        print(message, flush=True)


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in _RESUME_INDEPENDENT}


def _prepare_output_dir(out: Path, config: TrainConfig, overwrite: bool):
    """Create/validate the run directory; returns the stored results of a finished identical run."""
    config_path = out / CONFIG_FILE
    if out.exists() and any(out.iterdir()):
        if not config_path.exists():
            raise RunDirectoryError(
                f"Output directory {out} is not empty and holds no {CONFIG_FILE}: choose another --output-dir."
            )
        if overwrite:
            shutil.rmtree(out)
        else:
            stored = json.loads(config_path.read_text())
            current = json.loads(config.to_json())
            if _comparable(stored) != _comparable(current):
                diff = {k: (stored.get(k), current.get(k)) for k in set(stored) | set(current)
                        if k not in _RESUME_INDEPENDENT and stored.get(k) != current.get(k)}
                raise RunDirectoryError(
                    f"Output directory {out} holds a run with a different config (stored vs now: {diff}). "
                    f"Pass --overwrite to replace it, or choose another --output-dir."
                )
            if (out / RESULTS_FILE).exists():
                return json.loads((out / RESULTS_FILE).read_text())
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config.to_json())
    return None


def check_environment(config) -> None:
    """Raise ValueError when ``config`` cannot run here (data parallelism off the JAX backend)."""
    if config.distribute == "data" and keras.backend.backend() != "jax":
        raise ValueError(
            f"--distribute data needs the JAX backend (set KERAS_BACKEND=jax); the backend is "
            f"{keras.backend.backend()!r}."
        )


@contextlib.contextmanager
def _distribution_scope(config):
    if config.distribute is None:
        yield
        return
    _say(config, check_data_parallel(device_info()))  # one device: said so; mixed kinds: refused
    devices = keras.distribution.list_devices()
    with keras.distribution.DataParallel(devices=devices).scope():
        yield


def _device_count(config):
    if config.distribute is None:
        return 1
    return len(keras.distribution.list_devices())


def pad_batches(dataset, multiple):
    """Pad every batch of a tf.data (x, y) dataset to a multiple of ``multiple`` rows.

    Returns (x, y, sample_weight) batches where the padding rows repeat the first row and have weight
    0, so weighted metrics (accuracy) count only real examples while every batch splits evenly over
    ``multiple`` devices.
    """
    import tensorflow as tf

    def pad(x, y):
        size = tf.shape(y)[0]
        extra = (-size) % multiple
        index = tf.concat([tf.range(size), tf.zeros([extra], tf.int32)], axis=0)
        weight = tf.concat([tf.ones([size], tf.float32), tf.zeros([extra], tf.float32)], axis=0)
        take = lambda t: tf.gather(t, index)  # noqa: E731
        x = tuple(take(t) for t in x) if isinstance(x, tuple) else take(x)
        return x, take(y), weight

    return dataset.map(pad)


def _tensorboard(out):
    callback = tensorboard_callback(out / "tensorboard")
    if callback is None:
        print("The tensorboard package is not installed (pip install keras-ssm[data]): no TensorBoard logs.",
              flush=True)
        return []
    return [callback]


# ---------------------------------------------------------------------------------------------
def read_history(path) -> dict:
    """history.csv -> {column: numpy array}; duplicated epochs (a re-run epoch after a resume) keep the last."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        by_epoch[int(row["epoch"])] = row
    epochs = sorted(by_epoch)
    columns = {}
    for key in (rows[0].keys() if rows else ()):
        values = []
        for epoch in epochs:
            try:
                values.append(float(by_epoch[epoch][key]))
            except (TypeError, ValueError):
                values.append(np.nan)
        columns[key] = np.asarray(values)
    return columns


def plot_training_curves(history_path, path, majority_rate=None) -> bool:
    """Loss and accuracy (train and validation) per epoch from history.csv into a PNG; False if no data."""
    history = read_history(history_path) if Path(history_path).exists() else {}
    if not history or "epoch" not in history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history["epoch"] + 1
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
        if metric == "accuracy" and majority_rate is not None:
            ax.axhline(majority_rate, color="gray", linestyle="--", linewidth=1, label="majority class (test)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def memory_horizon(config, info) -> int:
    """Lags of the memory-function plots: the task's sequence length, at most ``config.memory_horizon``."""
    return int(min(info.seq_len, config.memory_horizon))


def plot_memory_before_after(config, info, initial_weights_path, trained_model, path) -> bool:
    """Memory functions of the initial weights vs the trained model, one panel per SSM layer (PNG)."""
    if not Path(initial_weights_path).exists():
        return False
    initial_model = build_model(config, input_spec_from_info(info))
    initial_model.load_weights(initial_weights_path)
    horizon = memory_horizon(config, info)
    before = model_memory_functions(initial_model, horizon=horizon)
    after = model_memory_functions(trained_model, horizon=horizon)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_memory_comparison({"initial": before, "trained": after}, path,
                                 title=f"{config.task} ({config.model}, {config.eigenvalue_mode} eigenvalues)")
    plt.close(fig)
    return True
