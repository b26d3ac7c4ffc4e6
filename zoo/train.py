"""Train a preconfigured SSM on a Long Range Arena task.

    python zoo/train.py listops                      # quick CPU preset on generated ListOps
    python zoo/train.py listops --preset full --model s4d --fixed-eigenvalues
    python zoo/train.py image --preset small --data-dir ~/data/tfds --set lr=0.005

Run ``python zoo/train.py --help`` for every flag. Rerunning an interrupted command resumes it.

Exit codes: 0 done; 1 the training diverged (the message says which checkpoint is kept and how to
continue); 2 a config, data or run-directory problem (one line on stderr; set KERAS_SSM_TRACEBACK=1
for the traceback); 130 interrupted (Ctrl-C); 75 preempted (SIGTERM or SIGUSR1, see --preempt-signals: the
backup of the last finished step is written; requeue the job). After 130 or 75 rerunning the same command
resumes at the exact step.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python zoo/train.py): import the `zoo` package from the repository root, and
    # keep zoo/ itself off sys.path so its module names cannot shadow top-level packages.
    _script_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _script_dir]
    sys.path.insert(0, str(_script_dir.parent))

import argparse  # noqa: E402

from zoo.cli_common import TRACEBACK_ENV, fail, parse_set_overrides, run_interruptible, want_traceback  # noqa: E402,F401
from zoo.interrupts import DEFAULT_PREEMPT_SIGNALS, parse_signal_names  # noqa: E402
from zoo.configs import (  # noqa: E402
    DEFAULT_PRESET,
    FIELD_NAMES,
    INITS,
    MODELS,
    PRESETS,
    TASKS,
    get_config,
    load_json_overrides,
)
from zoo.distributed import ADDRESS_ENV, COUNT_ENV, ID_ENV, initialize, process_group  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python zoo/train.py",
        description=(
            "Train the preconfigured S4D/S4 model for a Long Range Arena task. Settings are resolved as: "
            "preset < --config JSON file < flags < --set KEY=VALUE. Outputs (config.json, history.csv, "
            "tensorboard/, best.keras, checkpoints/, results.json, training_curves.png, "
            "memory_functions.png) go to --output-dir; rerunning the same command resumes an interrupted run."
        ),
        epilog=("Backend: Keras' KERAS_BACKEND environment variable, jax, tensorflow or torch (Keras' default when "
                "unset is tensorflow; the README's commands set jax). The run prints the backend and device it uses "
                "at its start. Use --print-config to see every resolved setting."),
    )
    parser.add_argument("task", nargs="?", choices=TASKS,
                        help="LRA task (or 'digits', the scikit-learn digits stand-in); omitted with --evaluate.")
    parser.add_argument("--evaluate", default=None, metavar="RUN_DIR",
                        help="train nothing: load RUN_DIR's best.keras and print its accuracy and loss on the "
                             "run's own test split (the task and data options of its config.json).")
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help=f"model/data size: full = published LRA sizes, small = official '-small' sizes, "
                             f"quick = minutes on a CPU (default: {DEFAULT_PRESET}).")
    parser.add_argument("--model", choices=MODELS, default=None, help="SSM layer: keras_ssm.S4D or keras_ssm.S4 (default: s4d, every preset).")
    eig = parser.add_mutually_exclusive_group()
    eig.add_argument("--fixed-eigenvalues", dest="trainable_eigenvalues", action="store_false", default=None,
                     help="freeze the eigenvalues and dt (the reservoir setting); C, D and the rest still train.")
    eig.add_argument("--trainable-eigenvalues", dest="trainable_eigenvalues", action="store_true", default=None,
                     help="learn the eigenvalues and dt (the preset default).")
    parser.add_argument("--init", default=None, metavar="INIT",
                        help=f"eigenvalue initialisation: one of {', '.join(i for i in INITS if i)} (discrete "
                             "families take parameters, e.g. unity_rings:rho=0.99,p=4), or a .npy file of "
                             "continuous eigenvalues, shape (N/2,) or (H, N/2) (default: the layer's, 'inv' for "
                             "S4D, 'legs' for S4).")
    parser.add_argument("--frozen-modes", type=float, default=None, metavar="FRACTION",
                        help="freeze this fraction of each channel's eigenvalues while the rest train (0..1; default: none).")
    parser.add_argument("--dt-min", type=float, default=None, help="smallest initial step size dt (default: the preset's, 0.001 for the LRA tasks).")
    parser.add_argument("--dt-max", type=float, default=None, help="largest initial step size dt (default: the preset's, 0.1 for the LRA tasks).")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the preset's).")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the preset's).")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate of the non-SSM parameters (default: the preset's).")
    parser.add_argument("--ssm-lr", type=float, default=None,
                        help="peak learning rate of the SSM parameters (A, dt, B; no weight decay; default: 0.001).")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the official task files / prepared tfds data (default: generate "
                             "ListOps and Pathfinder into the cache; see zoo.data).")
    parser.add_argument("--cache-dir", default=None,
                        help="data cache (default: $KERAS_SSM_DATA or ~/.cache/keras_ssm/data).")
    parser.add_argument("--seed", type=int, default=None, help="random seed of weights, shuffling and dropout (default: 0).")
    parser.add_argument("--output-dir", default=None,
                        help="run directory (default: runs/<task>-<preset>-<model>-<fixed|learned>-seed<k>).")
    parser.add_argument("--config", default=None, metavar="FILE.json",
                        help="JSON object of config keys overriding the preset (unknown keys are an error).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key; VALUE is parsed as JSON when it can be (e.g. "
                             "--set num_layers=4 --set data_options.max_length=200). Repeatable. "
                             f"Keys: {', '.join(FIELD_NAMES)}.")
    parser.add_argument("--distribute", choices=["data"], default=None,
                        help="data-parallel training over all devices (keras.distribution.DataParallel; JAX backend only): "
                             "the local ones, or those of every process with --coordinator/--num-processes/"
                             "--process-id (default: one device).")
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help=f"multi-process data parallelism (with --distribute data, JAX): process 0's address, the "
                             f"same in every process (default: ${ADDRESS_ENV}; none = one process).")
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help=f"number of processes of a multi-process run (default: ${COUNT_ENV}).")
    parser.add_argument("--process-id", type=int, default=None, metavar="K",
                        help=f"this process's id, 0..N-1; process 0 writes the run directory (default: ${ID_ENV}).")
    parser.add_argument("--backup-every", default=None, metavar="WHEN",
                        help="also back the run up inside an epoch: every N training steps ('500'), every M minutes "
                             "or S seconds of training ('10m', '90s'), or both ('500,10m'); 'epoch': only at "
                             "epoch ends (default: the preset's, 10m for full, epoch otherwise). A rerun resumes "
                             "at the exact step.")
    parser.add_argument("--track-memory", type=int, default=None, metavar="EVERY",
                        help="record every EVERY training steps each SSM layer's eigenvalues, memory length, MF at "
                             "log-spaced lags and gradient norms on a held validation batch (keras_ssm.MemoryTracker) "
                             "into memory_tracking.json/.npz, plotted as memory_tracking.png (default: 0, off).")
    parser.add_argument("--preempt-signals", default=",".join(DEFAULT_PREEMPT_SIGNALS), metavar="SIGNALS",
                        help="signals that mean 'preempted': training stops at the end of the current step, "
                             "writes a backup of it and exits with status 75 (default: %(default)s; '' for none: "
                             "they then kill the process as usual).")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run in the output directory instead of resuming it (the new "
                             "config's data and model are checked first; nothing is deleted if they fail).")
    parser.add_argument("--resume-diverged", action="store_true",
                        help="continue a run that stopped on divergence from its last completed epoch; --lr, "
                             "--ssm-lr and --set divergence_factor=... may then differ from the stored config.")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=None,
                        help="Keras fit verbosity: 1 = progress bar, 2 = one line per epoch (for logs and files), "
                             "0 = silent (default: 1 on a terminal, 2 when the output goes to a file or pipe).")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit.")
    return parser


def default_verbosity(stream=None) -> int:
    """Keras' progress bar (1) on a terminal; one line per epoch (2) when the output goes to a file or a pipe,
    where every redraw of the bar would be a line of its own."""
    stream = sys.stdout if stream is None else stream
    return 1 if getattr(stream, "isatty", lambda: False)() else 2


def resolve_config(args):
    """The TrainConfig of parsed command-line ``args``."""
    file_values = load_json_overrides(args.config) if args.config else {}
    if "task" in file_values and file_values["task"] != args.task:
        raise ValueError(f"--config sets task={file_values['task']!r} but the command line says {args.task!r}.")
    if args.preset and "preset" in file_values and file_values["preset"] != args.preset:
        raise ValueError(f"--config sets preset={file_values['preset']!r} but --preset is {args.preset!r}.")
    preset = args.preset or file_values.get("preset", DEFAULT_PRESET)
    config = get_config(args.task, preset)
    if file_values:
        config = config.replace(**file_values)
    flags = {
        "model": args.model,
        "trainable_eigenvalues": args.trainable_eigenvalues,
        "init": args.init,
        "frozen_modes": args.frozen_modes,
        "dt_min": args.dt_min,
        "dt_max": args.dt_max,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ssm_lr": args.ssm_lr,
        "data_dir": args.data_dir,
        "cache_dir": args.cache_dir,
        "seed": args.seed,
        "output_dir": args.output_dir,
        "distribute": args.distribute,
        "backup_every": args.backup_every,
        "track_memory": args.track_memory,
        "verbose": args.verbose,
    }
    if args.verbose is None and "verbose" not in file_values:
        flags["verbose"] = default_verbosity()
    config = config.replace(**{k: v for k, v in flags.items() if v is not None})
    overrides = parse_set_overrides(args.set)
    for key in ("task", "preset"):
        if key in overrides:
            raise ValueError(f"--set {key}=... is not allowed: give the task as the first argument and --preset.")
    return config.replace(**overrides) if overrides else config


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        preempt_signals = parse_signal_names(args.preempt_signals)
    except ValueError as err:
        return fail(err)
    return run_interruptible(_main, args, "Rerunning the same command resumes from the last backup.",
                             preempt_signals)


def _main(args) -> int:
    if args.evaluate is not None:
        return _evaluate(args)
    if args.task is None:
        return fail("the task is required (one of: " + ", ".join(TASKS) + "), or --evaluate RUN_DIR.")
    try:
        config = resolve_config(args)
    except ValueError as err:
        if want_traceback():
            raise
        return fail(err)
    if args.print_config:
        print(config.to_json())
        return 0
    try:
        group = process_group(args.coordinator, args.num_processes, args.process_id)
        if group is not None and group.num_processes > 1 and config.distribute != "data":
            raise ValueError("--num-processes > 1 trains one model over the devices of several processes: add "
                             "--distribute data.")
    except ValueError as err:
        if want_traceback():
            raise
        return fail(err)

    # Imported here, not at the top: zoo.runs brings Keras, its backend and TensorFlow (4-5 s measured here),
    # which --help, --print-config and a bad flag do not pay.
    from zoo.runs import TrainingDivergedError, train

    try:
        if group is not None:
            initialize(group)
        train(config, overwrite=args.overwrite, resume_diverged=args.resume_diverged)
    except TrainingDivergedError as err:
        if want_traceback():
            raise
        return fail(err, code=1)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        # Config, data and run-directory problems (RunDirectoryError is a ValueError).
        if want_traceback():
            raise
        return fail(err)
    return 0


def _evaluate(args) -> int:
    if args.task is not None:
        return fail(f"--evaluate takes the task from RUN_DIR's config.json; drop the task argument {args.task!r}.")
    from zoo.runs import evaluate_run  # 4-5 s of imports (see main)

    try:
        result = evaluate_run(args.evaluate, batch_size=args.batch_size)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        if want_traceback():
            raise
        return fail(err)
    print(f"{result['task']} {result['split']}: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on "
          f"{result['examples']} examples (majority-class rate {result['majority_class_rate']:.4f}); "
          f"model {Path(args.evaluate) / 'best.keras'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
