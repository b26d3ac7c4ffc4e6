"""Zoo presets and the train.py command line: plain data, overridable, strict about unknown keys."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.configs import FIELD_NAMES, PRESETS, TASKS, TrainConfig, get_config, load_json_overrides
from zoo.train import build_parser, parse_set_overrides, resolve_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_valid_printable_data(task, preset):
    config = get_config(task, preset)
    assert (config.task, config.preset) == (task, preset)
    assert config.model == "s4d"
    # LRA presets are bidirectional with mean pooling; delayed recall is causal, read at the last step.
    causal = task.startswith("delayed_recall")
    assert (config.bidirectional, config.pooling) == ((False, "last") if causal else (True, "mean"))
    assert f"preset={preset}" in str(config)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_full_presets_follow_the_published_table():
    # The S4D LRA configs of the public state-spaces/s4 repository (N=64):
    # layers, H, N, norm, prenorm, dropout, lr, wd, batch, epochs, dt_min, ssm lr
    expected = {
        "listops": (8, 128, 64, "batch", False, 0.0, 0.01, 0.05, 50, 40, 1e-3),
        "text": (6, 256, 64, "batch", True, 0.0, 0.01, 0.05, 16, 32, 1e-3),
        "retrieval": (6, 256, 64, "batch", True, 0.0, 0.01, 0.05, 64, 20, 1e-3),
        "image": (6, 512, 64, "layer", False, 0.1, 0.01, 0.05, 50, 200, 1e-3),
        "pathfinder": (6, 256, 64, "batch", True, 0.0, 0.004, 0.03, 64, 200, 1e-3),
        "pathx": (6, 256, 64, "batch", True, 0.0, 5e-4, 0.05, 16, 50, 1e-4),
    }
    for task, row in expected.items():
        c = get_config(task, "full")
        got = (c.num_layers, c.d_model, c.d_state, c.norm, c.prenorm, c.dropout, c.lr, c.weight_decay,
               c.batch_size, c.epochs, c.dt_min)
        assert got == row, task
        assert (c.ssm_lr, c.dt_max, c.warmup_fraction) == (1e-3, 1e-1, 0.1)
    small = get_config("text", "small")
    assert (small.num_layers, small.d_model, small.weight_decay, small.batch_size) == (4, 128, 0.0, 50)
    small = get_config("pathfinder", "small")
    assert (small.num_layers, small.d_model, small.epochs, small.weight_decay) == (6, 128, 40, 0.01)


def test_replace_rejects_unknown_keys_and_bad_values():
    config = get_config("listops")
    with pytest.raises(ValueError, match="Unknown config key.*'num_layer'.*Valid keys"):
        config.replace(num_layer=3)
    with pytest.raises(ValueError, match="`model` must be one of"):
        config.replace(model="s5")
    with pytest.raises(ValueError, match="`epochs` must be an integer"):
        config.replace(epochs=2.5)
    with pytest.raises(ValueError, match="dt_min < dt_max"):
        config.replace(dt_min=0.5, dt_max=0.1)
    with pytest.raises(ValueError, match="`d_state` must be even"):
        config.replace(d_state=7)
    with pytest.raises(ValueError, match="`task` must be one of"):
        get_config("mnist")


def test_data_options_overrides_merge():
    config = get_config("listops", "quick").replace(data_options={"max_length": 60})
    assert config.data_options["max_length"] == 60
    assert config.data_options["num_train"] == get_config("listops", "quick").data_options["num_train"]


def test_json_file_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"num_layers": 3, "lr": 0.002}))
    args = build_parser().parse_args(["listops", "--config", str(path), "--epochs", "5"])
    config = resolve_config(args)
    assert (config.num_layers, config.lr, config.epochs) == (3, 0.002, 5)
    path.write_text(json.dumps({"layers": 3}))
    with pytest.raises(ValueError, match="unknown key.*'layers'"):
        load_json_overrides(path)


def test_command_line_flags_and_set():
    args = build_parser().parse_args([
        "digits", "--preset", "small", "--model", "s4", "--fixed-eigenvalues", "--init", "lin",
        "--dt-min", "0.002", "--dt-max", "0.2", "--batch-size", "8", "--seed", "3", "--output-dir", "x",
        "--distribute", "data", "--set", "num_layers=1", "--set", "data_options.encoding=tokens",
    ])
    config = resolve_config(args)
    assert config.preset == "small" and config.model == "s4" and not config.trainable_eigenvalues
    assert (config.init, config.dt_min, config.dt_max, config.batch_size, config.seed) == ("lin", 0.002, 0.2, 8, 3)
    assert (config.output_dir, config.distribute, config.num_layers) == ("x", "data", 1)
    assert config.data_options["encoding"] == "tokens"
    default = resolve_config(build_parser().parse_args(["listops"]))
    assert default.preset == "quick" and default.trainable_eigenvalues
    assert default.resolved_output_dir() == str(Path("runs") / "listops-quick-s4d-learned-seed0")
    assert parse_set_overrides(["verbose=2", "init=null"]) == {"verbose": 2, "init": None}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set_overrides(["num_layers"])


def test_every_field_is_settable_from_the_command_line():
    help_text = build_parser().format_help()
    for flag in ("--model", "--fixed-eigenvalues", "--trainable-eigenvalues", "--init", "--dt-min", "--dt-max",
                 "--preset", "--epochs", "--batch-size", "--data-dir", "--seed", "--output-dir", "--config",
                 "--distribute", "--set"):
        assert flag in help_text
    for name in FIELD_NAMES:
        assert name in help_text


def test_script_runs_from_the_repo_root():
    result = subprocess.run(
        [sys.executable, "zoo/train.py", "listops", "--print-config", "--set", "num_layers=3"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["num_layers"] == 3
    result = subprocess.run([sys.executable, "zoo/train.py", "listops", "--set", "bogus=1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Unknown config key" in result.stderr


def test_init_accepts_discrete_families_and_eigenvalue_files(tmp_path):
    import numpy as np

    from zoo.configs import get_config

    assert get_config("digits", init="unity_rings:rho=0.9,p=2").init == "unity_rings:rho=0.9,p=2"
    path = tmp_path / "eig.npy"
    np.save(path, -0.5 + 1j * np.arange(8.0))  # digits quick: d_state 16 -> 8 modes
    assert get_config("digits", init=str(path)).init == str(path)
    np.save(path, 0.5 + 1j * np.arange(8.0))
    for init, message in ((str(path), "Re a"), ("unity_rings:rho=1.5", "rho"), ("hippo", "must be one of"),
                          (str(tmp_path / "none.npy"), "could not be read")):
        with pytest.raises(ValueError, match=message):
            get_config("digits", init=init)


def test_frozen_modes_config_key():
    from zoo.configs import get_config

    assert get_config("digits", frozen_modes=0.25).frozen_modes == 0.25
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        get_config("digits", frozen_modes=1.5)
    with pytest.raises(ValueError, match="trainable_eigenvalues=true"):
        get_config("digits", frozen_modes=0.5, trainable_eigenvalues=False)


def test_config_dump_says_what_none_resolves_to():
    import keras_ssm

    dump = str(get_config("listops", "quick", model="s4"))
    lines = {line.split("=")[0].strip(): line for line in dump.splitlines()[1:]}
    assert f"(the S4 default: {keras_ssm.S4.default_init!r})" in lines["init"]
    assert f"(the S4 default: {keras_ssm.S4.default_discretization!r})" in lines["discretization"]
    dump = str(get_config("listops", "quick", model="s4d", init="lin", discretization="bilinear"))
    lines = {line.split("=")[0].strip(): line for line in dump.splitlines()[1:]}
    assert lines["init"].rstrip().endswith("'lin'") and lines["discretization"].rstrip().endswith("'bilinear'")
