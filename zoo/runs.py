"""A zoo run directory: ``train(config) -> results`` (what ``python zoo/train.py TASK`` runs).

The fit itself is ``zoo.core.fit_and_evaluate``; this module adds the run-directory protocol around it
(plan, lock, resume, multi-process followers) and the files. A run writes into its output directory (``config.resolved_output_dir()``):

    config.json              the resolved TrainConfig
    history.csv              per-epoch metrics, one row per completed epoch
    tensorboard/             TensorBoard logs (when the tensorboard package is installed)
    best.keras               the model with the best validation accuracy (keras.callbacks.ModelCheckpoint)
    checkpoints/             the last backup (zoo.callbacks.RunBackup), of the last completed epoch or, with
                             backup_every or after a stop signal, of a step inside the next one:
                             training_metadata.json + epoch-<k>[-step-<s>].weights.h5 (weights and optimizer
                             state), and initial.weights.h5 (the weights before training)
    results.json             zoo.core.RunResult: test accuracy of the best epoch, history, parameter counts,
                             timing, majority-class rate, the artifacts
    training_curves.png      loss and accuracy per epoch
    memory_functions.png     per-layer memory functions before vs after training
    memory_tracking.*        with --track-memory N: eigenvalues, memory and gradient norms every N steps
                             (keras_ssm.MemoryTracker; .json, .npz and the .png of their trajectories)
    diverged.json            only after a divergence stop: where it diverged and which epoch is kept
    .lock                    while a process trains here: its pid and host (one writer per directory)

Rerunning the same command after an interruption resumes from the last backup (at the exact step of a
mid-epoch one), and the resumed run is bit-identical to one that never stopped (same backend and
machine): the backup holds the weights, the optimizer state, the epoch and step, the epoch's metric
accumulators, the dropout seed generators' state, the history and the divergence reference, and epoch
e's data order depends on (seed, e) alone. Every JSON and CSV file
is written atomically (``zoo.rundir``).

After a divergence stop, a rerun is refused unless ``resume_diverged`` (``--resume-diverged``) is
given; with it, ``lr``, ``ssm_lr`` and ``divergence_factor`` may differ from the stored config and
training continues from the last completed epoch. ``overwrite`` (``--overwrite``) loads the data and
builds the model of the new config first, and only then replaces the old run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_ssm.callbacks import MemoryTracker
from keras_ssm.devices import device_info
from keras_ssm.memory import model_memory_functions, plot_memory_comparison
from keras_ssm.memory.tracking import TRACKING_JSON, TRACKING_NPZ, TRACKING_PLOT, plot_memory_tracking
from zoo import check_data_parallel, report_devices
from zoo.callbacks import (
    BestModelCheckpoint,
    HistoryFile,
    RunBackup,
    TrainingDivergedError,
    read_backup,
    tensorboard_callback,
)
from zoo.configs import RUN_ONLY_FIELDS, TrainConfig
from zoo.core import (
    TrainingState,
    best_epoch,
    classification_loss,
    compile_model,
    fit_and_evaluate,
    load_training_data,
)
from zoo.data import load_task
from zoo.distributed import barrier, broadcast_flag, check_same_config, process_count, process_index
from zoo.models import build_model, count_parameters, input_spec_from_info
from zoo.rundir import (
    BEST_MODEL_FILE,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVES_FILE,
    DIVERGED_FILE,
    HISTORY_FILE,
    INITIAL_WEIGHTS_FILE,
    MEMORY_PLOT_FILE,
    RESULTS_FILE,
    TENSORBOARD_DIR,
    DamagedFileError,
    DirectoryLock,
    RunDirectoryError,
    directory_entries,
    display_path,
    read_json,
    save_weights_atomic,
    write_json_atomic,
)

# Fields that may also differ when a diverged run is continued (resume_diverged).
_DIVERGED_RESUME_CHANGES = ("lr", "ssm_lr", "divergence_factor")

__all__ = ["train", "load_run", "evaluate_run", "RunDirectoryError", "TrainingDivergedError", "read_history"]


@dataclass
class _Plan:
    """What the output directory holds and what this invocation does with it."""

    results: dict | None = None  # a finished run of the same config: returned as it is
    replace: bool = False  # clear the directory (after the new config and data are checked)
    backup: dict | None = None  # the backup to resume from
    diverged: dict | None = None  # the divergence record being continued (resume_diverged)
    notes: list = field(default_factory=list)  # lines to print once training starts


def train(config: TrainConfig, *, overwrite: bool = False, resume_diverged: bool = False, callbacks=()) -> dict:
    """Train ``config``'s model on its task, resuming from the output directory's backup if any.

    Args:
        config: the resolved TrainConfig.
        overwrite: replace a previous run in the output directory (after the new config's data load
            and model build succeed; nothing is deleted when they fail).
        resume_diverged: continue a run that stopped on divergence from its last completed epoch;
            ``lr``, ``ssm_lr`` and ``divergence_factor`` may then differ from the stored config.
        callbacks: extra Keras callbacks; they run after the backup (so they see the restored state
            in ``on_train_begin`` and the saved backup at each epoch end).

    Returns:
        The results dict written to ``results.json``. If the output directory already holds a
        finished run of the same config (and not ``overwrite``), its results are returned as they are.

    Raises:
        RunDirectoryError: the output directory holds another run, another process uses it, a file in
            it is damaged, or the run diverged and ``resume_diverged`` is not given.
        zoo.callbacks.TrainingDivergedError: the loss became NaN/inf or diverged (the message says which
            checkpoint is kept and how to continue).
        ValueError, FileNotFoundError: bad data options or missing data (before anything is written).
    """
    wall_start = time.perf_counter()
    check_environment(config)
    out = Path(config.resolved_output_dir())
    if process_count() > 1:
        check_same_config(_comparable(config.to_dict()))
        if process_index() > 0:
            return _train_as_follower(config, out, overwrite, resume_diverged, callbacks)
    with DirectoryLock(out, "run directory"):
        try:
            plan = _plan_run(out, config, overwrite, resume_diverged)
        except BaseException:
            broadcast_flag(False)  # the other processes stop too (multi-process runs)
            raise
        broadcast_flag(True)
        barrier("run directory copied")  # the followers have copied the backup (zoo.distributed)
        if plan.results is not None:
            _say(config, f"{display_path(out)} already holds the finished run; pass --overwrite to train again.\n"
                         + closing_block(plan.results, out))
            return plan.results
        with _distribution_scope(config):
            return _train(config, out, plan, wall_start, callbacks)


#: What a follower process copies from process 0's run directory before it trains (to resume alike).
_FOLLOWER_COPIES = (CONFIG_FILE, HISTORY_FILE, BEST_MODEL_FILE, RESULTS_FILE, DIVERGED_FILE, CHECKPOINT_DIR)


def _train_as_follower(config, out, overwrite, resume_diverged, callbacks):
    """Processes 1..N-1 of a multi-process run: the same steps as process 0, with their files in a private
    temporary directory seeded from process 0's run directory (which only process 0 writes)."""
    if not broadcast_flag(False):
        raise RunDirectoryError(f"process 0 could not use the run directory {out} (its error says why); this "
                                f"process {process_index()} stops with it.")
    # One scratch directory per (run directory, process): a follower killed earlier left its copy there,
    # which the rerun replaces instead of leaving it behind in the temporary directory.
    run_key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    scratch = str(Path(tempfile.gettempdir()) / f"keras_ssm-process{process_index()}-{run_key}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.mkdir(scratch, 0o700)
    try:
        if not overwrite:
            for name in _FOLLOWER_COPIES:
                source = out / name
                if source.is_dir():
                    shutil.copytree(source, Path(scratch) / name)
                elif source.is_file():
                    shutil.copy2(source, Path(scratch) / name)
        barrier("run directory copied")
        local = config.replace(output_dir=scratch, verbose=0)
        with DirectoryLock(scratch, "run directory"):
            plan = _plan_run(Path(scratch), local, overwrite, resume_diverged)
            if plan.results is not None:
                return plan.results
            with _distribution_scope(local):
                return _train(local, Path(scratch), plan, time.perf_counter(), callbacks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(config, out, plan, wall_start, extra_callbacks):
    keras.utils.set_random_seed(config.seed)
    device = report_devices(print_fn=lambda line: _say(config, line))  # backend, device model and count
    devices = _device_count(config)
    if config.batch_size % devices:
        raise ValueError(
            f"`batch_size` ({config.batch_size}) must be divisible by the number of devices ({devices}) "
            f"for --distribute data."
        )
    backup = plan.backup
    initial_epoch = int(backup["epoch"]) if backup else 0
    run_state = dict(backup["run"]) if backup else {}
    # Evaluation sees every example: under data parallelism its last batch is padded with zero-weight rows
    # (every process gets an equal, static share of every batch).
    if process_count() > 1:
        data = load_training_data(config, pad_evaluation=config.batch_size, static_padding=True)
    else:
        data = load_training_data(config, pad_evaluation=devices if devices > 1 else None)
    model = build_model(config, input_spec_from_info(data.info))
    compile_model(model, config, data.steps_per_epoch, padded_evaluation=devices > 1)

    # The new config and its data are good: only now is the directory changed.
    if plan.replace:
        clear_run_directory(out)
    write_json_atomic(out / CONFIG_FILE, config.to_dict())
    checkpoint_dir = out / CHECKPOINT_DIR
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if backup is None:
        save_weights_atomic(model, checkpoint_dir / INITIAL_WEIGHTS_FILE)
    if plan.diverged is None:
        (out / DIVERGED_FILE).unlink(missing_ok=True)  # a stale record (a later epoch completed)

    info, majority_rate = data.info, data.test_majority_rate
    _say(config, config.summary())
    for note in plan.notes:
        _say(config, note)
    _say(config, f"{config.task}: {info.num_examples} train / {data.val_info.num_examples} val / "
                 f"{data.test_info.num_examples} test examples, length {info.seq_len}, "
                 f"{info.num_classes} classes, test majority-class rate {majority_rate:.4f}")
    params = count_parameters(model)
    _say(config, f"parameters: {params['trainable']:,} trainable, {params['frozen']:,} frozen "
                 f"({100 * params['frozen_fraction']:.1f}%); {data.steps_per_epoch} steps/epoch on "
                 f"{devices} device(s)")
    _say(config, f"run directory: {display_path(out)} (every setting in {CONFIG_FILE}; "
                 f"python zoo/train.py ... --print-config shows them without training)")
    state = TrainingState.from_backup(backup)
    if initial_epoch or state.epoch_step:
        where = (f"at step {state.epoch_step} of epoch {initial_epoch + 1}" if state.epoch_step
                 else f"after epoch {initial_epoch}")
        _say(config, f"resuming from {checkpoint_dir / backup['weights']} {where}")

    divergences = list(run_state.get("divergences", []))
    if plan.diverged is not None:
        divergences.append(plan.diverged)
    previous_wall = float(run_state.get("wall_time_s", 0.0))
    if state.best[0] is not None and (out / BEST_MODEL_FILE).exists():  # the best epoch before the resume
        state.best_weights = keras.saving.load_model(out / BEST_MODEL_FILE, compile=False).get_weights()
    if initial_epoch < config.epochs:
        _say(config, f"training epochs {initial_epoch + 1}-{config.epochs} (the first step compiles the model: "
                     f"it takes longer)" + ("" if config.verbose == 1 else "; one line per epoch"))

    def backup_state():
        return {**state.backup_record(), "wall_time_s": previous_wall + time.perf_counter() - wall_start,
                "divergences": divergences}

    callbacks = [
        HistoryFile(out / HISTORY_FILE, state),
        BestModelCheckpoint(out / BEST_MODEL_FILE, monitor="val_accuracy", best=state.best[1]),
        *_tensorboard(out),
        # after the above: the backup records their state
        RunBackup(checkpoint_dir, run_state=backup_state, every=config.backup_every),
        *memory_tracker_callbacks(config, out, data),
        *extra_callbacks,
    ]
    try:
        with warnings.catch_warnings():
            if process_count() > 1:  # Keras cannot count the batches of a dataset sharded over processes
                warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
            result = fit_and_evaluate(config, data, model=model, state=state, callbacks=callbacks,
                                      initial_epoch=initial_epoch, devices=devices,
                                      announce=lambda line: _say(config, line))
    except TrainingDivergedError as err:
        raise TrainingDivergedError(_divergence_stop(config, out, str(err), err.event)) from None
    (out / DIVERGED_FILE).unlink(missing_ok=True)

    artifacts = {"config": CONFIG_FILE, "history": HISTORY_FILE, "best_model": BEST_MODEL_FILE,
                 "checkpoints": CHECKPOINT_DIR}
    if (out / TENSORBOARD_DIR).exists():
        artifacts["tensorboard"] = TENSORBOARD_DIR
    _say(config, f"plotting {CURVES_FILE} and {MEMORY_PLOT_FILE} (the memory functions of every SSM layer, "
                 f"initial and trained)")
    if plot_training_curves(out / HISTORY_FILE, out / CURVES_FILE, majority_rate=majority_rate,
                            title=curves_title(config)):
        artifacts["training_curves"] = CURVES_FILE
    if plot_memory_before_after(config, info, checkpoint_dir / INITIAL_WEIGHTS_FILE, model,
                                out / MEMORY_PLOT_FILE):
        artifacts["memory_functions"] = MEMORY_PLOT_FILE
    if config.track_memory and (out / TRACKING_JSON).exists():
        plot_memory_tracking(out, out / TRACKING_PLOT, title=f"How training moved the eigenvalues and the memory: "
                                                          f"{curves_title(config)}")
        artifacts.update(memory_tracking=TRACKING_JSON, memory_tracking_arrays=TRACKING_NPZ,
                         memory_tracking_plot=TRACKING_PLOT)
    result = dataclasses.replace(result, wall_time_s=previous_wall + time.perf_counter() - wall_start,
                                 divergences=divergences, device=device, artifacts=artifacts)
    results = result.to_dict()
    write_json_atomic(out / RESULTS_FILE, results)
    _say(config, closing_block(results, out))
    return results


def tracked_lags(length: int) -> list:
    """The lags a zoo run's memory tracking records: 1, 10, 100, ... below ``length``, and ``length - 1``."""
    lags = [10 ** p for p in range(int(np.log10(max(length - 1, 1))) + 1) if 10 ** p < length - 1]
    return lags + [length - 1] if length > 1 else [0]


def held_batch(data, batch_size: int) -> tuple:
    """(x, y) of the first validation batch of ``data`` (arrays or a dataset): the batch a memory tracker's
    gradients come from."""
    if isinstance(data.val, tuple):
        return data.val[0][:batch_size], data.val[1][:batch_size]
    return tuple(np.asarray(part) for part in next(iter(data.val))[:2])


def memory_tracker_callbacks(config, out, data) -> list:
    """[keras_ssm.MemoryTracker] when ``config.track_memory``: every that many steps, on the first validation
    batch; MF over twice the task's length (so the last lag of the sequence is not the window's edge)."""
    if not config.track_memory:
        return []
    x, y = held_batch(data, config.batch_size)
    length = int(data.info.seq_len)
    return [MemoryTracker(out, every=config.track_memory, unit="step", lags=tracked_lags(length), batch=(x, y),
                          horizon=2 * length, loss=classification_loss())]


def load_run(run_dir) -> tuple[keras.Model, TrainConfig]:
    """The best-validation model (``best.keras``) of a zoo run directory and the run's TrainConfig.

    Raises:
        RunDirectoryError: ``run_dir`` is not a run directory (no ``config.json``) or holds no
            ``best.keras`` yet (no epoch has finished).
    """
    out = Path(run_dir).expanduser()
    if not (out / CONFIG_FILE).is_file():
        raise RunDirectoryError(f"{out} is not a zoo run directory: it has no {CONFIG_FILE}. Give the directory "
                                f"that `python zoo/train.py` wrote (its --output-dir).")
    if not (out / BEST_MODEL_FILE).is_file():
        raise RunDirectoryError(f"{out} has no {BEST_MODEL_FILE} yet: no epoch of the run has finished. Train it "
                                f"first (rerunning its command resumes it).")
    config = TrainConfig.from_dict(read_json(out / CONFIG_FILE, "Restore it from a copy, or train the run again."))
    return keras.saving.load_model(out / BEST_MODEL_FILE, compile=False), config


def evaluate_run(run_dir, split: str = "test", *, batch_size: int | None = None) -> dict:
    """Evaluate a run's ``best.keras`` on a split of the run's own data (its config.json's task and
    data options).

    Returns ``{"run_dir", "task", "split", "accuracy", "loss", "examples", "majority_class_rate"}``.
    """
    model, config = load_run(run_dir)
    dataset, info = load_task(config.task, split, data_dir=config.data_dir, cache_dir=config.cache_dir,
                              batch_size=batch_size or config.batch_size, seed=config.seed, **config.data_options)
    model.compile(loss=classification_loss(), metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    metrics = model.evaluate(dataset, return_dict=True, verbose=0)
    return {"run_dir": str(run_dir), "task": config.task, "split": split, "accuracy": float(metrics["accuracy"]),
            "loss": float(metrics["loss"]), "examples": int(info.num_examples),
            "majority_class_rate": info.majority_rate}


def result_summary(results: dict) -> str:
    """One line with a finished run's result (test accuracy, majority-class rate, best validation
    accuracy and its epoch, wall time)."""
    best = results.get("best_val_accuracy")
    majority = results.get("majority_class_rate")
    return (f"test accuracy {results['test_accuracy']:.4f} (majority-class rate "
            f"{'n/a' if majority is None else f'{majority:.4f}'}), best val accuracy "
            f"{'n/a' if best is None else f'{best:.4f}'} at epoch {results.get('best_epoch')}, "
            f"wall time {results.get('wall_time_s', float('nan')):.0f} s")


#: What each file of a finished run holds, in the order the closing block lists them.
_ARTIFACT_WORDS = {
    "results": (RESULTS_FILE, "test accuracy, parameter counts, timings, device"),
    "best_model": (BEST_MODEL_FILE, "the best model by validation accuracy (keras.saving.load_model after import keras_ssm)"),
    "config": (CONFIG_FILE, "every resolved setting"),
    "history": (HISTORY_FILE, "loss and accuracy per epoch"),
    "training_curves": (CURVES_FILE, "the same as a plot"),
    "memory_functions": (MEMORY_PLOT_FILE, "each SSM layer's memory function, initial and trained"),
    "memory_tracking": (TRACKING_JSON, "memory length, MF(lags) and gradient norms per record (--track-memory)"),
    "memory_tracking_arrays": (TRACKING_NPZ, "the eigenvalues and per-channel memory of every record"),
    "memory_tracking_plot": (TRACKING_PLOT, "eigenvalue trajectories and memory over training"),
    "tensorboard": (TENSORBOARD_DIR + "/", "TensorBoard logs"),
    "checkpoints": (CHECKPOINT_DIR + "/", "the backup a rerun resumes from, and the initial weights"),
}


def closing_block(results: dict, out) -> str:
    """What a finished run prints last: its result, every file it wrote with what it holds, and the next commands."""
    shown = display_path(out)
    artifacts = {"results": RESULTS_FILE, **(results.get("artifacts") or {})}
    files = [_ARTIFACT_WORDS[key] for key in _ARTIFACT_WORDS if key in artifacts]
    width = max(len(name) for name, _ in files)
    lines = [f"Done: {result_summary(results)}", f"Files in {shown}/:"]
    lines += [f"  {name:<{width}}  {words}" for name, words in files]
    lines += ["Next:", f"  python zoo/train.py --evaluate {shown}   # test accuracy and loss of {BEST_MODEL_FILE}"]
    if "tensorboard" in artifacts:
        lines.append(f"  tensorboard --logdir {Path(shown) / TENSORBOARD_DIR}   # the curves in TensorBoard")
    if "memory_functions" in artifacts:
        lines.append(f"  python -m keras_ssm.memory --model {Path(shown) / BEST_MODEL_FILE}   # memory of the trained "
                     f"layers, as a table and a plot")
    return "\n".join(lines)


def _divergence_stop(config, out, description, event) -> str:
    """Record the divergence in diverged.json and return the full message: what is kept, what continues."""
    backup = read_backup(out / CHECKPOINT_DIR)
    lower = f"--lr {config.lr / 2:g} --ssm-lr {config.ssm_lr / 2:g}"
    if backup is not None:
        kept, step = int(backup["epoch"]), int(backup.get("batch", 0))
        where = f"step {step} of epoch {kept + 1}" if step else f"epoch {kept}"
        best, _ = best_epoch(backup["run"].get("history", []))
        write_json_atomic(out / DIVERGED_FILE, {**event, "message": description, "checkpoint_epoch": kept,
                                                "checkpoint_step": step, "lr": config.lr, "ssm_lr": config.ssm_lr})
        best_model = f" and best.keras (epoch {best})" if best is not None else ""
        return (f"{description} Kept: the backup of {where} (the last one before the divergence) in "
                f"{out / CHECKPOINT_DIR}{best_model}. Rerunning the same command refuses to continue from a "
                f"diverged run; to continue from {where} with a lower learning rate, add --resume-diverged "
                f"{lower}; to start over, add --overwrite.")
    return (f"{description} No epoch finished, so no checkpoint is kept. Rerun with a lower learning rate, "
            f"e.g. {lower}: the run starts afresh.")


def _plan_run(out: Path, config: TrainConfig, overwrite: bool, resume_diverged: bool) -> _Plan:
    """Decide from the directory's contents: fresh start, resume, finished, or refuse (RunDirectoryError)."""
    entries = directory_entries(out)
    if not entries:
        return _Plan()
    config_path = out / CONFIG_FILE
    if not config_path.exists():
        raise RunDirectoryError(
            f"Output directory {out} is not empty and holds no {CONFIG_FILE}: choose another --output-dir."
        )
    if overwrite:
        return _Plan(replace=True, notes=[f"--overwrite: replacing the previous run in {out}."])
    fix = "Rerun with --overwrite to replace the run, or choose another --output-dir."
    stored = read_json(config_path, fix)
    backup = read_backup(out / CHECKPOINT_DIR)
    finished = (out / RESULTS_FILE).exists()
    if backup is None and not finished:
        # Nothing was trained (a failed or killed start): the new command simply starts afresh.
        notes = []
        if _comparable(stored) != _comparable(config.to_dict()):
            notes.append(f"{out} holds a run that completed no epoch: starting the new config afresh.")
        return _Plan(replace=True, notes=notes)
    diverged = None
    if (out / DIVERGED_FILE).exists() and not finished:
        diverged = read_json(out / DIVERGED_FILE, f"Delete it to resume the run as it is. {fix}")
        if ((int(diverged.get("checkpoint_epoch", -1)), int(diverged.get("checkpoint_step", 0)))
                != (int(backup["epoch"]), int(backup.get("batch", 0)))):
            diverged = None  # a later epoch completed since (the run was continued): the record is stale
    allowed = _DIVERGED_RESUME_CHANGES if (diverged is not None and resume_diverged) else ()
    diff = {k: (stored.get(k), v) for k, v in config.to_dict().items()
            if k not in RUN_ONLY_FIELDS and k not in allowed and stored.get(k) != v}
    diff.update({k: (v, None) for k, v in stored.items() if k not in config.to_dict()})
    if diff:
        hint = (" Only lr, ssm_lr and divergence_factor may change, and only with --resume-diverged after a "
                "divergence stop." if any(k in _DIVERGED_RESUME_CHANGES for k in diff) else "")
        raise RunDirectoryError(
            f"Output directory {out} holds a run with a different config (stored vs now: {diff}).{hint} "
            f"Pass --overwrite to replace it, or choose another --output-dir."
        )
    if finished:
        return _Plan(results=read_json(out / RESULTS_FILE, "Rerun with --overwrite to train it again."))
    if diverged is not None and not resume_diverged:
        raise RunDirectoryError(
            f"The run in {out} stopped on divergence ({diverged.get('message', 'see ' + DIVERGED_FILE)}); "
            f"its backup of epoch {backup['epoch']} would diverge the same way. To continue from it, rerun with "
            f"--resume-diverged and a lower learning rate (--lr / --ssm-lr); to start over, use --overwrite."
        )
    notes = []
    if diverged is not None:
        changed = {k: (stored.get(k), getattr(config, k)) for k in _DIVERGED_RESUME_CHANGES
                   if stored.get(k) != getattr(config, k)}
        diverged = {**diverged, "changed": changed}
        notes.append(f"--resume-diverged: continuing from epoch {backup['epoch']} with "
                     f"{changed or 'the same settings'}.")
    return _Plan(backup=backup, diverged=diverged, notes=notes)


def clear_run_directory(out: Path) -> None:
    """Delete every entry of the run directory ``out`` except its lock (and the directory itself)."""
    for entry in directory_entries(out):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ---------------------------------------------------------------------------------------------
def _say(config, message):
    if config.verbose:
        print(message, flush=True)


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in RUN_ONLY_FIELDS}



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


def _tensorboard(out):
    callback = tensorboard_callback(out / TENSORBOARD_DIR)
    if callback is None:
        print("The tensorboard package is not installed (pip install keras-ssm[data]): no TensorBoard logs.",
              flush=True)
        return []
    return [callback]


# ---------------------------------------------------------------------------------------------
def read_history(path) -> dict:
    """history.csv -> {column: numpy array}; duplicated epochs (files of older versions) keep the last.

    Raises:
        DamagedFileError: the file is not a history (no ``epoch`` column, a non-integer epoch); the message
            names the file.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for line, row in enumerate(rows, start=2):
        try:
            by_epoch[int(row["epoch"])] = row
        except (KeyError, TypeError, ValueError):
            raise DamagedFileError(
                f"{path} is damaged: line {line} has no integer epoch ({row.get('epoch')!r}). It is rewritten "
                f"from the backup when the run resumes; for a finished run, restore it or rerun with --overwrite."
            ) from None
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


def plot_training_curves(history_path, path, majority_rate=None, title=None) -> bool:
    """Loss and accuracy (train and validation) per epoch from history.csv into a PNG, under ``title``
    (e.g. task, model, fixed/learned eigenvalues), with whole-epoch ticks; False if no data."""
    history = read_history(history_path) if Path(history_path).exists() else {}
    if not history or "epoch" not in history:
        return False
    epochs = history["epoch"] + 1
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
        if metric == "accuracy" and majority_rate is not None:
            ax.axhline(majority_rate, color="gray", linestyle="--", linewidth=1, label="majority class (test)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def curves_title(config) -> str:
    """Title of a run's plots: task, preset, model, fixed or learned eigenvalues, seed."""
    return (f"{config.task} ({config.preset} preset), {config.model.upper()}, "
            f"{config.eigenvalue_mode} eigenvalues, seed {config.seed}")


def memory_horizon(config, info) -> int:
    """Lags of the memory-function plots: the task's sequence length, at most ``config.memory_horizon``."""
    return int(min(info.seq_len, config.memory_horizon))


def plot_memory_before_after(config, info, initial_weights_path, trained_model, path) -> bool:
    """Memory functions of the initial weights vs the trained model, one panel per SSM layer (PNG).

    The curves are the time-averaged MF of the paper (the state in its stationary regime:
    ``infinite_horizon=True``), over lags 0..memory_horizon-1. The finite-window MF of a state started at
    zero would instead rise again at the last lags of slow layers (the oldest inputs have no older ones to
    be confused with), an edge effect of the window rather than memory.
    """
    if not Path(initial_weights_path).exists():
        return False
    initial_model = build_model(config, input_spec_from_info(info))
    initial_model.load_weights(initial_weights_path)
    horizon = memory_horizon(config, info)
    before = model_memory_functions(initial_model, horizon=horizon, infinite_horizon=True)
    after = model_memory_functions(trained_model, horizon=horizon, infinite_horizon=True)
    plot_memory_comparison(
        {"initial": before, "trained": after}, path,
        title=f"Memory of each SSM layer before and after training: {curves_title(config)}",
        caption=("MF(k): the share of the input from k steps back that the best linear readout of the layer's "
                 "state recovers (1: all of it, 0: none); time-averaged (stationary state, as in the paper). "
                 f"Lags 0-{horizon - 1}: the smaller of the sequence length ({info.seq_len}) and "
                 f"memory_horizon ({config.memory_horizon})."))
    return True
