"""Tests of keras_ssm.memory.design_eigenvalues and of the analytic MF gradient it uses."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_ssm
from keras_ssm.memory import (
    EigenvalueDesign,
    design_eigenvalues,
    discretize_eigenvalues,
    memory_function,
    memory_function_gradient,
)
from keras_ssm.memory.cli import main as cli_main
from keras_ssm.ops.init import initial_eigenvalues

N, T = 16, 256
# dt grid over which each HiPPO init gets its best (largest) smallest MF up to T.
DT_GRID = np.geomspace(1e-4, 1.0, 25)


def random_pairs(rng, m, low=0.5, high=0.98):
    """m stable non-real eigenvalues (one per conjugate pair)."""
    return rng.uniform(low, high, m) * np.exp(1j * rng.uniform(0.05, np.pi - 0.05, m))


def best_hippo_min_mf(init, n, horizon):
    """Largest smallest finite-horizon MF over lags 0..horizon-1 that ``init`` reaches on DT_GRID."""
    continuous = initial_eigenvalues(init, n)[0]
    return max(memory_function(discretize_eigenvalues(continuous, dt), horizon=horizon).values.min()
               for dt in DT_GRID)


@pytest.fixture(scope="module")
def flat():
    return design_eigenvalues(N, T)


# --------------------------------------------------------------------------- closed-form gradient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_function_values_equal_memory_function(seed):
    rng = np.random.default_rng(seed)
    lam = random_pairs(rng, 5)
    values, grad = memory_function_gradient(lam, 300)
    assert grad is None
    reference = memory_function(lam, horizon=300, infinite_horizon=True).values
    np.testing.assert_allclose(values, reference, rtol=1e-9, atol=1e-12)
    lags = np.array([299, 0, 17, 17, 150])
    subset, _ = memory_function_gradient(lam, lags=lags)
    np.testing.assert_allclose(subset, reference[lags], rtol=1e-9, atol=1e-12)


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(3)
    lam = random_pairs(rng, 4, 0.8, 0.97)
    weights = rng.uniform(-1.0, 1.0, 80)
    _, grad = memory_function_gradient(lam, 80, weights)

    def f(x):
        return weights @ memory_function_gradient(x, 80)[0]

    eps = 1e-6
    for i in range(lam.shape[0]):
        step = np.zeros(lam.shape, complex)
        step[i] = eps
        d_real = (f(lam + step) - f(lam - step)) / (2 * eps)
        d_imag = (f(lam + 1j * step) - f(lam - 1j * step)) / (2 * eps)
        assert grad[i].real == pytest.approx(d_real, rel=1e-5, abs=1e-8)
        assert grad[i].imag == pytest.approx(d_imag, rel=1e-5, abs=1e-8)


def test_stationary_memory_function_is_nonincreasing():
    # The fact the design docstring relies on: G >= A G A^T gives MF(k + 1) <= MF(k).
    rng = np.random.default_rng(4)
    for _ in range(5):
        values = memory_function(random_pairs(rng, 6, 0.3, 0.995), horizon=400, infinite_horizon=True).values
        assert np.all(np.diff(values) <= 1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eigenvalues": [0.5 + 0j, 0.3 + 0.2j], "horizon": 10}, "non-real"),
        ({"eigenvalues": [1.01 * np.exp(0.3j)], "horizon": 10}, r"\|lambda\| < 1"),
        ({"eigenvalues": [0.5j], "horizon": 10, "weights": np.ones(9)}, "weights"),
        ({"eigenvalues": [0.5j], "horizon": 10, "lags": [1, 2]}, "exactly one"),
        ({"eigenvalues": [0.5j], "lags": [1, -2]}, "lags"),
        ({"eigenvalues": [0.5j], "horizon": 10, "ridge": -1.0}, "ridge"),
        ({"eigenvalues": [0.5j, 0.5j], "horizon": 10}, "positive definite"),
    ],
)
def test_gradient_function_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memory_function_gradient(**kwargs)


# --------------------------------------------------------------------------- flat design


def test_flat_design_is_stable_and_conjugate_closed(flat):
    assert isinstance(flat, EigenvalueDesign)
    lam = flat.eigenvalues
    assert lam.shape == (N // 2,) and lam.dtype == np.complex128
    assert np.all(np.abs(lam) < 1)
    assert np.all(np.angle(lam) > 0) and np.all(np.angle(lam) < np.pi)  # one member of each pair
    # The full spectrum, both members of each pair, is closed under conjugation and gives the
    # same memory as the stored half.
    spectrum = np.concatenate([lam, lam.conj()])
    np.testing.assert_allclose(np.sort_complex(spectrum), np.sort_complex(spectrum.conj()), atol=0)
    full = memory_function(spectrum, horizon=T, full_spectrum=True)
    np.testing.assert_allclose(full.values, flat.finite_memory.values, atol=1e-10)
    assert int(flat.memory.rank) == N and int(flat.finite_memory.rank) == N


def test_flat_design_beats_every_hippo_init_at_every_lag(flat):
    # The designed (infinite-horizon) MF at every lag < T is at least the best smallest MF
    # that S4D-Inv, S4D-Lin and S4D-LegS reach over the same lags at any dt of DT_GRID, and at
    # the README figure's dt = 0.01.
    designed = flat.memory.values
    for init in ("inv", "lin", "legs"):
        best = best_hippo_min_mf(init, N, T)
        readme = memory_function(discretize_eigenvalues(initial_eigenvalues(init, N)[0], 0.01), horizon=T).values
        assert np.all(designed >= best), (init, designed.min(), best)
        assert designed.min() >= readme.min()
    assert flat.scale == pytest.approx(designed.min())
    assert flat.bound == pytest.approx(N / T) and flat.flat_bound == pytest.approx(N / T)
    assert 0.8 < flat.match <= 1.0


def test_design_is_a_lower_bound_on_the_finite_horizon_curve(flat):
    assert np.all(flat.finite_memory.values >= flat.memory.values - 1e-12)
    assert flat.memory.infinite_horizon and not flat.finite_memory.infinite_horizon
    summary = flat.summary()
    assert summary["min_memory"] == pytest.approx(flat.min_memory)
    assert 0 <= summary["length"] < T and summary["capacity"] <= N + 1e-9


def test_design_is_deterministic_for_a_seed(flat):
    again = design_eigenvalues(N, T, seed=0)
    assert np.array_equal(again.eigenvalues, flat.eigenvalues)
    other = design_eigenvalues(N, T, seed=1)
    assert not np.array_equal(other.eigenvalues, flat.eigenvalues)
    assert other.scale == pytest.approx(flat.scale, rel=0.05)


def test_short_horizons_reach_perfect_memory():
    one = design_eigenvalues(2, 1)
    assert one.scale == pytest.approx(1.0, abs=1e-6) and one.bound == 1.0
    full = design_eigenvalues(8, 8)
    assert full.match == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------- target profiles


@pytest.mark.parametrize("shape", ["one-hot", "bump"])
def test_target_on_one_lag_puts_the_most_memory_there(flat, shape):
    lags = np.arange(T)

    def target(center):
        if shape == "one-hot":
            return (lags == center).astype(float)
        return np.exp(-0.5 * ((lags - center) / 4.0) ** 2)

    center = 100
    designs = {c: design_eigenvalues(N, T, target=target(c)) for c in (50, center, 200)}
    at_center = {c: d.memory.values[center] for c, d in designs.items()}
    # Of all these sets, the one designed for lag 100 has the largest MF at lag 100, more than
    # twice the flat design's; the curve itself is nonincreasing, so it cannot peak there.
    assert at_center[center] > max(at_center[50], at_center[200], flat.memory.values[center])
    assert at_center[center] > 2 * flat.memory.values[center]
    for init in ("inv", "lin", "legs"):
        continuous = initial_eigenvalues(init, N)[0]
        best = max(memory_function(discretize_eigenvalues(continuous, dt), horizon=T, infinite_horizon=True)
                   .values[center] for dt in DT_GRID)
        assert at_center[center] > best, init
    design = designs[center]
    assert design.target is not None and design.target.max() == 1.0
    assert design.scale <= design.bound
    if shape == "one-hot":  # envelope bound: MF(k) >= MF(100) for the 101 lags k <= 100
        assert design.bound == pytest.approx(N / (center + 1))
        assert design.scale == pytest.approx(at_center[center])


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((3, 64), {}, "n"),
        ((1, 64), {}, "n"),
        ((0, 64), {}, "n"),
        ((16.0, 64), {}, "n"),
        ((True, 64), {}, "n"),
        ((16, 0), {}, "horizon"),
        ((16, -5), {}, "horizon"),
        ((16, 64.0), {}, "horizon"),
        ((16, 64), {"target": np.ones(63)}, "length horizon = 64"),
        ((16, 64), {"target": np.ones((2, 64))}, "1-D"),
        ((16, 64), {"target": -np.ones(64)}, "nonnegative"),
        ((16, 64), {"target": np.zeros(64)}, "all zero"),
        ((16, 64), {"target": np.full(64, np.nan)}, "finite"),
        ((16, 64), {"target": np.full(64, np.inf)}, "finite"),
        ((16, 64), {"target": np.ones(64) + 1j}, "real"),
        ((16, 64), {"target": ["a"] * 64}, "target"),
        ((16, 64), {"seed": -1}, "seed"),
        ((16, 64), {"sharpness": 0.5}, "sharpness"),
        ((16, 64), {"max_magnitude": 1.0}, "max_magnitude"),
        ((16, 64), {"max_iterations": 0}, "max_iterations"),
    ],
)
def test_bad_arguments_are_clear_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        design_eigenvalues(*args, **kwargs)


# --------------------------------------------------------------------------- exports and CLI


def test_cli_with_memory_does_not_import_keras(tmp_path):
    out = tmp_path / "mf.png"
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['m', '--inits', 'memory', '--n', '4', '--horizon', '16', '--out', {str(out)!r}]\n"
        "try:\n    runpy.run_module('keras_ssm.memory', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('keras', 'jax', 'tensorflow', 'torch') if m in sys.modules))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    output = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            check=True).stdout
    assert "memory" in output and out.exists()
    assert "LOADED []" in output


def test_exported_at_top_level():
    assert keras_ssm.design_eigenvalues is design_eigenvalues
    assert keras_ssm.EigenvalueDesign is EigenvalueDesign


def test_cli_accepts_memory_beside_hippo_inits(tmp_path, capsys):
    out = tmp_path / "mf.png"
    assert cli_main(["--inits", "inv", "memory", "--n", "8", "--horizon", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
    assert rows["memory"][1:3] == ["8", "8"]  # state dim and rank
    assert float(rows["memory"][3]) == pytest.approx(8.0, abs=1e-3)
    assert "designed for the flattest memory up to lag 63" in printed
    assert out.read_bytes()[:4] == b"\x89PNG"
    # The CLI's curve is the design's finite-horizon curve.
    design = design_eigenvalues(8, 64)
    assert float(rows["memory"][3]) == pytest.approx(float(design.finite_memory.capacity), abs=1e-3)
