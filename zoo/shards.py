"""Split an experiment's run list across processes or machines: ``--shard K/N``.

Shard K of N trains the groups ``g`` of the plan with ``g % N == K - 1`` (groups in plan order; a group is
the runs that belong together, e.g. the fixed and learned run of one task, init and seed). The partition
depends only on the plan, so N processes started with the same experiment arguments and shards 1..N
train every run exactly once, into one shared output directory. The first shard to start records the
plan and the shard count in ``OUTPUT_DIR/shards.json``; a shard whose plan or N differ is refused before
it trains anything, so a changed command cannot mix its runs with another grid's. Each run directory
still has one writer (its lock), and finished runs are skipped, so restarting a shard continues it.
``--report-only`` then builds the one report from every shard's runs.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from zoo.rundir import SHARDS_FILE, read_json, write_json_exclusive


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N.

    Raises:
        ValueError: malformed text or K outside 1..N; the message names ``--shard`` and the allowed form.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard must be K/N with integers 1 <= K <= N (e.g. --shard 2/4), got {text!r}.")
    k, n = int(match[1]), int(match[2])
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r} (shards are numbered 1..{max(n, 1)}).")
    return k, n


def select_shard(plan, shard: tuple[int, int], group_key) -> list:
    """The runs of ``plan`` that shard ``(K, N)`` trains: every N-th group of ``group_key(run)``, from the
    (K-1)-th, in plan order."""
    k, n = shard
    groups: dict = {}
    for run in plan:
        groups.setdefault(group_key(run), []).append(run)
    return [run for index, runs in enumerate(groups.values()) if index % n == k - 1 for run in runs]


def claim_plan(output_dir, labels, shards: int) -> None:
    """Record (first shard) or check (later shards) the experiment's full run list and shard count.

    Raises:
        ValueError: ``OUTPUT_DIR/shards.json`` holds another run list or shard count.
    """
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SHARDS_FILE
    mine = {"shards": int(shards), "runs": list(labels)}
    if not path.exists():  # of two shards starting at once, one records the plan
        write_json_exclusive(path, {**mine, "created_by": f"pid {os.getpid()} on {socket.gethostname()}"})
    stored = read_json(path, "Delete it only if no shard of this experiment is running or will be rerun.")
    if stored.get("shards") != mine["shards"]:
        raise ValueError(f"{path} records an experiment split into {stored.get('shards')} shards; this command "
                         f"uses {shards}. Use the same N in every shard (or another --output-dir).")
    theirs = stored.get("runs", [])
    if theirs != mine["runs"]:
        only_mine = sorted(set(mine["runs"]) - set(theirs))[:3]
        only_theirs = sorted(set(theirs) - set(mine["runs"]))[:3]
        raise ValueError(f"{path} records another run list ({len(theirs)} runs; this command plans "
                         f"{len(mine['runs'])}; e.g. only here: {only_mine}, only there: {only_theirs}). Every "
                         f"shard must be started with the same experiment arguments (or use another --output-dir).")
