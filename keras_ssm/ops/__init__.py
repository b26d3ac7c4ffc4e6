"""Pure functions for SSM math.

`keras_ssm.ops.diagonal` and `keras_ssm.ops.dplr`: keras.ops, used at call time on every backend; their
contractions go through `keras_ssm.ops.precision` (full float32 whatever the backend's matmul default;
`set_kernel_precision` / `kernel_precision` switch them to the backend's default).
`keras_ssm.ops.fft`: real FFTs with complex64 spectra on every backend. `keras_ssm.ops.init`: numpy,
used at build time. `keras_ssm.ops.reference`: the kernels in float64 numpy from the raw parameters
(reference values for tests and the GPU check). Names load on first use so that numpy-only callers (`init`, `discrete`,
`reference`; the zoo's config checks) do not import keras (6 s with jax, measured); `_EXPORTS` maps each name
to its module.
"""

import importlib

_EXPORTS = {
    "EIGENVALUE_INITS": "init",
    "hippo_legs": "init",
    "initial_eigenvalues": "init",
    "nplr_legs": "init",
    "DISCRETE_INITS": "init",
    "DiscreteEigenvalues": "init",
    "continuous_from_discrete": "init",
    "linear_magnitudes": "init",
    "unity_rings": "init",
    "AUTHOR_INITS": "init",
    "author_family": "init",
    "guan_linear": "init",
    "guan_conjugate_linear": "init",
    "check_eigenvalue_init": "init",
    "check_init_string": "init",
    "resolve_eigenvalue_init": "init",
    "frozen_mode_mask": "init",
    "DISCRETIZATIONS": "discrete",
    "complex_divide": "diagonal",
    "complex_multiply": "diagonal",
    "complex_irfft": "fft",
    "complex_rfft": "fft",
    "diagonal_step": "diagonal",
    "discretize_diagonal": "diagonal",
    "discretize_diagonal_numpy": "discrete",
    "eigenvalue_powers": "diagonal",
    "fft_convolution": "diagonal",
    "fft_length": "diagonal",
    "spectral_convolution": "diagonal",
    "vandermonde_kernel": "diagonal",
    "dplr_kernel": "dplr",
    "power_kernel": "dplr",
    "conjugate_pair_cauchy": "dplr",
    "bilinear_dplr_dense": "dplr",
    "precise_einsum": "precision",
    "precise_matmul": "precision",
    "KERNEL_PRECISIONS": "precision",
    "set_kernel_precision": "precision",
    "get_kernel_precision": "precision",
    "kernel_precision": "precision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"keras_ssm.ops.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_ssm.ops' has no attribute {name!r}")


def __dir__():
    return __all__
