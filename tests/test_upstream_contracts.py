"""What this project relies on in Keras and KerasTuner's private API, checked against the installed versions.

Each remaining use of a private method (no public hook exists for it) has a test here that names the
upstream symbol when its signature or the behaviour used changes, so that a new Keras or KerasTuner
release fails here first (and clearly) rather than silently breaking exact resume or atomic sweep files:

- ``keras.optimizers.Optimizer._var_key`` (keras_ssm.optimizers.SSMAdamW: one key per variable whatever
  object the backend hands ``update_step``);
- ``keras_tuner.Oracle._save_trial``, ``_get_trial_dir``, ``_get_oracle_fname`` and
  ``BaseTuner._get_tuner_fname`` (tuning.search: oracle.json, trial.json and tuner0.json written atomically
  where KerasTuner's reload reads them);
- ``keras_tuner.Tuner._configure_tensorboard_dir`` (tuning.search: no tensorboard import without a
  TensorBoard callback);
- the state in which ``keras_tuner.Oracle.end_trial`` stops a search after too many failed trials
  (tuning.search.stopped_for_failures);
- the best-epoch saver KerasTuner adds to a trial's callbacks (``SaveBestEpoch``, not exported): its
  ``filepath`` and ``best_value`` (tuning.hypermodel: a trial resumed from its backup keeps its best epoch);
- the name of that saver's file, ``Tuner._get_checkpoint_fname`` = ``trial_<id>/checkpoint.weights.h5``
  (tuning.project.TRIAL_CHECKPOINT_FILE: tuning.search.best_model reads it without a tuner).

Public API whose behaviour the sweep's console relies on is checked here too: ``Oracle.verbose = 0`` turns
KerasTuner's own trial display off (tuning.search prints its own table), and ``get_best_models`` loads each
model through ``Tuner.load_model`` (which the sweep tuners override to load the optimizer state).
"""

import inspect
import json
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest

from keras_ssm.optimizers import SSMAdamW
from tuning.hypermodel import is_best_epoch_saver
from tuning.project import TRIAL_CHECKPOINT_FILE
from tuning.search import stopped_for_failures

BACKEND = keras.backend.backend()


def assert_parameters(function, expected, symbol):
    """``function``'s parameter names (self included) are ``expected``; else a message naming ``symbol``."""
    names = list(inspect.signature(function).parameters)
    assert names == expected, (f"upstream changed {symbol}: parameters {names}, this project relies on {expected}; "
                               f"see tests/test_upstream_contracts.py for who uses it")


# ---------------------------------------------------------------------------------------------
# Keras

def test_keras_optimizer_var_key_maps_a_variable_and_its_backend_value_to_one_key():
    symbol = "keras.optimizers.Optimizer._var_key"
    assert hasattr(keras.optimizers.Optimizer, "_var_key"), f"upstream removed {symbol}"
    assert_parameters(keras.optimizers.Optimizer._var_key, ["self", "variable"], symbol)
    a, b = keras.Variable(np.ones(3, "float32"), name="a"), keras.Variable(np.ones(3, "float32"), name="b")
    optimizer = keras.optimizers.AdamW()
    optimizer.build([a, b])
    assert optimizer._var_key(a) == optimizer._var_key(a) != optimizer._var_key(b), \
        f"{symbol} is not one key per variable"
    if BACKEND == "tensorflow":  # update_step may be handed the tf.Variable inside the keras.Variable
        assert optimizer._var_key(a.value) == optimizer._var_key(a), f"{symbol} no longer unwraps the tf.Variable"


def test_ssm_adamw_excludes_ssm_variables_from_weight_decay_through_keras_own_exclusion():
    """One step with gradient 1: decay multiplies by (1 - lr wd) before the Adam step (about lr) of each variable;
    the SSM variable gets neither the decay nor the full learning rate."""
    a, b = keras.Variable(np.ones(3, "float32"), name="a"), keras.Variable(np.ones(3, "float32"), name="b")
    optimizer = SSMAdamW(learning_rate=0.1, weight_decay=0.5, ssm_variable_paths=[a.path], ssm_lr_scale=0.1)
    optimizer.exclude_from_weight_decay(var_names=["b"])  # the caller's exclusion stays
    c = keras.Variable(np.ones(3, "float32"), name="c")
    ones = [keras.ops.ones(3) for _ in range(3)]
    optimizer.apply(ones, [a, b, c])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), 1 - 0.01, rtol=1e-5)  # SSM: lr x 0.1, no decay
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), 1 - 0.1, rtol=1e-5)  # excluded by name
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c), (1 - 0.05) - 0.1, rtol=1e-5)  # decayed
    assert_parameters(keras.optimizers.AdamW.exclude_from_weight_decay, ["self", "var_list", "var_names"],
                      "keras.optimizers.Optimizer.exclude_from_weight_decay")


# ---------------------------------------------------------------------------------------------
# KerasTuner: a two-trial search of a tiny hypermodel, with spies on the private methods used.

class _TinyHyperModel(kt.HyperModel):
    def __init__(self, fail=False):
        super().__init__()
        self.fail = fail

    def build(self, hp):
        hp.Float("x", 0.0, 1.0)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def fit(self, hp, model, *args, **kwargs):
        if self.fail:
            raise kt.errors.FailedTrialError("a planned failure")
        return {"score": hp.get("x")}


class _SpyOracle(kt.oracles.RandomSearchOracle):
    saved_trials = []

    def _save_trial(self, trial):
        self.saved_trials.append(trial.trial_id)
        super()._save_trial(trial)


class _SpyTuner(kt.Tuner):
    tensorboard_calls = []

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        self.tensorboard_calls.append((trial.trial_id, execution))
        super()._configure_tensorboard_dir(callbacks, trial, execution)


def _search(tmp_path, fail=False, max_trials=2, max_consecutive_failed_trials=3):
    _SpyOracle.saved_trials, _SpyTuner.tensorboard_calls = [], []
    oracle = _SpyOracle(objective=kt.Objective("score", "max"), max_trials=max_trials, seed=1,
                        max_consecutive_failed_trials=max_consecutive_failed_trials)
    tuner = _SpyTuner(oracle=oracle, hypermodel=_TinyHyperModel(fail), directory=str(tmp_path), project_name="p")
    return tuner


def test_keras_tuner_saves_every_trial_through_oracle_save_trial(tmp_path):
    symbol = "keras_tuner.Oracle._save_trial"
    assert_parameters(kt.Oracle._save_trial, ["self", "trial"], symbol)
    assert_parameters(kt.Oracle._get_trial_dir, ["self", "trial_id"], "keras_tuner.Oracle._get_trial_dir")
    tuner = _search(tmp_path)
    tuner.search()
    ids = sorted(tuner.oracle.trials)
    assert set(_SpyOracle.saved_trials) == set(ids) and len(_SpyOracle.saved_trials) >= 2 * len(ids), (
        f"upstream no longer writes trials through {symbol} in update_trial and end_trial: {_SpyOracle.saved_trials}")
    for trial_id in ids:  # where KerasTuner's reload reads a trial: <project>/trial_<id>/trial.json
        path = os.path.join(tuner.oracle._get_trial_dir(trial_id), "trial.json")
        assert path == os.path.join(tuner.get_trial_dir(trial_id), "trial.json"), \
            "keras_tuner.Oracle._get_trial_dir is no longer the tuner's trial directory"
        assert json.load(open(path))["trial_id"] == trial_id, f"{symbol} no longer writes {path}"


def test_keras_tuner_oracle_and_tuner_files_are_where_reload_reads_them(tmp_path):
    assert_parameters(kt.Oracle._get_oracle_fname, ["self"], "keras_tuner.Oracle._get_oracle_fname")
    assert_parameters(kt.engine.base_tuner.BaseTuner._get_tuner_fname, ["self"],
                      "keras_tuner.engine.base_tuner.BaseTuner._get_tuner_fname")
    tuner = _search(tmp_path)
    tuner.search()
    assert tuner.oracle._get_oracle_fname() == os.path.join(tuner.project_dir, "oracle.json"), \
        "keras_tuner.Oracle._get_oracle_fname moved oracle.json"
    assert tuner._get_tuner_fname() == os.path.join(tuner.project_dir, f"{tuner.tuner_id}.json"), \
        "keras_tuner BaseTuner._get_tuner_fname moved the tuner's file"
    os.remove(tuner.oracle._get_oracle_fname())
    tuner.oracle.save()
    assert os.path.exists(tuner.oracle._get_oracle_fname()), "keras_tuner.Oracle.save no longer writes oracle.json"
    again = _search(tmp_path)  # overwrite=False: reloads from those files
    assert sorted(again.oracle.trials) == sorted(tuner.oracle.trials), \
        "keras_tuner no longer reloads a project from oracle.json, tuner0.json and trial_<id>/trial.json"


def test_keras_tuner_run_trial_configures_tensorboard_through_the_private_hook(tmp_path):
    symbol = "keras_tuner.Tuner._configure_tensorboard_dir"
    assert_parameters(kt.Tuner._configure_tensorboard_dir, ["self", "callbacks", "trial", "execution"], symbol)
    assert inspect.signature(kt.Tuner._configure_tensorboard_dir).parameters["execution"].default == 0, symbol
    tuner = _search(tmp_path, max_trials=1)
    tuner.search()
    assert _SpyTuner.tensorboard_calls == [(trial_id, 0) for trial_id in tuner.oracle.trials], \
        f"upstream Tuner.run_trial no longer calls {symbol}(callbacks, trial, execution)"


@pytest.mark.parametrize("fail", [True, False])
def test_keras_tuner_stops_after_consecutive_failures_in_the_state_tuning_detects(tmp_path, fail):
    """``Oracle.end_trial`` raises RuntimeError exactly when ``max_consecutive_failed_trials`` trials in
    ``end_order`` failed in a row: what tuning.search.stopped_for_failures reads."""
    tuner = _search(tmp_path, fail=fail, max_trials=4, max_consecutive_failed_trials=2)
    if fail:
        with pytest.raises(RuntimeError):
            tuner.search()
    else:
        tuner.search()
    oracle = tuner.oracle
    assert isinstance(oracle.end_order, list) and oracle.max_consecutive_failed_trials == 2, \
        "keras_tuner.Oracle.end_order / max_consecutive_failed_trials changed"
    assert stopped_for_failures(oracle) == fail, \
        "keras_tuner.Oracle.end_trial's stop after consecutive failures no longer matches tuning.search"
    assert len(oracle.end_order) == (2 if fail else 4)


def test_keras_tuner_hands_fit_a_best_epoch_saver_that_honours_best_value(tmp_path):
    seen = {}

    class Recording(kt.HyperModel):
        def build(self, hp):
            hp.Float("x", 0.0, 1.0)
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            savers = [c for c in callbacks if is_best_epoch_saver(c)]
            assert len(savers) == 1, ("upstream changed keras_tuner's SaveBestEpoch (class name, best_value or "
                                      f"filepath): the callbacks are {callbacks}; tuning.hypermodel relies on it")
            (saver,) = savers
            saver.set_model(model)
            saver.best_value = 0.9  # as a resumed trial sets it
            saver.on_epoch_end(0, {"val_accuracy": 0.5})
            seen["saved_a_worse_epoch"] = os.path.exists(saver.filepath)
            saver.on_epoch_end(1, {"val_accuracy": 0.95})
            seen["saved_a_better_epoch"] = os.path.exists(saver.filepath)
            return {"val_accuracy": 0.95}

    tuner = kt.RandomSearch(Recording(), objective=kt.Objective("val_accuracy", "max"), max_trials=1,
                            directory=str(tmp_path), project_name="p")
    tuner.search(verbose=0)
    assert seen == {"saved_a_worse_epoch": False, "saved_a_better_epoch": True}, (
        "upstream changed how keras_tuner's SaveBestEpoch uses best_value / filepath; tuning.hypermodel relies on it")


def test_keras_tuner_saves_the_best_epoch_where_tuning_reads_it(tmp_path):
    symbol = "keras_tuner.Tuner._get_checkpoint_fname"
    assert_parameters(kt.Tuner._get_checkpoint_fname, ["self", "trial_id"], symbol)
    tuner = _search(tmp_path, max_trials=1)
    tuner.search()
    (trial_id,) = tuner.oracle.trials
    assert tuner._get_checkpoint_fname(trial_id) == os.path.join(tuner.get_trial_dir(trial_id), TRIAL_CHECKPOINT_FILE), \
        f"upstream {symbol} moved the best-epoch weights file; tuning.project.TRIAL_CHECKPOINT_FILE names it"


def test_oracle_verbose_zero_silences_keras_tuners_trial_display(tmp_path, capsys):
    tuner = _search(tmp_path)
    tuner.oracle.verbose = 0
    tuner.search()
    out = capsys.readouterr().out
    assert "Running Trial" not in out and "Complete" not in out and "Best score So Far" not in out, (
        "keras_tuner.Oracle.verbose = 0 no longer turns off KerasTuner's trial display; tuning.search prints its "
        f"own table and relies on it: {out!r}")


def test_get_best_models_loads_through_tuner_load_model(tmp_path):
    loaded = []

    class Recording(_SpyTuner):
        def load_model(self, trial):
            loaded.append(trial.trial_id)
            return "model"

    _SpyOracle.saved_trials = []
    oracle = _SpyOracle(objective=kt.Objective("score", "max"), max_trials=2, seed=1)
    tuner = Recording(oracle=oracle, hypermodel=_TinyHyperModel(), directory=str(tmp_path), project_name="p")
    tuner.search()
    assert tuner.get_best_models(1) == ["model"] and loaded == [tuner.oracle.get_best_trials(1)[0].trial_id], \
        "keras_tuner get_best_models no longer loads through Tuner.load_model, which tuning.search overrides"
