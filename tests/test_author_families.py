"""The first author's eigenvalue families as written in jingchuan0guan/ML_application
(``s4/src/models/sequence/ss/standalone/s4d.py``, ``A_eigvals``): "linear" and "conjugate_linear",
continuous log-eigenvalues scaled by each channel's dt. Checked against a direct numpy transcription of that
function (its loops and lists, not our vectorised form)."""

import math

import numpy as np
import pytest

import keras_ssm
from keras_ssm.ops.init import (
    AUTHOR_INITS,
    check_eigenvalue_init,
    check_init_string,
    guan_conjugate_linear,
    guan_linear,
    resolve_eigenvalue_init,
)

RHO = math.exp(-1 / 2)  # the source's default


def transcribed_a_eigvals(N, rho=RHO, eigvals_name="conjugate_linear", n_conjugate=2):
    """``A_eigvals`` of the source with an ``imag_scaling`` outside its three names (which would replace
    ``w`` by the standard S4D init), in numpy complex128."""
    def roots_of_unity(n):
        theta = 2 * np.pi * np.arange(n) / n
        return np.cos(theta) + 1j * np.sin(theta)

    n = N // 2
    if eigvals_name == "linear":
        w = np.arange(1, n + 1) / n
    else:
        q = n % n_conjugate
        if q > 0:
            p = 1 + n // n_conjugate
            w = [roots_of_unity(n_conjugate) * i / p for i in range(2, p + 1)]
            w.extend([roots_of_unity(q)])
        else:
            p = n // n_conjugate
            w = [roots_of_unity(n_conjugate) * i / p for i in range(1, p + 1)]
        w = np.concatenate(w).astype(np.complex128)
    return np.log(rho * w + 0j)


@pytest.mark.parametrize("n", [2, 8, 16, 64])
@pytest.mark.parametrize("rho", [RHO, 0.9])
def test_guan_linear_is_the_source_formula(n, rho):
    np.testing.assert_allclose(guan_linear(n, rho), transcribed_a_eigvals(n, rho, "linear"), rtol=0, atol=1e-14)


@pytest.mark.parametrize("n, n_conjugate", [(8, 2), (64, 2), (64, 4), (16, 3), (30, 4), (64, 1), (12, 6)])
def test_guan_conjugate_linear_is_the_source_formula(n, n_conjugate):
    ours = guan_conjugate_linear(n, RHO, n_conjugate)
    expected = transcribed_a_eigvals(n, RHO, "conjugate_linear", n_conjugate)
    assert ours.shape == (n // 2,)
    # the same log-magnitudes; the angles agree up to the branch of log at -1 (+pi or -pi: the same mode)
    np.testing.assert_allclose(ours.real, expected.real, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.exp(1j * ours.imag), np.exp(1j * expected.imag), rtol=0, atol=1e-14)


def test_default_conjugate_linear_rings_and_modes():
    """N = 16, m = 2: p = 4 rings of radii rho i/4, each a real mode and a mode at the Nyquist angle."""
    a = guan_conjugate_linear(16)
    radii = RHO * np.arange(1, 5) / 4
    np.testing.assert_allclose(np.exp(a.real), np.repeat(radii, 2), rtol=1e-14)
    np.testing.assert_allclose(np.abs(a.imag), np.tile([0.0, np.pi], 4), atol=1e-14)
    # n_conjugate = 1 is the linear family
    np.testing.assert_allclose(guan_conjugate_linear(16, n_conjugate=1), guan_linear(16), atol=1e-14)


@pytest.mark.parametrize("layer_cls", [keras_ssm.S4D, keras_ssm.S4])
def test_layers_scale_the_families_by_their_dt(layer_cls):
    layer = layer_cls(n=8, init="guan_conjugate_linear:n_conjugate=2", dt_min=1e-3, dt_max=1e-1, seed=0)
    layer(np.zeros((1, 16, 3), "float32"))
    assert layer.get_config()["init"] == "guan_conjugate_linear:n_conjugate=2"
    expected = np.tile(guan_conjugate_linear(8)[None], (3, 1))
    a = layer.continuous_eigenvalues()
    np.testing.assert_allclose(a.real, expected.real, rtol=1e-6)
    np.testing.assert_allclose(np.abs(a.imag), np.abs(expected.imag), rtol=1e-6)
    if layer_cls is keras_ssm.S4D:
        dt = np.exp(np.asarray(layer.log_dt)).reshape(-1, 1)
        assert np.all((1e-3 <= dt) & (dt <= 1e-1))
        np.testing.assert_allclose(layer.discrete_eigenvalues(), np.exp(dt * a), rtol=1e-5)  # ZOH


def test_names_parameters_and_errors():
    for name in AUTHOR_INITS:
        assert check_init_string(name) == name
        a, discrete = resolve_eigenvalue_init(name, 16, 2, "zoh")
        assert a.shape == (2, 8) and not discrete and np.all(a.real < 0)
    np.testing.assert_allclose(resolve_eigenvalue_init("guan_linear:rho=0.5", 8, 1, "zoh")[0][0], guan_linear(8, 0.5))
    with pytest.raises(ValueError, match="n_conjugate"):
        check_eigenvalue_init("guan_conjugate_linear:n_conjugate=9", 16)  # more roots per ring than N/2 modes
    with pytest.raises(ValueError, match="n_conjugate"):
        check_eigenvalue_init("guan_conjugate_linear:n_conjugate=0", 16)
    with pytest.raises(ValueError, match=r"parameters of 'guan_linear' are \('rho',\)"):
        check_init_string("guan_linear:n_conjugate=2")
    with pytest.raises(ValueError, match="rho"):
        guan_linear(8, rho=1.5)
