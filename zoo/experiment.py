"""Fixed versus learned eigenvalues: paired zoo runs over tasks, initialisations and seeds, and their report.

    python zoo/experiment.py --tasks listops digits delayed_recall delayed_recall_short --seeds 3 --preset quick
    python zoo/experiment.py --tasks listops image --seeds 6 --preset small --model s4d --inits inv lin
    python zoo/experiment.py --output-dir runs/experiment-quick-s4d --report-only --report-dir docs/results/quick

Run ``python zoo/experiment.py --help`` for every flag. Rerunning a command skips finished runs (those with
results.json), resumes interrupted ones from their last epoch, and rewrites the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python zoo/experiment.py): import the `zoo` package from the repository root, and
    # keep zoo/ itself off sys.path so its module names cannot shadow top-level packages.
    _script_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _script_dir]
    sys.path.insert(0, str(_script_dir.parent))

import argparse  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402

from zoo.configs import INITS, MODELS, PRESETS, TASKS  # noqa: E402

DEFAULT_TASKS = ("listops", "digits", "delayed_recall", "delayed_recall_short")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python zoo/experiment.py",
        description=(
            "The paper's experiment: for each task, eigenvalue initialisation and seed, train the zoo model twice, "
            "with fixed eigenvalues (reservoir setting: dt and A frozen) and with learned ones, from the same "
            "initial weights and data order. Then write report.md, report.json and plots (validation curves, "
            "per-layer memory functions before/after training) into --output-dir and print the report. Each "
            "run lives in OUTPUT_DIR/runs/<task>/<init>/seed<k>/<fixed|learned>/ (a zoo run directory); "
            "finished runs are skipped on a rerun."
        ),
    )
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(DEFAULT_TASKS), metavar="TASK",
                        help=f"tasks to run, any of: {', '.join(TASKS)} (default: {' '.join(DEFAULT_TASKS)}). "
                             "'digits' is the offline stand-in for 'image'; 'delayed_recall' (long lag, beyond the "
                             "initial memory) and 'delayed_recall_short' (short lag) are the synthetic memory tasks.")
    parser.add_argument("--seeds", type=int, default=3,
                        help="number of seeds: seeds FIRST_SEED..FIRST_SEED+SEEDS-1 (default: 3).")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0).")
    parser.add_argument("--preset", choices=PRESETS, default="quick",
                        help="zoo preset of every task: quick = minutes on a CPU, small = official '-small' sizes, "
                             "full = published LRA sizes (default: quick).")
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
                             "--set d_model=32 --set data_options.num_train=1000. Repeatable. The experiment's own "
                             "keys (task, preset, model, init, seed, trainable_eigenvalues, output_dir) are refused.")
    parser.add_argument("--title", default=None, help="report title (default: 'Fixed versus learned eigenvalues').")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from the runs already finished in --output-dir.")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2,
                        help="Keras fit verbosity of each run: 2 = one line per epoch (default), 1 = progress bar, "
                             "0 = silent.")
    return parser


def plan_from_args(args):
    """The experiment plan (zoo.experiments.plan_runs) of parsed command-line ``args``."""
    from zoo.experiments import plan_runs
    from zoo.train import parse_set_overrides

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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = str(Path("runs") / f"experiment-{args.preset}-{args.model}")
    try:
        plan = plan_from_args(args)
    except ValueError as err:
        parser.error(str(err))

    from zoo.experiments import collect_records, run_experiment
    from zoo.report import REPORT_MD, write_report
    from zoo.training import RunDirectoryError

    backend = os.environ.get("KERAS_BACKEND")
    command = ((f"KERAS_BACKEND={backend} " if backend else "") + "python zoo/experiment.py "
               + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    try:
        records = collect_records(plan) if args.report_only else run_experiment(plan)
    except RunDirectoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report_dir = args.report_dir or args.output_dir
    report = write_report(records, report_dir, command=command, title=args.title)
    print(report["markdown"])
    print(f"\nReport written to {Path(report_dir) / REPORT_MD}", flush=True)
    failed = report["failed_runs"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
