"""The report of the fixed-versus-learned eigenvalue experiment (zoo.fixed_vs_learned): statistics, tables, plots.

For every (task, init) group and setting ("fixed", "learned") over seeds:

* test accuracy (of the best-validation checkpoint), mean +- sample std over seeds;
* convergence: the first epoch e (1-based) with val_acc[e] >= 0.95 * val_acc[last epoch], and the training
  time up to the end of that epoch (sum of the per-epoch ``train_time_s`` of history.csv);
* parameter counts: trainable, frozen (the fixed eigenvalues) and the frozen fraction;
* memory (keras_ssm.memory, finite horizon T = sequence length): memory capacity MC = sum_k MF(k) and memory
  length (lag holding 90% of MC), averaged over the channels and SSM layers of a run, at initialisation and
  after training; for delayed recall also MF at the recalled lag.

Paired over seeds (the two settings share seed, initial weights and data order): the difference
learned - fixed, a paired t-test (scipy.stats.ttest_rel) and a Wilcoxon signed-rank test
(scipy.stats.wilcoxon, computed when at least 3 differences are nonzero; its smallest attainable two-sided
p-value with n nonzero differences is 2 / 2**n, so p < 0.05 needs n >= 6).

Outputs in the experiment directory: report.json (every per-seed number), report.md (tables + plots), and
validation_curves.png plus memory_<task>_<init>.png.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from keras_ssm.memory.plotting import MF_AXIS_LABEL, plot_memory_comparison
from zoo.analysis import load_analysis_arrays, task_delay
from zoo.data import task_options
from zoo.reporting import code_version, figure, format_number, format_p, format_stat, mean_std, paired_comparison
from zoo.rundir import (
    HISTORY_FILE,
    REPORT_JSON,
    REPORT_MD,
    VALIDATION_CURVES_PLOT,
    write_json_atomic,
    write_text_atomic,
)
from zoo.runs import read_history

#: The two settings of every pair: eigenvalues frozen (the reservoir setting) and learned.
SETTINGS = ("fixed", "learned")

CONVERGENCE_FRACTION = 0.95


# ---------------------------------------------------------------------------------------------
# Small pure statistics

def epochs_to_fraction(values, fraction: float = CONVERGENCE_FRACTION):
    """First epoch (1-based) whose value reaches ``fraction`` of the last epoch's value, or None.

    e* = min { e : values[e-1] >= fraction * values[-1] }. None for an empty or non-finite curve.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values[-1]):
        return None
    reached = np.flatnonzero(values >= fraction * values[-1])
    return int(reached[0]) + 1


def time_to_epoch(epoch_times, epoch):
    """Training seconds up to the end of ``epoch`` (1-based): sum of the first ``epoch`` epoch times."""
    if epoch is None:
        return None
    times = np.asarray(epoch_times, dtype=np.float64)[:epoch]
    return float(np.sum(times)) if times.size == epoch and np.all(np.isfinite(times)) else None


# ---------------------------------------------------------------------------------------------
# Gathering the per-run numbers

def _run_numbers(record) -> dict:
    """The per-run numbers the report uses, from results.json, history.csv and analysis.json."""
    run, results, analysis = record.run, record.results, record.analysis
    history = read_history(run.run_dir / HISTORY_FILE)
    val_acc = history.get("val_accuracy", np.zeros(0))
    epoch_times = history.get("train_time_s", np.full(val_acc.shape, np.nan))
    converged = epochs_to_fraction(val_acc)
    layers = analysis["layers"]

    def layer_mean(stage, key, reduce=np.mean):
        values = [layer[stage][key] for layer in layers.values() if key in layer[stage]]
        return float(reduce(values)) if values else None

    return {
        "seed": run.seed,
        "test_accuracy": results["test_accuracy"],
        "best_val_accuracy": results["best_val_accuracy"],
        "final_val_accuracy": float(val_acc[-1]) if val_acc.size else None,
        # Overfitting: last epoch's training accuracy minus its validation accuracy.
        "train_val_gap": (float(history["accuracy"][-1] - val_acc[-1])
                          if val_acc.size and history.get("accuracy", np.zeros(0)).size else None),
        "majority_class_rate": results["majority_class_rate"],
        "epochs": int(val_acc.size),
        "epochs_to_95": converged,
        "time_to_95_s": time_to_epoch(epoch_times, converged),
        "train_time_s": results["train_time_s"],
        "wall_time_s": results["wall_time_s"],
        "params_trainable": results["params_trainable"],
        "params_frozen": results["params_frozen"],
        "frozen_fraction": results["frozen_fraction"],
        "mc_initial": layer_mean("initial", "capacity"),
        "mc_trained": layer_mean("trained", "capacity"),
        "length_initial": layer_mean("initial", "length"),
        "length_trained": layer_mean("trained", "length"),
        "length_change": layer_mean("trained", "length") - layer_mean("initial", "length"),
        "mf_at_delay_initial": layer_mean("initial", "mf_at_delay_mean"),
        "mf_at_delay_trained": layer_mean("trained", "mf_at_delay_mean"),
        "mf_at_delay_initial_max": layer_mean("initial", "mf_at_delay_max", np.max),
        "mf_at_delay_trained_max": layer_mean("trained", "mf_at_delay_max", np.max),
        "eigenvalues_identical": all(layer["eigenvalues_identical"] for layer in layers.values()),
        "eigenvalue_max_abs_change": max(layer["eigenvalue_max_abs_change"] for layer in layers.values()),
        "initial_weights_fingerprint": analysis["initial_weights_fingerprint"],
        "val_accuracy_curve": [float(v) for v in val_acc],
        "num_examples": results["num_examples"],
        "seq_len": results["seq_len"],
        "backend": results["backend"],
    }


SUMMARY_KEYS = ("test_accuracy", "best_val_accuracy", "final_val_accuracy", "train_val_gap", "epochs_to_95",
                "time_to_95_s", "train_time_s", "wall_time_s", "params_trainable", "params_frozen", "frozen_fraction",
                "mc_initial", "mc_trained", "length_initial", "length_trained", "length_change",
                "mf_at_delay_initial", "mf_at_delay_trained", "mf_at_delay_initial_max", "mf_at_delay_trained_max")


def _scale(config, numbers) -> dict:
    """What produced a group's numbers: model size, data size, optimisation budget."""
    example = numbers[0]
    return {
        "preset": config.preset, "model": config.model, "num_layers": config.num_layers,
        "d_model": config.d_model, "d_state": config.d_state, "bidirectional": config.bidirectional,
        "pooling": getattr(config, "pooling", "mean"), "norm": config.norm, "dt_min": config.dt_min,
        "dt_max": config.dt_max, "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
        "ssm_lr": config.ssm_lr, "weight_decay": config.weight_decay, "data_options": dict(config.data_options),
        "num_examples": example["num_examples"], "seq_len": example["seq_len"], "backend": example["backend"],
    }


def build_report(records, *, command: str | None = None, title: str | None = None) -> dict:
    """The report dict (report.json) from run records (zoo.fixed_vs_learned.run_experiment / collect_records)."""
    groups: dict = {}
    failures, missing = [], []
    for record in records:
        run = record.run
        key = (run.task, run.init)
        group = groups.setdefault(key, {"task": run.task, "init": run.init, "config": run.config,
                                        "settings": {s: [] for s in SETTINGS}, "runs": []})
        if record.status == "failed":
            failures.append({"run": run.label, "error": record.error})
            continue
        if record.status == "missing":
            missing.append(run.label)
            continue
        group["settings"][run.setting].append(_run_numbers(record))
        group["runs"].append(run)

    out_groups = []
    for (task, init), group in groups.items():
        per_setting = {s: sorted(group["settings"][s], key=lambda r: r["seed"]) for s in SETTINGS}
        all_numbers = per_setting["fixed"] + per_setting["learned"]
        if not all_numbers:
            continue
        summary = {s: {k: mean_std([r[k] for r in per_setting[s]]) for k in SUMMARY_KEYS} for s in SETTINGS}
        by_seed = {s: {r["seed"]: r for r in per_setting[s]} for s in SETTINGS}
        paired_seeds = sorted(set(by_seed["fixed"]) & set(by_seed["learned"]))
        paired = {}
        for key in ("test_accuracy", "epochs_to_95", "time_to_95_s", "length_trained"):
            pairs = [(by_seed["fixed"][s][key], by_seed["learned"][s][key]) for s in paired_seeds]
            pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
            if pairs:
                paired[key] = paired_comparison([p[0] for p in pairs], [p[1] for p in pairs])
        same_init = [by_seed["fixed"][s]["initial_weights_fingerprint"]
                     == by_seed["learned"][s]["initial_weights_fingerprint"] for s in paired_seeds]
        out_groups.append({
            "task": task, "init": init, "seeds": paired_seeds,
            "scale": _scale(group["config"], all_numbers),
            "delay": task_delay(group["config"]),
            "per_seed": per_setting, "summary": summary, "paired": paired,
            "initial_weights_identical_across_settings": bool(same_init) and all(same_init),
            "fixed_eigenvalues_unchanged": all(r["eigenvalues_identical"] for r in per_setting["fixed"]),
            "learned_eigenvalues_changed": all(not r["eigenvalues_identical"] for r in per_setting["learned"]),
        })
    return {
        "title": title or "Fixed versus learned eigenvalues",
        "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count()},
        "code": code_version(),
        "convergence_fraction": CONVERGENCE_FRACTION,
        "groups": out_groups,
        "total_run_wall_time_s": float(sum(r["wall_time_s"] for g in out_groups for s in SETTINGS
                                           for r in g["per_seed"][s])),
        "failed_runs": failures,
        "missing_runs": missing,
    }


# ---------------------------------------------------------------------------------------------
# Plots

def plot_validation_curves(report: dict, path) -> bool:
    """One panel per (task, init): validation accuracy per epoch, mean over seeds with a +-1 std band, for
    both settings, and the test majority-class rate. Returns False when there is nothing to plot."""
    groups = [g for g in report["groups"] if any(g["per_seed"][s] for s in SETTINGS)]
    if not groups:
        return False
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig = figure(max(4.4 * ncols, 5.5), 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for panel, group in enumerate(groups):
        ax = axes[panel // ncols][panel % ncols]
        for index, setting in enumerate(SETTINGS):
            curves = [r["val_accuracy_curve"] for r in group["per_seed"][setting] if r["val_accuracy_curve"]]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            values = np.asarray([c[:length] for c in curves])
            epochs = np.arange(1, length + 1)
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            ax.plot(epochs, mean, marker="o", markersize=3, color=f"C{index}",
                    label=f"{setting} (n={len(values)})")
            ax.fill_between(epochs, mean - std, mean + std, color=f"C{index}", alpha=0.2, lw=0)
        majority = [r["majority_class_rate"] for s in SETTINGS for r in group["per_seed"][s]]
        if majority:
            ax.axhline(majority[0], color="gray", ls="--", lw=1, label="majority class")
        ax.set_title(f"{group['task']} ({group['init']})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("validation accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    for panel in range(len(groups), nrows * ncols):
        axes[panel // ncols][panel % ncols].set_visible(False)
    fig.suptitle("Validation accuracy: mean over seeds, band = ±1 std", fontsize=10)
    fig.savefig(path, dpi=120)
    return True


def memory_plot_name(task: str, init: str) -> str:
    return f"memory_{task}_{init}.png"


def plot_group_memory(records, task: str, init: str, path, delay: int | None = None) -> bool:
    """Per-layer memory functions of one (task, init) group: at initialisation, and after training for
    each setting; channels of all seeds pooled (mean curve, 10-90% band over channels x seeds)."""
    sets = {"initial": {}, "fixed, trained": {}, "learned, trained": {}}
    for record in records:
        run = record.run
        if (run.task, run.init) != (task, init) or record.analysis is None:
            continue
        arrays = load_analysis_arrays(run.run_dir)
        if run.setting == "learned":
            for layer, values in arrays["mf_initial"].items():
                sets["initial"].setdefault(layer, []).append(values)
        for layer, values in arrays["mf_trained"].items():
            sets[f"{run.setting}, trained"].setdefault(layer, []).append(values)
    sets = {label: {layer: np.concatenate(chunks, axis=0) for layer, chunks in layers.items()}
            for label, layers in sets.items() if layers}
    if not sets:
        return False
    fig = plot_memory_comparison(
        sets, None, title=f"Memory of each SSM layer, {task} ({init} init), seeds pooled",
        caption=("MF(k): the share of the input from k steps back that the best linear readout of the layer's "
                 "state recovers; finite window (state from zero at each sequence start, as in the tables): the "
                 "rise at the last lags is the window's edge, where the oldest inputs have no older ones to "
                 "interfere with."))
    if delay is not None:
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            ax.axvline(delay, color="black", ls=":", lw=1)
            if ax.get_ylabel() == MF_AXIS_LABEL:  # the MF panels, not the difference panels under them
                ax.text(delay, 0.98, f" lag {delay}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
    fig.savefig(path, dpi=120)
    return True


# ---------------------------------------------------------------------------------------------
# Markdown: one function per section, each returning its lines

def _setting_rows(groups):
    """(group, setting, summary) for every setting of every group that has finished runs: one table row each."""
    for g in groups:
        for setting in SETTINGS:
            if g["summary"][setting]["test_accuracy"]["n"]:
                yield g, setting, g["summary"][setting]


def _header_lines(report) -> list[str]:
    """Title, command, and when/where/from which code the report was written."""
    lines = [f"# {report['title']}", ""]
    if report.get("command"):
        lines += ["Command (from the repository root):", "", f"    {report['command']}", ""]
    machine = report["machine"]
    code = report.get("code") or {}
    version = (f"code at git commit {code['commit']}" + (" with uncommitted changes to tracked files"
                                                        if code.get("dirty") else "")
               if code.get("commit") else "code version unknown (no git)")
    return lines + [f"Created {report['created_utc']} on {machine['platform']} ({machine['cpu_count']} CPU cores "
                    f"visible), Python {machine['python']}, {version} (when the report was written).", ""]


def _scale_lines(report) -> list[str]:
    """Model, data and optimisation budget of every group, and the total run time."""
    groups = report["groups"]
    lines = ["## Scale of every number below", "",
             "All numbers come from these runs and nothing else: no extrapolation to other sizes.", "",
             "| task | init | preset | model | dt range | data (train / val / test, length) | epochs × batch | "
             "lr / SSM lr | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        s = g["scale"]
        n = s["num_examples"]
        lines.append(
            f"| {g['task']} | {g['init']} | {s['preset']} | {s['model']} {s['num_layers']} × H={s['d_model']} × N={s['d_state']}, "
            f"{'bidirectional' if s['bidirectional'] else 'causal'}, {s['pooling']} pooling | [{s['dt_min']:g}, {s['dt_max']:g}] | "
            f"{n['train']} / {n['val']} / {n['test']}, L={s['seq_len']} | {s['epochs']} × {s['batch_size']} | "
            f"{s['lr']:g} / {s['ssm_lr']:g} | {len(g['seeds'])} ({', '.join(map(str, g['seeds']))}) |")
    runs = sum(len(g["per_seed"][s]) for g in groups for s in SETTINGS)
    return lines + ["", f"Backend {groups[0]['scale']['backend']}. Test accuracy is that of the best-validation epoch. "
                    f"{runs} runs, {report['total_run_wall_time_s'] / 60:.1f} min of run wall time in all (training, "
                    f"evaluation and per-run plots; the memory analysis comes on top).", ""]


def _accuracy_lines(report) -> list[str]:
    """Test accuracy, convergence and parameter counts per group and setting; the majority-class rates."""
    groups = report["groups"]
    lines = ["## Test accuracy, convergence and parameters", "",
             f"Mean ± sample std over seeds. Convergence: first epoch whose validation accuracy reaches "
             f"{int(100 * report['convergence_fraction'])}% of the last epoch's, and the training time up to "
             f"the end of that epoch (it says nothing where the validation accuracy stays at chance). Frozen "
             f"parameters are the fixed eigenvalue parameters (log dt, Re a, Im a).", "",
             "| task | init | eigenvalues | n | test acc | best val acc | train − val acc, last epoch (points) | "
             "epochs to 95% | train time to 95% (s) | train time (s) | trainable params | frozen params (fraction) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, setting, m in _setting_rows(groups):
        lines.append(
            f"| {g['task']} | {g['init']} | {setting} | {m['test_accuracy']['n']} | "
            f"{format_stat(m['test_accuracy'], 2, 100)}% | {format_stat(m['best_val_accuracy'], 2, 100)}% | "
            f"{format_stat(m['train_val_gap'], 2, 100)} | {format_stat(m['epochs_to_95'], 1)} | {format_stat(m['time_to_95_s'], 0)} | {format_stat(m['train_time_s'], 0)} | "
            f"{int(m['params_trainable']['mean']):,} | {int(m['params_frozen']['mean']):,} "
            f"({100 * m['frozen_fraction']['mean']:.1f}%) |")
    majority = {}  # per task, from its first finished run
    for g in groups:
        for runs in [g["per_seed"][s] for s in SETTINGS if g["per_seed"][s]]:
            majority.setdefault(g["task"], runs[0]["majority_class_rate"])
    return lines + ["", "Majority-class rate of the test split: "
                    + ", ".join(f"{task} {100 * rate:.1f}%" for task, rate in majority.items()) + ".", ""]


def _paired_lines(groups) -> list[str]:
    """The paired difference learned - fixed over seeds: test accuracy with both tests, convergence."""
    lines = ["## Paired difference learned − fixed over seeds", "",
             "Same seed ⇒ same initial weights and data order in both settings. Wilcoxon's smallest attainable "
             "two-sided p with n nonzero differences is 2/2^n (p < 0.05 needs n ≥ 6).", "",
             "| task | init | n | Δ test acc (points) | paired t-test p | Wilcoxon p (min attainable) | "
             "learned better / equal / worse | Δ epochs to 95% | Δ train time to 95% (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        acc = g["paired"].get("test_accuracy")
        if acc is None:
            continue
        wilcoxon = (f"{format_p(acc['wilcoxon_pvalue'])} ({format_p(acc['wilcoxon_min_pvalue'])})"
                    if acc["wilcoxon_pvalue"] is not None else "n/a")
        lines.append(
            f"| {g['task']} | {g['init']} | {acc['n']} | {format_stat(acc, 2, 100)} | {format_p(acc['t_pvalue'])} | {wilcoxon} | "
            f"{acc['wins']} / {acc['ties']} / {acc['losses']} | {format_stat(g['paired'].get('epochs_to_95'), 1)} | "
            f"{format_stat(g['paired'].get('time_to_95_s'), 0)} |")
    notes = [f"{g['task']}: {g['paired']['test_accuracy']['note']}" for g in groups
             if g["paired"].get("test_accuracy", {}).get("note")]
    return lines + [""] + ([f"Notes: {'; '.join(notes)}.", ""] if notes else [])


def _memory_lines(groups) -> list[str]:
    """Memory capacity and length at initialisation and after training; the shared-initial-weights check."""
    lines = ["## Memory at initialisation and after training", "",
             "keras_ssm.memory closed form, finite horizon T = sequence length (the state starts at zero with "
             "every sequence). MC = Σ_k MF(k) ≤ real state dimension N; memory length = smallest lag holding "
             "90% of MC. Each run's value is the mean over channels and SSM layers; the table gives mean ± std "
             "over seeds.", "",
             "| task | init | eigenvalues | MC initial | MC trained | length initial | length trained | "
             "length change | eigenvalues bit-identical after training |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g, setting, m in _setting_rows(groups):
        identical = [r["eigenvalues_identical"] for r in g["per_seed"][setting]]
        lines.append(
            f"| {g['task']} | {g['init']} | {setting} | {format_stat(m['mc_initial'], 2)} | {format_stat(m['mc_trained'], 2)} | "
            f"{format_stat(m['length_initial'], 1)} | {format_stat(m['length_trained'], 1)} | {format_stat(m['length_change'], 2)} | "
            f"{sum(identical)} of {len(identical)} runs |")
    init_match = [g for g in groups if g["initial_weights_identical_across_settings"]]
    return lines + ["", f"Initial weights identical between the fixed and learned run of every seed: "
                    f"{len(init_match)} of {len(groups)} groups.", ""]


def _recall_lines(groups) -> list[str]:
    """Delayed-recall groups only: MF at the recalled lag against the test accuracy of both settings."""
    recall = [g for g in groups if g["delay"] is not None]
    if not recall:
        return []
    lines = ["## Delayed recall: what the memory function predicts", "",
             "Label = the symbol `delay` steps before the last position, read out from the final position by "
             "causal layers. MF(delay) is the fraction of an i.i.d. input at that lag that the best linear "
             "readout of one channel's state recovers (mean and max over channels, layers and seeds). Where it "
             "is ~0 at initialisation the theory predicts chance accuracy with fixed eigenvalues, and no "
             "gradient signal that could extend the memory to that lag for learned ones. Where it is clearly "
             "above 0 but far below 1 (memory long and thin), learning can trade length for accuracy: the "
             "regime where the paper expects learned eigenvalues to win.", "",
             "| task | delay | L | classes (chance) | MF(delay) at init: mean / max | learned, trained: "
             "mean / max | test acc fixed | test acc learned |",
             "|---|---|---|---|---|---|---|---|"]
    for g in recall:
        f, l = g["summary"]["fixed"], g["summary"]["learned"]
        classes = (int(g["scale"]["data_options"].get("num_classes", 0))
                   or int(task_options(g["task"])["num_classes"]))
        init_mean = format_number((l if l["mf_at_delay_initial"]["n"] else f)["mf_at_delay_initial"]["mean"])
        init_max = max([r["mf_at_delay_initial_max"] for s in SETTINGS for r in g["per_seed"][s]
                        if r["mf_at_delay_initial_max"] is not None], default=None)
        trained_max = max([r["mf_at_delay_trained_max"] for r in g["per_seed"]["learned"]
                           if r["mf_at_delay_trained_max"] is not None], default=None)
        lines.append(
            f"| {g['task']} | {g['delay']} | {g['scale']['seq_len']} | {classes} ({100 / classes:.1f}%) | "
            f"{init_mean} / {format_number(init_max)} | {format_number(l['mf_at_delay_trained']['mean'])} / "
            f"{format_number(trained_max)} | {format_stat(f['test_accuracy'], 2, 100)}% | {format_stat(l['test_accuracy'], 2, 100)}% |")
    return lines + [""]


def _plot_lines(plots) -> list[str]:
    """The validation curves and the per-group memory-function plots (file names relative to report.md)."""
    lines = ["## Plots", ""]
    if plots.get("curves"):
        lines += [f"![validation curves]({plots['curves']})", ""]
    for (task, init), name in plots.get("memory", {}).items():
        lines += [f"Memory functions, {task} ({init}): initial (shared by both settings), fixed after training "
                  f"(identical to initial), learned after training.", "", f"![memory {task} {init}]({name})", ""]
    return lines


def _excluded_lines(report) -> list[str]:
    """Failed and unfinished runs, which no number above includes."""
    if not (report["failed_runs"] or report["missing_runs"]):
        return []
    return (["## Runs not included", ""] + [f"- failed: {f['run']}: {f['error']}" for f in report["failed_runs"]]
            + [f"- not finished: {m}" for m in report["missing_runs"]] + [""])


def format_markdown(report: dict, plots: dict | None = None) -> str:
    """report.md text: scale, accuracy/convergence, paired tests, memory, delayed-recall check, plots."""
    groups = report["groups"]
    if not groups:
        return "\n".join(_header_lines(report) + ["No finished runs yet.", ""])
    lines = (_header_lines(report) + _scale_lines(report) + _accuracy_lines(report) + _paired_lines(groups)
             + _memory_lines(groups) + _recall_lines(groups) + _plot_lines(plots or {}) + _excluded_lines(report))
    return "\n".join(lines)


def write_report(records, output_dir, *, command: str | None = None, title: str | None = None) -> dict:
    """Build the report from run records and write report.json, report.md and the PNGs into ``output_dir``.

    Returns the report dict (as written to report.json, plus ``"markdown"``: the report.md text).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(records, command=command, title=title)
    plots = {"memory": {}}
    if plot_validation_curves(report, output_dir / VALIDATION_CURVES_PLOT):
        plots["curves"] = VALIDATION_CURVES_PLOT
    for group in report["groups"]:
        name = memory_plot_name(group["task"], group["init"])
        if plot_group_memory(records, group["task"], group["init"], output_dir / name, delay=group["delay"]):
            plots["memory"][(group["task"], group["init"])] = name
    report["plots"] = {"validation_curves": plots.get("curves"),
                       "memory": {f"{t}/{i}": n for (t, i), n in plots["memory"].items()}}
    write_json_atomic(output_dir / REPORT_JSON, report)
    markdown = format_markdown(report, plots)
    write_text_atomic(output_dir / REPORT_MD, markdown)
    return {**report, "markdown": markdown}
