"""The part of every SSM layer that does not depend on how the kernel is parameterised."""

import math

import keras
import numpy as np
from keras import ops

from keras_ssm.ops.diagonal import fft_convolution
from keras_ssm.ops.discrete import DISCRETIZATIONS
from keras_ssm.ops.init import EIGENVALUE_INITS, _check_state_size


MIN_DECAY = 1e-4  # Re(a) <= -MIN_DECAY keeps |lambda| < 1 and dB finite however training moves log_a_real.


class ArrayInitializer(keras.initializers.Initializer):
    """Initializes a variable to a fixed array computed at build time (structured init values)."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def __call__(self, shape, dtype=None):
        if tuple(shape) != self.value.shape:
            raise ValueError(f"ArrayInitializer holds shape {self.value.shape}, asked for {tuple(shape)}.")
        return ops.convert_to_tensor(self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value.tolist()}


class BaseSSM(keras.layers.Layer):
    """Shared body of S4D and S4: dt, C, D, convolution, output mixing, masking, step API, config.

    Input (batch, length, H) -> output (batch, length, H):

        y = K * u + D u                      (K causal; bidirectional adds an anticausal K2 on future inputs)
        y = GLU(Dense_2H(dropout(activation(y))))   (the position-wise gated output; optional)

    The kernel, the exponentials and the FFT run in float32 whatever the dtype policy.
    Subclasses define the state matrix parameters (`_build_state_matrix`), the kernel
    (`convolution_kernel`), the recurrence (`_recurrence`) and the discrete system (numpy views).
    """

    default_init = "inv"
    allowed_inits = EIGENVALUE_INITS
    default_discretization = "zoh"
    allowed_discretizations = DISCRETIZATIONS

    def __init__(
        self,
        n=64,
        init=None,
        trainable_eigenvalues=True,
        trainable_dt=None,
        dt_min=1e-3,
        dt_max=1e-1,
        discretization=None,
        bidirectional=False,
        dropout=0.0,
        activation="gelu",
        gated_output=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        init = self.default_init if init is None else init
        _check_state_size(n)
        if init not in self.allowed_inits:
            raise ValueError(f"`init` must be one of {self.allowed_inits}, got {init!r}.")
        discretization = self.default_discretization if discretization is None else discretization
        if discretization not in self.allowed_discretizations:
            raise ValueError(
                f"`discretization` must be one of {self.allowed_discretizations}, got {discretization!r}."
            )
        for name, value in (("dt_min", dt_min), ("dt_max", dt_max)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
        if dt_min >= dt_max:
            raise ValueError(f"`dt_min` must be < `dt_max`, got dt_min={dt_min!r}, dt_max={dt_max!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")
        for name, value in (("trainable_eigenvalues", trainable_eigenvalues),
                            ("bidirectional", bidirectional), ("gated_output", gated_output)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        if trainable_dt is not None and not isinstance(trainable_dt, bool):
            raise ValueError(f"`trainable_dt` must be True, False or None, got {trainable_dt!r}.")
        self.n = int(n)
        self.init = init
        self.trainable_eigenvalues = trainable_eigenvalues
        self.trainable_dt = trainable_eigenvalues if trainable_dt is None else trainable_dt
        self._trainable_dt_arg = trainable_dt
        self.dt_min = float(dt_min)
        self.dt_max = float(dt_max)
        self.discretization = discretization
        self.bidirectional = bidirectional
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self._activation_arg = activation
        self.gated_output = gated_output
        self.seed = seed
        self.supports_masking = True
        # Every random initial value is drawn from this numpy generator, so a seed gives the same
        # layer on every backend; without a seed it follows numpy's global state, which
        # keras.utils.set_random_seed sets.
        self._rng = np.random.default_rng(seed if seed is not None else np.random.randint(2**31 - 1))

    @property
    def channels(self):
        """Number of kernels per feature: 2 when bidirectional (causal and anticausal), else 1."""
        return 2 if self.bidirectional else 1

    def _next_seed(self):
        return int(self._rng.integers(2**31 - 1))

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 3 (batch, length, features), "
                f"got shape {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known feature dimension (last axis), got shape {tuple(input_shape)}."
            )
        self.features = H = int(input_shape[-1])
        log_dt = self._rng.uniform(math.log(self.dt_min), math.log(self.dt_max), size=(H,))
        self.log_dt = self.add_weight(
            name="log_dt", shape=(H,), initializer=ArrayInitializer(log_dt), trainable=self.trainable_dt
        )
        self._build_state_matrix(H)
        c_shape = (self.channels, H, self._output_modes, 2)
        self.C = self.add_weight(
            name="C", shape=c_shape, initializer=ArrayInitializer(self._rng.normal(0.0, math.sqrt(0.5), c_shape))
        )
        self.D = self.add_weight(name="D", shape=(H,), initializer=ArrayInitializer(self._rng.normal(size=(H,))))
        self.dropout_layer = keras.layers.SpatialDropout1D(
            self.dropout, seed=self._next_seed(), dtype=self.dtype_policy
        )
        if self.gated_output:
            glorot_limit = math.sqrt(6.0 / (H + 2 * H))
            self.output_dense = keras.layers.Dense(
                2 * H,
                kernel_initializer=ArrayInitializer(self._rng.uniform(-glorot_limit, glorot_limit, (H, 2 * H))),
                name="output_dense",
                dtype=self.dtype_policy,
            )
            self.output_dense.build((None, None, H))

    def _add_eigenvalue_weights(self, a):
        """Create `log_a_real` and `a_imag` from continuous eigenvalues a (complex (H, N/2), Re a < 0).

        Re a = -exp(log_a_real) stays negative whatever training does; both follow
        `trainable_eigenvalues`.
        """
        self.log_a_real = self.add_weight(
            name="log_a_real", shape=a.shape, initializer=ArrayInitializer(np.log(-a.real)),
            trainable=self.trainable_eigenvalues,
        )
        self.a_imag = self.add_weight(
            name="a_imag", shape=a.shape, initializer=ArrayInitializer(a.imag),
            trainable=self.trainable_eigenvalues,
        )

    def _continuous_eigenvalues(self):
        """(Re a, Im a) as float32 tensors (H, N/2), with Re a <= -MIN_DECAY."""
        a_real = ops.minimum(-ops.exp(self._read(self.log_a_real)), -MIN_DECAY)
        return a_real, self._read(self.a_imag)

    @staticmethod
    def _read(variable):
        """A variable as a float32 tensor; a frozen (non-trainable) one behind `stop_gradient`, so every
        backend treats what depends only on frozen variables (discrete eigenvalues, powers of dA) as
        constants in the backward pass, whichever variables are frozen."""
        value = ops.cast(variable, "float32")
        return value if variable.trainable else ops.stop_gradient(value)

    def continuous_eigenvalues(self):
        """a = Re + i Im as used by the layer, complex128 numpy (H, N/2)."""
        self._check_built()
        a_real = np.minimum(-np.exp(np.asarray(self.log_a_real.numpy(), np.float64)), -MIN_DECAY)
        return a_real + 1j * np.asarray(self.a_imag.numpy(), np.float64)

    @property
    def _output_modes(self):
        """Number of complex modes C acts on (N/2)."""
        return self.n // 2

    def _build_state_matrix(self, H):
        raise NotImplementedError

    def convolution_kernel(self, length):
        """The kernel as a keras tensor, (channels, H, length) float32."""
        raise NotImplementedError

    @property
    def eigenvalue_variables(self):
        """Variables that determine the discrete eigenvalues (frozen when trainable_eigenvalues=False)."""
        raise NotImplementedError

    @property
    def ssm_variables(self):
        """Variables that get the SSM learning rate and no weight decay in the reference training."""
        return list(self.eigenvalue_variables)

    def call(self, inputs, training=None, mask=None):
        u = ops.cast(inputs, "float32")
        if mask is not None:
            u = u * ops.cast(mask, "float32")[..., None]
        u = ops.transpose(u, (0, 2, 1))
        length = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
        kernel = self.convolution_kernel(length)
        y = fft_convolution(u, kernel[0], kernel[1] if self.bidirectional else None)
        y = y + ops.cast(self.D, "float32")[:, None] * u
        y = ops.cast(ops.transpose(y, (0, 2, 1)), self.compute_dtype)
        return self._output(y, training=training)

    def _output(self, y, training=None):
        """Position-wise output path: activation, dropout, Dense(2H) + GLU."""
        y = self.activation(y)
        y = self.dropout_layer(y, training=training)
        if self.gated_output:
            y = ops.glu(self.output_dense(y), axis=-1)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask

    # Recurrent (step) mode --------------------------------------------------------------------
    def get_initial_state(self, batch_size):
        """Zero state for `step`, a float32 tensor of shape `self.state_shape(batch_size)`."""
        self._check_step_mode()
        return ops.zeros(self.state_shape(batch_size), dtype="float32")

    def state_shape(self, batch_size):
        raise NotImplementedError

    def step(self, x_t, state):
        """One step of the recurrence, same outputs as `call` on the sequence (causal layers only).

        Args:
            x_t: (batch, H) input at time t.
            state: from `get_initial_state` or the previous step.

        Returns:
            (y_t, new_state), y_t of shape (batch, H).
        """
        self._check_step_mode()
        u = ops.cast(x_t, "float32")
        y, state = self._recurrence(u, state)
        y = y + ops.cast(self.D, "float32") * u
        y = ops.cast(y, self.compute_dtype)[:, None, :]
        return self._output(y, training=False)[:, 0, :], state

    def _check_step_mode(self):
        if not self.built:
            raise ValueError(f"Build {type(self).__name__} (call it once) before using the step API.")
        if self.bidirectional:
            raise ValueError("The step API needs a causal layer: it is undefined for bidirectional=True.")

    def _recurrence(self, u, state):
        raise NotImplementedError

    # numpy views for analysis -------------------------------------------------------------------
    def kernel(self, length):
        """The real convolution kernel as a numpy array: (H, length), or (2, H, length) if bidirectional."""
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"`length` must be a positive integer, got {length!r}.")
        self._check_built()
        k = ops.convert_to_numpy(self.convolution_kernel(int(length)))
        return k if self.bidirectional else k[0]

    def _check_built(self):
        if not self.built:
            raise ValueError(f"Build {type(self).__name__} (call it once) before asking for its parameters.")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n": self.n,
                "init": self.init,
                "trainable_eigenvalues": self.trainable_eigenvalues,
                "trainable_dt": self._trainable_dt_arg,
                "dt_min": self.dt_min,
                "dt_max": self.dt_max,
                "discretization": self.discretization,
                "bidirectional": self.bidirectional,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation)
                if self._activation_arg is not None
                else None,
                "gated_output": self.gated_output,
                "seed": self.seed,
            }
        )
        return config


def complex_from_pairs(x):
    """numpy (..., 2) float array -> complex128 (...)."""
    x = np.asarray(x, dtype=np.float64)
    return x[..., 0] + 1j * x[..., 1]
