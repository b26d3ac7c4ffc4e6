"""A run's memory analysis: the SSM layers of a model at initialisation against the same layers trained.

Shared by the experiments (zoo.fixed_vs_learned, zoo.memory_horizon). Per SSM layer (keras_ssm.memory, closed
form, finite horizon T): the memory function MF(k), k = 0..T-1, of every channel, its summary (memory capacity
MC = sum_k MF(k), memory length = the lag holding 90% of MC, memory accuracy, rank), MF at the task's delay,
and the discrete eigenvalues lambda before and after training. Files of a run directory:

    analysis.json   {"horizon", "delay", "layers": {path: {"initial", "trained", "eigenvalues_identical",
                    "eigenvalue_max_abs_change"}}, "initial_weights_fingerprint"}
    analysis.npz    "<kind>::<layer path>" -> array, kind in mf_initial, mf_trained (H, T) float64,
                    eig_initial, eig_trained (H, N/2) complex128
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keras_ssm.memory import find_ssm_layers, layer_memory_function, memory_summary
from zoo.configs import TrainConfig
from zoo.data import task_options
from zoo.rundir import ANALYSIS_ARRAYS_FILE, ANALYSIS_FILE, write_json_atomic, write_npz_atomic


def task_delay(config: TrainConfig) -> int | None:
    """The recall lag of a delayed-recall task (its ``delay`` data option or default), else None."""
    defaults = task_options(config.task)
    if "delay" not in defaults:
        return None
    return int(config.data_options.get("delay", defaults["delay"]))


def weights_fingerprint(arrays) -> str:
    """Order-independent digest of a list of arrays: sha256 over the sorted sha256 digests of each
    array's dtype, shape and bytes. Equal for two models with identical weight values."""
    digests = sorted(
        hashlib.sha256(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()
        for a in (np.asarray(x) for x in arrays)
    )
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def memory_layer_summary(memory, delay: int | None) -> dict:
    """``keras_ssm.memory.memory_summary`` of one layer's MemoryFunction (H, T) (channel means of MC,
    memory length and accuracy; rank, state dimension, condition number), with MF at ``delay`` (mean
    and max over channels) when given and inside the horizon."""
    summary = memory_summary(memory)
    if delay is not None and delay < memory.horizon:
        at_delay = memory.values[..., delay]
        summary["mf_at_delay_mean"] = float(np.mean(at_delay))
        summary["mf_at_delay_max"] = float(np.max(at_delay))
    return summary


def analyse_models(initial_model, trained_model, horizon: int, delay: int | None = None):
    """Compare the SSM layers of a model at initialisation and after training.

    Returns:
        (analysis, arrays): ``analysis`` is JSON-ready: {"horizon", "delay", "layers": {path: {"initial":
        summary, "trained": summary, "eigenvalues_identical": bool, "eigenvalue_max_abs_change": float}},
        "initial_weights_fingerprint"}; ``arrays`` maps ``"<kind>::<layer path>"`` (kind in mf_initial,
        mf_trained, eig_initial, eig_trained) to numpy arrays: MF values (H, horizon) float64 and
        discrete eigenvalues (H, N/2) complex128.
    """

    before, after = find_ssm_layers(initial_model), find_ssm_layers(trained_model)
    if list(before) != list(after):
        raise ValueError(f"The two models have different SSM layers: {list(before)} vs {list(after)}.")
    layers, arrays = {}, {}
    for path, layer in before.items():
        trained_layer = after[path]
        mf_initial = layer_memory_function(layer, horizon)
        mf_trained = layer_memory_function(trained_layer, horizon)
        eig_initial = np.asarray(layer.discrete_eigenvalues())
        eig_trained = np.asarray(trained_layer.discrete_eigenvalues())
        layers[path] = {
            "initial": memory_layer_summary(mf_initial, delay),
            "trained": memory_layer_summary(mf_trained, delay),
            "eigenvalues_identical": bool(np.array_equal(eig_initial, eig_trained)),
            "eigenvalue_max_abs_change": float(np.max(np.abs(eig_trained - eig_initial))),
        }
        arrays[f"mf_initial::{path}"] = mf_initial.values
        arrays[f"mf_trained::{path}"] = mf_trained.values
        arrays[f"eig_initial::{path}"] = eig_initial
        arrays[f"eig_trained::{path}"] = eig_trained
    analysis = {
        "horizon": int(horizon),
        "delay": delay,
        "layers": layers,
        "initial_weights_fingerprint": weights_fingerprint(initial_model.get_weights()),
    }
    return analysis, arrays


def write_analysis(run_dir, analysis: dict, arrays: dict) -> None:
    """``analysis.npz`` then ``analysis.json`` into ``run_dir``, each written atomically (the JSON last: a run
    with analysis.json has its arrays)."""
    write_npz_atomic(Path(run_dir) / ANALYSIS_ARRAYS_FILE, arrays)
    write_json_atomic(Path(run_dir) / ANALYSIS_FILE, analysis)


def load_analysis_arrays(run_dir) -> dict:
    """{kind: {layer path: array}} from ``run_dir``'s analysis.npz (kinds: mf_initial, mf_trained, eig_initial,
    eig_trained)."""
    grouped: dict = {}
    with np.load(Path(run_dir) / ANALYSIS_ARRAYS_FILE) as arrays:
        for key in arrays.files:
            kind, path = key.split("::", 1)
            grouped.setdefault(kind, {})[path] = arrays[key]
    return grouped
