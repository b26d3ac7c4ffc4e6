"""The memory screen's saving, measured: the same sweep with and without ``--memory-screen``, over sweep seeds.

    python tuning/screen_compare.py --seeds 0 1 2 --report-dir docs/tuning/memory-screen-recall -- \\
        delayed_recall --max-trials 10 --range dt_min=1e-3,3 --range dt_max=1e-2,10 --set data_options.delay=20

Everything after ``--`` is a ``tuning/sweep.py`` command (task and flags; ``--seed``, ``--project-name`` and
``--memory-screen`` are set here). For each seed it runs that sweep twice into ``--directory``: plain and
screened (``--memory-screen THRESHOLD``). Both draw the same samples (same sampler seed; screened samples count
toward ``--max-trials``), so the screened sweep trains a subset of the plain one's trials. The report
(``report.md``, ``report.json``) gives per seed and in total: the trials trained, their summed training time,
the screen's own time, the sweep's wall time (summed over the invocations that ran it, kept in
``--directory``/wall_times.json), and the best val_accuracy each found, with its mean and spread
over seeds, and the rank of the plain sweep's best trial in the screened sweep. Rerunning resumes the sweeps.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    _script_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _script_dir]
    sys.path.insert(0, str(_script_dir.parent))


from tuning.report import collect_screened, collect_trials, spearman, sweep_screen  # noqa: E402
from tuning.screen import DEFAULT_THRESHOLD, check_threshold  # noqa: E402
from tuning.sweep import main as sweep_main  # noqa: E402
from zoo.reporting import code_version_label, format_stat, mean_std  # noqa: E402
from zoo.rundir import REPORT_JSON, REPORT_MD, read_json, write_json_atomic, write_text_atomic  # noqa: E402

#: Each sweep's wall time summed over the invocations that ran it (in --directory).
WALL_TIMES_FILE = "wall_times.json"

_OWN_FLAGS = ("--seed", "--project-name", "--memory-screen", "--directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python tuning/screen_compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="sweep seeds (default: 0 1 2).")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"the screen's threshold (default: {DEFAULT_THRESHOLD:g}, the calibrated one).")
    parser.add_argument("--directory", default="sweeps/screen-compare", help="where the sweeps go.")
    parser.add_argument("--report-dir", required=True, help="where report.md and report.json go.")
    parser.add_argument("sweep", nargs=argparse.REMAINDER, help="-- then a tuning/sweep.py command (task and flags).")
    return parser


def sweep_summary(project, screen=None) -> dict:
    """Trials trained, their summed training time, the screen's time, the best val_accuracy and its trial, and
    (given the ``screen``) each completed trial's (screen score, objective)."""
    description, rows = collect_trials(project)
    screen = screen or sweep_screen(description)
    screened = collect_screened(project)
    done = [r for r in rows if r.completed]
    best = max(done, key=lambda r: r.objective) if done else None
    return {"trials_trained": len(rows), "trials_completed": len(done), "screened_out": len(screened),
            "train_time_s": float(sum(r.metrics.get("train_time_s", 0.0) for r in rows)),
            "screen_time_s": float(sum(r.get("screen_seconds", 0.0) for r in screened)),
            "best_value": None if best is None else best.objective,
            "best_values": None if best is None else best.values,
            "scores": {r.trial_id: r.objective for r in done},
            "mf_and_objective": [] if screen is None else [[screen.score(r.values), r.objective] for r in done],
            "screen": None if screen is None else screen.to_dict()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sweep = [a for a in args.sweep if a != "--"]
    if not sweep:
        print("python tuning/screen_compare.py: error: give a tuning/sweep.py command after --", file=sys.stderr)
        return 2
    clash = [a for a in sweep if a.split("=")[0] in _OWN_FLAGS]
    if clash:
        print(f"python tuning/screen_compare.py: error: {clash} are set by this script.", file=sys.stderr)
        return 2
    threshold = check_threshold(args.threshold)
    directory = Path(args.directory)
    version = code_version_label()
    times_file = directory / WALL_TIMES_FILE
    wall_times = read_json(times_file, "Delete it to measure anew.") if times_file.exists() else {}
    runs = []
    for seed in args.seeds:
        for screened in (False, True):
            name = f"seed{seed}-{'screened' if screened else 'plain'}"
            command = sweep + ["--seed", str(seed), "--project-name", name, "--directory", str(directory)]
            command += ["--memory-screen", str(threshold)] if screened else []
            start = time.perf_counter()
            status = sweep_main(command)
            # a resumed sweep adds its own time to the earlier invocations'
            wall_times[name] = wall_times.get(name, 0.0) + time.perf_counter() - start
            write_json_atomic(times_file, wall_times)
            if status not in (0, 1):
                return status
            runs.append({"seed": seed, "screened": screened, "wall_time_s": wall_times[name], "exit_status": status})
    for run in runs:  # the plain sweeps' trials are scored with their screened twin's screen
        twin = directory / f"seed{run['seed']}-screened"
        run.update(sweep_summary(directory / f"seed{run['seed']}-{'screened' if run['screened'] else 'plain'}",
                                 sweep_screen(collect_trials(twin)[0])))
    shown = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python tuning/screen_compare.py", *(shlex.quote(a) for a in shown)])
    report = write_report(runs, Path(args.report_dir), command=command, version=version, threshold=threshold)
    print(report)
    return 0


def write_report(runs, report_dir, *, command, version, threshold) -> str:
    report_dir.mkdir(parents=True, exist_ok=True)
    plain = {r["seed"]: r for r in runs if not r["screened"]}
    screened = {r["seed"]: r for r in runs if r["screened"]}
    lines = ["# The memory screen's saving: the same sweeps with and without `--memory-screen`", "",
             f"- command: `{command}`", f"- code version: {version}; threshold {threshold:g}", "",
             "| seed | sweep | trials trained | screened out | training time (s) | screen time (s) | wall time (s) | "
             "best val_accuracy |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        best = "n/a" if run["best_value"] is None else f"{run['best_value']:.4f}"
        lines.append(f"| {run['seed']} | {'screened' if run['screened'] else 'plain'} | {run['trials_trained']} | "
                     f"{run['screened_out']} | {run['train_time_s']:.0f} | {run['screen_time_s']:.2f} | "
                     f"{run['wall_time_s']:.0f} | {best} |")
    totals = {}
    for kind, group in (("plain", plain), ("screened", screened)):
        values = list(group.values())
        totals[kind] = {"trials_trained": int(sum(r["trials_trained"] for r in values)),
                        "train_time_s": float(sum(r["train_time_s"] for r in values)),
                        "wall_time_s": float(sum(r["wall_time_s"] for r in values)),
                        "screen_time_s": float(sum(r["screen_time_s"] for r in values)),
                        "best_value": mean_std([r["best_value"] for r in values])}
    same_best = sum(1 for s in plain if plain[s]["best_value"] is not None and screened[s]["best_value"] is not None
                    and abs(plain[s]["best_value"] - screened[s]["best_value"]) < 1e-9)
    saved = 1 - totals["screened"]["train_time_s"] / totals["plain"]["train_time_s"] if totals["plain"]["train_time_s"] \
        else None
    screened_count = sum(r["screened_out"] for r in screened.values())
    per_sample = totals["screened"]["screen_time_s"] / screened_count if screened_count else None
    lines += ["", "| sweeps | trials trained | training time (s) | wall time (s) | best val_accuracy (mean ± std over "
              "seeds) |", "|---|---|---|---|---|"]
    for kind in ("plain", "screened"):
        t = totals[kind]
        lines.append(f"| {kind} | {t['trials_trained']} | {t['train_time_s']:.0f} | {t['wall_time_s']:.0f} | "
                     f"{format_stat(t['best_value'], 4)} |")
    pairs = [pair for r in plain.values() for pair in r.get("mf_and_objective", [])]
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    lines += ["", f"- training time saved by the screen: "
                  f"{'n/a' if saved is None else f'{100 * saved:.0f}%'}; the screen's own cost: "
                  f"{'n/a' if per_sample is None else f'{1e3 * per_sample:.1f} ms'} per screened sample",
              f"- seeds where the screened sweep found the plain sweep's best score: {same_best} of {len(plain)}",
              f"- the screen's premise on the plain sweeps' {len(pairs)} trials: Spearman correlation of val_accuracy "
              f"with the screen's score (best channel's MF at the lag) "
              f"{'n/a' if rho is None else f'{rho:+.2f}'}; trials scoring >= {threshold:g}: "
              f"{sum(p[0] >= threshold for p in pairs)}, their mean val_accuracy "
              f"{_mean([p[1] for p in pairs if p[0] >= threshold])} against "
              f"{_mean([p[1] for p in pairs if p[0] < threshold])} for the others"]
    markdown = "\n".join(lines) + "\n"
    write_text_atomic(report_dir / REPORT_MD, markdown)
    write_json_atomic(report_dir / REPORT_JSON, {"command": command, "version": version, "threshold": threshold,
                                                 "runs": runs, "totals": totals, "training_time_saved": saved,
                                                 "same_best": same_best, "screen_seconds_per_sample": per_sample,
                                                 "premise_spearman": rho})
    return markdown


def _mean(values) -> str:
    return f"{sum(values) / len(values):.4f}" if values else "n/a"


if __name__ == "__main__":
    sys.exit(main())
