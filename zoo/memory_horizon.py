"""Where memory ends: the memory-horizon and longest-memory experiments on delayed recall.

The theory (Guan et al. 2025): the memory function MF(k) of the SSM layers at initialisation multiplies the
teacher signal of a dependency at lag k in the readout's gradient, so a lag where MF(k) ~ 0 at
initialisation cannot be learned, and learning the eigenvalues hardly moves that edge. Two experiments
test this on delayed recall (zoo.data.delayed_recall: the label is the symbol ``delay`` steps before the
last position, chance = 1 / num_classes):

* **memory-horizon**: a log-spaced grid of delays (1 .. >= 1000), each trained with fixed eigenvalues
  (dt and A frozen), learned ones, and optionally part of each channel's modes frozen (``frozen_modes``),
  for several settings (eigenvalue init and dt range), over seeds. Per run: test accuracy, MF(delay) of
  every SSM layer at initialisation and after training (closed form, finite horizon = sequence length),
  and the empirical MF of the trained network at the delay (ridge readout of the recalled symbol from the
  features the classifier reads, on held-out i.i.d. sequences). Prediction: accuracy follows MF(delay) at
  initialisation; learning does not move the edge.
* **longest-memory**: one delay near the edge of the default init's memory, several settings ordered by
  memory length; memory length, memory accuracy (mean MF up to the length) and task accuracy side by side.
  Prediction: the longest initial memory wins, even with lower per-lag accuracy.

Every run trains a zoo model (zoo.models.build_model, zoo.runs.compile_model: the zoo's optimizer and
schedule) and writes ``results.json``, ``analysis.json``/``.npz`` (zoo.fixed_vs_learned.analyse_models) and
``empirical.json`` into ``<output_dir>/runs/<setting>/delay<d>/seed<k>/<mode>/``; runs that differ only in the
delay share one compiled model (see :func:`run_memory_horizon`). A rerun skips finished runs and rewrites the
report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure

from keras_ssm.memory import empirical_memory_function, memory_function, memory_length, memory_summary
from keras_ssm.ops.discrete import discretize_diagonal_numpy
from keras_ssm.ops.init import initial_eigenvalues
from zoo.analysis import analyse_models, load_analysis_arrays, write_analysis
from zoo.cli_common import parse_set_overrides
from zoo.configs import RUN_ONLY_FIELDS, TrainConfig, get_config
from zoo.core import TrainingData, compile_model, fit_and_evaluate
from zoo.data import load_task_arrays
from zoo.fixed_vs_learned import resolve_seeds
from zoo.models import build_model, input_spec_from_info
from zoo.protocol import Experiment, PlannedRun, RunRecord
from zoo.reporting import code_version_label, format_stat, mean_std
from zoo.rundir import (
    ANALYSIS_FILE,
    EMPIRICAL_FILE,
    HORIZON_PLOT,
    LONGEST_PLOT,
    REPORT_JSON,
    REPORT_MD,
    RESULTS_FILE,
    RUNS_DIR,
    DirectoryLock,
    read_json,
    write_json_atomic,
    write_text_atomic,
)

TASK = "delayed_recall"
#: Run sizes per preset. "quick" fits a shared 2-core CPU; "full" is for an accelerator.
#: Keys: TrainConfig overrides of the delayed_recall preset, plus the experiment's own grid.
PRESETS = {
    "quick": {
        "config": dict(num_layers=1, d_model=16, d_state=32, epochs=3, batch_size=50, lr=0.01,
                       data_options={"seq_len": 1024, "num_classes": 8, "num_train": 800, "num_val": 200,
                                     "num_test": 500}),
        "delays": (1, 3, 10, 32, 100, 316, 1000),
        "seeds": 3,
        "settings": ("inv@0.1:1", "inv@0.001:0.1"),
        "empirical_sequences": 32,
    },
    "full": {
        "config": dict(num_layers=2, d_model=64, d_state=64, epochs=30, batch_size=64, lr=0.01,
                       data_options={"seq_len": 4096, "num_classes": 8, "num_train": 20000, "num_val": 2000,
                                     "num_test": 2000}),
        "delays": (1, 3, 10, 30, 100, 300, 1000, 3000, 4000),
        "seeds": 5,
        "settings": ("inv@0.1:1", "inv@0.001:0.1", "inv@0.0001:0.01", "lin@0.001:0.1", "unity_rings:rho=0.999,p=4"),
        "empirical_sequences": 256,
    },
}
#: The settings of longest-memory: one init, dt ranges ordered from short to long memory.
LONGEST_MEMORY_SETTINGS = ("inv@0.1:1", "inv@0.001:0.1", "inv@0.0001:0.01")
#: The default ("reference") setting whose memory edge longest-memory's default delay sits at.
REFERENCE_SETTING = "inv@0.001:0.1"


@dataclass(frozen=True)
class Setting:
    """An eigenvalue setting: init (any zoo init) and, for continuous inits, the initial dt range.

    Written ``INIT@DT_MIN:DT_MAX`` (e.g. ``inv@0.001:0.1``) or ``INIT`` (the preset's dt range; discrete
    families such as ``unity_rings:rho=0.99,p=4`` always use dt = 1).
    """

    init: str
    dt_min: float | None = None
    dt_max: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Setting":
        if not isinstance(text, str) or not text:
            raise ValueError(f"A setting must be INIT or INIT@DT_MIN:DT_MAX, got {text!r}.")
        init, at, dt = text.partition("@")
        if not at:
            return cls(init)
        low, colon, high = dt.partition(":")
        try:
            dt_min, dt_max = float(low), float(high)
        except ValueError:
            raise ValueError(f"Setting {text!r}: the dt range must be two numbers DT_MIN:DT_MAX.") from None
        if not colon or not (0 < dt_min < dt_max) or not math.isfinite(dt_max):
            raise ValueError(f"Setting {text!r}: need 0 < DT_MIN < DT_MAX.")
        return cls(init, dt_min, dt_max)

    @property
    def label(self) -> str:
        return self.init if self.dt_min is None else f"{self.init}@{self.dt_min:g}:{self.dt_max:g}"

    @property
    def dirname(self) -> str:
        name = self.label if not self.init.endswith(".npy") else Path(self.init).stem + self.label[len(self.init):]
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)

    def overrides(self) -> dict:
        values = {"init": self.init}
        if self.dt_min is not None:
            values.update(dt_min=self.dt_min, dt_max=self.dt_max)
        return values


def mode_name(frozen_fraction) -> str:
    """Run mode: "fixed", "learned" or "frozen<percent>" (that fraction of each channel's modes frozen)."""
    return f"frozen{round(100 * frozen_fraction):d}"


def log_delays(max_delay: int, points: int = 8) -> tuple[int, ...]:
    """``points`` log-spaced integer delays from 1 to ``max_delay`` (duplicates after rounding removed)."""
    return tuple(sorted({int(round(d)) for d in np.geomspace(1, max_delay, points)}))


@dataclass(frozen=True)
class HorizonRun(PlannedRun):
    """One run: (setting, delay, seed, mode) and its resolved TrainConfig."""

    setting: Setting
    delay: int
    seed: int
    mode: str
    config: TrainConfig

    @property
    def label(self) -> str:
        return f"{self.setting.label}/delay{self.delay}/seed{self.seed}/{self.mode}"


def plan_memory_horizon(*, delays, settings, seeds, output_dir, preset: str = "quick", frozen_modes=(),
                        overrides: dict | None = None, verbose: int = 0) -> list[HorizonRun]:
    """Every run of a memory-horizon (or longest-memory) experiment, validated before anything trains.

    Args:
        delays: recall lags, each an int with 0 <= delay < seq_len; at least one.
        settings: eigenvalue settings (``Setting`` or its text form ``INIT@DT_MIN:DT_MAX``); at least one.
        seeds: number of seeds or a list of seeds.
        output_dir: the experiment directory.
        preset: "quick" or "full" (see ``PRESETS``): model and data sizes.
        frozen_modes: fractions in [0, 1]; each adds a mode that freezes that fraction of each channel's
            modes while the rest train (beside "fixed" and "learned").
        overrides: TrainConfig fields for every run (``data_options`` merged), e.g. {"epochs": 2}.
        verbose: Keras fit verbosity.

    Raises:
        ValueError: empty or invalid delay grid, a delay >= seq_len, an invalid setting (unknown init, bad
            eigenvalue file, bad dt range), a frozen fraction outside [0, 1], unknown preset or keys.
    """
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {tuple(PRESETS)}, got {preset!r}.")
    delays = tuple(delays)
    if not delays:
        raise ValueError("The delay grid is empty: give at least one delay.")
    for d in delays:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"Delays must be integers >= 0, got {d!r}.")
    if len(set(delays)) != len(delays):
        raise ValueError(f"Delays must not repeat, got {delays}.")
    settings = tuple(s if isinstance(s, Setting) else Setting.parse(s) for s in settings)
    if not settings:
        raise ValueError("Give at least one eigenvalue setting.")
    if len({s.dirname for s in settings}) != len(settings):
        raise ValueError(f"Settings must not repeat, got {[s.label for s in settings]}.")
    fractions = []
    for f in frozen_modes:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f <= 1.0:
            raise ValueError(f"--frozen-modes fractions must be numbers in [0, 1], got {f!r}.")
        fractions.append(float(f))
    modes = [("fixed", False, None), ("learned", True, None)] + [(mode_name(f), True, f) for f in fractions]
    if len({m[0] for m in modes}) != len(modes):
        raise ValueError(f"--frozen-modes fractions must differ by at least 1%, got {fractions}.")
    seeds = resolve_seeds(seeds)
    overrides = dict(overrides or {})
    reserved = sorted(set(overrides) & {"task", "init", "seed", "trainable_eigenvalues", "frozen_modes",
                                        "output_dir", "dt_min", "dt_max"})
    if reserved:
        raise ValueError(f"Override key(s) {reserved} are set by the experiment (use its settings, seeds and "
                         f"--frozen-modes).")
    if "delay" in overrides.get("data_options", {}):
        raise ValueError("`data_options.delay` is set by the experiment (use --delays).")
    base = get_config(TASK, "quick", verbose=verbose).replace(**PRESETS[preset]["config"])
    if overrides:
        base = base.replace(**overrides)
    seq_len = int(base.data_options.get("seq_len", 256))
    num_train = int(base.data_options.get("num_train", 0))
    if num_train < base.batch_size:
        raise ValueError(f"data_options.num_train ({num_train}) must be at least one batch ({base.batch_size}).")
    too_long = [d for d in delays if d >= seq_len]
    if too_long:
        raise ValueError(f"Every delay must be < the sequence length {seq_len} (the label is the symbol at "
                         f"position seq_len - 1 - delay), got {too_long}.")
    plan = []
    # Seeds outermost: an experiment stopped early has every setting and mode for its first seeds.
    for seed in seeds:
        for setting in settings:
            for mode, trainable, fraction in modes:
                for delay in sorted(delays):
                    out = Path(output_dir) / RUNS_DIR / setting.dirname / f"delay{delay}" / f"seed{seed}" / mode
                    config = base.replace(seed=seed, trainable_eigenvalues=trainable, frozen_modes=fraction,
                                          output_dir=str(out), data_options={"delay": int(delay)},
                                          **setting.overrides())
                    plan.append(HorizonRun(setting, int(delay), seed, mode, config))
    return plan


def _print(message):
    print(message, flush=True)




def run_finished(run) -> bool:
    """True when the run's results.json exists; a results.json of a different config is an error (one
    writer per run directory: a changed grid never silently reuses another run's numbers)."""
    path = run.run_dir / RESULTS_FILE
    if not path.exists():
        return False
    stored = read_json(path, "Delete it to train that run again.").get("config", {})
    ignore = RUN_ONLY_FIELDS
    mine = {k: v for k, v in run.config.to_dict().items() if k not in ignore}
    theirs = {k: v for k, v in stored.items() if k not in ignore}
    if mine != theirs:
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise ValueError(f"{run.run_dir} holds a run of a different configuration (differs in {changed}); "
                         f"use another --output-dir or remove it.")
    return True


def run_memory_horizon(plan, *, empirical_sequences: int = 64, log=_print) -> list[RunRecord]:
    """Train every unfinished run of ``plan`` and return one record per run.

    Runs that differ only in the delay (same setting, mode and seed) share one model build and one
    compilation: the inputs of delayed recall do not depend on the delay (same data seed), only the labels
    do, so before each delay the model gets back its initial weights and a zeroed optimizer (step 0 of the
    warmup + cosine schedule), which makes each run the same as a fresh one. Each finished run writes,
    atomically and in this order, ``analysis.json``/``analysis.npz`` (memory functions of the SSM layers at
    initialisation and after training, zoo.fixed_vs_learned.analyse_models), ``empirical.json`` and last
    ``results.json``, which marks it finished; an interrupted experiment redoes at most the run in progress.

    Returns:
        One :class:`zoo.protocol.RunRecord` per run (status "trained", "skipped" or "failed"; ``empirical``
        holds empirical.json).
    """
    groups: dict = {}
    for run in plan:
        groups.setdefault((run.setting, run.mode, run.seed), []).append(run)
    status = {}
    done = 0
    for runs in groups.values():
        todo = [r for r in runs if not run_finished(r)]
        for r in runs:
            if r not in todo:
                status[r.label] = ("skipped", None)
        if todo:
            with contextlib.ExitStack() as locks:  # one writer per run directory
                for run in todo:
                    locks.enter_context(DirectoryLock(run.run_dir, "run directory"))
                for run, outcome in _train_group(todo, empirical_sequences, log, done, len(plan)):
                    status[run.label] = outcome
        done += len(runs)
    return [_load(run, *status[run.label]) for run in plan]


def collect_memory_horizon(plan, **_) -> list[RunRecord]:
    """Records of the finished runs of ``plan`` (no training); unfinished runs are "missing"."""
    return [_load(run, "skipped") if run_finished(run) else RunRecord(run, "missing") for run in plan]


_REDO = "Delete the run's results.json to train it again."


def _load(run, status, error=None) -> RunRecord:
    if status == "failed":
        return RunRecord(run, status, error=error)
    out = run.run_dir
    return RunRecord(run, status, results=read_json(out / RESULTS_FILE, _REDO),
                     analysis=read_json(out / ANALYSIS_FILE, _REDO), empirical=read_json(out / EMPIRICAL_FILE, _REDO))


def _delayed_recall_arrays(config, split):
    """(token ids int32 (num, seq_len), labels int64) of a delayed-recall split (zoo.data)."""
    data, info, encoding = load_task_arrays(TASK, split, data_dir=config.data_dir, cache_dir=config.cache_dir,
                                            **config.data_options)
    if encoding.kind != "tokens":
        raise ValueError("The memory-horizon experiments use the token encoding of delayed recall "
                         f"(data_options.encoding='tokens'), got {encoding.kind!r}.")
    return data.inputs[0].astype(np.int32) + int(encoding.offset), np.asarray(data.labels, np.int64), info


def reset_optimizer(optimizer):
    """Every optimizer variable (step counter, moments) back to zero: the state of a new optimizer."""
    for variable in optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))


def _train_group(runs, empirical_sequences, log, offset, total):
    """Train ``runs`` (one setting, mode and seed; different delays) on one compiled model; yields
    (run, (status, error)) as each run finishes."""
    config = runs[0].config
    keras.utils.set_random_seed(config.seed)
    x_train, _, info = _delayed_recall_arrays(config, "train")
    x_val, _, val_info = _delayed_recall_arrays(config, "val")
    x_test, _, _ = _delayed_recall_arrays(config, "test")
    spec = input_spec_from_info(info)
    steps = x_train.shape[0] // config.batch_size
    build_start = time.perf_counter()
    model = build_model(config, spec)
    probe = build_model(config, spec)  # holds the initial weights for the memory analysis
    initial = model.get_weights()
    probe.set_weights(initial)
    compile_model(model, config, steps)
    names = [layer.name for layer in model.layers]
    feature_layer = "final_norm" if "final_norm" in names else [n for n in names if n.startswith("block")][-1]
    features = keras.Model(model.inputs[0], model.get_layer(feature_layer).output)
    build_time = time.perf_counter() - build_start
    for position, run in enumerate(runs):
        index = offset + position + 1
        prefix = f"[{index}/{total}] {run.label}"
        cfg = run.config
        keras.utils.set_random_seed(cfg.seed)
        _, y_train, _ = _delayed_recall_arrays(cfg, "train")
        _, y_val, _ = _delayed_recall_arrays(cfg, "val")
        _, y_test, test_info = _delayed_recall_arrays(cfg, "test")
        data = TrainingData(train=(x_train, y_train), val=(x_val, y_val), test=(x_test, y_test), info=info,
                            val_info=val_info, test_info=test_info, steps_per_epoch=steps,
                            batch_size=cfg.batch_size)
        model.set_weights(initial)
        if model.optimizer.built:
            reset_optimizer(model.optimizer)
        result = fit_and_evaluate(cfg, data, model=model, on_divergence="keep_best")
        if result.best_epoch is None:
            log(f"{prefix}: FAILED: the loss became NaN/inf before the first epoch ended")
            yield run, ("failed", "non-finite loss")
            continue
        analysis, arrays = analyse_models(probe, model, int(info.seq_len), run.delay)
        out = run.run_dir
        write_analysis(out, analysis, arrays)
        empirical = _empirical(features, cfg, run, feature_layer, empirical_sequences)
        write_json_atomic(out / EMPIRICAL_FILE, empirical)
        labels = {"setting": run.setting.label, "delay": run.delay, "mode": run.mode}
        results = dataclasses.replace(result, build_time_s=build_time, labels=labels).to_dict()
        write_json_atomic(out / RESULTS_FILE, results)
        log(f"{prefix}: test accuracy {results['test_accuracy']:.3f}, MF(d) at init (layer 1, best channel) "
            f"{_first_layer(analysis, 'initial', 'mf_at_delay_max'):.3g}, empirical MF(d) "
            f"{empirical['mf_at_delay']:.3g} ({results['wall_time_s']:.0f} s)")
        yield run, ("trained", None)


def _first_layer(analysis, stage, key):
    layers = analysis["layers"]
    first = layers[sorted(layers)[0]]
    return first[stage].get(key, float("nan"))


def _empirical(features, config, run, feature_layer, num_sequences) -> dict:
    """The trained network's empirical MF at the run's delay.

    The network is driven with ``num_sequences`` fresh i.i.d. symbol sequences (seed 12345 + run seed,
    independent of the task's splits); the features are the output of the layer the classifier reads
    (``final_norm`` with pre-norm, else the last block) at every step; the target is the symbol value
    u_{t-k}; MF_hat(k) is the held-out R^2 of a ridge readout (keras_ssm.memory.empirical_memory_function)
    after a washout of ``delay`` steps, k = 0..delay.
    """

    options = config.data_options
    seq_len, num_classes = int(options["seq_len"]), int(options["num_classes"])
    rng = np.random.default_rng(12345 + run.seed)
    symbols = rng.integers(0, num_classes, size=(num_sequences, seq_len))
    memory = empirical_memory_function(features, inputs=(symbols + 1).astype("int32"),
                                       signal=symbols.astype(np.float64), max_lag=run.delay, washout=run.delay,
                                       batch_size=16, seed=0)
    return {"delay": run.delay, "mf_at_delay": float(memory.values[run.delay]), "mf_lag0": float(memory.values[0]),
            "feature_layer": feature_layer, "num_sequences": int(num_sequences),
            "rank": int(np.asarray(memory.rank))}


def reference_edge_delay(n: int, seq_len: int, dt_min: float = 1e-3, dt_max: float = 1e-1, init: str = "inv",
                         channels: int = 16) -> int:
    """The memory edge of a setting: the median over channels (dt log-spaced over [dt_min, dt_max]) of the
    memory length (lag holding 90% of MC, finite horizon seq_len) of its closed-form MF, ZOH."""

    a = initial_eigenvalues(init, n, num_channels=channels, seed=0)
    dt = np.geomspace(dt_min, dt_max, channels)[:, None]
    lam, _ = discretize_diagonal_numpy(dt, a, "zoh")
    mf = memory_function(lam, horizon=seq_len)
    return int(np.median(memory_length(mf)))


# ---------------------------------------------------------------------------------------------
# Report

#: MF(d) at initialisation below this counts as "no memory at lag d" in the edge summary.
MF_EDGE_THRESHOLD = 0.01
#: Accuracy counts as above chance when it exceeds chance by this many binomial standard errors.
CHANCE_SIGMAS = 3.0


def _layer_memory(record, stage):
    """Channel statistics of the first SSM layer's MF at ``stage`` ("initial"/"trained"): MF(d) max and
    mean over channels, memory length and memory accuracy (channel means), MC (channel mean)."""
    arrays = load_analysis_arrays(record.run.run_dir)[f"mf_{stage}"]
    values = arrays[sorted(arrays)[0]]
    d = record.run.delay
    return {
        "mf_at_delay_max": float(values[:, d].max()),
        "mf_at_delay_mean": float(values[:, d].mean()),
        **memory_summary(values),
    }


def _run_row(record) -> dict:
    run, results = record.run, record.results
    initial, trained = _layer_memory(record, "initial"), _layer_memory(record, "trained")
    layers = record.analysis["layers"]
    return {
        "setting": run.setting.label, "delay": run.delay, "seed": run.seed, "mode": run.mode,
        "test_accuracy": results["test_accuracy"], "chance": 1.0 / int(run.config.data_options["num_classes"]),
        "num_test": results["num_examples"]["test"],
        "mf_init_max": initial["mf_at_delay_max"], "mf_init_mean": initial["mf_at_delay_mean"],
        "mf_trained_max": trained["mf_at_delay_max"], "mf_trained_mean": trained["mf_at_delay_mean"],
        "length_init": initial["length"], "length_trained": trained["length"],
        "accuracy_init": initial["accuracy"], "capacity_init": initial["capacity"],
        "empirical_mf": record.empirical["mf_at_delay"],
        "eigenvalues_identical": all(layer["eigenvalues_identical"] for layer in layers.values()),
        "params_trainable": results["params_trainable"], "params_frozen": results["params_frozen"],
        "wall_time_s": results["wall_time_s"],
    }


def summarise(records) -> dict:
    """Per (setting, delay, mode): seed statistics of every number of ``_run_row``; plus the edge summary."""
    rows = [_run_row(r) for r in records if r.results is not None]
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["setting"], row["delay"], row["mode"]), []).append(row)
    table = []
    keys = ("test_accuracy", "mf_init_max", "mf_init_mean", "mf_trained_max", "mf_trained_mean", "length_init",
            "length_trained", "accuracy_init", "capacity_init", "empirical_mf", "wall_time_s")
    for (setting, delay, mode), group in groups.items():
        entry = {"setting": setting, "delay": delay, "mode": mode, "seeds": [g["seed"] for g in group],
                 "chance": group[0]["chance"], "num_test": group[0]["num_test"],
                 "eigenvalues_identical": [g["eigenvalues_identical"] for g in group]}
        entry.update({k: mean_std([g[k] for g in group]) for k in keys})
        table.append(entry)
    edges = []
    for setting in dict.fromkeys(row["setting"] for row in rows):
        for mode in dict.fromkeys(row["mode"] for row in rows):
            entries = sorted((e for e in table if e["setting"] == setting and e["mode"] == mode),
                             key=lambda e: e["delay"])
            if not entries:
                continue
            chance, n = entries[0]["chance"], entries[0]["num_test"]
            threshold = chance + CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / n)
            above = [e["delay"] for e in entries if (e["test_accuracy"]["mean"] or 0) > threshold]
            remembered = [e["delay"] for e in entries if (e["mf_init_max"]["mean"] or 0) > MF_EDGE_THRESHOLD]
            edges.append({"setting": setting, "mode": mode, "accuracy_threshold": threshold,
                          "largest_delay_above_chance": max(above) if above else None,
                          "largest_delay_mf_init_above": max(remembered) if remembered else None})
    return {"runs": rows, "table": table, "edges": edges}


def _fmt_g(stat):
    return "-" if stat["mean"] is None else f"{stat['mean']:.2g}"


def _scale_lines(plan, preset) -> list[str]:
    config = plan[0].config
    o = config.data_options
    seeds = sorted({r.seed for r in plan})
    return [
        f"- scale: preset `{preset}`, {config.num_layers} layer(s) x H = "
        f"{config.d_model}, N = {config.d_state}, {'bidirectional' if config.bidirectional else 'causal'}, "
        f"sequence length {o['seq_len']}, {o['num_classes']} symbols (chance {1 / o['num_classes']:.3f}), "
        f"{o['num_train']}/{o['num_val']}/{o['num_test']} train/val/test examples, {config.epochs} epochs, "
        f"batch {config.batch_size}, lr {config.lr:g}, ssm_lr {config.ssm_lr:g}, seeds {seeds}",
        f"- delays: {sorted({r.delay for r in plan})}; settings (init@dt_min:dt_max): "
        f"{', '.join(dict.fromkeys(r.setting.label for r in plan))}; modes: "
        f"{', '.join(dict.fromkeys(r.mode for r in plan))}",
    ]


def write_memory_horizon_report(records, report_dir, *, experiment: str, command: str, plan, preset: str,
                                version: str | None = None) -> dict:
    """Write report.json, report.md and the figure for ``experiment`` ("memory-horizon" or "longest-memory").

    ``version``: the code version the runs used (default: ``zoo.reporting.code_version_label()`` now; the CLI records it
    before training, so later edits of the checkout do not change what the report says)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(records)
    finished = sum(r.results is not None for r in records)
    wall = sum(r["wall_time_s"] for r in summary["runs"])
    header = {
        "experiment": experiment, "command": command, "preset": preset,
        "code_version": version or code_version_label(),
        "backend": keras.backend.backend(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), "runs_planned": len(records), "runs_finished": finished,
        "runs_failed": sum(r.status == "failed" for r in records), "total_run_wall_time_s": wall,
    }
    if experiment == "memory-horizon":
        figure = plot_memory_horizon(summary, report_dir / HORIZON_PLOT)
        body = _horizon_markdown(summary, figure)
    else:
        figure = plot_longest_memory(summary, report_dir / LONGEST_PLOT)
        body = _longest_markdown(summary, figure)
    scale = _scale_lines(plan, preset)
    title = {"memory-horizon": "Memory horizon: accuracy against delay and the memory function at initialisation",
             "longest-memory": "Longest memory wins? One delay near the memory edge, settings ordered by memory "
                               "length"}[experiment]
    lines = [f"# {title}", "", f"- command: `{command}`", *scale,
             f"- code version: {header['code_version']}, backend {header['backend']}, {header['date']}",
             f"- runs: {finished} of {len(records)} finished ({header['runs_failed']} failed), summed run wall "
             f"time {wall / 60:.1f} min", "", *body]
    markdown = "\n".join(lines) + "\n"
    write_json_atomic(report_dir / REPORT_JSON, {**header, **summary})
    write_text_atomic(report_dir / REPORT_MD, markdown)
    return {"markdown": markdown, "summary": summary, **header}


def _modes(summary):
    return list(dict.fromkeys(e["mode"] for e in summary["table"]))


def _horizon_markdown(summary, figure) -> list[str]:
    modes = _modes(summary)
    lines = []
    if figure:
        lines += [f"![memory horizon]({HORIZON_PLOT})", ""]
    lines += ["Accuracy: test accuracy of the best-validation checkpoint, mean ± sample std over seeds. MF(d) init / "
              "trained: closed-form memory function of the first SSM layer at the recalled lag d (finite horizon = "
              "sequence length), max over its channels, mean over seeds; trained = after training with learned "
              "eigenvalues. Empirical MF(d): held-out R^2 of a ridge readout of the symbol d steps back from the "
              "features the classifier reads, of the trained network (per mode).", ""]
    for setting in dict.fromkeys(e["setting"] for e in summary["table"]):
        lines += [f"### {setting}", ""]
        head = ["delay", "MF(d) init"] + [f"acc {m}" for m in modes] + ["MF(d) trained (learned)"] + \
               [f"emp. MF(d) {m}" for m in modes]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        entries = {(e["delay"], e["mode"]): e for e in summary["table"] if e["setting"] == setting}
        for delay in sorted({d for d, _ in entries}):
            any_entry = next(e for (d, _), e in entries.items() if d == delay)
            cells = [str(delay), _fmt_g(any_entry["mf_init_max"])]
            cells += [format_stat(entries[(delay, m)]["test_accuracy"], missing="-") if (delay, m) in entries else "-" for m in modes]
            learned = entries.get((delay, "learned"))
            cells.append(_fmt_g(learned["mf_trained_max"]) if learned else "-")
            cells += [format_stat(entries[(delay, m)]["empirical_mf"], 2, missing="-") if (delay, m) in entries else "-" for m in modes]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Edges", "", f"Largest delay whose mean accuracy exceeds chance by {CHANCE_SIGMAS:g} binomial "
              f"standard errors, beside the largest delay with MF(d) at initialisation > {MF_EDGE_THRESHOLD:g} "
              "(first layer, best channel).", "",
              "| setting | mode | accuracy threshold | largest delay above chance | largest delay with MF(d) init > "
              f"{MF_EDGE_THRESHOLD:g} |", "|---|---|---|---|---|"]
    for e in summary["edges"]:
        lines.append(f"| {e['setting']} | {e['mode']} | {e['accuracy_threshold']:.3f} | "
                     f"{e['largest_delay_above_chance']} | {e['largest_delay_mf_init_above']} |")
    frozen_ok = all(all(e["eigenvalues_identical"]) for e in summary["table"] if e["mode"] == "fixed")
    lines += ["", f"Fixed runs: eigenvalues bit-identical after training in every run: {frozen_ok}."]
    return lines


def _longest_markdown(summary, figure) -> list[str]:
    modes = _modes(summary)
    lines = []
    if figure:
        lines += [f"![longest memory]({LONGEST_PLOT})", ""]
    lines += ["Settings sorted by the memory length of the first SSM layer at initialisation (lag holding 90% of "
              "MC, mean over channels); memory accuracy = mean MF up to that lag (mean over channels); MF(d) init = "
              "max over channels at the recalled lag. Test accuracy: mean ± sample std over seeds.", ""]
    head = ["setting", "delay", "MC init", "memory length init", "memory accuracy init", "MF(d) init"] + \
           [f"acc {m}" for m in modes] + ["memory length trained (learned)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_setting: dict = {}
    for e in summary["table"]:
        by_setting.setdefault((e["setting"], e["delay"]), {})[e["mode"]] = e
    ordered = sorted(by_setting.items(), key=lambda kv: next(iter(kv[1].values()))["length_init"]["mean"] or 0)
    for (setting, delay), entries in ordered:
        e = next(iter(entries.values()))
        cells = [setting, str(delay), f"{e['capacity_init']['mean']:.1f}", f"{e['length_init']['mean']:.0f}",
                 f"{e['accuracy_init']['mean']:.3f}", _fmt_g(e["mf_init_max"])]
        cells += [format_stat(entries[m]["test_accuracy"], missing="-") if m in entries else "-" for m in modes]
        cells.append(f"{entries['learned']['length_trained']['mean']:.0f}" if "learned" in entries else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_MODE_STYLE = {"fixed": ("-", "o"), "learned": ("--", "s")}


def plot_memory_horizon(summary, path) -> bool:
    """Two panels on one log delay axis: test accuracy (one line per setting and mode, chance dotted) and
    MF(d) at initialisation (first layer, best channel, seed mean) per setting."""
    if not summary["table"]:
        return False
    fig = Figure(figsize=(7.5, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    settings = list(dict.fromkeys(e["setting"] for e in summary["table"]))
    chance = summary["table"][0]["chance"]
    for i, setting in enumerate(settings):
        color = f"C{i}"
        for mode in _modes(summary):
            entries = sorted((e for e in summary["table"] if e["setting"] == setting and e["mode"] == mode),
                             key=lambda e: e["delay"])
            if not entries:
                continue
            style, marker = _MODE_STYLE.get(mode, (":", "^"))
            delays = [max(e["delay"], 0.5) for e in entries]
            top.errorbar(delays, [e["test_accuracy"]["mean"] for e in entries],
                         yerr=[e["test_accuracy"]["std"] for e in entries], color=color, linestyle=style,
                         marker=marker, capsize=2, label=f"{setting} {mode}")
        entries = sorted((e for e in summary["table"] if e["setting"] == setting and e["mode"] == "fixed")
                         or (e for e in summary["table"] if e["setting"] == setting), key=lambda e: e["delay"])
        bottom.plot([max(e["delay"], 0.5) for e in entries], [max(e["mf_init_max"]["mean"], 1e-8) for e in entries],
                    color=color, marker="o", label=setting)
    top.axhline(chance, color="gray", linestyle=":", label="chance")
    top.set_ylabel("test accuracy")
    top.set_ylim(0, 1.02)
    top.legend(fontsize=7, ncol=2)
    top.set_title("Delayed recall: accuracy against delay, and the memory at initialisation")
    bottom.axhline(MF_EDGE_THRESHOLD, color="gray", linestyle=":")
    bottom.set_xscale("log")
    bottom.set_yscale("log")
    bottom.set_ylim(1e-8, 1.5)
    bottom.set_xlabel("delay d (steps)")
    bottom.set_ylabel("MF(d) at init\n(layer 1, best channel)")
    bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def plot_longest_memory(summary, path) -> bool:
    """Test accuracy against memory length at initialisation, one point per setting and mode."""
    if not summary["table"]:
        return False
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for j, mode in enumerate(_modes(summary)):
        entries = sorted((e for e in summary["table"] if e["mode"] == mode), key=lambda e: e["length_init"]["mean"])
        style, marker = _MODE_STYLE.get(mode, (":", "^"))
        ax.errorbar([e["length_init"]["mean"] for e in entries], [e["test_accuracy"]["mean"] for e in entries],
                    yerr=[e["test_accuracy"]["std"] for e in entries], linestyle=style, marker=marker, capsize=2,
                    color=f"C{j}", label=mode)
        for e in entries:
            ax.annotate(e["setting"], (e["length_init"]["mean"], e["test_accuracy"]["mean"]), fontsize=6)
    delay = summary["table"][0]["delay"]
    ax.axvline(delay, color="gray", linestyle="--", label=f"delay {delay}")
    ax.axhline(summary["table"][0]["chance"], color="gray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("memory length at init (lags holding 90% of MC; layer 1, channel mean)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


# ---------------------------------------------------------------------------------------------
# The command line: python zoo/experiment.py memory-horizon | longest-memory

class MemoryHorizon(Experiment):
    """``python zoo/experiment.py memory-horizon`` (``longest=False``) or ``longest-memory`` (zoo.protocol)."""

    group = "setting, mode and seed (its delays share one compiled model)"

    def __init__(self, longest: bool = False):
        self.longest = longest
        self.name = "longest-memory" if longest else "memory-horizon"

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=f"python zoo/experiment.py {self.name}",
            description=(
                "Longest memory wins? Delayed recall at one delay near the memory edge of the reference setting "
                "(inv, dt in [0.001, 0.1]), for settings ordered by memory length; reports memory length, memory "
                "accuracy and task accuracy side by side." if self.longest else
                "Memory horizon: delayed recall over a log-spaced grid of delays, trained with fixed and learned "
                "eigenvalues (and optionally part of each channel's modes frozen), for several eigenvalue settings "
                "and seeds. Reports test accuracy, MF(delay) of the SSM layers at initialisation and after "
                "training and the trained network's empirical MF(delay), with one figure on a shared delay axis.")
            + " Settings are INIT or INIT@DT_MIN:DT_MAX, INIT any zoo init (inv, lin, legs, real, random, "
              "linear_magnitudes[:rho=R], unity_rings[:rho=R,p=P], or a .npy file of continuous eigenvalues).",
        )
        parser.add_argument("--preset", choices=tuple(PRESETS), default="quick",
                            help="sizes: quick = a shared 2-core CPU (1 layer, H=16, N=32, length 1024), full = an "
                                 "accelerator (2 layers, H=64, N=64, length 4096, 5 seeds) (default: quick).")
        if self.longest:
            parser.add_argument("--delay", type=int, default=None,
                                help="the recall lag (default: the median memory length of the reference setting's "
                                     "channels at initialisation).")
            parser.add_argument("--settings", nargs="+", default=list(LONGEST_MEMORY_SETTINGS), metavar="SETTING",
                                help=f"settings to compare (default: {' '.join(LONGEST_MEMORY_SETTINGS)}).")
        else:
            parser.add_argument("--delays", nargs="*", type=int, default=None, metavar="DELAY",
                                help="recall lags (default: the preset's log-spaced grid, 1..1000 for quick).")
            parser.add_argument("--settings", nargs="+", default=None, metavar="SETTING",
                                help="settings to compare (default: the preset's).")
        parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the preset's).")
        parser.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0).")
        parser.add_argument("--frozen-modes", nargs="+", type=float, default=[], metavar="FRACTION",
                            help="also train with this fraction of each channel's eigenvalues frozen (0..1), a mode "
                                 "per fraction beside fixed and learned.")
        parser.add_argument("--epochs", type=int, default=None, help="override the preset's number of epochs.")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a TrainConfig key of every run, e.g. --set d_model=32 --set "
                                 "data_options.num_train=500.")
        parser.add_argument("--output-dir", default=None,
                            help=f"runs and report (default: runs/{self.name}-<preset>).")
        parser.add_argument("--report-dir", default=None, help="where the report goes (default: --output-dir).")
        parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=0,
                            help="Keras fit verbosity (default 0).")
        return parser

    def plan_from_args(self, args) -> list[HorizonRun]:
        preset = PRESETS[args.preset]
        args.output_dir = args.output_dir or str(Path("runs") / f"{self.name}-{args.preset}")
        if args.first_seed < 0:
            raise ValueError(f"--first-seed must be >= 0, got {args.first_seed}.")
        seeds = preset["seeds"] if args.seeds is None else args.seeds
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}.")
        overrides = parse_set_overrides(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        if self.longest:
            settings = args.settings
            delays = [args.delay] if args.delay is not None else None
            if delays is None:
                ref = Setting.parse(REFERENCE_SETTING)
                cfg = preset["config"]
                seq_len = {**cfg["data_options"], **overrides.get("data_options", {})}["seq_len"]
                delays = [reference_edge_delay(overrides.get("d_state", cfg["d_state"]), seq_len, ref.dt_min,
                                               ref.dt_max, ref.init)]
        else:
            settings = args.settings or list(preset["settings"])
            delays = preset["delays"] if args.delays is None else args.delays
        self._empirical_sequences = preset["empirical_sequences"]
        return plan_memory_horizon(delays=delays, settings=settings,
                                   seeds=list(range(args.first_seed, args.first_seed + seeds)),
                                   output_dir=args.output_dir, preset=args.preset, frozen_modes=args.frozen_modes,
                                   overrides=overrides, verbose=args.verbose)

    def group_key(self, run):
        return run.setting.dirname, run.mode, run.seed

    def run(self, plan) -> list[RunRecord]:
        return run_memory_horizon(plan, empirical_sequences=self._empirical_sequences)

    def collect(self, plan) -> list[RunRecord]:
        return collect_memory_horizon(plan)

    def report(self, records, report_dir, *, plan, command: str, version: str, args) -> dict:
        report = write_memory_horizon_report(records, report_dir, experiment=self.name, command=command, plan=plan,
                                             preset=args.preset, version=version)
        return {**report, "failed": report["runs_failed"]}
