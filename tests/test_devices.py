"""Device reporting, the idle-GPU warning, data-parallel checks, and TensorFlow kept off the GPU for tf.data."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import pytest

import zoo
import zoo.runs
from conftest import tiny_config
from keras_ssm import devices

REPO = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()


def test_device_info_describes_the_active_backend():
    info = devices.device_info()
    assert info["backend"] == BACKEND
    assert info["count"] == len(info["devices"]) == len(info["models"]) >= 1
    assert info["platform"] in ("cpu", "gpu", "tpu", "mps", "xpu")
    assert info["model"] and info["backend_version"] not in ("", "?")
    line = devices.describe(info)
    assert line.startswith(f"{BACKEND} ") and f"{info['count']} x {info['platform']}" in line
    json.dumps(info)  # goes into results.json as it is


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="`backend` must be one of"):
        devices.device_info("mxnet")


def test_idle_gpu_warns_once_and_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setattr(devices, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(devices, "_warned", False)
    info = devices.device_info()
    if info["platform"] != "cpu":
        pytest.skip("the backend computes on an accelerator here")
    with pytest.warns(RuntimeWarning, match=r"NVIDIA GPU.*computes on the CPU") as record:
        devices.report_devices()
    message = str(record[0].message)
    assert devices.GPU_INSTALL in message
    assert not any(word in message for word in ("zoo", "benchmarks/", "-e ")), message  # no application's words
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        devices.report_devices()  # second time: no warning
    assert capsys.readouterr().out.count("device: ") == 2


def test_the_zoo_warning_names_the_checkout_install_and_the_gpu_check(monkeypatch, capsys):
    monkeypatch.setattr(devices, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(devices, "_warned", False)
    if devices.device_info()["platform"] != "cpu":
        pytest.skip("the backend computes on an accelerator here")
    with pytest.warns(RuntimeWarning, match=r"NVIDIA GPU.*computes on the CPU") as record:
        zoo.report_devices()
    message = str(record[0].message)
    assert zoo.GPU_INSTALL in message and message.endswith("Check with: python benchmarks/gpu_check.py")
    assert capsys.readouterr().out.startswith("device: ")


def test_no_warning_without_an_nvidia_gpu(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_gpu_present", lambda: False)
    monkeypatch.setattr(devices, "_warned", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        devices.report_devices(print_fn=None)
    assert devices.idle_gpu_warning({"nvidia_gpu": True, "platform": "gpu", "backend": "jax"}) is None


def _info(models):
    return {"backend": "jax", "platform": "gpu", "models": models, "count": len(models),
            "model": models[0], "devices": [f"gpu:{i}" for i in range(len(models))]}


def test_data_parallel_one_device_says_so_and_mixed_kinds_refused():
    assert devices.check_data_parallel(_info(["NVIDIA H100"])).startswith("data parallelism: only one device")
    assert "2 x gpu" in devices.check_data_parallel(_info(["NVIDIA H100", "NVIDIA H100"]))
    with pytest.raises(ValueError, match=r"devices of one kind.*1 x NVIDIA A100.*1 x NVIDIA H100.*"
                                         r"or train without data parallelism\.$"):
        devices.check_data_parallel(_info(["NVIDIA H100", "NVIDIA A100"]))


def test_the_zoo_names_its_distribute_option_in_the_data_parallel_check():
    assert zoo.check_data_parallel(_info(["NVIDIA H100"])) == (
        "--distribute data: only one device (gpu, NVIDIA H100); training runs on it unsharded.")
    with pytest.raises(ValueError, match=r"^--distribute data needs devices of one kind.*"
                                         r"or train without --distribute\.$"):
        zoo.check_data_parallel(_info(["NVIDIA H100", "NVIDIA A100"]))


# ---------------------------------------------------------------------------------------------
# The zoo: the run log and results.json name the device; --distribute data checks the devices.

def _tiny_digits(tmp_path, **overrides):
    values = dict(d_model=8, d_state=4, epochs=1, batch_size=128, verbose=1, memory_horizon=16)
    values.update(overrides)
    return tiny_config("digits", tmp_path, **values)


class _StopAfterData(Exception):
    pass


@pytest.mark.skipif(BACKEND != "jax", reason="--distribute data is JAX-only")
def test_zoo_run_logs_the_device_and_distribute_on_one_device_says_so(tmp_path, capsys, monkeypatch):
    """The run log's device line and the one-device message come before the model is built (stopped
    there to stay fast; tests/zoo/test_train.py checks the "device" entry of a whole run's results.json)."""
    import jax  # the jax backend's own module: this test runs on it only

    if len(jax.devices()) != 1:
        pytest.skip("needs exactly one device")

    def stop(*args, **kwargs):
        raise _StopAfterData

    monkeypatch.setattr(zoo.runs, "build_model", stop)
    with pytest.raises(_StopAfterData):
        zoo.runs.train(_tiny_digits(tmp_path, distribute="data"))
    out = capsys.readouterr().out
    assert "--distribute data: only one device" in out
    assert f"device: {devices.describe(devices.device_info())}" in out


@pytest.mark.skipif(BACKEND != "jax", reason="--distribute data is JAX-only")
def test_zoo_refuses_data_parallel_over_mixed_devices(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.runs, "device_info", lambda: _info(["NVIDIA H100", "NVIDIA A100"]))
    with pytest.raises(ValueError, match="devices of one kind"):
        zoo.runs.train(_tiny_digits(tmp_path, distribute="data"))


@pytest.mark.skipif(BACKEND == "tensorflow", reason="with the tensorflow backend TensorFlow keeps its GPUs")
def test_tf_data_is_configured_before_tensorflow_starts(tmp_path, early_tf_op=False):
    """In a fresh process on this backend: the zoo's data loading hides GPUs from TensorFlow before its
    first operation (had TensorFlow started earlier, hiding would fail and be recorded)."""
    script = textwrap.dedent(f"""
        import tensorflow as tf
        from tensorflow.python.eager import context
        started_when_hidden = []                # whether TensorFlow had started when its GPUs were hidden
        hide = tf.config.set_visible_devices
        def spy(devices, device_type=None):
            started_when_hidden.append(context.context()._initialized)
            return hide(devices, device_type)
        tf.config.set_visible_devices = spy
        {"tf.constant(1) + 1" if early_tf_op else ""}
        import keras
        from keras_ssm import devices
        keras.utils.set_random_seed(0)          # what a zoo run does first
        devices.report_devices()
        from zoo.data import load_task
        ds, info = load_task("digits", "train", batch_size=32, cache_dir={str(tmp_path)!r})
        next(iter(ds))
        assert started_when_hidden == [False], started_when_hidden
        assert devices._tensorflow_late is None, devices._tensorflow_late
        assert tf.config.get_visible_devices("GPU") == []
        print("ok")
    """)
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
