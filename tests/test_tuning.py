"""KerasTuner sweeps (tuning/): search space, resumable sweeps, report, best.json with the zoo CLI."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import keras_ssm
from conftest import tiny_config
from tuning.space import (
    DIMENSIONS,
    DT_MAX_POSITION,
    DT_RATIO_MIN,
    SearchSpace,
    build_search_space,
    dt_max_from_position,
)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Search space: parsing, sampling, validation (no training).

def test_space_file_and_flags_narrow_and_fix_dimensions(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"dt_min": [1e-4, 1e-2], "init": ["inv", "lin"], "trainable_eigenvalues": False}))
    space = build_search_space(path, fix=["lr=0.005"], ranges=["dt_max=0.02,0.5"])
    dims = {name: hp.get_config() for name, hp in space.dimensions.items()}
    assert [type(hp).__name__ for hp in space.hyperparameters.space] == ["Float", "Float", "Choice", "Fixed", "Fixed"]
    assert (dims["dt_min"]["min_value"], dims["dt_min"]["max_value"], dims["dt_min"]["sampling"]) == (1e-4, 1e-2, "log")
    assert (dims["dt_max"]["min_value"], dims["dt_max"]["max_value"], dims["dt_max"]["sampling"]) == (0.02, 0.5, "log")
    assert dims["init"]["values"] == ["inv", "lin"]
    assert dims["trainable_eigenvalues"]["value"] is False
    assert dims["lr"]["value"] == 0.005
    assert space.to_json_dict() == {"dt_min": [1e-4, 1e-2], "dt_max": [0.02, 0.5], "init": ["inv", "lin"],
                                    "trainable_eigenvalues": False, "lr": 0.005}
    assert space.searched == ("dt_min", "dt_max", "init")
    # --range beats the file, --fix beats the default; the JSON form round-trips.
    assert build_search_space(path, ranges=["init=real,legs,random"]).to_json_dict()["init"] == ["real", "legs", "random"]
    assert SearchSpace.from_json_dict(space.to_json_dict()) == space
    assert build_search_space(fix=["trainable_eigenvalues=false", "init=inv"]).searched == ("dt_min", "dt_max", "lr")


def test_sampled_dt_max_stays_above_dt_min_and_inside_its_range():
    import keras_tuner as kt

    space = build_search_space(ranges=["dt_min=1e-3,0.5", "dt_max=0.01,0.2"])
    hp = space.tuner_hyperparameters()
    assert isinstance(hp, kt.HyperParameters)
    assert {h.name for h in hp.space} == {"dt_min", DT_MAX_POSITION, "init", "trainable_eigenvalues", "lr"}
    assert max(h.max_value for h in hp.space if h.name == "dt_min") == pytest.approx(0.2 / DT_RATIO_MIN)
    seen_low = seen_high = False
    for seed in range(400):
        values = {h.name: h.random_sample(seed * 7 + i) for i, h in enumerate(hp.space)}
        v = space.values_for(values)
        assert 1e-3 <= v["dt_min"] <= 0.2 / DT_RATIO_MIN * (1 + 1e-12)
        assert v["dt_max"] >= DT_RATIO_MIN * v["dt_min"] * (1 - 1e-12)
        assert 0.01 <= v["dt_max"] <= 0.2
        assert v["init"] in ("inv", "lin", "legs", "real", "random")
        seen_low |= v["dt_max"] < 0.02
        seen_high |= v["dt_max"] > 0.15
    assert seen_low and seen_high  # the whole dt_max range is reached
    # The position maps monotonically onto [max(low, 1.01 dt_min), high] on a log scale.
    assert dt_max_from_position(0.05, 0.0, 0.01, 0.2) == pytest.approx(0.05 * DT_RATIO_MIN)
    assert dt_max_from_position(0.05, 1.0, 0.01, 0.2) == pytest.approx(0.2)
    assert dt_max_from_position(1e-3, 0.5, 0.01, 0.16) == pytest.approx(0.04)


def test_fixed_dimensions_are_recorded_as_fixed_hyperparameters():
    import keras_tuner as kt

    space = build_search_space(fix=["dt_min=0.002", "dt_max=0.05", "init=legs", "trainable_eigenvalues=true", "lr=0.01"])
    hp = space.tuner_hyperparameters()
    assert isinstance(hp, kt.HyperParameters)
    values = space.values_for(hp.values)
    assert values == {"dt_min": 0.002, "dt_max": 0.05, "init": "legs", "trainable_eigenvalues": True, "lr": 0.01}
    assert all(type(h).__name__ == "Fixed" for h in hp.space)


def test_discrete_families_and_eigenvalue_files_are_init_choices(tmp_path):
    import numpy as np

    path = tmp_path / "eig.npy"
    np.save(path, -0.5 + 1j * np.arange(8.0))
    space = build_search_space(ranges=[f"init=inv,unity_rings:p=4,{path}"])
    assert space.dimensions["init"].values == ["inv", "unity_rings:p=4", str(path)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fix=["dt_min=0.1", "dt_max=0.01"]), "dt_min must be < dt_max"),
        (dict(fix=["dt_min=0.05", "dt_max=0.05"]), "dt_min must be < dt_max"),
        (dict(ranges=["dt_min=0.2,0.5", "dt_max=0.01,0.1"]), "admit no dt_min < dt_max"),
        (dict(fix=["dt_min=2"]), "admit no dt_min < dt_max"),
        (dict(fix=["init=hippo"]),
         "`init` must be one of ('inv', 'lin', 'real', 'legs', 'random', .*npy file.*got 'hippo'"),
        (dict(ranges=["init=inv,bogus"]), "`init` must be one of .*got 'bogus'"),
        (dict(fix=["init=unity_rings:rho=2"]), "`rho` must be a number in"),
        (dict(fix=["init=missing.npy"]), "could not be read"),
        (dict(fix=["d_model=8"]), "unknown search dimension 'd_model'"),
        (dict(ranges=["dt_min=0,0.1"]), "`dt_min` values must be finite and > 0"),
        (dict(ranges=["lr=0.1,0.01"]), "needs low <= high"),
        (dict(ranges=["dt_max=0.1"]), "must be two numbers"),
        (dict(fix=["trainable_eigenvalues=maybe"]), "expected true or false"),
        (dict(fix=["init=inv"], ranges=["init=inv,lin"]), "both with --fix and --range"),
        (dict(ranges=["init=inv,inv"]), "repeat a value"),
    ],
)
def test_invalid_search_space_raises_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_search_space(**kwargs)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"dt_min": [1e-2, 1e-1], "dt_max": 1e-3}, "admit no dt_min < dt_max"),
        ({"init": ["inv", "s4"]}, "`init` must be one of .*got 's4'"),
        ({"dt_range": [1e-3, 1e-1]}, "unknown search dimension 'dt_range'"),
        ({"trainable_eigenvalues": "no"}, "must be true or false"),
        ({"lr": [1e-3, 1e-2, 1e-1]}, "must be two numbers"),
        (["dt_min"], "must hold a JSON object"),
    ],
)
def test_invalid_space_file_raises_a_clear_error(tmp_path, content, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        build_search_space(path)


def test_cli_rejects_invalid_bounds_before_any_trial(tmp_path, capsys):
    from tuning.sweep import main

    for argv in (["--fix", "dt_min=0.1", "--fix", "dt_max=0.01"], ["--fix", "init=unknown"],
                 ["--range", "dt_min=1e-2,1e-3"], ["--set", "dt_min=0.01"]):
        assert main(["digits", "--max-trials", "2", "--directory", str(tmp_path / "sweeps"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()


def test_cli_help_documents_every_flag_when_run_as_a_script():
    result = subprocess.run([sys.executable, "tuning/sweep.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in ("--tuner", "--max-trials", "--preset", "--directory", "--project-name", "--seed", "--epochs",
                 "--model", "--overwrite", "--space", "--fix", "--range", "--set"):
        assert flag in result.stdout
    assert "random,bayesian,hyperband" in result.stdout


# ---------------------------------------------------------------------------------------------
# Sweeps on a tiny digits model (1 block, H=16, N=8, 1 epoch): a first run of one trial, then the
# same command with two trials (the "killed after the first trial and rerun" case).

def tiny_base_config(**overrides):
    values = dict(epochs=1, batch_size=64, verbose=0, seed=0)
    values.update(overrides)
    return tiny_config("digits", **values)


def read_trial(project, trial_id):
    return json.loads((project / f"trial_{trial_id}" / "trial.json").read_text())


@pytest.fixture(scope="module")
def digits_data():
    from tuning.hypermodel import load_task_data

    return load_task_data(tiny_base_config())


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory, digits_data):
    from tuning.search import run_sweep

    directory = tmp_path_factory.mktemp("sweeps")
    base = tiny_base_config()
    space = build_search_space(ranges=["dt_min=1e-3,1e-2", "dt_max=2e-2,0.5", "init=inv,lin,real"])
    data = digits_data
    first = run_sweep(base, space, tuner="random", max_trials=1, directory=directory, project_name="p", data=data)
    project = first.project_dir
    trial0_after_first = read_trial(project, "0")
    memory0_after_first = (project / "trial_0" / "initial_memory.json").read_text()
    second = run_sweep(base, space, tuner="random", max_trials=2, directory=directory, project_name="p", data=data)
    return dict(base=base, space=space, data=data, directory=directory, project=project, first=first,
                second=second, trial0=trial0_after_first, memory0=memory0_after_first)


def test_rerun_keeps_the_finished_trial_and_runs_exactly_one_more(resumed_sweep):
    project, first, second = resumed_sweep["project"], resumed_sweep["first"], resumed_sweep["second"]
    assert not first.resumed and second.resumed
    assert first.report["trials"] == 1 and second.report["trials"] == 2
    assert sorted(p.name for p in project.glob("trial_*")) == ["trial_0", "trial_1"]
    before, after = resumed_sweep["trial0"], read_trial(project, "0")
    assert before["status"] == after["status"] == "COMPLETED"
    assert after["score"] == before["score"]
    assert after["hyperparameters"]["values"] == before["hyperparameters"]["values"]
    assert after["metrics"] == before["metrics"]
    assert (project / "trial_0" / "initial_memory.json").read_text() == resumed_sweep["memory0"]
    new = read_trial(project, "1")
    assert new["status"] == "COMPLETED" and math.isfinite(new["score"])
    assert new["hyperparameters"]["values"] != before["hyperparameters"]["values"]


def test_report_lists_every_trial_with_its_settings_objective_and_initial_memory(resumed_sweep):
    project, space = resumed_sweep["project"], resumed_sweep["space"]
    report = resumed_sweep["second"].report
    with open(report["csv"], newline="") as f:
        rows = {row["folder"].removeprefix("trial_"): row for row in csv.DictReader(f)}
    assert set(rows) == {"0", "1"}
    for trial_id, row in rows.items():
        assert row["trial"] == str(int(trial_id) + 1)  # Trial #1 is trial_0
        trial = read_trial(project, trial_id)
        values = space.values_for(trial["hyperparameters"]["values"])
        assert float(row["val_accuracy"]) == pytest.approx(trial["score"])
        assert float(row["dt_min"]) == pytest.approx(values["dt_min"])
        assert float(row["dt_max"]) == pytest.approx(values["dt_max"])
        assert values["dt_min"] < values["dt_max"]
        assert row["init"] == values["init"] and row["init"] in ("inv", "lin", "real")
        assert row["eigenvalues"] == ("learned" if values["trainable_eigenvalues"] else "fixed")
        assert float(row["lr"]) == pytest.approx(values["lr"])
        memory = json.loads((project / f"trial_{trial_id}" / "initial_memory.json").read_text())
        assert float(row["initial_mc"]) == pytest.approx(memory["memory_capacity"])
        assert float(row["initial_memory_length"]) == pytest.approx(memory["memory_length"])
        assert 0 < memory["memory_capacity"] <= 8  # at most the real state dimension N = 8
    ordered = list(rows)
    assert float(rows[ordered[0]]["val_accuracy"]) >= float(rows[ordered[1]]["val_accuracy"])  # best first

    markdown = report["markdown"].read_text()
    table_lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 3  # header + 2 trials
    assert "initial_mc" in table_lines[0] and "dt_max" in table_lines[0]
    assert report["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["best_trial_id"] == ordered[0] and report["best_trial"] == int(ordered[0]) + 1


def test_initial_memory_is_that_of_the_untrained_model(resumed_sweep):
    """The recorded summaries are those of a freshly built model with the trial's settings."""
    from tuning.hypermodel import initial_memory_summary
    from zoo.models import build_model, input_spec_from_info

    project, base, space = resumed_sweep["project"], resumed_sweep["base"], resumed_sweep["space"]
    record = json.loads((project / "trial_1" / "initial_memory.json").read_text())
    values = space.values_for(read_trial(project, "1")["hyperparameters"]["values"])
    assert record["values"] == values
    from keras_ssm.devices import device_info

    assert record["device"] == device_info()  # the trial records the device it ran on, as does the sweep
    assert json.loads((project / "sweep.json").read_text())["device"] == device_info()
    model = build_model(base.replace(**values), input_spec_from_info(resumed_sweep["data"].info))
    expected = initial_memory_summary(model, horizon=64)
    assert record["horizon"] == 64  # digits: seq_len 64 < 1024
    for key in ("memory_capacity", "memory_length", "memory_accuracy"):
        assert record[key] == pytest.approx(expected[key], rel=1e-9)
    metrics = read_trial(project, "1")["metrics"]["metrics"]
    assert metrics["initial_memory_length"]["observations"][0]["value"][0] == pytest.approx(record["memory_length"])


def test_best_json_trains_with_the_zoo_cli(resumed_sweep, tmp_path):
    from zoo.configs import TrainConfig, load_json_overrides
    from zoo.train import main as train_main

    project, space = resumed_sweep["project"], resumed_sweep["space"]
    best_path = resumed_sweep["second"].report["best_json"]
    best_id = resumed_sweep["second"].report["best_trial_id"]
    overrides = load_json_overrides(best_path)
    best_values = space.values_for(read_trial(project, best_id)["hyperparameters"]["values"])
    assert {key: overrides[key] for key in DIMENSIONS} == best_values  # JSON keeps floats exactly
    assert TrainConfig.from_dict(overrides) == resumed_sweep["base"].replace(**best_values, verbose=1)

    out = tmp_path / "run"
    code = train_main(["digits", "--config", str(best_path), "--output-dir", str(out), "--verbose", "0"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_completed"] == 1 and 0.0 <= results["test_accuracy"] <= 1.0
    trained = json.loads((out / "config.json").read_text())
    for key in ("dt_min", "dt_max", "init", "trainable_eigenvalues", "lr", "num_layers", "d_model", "d_state"):
        assert trained[key] == overrides[key]


def test_a_different_sweep_in_the_same_project_is_refused(resumed_sweep):
    from tuning.project import SweepProjectError
    from tuning.search import run_sweep

    narrower = resumed_sweep["space"].updated({"init": "inv"})
    with pytest.raises(SweepProjectError, match="space.init"):
        run_sweep(resumed_sweep["base"], narrower, max_trials=3, directory=resumed_sweep["directory"],
                  project_name="p", data=resumed_sweep["data"])
    assert sorted(p.name for p in resumed_sweep["project"].glob("trial_*")) == ["trial_0", "trial_1"]


def test_diverging_trials_fail_cleanly_and_stop_the_sweep(tmp_path, digits_data):
    """lr = 1000 blows the loss up in the first epoch: each trial fails with the divergence message,
    keeps its initial memory record, and the sweep stops after max_consecutive_failures."""
    from tuning.search import run_sweep

    space = build_search_space(fix=["lr=1000", "init=inv"])
    result = run_sweep(tiny_base_config(epochs=2), space, max_trials=4, directory=tmp_path, project_name="p",
                       max_consecutive_failures=2, data=digits_data)
    assert result.stopped_early and "consecutive failures" in result.stopped_early
    report = result.report
    assert report["trials"] == 2 and report["completed"] == 0
    assert report["best_json"] is None and report["plot"] is None
    assert not (result.project_dir / "best.json").exists()
    with open(report["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["FAILED", "FAILED"]
    for row in rows:
        assert row["message"].startswith("FailedTrialError: Training diverged")
        assert float(row["lr"]) == 1000.0 and float(row["initial_memory_length"]) > 0


# ---------------------------------------------------------------------------------------------
@pytest.mark.processes
@pytest.mark.slow
def test_sweep_killed_during_the_second_trial_resumes_it(tmp_path):
    """A real preemption: the CLI in a subprocess gets SIGTERM inside trial 1, once that trial has backed
    itself up (every 2 steps); it exits 75 with the trial's backup of the step it stopped at. The same
    command then resumes trial 1 at that step and keeps trial 0, and trial 1's result equals that of an
    uninterrupted sweep."""
    command = [sys.executable, "tuning/sweep.py", "digits", "--max-trials", "2", "--epochs", "2",
               "--directory", str(tmp_path), "--project-name", "killed", "--verbose", "0",
               "--set", "num_layers=1", "--set", "d_model=16", "--set", "d_state=8", "--set", "backup_every=2",
               "--range", "dt_min=1e-3,1e-2", "--fix", "init=inv"]
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    project = tmp_path / "killed"
    trial_backup = project / "trial_1" / "checkpoints" / "training_metadata.json"
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (project / "tuner0.json").exists() and trial_backup.exists():
                break
            assert process.poll() is None, "the sweep ended before it could be preempted"
            time.sleep(0.05)
        else:
            pytest.fail("trial 1 did not back up in time")
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 75 and "Preempted (SIGTERM). Saved the backup" in err, err[-3000:]
    stopped_at = json.loads(trial_backup.read_text())
    assert stopped_at["batch"] > 0 or stopped_at["epoch"] > 0
    before = read_trial(project, "0")
    assert before["status"] == "COMPLETED"
    assert not (project / "trial_1" / "trial.json").exists() or read_trial(project, "1")["status"] == "RUNNING"
    assert not (project / ".lock").exists()

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Reloading Tuner" in result.stdout
    assert (f"Trial #2: resuming from its backup at step {stopped_at['batch']} of epoch {stopped_at['epoch'] + 1}"
            in result.stdout)
    after = read_trial(project, "0")
    assert after["score"] == before["score"] and after["metrics"] == before["metrics"]
    assert read_trial(project, "1")["status"] == "COMPLETED"
    assert sorted(p.name for p in project.glob("trial_*")) == ["trial_0", "trial_1"]
    assert not (project / "trial_1" / "checkpoints").exists()  # a finished trial's backup is deleted
    assert "Running Trial #1 " not in result.stdout and "Trial #1:" not in result.stdout
    assert "Running Trial #2 (folder trial_1)" in result.stdout and "Trial #2: val_accuracy" in result.stdout
    assert json.loads((project / "best.json").read_text())["init"] == "inv"

    # The rerun trial computed exactly what it computes in a sweep that was never killed.
    from tuning.sweep import main

    assert main([arg if arg != "killed" else "uninterrupted" for arg in command[2:]]) == 0
    for trial_id in ("0", "1"):
        killed, uninterrupted = read_trial(project, trial_id), read_trial(tmp_path / "uninterrupted", trial_id)
        assert killed["hyperparameters"]["values"] == uninterrupted["hyperparameters"]["values"]
        assert killed["score"] == uninterrupted["score"]
        for name, record in uninterrupted["metrics"]["metrics"].items():
            if name != "train_time_s":
                assert killed["metrics"]["metrics"][name] == record, (trial_id, name)


# ---------------------------------------------------------------------------------------------
# The report's rank correlation (no training).


def test_spearman_is_scipys_with_none_for_too_few_pairs_or_a_constant_input():
    import numpy as np
    from scipy.stats import rankdata

    from tuning.report import spearman

    assert spearman([1, 2], [3, 4]) is None  # fewer than 3 pairs
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2, 3], [5, 5, 5]) is None  # constant
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    x, y = [1.0, 2.0, 2.0, 3.0, 5.0], [0.3, 0.1, 0.4, 0.4, 0.9]  # ties in both: average ranks
    rho = spearman(x, y)
    assert isinstance(rho, float)
    assert rho == pytest.approx(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    assert rho == pytest.approx(7.25 / 9.5)  # ranks (1, 2.5, 2.5, 4, 5) and (2, 1, 3.5, 3.5, 5), centred at 3


@pytest.mark.slow
def test_trials_record_their_memory_tracking_when_asked(tmp_path, digits_data):
    from tuning.search import run_sweep

    space = build_search_space(ranges=["dt_min=1e-3,1e-2", "dt_max=2e-2,0.5", "init=inv"])
    sweep = run_sweep(tiny_base_config(track_memory=4), space, tuner="random", max_trials=1, directory=tmp_path,
                      project_name="tracked", data=digits_data)
    trial = sweep.project_dir / "trial_0"
    tracking = keras_ssm.load_memory_tracking(trial)
    assert tracking.steps[0] == 0 and np.all(np.diff(tracking.steps) == 4) and tracking.layers
    assert (trial / "memory_tracking.png").is_file()
