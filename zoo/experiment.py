"""The paper's experiments as one CLI: ``python zoo/experiment.py EXPERIMENT [flags]``.

Experiments:

* ``fixed-vs-learned`` (the default when no name is given, so the old invocation still works): paired zoo runs
  with fixed and learned eigenvalues over tasks, initialisations and seeds (zoo.fixed_vs_learned, zoo.report);
* ``memory-horizon``: delayed recall over a log-spaced delay grid, fixed / learned (/ partly frozen)
  eigenvalues, several settings, seeds; accuracy against MF(delay) at initialisation (zoo.memory_horizon);
* ``longest-memory``: one delay near the memory edge of the default init, settings ordered by memory length.

    python zoo/experiment.py fixed-vs-learned --tasks listops digits --seeds 3 --preset quick
    python zoo/experiment.py --tasks listops image --seeds 6 --preset small --model s4d --inits inv lin
    python zoo/experiment.py memory-horizon --preset quick --report-dir docs/results/memory-horizon-quick
    python zoo/experiment.py longest-memory --preset quick --seeds 3
    python zoo/experiment.py memory-horizon --preset full --frozen-modes 0.5     # on an accelerator

Run ``python zoo/experiment.py EXPERIMENT --help`` for every flag. Rerunning a command skips finished runs
(those with results.json), resumes interrupted ones from their last epoch, and rewrites the report.
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

from zoo.cli_common import parse_set_overrides  # noqa: E402
from zoo.configs import INITS, MODELS, PRESETS, TASKS  # noqa: E402

DEFAULT_TASKS = ("listops", "digits", "delayed_recall", "delayed_recall_short")


EXPERIMENTS = ("fixed-vs-learned", "memory-horizon", "longest-memory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python zoo/experiment.py [fixed-vs-learned]",
        epilog="Other experiments: python zoo/experiment.py memory-horizon --help, "
               "python zoo/experiment.py longest-memory --help.",
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
    _add_shard_argument(parser, "task, init and seed (its fixed and learned run)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from the runs already finished in --output-dir.")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2,
                        help="Keras fit verbosity of each run: 2 = one line per epoch (default), 1 = progress bar, "
                             "0 = silent.")
    return parser


def plan_from_args(args):
    """The experiment plan (zoo.fixed_vs_learned.plan_runs) of parsed command-line ``args``."""
    from zoo.fixed_vs_learned import plan_runs

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
    """Dispatch on the experiment name (first argument); no name means fixed-vs-learned."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in EXPERIMENTS:
            print(f"python zoo/experiment.py: error: unknown experiment {name!r}; choose one of "
                  f"{', '.join(EXPERIMENTS)}.", file=sys.stderr)
            return 2
    else:
        name, rest = "fixed-vs-learned", argv
    if name == "fixed-vs-learned":
        return main_fixed_vs_learned(rest, argv)
    return main_memory(name, rest, argv)


def _command(argv) -> str:
    backend = os.environ.get("KERAS_BACKEND")
    return ((f"KERAS_BACKEND={backend} " if backend else "") + "python zoo/experiment.py "
            + " ".join(shlex.quote(a) for a in argv))


def build_memory_parser(name: str) -> argparse.ArgumentParser:
    from zoo.memory_horizon import LONGEST_MEMORY_SETTINGS, PRESETS as MEMORY_PRESETS

    longest = name == "longest-memory"
    parser = argparse.ArgumentParser(
        prog=f"python zoo/experiment.py {name}",
        description=(
            "Longest memory wins? Delayed recall at one delay near the memory edge of the reference setting "
            "(inv, dt in [0.001, 0.1]), for settings ordered by memory length; reports memory length, memory "
            "accuracy and task accuracy side by side." if longest else
            "Memory horizon: delayed recall over a log-spaced grid of delays, trained with fixed and learned "
            "eigenvalues (and optionally part of each channel's modes frozen), for several eigenvalue settings "
            "and seeds. Reports test accuracy, MF(delay) of the SSM layers at initialisation and after training "
            "and the trained network's empirical MF(delay), with one figure on a shared delay axis.")
        + " Settings are INIT or INIT@DT_MIN:DT_MAX, INIT any zoo init (inv, lin, legs, real, random, "
          "linear_magnitudes[:rho=R], unity_rings[:rho=R,p=P], or a .npy file of continuous eigenvalues).",
    )
    parser.add_argument("--preset", choices=tuple(MEMORY_PRESETS), default="quick",
                        help="sizes: quick = a shared 2-core CPU (1 layer, H=16, N=32, length 1024), full = an "
                             "accelerator (2 layers, H=64, N=64, length 4096, 5 seeds) (default: quick).")
    if longest:
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
    parser.add_argument("--output-dir", default=None, help=f"runs and report (default: runs/{name}-<preset>).")
    parser.add_argument("--report-dir", default=None, help="where the report goes (default: --output-dir).")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report the finished runs.")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=0, help="Keras fit verbosity (default 0).")
    _add_shard_argument(parser, "setting, mode and seed (its delays share one compiled model)")
    return parser


def _add_shard_argument(parser, group: str) -> None:
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help=f"train only shard K of N (1 <= K <= N) of the run list, into the shared --output-dir: "
                             f"every N-th group of runs of one {group}. Start shards 1..N with otherwise identical "
                             f"arguments (any machines sharing the directory); then build the report with "
                             f"--report-only (default: one process trains every run).")


def _shard_plan(args, plan, group_key):
    """(the runs this process trains, (K, N) or None); checks --shard and records/compares the plan."""
    from zoo.shards import claim_plan, parse_shard, select_shard

    if args.shard is None:
        return plan, None
    shard = parse_shard(args.shard)
    if args.report_only:
        raise ValueError("--shard and --report-only exclude each other: the report covers every shard's runs.")
    claim_plan(args.output_dir, [run.label for run in plan], shard[1])
    return select_shard(plan, shard, group_key), shard


def _shard_done(shard, records) -> int:
    k, n = shard
    failed = sum(r["status"] == "failed" for r in records)
    print(f"Shard {k}/{n} done: {len(records)} runs ({failed} failed). When every shard is done, rerun the "
          f"command without --shard and with --report-only to write the report.", flush=True)
    return 1 if failed else 0


def main_memory(name, rest, argv) -> int:
    from zoo.memory_horizon import (
        PRESETS as MEMORY_PRESETS,
        REFERENCE_SETTING,
        Setting,
        code_version,
        collect_memory_horizon,
        plan_memory_horizon,
        reference_edge_delay,
        run_memory_horizon,
        write_memory_horizon_report,
    )

    parser = build_memory_parser(name)
    args = parser.parse_args(rest)
    preset = MEMORY_PRESETS[args.preset]
    output_dir = args.output_dir = args.output_dir or str(Path("runs") / f"{name}-{args.preset}")
    try:
        if args.first_seed < 0:
            raise ValueError(f"--first-seed must be >= 0, got {args.first_seed}.")
        seeds = preset["seeds"] if args.seeds is None else args.seeds
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}.")
        overrides = parse_set_overrides(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        if name == "longest-memory":
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
        plan = plan_memory_horizon(delays=delays, settings=settings,
                                   seeds=list(range(args.first_seed, args.first_seed + seeds)),
                                   output_dir=output_dir, preset=args.preset, frozen_modes=args.frozen_modes,
                                   overrides=overrides, verbose=args.verbose)
        mine, shard = _shard_plan(args, plan, lambda run: (run.setting.dirname, run.mode, run.seed))
    except ValueError as err:
        parser.error(str(err))
    sequences = preset["empirical_sequences"]
    if shard is not None:
        return _shard_done(shard, run_memory_horizon(mine, empirical_sequences=sequences))
    version = code_version()
    records = (collect_memory_horizon(plan, empirical_sequences=sequences) if args.report_only
               else run_memory_horizon(plan, empirical_sequences=sequences))
    report_dir = args.report_dir or output_dir
    report = write_memory_horizon_report(records, report_dir, experiment=name, command=_command(argv), plan=plan,
                                         preset=args.preset, version=version)
    print(report["markdown"])
    print(f"Report written to {Path(report_dir) / 'report.md'}", flush=True)
    return 1 if report["runs_failed"] else 0


def main_fixed_vs_learned(rest, argv) -> int:
    parser = build_parser()
    args = parser.parse_args(rest)
    if args.output_dir is None:
        args.output_dir = str(Path("runs") / f"experiment-{args.preset}-{args.model}")
    try:
        plan = plan_from_args(args)
        mine, shard = _shard_plan(args, plan, lambda run: (run.task, run.init, run.seed))
    except ValueError as err:
        parser.error(str(err))

    from zoo.fixed_vs_learned import collect_records, run_experiment
    from zoo.report import REPORT_MD, write_report
    from zoo.runs import RunDirectoryError

    command = _command(argv)
    try:
        if shard is not None:
            return _shard_done(shard, run_experiment(mine))
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
