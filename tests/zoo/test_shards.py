"""Sharded experiments: --shard K/N partitions the run list, N shards train every run exactly once."""

import json
import re

import pytest

from zoo import experiment, fixed_vs_learned, memory_horizon
from zoo.protocol import RunRecord
from zoo.shards import SHARDS_FILE, claim_plan, parse_shard, select_shard

FVL = ["--tasks", "delayed_recall", "digits", "--seeds", "3", "--inits", "inv", "lin"]
MH = ["memory-horizon", "--delays", "2", "8", "--settings", "inv", "lin@0.01:0.1", "--seeds", "3",
      "--frozen-modes", "0.5", "--set", "data_options.seq_len=32"]


def record_trained(monkeypatch, module, name):
    trained = []

    def fake(plan, **_):
        trained.extend(run.label for run in plan)
        return [RunRecord(run, "trained") for run in plan]

    monkeypatch.setattr(module, name, fake)
    return trained


@pytest.mark.parametrize("argv, module, name, group", [
    (FVL, fixed_vs_learned, "run_experiment", lambda label: label.rsplit("/", 1)[0]),
    (MH, memory_horizon, "run_memory_horizon", lambda label: re.sub(r"/delay\d+", "", label)),
])
def test_shards_train_every_run_once_and_keep_groups_together(tmp_path, monkeypatch, capsys, argv, module, name,
                                                              group):
    trained = record_trained(monkeypatch, module, name)
    out = ["--output-dir", str(tmp_path)]
    per_shard = []
    for k in (1, 2, 3):
        before = len(trained)
        assert experiment.main(argv + out + ["--shard", f"{k}/3"]) == 0
        assert f"Shard {k}/3 done" in capsys.readouterr().out
        per_shard.append(trained[before:])
    planned = json.loads((tmp_path / SHARDS_FILE).read_text())
    assert planned["shards"] == 3
    assert sorted(trained) == sorted(planned["runs"]) and len(set(trained)) == len(trained)
    assert all(per_shard)  # every shard got work
    shard_of_group = {}
    for k, labels in enumerate(per_shard):
        for label in labels:
            assert shard_of_group.setdefault(group(label), k) == k  # a group never spans two shards
    # the same command again: the same partition
    trained.clear()
    assert experiment.main(argv + out + ["--shard", "2/3"]) == 0
    assert trained == per_shard[1]


def test_a_shard_with_another_grid_or_count_is_refused_before_training(tmp_path, monkeypatch, capsys):
    trained = record_trained(monkeypatch, fixed_vs_learned, "run_experiment")
    out = ["--output-dir", str(tmp_path)]
    assert experiment.main(FVL + out + ["--shard", "1/2"]) == 0
    for argv, message in ((FVL + out + ["--shard", "2/3"], "split into 2 shards"),
                          (FVL[:-1] + out + ["--shard", "2/2"], "another run list"),
                          (FVL + out + ["--shard", "2/2", "--report-only"], "exclude each other"),
                          (FVL + out + ["--shard", "0/2"], "1 <= K <= N"),
                          (FVL + out + ["--shard", "3/2"], "1 <= K <= N"),
                          (FVL + out + ["--shard", "half"], "--shard must be K/N")):
        trained.clear()
        with pytest.raises(SystemExit) as exit_info:
            experiment.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err and not trained


def test_partition_helpers():
    assert parse_shard(" 2 / 5 ") == (2, 5)
    plan = list(range(10))
    shards = [select_shard(plan, (k, 3), lambda x: x // 2) for k in (1, 2, 3)]
    assert shards == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5]]


def test_two_shards_starting_at_once_record_one_plan(tmp_path):
    claim_plan(tmp_path, ["a", "b"], 2)
    claim_plan(tmp_path, ["a", "b"], 2)  # the second start finds the same plan
    assert json.loads((tmp_path / SHARDS_FILE).read_text())["runs"] == ["a", "b"]
    assert not [p for p in tmp_path.iterdir() if p.name != SHARDS_FILE]  # no temporary file left
