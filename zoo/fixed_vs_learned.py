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

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_ssm.memory import find_ssm_layers, layer_memory_function, memory_summary
from zoo.configs import INITS, MODELS, PRESETS, TASKS, TrainConfig, get_config
from zoo.rundir import read_json, write_json_atomic

SETTINGS = ("fixed", "learned")
#: The layer's own default initialisation, named explicitly so run directories and tables say which it is.
DEFAULT_INIT = {"s4d": "inv", "s4": "legs"}
RUNS_DIR = "runs"
ANALYSIS_FILE = "analysis.json"
_RESULTS_FIX = "Delete it and rerun the same command: the run is evaluated again from its best.keras."
ANALYSIS_ARRAYS_FILE = "analysis.npz"
#: Config keys that the experiment itself sets per run; overriding them would break the pairing.
EXPERIMENT_KEYS = ("task", "preset", "model", "init", "seed", "trainable_eigenvalues", "output_dir")


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the experiment: (task, init, seed, setting) and its resolved TrainConfig."""

    task: str
    init: str
    seed: int
    setting: str
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def finished(self) -> bool:
        """True when the run's results.json exists (the run trained to the end and was evaluated)."""
        from zoo.runs import RESULTS_FILE

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
        model: "s4d" or "s4".
        inits: eigenvalue initialisations (zoo.configs.INITS without None); None = the model's default
            (``DEFAULT_INIT``: "inv" for S4D, "legs" for S4).
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
    if model not in MODELS:
        raise ValueError(f"`model` must be one of {MODELS}, got {model!r}.")
    allowed_inits = tuple(i for i in INITS if i is not None)
    inits = (DEFAULT_INIT[model],) if inits is None else tuple(inits)
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


def run_experiment(plan, *, log=print) -> list[dict]:
    """Train every unfinished run of ``plan`` (in order), then analyse every run that lacks its analysis.

    Finished runs (``results.json`` present) are skipped without loading data or building a model. A run
    that diverges (zoo.callbacks.TrainingDivergedError) is recorded as failed and the experiment goes on.

    Returns:
        One record per planned run: ``{"run": PlannedRun, "status": "trained" | "skipped" | "failed",
        "results": dict | None, "analysis": dict | None, "error": str | None}``.
    """
    from zoo.callbacks import TrainingDivergedError
    from zoo.runs import RESULTS_FILE, train

    records = []
    for index, run in enumerate(plan, start=1):
        prefix = f"[{index}/{len(plan)}] {run.label}"
        record = {"run": run, "status": None, "results": None, "analysis": None, "error": None}
        if run.finished:
            log(f"{prefix}: finished earlier, skipped ({run.run_dir / RESULTS_FILE})")
            record["status"] = "skipped"
        else:
            log(f"{prefix}: training in {run.run_dir}")
            try:
                train(run.config)
                record["status"] = "trained"
            except TrainingDivergedError as err:
                log(f"{prefix}: FAILED: {err}")
                record.update(status="failed", error=str(err))
                records.append(record)
                continue
        record["results"] = read_json(run.run_dir / RESULTS_FILE, _RESULTS_FIX)
        record["analysis"] = ensure_analysis(run)
        records.append(record)
    return records


def collect_records(plan) -> list[dict]:
    """Records of ``plan`` from the run directories alone (no training): unfinished runs are "missing"."""
    from zoo.runs import RESULTS_FILE

    records = []
    for run in plan:
        record = {"run": run, "status": "missing", "results": None, "analysis": None, "error": None}
        if run.finished:
            record.update(status="skipped", results=read_json(run.run_dir / RESULTS_FILE, _RESULTS_FIX),
                          analysis=ensure_analysis(run))
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------------
# Per-run analysis: memory functions and eigenvalues before and after training.

def task_delay(config: TrainConfig) -> int | None:
    """The recall lag of a delayed-recall task (its ``delay`` data option or default), else None."""
    from zoo.data import task_options

    defaults = task_options(config.task)
    if "delay" not in defaults:
        return None
    return int(config.data_options.get("delay", defaults["delay"]))


def weights_fingerprint(arrays) -> str:
    """Order-independent digest of a list of arrays: sha256 over the sorted sha256 digests of each
    array's dtype, shape and bytes. Equal for two models with identical weight values."""
    digests = sorted(
        hashlib.sha256(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()
        for a in (np.asarray(x) for x in arrays)
    )
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def memory_layer_summary(memory, delay: int | None) -> dict:
    """``keras_ssm.memory.memory_summary`` of one layer's MemoryFunction (H, T) (channel means of MC,
    memory length and accuracy; rank, state dimension, condition number), with MF at ``delay`` (mean
    and max over channels) when given and inside the horizon."""
    summary = memory_summary(memory)
    if delay is not None and delay < memory.horizon:
        at_delay = memory.values[..., delay]
        summary["mf_at_delay_mean"] = float(np.mean(at_delay))
        summary["mf_at_delay_max"] = float(np.max(at_delay))
    return summary


def analyse_models(initial_model, trained_model, horizon: int, delay: int | None = None):
    """Compare the SSM layers of a model at initialisation and after training.

    Returns:
        (analysis, arrays): ``analysis`` is JSON-ready: {"horizon", "delay", "layers": {path: {"initial":
        summary, "trained": summary, "eigenvalues_identical": bool, "eigenvalue_max_abs_change": float}},
        "initial_weights_fingerprint"}; ``arrays`` maps ``"<kind>::<layer path>"`` (kind in mf_initial,
        mf_trained, eig_initial, eig_trained) to numpy arrays: MF values (H, horizon) float64 and
        discrete eigenvalues (H, N/2) complex128.
    """

    before, after = find_ssm_layers(initial_model), find_ssm_layers(trained_model)
    if list(before) != list(after):
        raise ValueError(f"The two models have different SSM layers: {list(before)} vs {list(after)}.")
    layers, arrays = {}, {}
    for path, layer in before.items():
        trained_layer = after[path]
        mf_initial = layer_memory_function(layer, horizon)
        mf_trained = layer_memory_function(trained_layer, horizon)
        eig_initial = np.asarray(layer.discrete_eigenvalues())
        eig_trained = np.asarray(trained_layer.discrete_eigenvalues())
        layers[path] = {
            "initial": memory_layer_summary(mf_initial, delay),
            "trained": memory_layer_summary(mf_trained, delay),
            "eigenvalues_identical": bool(np.array_equal(eig_initial, eig_trained)),
            "eigenvalue_max_abs_change": float(np.max(np.abs(eig_trained - eig_initial))),
        }
        arrays[f"mf_initial::{path}"] = mf_initial.values
        arrays[f"mf_trained::{path}"] = mf_trained.values
        arrays[f"eig_initial::{path}"] = eig_initial
        arrays[f"eig_trained::{path}"] = eig_trained
    analysis = {
        "horizon": int(horizon),
        "delay": delay,
        "layers": layers,
        "initial_weights_fingerprint": weights_fingerprint(initial_model.get_weights()),
    }
    return analysis, arrays


def analyse_run(run: PlannedRun) -> dict:
    """Memory functions (finite horizon T = the task's sequence length: the state starts at zero with each
    sequence) and discrete eigenvalues of the run's initial weights and of its best model; writes
    ``analysis.json`` and ``analysis.npz`` into the run directory and returns the analysis dict."""
    import keras

    from zoo.data import load_task_arrays
    from zoo.models import build_model, input_spec_from_info
    from zoo.runs import BEST_MODEL_FILE, CHECKPOINT_DIR, INITIAL_WEIGHTS_FILE, RESULTS_FILE

    config, out = run.config, run.run_dir
    results = read_json(out / RESULTS_FILE, _RESULTS_FIX)
    _, info, _ = load_task_arrays(config.task, "test", data_dir=config.data_dir, cache_dir=config.cache_dir,
                                  **config.data_options)
    initial = build_model(config, input_spec_from_info(info))
    initial.load_weights(out / CHECKPOINT_DIR / INITIAL_WEIGHTS_FILE)
    trained = keras.saving.load_model(out / BEST_MODEL_FILE, compile=False)
    analysis, arrays = analyse_models(initial, trained, int(results["seq_len"]), task_delay(config))
    np.savez(out / ANALYSIS_ARRAYS_FILE, **arrays)
    write_json_atomic(out / ANALYSIS_FILE, analysis)
    return analysis


def ensure_analysis(run: PlannedRun) -> dict:
    """The run's analysis.json, computed first if it is missing (or older than its results.json)."""
    from zoo.runs import RESULTS_FILE

    path = run.run_dir / ANALYSIS_FILE
    arrays = run.run_dir / ANALYSIS_ARRAYS_FILE
    if (path.exists() and arrays.exists()
            and path.stat().st_mtime_ns >= (run.run_dir / RESULTS_FILE).stat().st_mtime_ns):
        return read_json(path, "Delete it and rerun: the analysis is recomputed.")
    return analyse_run(run)


def load_analysis_arrays(run: PlannedRun) -> dict:
    """{kind: {layer path: array}} from the run's analysis.npz (kinds: mf_initial, mf_trained, eig_initial,
    eig_trained)."""
    grouped: dict = {}
    with np.load(run.run_dir / ANALYSIS_ARRAYS_FILE) as arrays:
        for key in arrays.files:
            kind, path = key.split("::", 1)
            grouped.setdefault(kind, {})[path] = arrays[key]
    return grouped
