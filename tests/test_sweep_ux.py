"""A user's first sweep (tuning/sweep.py and the Python API): one trial numbering on the console and in the
report, KerasTuner's trial table with the dimensions a user sets, printed paths and commands that work from
where the user stands, and the best model loaded with its optimizer state and no warning.

One tiny sweep (digits, 1 block of H=8, 2 trials of 1 epoch) run through the CLI from a working directory
outside the repository, with ``--directory sweeps`` relative to it, serves every test."""

import contextlib
import csv
import io
import json
import logging
import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest

from tuning.space import DIMENSIONS, SearchSpace

REPO = Path(__file__).resolve().parents[1]
PROJECT = Path("sweeps") / "digits-quick-s4d-random"
SWEEP_ARGS = ["digits", "--tuner", "random", "--max-trials", "2", "--epochs", "1", "--verbose", "0",
              "--set", "num_layers=1", "--set", "d_model=8", "--set", "d_state=8", "--directory", "sweeps"]


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    """{"cwd", "project" (absolute), "stdout", "code"} of the cheap sweep run from a fresh working directory."""
    from tuning.sweep import main

    cwd = tmp_path_factory.mktemp("user")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        with contextlib.redirect_stdout(out):
            code = main(SWEEP_ARGS)
    return dict(cwd=cwd, project=cwd / PROJECT, stdout=out.getvalue(), code=code)


def read_trial(project, trial_id):
    return json.loads((project / f"trial_{trial_id}" / "trial.json").read_text())


def trial_tables(stdout):
    """{trial number: {hyperparameter: (value, best value so far)}} of every ``Search: Running Trial #n`` table
    (the lines from the header to the next blank line)."""
    tables = {}
    for block in re.split(r"\n(?=Search: Running Trial #)", stdout)[1:]:
        number = int(re.match(r"Search: Running Trial #(\d+)", block).group(1))
        lines = block.split("\n\n")[1].splitlines()
        assert lines[0] == "Value".ljust(18) + "|" + "Best Value So Far".ljust(18) + "|Hyperparameter", lines[0]
        tables[number] = {name: (value.strip(), best.strip()) for value, best, name in
                          (line.split("|") for line in lines[1:])}
    return tables


# ---------------------------------------------------------------------------------------------
# 1. One trial numbering: KerasTuner's 1-based "Trial #n", the folder trial_<n-1>.

def test_console_and_report_number_trials_as_keras_tuner_does(cli_sweep):
    out, project = cli_sweep["stdout"], cli_sweep["project"]
    assert cli_sweep["code"] == 0, out
    assert "[trial " not in out
    for number in (1, 2):
        assert f"Search: Running Trial #{number} (folder trial_{number - 1})" in out
        assert f"Trial #{number}: val_accuracy " in out
    with open(project / "results.csv", newline="") as f:
        rows = {row["trial"]: row for row in csv.DictReader(f)}
    assert {n: row["folder"] for n, row in rows.items()} == {"1": "trial_0", "2": "trial_1"}
    for number, row in rows.items():
        assert float(row["val_accuracy"]) == pytest.approx(read_trial(project, int(number) - 1)["score"])
    best_number = max(rows, key=lambda n: (float(rows[n]["val_accuracy"]), -int(n)))
    assert f"Best: Trial #{best_number} (folder {PROJECT}/trial_{int(best_number) - 1})," in out
    assert f"Best: Trial #{best_number} (folder `trial_{int(best_number) - 1}`)" in (project / "results.md").read_text()


# ---------------------------------------------------------------------------------------------
# 2. The trial table shows dt_max (from dt_min and dt_max_position), not the tuner's dt_max_position.

def test_trial_table_shows_the_dimensions_a_user_sets(cli_sweep):
    out, project = cli_sweep["stdout"], cli_sweep["project"]
    assert "dt_max_position" not in out
    tables = trial_tables(out)
    assert sorted(tables) == [1, 2]
    space = SearchSpace()
    for number, table in tables.items():
        assert list(table) == list(DIMENSIONS)
        hp_values = read_trial(project, number - 1)["hyperparameters"]["values"]
        assert "dt_max_position" in hp_values  # the oracle samples the position; the table shows dt_max
        values = space.values_for(hp_values)
        shown = {name: value for name, (value, _) in table.items()}
        assert shown["dt_max"] == f"{values['dt_max']:.5g}" and shown["dt_min"] == f"{values['dt_min']:.5g}"
        assert shown["init"] == values["init"] and shown["lr"] == f"{values['lr']:.5g}"


def test_best_value_column_is_that_of_the_best_completed_trial(cli_sweep):
    tables = trial_tables(cli_sweep["stdout"])
    assert {best for _, best in tables[1].values()} == {"?"}  # no trial has completed when the first one starts
    first = SearchSpace().values_for(read_trial(cli_sweep["project"], 0)["hyperparameters"]["values"])
    assert tables[2]["dt_max"][1] == f"{first['dt_max']:.5g}"


# ---------------------------------------------------------------------------------------------
# 3. Every printed path and command works from the working directory the user ran the sweep in.

def _printed(out, label):
    (line,) = [line for line in out.splitlines() if line.startswith(label)]
    return line[len(label):].strip()


def test_printed_paths_and_train_command_work_from_the_working_directory(cli_sweep):
    out, cwd = cli_sweep["stdout"], cli_sweep["cwd"]
    assert f"random sweep of digits (preset quick, s4d) in {PROJECT}:" in out
    for label in ("table (CSV):", "table (Markdown):", "plot:", "best config:"):
        assert (cwd / _printed(out, label)).is_file(), label
    python, script, task, flag, config = shlex.split(_printed(out, "Train it:"))
    assert (python, task, flag) == ("python", "digits", "--config")
    assert (cwd / script).resolve() == REPO / "zoo" / "train.py"
    assert (cwd / config).resolve() == (cli_sweep["project"] / "best.json").resolve()


def test_report_train_command_works_from_the_repository_root(cli_sweep):
    markdown = (cli_sweep["project"] / "results.md").read_text()
    (command,) = re.findall(r"`(python zoo/train\.py [^`]*)`", markdown)
    _, script, _, _, config = shlex.split(command)
    assert (REPO / script).is_file()
    assert (REPO / config).resolve() == (cli_sweep["project"] / "best.json").resolve()


def test_closing_lines_from_the_repository_root_name_zoo_train_py(cli_sweep, monkeypatch):
    from tuning.report import write_report
    from tuning.sweep import closing_lines

    monkeypatch.chdir(REPO)
    text = closing_lines(write_report(cli_sweep["project"]), "digits")
    assert f"Train it: python zoo/train.py digits --config {cli_sweep['project'] / 'best.json'}" in text


# ---------------------------------------------------------------------------------------------
# 4. The Python API: a default space, the results table, the best model with its optimizer state.

def test_default_constructor_is_the_default_space():
    assert SearchSpace() == SearchSpace.default()
    assert SearchSpace().updated({"init": "inv"}).to_json_dict()["init"] == "inv"
    with pytest.raises(ValueError, match=r"SearchSpace\(\)\.updated"):
        SearchSpace({"init": "inv"})


def test_results_table_is_the_report_table(cli_sweep):
    from tuning.report import results_table

    records = results_table(cli_sweep["project"])
    with open(cli_sweep["project"] / "results.csv", newline="") as f:
        assert [str(r["trial"]) for r in records] == [row["trial"] for row in csv.DictReader(f)]
    assert sorted((r["trial"], r["folder"]) for r in records) == [(1, "trial_0"), (2, "trial_1")]


@contextlib.contextmanager
def recorded_warnings_and_logs():
    """Every warning and log record emitted inside, as one list of strings."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
    finally:
        root.removeHandler(handler)
        messages.extend(str(w.message) for w in caught)


def _skipped(messages):
    return [m for m in messages if "skip" in m.lower()]


def test_best_model_has_the_best_trials_weights_and_optimizer_state_without_warnings(cli_sweep):
    from tuning.hypermodel import load_task_data
    from tuning.report import write_report
    from tuning.search import best_model
    from zoo.configs import TrainConfig
    from zoo.core import build_compiled_model

    project = cli_sweep["project"]
    report = write_report(project)
    description = json.loads((project / "sweep.json").read_text())
    config = TrainConfig.from_dict(description["base_config"])
    data = load_task_data(config)
    with recorded_warnings_and_logs() as messages:
        model = best_model(project, data=data)
    assert not _skipped(messages), messages

    trial = read_trial(project, report["best_trial_id"])
    steps = data.steps_per_epoch * int(trial["metrics"]["metrics"]["best_epoch"]["observations"][0]["value"][0])
    assert int(model.optimizer.iterations.numpy()) == steps  # the optimizer state of the best epoch
    reference = build_compiled_model(config.replace(**SearchSpace().values_for(trial["hyperparameters"]["values"])),
                                     data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.load_weights(report["best_trial_dir"] / "checkpoint.weights.h5")
    predictions = model.predict(data.val, verbose=0)
    np.testing.assert_array_equal(predictions, reference.predict(data.val, verbose=0))
    labels = np.concatenate([np.asarray(batch[1]) for batch in data.val])
    assert np.mean(np.argmax(predictions, axis=-1) == labels) == pytest.approx(trial["score"], abs=1e-6)


def test_keras_tuner_get_best_models_loads_the_optimizer_state_without_warnings(cli_sweep):
    from tuning.hypermodel import SSMHyperModel
    from tuning.search import make_tuner
    from zoo.configs import TrainConfig

    project = cli_sweep["project"]
    description = json.loads((project / "sweep.json").read_text())
    hypermodel = SSMHyperModel(TrainConfig.from_dict(description["base_config"]), SearchSpace())
    tuner = make_tuner("random", hypermodel, max_trials=2, directory=project.parent, project_name=project.name,
                       seed=0)
    with recorded_warnings_and_logs() as messages:
        (model,) = tuner.get_best_models(1)
    assert not _skipped(messages), messages
    assert int(model.optimizer.iterations.numpy()) == hypermodel.data().steps_per_epoch
