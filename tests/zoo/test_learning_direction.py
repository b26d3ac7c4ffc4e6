"""The learning-direction experiment (zoo/learning_direction.py) at toy size: plan, run, resume, report."""

import json

import numpy as np
import pytest

from zoo import experiment
from zoo.learning_direction import (
    REPORT_JSON,
    REPORT_MD,
    collect_learning_direction,
    direction_of,
    plan_learning_direction,
    roc_auc,
    run_learning_direction,
    write_report,
)

TOY = {"d_model": 4, "d_state": 8, "epochs": 2, "batch_size": 20,
       "data_options": {"seq_len": 48, "num_train": 100, "num_val": 40, "num_test": 200}}


def _plan(tmp_path, **kwargs):
    args = dict(seeds=[0], edge_seeds=[0], inits=["inv"], lr_multipliers=[1], tasks=["delayed_recall"],
                edge_settings=["inv@0.5:5"], edge_delay_grid=[1], output_dir=tmp_path, overrides=TOY)
    args.update(kwargs)
    return plan_learning_direction(**args)


def test_the_default_plan_covers_every_cell_with_delays_from_the_initial_memory(tmp_path):
    plan = plan_learning_direction(output_dir=tmp_path)
    direction = [r for r in plan if r.grid == "direction"]
    cells = {(r.task, r.position, r.setting.init, r.lr_multiplier) for r in direction}
    assert len(cells) == 2 * 3 * (3 + 1) and len(direction) == 5 * len(cells)     # 5 seeds per cell
    assert {r.config.ssm_lr for r in direction} == {1e-3, 1e-2, 1e-1}
    assert all(r.config.trainable_eigenvalues for r in plan)
    recall = {r.position: r.delay for r in direction if r.setting.init == "inv" and r.task == "delayed_recall"}
    assert recall["inside"] < recall["at"] < recall["beyond"] < 128 and recall["beyond"] == 4 * recall["at"]
    assert {r.config.data_options.get("delay") for r in plan if r.grid == "edge"} == {2, 6, 16, 40, 100}


@pytest.mark.parametrize("kwargs, message", [
    ({"lr_multipliers": [0]}, "--lr-multipliers must be integers >= 1"),
    ({"tasks": ["text"]}, "--tasks must be among"),
    ({"edge_delay_grid": [48]}, r"--edge-delays must be integers in \[0, 48\)"),
    ({"edge_settings": ["inv@1:0.1"]}, "DT_MIN < DT_MAX"),
    ({"seeds": 0}, "seeds"),
    ({"overrides": {**TOY, "ssm_lr": 0.1}}, "set by the experiment"),
    ({"inits": ["nope"]}, "init"),
])
def test_plan_rejects_bad_input_before_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, **kwargs)


def test_statistics_are_scipys():
    assert direction_of([1.0, 1.1, 0.9])["direction"] == "extends"
    assert direction_of([-1.0, -1.1, -0.9])["direction"] == "shortens"
    assert direction_of([1.0, 2.0, 3.0])["direction"] == "none"         # the 95% interval [-0.48, 4.48]
    low, high = direction_of([1.0, 2.0, 3.0])["ci95"]
    assert low == pytest.approx(2 - 4.302653 / np.sqrt(3)) and high == pytest.approx(2 + 4.302653 / np.sqrt(3))
    perfect = roc_auc([0.9, 0.8, 0.1, 0.05], [True, True, False, False])
    assert perfect["auc"] == 1.0 and perfect["threshold"] == 0.8 and perfect["youden_j"] == 1.0
    assert roc_auc([0.1, 0.9, 0.5, 0.5], [True, False, True, False])["auc"] == pytest.approx(0.125)
    assert roc_auc([0.1, 0.2], [True, True])["auc"] is None


@pytest.mark.slow
def test_runs_resume_and_report(tmp_path):
    plan = _plan(tmp_path)
    assert [r.position for r in plan] == ["inside", "at", "beyond", "grid"]
    records = run_learning_direction(plan, log=lambda line: None)
    assert [r.status for r in records] == ["trained"] * len(plan)
    again = run_learning_direction(plan, log=lambda line: None)                  # a rerun trains nothing
    assert [r.status for r in again] == ["skipped"] * len(plan)
    report = write_report(again, tmp_path / "report", plan=plan, command="test", version="v", preset="quick")
    data = json.loads((tmp_path / "report" / REPORT_JSON).read_text())
    assert len(data["runs"]) == len(plan) and not data["missing"]
    for row in data["runs"]:
        assert row["steps"] == 10 and row["max_abs_eigenvalue"] < 1 and row["finite"]
        assert 0 <= row["mode_sign_agreement"] <= 1
    cells = report["summary"]["cells"]
    assert [(c["position"], c["lr_multiplier"]) for c in cells] == [("inside", 1), ("at", 1), ("beyond", 1)]
    assert report["summary"]["edge"]["runs"] == 4                     # the x1 direction runs and the edge run
    text = (tmp_path / "report" / REPORT_MD).read_text()
    for name in ("learning_direction.png", "learnable_edge.png", "trajectory_inv_lr1x.png"):
        assert name in text and (tmp_path / "report" / name).stat().st_size > 5000
    collected = collect_learning_direction(plan)
    assert all(r.finished for r in collected)
    # The CLI's report-only path gives the same numbers from the run directories alone.
    argv = ["learning-direction", "--seeds", "1", "--edge-seeds", "1", "--inits", "inv", "--lr-multipliers", "1",
            "--tasks", "delayed_recall", "--edge-settings", "inv@0.5:5", "--edge-delays", "1",
            "--output-dir", str(tmp_path), "--report-dir", str(tmp_path / "cli"), "--report-only",
            "--set", "d_model=4", "--set", "d_state=8", "--set", "epochs=2", "--set", "batch_size=20",
            "--set", "data_options.seq_len=48", "--set", "data_options.num_train=100",
            "--set", "data_options.num_val=40", "--set", "data_options.num_test=200"]
    assert experiment.main(argv) == 0
    assert json.loads((tmp_path / "cli" / REPORT_JSON).read_text())["runs"] == data["runs"]
