"""The figures read without the code: one-line titles in words, legends outside the data, curves that coincide
kept apart, lag 0 shown, sweep legend markers as plotted, points clear of the frame."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402

from keras_ssm.memory import memory_function, plot_memory_comparison, plot_memory_functions  # noqa: E402
from keras_ssm.memory.cli import main as memory_cli  # noqa: E402

LAYERS = ("block0/ssm0", "block1/ssm1")


def _eigenvalues(channels=6, modes=8, shrink=1.0):
    radius = np.linspace(0.80, 0.98, modes)[None] * np.linspace(0.97, 1.0, channels)[:, None]
    return shrink * radius * np.exp(1j * np.linspace(0.1, 1.5, modes))[None]


def _before_after(shrink=0.999):
    """Memory sets whose trained curves coincide with the initial ones (as after a short training run)."""
    before = {name: memory_function(_eigenvalues(), horizon=48) for name in LAYERS}
    after = {name: memory_function(_eigenvalues(shrink=shrink), horizon=48) for name in LAYERS}
    return {"initial": before, "trained": after}


def _drawn(fig):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _overlaps(box, other) -> bool:
    return box.x0 < other.x1 and other.x0 < box.x1 and box.y0 < other.y1 and other.y0 < box.y1


def _legends(fig):
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def _assert_legends_outside(fig):
    _drawn(fig)
    legends = _legends(fig)
    assert legends
    for legend in legends:
        box = legend.get_window_extent()
        for ax in _data_axes(fig):
            assert not _overlaps(box, ax.get_window_extent()), (legend.get_texts()[0].get_text(), ax.get_title())


def _shown_tick_labels(ax):
    return [t.get_text().strip("$").replace("\\mathdefault{", "").rstrip("}") for t in ax.get_xticklabels()
            if t.get_text()]


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures saved while the test runs (through ``Figure.savefig``), in order."""
    figures, save = [], Figure.savefig

    def record(fig, *args, **kwargs):
        figures.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


# --------------------------------------------------------------------------- memory comparison (zoo runs)


def test_comparison_titles_are_one_line():
    fig = plot_memory_comparison(_before_after(), title="Memory of each SSM layer before and after training")
    assert "\n" not in fig.get_suptitle()
    for ax in _data_axes(fig):
        assert "\n" not in ax.get_title(), ax.get_title()


def test_comparison_caption_holds_the_details():
    fig = plot_memory_comparison(_before_after(), title="Memory before and after training",
                                 caption="Lags 0-47: the sequence length.")
    caption = fig.get_supxlabel()
    assert "Lags 0-47" in caption and "capacity" in caption.lower()


def test_coinciding_curves_get_a_difference_panel_and_distinct_styles():
    fig = plot_memory_comparison(_before_after())
    differences = [ax for ax in _data_axes(fig) if ax.get_label() == "difference"]
    assert len(differences) == len(LAYERS)
    assert all("trained" in ax.get_ylabel() and "initial" in ax.get_ylabel() for ax in differences)
    main = [ax for ax in _data_axes(fig) if ax.get_label() != "difference"]
    for ax in main:
        assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--"]


def test_coinciding_bands_stay_visible():
    """The first set's band is shaded, the next one's only outlined: both show where they overlap."""
    fig = plot_memory_comparison(_before_after())
    ax = next(ax for ax in _data_axes(fig) if ax.get_label() != "difference")
    shaded, outlined = ax.collections[:2]
    assert shaded.get_facecolor()[0][3] > 0
    assert outlined.get_facecolor().size == 0 or outlined.get_facecolor()[0][3] == 0
    assert outlined.get_edgecolor()[0][3] > 0 and outlined.get_linewidth()[0] > 0


def test_distinct_curves_need_no_difference_panel():
    sets = _before_after(shrink=0.85)
    fig = plot_memory_comparison(sets)
    assert not any(ax.get_label() == "difference" for ax in fig.axes)
    assert any(ax.get_label() == "difference" for ax in plot_memory_comparison(sets, difference=True).axes)


def test_comparison_legend_is_outside_every_panel():
    _assert_legends_outside(plot_memory_comparison(_before_after()))


def test_lag_axis_starts_at_lag_zero_labelled():
    fig = _drawn(plot_memory_comparison(_before_after()))
    for ax in _data_axes(fig):
        assert ax.get_xlim()[0] == 0
        assert ax.get_xscale() != "log"
    labelled = [labels for labels in map(_shown_tick_labels, _data_axes(fig)) if labels]
    assert labelled
    for labels in labelled:
        assert labels[:3] == ["0", "1", "10"], labels


# --------------------------------------------------------------------------- memory CLI figure


def test_cli_figure_legend_is_outside_and_says_things_once(tmp_path, saved_figures):
    assert memory_cli(["--inits", "inv", "lin", "real", "--n", "8", "--horizon", "64",
                       "--out", str(tmp_path / "mf.png")]) == 0
    (fig,) = saved_figures
    _assert_legends_outside(fig)
    labels = [text.get_text() for legend in _legends(fig) for text in legend.get_texts()]
    assert len(labels) == 3
    assert not any("mean over channels" in label for label in labels), labels
    assert "\n" not in fig.get_suptitle() and "MF(k)" in fig.get_supxlabel()


def test_channel_curves_name_the_mean_and_band_once():
    curves = {"inv": memory_function(_eigenvalues(), horizon=32),
              "lin": memory_function(_eigenvalues(shrink=0.9), horizon=32)}
    fig = plot_memory_functions(curves, title="Memory of two sets")
    (legend,) = _legends(fig)
    texts = [legend.get_title().get_text()] + [t.get_text() for t in legend.get_texts()]
    assert sum(text.count("mean over channels") for text in texts) == 1
    assert sum(text.count("10-90% of channels") for text in texts) == 1
    _assert_legends_outside(fig)


# --------------------------------------------------------------------------- sweep plot


def _sweep_rows():
    from tuning.report import TrialRow

    rows = []
    trials = [("inv", True, 1e-4, 0.98), ("lin", False, 3e-3, 0.62), ("legs", True, 0.05, 0.99), ("lin", True, 0.1, 0.3)]
    for index, (init, learned, dt_min, accuracy) in enumerate(trials):
        rows.append(TrialRow(f"{index:02d}", "COMPLETED",
                             {"dt_min": dt_min, "dt_max": 10 * dt_min, "init": init, "trainable_eigenvalues": learned,
                              "lr": 1e-3},
                             {"val_accuracy": accuracy},
                             {"memory_capacity": 8.0 + index, "memory_length": 40.0 + 7 * index,
                              "memory_accuracy": 0.3},
                             5, None))
    return rows


def _sweep_figure(tmp_path, saved_figures):
    from tuning.report import plot_sweep

    assert plot_sweep(_sweep_rows(), tmp_path / "results.png", title="sweep", majority_rate=0.1)
    return _drawn(saved_figures[-1])


def _marker_of(collection):
    """The marker name whose path a scatter plot's collection draws."""
    vertices = collection.get_paths()[0].vertices
    for name in ("o", "^", "s", "v", "D", "x", "+"):
        style = MarkerStyle(name)
        path = style.get_path().transformed(style.get_transform())
        if path.vertices.shape == vertices.shape and np.allclose(path.vertices, vertices):
            return name
    return "?"


def _plotted_markers(ax) -> set:
    lines = {line.get_marker() for line in ax.get_lines() if line.get_marker() not in (None, "None", "", " ")}
    return lines | {_marker_of(c) for c in ax.collections if isinstance(c, PathCollection)}


def _plotted_points(ax):
    """(x, y) data of every marker in ``ax`` with its size in points."""
    for line in ax.get_lines():
        if line.get_marker() not in (None, "None", "", " "):
            for point in zip(line.get_xdata(), line.get_ydata()):
                yield point, line.get_markersize()
    for collection in ax.collections:
        if isinstance(collection, PathCollection):
            for point, size in zip(collection.get_offsets(), np.broadcast_to(collection.get_sizes(),
                                                                               len(collection.get_offsets()))):
                yield tuple(point), np.sqrt(size)


def test_sweep_legend_markers_are_the_plotted_ones(tmp_path, saved_figures):
    fig = _sweep_figure(tmp_path, saved_figures)
    plotted = set().union(*(_plotted_markers(ax) for ax in fig.axes))
    (legend,) = fig.legends
    shown = {line.get_marker() for line in legend.findobj(Line2D)
             if line.get_marker() not in (None, "None", "", " ")}
    assert shown == plotted


def test_sweep_points_clear_the_frame(tmp_path, saved_figures):
    """Every marker, the ring of the best trial included, keeps at least its radius between its edge and
    the frame."""
    fig = _sweep_figure(tmp_path, saved_figures)
    pixels_per_point = fig.dpi / 72
    for ax in fig.axes:
        frame = ax.get_window_extent()
        for point, size in _plotted_points(ax):
            x, y = ax.transData.transform(point)
            gap = min(x - frame.x0, frame.x1 - x, y - frame.y0, frame.y1 - y)
            assert gap >= size * pixels_per_point, (ax.get_xlabel(), point, gap, size)


def test_sweep_legend_is_outside_every_panel(tmp_path, saved_figures):
    _assert_legends_outside(_sweep_figure(tmp_path, saved_figures))


def test_sweep_legend_names_the_best_trial_as_the_console_does(tmp_path, saved_figures):
    from tuning.report import ranked

    best = ranked([r for r in _sweep_rows() if r.completed])[0]
    (legend,) = _sweep_figure(tmp_path, saved_figures).legends
    texts = [text.get_text() for text in legend.get_texts()]
    assert f"best (Trial #{int(best.trial_id) + 1})" in texts, texts
