"""Zoo training: optimizer behaviour, end-to-end runs, artifacts, resume, divergence, data parallel."""

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import corrupt_classifier_at, tiny_config
from zoo.callbacks import DivergenceGuard, TrainingDivergedError, read_backup
from zoo.configs import get_config
from keras_ssm import find_ssm_layers
from zoo.models import InputSpec, build_model, nominal_input_spec
from keras_ssm.optimizers import SSMAdamW, ssm_variable_paths
from zoo.runs import RunDirectoryError, train

REPO = Path(__file__).resolve().parents[2]


def tiny_digits(tmp_path, **overrides):
    """A digits run that compiles and trains in seconds: 1 block, H=16, N=8."""
    values = dict(epochs=2, batch_size=64, verbose=0, memory_horizon=64)
    values.update(overrides)
    return tiny_config("digits", tmp_path, **values)


def adam_first_step(grad, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras Adam's first update (t = 1) for gradient ``grad``."""
    m = (1 - beta_1) * grad
    v = (1 - beta_2) * grad**2
    alpha = lr * math.sqrt(1 - beta_2) / (1 - beta_1)
    return -alpha * m / (np.sqrt(v) + epsilon)


# ---------------------------------------------------------------------------------------------
# Optimizer: per-variable learning rate and weight decay, checked on what it does to the variables.

def _tiny_model():
    # Real-valued inputs: a dense gradient for every variable on every backend (TensorFlow hands
    # embedding gradients to the optimizer as IndexedSlices, updated row by row).
    config = tiny_config("digits", d_model=8, d_state=4)
    return build_model(config, InputSpec(seq_len=12, vocab_size=None, n_features=1, num_classes=10))


def test_ssm_variables_get_their_own_lr_and_no_weight_decay():
    model = _tiny_model()
    lr, ssm_lr, wd = 0.01, 0.001, 0.5
    paths = ssm_variable_paths(model)
    optimizer = SSMAdamW(learning_rate=lr, weight_decay=wd, ssm_variable_paths=paths, ssm_lr_scale=ssm_lr / lr)
    variables = model.trainable_variables
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=v.shape).astype("float32") for v in variables]
    before = [v.numpy().astype(np.float64) for v in variables]
    optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    checked_ssm = checked_other = 0
    for v, w0, g in zip(variables, before, grads):
        w1 = v.numpy().astype(np.float64)
        if v.path in paths:
            expected = w0 + adam_first_step(g.astype(np.float64), ssm_lr)  # no decay
            checked_ssm += 1
        else:
            expected = w0 * (1 - lr * wd) + adam_first_step(g.astype(np.float64), lr)
            checked_other += 1
        np.testing.assert_allclose(w1, expected, rtol=1e-5, atol=1e-7, err_msg=v.path)
    assert checked_ssm == 3 and checked_other > 3


def _scaled_cross_entropy(y_true, logits):
    """Cross-entropy x 1e4: Adam is scale-invariant, and every gradient entry dwarfs its epsilon."""
    return 1e4 * keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)


def test_per_variable_lr_in_the_trainer_step():
    """Through model.fit (the JAX trainer's stateless apply on JAX): one Adam step moves each entry by
    at most its learning rate, and by about it where the gradient is not tiny."""
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    lr, ssm_lr, wd = 0.01, 0.001, 5.0
    paths = ssm_variable_paths(model)
    model.compile(SSMAdamW(learning_rate=lr, weight_decay=wd, ssm_variable_paths=paths, ssm_lr_scale=ssm_lr / lr),
                  loss=_scaled_cross_entropy)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 12, 1)).astype("float32")
    y = rng.integers(0, 10, size=(16,)).astype("int32")
    before = {v.path: v.numpy().astype(np.float64) for v in model.trainable_variables}
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for v in model.trainable_variables:
        w0, w1 = before[v.path], v.numpy().astype(np.float64)
        if v.path in paths:
            step, rate = w1 - w0, ssm_lr  # an SSM variable with decay would also move by lr * wd * w
        else:
            step, rate = w1 - w0 * (1 - lr * wd), lr
        # |Adam step| = rate * |g| / (|g| + 3e-6) at t = 1, = rate for the (scaled-up) gradients.
        np.testing.assert_allclose(np.abs(step).max(), rate, rtol=2e-3, err_msg=v.path)
        assert np.mean(np.isclose(np.abs(step), rate, rtol=2e-3)) >= 0.5, v.path


def test_optimizer_serializes_with_its_ssm_settings():
    optimizer = SSMAdamW(learning_rate=0.01, weight_decay=0.1, ssm_variable_paths=["a/b"], ssm_lr_scale=0.1)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, SSMAdamW)
    assert restored.ssm_variable_paths == ("a/b",) and restored.ssm_lr_scale == 0.1
    with pytest.raises(ValueError, match="ssm_lr_scale"):
        SSMAdamW(ssm_lr_scale=0.0)


# ---------------------------------------------------------------------------------------------
def test_divergence_guard_names_the_place_and_measures_from_the_restored_reference():
    guard = DivergenceGuard(factor=10.0)
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 2.0})
    guard.on_train_batch_end(1, {"loss": 3.0})
    guard.on_train_batch_end(2, {"loss": float("nan")})  # recorded; TerminateOnNaN stops the run
    assert guard.describe() == "Training diverged: loss = nan at epoch 3, batch 3."
    with pytest.raises(TrainingDivergedError, match=r"loss = 25 \(> 10 x the run's first loss 2\) at epoch 3, batch 4"):
        guard.on_train_batch_end(3, {"loss": 25.0})
    with pytest.raises(TrainingDivergedError, match="val_loss = inf at the end of epoch 1"):
        DivergenceGuard().on_epoch_end(0, {"loss": 1.0, "val_loss": float("inf")})
    # A resumed guard measures from the run's first loss, not from the (already high) loss it resumes at.
    resumed = DivergenceGuard(factor=10.0, reference_loss=1.0)
    with pytest.raises(TrainingDivergedError, match="first loss 1"):
        resumed.on_train_batch_end(0, {"loss": 29.0})


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_digits(tmp_path, epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, batch 1.*backup of epoch 1.*--resume-diverged"):
        train(config, callbacks=[corrupt_classifier_at(1, lambda k: np.full(k.shape, np.nan, dtype="float32"))])
    state = read_backup(tmp_path / "run" / "checkpoints")
    assert state["epoch"] == 1
    model = build_model(config, nominal_input_spec("digits", config.data_options))
    model.load_weights(tmp_path / "run" / "checkpoints" / state["weights"], skip_mismatch=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not (tmp_path / "run" / "results.json").exists()


# ---------------------------------------------------------------------------------------------
class _Interrupt(Exception):
    pass


class _KillAtEpoch(keras.callbacks.Callback):
    """Records the state at the end of each epoch, then 'kills' the run when epoch ``epoch`` begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.saved = {}

    def on_epoch_end(self, epoch, logs=None):
        self.saved = {"weights": self.model.get_weights(),
                      "optimizer": [v.numpy() for v in self.model.optimizer.variables]}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupt(f"killed at the start of epoch {epoch + 1}")


class _RecordStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()
        self.optimizer = [v.numpy() for v in self.model.optimizer.variables]
        self.iterations = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.first_epoch = getattr(self, "first_epoch", epoch)


def _discrete_eigenvalues(model):
    return [layer.discrete_eigenvalues() for layer in find_ssm_layers(model).values()]


def test_kill_and_resume_with_fixed_eigenvalues(tmp_path):
    config = tiny_digits(tmp_path, epochs=3, trainable_eigenvalues=False)
    run = tmp_path / "run"
    kill = _KillAtEpoch(epoch=1)
    with pytest.raises(_Interrupt):
        train(config, callbacks=[kill])
    state = read_backup(run / "checkpoints")
    assert state["epoch"] == 1

    start = _RecordStart()
    results = train(config, callbacks=[start])
    # Resumed from the checkpoint: epoch counter, weights and optimizer state (moments, iteration count).
    assert start.first_epoch == 1 and results["resumed_from_epoch"] == 1 and results["epochs_completed"] == 3
    assert start.iterations == results["steps_per_epoch"]
    for a, b in zip(start.weights, kill.saved["weights"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(start.optimizer, kill.saved["optimizer"]):
        np.testing.assert_array_equal(a, b)
    with open(run / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]

    # Fixed eigenvalues stay bit-identical from the initial weights to the trained model.
    spec = nominal_input_spec("digits", config.data_options)
    initial = build_model(config, spec)
    initial.load_weights(run / "checkpoints" / "initial.weights.h5")
    best = keras.saving.load_model(run / "best.keras")
    assert results["params_frozen"] > 0
    for a, b in zip(_discrete_eigenvalues(initial), _discrete_eigenvalues(best)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(initial.get_weights(), best.get_weights()))

    # A finished run is not retrained; a different config in the same directory is refused.
    again = train(config)
    assert again["test_accuracy"] == results["test_accuracy"]
    with pytest.raises(RunDirectoryError, match="different config"):
        train(config.replace(lr=0.005))


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quick_listops_preset_end_to_end(tmp_path, capsys):
    """`python zoo/train.py listops` (the quick preset) on freshly generated data: all artifacts, above chance;
    short epoch lines; a rerun prints the finished run's result."""
    config = get_config("listops", "quick", output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                        verbose=2)
    results = train(config)
    printed = capsys.readouterr().out
    epoch_lines = [line for line in printed.splitlines() if "val_accuracy" in line]
    assert len(epoch_lines) == config.epochs, printed
    for line in epoch_lines:
        assert "train_time_s" not in line and "train_steps" not in line and "learning_rate" not in line, line
    assert train(config) == json.loads(json.dumps(results))
    rerun = capsys.readouterr().out
    assert "already holds the finished run" in rerun and f"test accuracy {results['test_accuracy']:.4f}" in rerun
    run = tmp_path / "run"
    for name in ("config.json", "history.csv", "best.keras", "results.json", "training_curves.png",
                 "memory_functions.png", "checkpoints/training_metadata.json", "checkpoints/initial.weights.h5"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert json.loads((run / "config.json").read_text()) == config.to_dict()
    stored = json.loads((run / "results.json").read_text())
    assert stored == json.loads(json.dumps(results))
    for key in ("test_accuracy", "majority_class_rate", "params_trainable", "params_frozen", "frozen_fraction",
                "wall_time_s", "train_steps_per_second"):
        assert isinstance(results[key], (int, float)) and results[key] >= 0, key
    assert results["epochs_completed"] == config.epochs and results["params_trainable"] > 0
    assert results["device"]["backend"] == keras.backend.backend() and results["device"]["count"] >= 1
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == config.epochs
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "train_time_s", "learning_rate"} <= set(rows[0])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "validation")).Reload()
    assert len(events.Tensors("epoch_accuracy")) == config.epochs
    best = keras.saving.load_model(run / "best.keras")
    assert isinstance(best.optimizer, SSMAdamW)
    assert results["test_accuracy"] > results["majority_class_rate"] + 0.05, results


# ---------------------------------------------------------------------------------------------
DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    from zoo.configs import get_config
    from zoo.runs import train
    assert len(keras.distribution.list_devices()) == 2, keras.distribution.list_devices()
    out = sys.argv[1]
    histories = {}
    for mode in (None, "data"):
        config = get_config("digits", "quick", num_layers=1, d_model=16, d_state=8, epochs=2, batch_size=64,
                            verbose=0, memory_horizon=32, distribute=mode, output_dir=f"{out}/{mode}",
                            cache_dir=f"{out}/cache")
        results = train(config)
        histories[str(mode)] = {"devices": results["devices"], "test_accuracy": results["test_accuracy"],
                                "num_test": results["num_examples"]["test"],
                                "history": open(f"{out}/{mode}/history.csv").read()}
    print("RESULT" + json.dumps(histories))
    """
)


@pytest.mark.processes
@pytest.mark.slow
def test_data_parallel_on_two_cpu_devices_matches_one_device(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", DATA_PARALLEL_SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    runs = json.loads(result.stdout.split("RESULT", 1)[1])
    assert runs["None"]["devices"] == 1 and runs["data"]["devices"] == 2

    def columns(text):
        rows = list(csv.DictReader(text.splitlines()))
        return {key: np.array([float(r[key]) for r in rows]) for key in ("loss", "accuracy", "val_loss",
                                                                           "val_accuracy")}

    single, parallel = columns(runs["None"]["history"]), columns(runs["data"]["history"])
    np.testing.assert_allclose(parallel["loss"], single["loss"], rtol=1e-3)
    np.testing.assert_allclose(parallel["accuracy"], single["accuracy"], atol=2e-3)
    np.testing.assert_allclose(parallel["val_accuracy"], single["val_accuracy"], atol=2e-3)
    # The 269 test examples do not split over 2 devices: the padding row must not count.
    for mode in ("None", "data"):
        correct = runs[mode]["test_accuracy"] * runs[mode]["num_test"]
        assert abs(correct - round(correct)) < 1e-3, (mode, correct)
    assert abs(runs["data"]["test_accuracy"] - runs["None"]["test_accuracy"]) <= 1.5 / runs["None"]["num_test"]


def test_distribute_needs_jax(tmp_path):
    if keras.backend.backend() == "jax":
        pytest.skip("checks the error raised on other backends")
    with pytest.raises(ValueError, match="JAX backend"):
        train(tiny_digits(tmp_path, distribute="data"))


def test_training_curves_have_a_title_and_whole_epoch_ticks(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from zoo.runs import curves_title, plot_training_curves

    rows = ["epoch,loss,accuracy,val_loss,val_accuracy"] + [f"{e},{2 - e / 3},{0.2 + e / 10},{2.1 - e / 3},{0.2 + e / 11}"
                                                           for e in range(3)]
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")
    figures = []
    savefig = Figure.savefig

    def keep(figure, *args, **kwargs):
        figures.append(figure)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    title = curves_title(get_config("listops", "quick", trainable_eigenvalues=False))
    assert title == "listops (quick preset), S4D, fixed eigenvalues, seed 0"
    assert plot_training_curves(tmp_path / "history.csv", tmp_path / "curves.png", majority_rate=0.17, title=title)
    (figure,) = figures
    assert figure._suptitle.get_text() == title and (tmp_path / "curves.png").stat().st_size > 0
    for ax in figure.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
