"""The memory-horizon and longest-memory experiments (zoo/memory_horizon.py, zoo/experiment.py) at toy size."""

import json

import numpy as np
import pytest

from zoo import experiment
from zoo.memory_horizon import (
    REPORT_JSON,
    REPORT_MD,
    Setting,
    collect_memory_horizon,
    log_delays,
    plan_memory_horizon,
    run_memory_horizon,
    write_memory_horizon_report,
)

TOY = {"d_model": 4, "d_state": 8, "epochs": 2, "batch_size": 20, "lr": 0.01,
       "data_options": {"seq_len": 48, "num_train": 100, "num_val": 40, "num_test": 400}}


def _plan(tmp_path, **kwargs):
    args = dict(delays=[1, 40], settings=["inv@0.5:5"], seeds=[0], output_dir=tmp_path, overrides=TOY)
    args.update(kwargs)
    return plan_memory_horizon(**args)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"delays": []}, "delay grid is empty"),
        ({"delays": [1, 48]}, "< the sequence length 48"),
        ({"delays": [-1]}, ">= 0"),
        ({"settings": ["inv@1:0.1"]}, "DT_MIN < DT_MAX"),
        ({"settings": ["nope"]}, "init"),
        ({"frozen_modes": [1.5]}, r"\[0, 1\]"),
        ({"seeds": 0}, "seeds"),
        ({"overrides": {**TOY, "batch_size": 500}}, "at least one batch"),
        ({"overrides": {**TOY, "init": "lin"}}, "set by the experiment"),
    ],
)
def test_plan_rejects_bad_input_before_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, **kwargs)


def test_plan_rejects_an_unstable_eigenvalue_file(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.array([0.1 + 1j, -1.0, -1.0 + 2j, -2.0]))  # Re a > 0: unstable
    with pytest.raises(ValueError, match="Re a"):
        _plan(tmp_path, settings=[str(path)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["no-such-experiment"], "unknown experiment 'no-such-experiment'"),
        (["memory-horizon", "--delays"], "delay grid is empty"),
        (["memory-horizon", "--delays", "1", "2000"], "sequence length"),
        (["memory-horizon", "--frozen-modes", "-0.5"], "[0, 1]"),
        (["longest-memory", "--settings", "unity_rings:rho=1.2"], "rho"),
    ],
)
def test_cli_errors_are_clear(tmp_path, capsys, argv, message):
    argv = argv + ["--output-dir", str(tmp_path)] if argv[0] != "no-such-experiment" else argv
    try:
        code = experiment.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_setting_and_delay_grid_helpers():
    assert Setting.parse("inv@0.001:0.1") == Setting("inv", 0.001, 0.1)
    assert Setting.parse("unity_rings:rho=0.9,p=2").dt_min is None
    assert log_delays(1000, 8) == (1, 3, 7, 19, 52, 139, 373, 1000)


def test_memory_horizon_end_to_end_and_the_prediction_beyond_the_horizon(tmp_path):
    """Toy size, seconds: MF(40) at init is ~0 for dt in [0.5, 5], and the fixed model is then at chance."""
    plan = _plan(tmp_path, frozen_modes=[0.5])
    assert [r.mode for r in plan] == ["fixed", "fixed", "learned", "learned", "frozen50", "frozen50"]
    records = run_memory_horizon(plan, empirical_sequences=8, log=lambda message: None)
    assert [r.status for r in records] == ["trained"] * 6
    report = write_memory_horizon_report(records, tmp_path / "report", experiment="memory-horizon", command="test",
                                         plan=plan, preset="quick")
    saved = json.loads((tmp_path / "report" / REPORT_JSON).read_text())
    assert saved["runs_finished"] == 6 and len(saved["runs"]) == 6
    assert (tmp_path / "report" / REPORT_MD).read_text().startswith("# Memory horizon")
    rows = {(r["delay"], r["mode"]): r for r in report["summary"]["runs"]}
    # The theory's precondition, in closed form: lag 1 is remembered, lag 40 is not.
    assert rows[(1, "fixed")]["mf_init_max"] > 0.5
    assert rows[(40, "fixed")]["mf_init_max"] < 1e-6
    # Fixed eigenvalues stay bit-identical; the reservoir cannot recall what its state does not hold.
    assert rows[(40, "fixed")]["eigenvalues_identical"]
    chance, n = 1 / 8, rows[(40, "fixed")]["num_test"]
    assert abs(rows[(40, "fixed")]["test_accuracy"] - chance) < 4 * np.sqrt(chance * (1 - chance) / n)
    assert rows[(40, "fixed")]["empirical_mf"] < 0.05
    # Frozen half: trainable plus frozen counts equal the learned model's, half of Lambda is frozen.
    frozen, learned = rows[(1, "frozen50")], rows[(1, "learned")]
    assert frozen["params_trainable"] + frozen["params_frozen"] == learned["params_trainable"]
    assert frozen["params_frozen"] == 2 * TOY["d_model"] * TOY["d_state"] // 4
    # A rerun trains nothing; a changed configuration in the same directory is refused.
    again = collect_memory_horizon(plan)
    assert [r.status for r in again] == ["skipped"] * 6
    with pytest.raises(ValueError, match="different configuration"):
        run_memory_horizon(_plan(tmp_path, overrides={**TOY, "epochs": 3}), log=lambda message: None)


def test_longest_memory_cli_end_to_end(tmp_path, capsys):
    argv = ["longest-memory", "--delay", "20", "--settings", "inv@0.5:5", "unity_rings:rho=0.99,p=2", "--seeds", "1",
            "--epochs", "1", "--output-dir", str(tmp_path), "--set", "d_model=4", "--set", "d_state=8", "--set", "batch_size=20",
            "--set", "data_options.seq_len=32", "--set", "data_options.num_train=40",
            "--set", "data_options.num_val=20", "--set", "data_options.num_test=20"]
    assert experiment.main(argv) == 0
    text = (tmp_path / REPORT_MD).read_text()
    assert "Longest memory" in text and "unity_rings:rho=0.99,p=2" in text and "longest-memory" in text
    saved = json.loads((tmp_path / REPORT_JSON).read_text())
    lengths = {r["setting"]: r["length_init"] for r in saved["runs"]}
    assert lengths["unity_rings:rho=0.99,p=2"] > lengths["inv@0.5:5"]  # |lambda| = 0.99 at dt = 1 remembers longer
