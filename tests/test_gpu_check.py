"""benchmarks/gpu_check.py: its --smoke mode runs every section's code path here, so the GPU check cannot rot."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
BACKEND = keras.backend.backend()


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.processes
def test_smoke_runs_every_section_on_this_backend(tmp_path):
    env = dict(os.environ)
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--backends", BACKEND, "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert report["smoke"] and report["backends"][BACKEND] == "installed"
    device = report["devices"][BACKEND]
    assert device["backend"] == BACKEND and device["count"] >= 1

    tests = report["tests"][BACKEND]
    assert tests["passed"] and f"{len(_load_gpu_check().SMOKE_TESTS)} passed" in tests["summary"], tests

    accuracy = report["accuracy"][BACKEND]
    assert "error" not in accuracy, accuracy
    cases = {(r["layer"], r["discretization"], r["length"]) for r in accuracy["rows"]}
    assert cases == {(layer, disc, length) for layer, disc in (("s4d", "zoh"), ("s4d", "bilinear"), ("s4", "bilinear"))
                     for length in (64, 256)}
    for row in accuracy["rows"]:  # float32 kernels on a CPU: a few float32 ulps of the float64 formula
        assert row["precise_max_rel_error"] < 1e-4 and row["backend_default_max_rel_error"] < 1e-4, row

    layers = report["layers"]
    assert {(r["impl"], r["layer"]) for r in layers} >= {(BACKEND, "s4d"), (BACKEND, "s4")}
    for row in layers:
        assert "error" not in row, row
        assert row["median_s"] > 0 and row["device"]["backend"] in (BACKEND, "torch")

    train = report["train"][BACKEND]
    assert "error" not in train, train
    assert [r["task"] for r in train["rows"]] == ["listops", "pathx"]
    for row in train["rows"]:
        assert row["steps_per_s"] > 0 and row["examples_per_s"] > 0 and row["first_step_s"] > 0 and row["loss_finite"]
    for heading in ("## Devices", "## Layer tests", "## Kernel accuracy", "## Layer forward+backward",
                    "## Training step"):
        assert heading in markdown


def test_backends_not_installed_are_skipped_and_reported(tmp_path, monkeypatch):
    gpu_check = _load_gpu_check()
    monkeypatch.setattr(gpu_check, "installed", lambda backend: False)
    assert gpu_check.main(["--smoke", "--backends", "tensorflow", "torch", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["backends"] == {"tensorflow": "not installed: skipped", "torch": "not installed: skipped"}
    assert "| torch | not installed: skipped | - |" in (tmp_path / "gpu_check.md").read_text()


def test_out_defaults_to_the_out_environment_variable(tmp_path, monkeypatch):
    gpu_check = _load_gpu_check()
    monkeypatch.setattr(gpu_check, "installed", lambda backend: False)
    monkeypatch.setenv("OUT", str(tmp_path / "from-env"))
    gpu_check.main(["--smoke", "--backends", "jax", "--sections", "devices"])
    assert (tmp_path / "from-env" / "gpu_check.json").is_file()
