"""The part of every SSM layer that does not depend on how the kernel is parameterised."""

import math

import keras
import numpy as np
from keras import ops

from keras_ssm.discovery import mark_ssm_variables
from keras_ssm.ops.diagonal import fft_convolution
from keras_ssm.ops.discrete import DISCRETIZATIONS
from keras_ssm.ops.init import (
    AUTHOR_INITS,
    DISCRETE_INITS,
    EIGENVALUE_INITS,
    MIN_DECAY,  # Re(a) <= -MIN_DECAY keeps |lambda| < 1 and dB finite however training moves log_a_real.
    DiscreteEigenvalues,
    _check_state_size,
    check_eigenvalue_init,
    check_frozen_modes,
    frozen_mode_mask,
    init_to_config,
    parse_init_name,
)


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
    allowed_inits = EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS
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
        frozen_modes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        init = self.default_init if init is None else init
        _check_state_size(n)
        discretization = self.default_discretization if discretization is None else discretization
        if discretization not in self.allowed_discretizations:
            raise ValueError(
                f"`discretization` must be one of {self.allowed_discretizations}, got {discretization!r}."
            )
        init = check_eigenvalue_init(init, n, self.allowed_inits, discretization)
        frozen_modes = check_frozen_modes(frozen_modes, n)
        if frozen_modes is not None and not trainable_eigenvalues:
            raise ValueError("`frozen_modes` freezes part of the eigenvalues of a layer whose eigenvalues train; "
                             "with trainable_eigenvalues=False all of them are frozen already (pass None).")
        for name, value in (("dt_min", dt_min), ("dt_max", dt_max)):
            if not _is_real_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
        if dt_min >= dt_max:
            raise ValueError(f"`dt_min` must be < `dt_max`, got dt_min={dt_min!r}, dt_max={dt_max!r}.")
        check_rate("dropout", dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"`seed` must be None or an integer >= 0, got {seed!r}.")
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
        try:
            self.activation = keras.activations.get(activation)
        except (ValueError, TypeError):
            raise ValueError(
                f"`activation` must be None, the name of a Keras activation (e.g. 'gelu') or a callable, "
                f"got {activation!r}."
            ) from None
        self._activation_arg = activation
        self.gated_output = gated_output
        self.seed = None if seed is None else int(seed)
        self.frozen_modes = frozen_modes
        self.supports_masking = True
        # Every random initial value is drawn from this numpy generator, so a seed gives the same
        # layer on every backend; without a seed it follows numpy's global state, which
        # keras.utils.set_random_seed sets.
        root_seed = seed if seed is not None else np.random.randint(2**31 - 1)
        self._rng = np.random.default_rng(root_seed)
        # Which modes a fraction freezes: its own stream, so freezing leaves every other initial value as it is.
        self._freeze_seed = (int(root_seed), 1)

    @property
    def discrete_init(self):
        """True when `init` gives discrete eigenvalues (a discrete family or DiscreteEigenvalues): dt = 1."""
        if isinstance(self.init, DiscreteEigenvalues):
            return True
        return isinstance(self.init, str) and parse_init_name(self.init)[0] in DISCRETE_INITS

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
        if input_shape[1] == 0:
            raise ValueError(f"{type(self).__name__} needs sequences of length >= 1, got shape {tuple(input_shape)}.")
        self.features = H = int(input_shape[-1])
        # Keras checks this on every later call: a different feature count is a clear error, not a broadcast.
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: H})
        log_dt = self._rng.uniform(math.log(self.dt_min), math.log(self.dt_max), size=(H,))
        if self.discrete_init:
            log_dt = np.zeros_like(log_dt)  # dt = 1 reproduces the given lambda (drawn anyway: same seed stream)
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
        mark_ssm_variables(self.ssm_variables)  # SSMAdamW finds them among the model's variables

    def _add_eigenvalue_weights(self, a):
        """Create `log_a_real` and `a_imag` from continuous eigenvalues a (complex (H, N/2), Re a < 0).

        Re a = -exp(log_a_real) stays negative whatever training does; both follow
        `trainable_eigenvalues`. With `frozen_modes`, each is split into a trainable flat vector
        (`log_a_real`, `a_imag`: the T trained modes) and a non-trainable one (`log_a_real_frozen`,
        `a_imag_frozen`: the F frozen modes), reassembled into (H, N/2) by one gather at call time, so
        parameter counts report exactly T and F per variable and frozen modes never change.
        """
        self.frozen_mask = frozen_mode_mask(self.frozen_modes, self.n, a.shape[0], seed=self._freeze_seed)
        if self.frozen_mask is None:
            self.log_a_real = self.add_weight(
                name="log_a_real", shape=a.shape, initializer=ArrayInitializer(np.log(-a.real)),
                trainable=self.trainable_eigenvalues,
            )
            self.a_imag = self.add_weight(
                name="a_imag", shape=a.shape, initializer=ArrayInitializer(a.imag),
                trainable=self.trainable_eigenvalues,
            )
            self.log_a_real_frozen = self.a_imag_frozen = None
            return
        flat_mask = self.frozen_mask.reshape(-1)
        frozen, trained = np.flatnonzero(flat_mask), np.flatnonzero(~flat_mask)
        # Position of mode j of the flattened (H, N/2) array in concat([frozen part, trained part]).
        self._mode_order = np.argsort(np.concatenate([frozen, trained])).astype("int32")
        log_re, imag = np.log(-a.real).reshape(-1), a.imag.reshape(-1)
        for name, values, index, trainable in (("log_a_real", log_re, trained, True),
                                               ("a_imag", imag, trained, True),
                                               ("log_a_real_frozen", log_re, frozen, False),
                                               ("a_imag_frozen", imag, frozen, False)):
            setattr(self, name, self.add_weight(name=name, shape=(index.size,),
                                                initializer=ArrayInitializer(values[index]), trainable=trainable))

    @property
    def _mode_variables(self):
        """The variables holding Re a and Im a (two, or four with frozen modes)."""
        if self.log_a_real_frozen is None:
            return [self.log_a_real, self.a_imag]
        return [self.log_a_real, self.a_imag, self.log_a_real_frozen, self.a_imag_frozen]

    def _mode_tensors(self):
        """(log_a_real, a_imag) as float32 (H, N/2) tensors, reassembled when some modes are frozen."""
        if self.log_a_real_frozen is None:
            return self._read(self.log_a_real), self._read(self.a_imag)
        shape = self.frozen_mask.shape
        out = []
        for frozen, trained in ((self.log_a_real_frozen, self.log_a_real), (self.a_imag_frozen, self.a_imag)):
            flat = ops.concatenate([self._read(frozen), self._read(trained)], axis=0)
            out.append(ops.reshape(ops.take(flat, self._mode_order, axis=0), shape))
        return tuple(out)

    def _mode_arrays(self):
        """(log_a_real, a_imag) as float64 numpy (H, N/2), reassembled when some modes are frozen."""
        if self.log_a_real_frozen is None:
            return (np.asarray(self.log_a_real.numpy(), np.float64), np.asarray(self.a_imag.numpy(), np.float64))
        out = []
        for frozen, trained in ((self.log_a_real_frozen, self.log_a_real), (self.a_imag_frozen, self.a_imag)):
            flat = np.concatenate([np.asarray(frozen.numpy(), np.float64), np.asarray(trained.numpy(), np.float64)])
            out.append(flat[self._mode_order].reshape(self.frozen_mask.shape))
        return tuple(out)

    def _continuous_eigenvalues(self):
        """(Re a, Im a) as float32 tensors (H, N/2), with Re a <= -MIN_DECAY."""
        log_a_real, a_imag = self._mode_tensors()
        a_real = ops.minimum(-ops.exp(log_a_real), -MIN_DECAY)
        return a_real, a_imag

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
        log_a_real, a_imag = self._mode_arrays()
        a_real = np.minimum(-np.exp(log_a_real), -MIN_DECAY)
        return a_real + 1j * a_imag

    @property
    def _output_modes(self):
        """Number of complex modes C acts on (N/2)."""
        return self.n // 2

    def _build_state_matrix(self, H):
        raise NotImplementedError

    def convolution_kernel(self, length):
        """The kernel that `call` convolves with: a float32 backend tensor (channels, H, length),
        differentiable in the layer's variables (channels = 2 when bidirectional: causal, anticausal).
        `kernel(length)` is its numpy view for analysis."""
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
        if inputs.shape[1] == 0:
            raise ValueError(f"{type(self).__name__} needs sequences of length >= 1, got shape {tuple(inputs.shape)}.")
        u = ops.cast(inputs, "float32")
        if mask is not None:
            # Select, not multiply: NaN * 0 is NaN, so a NaN or inf at a padded position would spread
            # through the convolution to every position of its sequence.
            u = ops.where(ops.cast(mask, "bool")[..., None], u, ops.zeros_like(u))
        u = ops.transpose(u, (0, 2, 1))
        length = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
        kernel = self.convolution_kernel(length)
        anticausal = kernel[1] if self.bidirectional else None
        y = fft_convolution(u, kernel[0], anticausal, skip=ops.cast(self.D, "float32"))
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
        """The numpy view of `convolution_kernel` for analysis: (H, length), or (2, H, length) if
        bidirectional."""
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
                "init": init_to_config(self.init),
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
                "frozen_modes": self.frozen_modes if not isinstance(self.frozen_modes, np.ndarray)
                else self.frozen_modes.tolist(),
            }
        )
        return config


def _is_real_number(value):
    """int or float (numpy scalars included), but not bool: True is not a step size or a rate."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def check_rate(name, value):
    """Raise a ValueError naming `name` unless value is a number in [0, 1)."""
    if not _is_real_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


def complex_from_pairs(x):
    """numpy (..., 2) float array -> complex128 (...)."""
    x = np.asarray(x, dtype=np.float64)
    return x[..., 0] + 1j * x[..., 1]
