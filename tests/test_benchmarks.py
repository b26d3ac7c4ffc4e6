"""The benchmark scripts run end to end at tiny sizes on the active backend and write the rows they print
(their timings are results for the README, not tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()


def run_script(name, *args, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.processes
def test_layer_benchmark_interleaved_with_the_reference(tmp_path):
    out = tmp_path / "layer.json"
    stdout = run_script("s4d_layer.py", "--sizes", "1,4,8,16", "--backends", "torch-reference", BACKEND,
                        "--warmup", "0", "--repeats", "3", "--interleave", "--json", str(out), tmp_path=tmp_path)
    reference, row = json.loads(out.read_text())
    assert reference["impl"] == "torch-reference" and "speedup_interleaved" not in reference
    assert row["impl"] == BACKEND and len(row["times_s"]) == len(row["reference_times_s"]) == 3
    ratios = sorted(r / t for r, t in zip(row["reference_times_s"], row["times_s"]))
    assert row["speedup_interleaved"] == pytest.approx(ratios[1])
    assert row["peak_bytes"] >= 0 and row["memory"] == "cpu-rss"
    assert f"| s4d | {BACKEND} | 1, 4, 8, 16 |" in stdout


@pytest.mark.processes
def test_layer_ratios_times_every_variant_and_ratio(tmp_path):
    out = tmp_path / "ratios.json"
    stdout = run_script("layer_ratios.py", "--sizes", "1,4,8,16", "--warmup", "0", "--repeats", "2",
                        "--json", str(out), tmp_path=tmp_path)
    (row,) = json.loads(out.read_text())
    assert row["backend"] == BACKEND and row["size"] == [1, 4, 8, 16]
    assert set(row["median_s"]) == {"s4d", "s4d-fixed", "s4", "s4-fixed", "s4d-kernel", "s4d-kernel-fixed",
                                    "s4-kernel", "s4-kernel-fixed"}
    assert all(t > 0 for t in row["median_s"].values()) and all(len(t) == 2 for t in row["times_s"].values())
    assert set(row["ratios"]) == {"s4/s4d", "s4d fixed/learned", "s4 fixed/learned", "s4d kernel fixed/learned",
                                  "s4 kernel fixed/learned"}
    assert all(r > 0 for r in row["ratios"].values())
    assert f"| {BACKEND} | 1, 4, 8, 16 |" in stdout


@pytest.mark.processes
def test_train_step_side_by_side_reports_the_fixed_over_learned_ratio(tmp_path):
    out = tmp_path / "side.json"
    stdout = run_script("train_step.py", "--side-by-side", "--preset", "quick", "--tasks", "listops",
                        "--backends", BACKEND, "--batch", "2", "--warmup", "1", "--repeats", "2",
                        "--json", str(out), tmp_path=tmp_path)
    (row,) = json.loads(out.read_text())
    assert "error" not in row, row
    assert row["impl"] == BACKEND and row["setting"] == "side-by-side" and row["batch"] == 2
    assert set(row["times_s"]) == {"learned", "fixed"} and all(len(t) == 2 for t in row["times_s"].values())
    ratios = [f / lr for f, lr in zip(row["times_s"]["fixed"], row["times_s"]["learned"])]
    assert row["fixed_over_learned"] == pytest.approx(sorted(ratios)[0] / 2 + sorted(ratios)[1] / 2)
    assert f"| listops | {BACKEND} |" in stdout and "fixed / learned" in stdout
