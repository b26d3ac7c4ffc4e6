"""The files of a memory tracking (``keras_ssm.MemoryTracker``), their reader and their plot (numpy; matplotlib
on first plot).

A tracking directory holds two files, both replaced atomically at every record:

    memory_tracking.json   settings (every, unit, lags, horizon, layers) and one row per record: step,
                           epoch, and per layer the channel means of MC, memory length, MF(lags), the
                           gradient norms and the memory push
    memory_tracking.npz    per record and layer: discrete eigenvalues "<layer>/eigenvalues" (R, H, M)
                           complex64, "<layer>/log_dt" (R, H), per-channel "<layer>/length" (R, H) and
                           "<layer>/mf" (R, H, lags), the memory push by lag "<layer>/push_by_lag" (R, L)
                           and per mode "<layer>/memory_push" (R, H, M); "step" (R,)

The JSON is written last and is the index: a reader takes the npz rows of the steps it lists, so a kill
between the two writes loses nothing that the JSON names.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from keras_ssm.files import write_json_atomic, write_npz_atomic

__all__ = ["TRACKING_JSON", "TRACKING_NPZ", "TRACKING_PLOT", "MemoryTracking", "load_memory_tracking",
           "save_memory_tracking", "plot_memory_tracking"]

TRACKING_JSON = "memory_tracking.json"
TRACKING_NPZ = "memory_tracking.npz"
TRACKING_PLOT = "memory_tracking.png"
FORMAT = 1


@dataclasses.dataclass
class MemoryTracking:
    """A tracking in memory: ``settings`` (dict), ``records`` (list of dicts, one per record, by step) and
    ``arrays`` ({"<layer>/<name>": list of per-record arrays})."""

    settings: dict
    records: list
    arrays: dict

    @property
    def steps(self) -> np.ndarray:
        return np.array([r["step"] for r in self.records], dtype=np.int64)

    @property
    def layers(self) -> list:
        return list(self.settings.get("layers", []))

    def array(self, layer: str, name: str) -> np.ndarray:
        """The records' values of ``name`` for ``layer`` stacked: (R, ...)."""
        key = f"{layer}/{name}"
        if key not in self.arrays:
            names = sorted({k.split("/")[-1] for k in self.arrays})
            raise ValueError(f"no array {name!r} for layer {layer!r} in this tracking; layers {self.layers}, "
                             f"arrays {names}.")
        return np.stack(self.arrays[key]) if self.arrays[key] else np.zeros((0,))

    def truncate(self, last_step: int) -> int:
        """Drop the records after ``last_step`` (those of training that a resumed run repeats); returns how many."""
        keep = [i for i, r in enumerate(self.records) if r["step"] <= last_step]
        dropped = len(self.records) - len(keep)
        self.records = [self.records[i] for i in keep]
        self.arrays = {k: [v[i] for i in keep] for k, v in self.arrays.items()}
        return dropped


def save_memory_tracking(directory, tracking: MemoryTracking) -> None:
    """Write both files atomically, the npz first (module docstring)."""
    directory = Path(directory)
    arrays = {"step": tracking.steps}
    arrays.update({key: np.stack(values) for key, values in tracking.arrays.items() if values})
    write_npz_atomic(directory / TRACKING_NPZ, arrays)
    write_json_atomic(directory / TRACKING_JSON, {"format": FORMAT, "settings": tracking.settings,
                                                 "records": tracking.records})


def load_memory_tracking(directory) -> MemoryTracking:
    """Read a tracking directory (or either of its files) written by ``keras_ssm.MemoryTracker``."""
    directory = Path(directory)
    if directory.name in (TRACKING_JSON, TRACKING_NPZ):
        directory = directory.parent
    index = directory / TRACKING_JSON
    if not index.is_file():
        raise FileNotFoundError(f"no memory tracking in {directory}: {TRACKING_JSON} is missing (written by "
                                f"keras_ssm.MemoryTracker, or `--track-memory` of zoo/train.py).")
    try:
        content = json.loads(index.read_text())
        settings, records = content["settings"], content["records"]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{index} is damaged ({err}); delete {TRACKING_JSON} and {TRACKING_NPZ} to track anew.") \
            from None
    steps = [r["step"] for r in records]
    arrays = {}
    if records:
        with np.load(directory / TRACKING_NPZ) as npz:
            row = {int(s): i for i, s in enumerate(npz["step"])}
            missing = [s for s in steps if s not in row]
            if missing:
                raise ValueError(f"{directory / TRACKING_NPZ} lacks the steps {missing[:5]} that {TRACKING_JSON} "
                                 f"lists: the files are not from one tracking.")
            rows = [row[s] for s in steps]
            arrays = {key: list(npz[key][rows]) for key in npz.files if key != "step"}
    return MemoryTracking(settings=settings, records=records, arrays=arrays)


def plot_memory_tracking(tracking, path=None, *, channels: int = 4, title: str | None = None):
    """Eigenvalue trajectories and memory over training, one row per SSM layer.

    Left: the discrete eigenvalues of the first ``channels`` features in the complex plane (upper half: one
    of each conjugate pair), each mode's path from its initial value (circle) to its last (cross), with the
    unit circle; the axes zoom to the eigenvalues (they sit near 1 for small dt). Middle: memory length (mean over features, band = range) against the training step.
    Right: MF at the tracked lags against the step.

    Args:
        tracking: a :class:`MemoryTracking` or a tracking directory.
        path: where to save the PNG (None: only return the figure).
    Returns:
        The matplotlib figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not isinstance(tracking, MemoryTracking):
        tracking = load_memory_tracking(tracking)
    if not tracking.records:
        raise ValueError("the tracking holds no record yet: nothing to plot.")
    layers, steps, lags = tracking.layers, tracking.steps, tracking.settings["lags"]
    fig, axes = plt.subplots(len(layers), 3, figsize=(14, 4.4 * len(layers)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.1, 1, 1]})
    theta = np.linspace(0, np.pi, 200)
    for row, layer in zip(axes, layers):
        lam = tracking.array(layer, "eigenvalues")[:, :channels]            # (R, c, M)
        ax = row[0]
        ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8, label="unit circle |λ| = 1")
        for h in range(lam.shape[1]):
            color = f"C{h % 10}"
            for m in range(lam.shape[2]):
                z = lam[:, h, m]
                z = np.where(z.imag < 0, np.conj(z), z)
                ax.plot(z.real, z.imag, color=color, lw=0.9, alpha=0.8)
                ax.plot(z.real[0], z.imag[0], "o", color=color, ms=3.5, mfc="none")
                ax.plot(z.real[-1], z.imag[-1], "x", color=color, ms=4)
        ax.plot([], [], "o", color="k", mfc="none", label="initial")
        ax.plot([], [], "x", color="k", label=f"step {steps[-1]}")
        z = lam.real + 1j * np.abs(lam.imag)                                # as drawn: the upper half
        pad = 0.08 * max(np.ptp(z.real), np.ptp(z.imag), 1e-3)
        ax.set_xlim(z.real.min() - pad, min(z.real.max() + pad, 1.05))
        ax.set_ylim(max(z.imag.min() - pad, -0.02), z.imag.max() + pad)
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
        ax.set_title(f"{layer}: eigenvalues λ of {lam.shape[1]} features (zoomed)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=3)
        length = tracking.array(layer, "length")
        ax = row[1]
        ax.plot(steps, length.mean(axis=1), color="C0", label="mean over features")
        ax.fill_between(steps, length.min(axis=1), length.max(axis=1), color="C0", alpha=0.2, label="range")
        ax.set_xlabel("training step")
        ax.set_ylabel("memory length (lags)")
        ax.set_title("memory length (90% of MC reached)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=2)
        mf = tracking.array(layer, "mf").mean(axis=1)
        ax = row[2]
        for j, lag in enumerate(lags):
            ax.plot(steps, mf[:, j], color=f"C{j % 10}", label=f"lag {lag}")
        ax.set_xlabel("training step")
        ax.set_ylabel("MF(lag), mean over features")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("memory function at the tracked lags", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=4)
    fig.suptitle(title or "How training moved the eigenvalues and the memory", fontsize=12)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
