"""Plots of memory functions (matplotlib, imported lazily).

Figures are built with ``matplotlib.figure.Figure`` directly and saved through the Agg
(PNG) or PDF canvases, so no pyplot state or global backend is touched: safe in scripts,
servers and notebooks alike. The format follows the file extension (.png, .pdf, .svg).

Every figure keeps its legend outside the data area (to the right of the panels), its title on
one line and the details in a small caption under the panels. The lag axis is symmetric-log
with lag 0 at its left edge, labelled "0": linear from 0 to 1, logarithmic beyond, so the
fast fall over the first lags and the long tail up to the horizon are both readable.
"""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np

from keras_ssm.memory.core import _memory_values

__all__ = ["plot_memory_functions", "plot_memory_comparison"]

#: Line styles of the sets of a comparison, in order: sets stay apart where their curves coincide.
LINESTYLES = ("-", "--", ":", "-.")
#: Curves of two sets whose channel means differ by at most this fraction of the first set's peak
#: count as coinciding: ``plot_memory_comparison(difference=None)`` then adds "set - first set" panels.
COINCIDE_TOLERANCE = 0.05
#: The y label of every memory-function panel (difference panels are labelled "<set> - <first set>").
MF_AXIS_LABEL = "memory function MF(k)"
_LAG_LABEL = "lag k (steps back in the input)"


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


def _channels(memory) -> np.ndarray:
    """The curves of ``memory`` (..., T) as rows (C, T)."""
    values = _memory_values(memory)
    return values.reshape(-1, values.shape[-1])


def _capacity(memory) -> float:
    """Memory capacity: MF summed over the lags given, averaged over channels."""
    return float(_channels(memory).sum(axis=-1).mean())


def _band_text(band) -> str:
    return f"{100 * band[0]:g}-{100 * band[1]:g}% of channels"


def _fill_band(ax, lags, curves, band, color, linestyle, filled, label):
    """Quantile band over the rows of ``curves``: shaded when ``filled``, else outlined in ``linestyle``
    (so that a second band over the first one stays visible). Returns the band's artist."""
    low, high = np.quantile(curves, band, axis=0)
    if filled:
        return ax.fill_between(lags, low, high, color=color, alpha=0.2, lw=0, label=label)
    return ax.fill_between(lags, low, high, facecolor="none", edgecolor=color, alpha=0.8, lw=1.0,
                           linestyle=linestyle, label=label)


def _draw(ax, label, memory, color, band, linestyle="-", filled=True):
    """Channel-mean MF of ``memory`` (..., T) and, for several channels, its quantile band over them.

    Returns the legend handle: the line, or (band, line) when a band is drawn."""
    curves = _channels(memory)
    lags = np.arange(curves.shape[-1])
    name = f"{label}: " if label else ""
    several = curves.shape[0] > 1
    (line,) = ax.plot(lags, curves.mean(axis=0), color=color, lw=1.5, linestyle=linestyle,
                      label=f"{name}mean over channels" if several else (label or "MF"))
    if band is None or not several:
        return line
    return _fill_band(ax, lags, curves, band, color, linestyle, filled, f"{name}{_band_text(band)}"), line


def _draw_difference(ax, label, memory, reference, color, band, linestyle, filled):
    """``memory`` minus ``reference`` over their common lags: the difference of the channel means and, when
    both hold the same channels (paired by position), the quantile band of the per-channel differences.

    Returns the legend handle."""
    curves, base = _channels(memory), _channels(reference)
    horizon = min(curves.shape[-1], base.shape[-1])
    curves, base = curves[:, :horizon], base[:, :horizon]
    lags = np.arange(horizon)
    (line,) = ax.plot(lags, curves.mean(axis=0) - base.mean(axis=0), color=color, lw=1.5, linestyle=linestyle,
                      label=f"{label}: difference of the means")
    if band is None or curves.shape != base.shape or curves.shape[0] < 2:
        return line
    return _fill_band(ax, lags, curves - base, band, color, linestyle, filled,
                      f"{label}: per-channel difference, {100 * band[0]:g}-{100 * band[1]:g}%"), line


def matplotlib_ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def _style_lags(ax, log_lag):
    """Lag axis from lag 0 (the left edge) on: symmetric-log (linear on [0, 1], logarithmic beyond) with plain
    labels "0", "1", "10", ..., or linear."""
    if log_lag:
        ticker = matplotlib_ticker()
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, pos: f"{value:g}"))
        ax.xaxis.set_minor_locator(ticker.SymmetricalLogLocator(linthresh=1.0, base=10, subs=range(2, 10)))
    ax.set_xlim(left=0)


def _style(ax, log_lag, log_mf, title, xlabel=True):
    """Lag and MF axes of a memory-function panel, its grid and one-line ``title``."""
    _style_lags(ax, log_lag)
    if log_mf:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    if xlabel:
        ax.set_xlabel(_LAG_LABEL)
    ax.set_ylabel(MF_AXIS_LABEL)
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)


def _style_difference(ax, log_lag, ylabel):
    """Difference panel: zero line, y range symmetric about it, the lag axis of the panel above."""
    ax.axhline(0.0, color="0.4", lw=0.8, zorder=1.5)
    _style_lags(ax, log_lag)
    low, high = ax.get_ylim()
    reach = max(abs(low), abs(high), 1e-6)
    ax.set_ylim(-reach, reach)
    ax.set_xlabel(_LAG_LABEL)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, which="major", alpha=0.3)


def _figure_text(fig, title, caption):
    """One-line ``title`` on top; ``caption`` in small print at the bottom, wrapped to the figure's width."""
    if title:
        fig.suptitle(title, fontsize=11)
    if caption:
        width = max(40, int(fig.get_figwidth() * 16))
        text = "\n".join(textwrap.fill(part, width) for part in str(caption).split("\n"))
        fig.supxlabel(text, fontsize=8, color="0.25")


def _legend(fig, handles, labels, title=None):
    """A legend to the right of every panel (outside the data area), its entries left-aligned."""
    if handles:
        legend = fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False,
                            title=title, title_fontsize=8, alignment="left")
        legend.get_title().set_multialignment("left")


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
    caption: str | None = None,
):
    """Plot one or several memory functions in one axes.

    Draws, for each entry of ``curves``, its MF against the lag (the channel mean, with a shaded band between
    the ``band`` quantiles over channels when it holds several), one legend entry per entry to the right of the axes
    (outside the data) and, when given, a one-line ``title`` above and a small ``caption`` below.

    Args:
        curves: a :class:`MemoryFunction` or array (..., T), or a dict {label: either}
            (e.g. several eigenvalue sets). Batched curves (e.g. per channel (H, T)) are
            drawn as their mean with a band between the ``band`` quantiles over curves.
        path: file to write (format from the extension: .png, .pdf, ...), or None.
        log_lag: symmetric-log lag axis (linear on [0, 1], logarithmic beyond), which
            shows short and long memory together; lag 0 is its left edge.
        log_mf: logarithmic MF axis.
        band: (low, high) quantiles of the channel band, or None for no band.
        title: figure title (axes title with ``ax``): one short line in words.
        show_capacity: add the (mean) memory capacity, MF summed over the lags shown, to each legend entry.
        ax: draw into an existing matplotlib Axes instead of a new figure (the legend then sits to its right).
        caption: details in small print under the figure (ignored with ``ax``).

    Returns:
        The matplotlib Figure.
    """
    band = _check_band(band)
    curve_dict = _as_curve_dict(curves)
    labels = [_entry_label(label, memory, show_capacity) for label, memory in curve_dict.items()]
    several = any(_channels(memory).shape[0] > 1 for memory in curve_dict.values())
    heading = ("line: mean over channels" + (f"\nshading: {_band_text(band)}" if band else "")) if several else None
    if ax is None:
        fig = _new_figure(5.8 + _legend_width(labels), 4.4)
        axes = fig.add_subplot()
    else:
        fig, axes = ax.figure, ax
    handles = [_draw(axes, str(label), memory, f"C{index % 10}", band)
               for index, (label, memory) in enumerate(curve_dict.items())]
    _style(axes, log_lag, log_mf, title if ax is not None else None)
    if any(labels) and ax is not None:
        axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                    title=heading, title_fontsize=8)
    if ax is None:
        if any(labels):
            _legend(fig, handles, labels, heading)
        if show_capacity:
            caption = "\n".join(filter(None, [caption, "Capacity: MF summed over the lags shown"
                                                       + (", mean over channels" if several else "")]))
        _figure_text(fig, title, caption)
    _save(fig, path)
    return fig


def _entry_label(label, memory, show_capacity) -> str:
    """Legend text of one curve: its label and, with ``show_capacity``, its memory capacity."""
    text = str(label)
    if not show_capacity:
        return text
    capacity = f"capacity {_capacity(memory):.1f}"
    return f"{text}: {capacity}" if text else capacity


def _legend_width(labels) -> float:
    """Inches a legend of ``labels`` takes to the right of the axes (8 pt text)."""
    return 0.9 + 0.065 * max((len(text) for text in labels), default=0) if any(labels) else 0.0


def _layer_names(memory_sets) -> list:
    names = []
    for layer_dict in memory_sets.values():
        names.extend(name for name in layer_dict if name not in names)
    return names


def _mean_gap(memory, reference) -> float:
    """Largest difference of the channel means over the common lags, as a fraction of the reference's peak."""
    curves, base = _channels(memory).mean(axis=0), _channels(reference).mean(axis=0)
    horizon = min(len(curves), len(base))
    peak = max(float(np.abs(base[:horizon]).max()), 1e-12)
    return float(np.abs(curves[:horizon] - base[:horizon]).max()) / peak


def curves_coincide(memory_sets: dict, tolerance: float = COINCIDE_TOLERANCE) -> bool:
    """Whether, in some layer, a set's channel-mean MF lies within ``tolerance`` (a fraction of the peak) of
    the first set's: drawn over each other, the two would read as one curve."""
    (first, reference), *others = memory_sets.items()
    return any(_mean_gap(layers[name], reference[name]) <= tolerance
               for _, layers in others for name in layers if name in reference)


def _check_memory_sets(memory_sets):
    if not isinstance(memory_sets, dict) or not memory_sets:
        raise ValueError("memory_sets must be a non-empty dict {label: {layer path: MemoryFunction}}")
    for label, layer_dict in memory_sets.items():
        if not isinstance(layer_dict, dict) or not layer_dict:
            raise ValueError(f"memory_sets[{label!r}] must be a non-empty dict {{layer path: MemoryFunction}}")


def _panel_grid(fig, count, ncols, with_difference):
    """[(MF axes, difference axes or None)] for ``count`` layers, ``ncols`` per row; unused cells hidden."""
    nrows = math.ceil(count / ncols)
    ratios = [3.0, 1.4] * nrows if with_difference else [1.0] * nrows
    grid = fig.add_gridspec(len(ratios), ncols, height_ratios=ratios)
    panels = []
    for cell in range(nrows * ncols):
        row, col = divmod(cell, ncols)
        if with_difference:
            main = fig.add_subplot(grid[2 * row, col])
            below = fig.add_subplot(grid[2 * row + 1, col], sharex=main, label="difference")
            main.tick_params(labelbottom=False)
        else:
            main, below = fig.add_subplot(grid[row, col]), None
        if cell >= count:
            for axes in (main, below):
                if axes is not None:
                    axes.set_visible(False)
        panels.append((main, below))
    return panels[:count]


def _draw_layer(main, below, name, memory_sets, band, log_lag, log_mf):
    """One layer: every set's MF in ``main`` (one line style per set, the first band shaded, the others
    outlined) and, in ``below``, every later set minus the first. Returns {legend label: handle}."""
    entries, sums = {}, []
    (first_label, reference), *_ = memory_sets.items()
    for index, (label, layer_dict) in enumerate(memory_sets.items()):
        if name not in layer_dict:
            continue
        color, style = f"C{index % 10}", LINESTYLES[index % len(LINESTYLES)]
        entries[str(label)] = _draw(main, str(label), layer_dict[name], color, band, style, filled=index == 0)
        sums.append(f"{_capacity(layer_dict[name]):.1f}")
        if below is not None and index > 0 and name in reference:
            text = f"{label} \N{MINUS SIGN} {first_label}"
            entries[text] = _draw_difference(below, text, layer_dict[name], reference[name], color, band, style,
                                             filled=index == 1)
    _style(main, log_lag, log_mf, f"{name}: capacity {' / '.join(sums)}", xlabel=below is None)
    if below is not None:
        others = [str(label) for label in memory_sets][1:]
        _style_difference(below, log_lag, f"{others[0] if len(others) == 1 else 'set'} \N{MINUS SIGN} {first_label}")
    return entries


def plot_memory_comparison(
    memory_sets: dict,
    path=None,
    *,
    log_lag: bool = True,
    log_mf: bool = False,
    band=(0.1, 0.9),
    ncols: int | None = None,
    title: str | None = None,
    caption: str | None = None,
    difference: bool | None = None,
):
    """Compare labelled sets of per-layer memory functions, one panel per layer.

    Each panel draws, for every set holding that layer, the channel-mean MF (solid for the first set, dashed,
    dotted, dash-dotted for the next) and the ``band`` quantiles over channels (shaded for the first set,
    outlined for the others), and is titled with the layer's path and each set's memory capacity. With
    difference panels, a short panel under each layer shows every later set minus the first (the difference
    of the means and, for sets holding the same channels, the band of the per-channel differences). One
    legend, to the right of the panels, names the sets; a one-line ``title`` sits above and a small caption below.

    Args:
        memory_sets: {label: {layer path: MemoryFunction or array (H, T)}}, e.g.
            ``{"initial": model_memory_functions(model_before), "trained":
            model_memory_functions(model_after)}``.
        path: file to write (.png, .pdf, ...), or None.
        log_lag, log_mf, band: as in :func:`plot_memory_functions`.
        ncols: panels per row (default: up to 3).
        title: figure title, one short line in words.
        caption: details in small print under the panels (what MF is, the horizon, ...); the line
            saying what the capacities in the panel titles are is added to it.
        difference: draw the difference panels; None (default): when the curves of a later set and of the
            first coincide in some layer (:func:`curves_coincide`).

    Returns:
        The matplotlib Figure.
    """
    band = _check_band(band)
    _check_memory_sets(memory_sets)
    layer_names = _layer_names(memory_sets)
    if ncols is None:
        ncols = min(3, len(layer_names))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    if difference is None:
        difference = len(memory_sets) > 1 and curves_coincide(memory_sets)
    difference = bool(difference) and len(memory_sets) > 1
    nrows = math.ceil(len(layer_names) / ncols)
    fig = _new_figure(4.6 * ncols + 2.2, (4.6 if difference else 3.3) * nrows + 1.4)
    legend = {}
    for name, (main, below) in zip(layer_names, _panel_grid(fig, len(layer_names), ncols, difference)):
        for text, handle in _draw_layer(main, below, name, memory_sets, band, log_lag, log_mf).items():
            legend.setdefault(text, handle)
    sets = " / ".join(str(label) for label in memory_sets)
    capacity = f"Capacity in each panel's title ({sets}): MF summed over the lags shown, mean over channels."
    bands = "shading" if len(memory_sets) == 1 else "shading, outlines"
    heading = "lines: mean over channels" + (f"\n{bands}: {_band_text(band)}" if band else "")
    _legend(fig, list(legend.values()), list(legend.keys()), heading)
    _figure_text(fig, title, "\n".join(filter(None, [caption, capacity])))
    _save(fig, path)
    return fig
