"""The paper's experiments as one CLI: ``python zoo/experiment.py EXPERIMENT [flags]``.

Experiments:

* ``fixed-vs-learned`` (the default when no name is given, so the old invocation still works): paired zoo runs
  with fixed and learned eigenvalues over tasks, initialisations and seeds (zoo.fixed_vs_learned, zoo.report);
* ``memory-horizon``: delayed recall over a log-spaced delay grid, fixed / learned (/ partly frozen)
  eigenvalues, several settings, seeds; accuracy against MF(delay) at initialisation (zoo.memory_horizon);
* ``longest-memory``: one delay near the memory edge of the default init, settings ordered by memory length;
* ``learning-direction``: which way learning moves memory length and the eigenvalues (delayed recall inside, at
  and beyond the init's memory edge, ListOps; SSM lr x1/x10/x100), whether the initial gradient by lag predicts
  it, and whether MF(delay) at initialisation predicts learning the delay (zoo.learning_direction).

    python zoo/experiment.py fixed-vs-learned --tasks listops digits --seeds 3 --preset quick
    python zoo/experiment.py --tasks listops image --seeds 6 --preset small --model s4d --inits inv lin
    python zoo/experiment.py memory-horizon --preset quick --report-dir docs/results/memory-horizon-quick
    python zoo/experiment.py longest-memory --preset quick --seeds 3
    python zoo/experiment.py learning-direction --preset quick --report-dir docs/results/learning-direction
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

import os  # noqa: E402
import shlex  # noqa: E402

from zoo.cli_common import run_interruptible  # noqa: E402
from zoo.fixed_vs_learned import FixedVsLearned  # noqa: E402
from zoo.learning_direction import LearningDirection  # noqa: E402
from zoo.memory_horizon import MemoryHorizon  # noqa: E402
from zoo.reporting import code_version_label  # noqa: E402
from zoo.rundir import REPORT_MD, RunDirectoryError  # noqa: E402
from zoo.shards import claim_plan, parse_shard, select_shard  # noqa: E402

#: name -> experiment (zoo.protocol.Experiment); the first is the default when no name is given.
EXPERIMENTS = {experiment.name: experiment
               for experiment in (FixedVsLearned(), MemoryHorizon(), MemoryHorizon(longest=True),
                                   LearningDirection())}
DEFAULT_EXPERIMENT = "fixed-vs-learned"


def main(argv=None) -> int:
    """Dispatch on the experiment name (first argument; none means fixed-vs-learned), then plan, run (or only
    collect with --report-only; only this shard's groups with --shard), report. Ctrl-C: one line, status 130;
    SIGTERM or SIGUSR1: one line, status 75."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_interruptible(_main, argv, "Rerunning the same command resumes (finished runs are kept).")


def _main(argv) -> int:
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in EXPERIMENTS:
            print(f"python zoo/experiment.py: error: unknown experiment {name!r}; choose one of "
                  f"{', '.join(EXPERIMENTS)}.", file=sys.stderr)
            return 2
    else:
        name, rest = DEFAULT_EXPERIMENT, argv
    experiment = EXPERIMENTS[name]
    parser = experiment.build_parser()
    _add_protocol_arguments(parser, experiment.group)
    args = parser.parse_args(rest)
    try:
        plan = experiment.plan_from_args(args)
        mine, shard = _shard_plan(args, plan, experiment.group_key)
    except ValueError as err:
        parser.error(str(err))
    try:
        if shard is not None:
            return _shard_done(shard, experiment.run(mine))
        version = code_version_label()  # before training: later edits of the checkout do not change it
        records = experiment.collect(plan) if args.report_only else experiment.run(plan)
    except RunDirectoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report_dir = args.report_dir or args.output_dir
    report = experiment.report(records, report_dir, plan=plan, command=_command(argv), version=version, args=args)
    print(report["markdown"])
    print(f"\nReport written to {Path(report_dir) / REPORT_MD}", flush=True)
    return 1 if report["failed"] else 0


def _command(argv) -> str:
    backend = os.environ.get("KERAS_BACKEND")
    return ((f"KERAS_BACKEND={backend} " if backend else "") + "python zoo/experiment.py "
            + " ".join(shlex.quote(a) for a in argv))


def _add_protocol_arguments(parser, group: str) -> None:
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help=f"train only shard K of N (1 <= K <= N) of the run list, into the shared --output-dir: "
                             f"every N-th group of runs of one {group}. Start shards 1..N with otherwise identical "
                             f"arguments (any machines sharing the directory); then build the report with "
                             f"--report-only (default: one process trains every run).")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from the runs already finished in --output-dir.")


def _shard_plan(args, plan, group_key):
    """(the runs this process trains, (K, N) or None); checks --shard and records/compares the plan."""
    if args.shard is None:
        return plan, None
    shard = parse_shard(args.shard)
    if args.report_only:
        raise ValueError("--shard and --report-only exclude each other: the report covers every shard's runs.")
    claim_plan(args.output_dir, [run.label for run in plan], shard[1])
    return select_shard(plan, shard, group_key), shard


def _shard_done(shard, records) -> int:
    k, n = shard
    failed = sum(r.status == "failed" for r in records)
    print(f"Shard {k}/{n} done: {len(records)} runs ({failed} failed). When every shard is done, rerun the "
          f"command without --shard and with --report-only to write the report.", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
