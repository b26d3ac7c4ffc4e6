"""Plots of memory functions (matplotlib, imported lazily).

Figures are built with ``matplotlib.figure.Figure`` directly and saved through the Agg
(PNG) or PDF canvases, so no pyplot state or global backend is touched: safe in scripts,
servers and notebooks alike. The format follows the file extension (.png, .pdf, .svg).
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_ssm.memory.core import _memory_values

__all__ = ["plot_memory_functions", "plot_memory_comparison"]


def _new_figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'keras-ssm[plot]'") from err
    return Figure(figsize=(width, height), layout="constrained")


def _as_curve_dict(curves) -> dict:
    if isinstance(curves, dict):
        if not curves:
            raise ValueError("curves must not be empty")
        return dict(curves)
    return {"": curves}


def _check_band(band):
    if band is None:
        return None
    if (not isinstance(band, (tuple, list)) or len(band) != 2
            or not all(isinstance(q, (int, float)) for q in band) or not 0 <= band[0] < band[1] <= 1):
        raise ValueError(f"band must be None or a pair of quantiles (low, high) with 0 <= low < high <= 1, got {band!r}")
    return float(band[0]), float(band[1])


def _draw(ax, label, memory, color, band, show_capacity, linestyle="-"):
    """Channel-mean curve of ``memory`` (..., T) with a quantile band over channels (named in the legend)."""
    values = _memory_values(memory)
    curves = values.reshape(-1, values.shape[-1])
    lags = np.arange(curves.shape[-1])
    mean = curves.mean(axis=0)
    text = label
    if show_capacity:
        capacity = float(curves.sum(axis=-1).mean())
        text = f"{label} (MF summed over these lags: {capacity:.1f})" if label else f"MF summed over these lags: {capacity:.1f}"
    (line,) = ax.plot(lags, mean, color=color, lw=1.5, linestyle=linestyle,
                      label=f"{text}: mean over channels" if text else "mean over channels")
    if band is not None and curves.shape[0] > 1:
        low, high = np.quantile(curves, band, axis=0)
        quantiles = f"{100 * band[0]:g}-{100 * band[1]:g}% of channels"
        ax.fill_between(lags, low, high, color=line.get_color(), alpha=0.2, lw=0,
                        label=f"{label}: {quantiles}" if label else quantiles)


def matplotlib_ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def _style(ax, log_lag, log_mf, title):
    if log_lag:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
        # no "0" label crowding "10^0" (the axis starts at lag 0 all the same)
        default = ax.xaxis.get_major_formatter()
        ax.xaxis.set_major_formatter(
            matplotlib_ticker().FuncFormatter(lambda value, pos: "" if value == 0 else default(value, pos)))
    ax.set_xlim(left=0)
    if log_mf:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("lag k")
    ax.set_ylabel("MF(k)")
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)


def _save(fig, path):
    if path is not None:
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        fig.savefig(path, dpi=150)


def plot_memory_functions(
    curves,
    path=None,
    *,
    log_lag: bool = True,
    log_mf: bool = False,
    band=(0.1, 0.9),
    title: str | None = None,
    show_capacity: bool = True,
    ax=None,
):
    """Plot one or several memory functions in one axes.

    Args:
        curves: a :class:`MemoryFunction` or array (..., T), or a dict {label: either}
            (e.g. several eigenvalue sets). Batched curves (e.g. per channel (H, T)) are
            drawn as their mean with a band between the ``band`` quantiles over curves.
        path: file to write (format from the extension: .png, .pdf, ...), or None.
        log_lag: symmetric-log lag axis (linear on [0, 1], logarithmic beyond), which
            shows short and long memory together.
        log_mf: logarithmic MF axis.
        band: (low, high) quantiles of the channel band, or None for no band.
        title: axes title.
        show_capacity: append the (mean) memory capacity to each legend label.
        ax: draw into an existing matplotlib Axes instead of a new figure.

    Returns:
        The matplotlib Figure.
    """
    band = _check_band(band)
    curve_dict = _as_curve_dict(curves)
    fig = _new_figure(7.0, 4.2) if ax is None else ax.figure
    axes = fig.add_subplot() if ax is None else ax
    for index, (label, memory) in enumerate(curve_dict.items()):
        _draw(axes, str(label), memory, f"C{index % 10}", band, show_capacity)
    _style(axes, log_lag, log_mf, title)
    if any(str(label) for label in curve_dict) or show_capacity:
        axes.legend(fontsize=8, frameon=False)
    _save(fig, path)
    return fig


def plot_memory_comparison(
    memory_sets: dict,
    path=None,
    *,
    log_lag: bool = True,
    log_mf: bool = False,
    band=(0.1, 0.9),
    ncols: int | None = None,
    title: str | None = None,
):
    """Compare labelled sets of per-layer memory functions, one panel per layer.

    Args:
        memory_sets: {label: {layer path: MemoryFunction or array (H, T)}}, e.g.
            ``{"initial": model_memory_functions(model_before), "trained":
            model_memory_functions(model_after)}``. Each panel shows, for every label
            holding that layer, the channel-mean MF and a quantile band over channels.
        path: file to write (.png, .pdf, ...), or None.
        log_lag, log_mf, band: as in :func:`plot_memory_functions`.
        ncols: panels per row (default: up to 3).
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    band = _check_band(band)
    if not isinstance(memory_sets, dict) or not memory_sets:
        raise ValueError("memory_sets must be a non-empty dict {label: {layer path: MemoryFunction}}")
    for label, layer_dict in memory_sets.items():
        if not isinstance(layer_dict, dict) or not layer_dict:
            raise ValueError(f"memory_sets[{label!r}] must be a non-empty dict {{layer path: MemoryFunction}}")
    layer_names = []
    for layer_dict in memory_sets.values():
        layer_names.extend(name for name in layer_dict if name not in layer_names)
    if ncols is None:
        ncols = min(3, len(layer_names))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    nrows = math.ceil(len(layer_names) / ncols)
    fig = _new_figure(4.6 * ncols, 3.4 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    legend = {}
    for panel, name in enumerate(layer_names):
        ax = axes[panel // ncols][panel % ncols]
        sums, labels = [], []
        for index, (label, layer_dict) in enumerate(memory_sets.items()):
            if name in layer_dict:
                _draw(ax, str(label), layer_dict[name], f"C{index % 10}", band, False,
                      linestyle=("-", "--", ":", "-.")[index % 4])  # sets stay apart where they overlap
                curves = _memory_values(layer_dict[name])
                sums.append(f"{curves.reshape(-1, curves.shape[-1]).sum(axis=-1).mean():.1f}")
                labels.append(str(label))
        _style(ax, log_lag, log_mf, name)
        ax.set_title(f"{name}\nMF summed over the shown lags ({' / '.join(labels)}): {' / '.join(sums)}", fontsize=9)
        for handle, text in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(text, handle)
    for panel in range(len(layer_names), nrows * ncols):
        axes[panel // ncols][panel % ncols].set_visible(False)
    # One legend for all panels, below them, so that no curve hides behind it.
    fig.legend(list(legend.values()), list(legend.keys()), loc="outside lower center", fontsize=8, frameon=False,
               ncol=min(len(legend), 2 * len(memory_sets)) if len(memory_sets) <= 2 else len(memory_sets))
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig
