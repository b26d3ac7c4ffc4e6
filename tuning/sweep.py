"""Sweep an SSM's memory-determining hyperparameters on a zoo task with KerasTuner.

    python tuning/sweep.py digits --tuner random --max-trials 6 --epochs 3
    python tuning/sweep.py listops --tuner bayesian --max-trials 20 --fix init=inv --range dt_min=1e-4,1e-2
    python tuning/sweep.py image --preset small --tuner hyperband --space space.json

Searched: dt_min, dt_max (log scale, dt_max > dt_min), init, trainable_eigenvalues, lr (see
tuning/space.py). Rerunning an interrupted command resumes the sweep. Run ``--help`` for every flag.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python tuning/sweep.py): import packages from the repository root, and keep
    # tuning/ itself off sys.path so its module names cannot shadow top-level packages.
    _script_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _script_dir]
    sys.path.insert(0, str(_script_dir.parent))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # KerasTuner imports TensorFlow: keep its C++ logs quiet

import argparse  # noqa: E402

from tuning.project import TUNERS, trial_label  # noqa: E402
from tuning.screen import DEFAULT_THRESHOLD  # noqa: E402
from tuning.space import DIMENSIONS, INIT_CHOICES, build_search_space  # noqa: E402
from zoo.cli_common import fail, parse_set_overrides, run_interruptible, want_traceback  # noqa: E402
from zoo.configs import DEFAULT_PRESET, MODELS, PRESETS, TASKS, get_config  # noqa: E402
from zoo.rundir import display_path  # noqa: E402

#: The zoo's training script, which trains a sweep's best.json.
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "zoo" / "train.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tuning/sweep.py",
        description=(
            "KerasTuner sweep of a zoo task over the SSM's dt range (dt_min, dt_max), eigenvalue "
            "initialisation (init), fixed vs learned eigenvalues (trainable_eigenvalues) and learning rate (lr). "
            "Models, optimizer and data are the zoo's (zoo/configs.py presets). The objective is val_accuracy. "
            "Writes <directory>/<project-name>/{results.csv, results.md, results.png, best.json}; "
            "rerunning the same command resumes an interrupted sweep."
        ),
        epilog=(
            "Search space defaults: dt_min log-uniform [1e-4, 1e-1]; dt_max log-uniform [1e-2, 1] and above "
            f"dt_min; init one of {', '.join(INIT_CHOICES)}; trainable_eigenvalues true/false; lr log-uniform "
            "[1e-3, 3e-2]. Precedence: defaults < --space file < --range < --fix. "
            'Space file example: {"dt_min": [1e-4, 1e-2], "init": ["inv", "lin"], "trainable_eigenvalues": false}. '
            "Train the best configuration with (from the repository root): python zoo/train.py TASK --config "
            "<directory>/<project-name>/best.json; the sweep prints this command for where you run it. "
            "Distributed (KerasTuner's chief/worker mode): start the same command once with "
            "KERASTUNER_TUNER_ID=chief and once per worker with KERASTUNER_TUNER_ID=worker<k>, all with "
            "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set to the chief's address and a shared --directory."
        ),
    )
    parser.add_argument("task", choices=TASKS, help="zoo task (an LRA task or 'digits', the scikit-learn stand-in).")
    parser.add_argument("--tuner", choices=TUNERS, default="random",
                        help="random search, Bayesian optimisation (Gaussian process) or Hyperband (default: random).")
    parser.add_argument("--max-trials", type=int, default=10,
                        help="total number of trials, finished ones of a resumed sweep included (default: 10; "
                             "for hyperband a cap on its own schedule).")
    parser.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET,
                        help=f"zoo preset giving the model/data sizes (default: {DEFAULT_PRESET}).")
    parser.add_argument("--model", choices=MODELS, default=None, help="SSM layer: S4D or S4 (default: the preset's).")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per trial (hyperband: its max_epochs); default: the preset's.")
    parser.add_argument("--directory", default="sweeps", help="parent directory of sweep projects (default: sweeps).")
    parser.add_argument("--project-name", default=None,
                        help="project folder under --directory (default: <task>-<preset>-<model>-<tuner>).")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the models' initial weights and data shuffling; the tuner's sampler uses "
                             "seed + 1 (default: 0).")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing project and start over.")
    parser.add_argument("--space", default=None, metavar="FILE.json",
                        help="JSON object narrowing or fixing dimensions: [low, high] = range, [a, b, ...] = choices, "
                             "scalar = fixed.")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                        help=f"fix a dimension, e.g. --fix init=inv --fix trainable_eigenvalues=false. "
                             f"Names: {', '.join(DIMENSIONS)}. Repeatable.")
    parser.add_argument("--range", action="append", default=[], metavar="NAME=LOW,HIGH",
                        help="narrow a dimension: LOW,HIGH for dt_min/dt_max/lr (log scale), a comma list of "
                             "choices for init/trainable_eigenvalues (e.g. --range init=inv,lin). Repeatable.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a non-searched zoo config key (as zoo/train.py --set), e.g. "
                             "--set num_layers=1 --set data_options.max_length=200. Repeatable.")
    parser.add_argument("--data-dir", default=None, help="directory with the task's data files (see zoo.data).")
    parser.add_argument("--cache-dir", default=None, help="data cache (default: $KERAS_SSM_DATA or ~/.cache/keras_ssm/data).")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2,
                        help="Keras fit output per trial: 0 silent, 1 progress bar, 2 one line per epoch (default: 2). "
                             "A summary line per trial is always printed.")
    parser.add_argument("--max-consecutive-failures", type=int, default=3,
                        help="stop the sweep after this many failed trials in a row (e.g. diverged in the first "
                             "epoch; default: 3).")
    parser.add_argument("--hyperband-factor", type=int, default=3, help="Hyperband's reduction factor (default: 3).")
    parser.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="distributed worker: how long to wait for the chief's oracle before failing "
                             "(default: 60).")
    parser.add_argument("--memory-screen", nargs="?", type=float, const=DEFAULT_THRESHOLD, default=None,
                        metavar="THRESHOLD",
                        help=f"skip, before training, every sample whose initial memory cannot reach the task's lag: "
                             f"the best channel's closed-form MF at the recall delay (delayed recall) or at half the "
                             f"sequence length (other tasks) must be >= THRESHOLD, in (0, 1] (default when given "
                             f"without a value: {DEFAULT_THRESHOLD:g}, the learnable edge measured by "
                             f"zoo/experiment.py learning-direction). Screened samples are listed in the report and "
                             f"count toward --max-trials (the sweep draws that many samples and trains those that "
                             f"pass). Random search, S4D only (default: off).")
    parser.add_argument("--track-memory", type=int, default=None, metavar="EVERY",
                        help="record each trial's eigenvalues, memory and gradient norms every EVERY training steps "
                             "(keras_ssm.MemoryTracker) into trial_<n>/memory_tracking.json/.npz/.png (default: off).")
    parser.add_argument("--print-space", action="store_true",
                        help="print the resolved search space and base config, then exit without training.")
    return parser


def resolve_base_config(args):
    """The zoo TrainConfig every trial starts from."""
    overrides = parse_set_overrides(args.set)
    searched = sorted(set(overrides) & set(DIMENSIONS))
    if searched:
        raise ValueError(f"--set {searched}: these are search dimensions; use --fix NAME=VALUE or --range instead.")
    flags = {"model": args.model, "epochs": args.epochs, "data_dir": args.data_dir, "cache_dir": args.cache_dir,
             "track_memory": args.track_memory}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    overrides.update(seed=args.seed, verbose=args.verbose)
    return get_config(args.task, args.preset, **overrides)


def main(argv=None) -> int:
    """The sweep CLI. Exit codes: 0 done; 1 stopped early (consecutive failed trials); 2 a config, data
    or project problem (one line on stderr; KERAS_SSM_TRACEBACK=1 shows the traceback); 130 interrupted
    (Ctrl-C), 75 preempted (SIGTERM or SIGUSR1): rerunning the same command resumes, the unfinished trial
    at its last backup."""
    args = build_parser().parse_args(argv)
    return run_interruptible(_main, args, "Rerunning the same command resumes the sweep (the unfinished trial "
                                          "from its last backup).")


def _main(args) -> int:
    try:
        if args.max_trials < 1:
            raise ValueError(f"--max-trials must be >= 1, got {args.max_trials}.")
        if args.max_consecutive_failures < 1:
            raise ValueError(f"--max-consecutive-failures must be >= 1, got {args.max_consecutive_failures}.")
        space = build_search_space(args.space, fix=args.fix, ranges=args.range)
        base_config = resolve_base_config(args)
    except ValueError as err:
        if want_traceback():
            raise
        return fail(err)
    if args.print_space:
        print(f"Search space:\n{space.describe()}\n\nBase config:\n{base_config}")
        return 0

    # Imported here, not at the top: KerasTuner, Keras and the zoo cost 4-5 s to import (measured here), which
    # --help, --print-space and a bad flag do not pay.
    from tuning.search import run_sweep

    try:
        result = run_sweep(base_config, space, tuner=args.tuner, max_trials=args.max_trials,
                           directory=args.directory, project_name=args.project_name, overwrite=args.overwrite,
                           max_consecutive_failures=args.max_consecutive_failures,
                           hyperband_factor=args.hyperband_factor, connect_timeout=args.connect_timeout,
                           memory_screen=args.memory_screen)
    except (ValueError, FileNotFoundError, NotADirectoryError, ConnectionError) as err:
        # Config, data and project problems (SweepProjectError and LockedError are ValueErrors).
        if want_traceback():
            raise
        return fail(err)
    if result.worker is not None:
        print(f"Worker {result.worker!r} done: the chief stopped handing out trials; it writes the report.")
        return 0
    if result.stopped_early:
        hint = "" if "screened out" in result.stopped_early else " (see --max-consecutive-failures)"
        print(f"\nThe search stopped early: {result.stopped_early}{hint}", file=sys.stderr)
    print("\n" + closing_lines(result.report, args.task))
    return 1 if result.stopped_early else 0


def closing_lines(report: dict, task: str) -> str:
    """What the sweep prints last: trials completed, the best trial, the report's files and the command that
    trains the best configuration, every path as typed from the working directory (``zoo.rundir.display_path``)."""
    lines = [f"{report['completed']} of {report['trials']} trial(s) completed."]
    if report["best_trial"] is not None:
        lines.append(f"Best: {trial_label(report['best_trial_id'])} (folder {display_path(report['best_trial_dir'])}), "
                     f"val_accuracy {report['best_value']:.4f}.")
    for key, label in (("csv", "table (CSV)"), ("markdown", "table (Markdown)"), ("plot", "plot"),
                       ("best_json", "best config")):
        if report[key] is not None:
            lines.append(f"{label + ':':<18}{display_path(report[key])}")
    if report["best_json"] is not None:
        lines.append(f"Train it: python {display_path(TRAIN_SCRIPT)} {task} --config {display_path(report['best_json'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
