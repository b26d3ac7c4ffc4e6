"""The fixed-versus-learned eigenvalue experiment: plan, run (resumably) and analyse paired zoo runs.

For every task, eigenvalue initialisation and seed, two zoo runs (:func:`zoo.runs.train`) are made that
differ only in ``trainable_eigenvalues``: "fixed" (the reservoir-computing setting: log_dt, Re a, Im a frozen;
C, D, B and every non-SSM weight still train) and "learned". Both use the same seed, so the same initial
weights (checked through a fingerprint of the initial weights) and the same data order.

Layout under the experiment's output directory::

    runs/<task>/<init>/seed<k>/<fixed|learned>/   one zoo run directory (config.json, history.csv,
                                                   results.json, best.keras, checkpoints/, ...)
        analysis.json    per-layer memory summaries at initialisation and after training, eigenvalue change,
                         initial-weight fingerprint (written by :func:`analyse_run`)
        analysis.npz     per-layer memory-function curves (H, T) and discrete eigenvalues (H, N/2), initial and
                         trained
    report.md, report.json, *.png                  the report (zoo.report)

A run is finished when its ``results.json`` exists; finished runs are never trained again (rerunning the
experiment only fills in what is missing), and a run whose analysis exists is not analysed again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from zoo import protocol
from zoo.analysis import analyse_models, task_delay, write_analysis
from zoo.callbacks import TrainingDivergedError
from zoo.cli_common import parse_set_overrides
from zoo.configs import INITS, MODELS, PRESETS, TASKS, TrainConfig, get_config
from zoo.data import load_task_arrays
from zoo.models import build_model, input_spec_from_info
from zoo.protocol import Experiment, RunRecord
from zoo.report import SETTINGS, write_report
from zoo.rundir import (
    ANALYSIS_ARRAYS_FILE,
    ANALYSIS_FILE,
    BEST_MODEL_FILE,
    CHECKPOINT_DIR,
    INITIAL_WEIGHTS_FILE,
    RESULTS_FILE,
    RUNS_DIR,
    read_json,
)
from zoo.runs import train

_RESULTS_FIX = "Delete it and rerun the same command: the run is evaluated again from its best.keras."
#: The tasks of ``python zoo/experiment.py fixed-vs-learned`` without --tasks.
DEFAULT_TASKS = ("listops", "digits", "delayed_recall", "delayed_recall_short")
#: Config keys that the experiment itself sets per run; overriding them would break the pairing.
EXPERIMENT_KEYS = ("task", "preset", "model", "init", "seed", "trainable_eigenvalues", "output_dir")


@dataclass(frozen=True)
class PlannedRun(protocol.PlannedRun):
    """One training run of the experiment: (task, init, seed, setting) and its resolved TrainConfig."""

    task: str
    init: str
    seed: int
    setting: str
    config: TrainConfig

    @property
    def finished(self) -> bool:
        """True when the run's results.json exists (the run trained to the end and was evaluated)."""
        return (self.run_dir / RESULTS_FILE).exists()

    @property
    def label(self) -> str:
        return f"{self.task}/{self.init}/seed{self.seed}/{self.setting}"


def run_directory(output_dir, task: str, init: str, seed: int, setting: str) -> Path:
    """``<output_dir>/runs/<task>/<init>/seed<seed>/<setting>``."""
    return Path(output_dir) / RUNS_DIR / task / init / f"seed{seed}" / setting


def resolve_seeds(seeds) -> tuple[int, ...]:
    """An int n >= 1 means seeds 0..n-1; otherwise a non-empty sequence of distinct ints >= 0."""
    if isinstance(seeds, bool):
        raise ValueError(f"`seeds` must be a positive int or a list of ints, got {seeds!r}.")
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"`seeds` must be >= 1 (the number of seeds), got {seeds}.")
        return tuple(range(int(seeds)))
    values = tuple(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in values):
        raise ValueError(f"`seeds` must be a positive int or a non-empty list of ints >= 0, got {seeds!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"`seeds` must not repeat a seed, got {values}.")
    return tuple(int(s) for s in values)


def plan_runs(tasks, seeds, *, preset: str = "quick", model: str = "s4d", inits=None, output_dir,
              overrides: dict | None = None, verbose: int = 2) -> list[PlannedRun]:
    """Every (task, init, seed, setting) run of the experiment, fixed before learned for each seed.

    Args:
        tasks: task names (zoo.configs.TASKS).
        seeds: number of seeds (0..n-1) or a list of seeds.
        preset: "quick", "small" or "full".
        model: a name of zoo.configs.MODELS ("s4d", "s4").
        inits: eigenvalue initialisations (zoo.configs.INITS without None); None = the model's default
            (the layer class's ``default_init``: "inv" for S4D, "legs" for S4), named explicitly so that run
            directories and tables say which it is.
        output_dir: the experiment directory; run ``k`` lives in :func:`run_directory`.
        overrides: TrainConfig fields applied to every run on top of the preset (``data_options`` entries
            are merged), e.g. ``{"epochs": 2, "data_dir": "..."}``. The keys in ``EXPERIMENT_KEYS`` are set
            by the experiment and are rejected here.
        verbose: Keras fit verbosity of each run (0, 1, 2).

    Raises:
        ValueError: unknown task, preset, model or init, bad seeds, or an override of an experiment key.
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("`tasks` must name at least one task.")
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"`tasks` entries must be one of {TASKS}, got {task!r}.")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"`tasks` must not repeat a task, got {tasks}.")
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {PRESETS}, got {preset!r}.")
    layer = MODELS.lookup(model)
    allowed_inits = tuple(i for i in INITS if i is not None)
    inits = (layer.default_init,) if inits is None else tuple(inits)
    if not inits or any(i not in allowed_inits for i in inits):
        raise ValueError(f"`inits` entries must be one of {allowed_inits}, got {inits!r}.")
    if len(set(inits)) != len(inits):
        raise ValueError(f"`inits` must not repeat an initialisation, got {inits}.")
    seeds = resolve_seeds(seeds)
    overrides = dict(overrides or {})
    reserved = sorted(set(overrides) & set(EXPERIMENT_KEYS))
    if reserved:
        raise ValueError(
            f"Override key(s) {reserved} are set by the experiment itself (use the experiment's own arguments: "
            f"tasks, preset, model, inits, seeds, output_dir)."
        )
    plan = []
    for task in tasks:
        for init in inits:
            for seed in seeds:
                for setting in SETTINGS:
                    config = get_config(task, preset, model=model, init=init, seed=seed,
                                        trainable_eigenvalues=setting == "learned", verbose=verbose,
                                        output_dir=str(run_directory(output_dir, task, init, seed, setting)))
                    if overrides:
                        config = config.replace(**overrides)
                    plan.append(PlannedRun(task=task, init=init, seed=seed, setting=setting, config=config))
    return plan


def run_experiment(plan, *, log=print) -> list[RunRecord]:
    """Train every unfinished run of ``plan`` (in order), then analyse every run that lacks its analysis.

    Finished runs (``results.json`` present) are skipped without loading data or building a model. A run
    that diverges (zoo.callbacks.TrainingDivergedError) is recorded as failed and the experiment goes on.

    Returns:
        One :class:`zoo.protocol.RunRecord` per planned run (status "trained", "skipped" or "failed").
    """
    records = []
    for index, run in enumerate(plan, start=1):
        prefix = f"[{index}/{len(plan)}] {run.label}"
        if run.finished:
            log(f"{prefix}: finished earlier, skipped ({run.run_dir / RESULTS_FILE})")
            status = "skipped"
        else:
            log(f"{prefix}: training in {run.run_dir}")
            try:
                train(run.config)
                status = "trained"
            except TrainingDivergedError as err:
                log(f"{prefix}: FAILED: {err}")
                records.append(RunRecord(run, "failed", error=str(err)))
                continue
        records.append(RunRecord(run, status, results=read_json(run.run_dir / RESULTS_FILE, _RESULTS_FIX),
                                 analysis=ensure_analysis(run)))
    return records


def collect_records(plan) -> list[RunRecord]:
    """Records of ``plan`` from the run directories alone (no training): unfinished runs are "missing"."""
    records = []
    for run in plan:
        if run.finished:
            records.append(RunRecord(run, "skipped", results=read_json(run.run_dir / RESULTS_FILE, _RESULTS_FIX),
                                     analysis=ensure_analysis(run)))
        else:
            records.append(RunRecord(run, "missing"))
    return records


def analyse_run(run: PlannedRun) -> dict:
    """Memory functions (finite horizon T = the task's sequence length: the state starts at zero with each
    sequence) and discrete eigenvalues of the run's initial weights and of its best model; writes
    ``analysis.json`` and ``analysis.npz`` into the run directory (zoo.analysis) and returns the analysis."""
    config, out = run.config, run.run_dir
    results = read_json(out / RESULTS_FILE, _RESULTS_FIX)
    _, info, _ = load_task_arrays(config.task, "test", data_dir=config.data_dir, cache_dir=config.cache_dir,
                                  **config.data_options)
    initial = build_model(config, input_spec_from_info(info))
    initial.load_weights(out / CHECKPOINT_DIR / INITIAL_WEIGHTS_FILE)
    trained = keras.saving.load_model(out / BEST_MODEL_FILE, compile=False)
    analysis, arrays = analyse_models(initial, trained, int(results["seq_len"]), task_delay(config))
    write_analysis(out, analysis, arrays)
    return analysis


def ensure_analysis(run: PlannedRun) -> dict:
    """The run's analysis.json, computed first if it is missing (or older than its results.json)."""
    path = run.run_dir / ANALYSIS_FILE
    arrays = run.run_dir / ANALYSIS_ARRAYS_FILE
    if (path.exists() and arrays.exists()
            and path.stat().st_mtime_ns >= (run.run_dir / RESULTS_FILE).stat().st_mtime_ns):
        return read_json(path, "Delete it and rerun: the analysis is recomputed.")
    return analyse_run(run)


# ---------------------------------------------------------------------------------------------
# The command line: python zoo/experiment.py fixed-vs-learned

class FixedVsLearned(Experiment):
    """``python zoo/experiment.py fixed-vs-learned`` (zoo.protocol): paired fixed / learned runs, zoo.report."""

    name = "fixed-vs-learned"
    group = "task, init and seed (its fixed and learned run)"

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog="python zoo/experiment.py [fixed-vs-learned]",
            epilog="Other experiments: python zoo/experiment.py memory-horizon --help, "
                   "python zoo/experiment.py longest-memory --help.",
            description=(
                "The paper's experiment: for each task, eigenvalue initialisation and seed, train the zoo model "
                "twice, with fixed eigenvalues (reservoir setting: dt and A frozen) and with learned ones, from the "
                "same initial weights and data order. Then write report.md, report.json and plots (validation "
                "curves, per-layer memory functions before/after training) into --output-dir and print the report. "
                "Each run lives in OUTPUT_DIR/runs/<task>/<init>/seed<k>/<fixed|learned>/ (a zoo run directory); "
                "finished runs are skipped on a rerun."
            ),
        )
        parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(DEFAULT_TASKS), metavar="TASK",
                            help=f"tasks to run, any of: {', '.join(TASKS)} (default: {' '.join(DEFAULT_TASKS)}). "
                                 "'digits' is the offline stand-in for 'image'; 'delayed_recall' (long lag, beyond "
                                 "the initial memory) and 'delayed_recall_short' (short lag) are the synthetic memory "
                                 "tasks.")
        parser.add_argument("--seeds", type=int, default=3,
                            help="number of seeds: seeds FIRST_SEED..FIRST_SEED+SEEDS-1 (default: 3).")
        parser.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0).")
        parser.add_argument("--preset", choices=PRESETS, default="quick",
                            help="zoo preset of every task: quick = minutes on a CPU, small = official '-small' "
                                 "sizes, full = published LRA sizes (default: quick).")
        parser.add_argument("--model", choices=MODELS, default="s4d", help="SSM layer: S4D or S4 (default: s4d).")
        parser.add_argument("--inits", nargs="+", choices=[i for i in INITS if i], default=None, metavar="INIT",
                            help=f"eigenvalue initialisations to compare, any of: {', '.join(i for i in INITS if i)} "
                                 "(default: the model's own, inv for s4d, legs for s4).")
        parser.add_argument("--output-dir", default=None,
                            help="experiment directory for the runs and the report "
                                 "(default: runs/experiment-<preset>-<model>).")
        parser.add_argument("--report-dir", default=None,
                            help="where report.md, report.json and the plots go (default: --output-dir), e.g. "
                                 "docs/results/<name> while the runs stay under runs/.")
        parser.add_argument("--epochs", type=int, default=None, help="override the presets' number of epochs.")
        parser.add_argument("--data-dir", default=None,
                            help="directory with official task files / prepared tfds data (see zoo.data; default: "
                                 "generated ListOps/Pathfinder, sklearn digits, generated delayed recall).")
        parser.add_argument("--cache-dir", default=None,
                            help="data cache (default: $KERAS_SSM_DATA or ~/.cache/keras_ssm/data).")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key for every run, VALUE parsed as JSON when possible, e.g. "
                                 "--set d_model=32 --set data_options.num_train=1000. Repeatable. The experiment's "
                                 "own keys (task, preset, model, init, seed, trainable_eigenvalues, output_dir) are "
                                 "refused.")
        parser.add_argument("--title", default=None,
                            help="report title (default: 'Fixed versus learned eigenvalues').")
        parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2,
                            help="Keras fit verbosity of each run: 2 = one line per epoch (default), 1 = progress "
                                 "bar, 0 = silent.")
        return parser

    def plan_from_args(self, args) -> list[PlannedRun]:
        if args.output_dir is None:
            args.output_dir = str(Path("runs") / f"experiment-{args.preset}-{args.model}")
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}.")
        if args.first_seed < 0:
            raise ValueError(f"--first-seed must be >= 0, got {args.first_seed}.")
        overrides = parse_set_overrides(args.set)
        for key, value in (("epochs", args.epochs), ("data_dir", args.data_dir), ("cache_dir", args.cache_dir)):
            if value is not None:
                overrides[key] = value
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        return plan_runs(args.tasks, seeds, preset=args.preset, model=args.model, inits=args.inits,
                         output_dir=args.output_dir, overrides=overrides, verbose=args.verbose)

    def group_key(self, run):
        return run.task, run.init, run.seed

    def run(self, plan) -> list[RunRecord]:
        return run_experiment(plan)

    def collect(self, plan) -> list[RunRecord]:
        return collect_records(plan)

    def report(self, records, report_dir, *, plan, command: str, version: str, args) -> dict:
        report = write_report(records, report_dir, command=command, title=args.title)
        return {**report, "failed": len(report["failed_runs"])}
