"""The memory screen of sweeps (tuning/screen.py, tuning/search.py): scores, the calibrated default, screened-out
samples recorded with their reason, identical on resume, in the report, and clear errors."""

import json

import numpy as np
import pytest

from conftest import tiny_config
from keras_ssm.memory import memory_function
from keras_ssm.ops.discrete import discretize_diagonal_numpy
from keras_ssm.ops.init import initial_eigenvalues
from tuning.screen import DEFAULT_THRESHOLD, MemoryScreen, check_screen_arguments
from tuning.space import build_search_space


def recall_config(**overrides):
    values = dict(num_layers=1, d_model=8, d_state=16, epochs=1, batch_size=50, verbose=0,
                  data_options=dict(seq_len=64, delay=18, num_train=100, num_val=50, num_test=50))
    values.update(overrides)
    return tiny_config("delayed_recall", **values)


def test_the_score_is_the_best_channels_closed_form_mf_at_the_lag():
    config = recall_config()
    screen = MemoryScreen.for_task(config, 64, 18)
    assert (screen.lag, screen.horizon, screen.state_size, screen.channels) == (18, 64, 16, 8)
    values = {"init": "lin", "dt_min": 0.01, "dt_max": 0.5}
    lam, _ = discretize_diagonal_numpy(np.geomspace(0.01, 0.5, 8)[:, None], initial_eigenvalues("lin", 16, 8), "zoh")
    assert screen.score(values) == pytest.approx(memory_function(lam, horizon=64).values[:, 18].max())
    assert screen.check(values) is None                                     # passes
    record = screen.check({"init": "inv", "dt_min": 2.0, "dt_max": 5.0})   # fast decay: no memory at lag 18
    assert record["mf_at_lag"] < 0.05 and "MF(18) at initialisation" in record["reason"] and "< 0.43" in record["reason"]
    classification = MemoryScreen.for_task(tiny_config("digits"), 64, None)
    assert classification.lag == 32 and "half the sequence length" in classification.lag_source
    assert DEFAULT_THRESHOLD == 0.43


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_a_threshold_outside_0_1_is_named(threshold):
    with pytest.raises(ValueError, match=r"--memory-screen THRESHOLD must be a number in \(0, 1\]"):
        check_screen_arguments(threshold, "random", recall_config())


def test_other_tuners_and_s4_models_are_refused_before_anything_runs(tmp_path):
    from tuning.search import run_sweep

    space = build_search_space(ranges=["dt_min=1e-3,1"])
    with pytest.raises(ValueError, match="works with --tuner random, got --tuner bayesian"):
        run_sweep(recall_config(), space, tuner="bayesian", directory=tmp_path, memory_screen=0.5)
    with pytest.raises(ValueError, match="screens S4D models.*'s4'"):
        run_sweep(recall_config(model="s4"), space, directory=tmp_path, memory_screen=0.5)
    assert not any(tmp_path.iterdir())


def _sweep(directory, max_trials, data):
    from tuning.search import run_sweep

    space = build_search_space(ranges=["dt_min=1e-3,1", "dt_max=1e-2,3", "init=inv,lin"])
    return run_sweep(recall_config(), space, max_trials=max_trials, directory=directory, project_name="p",
                     data=data, memory_screen=DEFAULT_THRESHOLD)


def _screened(project):
    """The oracle's screened-out records, without their timing."""
    records = json.loads((project / "oracle.json").read_text())["screened"]
    return [{k: v for k, v in r.items() if k != "screen_seconds"} for r in records]


def _values(project):
    return [json.loads((project / f"trial_{i}" / "trial.json").read_text())["hyperparameters"]["values"]
            for i in range(len(list(project.glob("trial_*/trial.json"))))]


@pytest.mark.slow
def test_a_screened_sweep_skips_samples_records_why_resumes_identically_and_reports_them(tmp_path):
    from tuning.hypermodel import load_task_data
    from tuning.report import results_table

    data = load_task_data(recall_config())
    first = _sweep(tmp_path / "a", 2, data)                      # samples 1-2
    project = first.project_dir
    after_one = _screened(project)
    resumed = _sweep(tmp_path / "a", 6, data)                    # the rerun extends the same sweep to 6
    fresh = _sweep(tmp_path / "b", 6, data)                      # one uninterrupted sweep of six samples
    assert _screened(project)[: len(after_one)] == after_one
    assert _screened(project) == _screened(fresh.project_dir) and _values(project) == _values(fresh.project_dir)
    screened = _screened(project)
    assert screened and all(r["mf_at_lag"] < DEFAULT_THRESHOLD and r["reason"] for r in screened)
    rows = results_table(project)
    trained = [r for r in rows if r["status"] != "SCREENED"]
    assert len(trained) + len(screened) == 6                     # screened samples count toward max_trials
    assert trained and all(r["initial_mf_at_lag"] >= DEFAULT_THRESHOLD for r in trained)
    assert sum(r["status"] == "SCREENED" for r in rows) == len(screened) == resumed.report["screened"]
    text = (project / "results.md").read_text()
    assert "SCREENED" in text and f"{len(screened)} sample(s) were screened out" in text
    assert "initial MF(18) (the screen's score)" in text


def test_a_worker_with_another_screen_than_the_chiefs_is_refused(tmp_path):
    from tuning.project import SweepProjectError, stored_sweep_difference, sweep_description

    space = build_search_space(ranges=["dt_min=1e-3,1"])
    project = tmp_path / "p"
    project.mkdir()
    (project / "sweep.json").write_text(json.dumps(sweep_description("random", recall_config(), space, 0.43)))
    assert stored_sweep_difference(project, sweep_description("random", recall_config(), space, 0.43)) == ""
    difference = stored_sweep_difference(project, sweep_description("random", recall_config(), space, None))
    assert "memory_screen" in difference
    assert issubclass(SweepProjectError, ValueError)


def test_the_comparison_report_totals_the_paired_sweeps(tmp_path):
    from tuning.screen_compare import write_report

    def run(seed, screened, trained, time_s, best):
        return {"seed": seed, "screened": screened, "trials_trained": trained, "screened_out": 10 - trained,
                "train_time_s": time_s, "screen_time_s": 0.004 * (10 - trained), "wall_time_s": time_s + 5,
                "best_value": best, "exit_status": 0}

    runs = [run(0, False, 10, 100.0, 0.5), run(0, True, 4, 40.0, 0.5),
            run(1, False, 10, 120.0, 0.6), run(1, True, 2, 20.0, 0.55)]
    text = write_report(runs, tmp_path, command="c", version="v", threshold=0.43)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["training_time_saved"] == pytest.approx(1 - 60 / 220)
    assert saved["same_best"] == 1 and saved["screen_seconds_per_sample"] == pytest.approx(0.004)
    assert "| plain | 20 | 220 |" in text and "| screened | 6 | 60 |" in text and "1 of 2" in text
