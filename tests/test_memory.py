"""Tests of keras_ssm.memory: closed-form and empirical memory functions, layers, plots, CLI."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_ssm.memory import (
    MemoryFunction,
    discretize_eigenvalues,
    empirical_memory_function,
    find_ssm_layers,
    layer_memory_function,
    memory_accuracy,
    memory_capacity,
    memory_function,
    memory_length,
    model_memory_functions,
    plot_memory_comparison,
    plot_memory_functions,
)
from keras_ssm.memory.cli import main as cli_main
from keras_ssm.ops.init import initial_eigenvalues

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def discrete(init, n=32, dt=0.01, method="zoh", seed=0):
    return discretize_eigenvalues(initial_eigenvalues(init, n, seed=seed)[0], dt, method)


def real_block_matrix(eigenvalues, rng):
    """Non-normal real matrix with the given eigenvalues (complex ones as conjugate pairs)."""
    blocks = []
    for lam in eigenvalues:
        if lam.imag == 0:
            blocks.append(np.array([[lam.real]]))
        else:
            blocks.append(np.array([[lam.real, -lam.imag], [lam.imag, lam.real]]))
    size = sum(b.shape[0] for b in blocks)
    block_diagonal = np.zeros((size, size))
    i = 0
    for b in blocks:
        block_diagonal[i : i + b.shape[0], i : i + b.shape[0]] = b
        i += b.shape[0]
    similarity = rng.normal(size=(size, size)) + 2 * np.eye(size)
    return similarity @ block_diagonal @ np.linalg.inv(similarity)


# --------------------------------------------------------------------------- closed form


@pytest.mark.parametrize("init", ["inv", "lin", "real", "legs", "random"])
@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_capacity_equals_numerical_rank(init, method):
    mf = memory_function(discrete(init, method=method), horizon=1024)
    assert mf.values.shape == (1024,)
    assert np.all(mf.values >= 0) and np.all(mf.values <= 1 + 1e-12)
    assert mf.capacity == pytest.approx(mf.rank, abs=1e-9)
    assert mf.rank <= mf.state_dim <= 32
    if init == "lin":  # a_0 = -1/2 is real: one real state dimension, so MC <= 31
        assert mf.state_dim == 31 and mf.rank <= 31
    if init == "real":
        assert mf.state_dim == 16


def test_rank_cut_reports_ill_conditioning():
    # Eigenvalues 1e-9 apart are still resolved in float64, but the condition number warns.
    close = memory_function(np.array([0.95, 0.95 + 1e-9, 0.5]), horizon=256)
    assert close.rank == 3 and close.condition_number > 1e7
    # One float apart: numerically a single mode, cut from the rank.
    adjacent = memory_function(np.array([0.95, np.nextafter(0.95, 1.0), 0.5]), horizon=256)
    assert adjacent.rank == 2 and adjacent.condition_number > 1e13
    assert adjacent.capacity == pytest.approx(2.0, abs=1e-9)
    # A duplicated eigenvalue is exactly singular.
    duplicated = memory_function(np.array([0.9, 0.9]), horizon=64)
    assert duplicated.rank == 1 and duplicated.condition_number > 1e15


@pytest.mark.parametrize("lam", [0.3, 0.9, -0.7, 0.999])
def test_single_real_eigenvalue_infinite_horizon_closed_form(lam):
    horizon = 400
    mf = memory_function([lam], horizon=horizon, infinite_horizon=True)
    k = np.arange(horizon)
    np.testing.assert_allclose(mf.values, lam ** (2 * k) * (1 - lam**2), rtol=1e-10, atol=1e-15)
    assert mf.rank == 1 and mf.state_dim == 1
    assert mf.infinite_horizon
    # finite horizon: a single mode always has capacity exactly 1 over the horizon
    assert memory_function([lam], horizon=horizon).capacity == pytest.approx(1.0, abs=1e-12)


def test_infinite_horizon_is_the_long_finite_horizon_limit():
    lam = discrete("inv", n=16, dt=0.05)
    infinite = memory_function(lam, horizon=200, infinite_horizon=True)
    long_finite = memory_function(lam, horizon=8000)  # |lambda|^8000 ~ 1e-87
    np.testing.assert_allclose(infinite.values, long_finite.values[:200], atol=1e-9)
    assert infinite.rank == long_finite.rank == 16


def test_finite_window_rises_at_its_last_lags_and_the_time_average_does_not():
    """The edge effect the zoo's plots avoid by drawing the time-averaged (infinite-horizon) MF."""
    slow = np.exp(-np.array([0.002, 0.004]) + 1j * np.array([0.01, 0.3]))  # decay time >> the window
    finite = memory_function(slow, horizon=128).values
    stationary = memory_function(slow, horizon=128, infinite_horizon=True).values
    assert finite[-1] > 1.3 * finite[64]  # the window's edge: 0.034 vs 0.023
    assert np.all(np.diff(stationary[1:]) <= 1e-12)


def test_invariance_to_input_vector_scaling():
    lam = discrete("inv", n=16, dt=0.02)
    rng = np.random.default_rng(1)
    weights = rng.normal(size=lam.shape) * np.exp(1j * rng.uniform(0, 2 * np.pi, lam.shape)) * 1e3
    for infinite in (False, True):
        reference = memory_function(lam, horizon=300, infinite_horizon=infinite)
        scaled = memory_function(lam, input_vector=weights, horizon=300, infinite_horizon=infinite)
        np.testing.assert_allclose(scaled.values, reference.values, atol=1e-10)
    # dense path: scaling b by any nonzero factor
    matrix = real_block_matrix(discrete("lin", n=8, dt=0.1), rng)
    b = rng.normal(size=matrix.shape[0])
    base = memory_function(state_matrix=matrix, input_vector=b, horizon=200)
    for factor in (1e-4, -3.0, 250.0):
        other = memory_function(state_matrix=matrix, input_vector=factor * b, horizon=200)
        np.testing.assert_allclose(other.values, base.values, atol=1e-10)
    # a zero input weight makes a mode unreachable: it leaves the rank
    weights[0] = 0
    assert memory_function(lam, input_vector=weights, horizon=300).rank == 14


@pytest.mark.parametrize("infinite", [False, True])
def test_dense_real_nonnormal_matrix_matches_its_eigenvalues(infinite):
    rng = np.random.default_rng(0)
    # real eigenvalues
    eigenvalues = np.array([0.95, 0.8, 0.5, -0.3, -0.85, 0.1])
    matrix = real_block_matrix(eigenvalues.astype(complex), rng)
    assert np.linalg.norm(matrix @ matrix.T - matrix.T @ matrix) > 1e-3  # non-normal
    dense = memory_function(state_matrix=matrix, input_vector=rng.normal(size=6), horizon=300,
                            infinite_horizon=infinite)
    diagonal = memory_function(eigenvalues, horizon=300, infinite_horizon=infinite)
    np.testing.assert_allclose(dense.values, diagonal.values, atol=1e-8)
    assert dense.rank == diagonal.rank == 6
    # conjugate pairs: a real 9 x 9 matrix vs 5 stored eigenvalues (4 pairs + 1 real)
    stored = discrete("lin", n=10, dt=0.05)
    matrix = real_block_matrix(stored, rng)
    dense = memory_function(state_matrix=matrix, input_vector=rng.normal(size=9), horizon=300,
                            infinite_horizon=infinite)
    diagonal = memory_function(stored, horizon=300, infinite_horizon=infinite)
    assert dense.state_dim == diagonal.state_dim == 9
    np.testing.assert_allclose(dense.values, diagonal.values, atol=1e-8)
    # the full spectrum of the real matrix (both members of each pair) gives the same system
    spectrum = memory_function(np.linalg.eigvals(matrix), horizon=300, infinite_horizon=infinite,
                               full_spectrum=True)
    assert spectrum.state_dim == 9 and spectrum.rank == diagonal.rank
    np.testing.assert_allclose(spectrum.values, diagonal.values, atol=1e-8)


def test_dense_complex_state_matches_eigenvalues():
    rng = np.random.default_rng(2)
    lam = discrete("inv", n=12, dt=0.05)
    similarity = rng.normal(size=(6, 6)) + 1j * rng.normal(size=(6, 6))
    matrix = similarity @ np.diag(lam) @ np.linalg.inv(similarity)
    b = rng.normal(size=6) + 1j * rng.normal(size=6)
    for infinite in (False, True):
        dense = memory_function(state_matrix=matrix, input_vector=b, horizon=256, infinite_horizon=infinite)
        diagonal = memory_function(lam, horizon=256, infinite_horizon=infinite)
        assert dense.state_dim == 12
        np.testing.assert_allclose(dense.values, diagonal.values, atol=1e-8)


def test_channels_are_vectorised_and_chunked():
    dts = np.geomspace(1e-3, 1e-1, 70)  # more channels than one chunk
    lam = discretize_eigenvalues(initial_eigenvalues("lin", 8)[0][None, :], dts[:, None])
    batched = memory_function(lam.reshape(7, 10, 4), horizon=128)
    assert batched.values.shape == (7, 10, 128) and batched.rank.shape == (7, 10)
    for index in [(0, 0), (3, 7), (6, 9)]:
        single = memory_function(lam.reshape(7, 10, 4)[index], horizon=128)
        np.testing.assert_allclose(batched.values[index], single.values, atol=1e-12)
        assert batched.rank[index] == single.rank
    assert batched[3].values.shape == (10, 128)
    assert batched[3, 7].rank == batched.rank[3, 7]


def test_memory_length_and_accuracy_definitions():
    values = np.array([0.5, 0.25, 0.125, 0.125])
    assert memory_capacity(values) == 1.0
    assert memory_length(values, fraction=0.875) == 2
    assert memory_length(values, fraction=1.0) == 3
    assert memory_length(values, fraction=0.5) == 0
    assert memory_accuracy(values, fraction=0.875) == pytest.approx(0.875 / 3)
    stacked = np.stack([values, values[::-1]])
    np.testing.assert_array_equal(memory_length(stacked, 0.875), [2, 3])
    # the trade-off: slower eigenvalues -> longer memory, lower accuracy
    fast = memory_function(discrete("inv", dt=0.1), horizon=1024)
    slow = memory_function(discrete("inv", dt=0.01), horizon=1024)
    assert slow.memory_length() > fast.memory_length()
    assert slow.accuracy() < fast.accuracy()


# --------------------------------------------------------------------------- empirical


def test_closed_form_matches_empirical_estimate():
    lam = discrete("lin", n=8, dt=0.1)  # |lambda| = 0.95
    closed = memory_function(lam, horizon=61, infinite_horizon=True)
    estimate = empirical_memory_function(eigenvalues=lam, max_lag=60, num_steps=100_000, washout=300, seed=0)
    assert estimate.values.shape == (61,)
    assert np.max(np.abs(estimate.values - closed.values)) < 2e-2
    assert estimate.rank == 7  # the real mode has one real dimension
    # dense path with a non-normal real matrix
    rng = np.random.default_rng(3)
    matrix = real_block_matrix(lam, rng)
    b = rng.normal(size=7)
    closed = memory_function(state_matrix=matrix, input_vector=b, horizon=41, infinite_horizon=True)
    estimate = empirical_memory_function(state_matrix=matrix, input_vector=b, max_lag=40, num_steps=40_000,
                                         washout=300, distribution="gaussian")
    assert np.max(np.abs(estimate.values - closed.values)) < 2e-2


def test_empirical_memory_of_callables():
    def delay_line(x):  # features [u_t, u_{t-1}, u_{t-2}]
        shifted = [np.pad(x, ((0, 0), (d, 0), (0, 0)))[:, : x.shape[1]] for d in range(3)]
        return np.concatenate(shifted, axis=-1)

    mf = empirical_memory_function(delay_line, max_lag=6, num_steps=4000, num_sequences=2)
    np.testing.assert_allclose(mf.values[:3], 1.0, atol=1e-9)
    assert np.all(mf.values[3:] < 0.01)
    # a nonlinear memoryless map keeps lag 0 only (partially: tanh, and cubic readout loss)
    mf = empirical_memory_function(lambda x: np.tanh(3 * x) ** 3, max_lag=4, num_steps=4000)
    assert 0.3 < mf.values[0] < 1.0 and np.all(mf.values[1:] < 0.01)


def test_empirical_memory_of_a_keras_model_and_inner_layer():
    import keras

    import keras_ssm

    inputs = keras.Input((128, 2))
    x = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, seed=0, name="inner_s4d"), name="block0")(inputs)
    x = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, seed=1), name="block1")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    mf = empirical_memory_function(model, max_lag=10, num_sequences=8, washout=20, seed=0)
    assert mf.values.shape == (11,) and mf.state_dim == 3
    assert np.all((mf.values >= 0) & (mf.values <= 1))
    assert mf.values[0] > 0.5  # the residual path keeps u_t readable
    inner = empirical_memory_function(model, layer="block0", max_lag=10, num_sequences=8, washout=20)
    assert inner.state_dim == 2


# --------------------------------------------------------------------------- layers and models


def _built(layer, features=3, length=16):
    layer(np.zeros((1, length, features), dtype="float32"))
    return layer


@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_memory_function_matches_its_discrete_eigenvalues(bidirectional):
    import keras_ssm

    layer = _built(keras_ssm.S4D(n=16, init="inv", bidirectional=bidirectional, seed=0), features=5)
    mf = layer_memory_function(layer, horizon=512)
    assert mf.values.shape == (5, 512)
    reference = memory_function(layer.discrete_eigenvalues(), horizon=512)
    np.testing.assert_allclose(mf.values, reference.values, atol=1e-12)
    np.testing.assert_array_equal(mf.rank, reference.rank)
    np.testing.assert_allclose(mf.capacity, mf.rank, atol=1e-9)
    infinite = layer_memory_function(layer, horizon=64, infinite_horizon=True)
    assert infinite.values.shape == (5, 64) and infinite.infinite_horizon


def test_s4_layer_memory_equals_diagonal_system_with_its_eigenvalues():
    import keras_ssm

    s4_class = keras_ssm.S4
    # N = 8: eigenvalues of the non-normal HiPPO-LegS matrix are still accurate in float64
    for init in ("legs", "inv"):
        layer = _built(s4_class(n=8, init=init, seed=0), features=3)
        assert not layer.is_diagonal
        mf = layer_memory_function(layer, horizon=256)
        assert mf.values.shape == (3, 256)
        reference = memory_function(layer.discrete_eigenvalues(), horizon=256, full_spectrum=True)
        np.testing.assert_array_equal(reference.state_dim, 8)
        np.testing.assert_array_equal(mf.rank, reference.rank)
        np.testing.assert_allclose(mf.values, reference.values, atol=1e-6)


def test_model_memory_functions_finds_nested_layers():
    import keras

    import keras_ssm

    inner = keras.Sequential([keras.Input((None, 4)), keras_ssm.S4D(n=8, name="deep_s4d")], name="inner")
    inputs = keras.Input((None, 4))
    x = keras_ssm.SSMBlock(keras_ssm.S4D(n=8, name="s4d_a"), name="block")(inputs)
    x = inner(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    layers = find_ssm_layers(model)
    assert set(layers) == {"block/s4d_a", "inner/deep_s4d"}
    mfs = model_memory_functions(model, horizon=100)
    assert set(mfs) == set(layers)
    for mf in mfs.values():
        assert isinstance(mf, MemoryFunction) and mf.values.shape == (4, 100)
    with pytest.raises(ValueError, match="no S4/S4D layer"):
        model_memory_functions(keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(2)]))


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="eigenvalues.*< 1"):
        memory_function([0.5, 1.0], horizon=10, infinite_horizon=True)
    with pytest.raises(ValueError, match="eigenvalues.*< 1"):
        memory_function([0.5, 0.3 + 1.0j], horizon=10, infinite_horizon=True)
    with pytest.raises(ValueError, match="state_matrix.*< 1"):
        memory_function(state_matrix=np.diag([0.5, 1.2]), input_vector=np.ones(2), horizon=10,
                        infinite_horizon=True)
    memory_function([0.5, 1.0], horizon=10)  # finite horizon: |lambda| >= 1 is allowed
    for horizon in (0, -5, 2.5, True, "10"):
        with pytest.raises(ValueError, match="horizon"):
            memory_function([0.5], horizon=horizon)
    with pytest.raises(ValueError, match="state_matrix.*square"):
        memory_function(state_matrix=np.zeros((3, 2)), input_vector=np.ones(2))
    with pytest.raises(ValueError, match="input_vector"):
        memory_function(state_matrix=np.eye(3) * 0.5, input_vector=np.ones(2))
    with pytest.raises(ValueError, match="input_vector"):
        memory_function(state_matrix=np.eye(3) * 0.5)
    with pytest.raises(ValueError, match="input_vector"):
        memory_function(np.full((2, 4), 0.5), input_vector=np.ones((3, 4)))
    with pytest.raises(ValueError, match="eigenvalues"):
        memory_function(np.array([]), horizon=4)
    with pytest.raises(ValueError, match="eigenvalues"):
        memory_function([0.5, np.nan], horizon=4)
    with pytest.raises(ValueError, match="exactly one"):
        memory_function([0.5], state_matrix=np.eye(1) * 0.5, input_vector=np.ones(1))
    with pytest.raises(ValueError, match="exactly one"):
        memory_function(horizon=4)
    with pytest.raises(ValueError, match="full_spectrum"):
        memory_function([0.5 + 0.1j, 0.5 - 0.1j, 0.2 + 0.1j], full_spectrum=True)
    with pytest.raises(ValueError, match="fraction"):
        memory_length(np.ones(4), fraction=0.0)
    with pytest.raises(ValueError, match="method"):
        discretize_eigenvalues([-1.0], 0.1, "euler")
    with pytest.raises(ValueError, match="max_lag"):
        empirical_memory_function(eigenvalues=[0.5], max_lag=-1)
    with pytest.raises(ValueError, match="distribution"):
        empirical_memory_function(eigenvalues=[0.5], distribution="cauchy")
    with pytest.raises(ValueError, match="layer must be an S4/S4D layer"):
        layer_memory_function(object())
    with pytest.raises(ValueError, match="band"):
        plot_memory_functions(np.ones(4), band=(0.9, 0.1))


# --------------------------------------------------------------------------- plots and CLI


def test_plots_write_png_and_pdf(tmp_path):
    sets = {name: memory_function(discrete(name, n=16), horizon=256) for name in ("inv", "lin")}
    png = tmp_path / "mf.png"
    fig = plot_memory_functions(sets, png, log_lag=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    before = {"a/s4d": memory_function(discrete("inv", n=16)[None].repeat(4, 0), horizon=128),
              "b/s4d": memory_function(discrete("lin", n=16)[None].repeat(4, 0), horizon=128)}
    after = {"a/s4d": memory_function(discrete("inv", n=16, dt=0.05)[None].repeat(4, 0), horizon=128)}
    pdf = tmp_path / "sub" / "comparison.pdf"
    fig = plot_memory_comparison({"initial": before, "trained": after}, pdf, log_lag=False)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert len(visible[0].lines) == 2 and len(visible[1].lines) == 1


def test_cli_prints_table_and_writes_figure(tmp_path, capsys):
    out = tmp_path / "mf.png"
    assert cli_main(["--inits", "lin", "real", "--n", "16", "--horizon", "256", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
    assert lines["lin"][1:3] == ["15", "15"]  # state dim and rank
    assert float(lines["lin"][3]) == pytest.approx(15.0, abs=1e-3)
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--inits", "bogus"])
    assert exit_info.value.code == 2


def _run_python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_cli_does_not_import_keras(tmp_path):
    out = tmp_path / "mf.png"
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['m', '--inits', 'lin', '--n', '4', '--horizon', '16', '--out', {str(out)!r}]\n"
        "try:\n    runpy.run_module('keras_ssm.memory', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('KERAS_LOADED', 'keras' in sys.modules)"
    )
    output = _run_python(code)
    assert "lin" in output and out.exists()
    assert "KERAS_LOADED False" in output


def test_memory_cli_takes_discrete_families_and_eigenvalue_files(tmp_path, capsys):
    import numpy as np

    from keras_ssm.memory.cli import main

    path = tmp_path / "eig.npy"
    np.save(path, -0.5 + 1j * np.arange(4.0))
    out = tmp_path / "mf.png"
    assert main(["--inits", "inv", "linear_magnitudes:rho=0.9", "unity_rings:rho=0.9,p=2", str(path), "--n", "8",
                 "--horizon", "64", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    # linear_magnitudes: 4 real eigenvalues, so 4 real dimensions; the rings hold one real mode per ring.
    line = next(row for row in table.splitlines() if row.startswith("linear_magnitudes"))
    assert line.split()[1:3] == ["4", "4"]
    assert out.exists()
    with pytest.raises(SystemExit):
        main(["--inits", "unity_rings:rho=1.5", "--out", str(out)])


def test_memory_comparison_plot_tells_sets_apart_and_names_the_band(tmp_path):
    pytest.importorskip("matplotlib")
    from keras_ssm.memory import memory_function, plot_memory_comparison

    lam = 0.97 * np.exp(1j * np.linspace(0, 1, 8))[None].repeat(4, 0) * np.linspace(0.9, 1, 4)[:, None]
    sets = {"initial": {"ssm0": memory_function(lam, horizon=64)},
            "trained": {"ssm0": memory_function(0.99 * lam, horizon=64)}}
    fig = plot_memory_comparison(sets, tmp_path / "mf.png")
    (ax,) = [a for a in fig.axes if a.get_visible() and a.get_label() != "difference"]
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--"]
    labels = ax.get_legend_handles_labels()[1]
    assert "initial: 10-90% of channels" in labels and "trained: 10-90% of channels" in labels
    fig.canvas.draw()
    (difference,) = [a for a in fig.axes if a.get_label() == "difference"]
    shown = [t.get_text() for t in difference.get_xticklabels() if t.get_text()]
    plain = [re.sub(r"^\\mathdefault\{(.*)\}$", r"\1", text.strip("$")) for text in shown]
    assert plain[:2] == ["0", "1"], shown  # lag 0 named at the axis' left edge, plain numbers beyond


def test_memory_summary_takes_a_memory_function_or_its_values_and_names_anything_else():
    from keras_ssm.memory import memory_function, memory_summary

    mf = memory_function(np.array([[0.9, 0.5j]]), horizon=32)
    from_values = memory_summary(mf.values)
    assert {k: memory_summary(mf)[k] for k in from_values} == from_values
    assert set(memory_summary(mf)) - set(from_values) == {"rank", "state_dim", "condition_number"}
    for bad in ("abc", {"a": 1}, None, np.zeros((2, 0))):
        with pytest.raises(ValueError, match="MemoryFunction or an array"):
            memory_summary(bad)


def test_cli_tabulates_and_draws_the_layers_of_a_saved_model(tmp_path, capsys):
    import keras

    import keras_ssm

    inputs = keras.Input((32, 4))
    model = keras.Model(inputs, keras_ssm.S4(n=8, seed=1, name="second")(keras_ssm.S4D(n=8, seed=0, name="first")(inputs)))
    model.save(tmp_path / "m.keras")
    out = tmp_path / "mf.png"
    assert cli_main(["--model", str(tmp_path / "m.keras"), "--horizon", "64", "--out", str(out)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    expected = model_memory_functions(model, horizon=64)
    for name in ("first", "second"):
        assert float(rows[name][3]) == pytest.approx(np.mean(expected[name].capacity), abs=1e-3)
    assert out.read_bytes()[:4] == b"\x89PNG"
    for argv, message in ((["--model", str(tmp_path / "missing.keras")], "cannot load it"),
                          (["--model", str(tmp_path / "m.keras"), "--inits", "inv"], "not allowed with")):
        with pytest.raises(SystemExit) as exit_info:
            cli_main([*argv, "--out", str(out)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    plain = keras.Sequential([keras.Input((8, 2)), keras.layers.Dense(3)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(SystemExit):
        cli_main(["--model", str(tmp_path / "plain.keras"), "--out", str(out)])
    assert "contains no S4/S4D layer" in capsys.readouterr().err
