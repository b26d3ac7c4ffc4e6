"""Pure functions for SSM math: keras.ops (call time, every backend) and numpy (init and analysis time)."""

from keras_ssm.ops.diagonal import (
    DISCRETIZATIONS,
    complex_divide,
    complex_multiply,
    discretize_diagonal,
    discretize_diagonal_numpy,
    eigenvalue_powers,
    fft_convolution,
    fft_length,
    vandermonde_kernel,
)
from keras_ssm.ops.init import EIGENVALUE_INITS, hippo_legs, initial_eigenvalues, nplr_legs
