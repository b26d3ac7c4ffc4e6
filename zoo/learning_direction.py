"""Which way gradient descent moves the eigenvalues, and whether the memory function at initialisation predicts it.

The paper's mechanism (Guan et al. 2025): the teacher signal of a dependency at lag k reaches the eigenvalues
only through the memory at lag k, so learning cannot extend memory where MF(k) ~ 0 at initialisation, and the
eigenvalues drift toward what the initial memory already covers. ``python zoo/experiment.py learning-direction``
measures it with learned eigenvalues and ``keras_ssm.MemoryTracker`` on every run:

* **direction grid**: delayed recall at three delays chosen from the MF of the init (``inside`` = edge / 4,
  ``at`` = the edge, ``beyond`` = 4 x edge, the edge being the median memory length of the init's channels),
  and ListOps; inits S4D-Inv and S4D-Lin; the SSM learning rate x1, x10, x100 of the reference 0.001; seeds.
  Per run: the change of memory length, of MF(delay) and of log|lambda| from initialisation to the end, the
  sign the initial gradient by lag predicts (``keras_ssm.gradient_by_lag``'s memory push, summed over modes)
  against the measured drift, and the largest |lambda| reached (stability at x100).
* **edge grid**: delayed recall over dt ranges x delays at the reference learning rate: does MF(delay) at
  initialisation predict whether a run learns the delay (accuracy above chance by 3 binomial standard
  errors)? ROC AUC (Mann-Whitney) and the threshold of largest Youden J.

Every run writes ``results.json`` (last: it marks the run finished), ``memory_tracking.json``/``.npz`` and
``memory_tracking.png`` into ``<output_dir>/runs/<grid>/<task>/<setting>/lr<m>x/<delay>/seed<k>/``. Runs that
differ only in the delay share one compiled model (initial weights and a zeroed optimizer before each), and
one compiled gradient probe. A rerun skips finished runs; ``--shard`` splits the groups over processes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import scipy.stats
from matplotlib.figure import Figure

from keras_ssm.callbacks import MemoryTracker
from keras_ssm.memory.tracking import (
    TRACKING_JSON,
    TRACKING_PLOT,
    load_memory_tracking,
    plot_memory_tracking,
)
from zoo.cli_common import parse_set_overrides
from zoo.configs import TrainConfig, get_config
from zoo.core import (
    classification_loss,
    compile_model,
    fit_and_evaluate,
    load_training_data,
)
from zoo.fixed_vs_learned import resolve_seeds
from zoo.memory_horizon import (
    CHANCE_SIGMAS,
    Setting,
    reference_edge_delay,
    reset_optimizer,
    run_finished,
)
from zoo.models import build_model, input_spec_from_info
from zoo.protocol import Experiment, PlannedRun, RunRecord
from zoo.reporting import format_stat, mean_std
from zoo.rundir import (
    REPORT_JSON,
    REPORT_MD,
    RESULTS_FILE,
    RUNS_DIR,
    DirectoryLock,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from zoo.runs import held_batch, tracked_lags

#: The reference SSM learning rate (the LRA configs') and the multiples the direction grid trains at.
REFERENCE_SSM_LR = 1e-3
LR_MULTIPLIERS = (1, 10, 100)
POSITIONS = ("inside", "at", "beyond")
DIRECTION_PLOT = "learning_direction.png"
EDGE_PLOT = "learnable_edge.png"

PRESETS = {
    "quick": {
        "delayed_recall": dict(num_layers=1, d_model=16, d_state=16, epochs=5, batch_size=50, lr=0.01,
                               data_options={"seq_len": 128, "num_classes": 8, "num_train": 1000, "num_val": 200,
                                             "num_test": 500}),
        "listops": dict(num_layers=1, d_model=32, d_state=16, epochs=3, batch_size=50,
                        data_options={"num_train": 2000, "num_val": 500, "num_test": 500, "max_length": 120}),
        "inits": ("inv", "lin"), "dt": (0.1, 1.0), "seeds": 5,
        "edge_settings": ("inv@0.3:3", "inv@0.1:1", "inv@0.03:0.3", "inv@0.01:0.1"),
        "edge_delays": (2, 6, 16, 40, 100), "edge_seeds": 2,
    },
    "full": {
        "delayed_recall": dict(num_layers=2, d_model=64, d_state=64, epochs=20, batch_size=64, lr=0.01,
                               data_options={"seq_len": 1024, "num_classes": 8, "num_train": 20000, "num_val": 2000,
                                             "num_test": 2000}),
        "listops": dict(num_layers=4, d_model=128, d_state=64, epochs=20),
        "inits": ("inv", "lin"), "dt": (0.01, 0.1), "seeds": 5,
        "edge_settings": ("inv@0.1:1", "inv@0.01:0.1", "inv@0.001:0.1", "inv@0.0001:0.01"),
        "edge_delays": (4, 16, 64, 256, 1000), "edge_seeds": 3,
    },
}


@dataclass(frozen=True)
class DirectionRun(PlannedRun):
    """One run: grid ("direction"/"edge"), task, setting, SSM learning-rate multiple, delay (None for ListOps)
    and where it sits against the init's memory edge, seed, and its resolved TrainConfig."""

    grid: str
    task: str
    setting: Setting
    lr_multiplier: int
    delay: int | None
    position: str
    seed: int
    config: TrainConfig

    @property
    def label(self) -> str:
        where = "listops" if self.delay is None else f"delay{self.delay}"
        return f"{self.grid}/{self.task}/{self.setting.label}/lr{self.lr_multiplier}x/{where}/seed{self.seed}"


def edge_delays(setting: Setting, config: TrainConfig) -> dict:
    """{position: delay} for the direction grid: the memory edge e of the setting's init (median memory length
    of 16 channels, dt log-spaced over its range, finite horizon = sequence length) and e / 4, 4 e."""
    seq_len = int(config.data_options["seq_len"])
    edge = reference_edge_delay(config.d_state, seq_len, setting.dt_min, setting.dt_max, setting.init)
    delays = {"inside": max(1, edge // 4), "at": edge, "beyond": min(4 * edge, seq_len - 1)}
    if len(set(delays.values())) < 3:
        raise ValueError(f"Setting {setting.label} at length {seq_len}: the memory edge {edge} leaves no three "
                         f"distinct delays inside, at and beyond it ({delays}); use another dt range or length.")
    return delays


def plan_learning_direction(*, preset="quick", seeds=None, inits=None, lr_multipliers=LR_MULTIPLIERS,
                            tasks=("delayed_recall", "listops"), edge_settings=None, edge_delay_grid=None,
                            edge_seeds=None, output_dir, overrides=None, verbose=0) -> list[DirectionRun]:
    """Every run of the experiment, validated before anything trains (ValueError naming the bad argument)."""
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {tuple(PRESETS)}, got {preset!r}.")
    sizes = PRESETS[preset]
    seeds = resolve_seeds(sizes["seeds"] if seeds is None else seeds)
    edge_seeds = resolve_seeds(sizes["edge_seeds"] if edge_seeds is None else edge_seeds)
    inits = tuple(sizes["inits"] if inits is None else inits)
    for m in lr_multipliers:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"--lr-multipliers must be integers >= 1, got {m!r}.")
    unknown = sorted(set(tasks) - {"delayed_recall", "listops"})
    if unknown or not tasks:
        raise ValueError(f"--tasks must be among 'delayed_recall', 'listops', got {list(tasks)}.")
    overrides = dict(overrides or {})
    reserved = sorted(set(overrides) & {"task", "init", "seed", "trainable_eigenvalues", "output_dir", "dt_min",
                                        "dt_max", "ssm_lr", "track_memory"})
    if reserved:
        raise ValueError(f"Override key(s) {reserved} are set by the experiment.")
    dt_min, dt_max = sizes["dt"]
    plan = []

    def add(grid, task, setting, multiplier, delay, position, seed):
        base = get_config(task, "quick", verbose=verbose).replace(**sizes[task])
        if overrides:
            base = base.replace(**overrides)
        where = "listops" if delay is None else f"delay{delay}"
        out = Path(output_dir) / RUNS_DIR / grid / task / setting.dirname / f"lr{multiplier}x" / where / f"seed{seed}"
        data = {} if delay is None else {"delay": int(delay)}
        config = base.replace(seed=seed, trainable_eigenvalues=True, output_dir=str(out),
                              ssm_lr=REFERENCE_SSM_LR * multiplier, data_options=data, **setting.overrides())
        plan.append(DirectionRun(grid, task, setting, int(multiplier), delay, position, seed, config))

    recall = get_config("delayed_recall", "quick").replace(**sizes["delayed_recall"])
    if overrides:
        recall = recall.replace(**overrides)
    for seed in seeds:  # seeds outermost: an experiment stopped early has every cell for its first seeds
        for init in inits:
            setting = Setting.parse(f"{init}@{dt_min:g}:{dt_max:g}")
            for multiplier in lr_multipliers:
                if "delayed_recall" in tasks:
                    for position, delay in edge_delays(setting, recall).items():
                        add("direction", "delayed_recall", setting, multiplier, delay, position, seed)
                if "listops" in tasks:
                    add("direction", "listops", Setting(init), multiplier, None, "task", seed)
    seq_len = int(recall.data_options["seq_len"])
    delays = tuple(sizes["edge_delays"] if edge_delay_grid is None else edge_delay_grid)
    bad = [d for d in delays if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d < seq_len]
    if bad:
        raise ValueError(f"--edge-delays must be integers in [0, {seq_len}), got {bad}.")
    for seed in edge_seeds:
        for text in (sizes["edge_settings"] if edge_settings is None else edge_settings):
            setting = Setting.parse(text)
            for delay in delays:
                add("edge", "delayed_recall", setting, 1, delay, "grid", seed)
    labels = [run.label for run in plan]
    if len(set(labels)) != len(labels):
        raise ValueError("The plan repeats a run (a setting or delay given twice).")
    return plan


# ---------------------------------------------------------------------------------------------
# Running

def _group_key(run):
    return run.grid, run.task, run.setting.dirname, run.lr_multiplier, run.seed


def run_learning_direction(plan, log=print) -> list[RunRecord]:
    """Train every unfinished run of ``plan`` (groups of one model; see the module docstring)."""
    groups: dict = {}
    for run in plan:
        groups.setdefault(_group_key(run), []).append(run)
    status, done = {}, 0
    for runs in groups.values():
        todo = [r for r in runs if not run_finished(r)]
        status.update({r.label: ("skipped", None) for r in runs if r not in todo})
        if todo:
            with contextlib.ExitStack() as locks:  # one writer per run directory
                for run in todo:
                    locks.enter_context(DirectoryLock(run.run_dir, "run directory"))
                for run, outcome in _train_group(todo, log, done, len(plan)):
                    status[run.label] = outcome
        done += len(runs)
    return [_load(run, *status[run.label]) for run in plan]


def _train_group(runs, log, offset, total):
    model = initial = None
    for position, run in enumerate(runs):
        cfg = run.config
        keras.utils.set_random_seed(cfg.seed)
        data = load_training_data(cfg)
        if model is None:
            build_start = time.perf_counter()
            model = build_model(cfg, input_spec_from_info(data.info))
            initial = model.get_weights()
            compile_model(model, cfg, data.steps_per_epoch)
            build_time = time.perf_counter() - build_start
        model.set_weights(initial)
        if model.optimizer.built:
            reset_optimizer(model.optimizer)
        length = int(data.info.seq_len)
        lags = tracked_lags(length) if run.delay is None else sorted({1, run.delay, length - 1})
        tracker = MemoryTracker(run.run_dir, every=data.steps_per_epoch, unit="step", lags=lags,
                                batch=held_batch(data, cfg.batch_size), horizon=2 * length, loss=classification_loss())
        result = fit_and_evaluate(cfg, data, model=model, callbacks=[tracker], on_divergence="keep_best")
        prefix = f"[{offset + position + 1}/{total}] {run.label}"
        if result.best_epoch is None:
            log(f"{prefix}: FAILED: the loss became NaN/inf before the first epoch ended")
            yield run, ("failed", "non-finite loss")
            continue
        plot_memory_tracking(run.run_dir, run.run_dir / TRACKING_PLOT, title=_trajectory_title(run))
        labels = {"grid": run.grid, "setting": run.setting.label, "lr_multiplier": run.lr_multiplier,
                  "delay": run.delay, "position": run.position}
        results = dataclasses.replace(result, build_time_s=build_time, labels=labels).to_dict()
        results["tracking_seconds_per_record"] = float(np.median(tracker.record_seconds))  # the first compiles
        write_json_atomic(run.run_dir / RESULTS_FILE, results)
        log(f"{prefix}: test accuracy {results['test_accuracy']:.3f} ({results['wall_time_s']:.0f} s)")
        yield run, ("trained", None)


def _trajectory_title(run) -> str:
    task = "ListOps" if run.delay is None else f"delayed recall at delay {run.delay} ({run.position} the memory edge)"
    return (f"Eigenvalues and memory during training: {task}, S4D-{run.setting.init.capitalize()}, "
            f"dt in [{run.config.dt_min:g}, {run.config.dt_max:g}], SSM lr {run.config.ssm_lr:g}, seed {run.seed}")


def _load(run, status, error=None) -> RunRecord:
    if status == "failed":
        return RunRecord(run, status, error=error)
    return RunRecord(run, status, results=read_json(run.run_dir / RESULTS_FILE,
                                                    "Delete the run's results.json to train it again."))


def collect_learning_direction(plan) -> list[RunRecord]:
    return [_load(run, "skipped") if run_finished(run) else RunRecord(run, "missing") for run in plan]


# ---------------------------------------------------------------------------------------------
# Measures of one run (from its tracking)

def _sign(x, tol=0.0) -> int:
    return 0 if abs(x) <= tol else int(np.sign(x))


def run_measures(record) -> dict:
    """What one finished run shows: accuracy against chance, the memory and eigenvalue change from the first
    record (initialisation) to the last, and the initial gradient's predicted direction."""
    run, results = record.run, record.results
    tracking = load_memory_tracking(run.run_dir)
    lags = tracking.settings["lags"]
    layers = tracking.layers
    lam = np.concatenate([tracking.array(layer, "eigenvalues").reshape(len(tracking.steps), -1) for layer in layers],
                         axis=1)
    drift = np.log(np.abs(lam[-1])) - np.log(np.abs(lam[0]))                   # per mode, > 0: slower decay
    first_drift = np.log(np.abs(lam[1])) - np.log(np.abs(lam[0]))              # over the first epoch
    push = np.concatenate([tracking.array(layer, "memory_push")[0].reshape(-1) for layer in layers])
    length = np.concatenate([tracking.array(layer, "length") for layer in layers], axis=1)   # (R, channels)
    mf = np.concatenate([tracking.array(layer, "mf") for layer in layers], axis=1)           # (R, channels, lags)
    nonzero = (np.abs(push) > 0) & (np.abs(drift) > 0)
    first_nonzero = (np.abs(push) > 0) & (np.abs(first_drift) > 0)
    num = results["num_examples"]["test"]
    if run.delay is None:
        chance = results["majority_class_rate"]
    else:
        chance = 1.0 / int(run.config.data_options["num_classes"])
    threshold = chance + CHANCE_SIGMAS * np.sqrt(chance * (1 - chance) / num)
    row = {"label": run.label, "grid": run.grid, "task": run.task, "setting": run.setting.label,
           "init": run.setting.init, "lr_multiplier": run.lr_multiplier, "delay": run.delay, "position": run.position,
           "seed": run.seed, "test_accuracy": results["test_accuracy"], "chance": chance,
           "learned": bool(results["test_accuracy"] > threshold), "accuracy_threshold": float(threshold),
           "length_init": float(length[0].mean()), "length_final": float(length[-1].mean()),
           "length_change": float(length[-1].mean() - length[0].mean()),
           "log_magnitude_drift": float(drift.mean()), "predicted_push": float(push.sum()),
           "sign_match": _sign(push.sum()) == _sign(drift.mean()) and _sign(drift.mean()) != 0,
           "mode_sign_agreement": float(np.mean(np.sign(push[nonzero]) == np.sign(drift[nonzero])))
           if nonzero.any() else None,
           "first_epoch_mode_sign_agreement": float(np.mean(np.sign(push[first_nonzero]) == np.sign(first_drift[first_nonzero])))
           if first_nonzero.any() else None,
           "max_abs_eigenvalue": float(np.abs(lam).max()), "finite": bool(np.all(np.isfinite(lam))),
           "steps": int(tracking.steps[-1]), "wall_time_s": results["wall_time_s"],
           "train_seconds_per_step": 1.0 / results["train_steps_per_second"] if results.get("train_steps_per_second")
           else None,
           "tracking_seconds_per_record": results.get("tracking_seconds_per_record")}
    if run.delay is not None:
        j = lags.index(run.delay)
        row.update(mf_init_mean=float(mf[0, :, j].mean()), mf_init_max=float(mf[0, :, j].max()),
                   mf_final_mean=float(mf[-1, :, j].mean()),
                   mf_change=float(mf[-1, :, j].mean() - mf[0, :, j].mean()))
    return row


# ---------------------------------------------------------------------------------------------
# Statistics

def direction_of(changes) -> dict:
    """Mean, sample std and the 95% t confidence interval of per-seed changes; "extends" when the interval lies
    above 0, "shortens" below, else "none"."""
    x = np.asarray([c for c in changes if c is not None and np.isfinite(c)], np.float64)
    stat = mean_std(x)
    if x.size < 2 or np.all(x == x[0]):
        low = high = float(x.mean()) if x.size else None
    else:
        low, high = (float(v) for v in scipy.stats.ttest_1samp(x, 0.0).confidence_interval(0.95))
    direction = "none" if low is None else "extends" if low > 0 else "shortens" if high < 0 else "none"
    return {**stat, "ci95": [low, high], "direction": direction}


def roc_auc(scores, labels) -> dict:
    """ROC AUC of ``scores`` for boolean ``labels`` (the Mann-Whitney U / (n1 n0)) and the threshold t of largest
    Youden J = TPR - FPR for the rule "score >= t"."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        return {"auc": None, "threshold": None, "youden_j": None, "positives": int(positives.size),
                "negatives": int(negatives.size)}
    u = scipy.stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    best = (-1.0, None)
    for t in np.unique(scores):
        j = np.mean(positives >= t) - np.mean(negatives >= t)
        if j > best[0]:
            best = (float(j), float(t))
    return {"auc": float(u / (positives.size * negatives.size)), "threshold": best[1], "youden_j": best[0],
            "positives": int(positives.size), "negatives": int(negatives.size)}


def summarise(rows) -> dict:
    """Per cell of the direction grid: direction of the memory-length change, sign agreement, accuracy,
    stability; per (init, delay): MF at init, accuracy, MF change; the learnable edge over every delayed-recall
    run at the reference learning rate."""
    cells = {}
    for row in rows:
        if row["grid"] == "direction":
            cells.setdefault((row["task"], row["position"], row["init"], row["lr_multiplier"]), []).append(row)
    summary_cells = []
    for (task, position, init, multiplier), group in sorted(cells.items(), key=lambda kv: (
            kv[0][0], POSITIONS.index(kv[0][1]) if kv[0][1] in POSITIONS else 9, kv[0][2], kv[0][3])):
        agreements = [r["mode_sign_agreement"] for r in group if r["mode_sign_agreement"] is not None]
        summary_cells.append({
            "task": task, "position": position, "init": init, "lr_multiplier": multiplier,
            "delay": group[0]["delay"], "runs": len(group),
            "length_change": direction_of([r["length_change"] for r in group]),
            "log_magnitude_drift": direction_of([r["log_magnitude_drift"] for r in group]),
            "mf_change": direction_of([r.get("mf_change") for r in group]) if group[0]["delay"] is not None else None,
            "sign_matches": int(sum(r["sign_match"] for r in group)),
            "mode_sign_agreement": mean_std(agreements),
            "first_epoch_mode_sign_agreement": mean_std([r["first_epoch_mode_sign_agreement"] for r in group
                                                         if r["first_epoch_mode_sign_agreement"] is not None]),
            "test_accuracy": mean_std([r["test_accuracy"] for r in group]),
            "mf_init_mean": mean_std([r.get("mf_init_mean") for r in group]) if group[0]["delay"] is not None else None,
            "learned_runs": int(sum(r["learned"] for r in group)),
            "max_abs_eigenvalue": float(max(r["max_abs_eigenvalue"] for r in group)),
            "all_finite": all(r["finite"] for r in group),
        })
    edge_rows = [r for r in rows if r["task"] == "delayed_recall" and r["lr_multiplier"] == 1]
    edge = {"runs": len(edge_rows),
            "mean_channel": roc_auc([r["mf_init_mean"] for r in edge_rows], [r["learned"] for r in edge_rows]),
            "best_channel": roc_auc([r["mf_init_max"] for r in edge_rows], [r["learned"] for r in edge_rows])}
    direction_rows = [r for r in rows if r["grid"] == "direction"]
    agreements = [r["mode_sign_agreement"] for r in direction_rows if r["mode_sign_agreement"] is not None]
    per_lr = {}
    for multiplier in sorted({r["lr_multiplier"] for r in direction_rows}):
        group = [r for r in direction_rows if r["lr_multiplier"] == multiplier]
        per_lr[str(multiplier)] = {"runs": len(group), "sign_matches": int(sum(r["sign_match"] for r in group)),
                                   "length_change": direction_of([r["length_change"] for r in group]),
                                   "mode_sign_agreement": mean_std([r["mode_sign_agreement"] for r in group
                                                                    if r["mode_sign_agreement"] is not None]),
                                   "first_epoch_mode_sign_agreement": mean_std(
                                       [r["first_epoch_mode_sign_agreement"] for r in group
                                        if r["first_epoch_mode_sign_agreement"] is not None])}
    return {"cells": summary_cells, "edge": edge, "per_lr": per_lr,
            "sign_matches": int(sum(r["sign_match"] for r in direction_rows)), "direction_runs": len(direction_rows),
            "mode_sign_agreement": mean_std(agreements),
            "tracking_seconds_per_record": float(np.median([r["tracking_seconds_per_record"] for r in rows]))
            if rows else None,
            "train_seconds_per_step": float(np.median([r["train_seconds_per_step"] for r in rows])) if rows else None}


# ---------------------------------------------------------------------------------------------
# Report

def plot_directions(rows, path) -> bool:
    """Memory-length change against the SSM learning rate, one panel per task cell, points per seed."""
    direction = [r for r in rows if r["grid"] == "direction"]
    if not direction:
        return False
    panels = sorted({(r["task"], r["position"]) for r in direction},
                    key=lambda p: (p[0], POSITIONS.index(p[1]) if p[1] in POSITIONS else 9))
    inits = sorted({r["init"] for r in direction})
    fig = Figure(figsize=(3.3 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (task, position) in zip(axes, panels):
        group = [r for r in direction if (r["task"], r["position"]) == (task, position)]
        for k, init in enumerate(inits):
            mine = [r for r in group if r["init"] == init]
            xs = np.array([np.log10(r["lr_multiplier"]) + 0.08 * (k - 0.5) for r in mine])
            ax.plot(xs, [r["length_change"] for r in mine], "o", color=f"C{k}", alpha=0.55, ms=4,
                    label=f"S4D-{init.capitalize()} (one seed)")
            means = {}
            for r in mine:
                means.setdefault(r["lr_multiplier"], []).append(r["length_change"])
            ms = sorted(means)
            ax.plot(np.log10(ms) + 0.08 * (k - 0.5), [np.mean(means[m]) for m in ms], "-", color=f"C{k}", lw=1.5)
        ax.axhline(0, color="0.5", lw=0.8)
        delay = group[0]["delay"]
        ax.set_title("ListOps" if delay is None else f"recall, delay {delay} ({position} edge)", fontsize=10)
        ax.set_xticks(np.log10(LR_MULTIPLIERS), [f"x{m}" for m in LR_MULTIPLIERS])
        ax.set_xlabel(f"SSM learning rate (x {REFERENCE_SSM_LR:g})")
    axes[0].set_ylabel("memory length change (lags)\n(trained - initial, mean over channels)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Which way training moves memory length (> 0: longer memory); line = mean over seeds",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def plot_edge(rows, summary, path) -> bool:
    """Test accuracy against MF(delay) at initialisation (best channel), learned runs filled."""
    recall = [r for r in rows if r["task"] == "delayed_recall" and r["lr_multiplier"] == 1]
    if not recall:
        return False
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    floor = 1e-6
    settings = sorted({r["setting"] for r in recall})
    for k, setting in enumerate(settings):
        mine = [r for r in recall if r["setting"] == setting]
        x = np.maximum([r["mf_init_max"] for r in mine], floor)
        y = [r["test_accuracy"] for r in mine]
        filled = np.array([r["learned"] for r in mine])
        ax.scatter(x[filled], np.asarray(y)[filled], color=f"C{k}", s=22, label=f"{setting}: learned")
        ax.scatter(x[~filled], np.asarray(y)[~filled], facecolors="none", edgecolors=f"C{k}", s=22,
                   label=f"{setting}: not learned")
    chance = recall[0]["chance"]
    ax.axhline(chance, color="0.5", lw=0.8, ls="--", label="chance")
    threshold = summary["edge"]["best_channel"]["threshold"]
    if threshold is not None:
        ax.axvline(max(threshold, floor), color="k", lw=0.8, ls=":",
                   label=f"threshold MF = {threshold:.3g} (Youden)")
    ax.set_xscale("log")
    ax.set_xlabel(f"MF(delay) at initialisation, best channel (values < {floor:g} drawn at {floor:g})")
    ax.set_ylabel("test accuracy")
    auc = summary["edge"]["best_channel"]["auc"]
    ax.set_title("Does the initial memory at the delay predict learning it? "
                 + ("" if auc is None else f"ROC AUC {auc:.2f}"), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _scale(plan, task) -> str:
    c = next(r.config for r in plan if r.task == task)
    data = c.data_options
    sizes = ", ".join(f"{key} {data[key]}" for key in ("seq_len", "max_length", "num_train") if key in data)
    return (f"{task}: {c.num_layers} layer(s) x H = {c.d_model}, N = {c.d_state}, "
            f"{'bidirectional' if c.bidirectional else 'causal'}, {sizes}, {c.epochs} epochs, batch {c.batch_size}")


def _seconds(value):
    return "n/a" if value is None else f"{1e3 * value:.0f} ms"


def _ci(stat, digits=2):
    low, high = stat["ci95"]
    return "n/a" if low is None else f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def write_report(records, report_dir, *, plan, command, version, preset) -> dict:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    finished = [r for r in records if r.finished]
    rows = [run_measures(r) for r in finished]
    summary = summarise(rows)
    figures = {"direction": plot_directions(rows, report_dir / DIRECTION_PLOT),
               "edge": plot_edge(rows, summary, report_dir / EDGE_PLOT)}
    trajectories = _plot_trajectories(finished, report_dir)
    failed = sum(r.status == "failed" for r in records)
    lines = [
        "# Learning direction: which way training moves the eigenvalues, and whether the initial memory predicts it",
        "",
        f"- command: `{command}`",
        f"- scale: preset `{preset}`; " + "; ".join(_scale(plan, task) for task in ("delayed_recall", "listops")
                                                 if any(r.task == task for r in plan))
        + f"; learned eigenvalues and dt; SSM learning rates {sorted({r.config.ssm_lr for r in plan})}; seeds per "
        f"cell: {len({r.seed for r in plan if r.grid == 'direction'})} (direction grid), "
        f"{len({r.seed for r in plan if r.grid == 'edge'})} (edge grid)",
        f"- code version: {version}, backend {keras.backend.backend()}, "
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- runs: {len(finished)} of {len(records)} finished ({failed} failed); summed run wall time "
        f"{sum(r['wall_time_s'] for r in rows) / 60:.1f} min; tracking cost: median "
        f"{_seconds(summary['tracking_seconds_per_record'])} per record (one per epoch) against a median training "
        f"step of {_seconds(summary['train_seconds_per_step'])}",
        "",
        "Measures (per run, from its `keras_ssm.MemoryTracker` records at initialisation and at each epoch end): "
        "memory length = lag holding 90% of MC (closed form, horizon 2 x length, mean over channels); "
        "drift = mean over modes of log|lambda| trained - initial (> 0: slower decay); predicted = sign of the "
        "initial memory push (`keras_ssm.gradient_by_lag` on a held validation batch, summed over lags and modes); "
        "mode agreement = share of modes whose drift (over all of training; over the first epoch) has the sign of "
        "their own initial push (0.5 = no prediction). Direction: the 95% "
        "t interval of the per-seed memory-length change above 0 = extends, below = shortens, else none.",
        "",
        "## Direction per cell",
        "",
    ]
    if figures["direction"]:
        lines += [f"![learning direction]({DIRECTION_PLOT})", ""]
    lines += ["| task | delay (vs edge) | init | SSM lr | memory length change | 95% CI | direction | "
              "drift log|λ| | predicted = measured sign | mode agreement (all / 1st epoch) | MF(delay) init | MF(delay) change | "
              "test accuracy | learned | max |λ| |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in summary["cells"]:
        delay = "-" if c["delay"] is None else f"{c['delay']} ({c['position']})"
        lines.append(
            f"| {c['task']} | {delay} | {c['init']} | x{c['lr_multiplier']} | {format_stat(c['length_change'], 2)} | "
            f"{_ci(c['length_change'])} | {c['length_change']['direction']} | "
            f"{format_stat(c['log_magnitude_drift'], 2, scale=1e3)}e-3 | {c['sign_matches']}/{c['runs']} | "
            f"{format_stat(c['mode_sign_agreement'], 2)} / {format_stat(c['first_epoch_mode_sign_agreement'], 2)} | "
            f"{'-' if c['mf_init_mean'] is None else format_stat(c['mf_init_mean'], 3)} | "
            f"{'-' if c['mf_change'] is None else format_stat(c['mf_change'], 3)} | "
            f"{format_stat(c['test_accuracy'], 3)} | {c['learned_runs']}/{c['runs']} | "
            f"{c['max_abs_eigenvalue']:.6f}{'' if c['all_finite'] else ' (non-finite!)'} |")
    lines += ["", "## Per learning rate", "",
              "| SSM lr | runs | predicted = measured sign | mode agreement (all / 1st epoch) | memory length change | "
              "95% CI | direction |",
              "|---|---|---|---|---|---|---|"]
    for multiplier, s in summary["per_lr"].items():
        lines.append(f"| x{multiplier} | {s['runs']} | {s['sign_matches']}/{s['runs']} | "
                     f"{format_stat(s['mode_sign_agreement'], 2)} / "
                     f"{format_stat(s['first_epoch_mode_sign_agreement'], 2)} | {format_stat(s['length_change'], 2)} | "
                     f"{_ci(s['length_change'])} | {s['length_change']['direction']} |")
    edge = summary["edge"]
    lines += ["", "## The learnable edge", "",
              f"Every delayed-recall run at the reference SSM learning rate ({edge['runs']} runs: the edge grid and "
              f"the direction grid's x1 runs). Learned = test accuracy above chance by {CHANCE_SIGMAS:g} binomial "
              f"standard errors.", ""]
    if figures["edge"]:
        lines += [f"![learnable edge]({EDGE_PLOT})", ""]
    lines += ["| MF(delay) at init | ROC AUC | threshold (largest Youden J) | J | learned runs | not learned |",
              "|---|---|---|---|---|---|"]
    for name, words in (("best_channel", "best channel"), ("mean_channel", "mean over channels")):
        e = edge[name]
        auc = "n/a" if e["auc"] is None else f"{e['auc']:.3f}"
        thr = "n/a" if e["threshold"] is None else f"{e['threshold']:.3g}"
        j = "n/a" if e["youden_j"] is None else f"{e['youden_j']:.2f}"
        lines.append(f"| {words} | {auc} | {thr} | {j} | {e['positives']} | {e['negatives']} |")
    if trajectories:
        lines += ["", "## Trajectories", ""]
        lines += [f"![{name}]({name})" for name in trajectories]
    lines += ["", "## Runs", "", "| run | test accuracy | learned | length init -> final | drift log|λ| (1e-3) | "
              "predicted push | MF(delay) init (mean / best) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mf = "-" if r["delay"] is None else f"{r['mf_init_mean']:.3g} / {r['mf_init_max']:.3g}"
        lines.append(f"| {r['label']} | {r['test_accuracy']:.3f} | {'yes' if r['learned'] else 'no'} | "
                     f"{r['length_init']:.1f} -> {r['length_final']:.1f} | {1e3 * r['log_magnitude_drift']:+.3f} | "
                     f"{r['predicted_push']:+.3g} | {mf} |")
    for r in records:
        if r.status != "trained" and not r.finished:
            lines.append(f"| {r.run.label} | {r.status} | | | | | |")
    markdown = "\n".join(lines) + "\n"
    write_text_atomic(report_dir / REPORT_MD, markdown)
    write_json_atomic(report_dir / REPORT_JSON, {"command": command, "version": version, "preset": preset,
                                                 "summary": summary, "runs": rows,
                                                 "missing": [r.run.label for r in records if not r.finished]})
    return {"markdown": markdown, "failed": failed, "summary": summary}


def _plot_trajectories(finished, report_dir) -> list:
    """Tracking plots (drawn anew from each run's tracking files) of the first seed's delayed-recall runs at the
    memory edge, one per init and learning rate, next to the report."""
    if not finished:
        return []
    first_seed = min(r.run.seed for r in finished)
    names = []
    for record in finished:
        run = record.run
        if run.grid == "direction" and run.position == "at" and run.seed == first_seed \
                and (run.run_dir / TRACKING_JSON).exists():
            name = f"trajectory_{run.setting.init}_lr{run.lr_multiplier}x.png"
            plot_memory_tracking(run.run_dir, Path(report_dir) / name, title=_trajectory_title(run))
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# The command line: python zoo/experiment.py learning-direction

class LearningDirection(Experiment):
    """``python zoo/experiment.py learning-direction`` (zoo.protocol)."""

    name = "learning-direction"
    group = "grid, task, setting, learning rate and seed (its delays share one compiled model)"

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog="python zoo/experiment.py learning-direction",
            description="Which way gradient descent moves the eigenvalues (memory length and log|lambda| from "
                        "initialisation to the end, with keras_ssm.MemoryTracker), whether the initial gradient by "
                        "lag predicts it, and whether MF(delay) at initialisation predicts learning the delay. "
                        "Delayed recall at delays inside, at and beyond the init's memory edge, and ListOps; "
                        "S4D-Inv and S4D-Lin; SSM learning rate x1, x10, x100 of 0.001.")
        parser.add_argument("--preset", choices=tuple(PRESETS), default="quick",
                            help="sizes: quick = a 2-core CPU (1 layer, H=16, N=16, length 128), full = an "
                                 "accelerator (default: quick).")
        parser.add_argument("--seeds", type=int, default=None, help="seeds per direction cell (default: the preset's, 5).")
        parser.add_argument("--edge-seeds", type=int, default=None, help="seeds per edge-grid run (default: the preset's).")
        parser.add_argument("--inits", nargs="+", default=None, help="eigenvalue inits (default: inv lin).")
        parser.add_argument("--lr-multipliers", nargs="+", type=int, default=list(LR_MULTIPLIERS),
                            help="multiples of the reference SSM learning rate 0.001 (default: 1 10 100).")
        parser.add_argument("--tasks", nargs="+", default=["delayed_recall", "listops"],
                            help="direction-grid tasks (default: delayed_recall listops).")
        parser.add_argument("--edge-settings", nargs="*", default=None, metavar="SETTING",
                            help="edge-grid settings INIT@DT_MIN:DT_MAX (default: the preset's; none: no edge grid).")
        parser.add_argument("--edge-delays", nargs="+", type=int, default=None, help="edge-grid delays (default: the preset's).")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a TrainConfig key of every run, e.g. --set epochs=2.")
        parser.add_argument("--output-dir", default=None, help="runs and report (default: runs/learning-direction-<preset>).")
        parser.add_argument("--report-dir", default=None, help="where the report goes (default: --output-dir).")
        parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=0, help="Keras fit verbosity (default 0).")
        return parser

    def plan_from_args(self, args) -> list[DirectionRun]:
        args.output_dir = args.output_dir or str(Path("runs") / f"learning-direction-{args.preset}")
        for name in ("seeds", "edge_seeds"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
        return plan_learning_direction(preset=args.preset, seeds=args.seeds, inits=args.inits,
                                       lr_multipliers=args.lr_multipliers, tasks=args.tasks,
                                       edge_settings=args.edge_settings, edge_delay_grid=args.edge_delays,
                                       edge_seeds=args.edge_seeds, output_dir=args.output_dir,
                                       overrides=parse_set_overrides(args.set), verbose=args.verbose)

    def group_key(self, run):
        return _group_key(run)

    def run(self, plan) -> list[RunRecord]:
        return run_learning_direction(plan)

    def collect(self, plan) -> list[RunRecord]:
        return collect_learning_direction(plan)

    def report(self, records, report_dir, *, plan, command: str, version: str, args) -> dict:
        return write_report(records, report_dir, plan=plan, command=command, version=version, preset=args.preset)
