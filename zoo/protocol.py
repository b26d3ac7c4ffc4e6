"""The experiment protocol: plan -> run -> collect -> report, with one typed record per planned run.

An experiment (zoo.fixed_vs_learned, zoo.memory_horizon, or a new one) is a :class:`Experiment`:

    plan = experiment.plan_from_args(args)       # every run, validated before anything trains
    records = experiment.run(plan)               # trains what is unfinished; one RunRecord per run
    records = experiment.collect(plan)           # the same records from the run directories alone
    report = experiment.report(records, report_dir, plan=plan, command=..., version=..., args=args)

``python zoo/experiment.py NAME`` looks NAME up in ``zoo.experiment.EXPERIMENTS`` and runs these steps
(with ``--shard K/N``: only the groups of runs ``group_key`` assigns to shard K, no report). A run is
finished when its ``results.json`` (a ``zoo.core.RunResult``) exists; finished runs are never trained again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

#: The states of a record: trained now, finished earlier (skipped), failed (diverged), not finished (missing).
STATUSES = ("trained", "skipped", "failed", "missing")


class PlannedRun:
    """What every experiment's planned run has beyond its own fields: ``config`` (a zoo TrainConfig) and the
    directory it trains into."""

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)


@dataclass
class RunRecord:
    """One planned run of an experiment and what its directory holds.

    Attributes:
        run: the experiment's planned run (it has ``label``, ``run_dir`` and ``config``).
        status: one of :data:`STATUSES`.
        results: the run's results.json (``zoo.core.RunResult.to_dict()``), None unless finished.
        analysis: its analysis.json (zoo.analysis), None unless finished.
        empirical: an experiment's extra per-run measurement (memory-horizon: empirical.json), else None.
        error: why the run failed, else None.
    """

    run: object
    status: str
    results: dict | None = None
    analysis: dict | None = None
    empirical: dict | None = None
    error: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"`status` must be one of {STATUSES}, got {self.status!r}.")

    @property
    def finished(self) -> bool:
        return self.results is not None


class Experiment:
    """What ``python zoo/experiment.py NAME`` needs of an experiment; subclasses implement every method.

    Attributes:
        name: the command-line name (e.g. "fixed-vs-learned").
        group: what one shard group is, in words (for ``--shard``'s help).
    """

    name: str = ""
    group: str = ""

    def build_parser(self) -> argparse.ArgumentParser:
        """The experiment's command-line flags (``--shard`` and ``--report-only`` are added by the CLI)."""
        raise NotImplementedError

    def plan_from_args(self, args) -> list:
        """Every planned run of parsed ``args`` (ValueError for bad arguments, before anything trains)."""
        raise NotImplementedError

    def group_key(self, run):
        """The runs of one group are sharded together (e.g. the fixed and learned run of one seed)."""
        raise NotImplementedError

    def run(self, plan) -> list[RunRecord]:
        """Train every unfinished run of ``plan``; one record per run, in plan order."""
        raise NotImplementedError

    def collect(self, plan) -> list[RunRecord]:
        """The records of ``plan`` from the run directories alone (unfinished runs are "missing")."""
        raise NotImplementedError

    def report(self, records, report_dir, *, plan, command: str, version: str, args) -> dict:
        """Write the report into ``report_dir``; returns {"markdown": str, "failed": int, ...}."""
        raise NotImplementedError
