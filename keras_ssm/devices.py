"""Which devices the Keras backend computes on, and a warning when an NVIDIA GPU sits idle.

    info = keras_ssm.devices.device_info()      # {"backend": "jax", "platform": "gpu", "model": <GPU model>, ...}
    keras_ssm.devices.report_devices()          # prints e.g. "device: jax 0.10.2 on 1 x cpu (AMD EPYC)"; returns info

`device_info` describes the devices of the active Keras backend (or of one named backend), without
running any computation:

    backend          "jax" | "tensorflow" | "torch"
    backend_version  the backend package's version
    platform         "gpu" | "cpu" | "tpu" | "mps" | ... (the kind of device computations are placed on)
    model            device model, e.g. "NVIDIA H200"; for a CPU the processor's model name
    count            number of devices of that platform the backend sees
    devices          their names, e.g. ["cuda:0"], ["gpu:0", "gpu:1"], ["/device:GPU:0"]
    models           model name per device (devices of different models can share one platform)
    nvidia_gpu       whether this machine has an NVIDIA GPU (`nvidia-smi` on PATH or /proc/driver/nvidia)

When the machine has an NVIDIA GPU but the backend computes on the CPU, `report_devices` warns once per
process and names the command that installs the GPU build (``install``, default `GPU_INSTALL`); an
application adds its own words (``advice``, e.g. how to check the GPU setup) and names its own command
line options in `check_data_parallel` (``name``, ``alternative``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform as _platform
import shutil
import sys
import warnings

GPU_INSTALL = 'pip install "keras-ssm[gpu]"'
# What each backend needs on top of the install command.
_BACKEND_HINTS = {
    "jax": 'jax with its CUDA plugin: pip install -U "jax[cuda12]" (or "jax[cuda13]")',
    "tensorflow": 'TensorFlow\'s GPU build: pip uninstall -y tensorflow-cpu && pip install "tensorflow[and-cuda]"',
    "torch": "torch's CUDA build: pip install torch (from PyPI on Linux, or the CUDA index of pytorch.org)",
}

_warned = False
_tensorflow_configured = None
_tensorflow_late = None  # why the last configuration came too late (TensorFlow already initialized), if it did


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU: `nvidia-smi` on PATH or the driver's /proc/driver/nvidia."""
    return shutil.which("nvidia-smi") is not None or os.path.isdir("/proc/driver/nvidia")


def device_info(backend: str | None = None) -> dict:
    """The devices ``backend`` (default: the active Keras backend) computes on; see the module docstring.

    Raises:
        ValueError: ``backend`` is not one of "jax", "tensorflow", "torch".
    """
    if backend is None:
        import keras  # 6 s to import; this module is read by callers that must not start a backend

        backend = keras.backend.backend()
    if backend not in _DESCRIBERS:
        raise ValueError(f"`backend` must be one of {sorted(_DESCRIBERS)}, got {backend!r}.")
    info = {"backend": backend}
    info.update(_DESCRIBERS[backend]())
    info["backend_version"] = _version(backend)
    info["model"] = info["models"][0] if len(set(info["models"])) == 1 else " + ".join(sorted(set(info["models"])))
    info["count"] = len(info["devices"])
    info["nvidia_gpu"] = nvidia_gpu_present()
    return info


def describe(info: dict) -> str:
    """One line: '<backend> <version> on <count> x <platform> (<model>)'."""
    return (f"{info['backend']} {info['backend_version']} on {info['count']} x {info['platform']} "
            f"({info['model']})")


def idle_gpu_warning(info: dict, install: str = GPU_INSTALL, advice: str = "") -> str | None:
    """The warning text when an NVIDIA GPU exists but ``info``'s backend computes on the CPU, else None.

    ``install`` is the command that installs the GPU stack; ``advice`` (the caller's) ends the text.
    """
    if not info.get("nvidia_gpu") or info.get("platform") != "cpu":
        return None
    return (f"This machine has an NVIDIA GPU, but the {info['backend']} backend computes on the CPU "
            f"(its CPU-only build is installed). Install the GPU stack: {install}; for {info['backend']} "
            f"alone, {_BACKEND_HINTS[info['backend']]}." + (f" {advice}" if advice else ""))


def report_devices(backend: str | None = None, print_fn=print, install: str = GPU_INSTALL, advice: str = "") -> dict:
    """Print one 'device: ...' line (and the idle-GPU warning, `idle_gpu_warning(info, install, advice)`, once
    per process); return `device_info`."""
    global _warned
    info = device_info(backend)
    if print_fn is not None:
        print_fn(f"device: {describe(info)}")
    message = idle_gpu_warning(info, install, advice)
    if message and not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return info


def check_data_parallel(info: dict, name: str = "data parallelism",
                        alternative: str = "train without data parallelism") -> str:
    """Validate data-parallel training over ``info``'s devices; return a line saying what will run.

    One device: data parallelism is a no-op, said so. Several devices of one model: fine. Devices of
    different models: refused, since every step would wait for the slowest and shards must be equal.
    ``name`` begins each message (an application's option, e.g. "--distribute data"); ``alternative``
    ends the refusal.

    Raises:
        ValueError: the devices are of different models.
    """
    models = info["models"]
    if len(set(models)) > 1:
        counts = {m: models.count(m) for m in sorted(set(models))}
        raise ValueError(
            f"{name} needs devices of one kind; the {info['backend']} backend sees "
            f"{', '.join(f'{n} x {m}' for m, n in counts.items())}. Hide the others (e.g. "
            f"CUDA_VISIBLE_DEVICES=0,1 for the first two GPUs) or {alternative}."
        )
    if info["count"] == 1:
        return (f"{name}: only one device ({info['platform']}, {info['model']}); "
                f"training runs on it unsharded.")
    return f"{name}: {info['count']} x {info['platform']} ({info['model']})."


def configure_tensorflow(input_pipeline_only: bool | None = None):
    """Import TensorFlow configured not to take GPU memory it does not need; return the module.

    When TensorFlow only feeds data (tf.data) to another backend (``input_pipeline_only``; default:
    the Keras backend is not tensorflow), every GPU is hidden from it: TensorFlow would otherwise
    reserve nearly all GPU memory at its first operation, leaving none for jax or torch. When
    tensorflow is the Keras backend, GPU memory grows on demand instead of being grabbed at start.

    Must run before TensorFlow's first operation; later it cannot change anything and says so once.

    Raises:
        ImportError: TensorFlow is not installed (names the install commands).
    """
    global _tensorflow_configured, _tensorflow_late
    if "tensorflow" not in sys.modules:
        # Before TensorFlow's first import: no C++ log lines (oneDNN, CPU features, absl) below errors.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf  # 5.3 s to import, and optional: only its callers need it
    except ImportError as error:
        raise ImportError(
            "TensorFlow is needed for the tf.data input pipeline: pip install \"keras-ssm[tensorflow]\" (CPU) "
            f"or \"keras-ssm[gpu]\" (GPU). ({error})"
        ) from error
    if input_pipeline_only is None:
        import keras  # 6 s to import (see device_info)

        input_pipeline_only = keras.backend.backend() != "tensorflow"
    if _tensorflow_configured == input_pipeline_only:
        return tf
    gpus = []
    try:
        gpus = tf.config.list_physical_devices("GPU")
        if input_pipeline_only:
            tf.config.set_visible_devices([], "GPU")  # a no-op without GPUs
        else:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:  # TensorFlow already initialized its devices
        _tensorflow_late = str(error)
        if gpus:
            warnings.warn(f"TensorFlow's GPUs were already initialized, so they could not be "
                          f"{'hidden from the input pipeline' if input_pipeline_only else 'set to memory growth'}: "
                          f"{error}", RuntimeWarning, stacklevel=2)
    _tensorflow_configured = input_pipeline_only
    return tf


# ---------------------------------------------------------------------------------------------
def _version(backend):
    module = sys.modules.get(backend)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return importlib.metadata.version(backend)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine() or "cpu"


def _jax_devices():
    import jax  # each backend loads only when it is the one described (1.4 s here; it may be absent)

    devices = jax.devices()
    platform = devices[0].platform
    models = [_cpu_model() if d.platform == "cpu" else d.device_kind for d in devices]
    return {"platform": platform, "devices": [f"{d.platform}:{d.id}" for d in devices], "models": models}


def _tensorflow_devices():
    tf = configure_tensorflow()  # GPUs stay hidden where TensorFlow only feeds another backend
    gpus = tf.config.get_visible_devices("GPU")
    if gpus:
        models = []
        for gpu in gpus:
            try:
                models.append(tf.config.experimental.get_device_details(gpu).get("device_name", "GPU"))
            except Exception:  # details are best effort (not every build reports them)
                models.append("GPU")
        return {"platform": "gpu", "devices": [g.name for g in gpus], "models": models}
    cpus = tf.config.list_physical_devices("CPU")
    return {"platform": "cpu", "devices": [c.name for c in cpus], "models": [_cpu_model()] * len(cpus)}


def _torch_devices():
    import torch  # 2.2 s, on its own backend only (as _jax_devices)

    try:  # the device Keras places tensors on (KERAS_TORCH_DEVICE, mps, cuda, xpu or cpu); keras' torch backend
        from keras.src.backend.torch.core import get_device

        device = str(get_device())
    except ImportError:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = device.split(":")[0]
    if kind == "cuda":
        count = torch.cuda.device_count()
        return {"platform": "gpu", "devices": [f"cuda:{i}" for i in range(count)],
                "models": [torch.cuda.get_device_name(i) for i in range(count)]}
    if kind == "cpu":
        return {"platform": "cpu", "devices": ["cpu"], "models": [_cpu_model()]}
    return {"platform": kind, "devices": [device], "models": [kind]}


_DESCRIBERS = {"jax": _jax_devices, "tensorflow": _tensorflow_devices, "torch": _torch_devices}
