"""Running a resumable KerasTuner sweep of a zoo task (what ``python tuning/sweep.py`` does).

A sweep lives in ``<directory>/<project_name>/``:

    sweep.json                  task, preset, tuner, base TrainConfig, search space and device of the sweep
    oracle.json, tuner0.json    KerasTuner state (trials run, sampler state)
    trial_<id>/trial.json       KerasTuner's record of a trial: hyperparameters, metrics, status
    trial_<id>/initial_memory.json   the trial's config values, device and initial memory summaries
    trial_<id>/checkpoint.weights.h5 weights at the trial's best epoch
    results.csv, results.md, results.png, best.json   the report (tuning.report)
    .lock                       while a sweep runs here: its pid and host (one sweep per project)

Rerunning the same sweep resumes it: KerasTuner reloads the project (``overwrite=False``), keeps every
finished trial, reruns a trial that was interrupted from its start (which gives exactly the
uninterrupted trial's result: same initial weights, and epoch e's data order depends on (seed, e)
alone), and runs the remaining ones up to ``max_trials`` (which may be raised on a rerun). A sweep with
a different task, base config, search space or tuner in the same project is refused;
``overwrite=True`` loads the data first and only then deletes the project and starts over. A second
process on the same project is refused (``zoo.rundir.DirectoryLock``). Every JSON file of the project,
KerasTuner's oracle.json, tuner0.json and trial.json included, is written atomically, and a damaged
one is named in a :class:`SweepProjectError` before any trial runs.

The console names trials as KerasTuner does, ``Trial #<n>`` counting from 1 (folder ``trial_<n-1>``): a table
of the trial's values (the dimensions a user sets: ``dt_max``, not the tuner's ``dt_max_position``) when it
starts, and a summary line and the best result so far when it ends (``tuning.report.trial_table``,
``trial_summary_line``). :func:`best_model` returns the best trial's trained model.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras_tuner as kt

from tuning.distributed import (
    DEFAULT_CONNECT_TIMEOUT,
    ID_ENV,
    distributed_role,
    is_worker,
    oracle_exposure_warning,
    wait_for_chief,
)
from tuning.hypermodel import SSMHyperModel
from tuning.project import OBJECTIVE, SWEEP_FILE, TRIAL_CHECKPOINT_FILE, TUNERS, SweepProjectError, \
    default_project_name, prepare_project, stored_sweep_difference, sweep_description, trial_folder, trial_label
from tuning.report import best_so_far_line, collect_trials, ranked, trial_summary_line, trial_table, write_report
from tuning.screen import MAX_SCREENED_IN_A_ROW, MemoryScreen, check_screen_arguments
from tuning.space import SearchSpace
from zoo import report_devices
from zoo.analysis import task_delay
from zoo.configs import TrainConfig
from zoo.core import TrainingData
from zoo.rundir import DirectoryLock, directory_entries, display_path, write_json_atomic

WORKERS_DIR = "workers"  # workers/<tuner id>/.lock: one process per worker id of a distributed sweep


class _AtomicOracleMixin:
    """A KerasTuner oracle whose oracle.json and trial.json files are written atomically (zoo.rundir).

    KerasTuner has no public hook for how these files are written: ``_save_trial`` is overridden and
    ``_get_oracle_fname`` / ``_get_trial_dir`` name the files, as KerasTuner's reload reads them
    (checked against the installed KerasTuner by tests/test_upstream_contracts.py).
    """

    def save(self):
        write_json_atomic(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        write_json_atomic(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state())


class AtomicRandomSearchOracle(_AtomicOracleMixin, kt.oracles.RandomSearchOracle):
    pass


class AtomicBayesianOptimizationOracle(_AtomicOracleMixin, kt.oracles.BayesianOptimizationOracle):
    pass


class AtomicHyperbandOracle(_AtomicOracleMixin, kt.oracles.HyperbandOracle):
    pass


class ScreenedRandomSearchOracle(AtomicRandomSearchOracle):
    """Random search whose samples pass a :class:`tuning.screen.MemoryScreen` before they become trials.

    ``populate_space`` (KerasTuner's public extension point) samples as random search does and hands out the
    first sample that passes; each screened-out sample is recorded in :attr:`screened` (its values, lag, MF,
    threshold, reason, and the trial it preceded), kept in the oracle's state (``get_state``/``set_state``:
    ``oracle.json``), so a resumed sweep continues the same sample sequence and screens identically.
    Screened samples count toward ``max_trials``: a sweep draws ``max_trials`` samples and trains those that
    pass, so it draws the same samples as the same sweep without the screen (same seed) and trains a subset.
    """

    def __init__(self, *args, screen, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.screen, self.space, self.screened = screen, space, []
        self.stop_reason = None

    def _budget_spent(self) -> bool:
        return bool(self.max_trials) and len(self.trials) + len(self.screened) >= self.max_trials

    def populate_space(self, trial_id):
        for _ in range(MAX_SCREENED_IN_A_ROW):
            if self._budget_spent():
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            response = super().populate_space(trial_id)
            if response["status"] != kt.engine.trial.TrialStatus.RUNNING:
                return response
            start = time.perf_counter()
            record = self.screen.check(self.space.values_for(response["values"]))
            if record is None:
                return response
            record.update(sample=len(self.screened) + 1, before_trial=trial_label(trial_id),
                          screen_seconds=time.perf_counter() - start)
            self.screened.append(record)
            print(f"Screened out (not trained): {_describe_values(record['values'])}: {record['reason']}", flush=True)
            self.save()
        self.stop_reason = (f"{MAX_SCREENED_IN_A_ROW} samples in a row were screened out: the search space holds "
                            f"(almost) no trial whose MF({self.screen.lag}) reaches {self.screen.threshold:g}.")
        print(self.stop_reason, flush=True)
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    def get_state(self):
        return {**super().get_state(), "screened": self.screened}

    def set_state(self, state):
        super().set_state(state)
        self.screened = list(state.get("screened", []))


def _describe_values(values) -> str:
    return (f"init {values['init']}, dt [{values['dt_min']:.3g}, {values['dt_max']:.3g}], "
            f"{'learned' if values['trainable_eigenvalues'] else 'fixed'} eigenvalues, lr {values['lr']:.3g}")


class _SweepTunerMixin:
    """Tells the hypermodel which trial runs (for the initial memory file), prints each trial's table and
    summary, loads a trial's model with its optimizer state, and writes tuner0.json atomically. The tuners
    take their (atomic) oracle as an argument.

    KerasTuner's own trial display (the oracle's, which shows the tuner's ``dt_max_position``) is turned off
    with the public ``Oracle.verbose``; :meth:`on_trial_begin` and :meth:`on_trial_end` (public tuner hooks)
    print the same table and lines with the user's dimensions instead, on the process that trains the trial.
    """

    def __init__(self, oracle, hypermodel, **kwargs):
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.oracle.verbose = 0
        self._search_start = None

    def on_search_begin(self):
        super().on_search_begin()
        self._search_start = time.monotonic()

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        print(f"\n{trial_table(trial, self._best_trial(), self.hypermodel.space)}\n", flush=True)

    def _best_trial(self):
        """The best completed trial so far (the earlier one on ties), or None."""
        best = self.oracle.get_best_trials(1)
        return best[0] if best and best[0].status == kt.engine.trial.TrialStatus.COMPLETED else None

    def load_model(self, trial):
        """The trial's model with the weights and optimizer state of its best epoch (what ``get_best_models``
        returns; :meth:`SSMHyperModel.load_trained_model`)."""
        values = self.hypermodel.space.values_for(trial.hyperparameters.values)
        return self.hypermodel.load_trained_model(values, Path(self.get_trial_dir(trial.trial_id)) /
                                                  TRIAL_CHECKPOINT_FILE)

    def save(self):
        if not is_worker():  # a worker's oracle is the chief's, reached over gRPC
            self.oracle.save()
        write_json_atomic(self._get_tuner_fname(), self.get_state())  # the file KerasTuner's reload reads

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.begin_trial(self.get_trial_dir(trial.trial_id))
        try:
            return super().run_trial(trial, *args, **kwargs)
        finally:
            self.hypermodel.end_trial()

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner 1.4 imports the tensorboard package here on the tensorflow backend even when no
        # TensorBoard callback is passed; the sweep passes none, so only defer when there is one (no public
        # hook; contract: tests/test_upstream_contracts.py).
        if any(type(callback).__name__ == "TensorBoard" for callback in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        print(trial_summary_line(self.oracle.get_trial(trial.trial_id), self.hypermodel.space), flush=True)
        print(best_so_far_line(self._best_trial(), self._search_start), flush=True)


class RandomSweepTuner(_SweepTunerMixin, kt.RandomSearch):
    """kt.RandomSearch over an :class:`SSMHyperModel`."""


class BayesianSweepTuner(_SweepTunerMixin, kt.BayesianOptimization):
    """kt.BayesianOptimization (Gaussian process) over an :class:`SSMHyperModel`."""


class HyperbandSweepTuner(_SweepTunerMixin, kt.Hyperband):
    """kt.Hyperband over an :class:`SSMHyperModel` (max_epochs = the config's epochs)."""


def make_tuner(kind: str, hypermodel: SSMHyperModel, *, max_trials: int, directory, project_name: str,
               seed: int, max_consecutive_failures: int = 3, hyperband_factor: int = 3, screen=None):
    """The KerasTuner tuner ``kind`` ('random', 'bayesian', 'hyperband') maximising val_accuracy.

    The sampler's seed is ``seed + 1`` (KerasTuner treats a seed of 0 as "draw one at random").
    Hyperband's ``max_epochs`` is the base config's epochs; its trial count is capped at
    ``max_trials`` too. ``screen``: a :class:`tuning.screen.MemoryScreen` (random search only).
    """
    if kind not in TUNERS:
        raise ValueError(f"`tuner` must be one of {TUNERS}, got {kind!r}.")
    if screen is not None:
        check_screen_arguments(screen.threshold, kind, hypermodel.base_config)
    if not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"`max_trials` must be an integer >= 1, got {max_trials!r}.")
    oracle_args = dict(objective=kt.Objective(OBJECTIVE, direction="max"), seed=seed + 1,
                       max_consecutive_failed_trials=max_consecutive_failures)
    common = dict(hypermodel=hypermodel, directory=str(directory), project_name=project_name, overwrite=False)
    if kind == "random" and screen is not None:
        oracle = ScreenedRandomSearchOracle(max_trials=max_trials, screen=screen, space=hypermodel.space, **oracle_args)
        return RandomSweepTuner(oracle, **common)
    if kind == "random":
        return RandomSweepTuner(AtomicRandomSearchOracle(max_trials=max_trials, **oracle_args), **common)
    if kind == "bayesian":
        return BayesianSweepTuner(AtomicBayesianOptimizationOracle(max_trials=max_trials, **oracle_args), **common)
    oracle = AtomicHyperbandOracle(max_epochs=hypermodel.base_config.epochs, factor=hyperband_factor, **oracle_args)
    oracle.max_trials = max_trials  # Hyperband has no max_trials argument; the base Oracle honours it.
    return HyperbandSweepTuner(oracle, **common)


def stopped_for_failures(oracle) -> bool:
    """Whether ``oracle`` has ``max_consecutive_failed_trials`` FAILED trials in a row (in the order they ended):
    the state in which KerasTuner's ``Oracle.end_trial`` raises its RuntimeError that stops the search."""
    run = 0
    for trial_id in oracle.end_order:
        run = run + 1 if oracle.trials[trial_id].status == kt.engine.trial.TrialStatus.FAILED else 0
        if run == oracle.max_consecutive_failed_trials:
            return True
    return False


@dataclass
class SweepResult:
    project_dir: Path
    resumed: bool
    report: dict  # tuning.report.write_report's return value
    stopped_early: str | None = None  # why the search stopped before max_trials (consecutive failures)
    worker: str | None = None  # a distributed worker's tuner id (the chief writes the report; ``report`` is None)


def run_sweep(base_config: TrainConfig, space: SearchSpace, *, tuner: str = "random", max_trials: int = 10,
              directory="sweeps", project_name: str | None = None, overwrite: bool = False,
              max_consecutive_failures: int = 3, hyperband_factor: int = 3,
              data: TrainingData | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
              memory_screen: float | None = None) -> SweepResult:
    """Run (or resume) a sweep and write its report; see the module docstring for the files.

    Args:
        base_config: zoo TrainConfig every trial starts from (its seed seeds the model; the tuner's
            sampler uses seed + 1).
        space: the :class:`SearchSpace` (already validated).
        tuner: 'random', 'bayesian' or 'hyperband'.
        max_trials: total trials of the sweep, finished ones included.
        directory, project_name: where the sweep lives (default project name
            ``<task>-<preset>-<model>-<tuner>``).
        overwrite: replace an existing project (after the data loaded; nothing is deleted if it fails).
        max_consecutive_failures: stop after this many failed trials in a row (``stopped_early`` in the
            result says so; the report covers the trials run).
        hyperband_factor: Hyperband's reduction factor.
        data: preloaded task data (default: loaded from ``base_config``).
        connect_timeout: a distributed worker's wait for the chief, in seconds.
        memory_screen: a threshold in (0, 1] (``tuning.screen.DEFAULT_THRESHOLD`` is the calibrated one): skip
            the samples whose initial MF at the task's lag is below it (random search only; tuning.screen).
            Recorded in sweep.json: a resumed sweep or a worker with another screen is refused.

    Distributed (KerasTuner's chief/worker mode, set by its environment variables; tuning.distributed):
    the chief validates and locks the project, serves the oracle and writes the report over every
    worker's trials; a worker checks that the chief's sweep.json describes the same sweep, locks
    ``workers/<tuner id>/`` (one process per id) and runs the trials the chief hands out. The chief and
    the workers must see the same ``directory`` (a shared file system when on several machines).

    Raises:
        ValueError / SweepProjectError: invalid arguments, a project holding another sweep or a damaged
            file, or another process using the project, before any trial runs.
        ConnectionError: a worker could not reach the chief within ``connect_timeout``.
    """
    if tuner not in TUNERS:
        raise ValueError(f"`tuner` must be one of {TUNERS}, got {tuner!r}.")
    if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1:
        raise ValueError(f"`max_trials` must be an integer >= 1, got {max_trials!r}.")
    if memory_screen is not None:
        check_screen_arguments(memory_screen, tuner, base_config)
    project_name = project_name or default_project_name(base_config, tuner)
    project_dir = Path(directory) / project_name
    role = distributed_role()
    if role is not None and not role.is_chief:
        if overwrite:
            raise ValueError("--overwrite starts a sweep over: give it to the chief (or a single-process sweep), "
                             "not to a worker.")
        print(f"Worker {role.tuner_id!r}: waiting for the chief's oracle at {role.address} "
              f"(up to {connect_timeout:g} s).", flush=True)
        wait_for_chief(role, connect_timeout)
        with DirectoryLock(project_dir / WORKERS_DIR / role.tuner_id, "sweep worker"):
            return _run_worker(base_config, space, tuner, max_trials, directory, project_name, project_dir, role,
                               max_consecutive_failures, hyperband_factor, data, memory_screen)
    exposure = oracle_exposure_warning(role) if role is not None else None
    if exposure:
        print(exposure, file=sys.stderr, flush=True)
    with DirectoryLock(project_dir, "sweep project"):
        return _run_sweep(base_config, space, tuner, max_trials, directory, project_name, project_dir, overwrite,
                          max_consecutive_failures, hyperband_factor, data, role, memory_screen)


def _screen(hypermodel, threshold):
    """The sweep's MemoryScreen (None without one), from the task's data."""
    if threshold is None:
        return None
    config = hypermodel.base_config
    return MemoryScreen.for_task(config, int(hypermodel.data().info.seq_len), task_delay(config), threshold)


def _run_sweep(base_config, space, tuner, max_trials, directory, project_name, project_dir, overwrite,
               max_consecutive_failures, hyperband_factor, data, role, memory_screen=None):
    description = sweep_description(tuner, base_config, space, memory_screen)
    hypermodel = SSMHyperModel(base_config, space, data=data)
    resumed = prepare_project(project_dir, description, overwrite)

    description["device"] = report_devices()  # printed, and recorded in sweep.json
    task_data = hypermodel.data()  # bad data options or missing data fail here, before anything is deleted
    screen = _screen(hypermodel, memory_screen)
    if screen is not None:
        description["screen"] = screen.to_dict()
    description["val_majority_rate"] = task_data.val_majority_rate
    description["memory_horizon"] = hypermodel.memory_horizon()
    if overwrite:
        for entry in directory_entries(project_dir):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    write_json_atomic(project_dir / SWEEP_FILE, description)

    if role is not None:
        print(f"Chief {role.tuner_id!r}: serving the oracle at {role.address}; the workers train the trials "
              f"(start them with the same command and their own {ID_ENV}).", flush=True)
    print(f"{'Resuming' if resumed else 'Starting'} {tuner} sweep of {base_config.task} "
          f"(preset {base_config.preset}, {base_config.model}) in {display_path(project_dir)}: {max_trials} trials of "
          f"{base_config.epochs} epoch(s), objective {OBJECTIVE}.\nSearch space:\n{space.describe()}", flush=True)
    keras_tuner = make_tuner(tuner, hypermodel, max_trials=max_trials, directory=directory,
                             project_name=project_name, seed=base_config.seed,
                             max_consecutive_failures=max_consecutive_failures, hyperband_factor=hyperband_factor,
                             screen=screen)
    if screen is not None:
        print(f"Memory screen: a sample trains only if some channel's MF({screen.lag}) at initialisation is >= "
              f"{screen.threshold:g} (lag = {screen.lag_source}); screened-out samples count toward max_trials.",
              flush=True)
    stopped_early = None
    try:
        keras_tuner.search()
    except RuntimeError as err:
        if not stopped_for_failures(keras_tuner.oracle):
            raise
        stopped_early = str(err).strip().splitlines()[0]  # "Number of consecutive failures exceeded ..."
        # KerasTuner raises before writing the last failed trial's record: write it (status FAILED).
        for trial in keras_tuner.oracle.trials.values():
            if trial.status == kt.engine.trial.TrialStatus.FAILED:
                write_json_atomic(Path(keras_tuner.get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state())
    stopped_early = stopped_early or getattr(keras_tuner.oracle, "stop_reason", None)
    report = write_report(project_dir)
    return SweepResult(project_dir=project_dir, resumed=resumed, report=report, stopped_early=stopped_early)


def _run_worker(base_config, space, tuner, max_trials, directory, project_name, project_dir, role,
                max_consecutive_failures, hyperband_factor, data, memory_screen=None):
    """A distributed worker: the chief's sweep.json must describe this sweep; then train what the chief hands out."""
    if not (project_dir / SWEEP_FILE).exists():
        raise SweepProjectError(f"{project_dir} holds no {SWEEP_FILE}, which the chief writes before it serves: the "
                                f"workers must see the chief's --directory (the same path on a shared file system).")
    diff = stored_sweep_difference(project_dir, sweep_description(tuner, base_config, space, memory_screen))
    if diff:
        raise SweepProjectError(f"worker {role.tuner_id!r} was started for another sweep than the chief's "
                                f"({diff}); start it with the chief's arguments.")
    hypermodel = SSMHyperModel(base_config, space, data=data)
    hypermodel.data()
    keras_tuner = make_tuner(tuner, hypermodel, max_trials=max_trials, directory=directory,
                             project_name=project_name, seed=base_config.seed,
                             max_consecutive_failures=max_consecutive_failures, hyperband_factor=hyperband_factor,
                             screen=_screen(hypermodel, memory_screen))
    print(f"Worker {role.tuner_id!r}: connected to {role.address}; training trials of {display_path(project_dir)}.",
          flush=True)
    keras_tuner.search()
    return SweepResult(project_dir=project_dir, resumed=False, report=None, worker=role.tuner_id)


def best_model(project_dir, data: TrainingData | None = None):
    """The trained model of a sweep project's best trial (highest objective, the earlier trial on ties).

    Built and compiled as in its trial, with the weights and optimizer state of its best epoch
    (``trial_<id>/checkpoint.weights.h5``; :meth:`SSMHyperModel.load_trained_model`); its predictions are those
    the trial's objective was computed from. Reads the project's files alone: a finished, stopped or running
    sweep.

    Args:
        project_dir: the sweep's ``<directory>/<project_name>`` (``SweepResult.project_dir``).
        data: the task's preloaded data (default: loaded from the sweep's base config, as a trial does).

    Raises:
        SweepProjectError: not a sweep project, or no trial completed.
    """
    project_dir = Path(project_dir)
    description, rows = collect_trials(project_dir)
    done = ranked([row for row in rows if row.completed])
    if not done:
        raise SweepProjectError(f"{project_dir}: no trial completed, so there is no best model.")
    space = SearchSpace.from_json_dict(description["space"], source=str(project_dir / SWEEP_FILE))
    hypermodel = SSMHyperModel(TrainConfig.from_dict(description["base_config"]), space, data=data)
    return hypermodel.load_trained_model(done[0].values, project_dir / trial_folder(done[0].trial_id) /
                                         TRIAL_CHECKPOINT_FILE)
