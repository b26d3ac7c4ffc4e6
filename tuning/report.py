"""Reports of a sweep, built from its project directory alone (so a resumed or finished sweep can be
re-reported with ``python -m tuning.report PROJECT_DIR``):

    results.csv    every trial: number (``Trial #<n>`` as the console shows it, 1-based) and KerasTuner folder
                   (``trial_<n-1>``), status, objective (val_accuracy at its best epoch), the config values
                   (dt_min, dt_max, init, fixed/learned eigenvalues, lr), the memory summaries of its
                   initial SSM layers (MC, memory length, memory accuracy), time, error message
    results.md     the same as a Markdown table, best first, with the rank correlation of the objective
                   with the initial memory summaries
    results.png    the objective against dt_min and dt_max (log axes) and against the initial MC and
                   memory length; colour = init, marker = fixed / learned eigenvalues
    best.json      the best trial's settings as zoo config overrides: from the repository root,
                   ``python zoo/train.py TASK --config <directory>/<project_name>/best.json``

:func:`results_table` returns the table as dicts; :func:`trial_table` and :func:`trial_summary_line` are what
the sweep prints when a trial starts and ends.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from keras_tuner.engine.trial import Trial
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from scipy.stats import spearmanr

from tuning.project import OBJECTIVE, SWEEP_FILE, read_sweep_file, trial_folder, trial_label, trial_number
from tuning.screen import MemoryScreen
from tuning.space import DIMENSIONS, DT_MAX_POSITION, INIT_CHOICES, SearchSpace
from zoo.configs import TrainConfig, get_config
from zoo.rundir import INITIAL_MEMORY_FILE, ORACLE_FILE
from zoo.rundir import SWEEP_BEST_FILE as BEST_FILE
from zoo.rundir import SWEEP_CSV_FILE as CSV_FILE
from zoo.rundir import SWEEP_MARKDOWN_FILE as MARKDOWN_FILE
from zoo.rundir import SWEEP_PLOT_FILE as PLOT_FILE
from zoo.rundir import display_path, read_json, write_csv_atomic, write_json_atomic, write_text_atomic

COMPLETED = "COMPLETED"
# TrainConfig fields left out of best.json: where the run writes and how much it prints.
_NOT_EXPORTED = ("output_dir", "verbose")
MEMORY_KEYS = ("memory_capacity", "memory_length", "memory_accuracy")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TrialRow:
    """One trial of a sweep, as the report shows it.

    Attributes:
        trial_id, status: KerasTuner's (status COMPLETED, FAILED, INVALID or RUNNING); the trial is shown as
            ``Trial #<trial_id + 1>`` (:func:`tuning.project.trial_label`), its folder is ``trial_<trial_id>``.
        values: the trial's config values {dt_min, dt_max, init, trainable_eigenvalues, lr}.
        metrics: the metrics the trial reported (empty unless it completed).
        memory: initial memory summaries (``initial_memory.json``), or None when not recorded.
        epochs: epochs the trial trained up to (Hyperband: its budget).
        message: the last line of the error of a failed trial.
        parent: Hyperband only: the trial whose checkpoint this trial continued.
    """

    trial_id: str
    status: str
    values: dict
    metrics: dict
    memory: dict | None
    epochs: int | None
    message: str | None
    parent: str | None = None

    @property
    def objective(self) -> float:
        return self.metrics.get(OBJECTIVE, math.nan)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED and math.isfinite(self.objective)


def _trial_metrics(trial) -> dict:
    return {name: float(trial.metrics.get_last_value(name)) for name in trial.metrics.metrics}


def _last_line(message):
    """The last line of a traceback, with the exception's module path dropped
    ("keras_tuner.src.errors.FailedTrialError: x" -> "FailedTrialError: x")."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return None
    name, sep, rest = lines[-1].strip().partition(": ")
    if sep and " " not in name:
        return f"{name.rsplit('.', 1)[-1]}: {rest}"
    return lines[-1].strip()


def trial_row(trial, space: SearchSpace, default_epochs: int | None = None, trial_dir=None) -> TrialRow:
    """A :class:`TrialRow` from a KerasTuner ``Trial`` (and its directory's initial_memory.json)."""
    hp_values = dict(trial.hyperparameters.values)
    values = space.values_for(hp_values)
    memory = None
    if trial_dir is not None and (Path(trial_dir) / INITIAL_MEMORY_FILE).exists():
        memory = read_json(Path(trial_dir) / INITIAL_MEMORY_FILE,
                           "Delete it (the report then leaves that trial's memory columns empty).")
    epochs = hp_values.get("tuner/epochs", default_epochs)
    message = _last_line(trial.message) if trial.status != COMPLETED else None
    parent = hp_values.get("tuner/trial_id")
    return TrialRow(str(trial.trial_id), str(trial.status), values, _trial_metrics(trial), memory,
                    None if epochs is None else int(epochs), message, None if parent is None else str(parent))


def collect_trials(project_dir) -> tuple[dict, list[TrialRow]]:
    """(sweep.json contents, every trial of the project ordered by trial id)."""
    project_dir = Path(project_dir)
    description = read_sweep_file(project_dir)
    space = SearchSpace.from_json_dict(description["space"], source=str(project_dir / SWEEP_FILE))
    epochs = description["base_config"].get("epochs")
    rows = []
    for path in sorted(project_dir.glob("trial_*/trial.json")):
        trial = Trial.from_state(read_json(path, "Restore it, or delete its trial directory and rerun the "
                                                 "sweep to run that trial again."))
        rows.append(trial_row(trial, space, epochs, path.parent))
    return description, sorted(rows, key=_trial_order)


def _trial_order(row: TrialRow):
    """Numeric trial order (KerasTuner pads ids to the width of max_trials, which a rerun may change)."""
    return (int(row.trial_id), row.trial_id) if row.trial_id.isdigit() else (math.inf, row.trial_id)


# ---------------------------------------------------------------------------------------------
def ranked(rows: list[TrialRow]) -> list[TrialRow]:
    """Completed trials by objective (best first, ties by trial id), then the others by trial id."""
    done = sorted((r for r in rows if r.completed), key=lambda r: (-r.objective, _trial_order(r)))
    return done + sorted((r for r in rows if not r.completed), key=_trial_order)


def table_records(rows: list[TrialRow], screen: MemoryScreen | None = None, screened=()) -> list[dict]:
    """The report table: one dict per trial, best first (columns in display order), then the samples the memory
    screen skipped (status SCREENED, ``screened``: the oracle's records). ``trial`` is the trial's number as the
    console shows it (``Trial #1`` is 1), ``folder`` its KerasTuner folder (``trial_0``), ``continues_trial``
    the number of the trial a Hyperband trial continues; with a ``screen``, ``initial_mf_at_lag`` is the
    screen's score of each trial (the best channel's MF at the task's lag at initialisation)."""
    records = []
    for row in ranked(rows):
        m, memory = row.metrics, row.memory or {}
        records.append({
            "trial": trial_number(row.trial_id),
            "folder": trial_folder(row.trial_id),
            "status": row.status,
            OBJECTIVE: m.get(OBJECTIVE),
            "best_epoch": _int_or_none(m.get("best_epoch")),
            "epochs": row.epochs,
            "continues_trial": None if row.parent is None else trial_number(row.parent),
            "dt_min": row.values["dt_min"],
            "dt_max": row.values["dt_max"],
            "init": row.values["init"],
            "eigenvalues": "learned" if row.values["trainable_eigenvalues"] else "fixed",
            "lr": row.values["lr"],
            "initial_mc": memory.get("memory_capacity"),
            "initial_memory_length": memory.get("memory_length"),
            "initial_memory_accuracy": memory.get("memory_accuracy"),
            "initial_mf_at_lag": None if screen is None else screen.score(row.values),
            "val_loss": m.get("val_loss"),
            "train_accuracy": m.get("accuracy"),
            "diverged": None if "diverged" not in m else bool(m["diverged"]),
            "train_time_s": m.get("train_time_s"),
            "message": row.message,
        })
    for record in screened:
        values = record["values"]
        records.append({"trial": None, "folder": None, "status": "SCREENED", "dt_min": values["dt_min"],
                        "dt_max": values["dt_max"], "init": values["init"],
                        "eigenvalues": "learned" if values["trainable_eigenvalues"] else "fixed", "lr": values["lr"],
                        "initial_mf_at_lag": record["mf_at_lag"],
                        "message": f"sample {record['sample']}, before {record['before_trial']}: {record['reason']}"})
    return records


def _int_or_none(value):
    return None if value is None else int(value)


def write_csv(records: list[dict], path) -> None:
    """The records as CSV, written atomically (zoo.rundir)."""
    write_csv_atomic(path, records, list(records[0]) if records else ["trial"])


def _format(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in ("dt_min", "dt_max", "lr"):
        return f"{value:.3g}"
    if key in (OBJECTIVE, "val_loss", "train_accuracy", "initial_memory_accuracy"):
        return f"{value:.4f}"
    if key == "initial_mf_at_lag":
        return f"{value:.3g}"
    if key in ("initial_mc", "initial_memory_length"):
        return f"{value:.2f}"
    if key == "train_time_s":
        return f"{value:.0f}"
    if key == "diverged":
        return "yes" if value else ""
    return str(value).replace("|", "\\|")


_MARKDOWN_COLUMNS = ("trial", "folder", "status", OBJECTIVE, "best_epoch", "epochs", "continues_trial", "dt_min", "dt_max", "init",
                     "eigenvalues", "lr", "initial_mc", "initial_memory_length", "initial_memory_accuracy",
                     "initial_mf_at_lag", "train_time_s", "diverged", "message")


def results_table(project_dir) -> list[dict]:
    """The report table of a sweep project (:func:`table_records`: one dict per trial, best first, then the
    screened-out samples), read from its files; the same rows as results.csv."""
    description, rows = collect_trials(project_dir)
    return table_records(rows, sweep_screen(description), collect_screened(project_dir))


def sweep_screen(description: dict) -> MemoryScreen | None:
    """The memory screen a sweep ran with (sweep.json's ``screen``), or None."""
    return MemoryScreen(**description["screen"]) if description.get("screen") else None


def collect_screened(project_dir) -> list:
    """The samples the memory screen skipped, in order (the oracle's state in oracle.json; [] without)."""
    path = Path(project_dir) / ORACLE_FILE
    if not path.exists():
        return []
    return list(read_json(path, "Restore it from a copy; the sweep cannot resume without it.").get("screened", []))


def markdown_table(records: list[dict], columns=_MARKDOWN_COLUMNS) -> str:
    columns = [c for c in columns if any(_format(c, r.get(c)) for r in records)] or ["trial"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(c, r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)


def spearman(x, y) -> float | None:
    """Spearman rank correlation of two sequences (average ranks for ties); None for fewer than 3
    pairs or a constant sequence."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def memory_correlations(rows: list[TrialRow], screen: MemoryScreen | None = None) -> dict:
    """{summary: (Spearman rho of the objective with the initial summary, number of trials)} over the
    completed trials with a memory record; with a ``screen``, also ``mf_at_lag`` (its score of each trial)."""
    usable = [r for r in rows if r.completed and r.memory]
    objective = [r.objective for r in usable]
    out = {key: (spearman([r.memory[key] for r in usable], objective), len(usable)) for key in MEMORY_KEYS}
    if screen is not None:
        done = [r for r in rows if r.completed]
        out["mf_at_lag"] = (spearman([screen.score(r.values) for r in done], [r.objective for r in done]), len(done))
    return out


# ---------------------------------------------------------------------------------------------
_INIT_COLORS = {init: f"C{i}" for i, init in enumerate(INIT_CHOICES)}
_MARKERS = {True: "o", False: "^"}
#: Marker sizes (points) of a trial and of the ring around the best one.
_POINT_SIZE, _RING_SIZE = math.sqrt(46), math.sqrt(170)
#: Room between the outermost points and the frame, as a fraction of each axis' range.
_SWEEP_MARGIN = 0.1


def _sweep_panels() -> list:
    """(x getter, x scale, x label) of the four panels of the sweep plot."""
    return [
        (lambda r: r.values["dt_min"], "log", "dt_min"),
        (lambda r: r.values["dt_max"], "log", "dt_max"),
        (lambda r: (r.memory or {}).get("memory_capacity"), "linear",
         "memory capacity of the initial layers (mean over channels)"),
        (lambda r: (r.memory or {}).get("memory_length"), "linear",
         "memory length of the initial layers (lag holding 90% of MC, mean)"),
    ]


def _point_style(init: str, learned: bool) -> dict:
    """The look of a trial's point, shared by the plot and its legend: colour = init, marker = learned
    (circle) / fixed (triangle) eigenvalues."""
    return dict(linestyle="", marker=_MARKERS[learned], markersize=_POINT_SIZE, alpha=0.85, markeredgewidth=0,
                color=_INIT_COLORS.get(init, "gray"))


def _screened_style() -> dict:
    return dict(linestyle="", marker="x", markersize=_POINT_SIZE, color="0.35", markeredgewidth=1.2)


def _ring_style() -> dict:
    return dict(linestyle="", marker="o", markersize=_RING_SIZE, markerfacecolor="none", markeredgecolor="black",
                markeredgewidth=1.2)


def _log_axis(ax, xs) -> None:
    """Logarithmic x axis labelled with plain numbers (1, 2, 5 per decade over a narrow range)."""
    ax.set_xscale("log")
    decades = math.log10(max(xs) / min(xs))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _sweep_panel(ax, done, best, getter, scale, label, majority_rate) -> None:
    """One panel: the objective of every completed trial against ``getter``, the best one ringed, margins
    around the points."""
    for row in done:
        x = getter(row)
        if x is None:
            continue
        ax.plot([x], [row.objective], **_point_style(row.values["init"], bool(row.values["trainable_eigenvalues"])))
        if row is best:
            ax.plot([x], [row.objective], **_ring_style())
    xs = [getter(r) for r in done]
    if scale == "log" and all((x or 0) > 0 for x in xs):
        _log_axis(ax, xs)
    if majority_rate is not None:
        ax.axhline(majority_rate, color="gray", linestyle="--", linewidth=1)
    ax.margins(_SWEEP_MARGIN)
    ax.set_xlabel(label, fontsize=9)
    ax.grid(True, alpha=0.3)


def _sweep_legend(done, best, majority_rate) -> tuple[list, list]:
    """The sweep plot's legend entries [(handle, label)], colours and shapes apart, drawn as the points are:
    each init with the markers it was plotted with; each eigenvalue mode with its marker (in gray), the best
    trial's ring, the majority line."""
    inits = sorted({r.values["init"] for r in done},
                   key=lambda i: (INIT_CHOICES.index(i) if i in INIT_CHOICES else len(INIT_CHOICES), i))
    modes = [m for m in (True, False) if any(bool(r.values["trainable_eigenvalues"]) == m for r in done)]
    colours = []
    for init in inits:
        used = [m for m in modes if any(r.values["init"] == init and bool(r.values["trainable_eigenvalues"]) == m
                                        for r in done)]
        colours.append((tuple(Line2D([], [], **_point_style(init, m)) for m in used), f"init {init}"))
    shapes = [(Line2D([], [], **{**_point_style("", m), "color": "0.45"}), f"{'learned' if m else 'fixed'} eigenvalues")
              for m in modes]
    shapes.append((Line2D([], [], **_ring_style()), f"best ({trial_label(best.trial_id)})"))
    if majority_rate is not None:
        shapes.append((Line2D([], [], color="gray", linestyle="--", linewidth=1), "majority class (val)"))
    return colours, shapes


def _two_row_legend(fig, first, second, **kwargs):
    """A figure legend with the entries ``first`` in its top row and ``second`` below (blank cells pad the
    shorter row; matplotlib fills a legend column by column)."""
    ncol = max(len(first), len(second))
    blank = (Line2D([], [], linestyle=""), "")
    first, second = first + [blank] * (ncol - len(first)), second + [blank] * (ncol - len(second))
    entries = [entry for pair in zip(first, second) for entry in pair]
    fig.legend([h for h, _ in entries], [t for _, t in entries], ncol=ncol, **kwargs)


def sweep_figure(rows: list[TrialRow], *, title: str = "", majority_rate: float | None = None,
                 screened=()) -> Figure | None:
    """The figure :func:`plot_sweep` writes (None when no trial completed): the objective against dt_min, dt_max
    (log x), initial MC and initial memory length, one point per completed trial; colour = init, marker =
    learned (circle) / fixed (triangle) eigenvalues, best trial ringed; the legend above the panels."""
    done = [r for r in rows if r.completed]
    if not done:
        return None
    best = ranked(done)[0]
    fig = Figure(figsize=(9.5, 7.6))
    axes = fig.subplots(2, 2, sharey=True).ravel()
    for ax, (getter, scale, label) in zip(axes, _sweep_panels()):
        _sweep_panel(ax, done, best, getter, scale, label, majority_rate)
    for ax, name in zip(axes[:2], ("dt_min", "dt_max")):  # screened samples: untrained, on the bottom edge
        xs = [record["values"][name] for record in screened]
        if xs:
            ax.plot(xs, [0.03] * len(xs), transform=ax.get_xaxis_transform(), **_screened_style())
    for ax in axes[::2]:
        ax.set_ylabel(f"{OBJECTIVE} (best epoch)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    colours, shapes = _sweep_legend(done, best, majority_rate)
    if screened:
        shapes.append((Line2D([], [], **_screened_style()), "screened out, not trained"))
    _two_row_legend(fig, colours, shapes, loc="upper center", fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.96),
                    handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)})
    return fig


def plot_sweep(rows: list[TrialRow], path, *, title: str = "", majority_rate: float | None = None,
               screened=()) -> bool:
    """Write :func:`sweep_figure` to ``path``; returns False (writing nothing) when no trial completed."""
    fig = sweep_figure(rows, title=title, majority_rate=majority_rate, screened=screened)
    if fig is None:
        return False
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return True


# ---------------------------------------------------------------------------------------------
def best_config_overrides(description: dict, row: TrialRow) -> dict:
    """The zoo config overrides of trial ``row``: task, preset, every field that differs from the
    preset (except output_dir and verbose) and the five searched fields. ``zoo.configs.load_json_overrides``
    and ``python zoo/train.py TASK --config best.json`` accept it."""
    config = TrainConfig.from_dict(description["base_config"]).replace(**row.values)
    preset = get_config(config.task, config.preset).to_dict()
    values = config.to_dict()
    overrides = {"task": config.task, "preset": config.preset}
    for key, value in values.items():
        if key in _NOT_EXPORTED or key in overrides:
            continue
        if key in DIMENSIONS or value != preset[key]:
            overrides[key] = value
    return overrides


def repo_path(path) -> str:
    """``path`` as typed from the repository root (where ``python zoo/train.py`` runs): relative to it when
    inside it, absolute otherwise."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return str(resolved)


def write_report(project_dir) -> dict:
    """Write results.csv, results.md, results.png and (when a trial completed) best.json into
    ``project_dir``.

    Returns:
        {"csv", "markdown", "plot", "best_json" (paths under ``project_dir``, or None), "best_trial" (the best
        trial's number, as in ``Trial #<n>``), "best_trial_id" (its KerasTuner id), "best_trial_dir" (its
        folder), "best_value", "trials", "completed", "correlations"}; None values when no trial completed.
    """
    project_dir = Path(project_dir)
    description, rows = collect_trials(project_dir)
    screen, screened = sweep_screen(description), collect_screened(project_dir)
    records = table_records(rows, screen, screened)
    write_csv(records, project_dir / CSV_FILE)
    done = [r for r in rows if r.completed]
    best = ranked(done)[0] if done else None
    majority = description.get("val_majority_rate")
    title = (f"{description['task']} ({description['preset']}, {description['base_config']['model']}): "
             f"{description['tuner']} search, {len(done)} completed trial(s)"
             + (f", {len(screened)} sample(s) screened out" if screened else ""))
    correlations = memory_correlations(rows, screen)

    lines = [f"# Sweep: {title}", "",
             f"Objective: {OBJECTIVE} at each trial's best epoch"
             + (f" (majority-class rate of the val split: {majority:.4f})." if majority is not None else "."),
             f"Initial memory summaries at horizon {description.get('memory_horizon', '?')} "
             f"(means over the channels of every SSM layer; memory length = lag holding 90% of MC).", "",
             markdown_table(records), ""]
    for key, (rho, n) in correlations.items():
        text = "n/a (fewer than 3 completed trials or no spread)" if rho is None else f"{rho:+.2f}"
        what = f"MF({screen.lag}) (the screen's score)" if key == "mf_at_lag" else key.replace('_', ' ')
        lines.append(f"- Spearman rank correlation of {OBJECTIVE} with initial {what}: {text} (n = {n})")
    if screen is not None:
        seconds = [r.get("screen_seconds", 0.0) for r in screened]
        lines += ["", f"Memory screen: a sample trained only if the best channel's MF({screen.lag}) at initialisation "
                      f"(lag = {screen.lag_source}) was >= {screen.threshold:g}. {len(screened)} sample(s) were screened "
                      f"out (status SCREENED above; they count toward max_trials)"
                      + (f", at {1e3 * np.mean(seconds):.0f} ms each" if seconds else "") + "."]
    best_path = None
    if best is not None:
        best_path = project_dir / BEST_FILE
        write_json_atomic(best_path, best_config_overrides(description, best))
        lines += ["", f"Best: {trial_label(best.trial_id)} (folder `{trial_folder(best.trial_id)}`), {OBJECTIVE} "
                      f"{best.objective:.4f} (ties go to the earlier trial); its settings are in `{BEST_FILE}` next "
                      f"to this file. Train them, from the repository root: "
                      f"`python zoo/train.py {description['task']} --config {repo_path(best_path)}`."]
    write_text_atomic(project_dir / MARKDOWN_FILE, "\n".join(lines) + "\n")
    plotted = plot_sweep(rows, project_dir / PLOT_FILE, title=title, majority_rate=majority, screened=screened)
    summary = {
        "csv": project_dir / CSV_FILE,
        "markdown": project_dir / MARKDOWN_FILE,
        "plot": project_dir / PLOT_FILE if plotted else None,
        "best_json": best_path,
        "best_trial": trial_number(best.trial_id) if best else None,
        "best_trial_id": best.trial_id if best else None,
        "best_trial_dir": project_dir / trial_folder(best.trial_id) if best else None,
        "best_value": best.objective if best else None,
        "trials": len(rows),
        "completed": len(done),
        "correlations": correlations,
        "screened": len(screened),
    }
    return summary


def _display_value(value, width: int = 18) -> str:
    """A value as KerasTuner's trial table shows it: numbers to 5 significant digits, text cut to ``width``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.5g}"
    text = str(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."


def _shown_values(trial, space: SearchSpace) -> dict:
    """A trial's values as a user set them: the five dimensions (``dt_max`` computed from ``dt_min`` and
    ``dt_max_position`` with :meth:`SearchSpace.values_for`), then the tuner's own ones (Hyperband's
    ``tuner/epochs``, ...)."""
    hp_values = dict(trial.hyperparameters.values)
    extra = {k: v for k, v in hp_values.items() if k not in DIMENSIONS and k != DT_MAX_POSITION}
    return {**space.values_for(hp_values), **extra}


def trial_table(trial, best_trial, space: SearchSpace, width: int = 18) -> str:
    """What the sweep prints when a trial starts: KerasTuner's ``Search: Running Trial #<n>`` and its table
    (``Value | Best Value So Far | Hyperparameter``), with the dimensions a user sets (``dt_max``, not the
    tuner's ``dt_max_position``). ``best_trial`` is the best trial so far, or None."""
    values = _shown_values(trial, space)
    best = _shown_values(best_trial, space) if best_trial is not None else {}
    template = f"{{0:{width}}}|{{1:{width}}}|{{2}}"
    lines = [f"Search: Running {trial_label(trial.trial_id)} (folder {trial_folder(trial.trial_id)})", "",
             template.format("Value", "Best Value So Far", "Hyperparameter")]
    lines += [template.format(_display_value(value, width), _display_value(best.get(name, "?"), width), name)
              for name, value in values.items()]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """``00h 00m 08s``, as KerasTuner writes durations."""
    s = round(seconds)
    return f"{s // 3600:02d}h {s % 3600 // 60:02d}m {s % 60:02d}s"


def best_so_far_line(best_trial, search_start: float | None = None) -> str:
    """``Best val_accuracy so far: <value> (Trial #<n>)`` and the time since ``search_start``
    (``time.monotonic()``), as KerasTuner's line after each trial."""
    text = (f"Best {OBJECTIVE} so far: none" if best_trial is None or best_trial.score is None else
            f"Best {OBJECTIVE} so far: {best_trial.score:.4f} ({trial_label(best_trial.trial_id)})")
    if search_start is not None:
        text += f"; elapsed {_duration(time.monotonic() - search_start)}"
    return text


def trial_summary_line(trial, space: SearchSpace) -> str:
    """One line for a finished trial (``Trial #<n>: ...``): status, objective, config values, initial memory,
    time."""
    row = trial_row(trial, space)
    v = row.values
    settings = (f"dt_min {v['dt_min']:.3g}, dt_max {v['dt_max']:.3g}, init {v['init']}, "
                f"{'learned' if v['trainable_eigenvalues'] else 'fixed'} eigenvalues, lr {v['lr']:.3g}")
    if not row.completed:
        return f"{trial_label(row.trial_id)} {row.status} ({settings}): {row.message or 'no objective'}"
    m = row.metrics
    memory = ""
    if "initial_memory_capacity" in m:
        memory = (f" | initial MC {m['initial_memory_capacity']:.2f}, "
                  f"memory length {m['initial_memory_length']:.1f}")
    return (f"{trial_label(row.trial_id)}: {OBJECTIVE} {row.objective:.4f} (epoch {int(m.get('best_epoch', 0))}) | "
            f"{settings}{memory} | {m.get('train_time_s', math.nan):.0f} s"
            + (" | diverged" if m.get("diverged") else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning.report",
                                     description="Rewrite the report (results.csv/.md/.png, best.json) of a sweep "
                                                 "project directory.")
    parser.add_argument("project_dir", help="the sweep's <directory>/<project_name>.")
    args = parser.parse_args(argv)
    summary = write_report(args.project_dir)
    for key in ("csv", "markdown", "plot", "best_json"):
        if summary[key] is not None:
            print(display_path(summary[key]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
