"""The model-zoo API beside the CLI: zoo.build_model, zoo.load_run, zoo.evaluate_run, train.py --evaluate."""

import keras
import numpy as np
import pytest

import keras_ssm
import zoo
from zoo.configs import get_config
from zoo.models import count_parameters, iter_layers
from zoo.train import main as train_main
from zoo.runs import train


def test_build_model_from_task_name_is_the_preset_model_uncompiled():
    model = zoo.build_model("listops", preset="full")
    assert isinstance(model, keras.Model)
    assert not model.compiled  # the caller compiles it
    assert model.input_shape == (None, 2000)  # the published ListOps length
    assert model.output_shape == (None, 10)
    full = get_config("listops", "full")
    assert count_parameters(model)["trainable"] == count_parameters(zoo.build_model(full))["trainable"]
    ssm_layers = [layer for layer in iter_layers(model) if isinstance(layer, keras_ssm.S4D)]
    assert len(ssm_layers) == full.num_layers == 8 and ssm_layers[0].n == full.d_state


def test_build_model_overrides_and_errors():
    small = zoo.build_model("digits", preset="quick", num_layers=1, d_model=8, d_state=4)
    larger = zoo.build_model("digits", preset="quick", num_layers=2, d_model=8, d_state=4)
    assert count_parameters(small)["trainable"] < count_parameters(larger)["trainable"]
    with pytest.raises(ValueError, match="task"):
        zoo.build_model("sudoku")
    with pytest.raises(ValueError, match="preset"):
        zoo.build_model("listops", preset="huge")
    with pytest.raises(ValueError, match="task name"):
        zoo.build_model(get_config("digits"), preset="full")


def test_evaluate_run_matches_the_runs_own_test_accuracy(tmp_path, capsys):
    config = get_config("digits", "quick", num_layers=1, d_model=8, d_state=4, epochs=1, batch_size=64, verbose=0,
                        memory_horizon=16, output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"))
    results = train(config)
    evaluation = zoo.evaluate_run(tmp_path / "run")
    assert evaluation["task"] == "digits" and evaluation["split"] == "test"
    np.testing.assert_allclose(evaluation["accuracy"], results["test_accuracy"], atol=1e-6)
    np.testing.assert_allclose(evaluation["loss"], results["test_loss"], rtol=1e-4)
    model, loaded_config = zoo.load_run(tmp_path / "run")
    assert loaded_config.d_model == 8 and model.output_shape == (None, 10)

    assert train_main(["--evaluate", str(tmp_path / "run")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("digits test: accuracy ") and f"{results['test_accuracy']:.4f}" in line


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    assert train_main(["--evaluate", str(tmp_path)]) == 2
    assert "not a zoo run directory" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"task": "digits"}')
    assert train_main(["--evaluate", str(tmp_path)]) == 2
    assert "no best.keras yet" in capsys.readouterr().err
    assert train_main(["digits", "--evaluate", str(tmp_path)]) == 2
    assert "drop the task argument" in capsys.readouterr().err
    assert train_main([]) == 2
    assert "the task is required" in capsys.readouterr().err
