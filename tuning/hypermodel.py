"""KerasTuner HyperModel of a zoo task: the zoo's model, optimizer and data with the trial's SSM settings.

For a trial with values v = {dt_min, dt_max, init, trainable_eigenvalues, lr} (see
:mod:`tuning.space`), the model is ``zoo.models.build_model(base_config.replace(**v), info)`` compiled
with ``zoo.core.compile_model`` (SSMAdamW, warmup + cosine over ``epochs x steps_per_epoch`` steps,
SSM variables on ``ssm_lr`` without weight decay) and sparse categorical cross-entropy on logits;
the data are those of ``zoo.data.load_task`` for the base config (train with full batches, val). Epoch
e of every trial sees the training data in the order given by (seed, e) alone. A trial backs itself up in
``trial_<id>/checkpoints/`` (:class:`zoo.callbacks.RunBackup`: every epoch, every ``backup_every`` inside
epochs, and at a stop signal), so a trial rerun after a kill or a preemption (KerasTuner gives the
interrupted trial back) resumes at its last backup, at the exact step, and computes exactly what the
uninterrupted trial would have; the backup is deleted when the trial ends. The objective is
``val_accuracy``, best over the trial's epochs.

Before training, :meth:`SSMHyperModel.build` records the memory functions of the freshly initialised
SSM layers (``keras_ssm.memory.model_memory_functions`` with horizon ``min(seq_len,
memory_horizon)``) and their summaries (:func:`initial_memory_summary`) in the trial directory
(``trial_<id>/initial_memory.json``) and in the trial's metrics.

:meth:`SSMHyperModel.load_trained_model` rebuilds a finished trial's model from its best-epoch weights file,
optimizer state included (what ``tuning.search.best_model`` and the sweep tuners' ``get_best_models`` return).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras_tuner as kt
import numpy as np

from keras_ssm.devices import device_info
from keras_ssm.memory import MEMORY_LENGTH_FRACTION, memory_summary, model_memory_functions
from keras_ssm.memory.tracking import TRACKING_JSON, TRACKING_PLOT, plot_memory_tracking
from tuning.project import OBJECTIVE, trial_label
from tuning.space import SearchSpace
from zoo.callbacks import RunBackup, read_backup
from zoo.configs import TrainConfig
from zoo.core import TrainingData, TrainingState, build_compiled_model, fit_and_evaluate, load_training_data
from zoo.rundir import CHECKPOINT_DIR, INITIAL_MEMORY_FILE, write_json_atomic
from zoo.runs import memory_horizon, memory_tracker_callbacks


def initial_memory_summary(model, horizon: int, fraction: float = MEMORY_LENGTH_FRACTION) -> dict:
    """Memory-function summaries of every S4/S4D layer of ``model`` at ``horizon`` lags.

    Per layer (channel means, ``keras_ssm.memory.memory_summary``): capacity MC = sum_k MF(k),
    length = lag by which ``fraction`` of MC is reached, accuracy = mean MF over lags 0..length.

    Returns:
        {"horizon", "memory_capacity", "memory_length", "memory_accuracy" (means over all layers and
        channels; every layer has the same number of channels), "layers": {path: per-layer summary}}.
    """
    layers = {path: memory_summary(mf, fraction) for path, mf in model_memory_functions(model, horizon).items()}
    mean = lambda key: float(np.mean([summary[key] for summary in layers.values()]))  # noqa: E731
    return {
        "horizon": int(horizon),
        "memory_capacity": mean("capacity"),
        "memory_length": mean("length"),
        "memory_accuracy": mean("accuracy"),
        "layers": layers,
    }


def load_task_data(config: TrainConfig) -> TrainingData:
    """The train split (full batches, epoch e shuffled by (``config.seed``, e)) and val split of ``config``'s
    task, loaded once per sweep (``zoo.core.load_training_data`` without a test split)."""
    return load_training_data(config, test=False)


def trial_metrics(result) -> dict | None:
    """The metrics of the best epoch of a trial's ``zoo.core.RunResult`` (highest finite ``val_accuracy``,
    first on ties), with its 1-based ``best_epoch``; None when no epoch has one."""
    if result.best_epoch is None:
        return None
    row = next(r for r in result.history if int(r["epoch"]) + 1 == result.best_epoch)
    keep = ("val_accuracy", "val_loss", "accuracy", "loss")
    return {**{k: float(row[k]) for k in keep if k in row}, "best_epoch": result.best_epoch}


def is_best_epoch_saver(callback) -> bool:
    """Whether ``callback`` is the best-epoch weights saver KerasTuner adds to every trial's fit (its class is
    not exported; contract: tests/test_upstream_contracts.py)."""
    return (type(callback).__name__ == "SaveBestEpoch" and hasattr(callback, "best_value")
            and hasattr(callback, "filepath"))


class SSMHyperModel(kt.HyperModel):
    """A zoo task's SSM classifier with the sweep dimensions of ``space`` as hyperparameters.

    Args:
        base_config: the zoo TrainConfig every trial starts from (task, preset, sizes, epochs, seed).
        space: the :class:`tuning.space.SearchSpace`.
        data: preloaded ``zoo.core.TrainingData`` (default: loaded from ``base_config`` on first use).

    The sweep tuners (:mod:`tuning.search`) call :meth:`begin_trial` / :meth:`end_trial` around each
    trial so the initial memory summary lands in the trial's directory; outside a trial (KerasTuner
    discovering the space, ``get_best_models``) no memory functions are computed.
    """

    def __init__(self, base_config: TrainConfig, space: SearchSpace, data: TrainingData | None = None):
        super().__init__(name=f"{base_config.task}_{base_config.model}", tunable=True)
        self.base_config = base_config
        self.space = space
        self._data = data
        self._trial_dir = None
        self._initial_memory = None

    # -----------------------------------------------------------------------------------------
    def data(self) -> TrainingData:
        if self._data is None:
            self._data = load_task_data(self.base_config)
        return self._data

    def config_for(self, hp_values) -> TrainConfig:
        """The zoo TrainConfig of a trial with hyperparameter values ``hp_values``."""
        return self.base_config.replace(**self.space.values_for(hp_values))

    def load_trained_model(self, values, checkpoint):
        """The compiled model of a trial with config values ``values`` ({dt_min, dt_max, init,
        trainable_eigenvalues, lr}, :meth:`SearchSpace.values_for`), holding the weights and optimizer state
        of ``checkpoint`` (the trial's ``checkpoint.weights.h5``, saved by KerasTuner at its best epoch).

        The optimizer's variables are built before loading, so Keras loads the saved optimizer state (step,
        moments) instead of skipping it with a warning, as a plain ``load_weights`` into a freshly compiled
        model does.
        """
        model = build_compiled_model(self.base_config.replace(**values), self.data())
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint)
        return model

    def memory_horizon(self) -> int:
        return memory_horizon(self.base_config, self.data().info)

    def begin_trial(self, trial_dir) -> None:
        self._trial_dir = Path(trial_dir)
        self._initial_memory = None

    def end_trial(self) -> None:
        self._trial_dir = None
        self._initial_memory = None

    # -----------------------------------------------------------------------------------------
    def declare_hyperparameters(self, hp):
        """Put the space's hyperparameters (:meth:`SearchSpace.tuner_hyperparameters`) in the oracle's space."""
        hp.merge(self.space.tuner_hyperparameters())

    def build(self, hp):
        values = self.space.values_for(hp.values)
        config = self.base_config.replace(**values)
        model = build_compiled_model(config, self.data())
        if self._trial_dir is not None:
            self._initial_memory = initial_memory_summary(model, self.memory_horizon())
            record = {"values": values, "device": device_info(), **self._initial_memory}
            write_json_atomic(self._trial_dir / INITIAL_MEMORY_FILE, record)
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        """Train ``model`` on the task; returns the trial metrics (objective ``val_accuracy``).

        ``epochs``/``initial_epoch`` come from Hyperband (default: the config's epochs). A trial
        whose loss becomes NaN/inf or diverges (zoo DivergenceGuard) keeps its best finished epoch
        (``diverged = 1``); with no finished epoch it fails (``kt.errors.FailedTrialError``).

        Returns:
            {val_accuracy, val_loss, accuracy, loss (at the best epoch), best_epoch, epochs_run,
            diverged, train_time_s, initial_memory_capacity, initial_memory_length,
            initial_memory_accuracy}.
        """
        if args or set(kwargs) - {"verbose"}:
            raise TypeError(f"SSMHyperModel.fit takes no data arguments (the zoo loads the data); got "
                            f"{len(args)} positional and {sorted(set(kwargs) - {'verbose'})} keyword arguments.")
        config = self.config_for(hp.values)
        data = self.data()
        epochs = config.epochs if epochs is None else int(epochs)
        callbacks = list(callbacks or [])
        if initial_epoch:
            # Hyperband continues a trial from its checkpoint: resume the learning-rate schedule there.
            model.optimizer.build(model.trainable_variables)
            model.optimizer.iterations.assign(initial_epoch * data.steps_per_epoch)
        state, backup_dir = None, None
        if self._trial_dir is not None:
            backup_dir = self._trial_dir / CHECKPOINT_DIR
            backup = read_backup(backup_dir)
            state = TrainingState.from_backup(backup)
            if backup is not None:
                initial_epoch = int(backup["epoch"])
                self._resume_best_epoch(model, state, callbacks)
                print(f"{trial_label(self._trial_dir.name.removeprefix('trial_'))}: resuming from its backup at "
                      f"step {state.epoch_step} of epoch {initial_epoch + 1}", flush=True)
            callbacks.insert(0, RunBackup(backup_dir, run_state=state.backup_record, every=config.backup_every))
            callbacks[1:1] = memory_tracker_callbacks(config, self._trial_dir, data)  # after the backup it resumes
        result = fit_and_evaluate(config, data, model=model, state=state, callbacks=callbacks,
                                  initial_epoch=initial_epoch, epochs=epochs, on_divergence="keep_best")
        if backup_dir is not None:
            shutil.rmtree(backup_dir, ignore_errors=True)  # the trial ended: its record is trial.json
            if config.track_memory and (self._trial_dir / TRACKING_JSON).exists():
                plot_memory_tracking(self._trial_dir, self._trial_dir / TRACKING_PLOT)
        if result.diverged is not None and not result.epochs_completed:
            raise kt.errors.FailedTrialError(result.diverged["message"])
        metrics = trial_metrics(result)
        if metrics is None:
            raise kt.errors.FailedTrialError(f"no epoch produced a finite {OBJECTIVE}.")
        metrics.update(epochs_run=result.epochs_completed, diverged=float(result.diverged is not None),
                       train_time_s=result.wall_time_s)
        if self._initial_memory is not None:
            for key in ("memory_capacity", "memory_length", "memory_accuracy"):
                metrics[f"initial_{key}"] = self._initial_memory[key]
        return metrics

    @staticmethod
    def _resume_best_epoch(model, state, callbacks):
        """Before a resumed trial: the best epoch so far back in ``state.best_weights`` (from the weights file
        of KerasTuner's best-epoch callback), and that callback's best value, so that a worse epoch after the
        resume does not replace the best model (``best_value``/``filepath``: tests/test_upstream_contracts.py).
        The backup itself is loaded into the model when the fit starts."""
        _, best = state.best
        for callback in callbacks:
            if is_best_epoch_saver(callback) and best is not None:
                callback.best_value = best
                if Path(callback.filepath).exists():
                    model.load_weights(callback.filepath)
                    state.best_weights = model.get_weights()
