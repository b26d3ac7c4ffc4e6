"""Empirical memory functions: drive a system with i.i.d. input and fit linear readouts.

For any system mapping an input sequence to per-step features phi_t (linear SSM states,
hidden features of a nonlinear or multi-layer Keras model, or a plain callable):

    MF_hat(k) = corr(w_k^T phi_t + c_k, u_{t-k})^2   on held-out steps,

where (w_k, c_k) is the ridge regression of u_{t-k} on phi_t fitted on a training split.
For a linear SSM with a long run this converges to the closed form of
:func:`keras_ssm.memory.memory_function` (slightly below it: finite-sample error of w_k).
"""

from __future__ import annotations

import numbers
import sys

import numpy as np
import scipy.signal

from keras_ssm.memory.core import MemoryFunction, _as_finite_array

__all__ = ["empirical_memory_function", "simulate_linear_states"]

_EPS = np.finfo(np.float64).eps
_DISTRIBUTIONS = ("uniform", "gaussian")
_LAG_CHUNK = 128


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def simulate_linear_states(inputs, *, eigenvalues=None, state_matrix=None, input_vector=None) -> np.ndarray:
    """Real states of a linear SSM started at zero, x_t = A x_{t-1} + b u_t.

    Args:
        inputs: (S, T) scalar input sequences.
        eigenvalues: (m,) diagonal discrete eigenvalues (one per conjugate pair), or
        state_matrix: (m, m) dense discrete state matrix, with
        input_vector: (m,) b (default ones for eigenvalues; required for state_matrix).

    Returns:
        float64 (S, T, d) real state: [Re x, Im x] for a complex state (eigenvalues, or
        a complex state_matrix / input_vector), x itself for a real dense system.
    """
    u = np.asarray(inputs, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"inputs must have shape (num_sequences, num_steps), got {u.shape}")
    if (eigenvalues is None) == (state_matrix is None):
        raise ValueError("give exactly one of eigenvalues or state_matrix")
    if eigenvalues is not None:
        lam = _as_finite_array(eigenvalues, "eigenvalues", 1)
        if lam.ndim != 1:
            raise ValueError(f"eigenvalues must have shape (m,) here, got {lam.shape}")
        b = np.ones(lam.shape) if input_vector is None else np.broadcast_to(np.asarray(input_vector), lam.shape)
        states = np.empty(u.shape + lam.shape, dtype=np.complex128)
        for n, (mode, weight) in enumerate(zip(lam.astype(np.complex128), b)):
            states[..., n] = weight * scipy.signal.lfilter([1.0], [1.0, -mode], u, axis=-1)
        return np.concatenate([states.real, states.imag], axis=-1)
    matrix = _as_finite_array(state_matrix, "state_matrix", 2)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"state_matrix must have shape (m, m) here, got {matrix.shape}")
    if input_vector is None:
        raise ValueError("input_vector (m,) is required with state_matrix")
    b = _as_finite_array(input_vector, "input_vector", 1)
    if b.shape != (matrix.shape[0],):
        raise ValueError(f"input_vector must have shape ({matrix.shape[0]},), got {b.shape}")
    is_complex = np.iscomplexobj(matrix) or np.iscomplexobj(b)
    dtype = np.complex128 if is_complex else np.float64
    transposed = matrix.astype(dtype).T
    state = np.zeros((u.shape[0], matrix.shape[0]), dtype=dtype)
    states = np.empty(u.shape + (matrix.shape[0],), dtype=dtype)
    drive = u[..., None] * b.astype(dtype)
    for t in range(u.shape[1]):
        state = state @ transposed + drive[:, t]
        states[:, t] = state
    return np.concatenate([states.real, states.imag], axis=-1) if is_complex else states


def _readout_memory(features, signal, max_lag, start, train_fraction, ridge):
    """Held-out squared correlation of ridge readouts of signal[t - k] from features[t].

    features (S, T, D), signal (S, T); steps t = start..T-1 of every sequence, the first
    train_fraction of them for fitting. Returns (values (max_lag+1,), rank, condition).
    """
    num_steps = features.shape[1]
    split = start + int(round(train_fraction * (num_steps - start)))
    if split - start < 2 or num_steps - split < 2:
        raise ValueError(
            f"too few steps after washout for a train/test split: {num_steps} steps, "
            f"{start} discarded (washout / max_lag), train_fraction={train_fraction}"
        )
    train_phi = features[:, start:split].reshape(-1, features.shape[-1])
    test_phi = features[:, split:].reshape(-1, features.shape[-1])
    phi_mean = train_phi.mean(axis=0)
    train_phi = train_phi - phi_mean
    test_phi = test_phi - phi_mean
    varying = np.any(train_phi != 0, axis=0)  # constant columns (e.g. Im of a real mode) carry nothing
    train_phi, test_phi = train_phi[:, varying], test_phi[:, varying]
    left, singular_values, right_t = np.linalg.svd(train_phi, full_matrices=False)
    if singular_values.size == 0 or singular_values[0] == 0:
        return np.zeros(max_lag + 1), 0, np.inf
    rank = int(np.sum(singular_values > singular_values[0] * _EPS * max(train_phi.shape)))
    smallest = singular_values[-1]
    condition = singular_values[0] / smallest if smallest > 0 else np.inf
    alpha = ridge * singular_values[0] ** 2
    shrink = singular_values / (singular_values**2 + alpha)
    # Test-split predictions for all lags at once: test_phi V diag(shrink) U^T y_train.
    test_projection = (test_phi @ right_t.T) * shrink

    values = np.empty(max_lag + 1)
    for first in range(0, max_lag + 1, _LAG_CHUNK):
        lags = np.arange(first, min(first + _LAG_CHUNK, max_lag + 1))
        train_y = np.stack([signal[:, start - k : split - k] for k in lags], axis=-1).reshape(-1, lags.size)
        test_y = np.stack([signal[:, split - k : num_steps - k] for k in lags], axis=-1).reshape(-1, lags.size)
        prediction = test_projection @ (left.T @ (train_y - train_y.mean(axis=0)))
        values[lags] = _squared_correlation(prediction, test_y)
    return values, rank, condition


def _squared_correlation(x, y):
    """Column-wise squared Pearson correlation (0 where either column is constant)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    denominator = np.sum(x * x, axis=0) * np.sum(y * y, axis=0)
    numerator = np.sum(x * y, axis=0) ** 2
    safe = denominator > 0
    return np.where(safe, numerator / np.where(safe, denominator, 1.0), 0.0).clip(0.0, 1.0)


def _is_keras_layer(obj) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.layers.Layer)


def _to_numpy(x) -> np.ndarray:
    keras = sys.modules.get("keras")
    if keras is not None and not isinstance(x, np.ndarray):
        try:
            return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)
        except Exception:  # not a backend tensor: fall through to numpy
            pass
    return np.asarray(x, dtype=np.float64)


def _feature_model(model, layer):
    """A Keras model or callable returning the features to read out."""
    if layer is None:
        return model
    if not _is_keras_layer(model) or not hasattr(model, "inputs") or getattr(model, "inputs", None) is None:
        raise ValueError("layer= needs a built functional or Sequential Keras model with defined inputs")
    import keras

    target = model.get_layer(layer) if isinstance(layer, str) else layer
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    try:
        return keras.Model(inputs, target.output)
    except (AttributeError, ValueError) as err:
        raise ValueError(f"cannot read the output of layer {getattr(target, 'name', target)!r}: {err}") from None


def _model_input_info(model):
    """(num_steps, num_features) from a Keras model's single input, None where unknown."""
    inputs = getattr(model, "inputs", None) if _is_keras_layer(model) else None
    if not inputs:
        return None, None
    if len(inputs) != 1:
        raise ValueError("model must have a single input; wrap multi-input models in a callable")
    shape = tuple(inputs[0].shape)
    steps = shape[1] if len(shape) >= 2 else None
    features = shape[2] if len(shape) == 3 else None
    return steps, features


def _model_states(model, drive, batch_size):
    """Features (S, T, D) of a Keras model or callable run on ``drive`` in batches (float input as float32)."""
    inputs = drive.astype(np.float32) if np.issubdtype(drive.dtype, np.floating) else drive
    outputs = []
    for first in range(0, inputs.shape[0], batch_size):
        chunk = inputs[first : first + batch_size]
        out = model(chunk, training=False) if _is_keras_layer(model) else model(chunk)
        if isinstance(out, (list, tuple, dict)):
            raise ValueError("model must return a single (batch, T, D) tensor of features, got a structure")
        outputs.append(_to_numpy(out))
    features = np.concatenate(outputs, axis=0)
    if features.ndim == 2:
        features = features[..., None]
    if features.ndim != 3 or features.shape[:2] != inputs.shape[:2]:
        raise ValueError(
            f"model must map (batch, T, F) inputs to (batch, T, D) features; inputs {inputs.shape} "
            f"gave {features.shape} (for pooled models read an intermediate sequence layer with layer=)"
        )
    if not np.all(np.isfinite(features)):
        raise ValueError("model produced non-finite features")
    return features


def _linear_systems(eigenvalues, state_matrix, input_vector):
    """(batch_shape, simulate_linear_states keyword arguments of each system) of a (batch of) linear SSM(s)."""
    spec = np.asarray(eigenvalues if eigenvalues is not None else state_matrix)
    batch_shape = spec.shape[:-1] if eigenvalues is not None else spec.shape[:-2]
    b = None if input_vector is None else np.asarray(input_vector)
    if b is not None:
        b = np.broadcast_to(b, spec.shape if eigenvalues is not None else spec.shape[:-1])
    key = "eigenvalues" if eigenvalues is not None else "state_matrix"
    return batch_shape, [{key: spec[index], "input_vector": None if b is None else b[index]}
                         for index in np.ndindex(*batch_shape)]


def _readout_memories(feature_sets, batch_shape, target, max_lag, start, train_fraction, ridge) -> MemoryFunction:
    """The readout MF of each (S, T, D) feature array of ``feature_sets`` (one per index of batch_shape)."""
    curves, ranks, conds, dims = [], [], [], []
    for features in feature_sets:
        values, rank, cond = _readout_memory(features, target, max_lag, start, train_fraction, ridge)
        curves.append(values)
        ranks.append(rank)
        conds.append(cond)
        dims.append(features.shape[-1])
    return MemoryFunction(
        values=np.stack(curves).reshape(batch_shape + (max_lag + 1,)),
        rank=np.asarray(ranks, dtype=np.int64).reshape(batch_shape)[()],
        condition_number=np.asarray(conds).reshape(batch_shape)[()],
        state_dim=np.asarray(dims, dtype=np.int64).reshape(batch_shape)[()],
        infinite_horizon=False,
    )


def empirical_memory_function(
    model=None,
    *,
    eigenvalues=None,
    state_matrix=None,
    input_vector=None,
    layer=None,
    max_lag: int = 100,
    num_steps: int | None = None,
    num_sequences: int = 1,
    washout: int | None = None,
    num_features: int | None = None,
    input_channel: int = 0,
    inputs=None,
    signal=None,
    distribution: str = "uniform",
    train_fraction: float = 0.5,
    ridge: float = 1e-10,
    batch_size: int = 32,
    seed: int | None = 0,
) -> MemoryFunction:
    """Memory function estimated by driving a system with i.i.d. input, for lags 0..max_lag.

    The system is exactly one of:

    * ``model``: a Keras model or layer, or any callable mapping float32 inputs
      (batch, T, F) to features (batch, T, D) (or (batch, T)); nonlinear and multi-layer
      models included. ``layer`` (a name or Layer of a functional/Sequential ``model``)
      reads that layer's output instead of the model's.
    * ``eigenvalues`` (m,) or (..., m): a diagonal linear SSM (one eigenvalue per
      conjugate pair) whose real states [Re x, Im x] are simulated directly, with
      ``input_vector`` b (default ones); leading axes give one curve each.
    * ``state_matrix`` (m, m) with ``input_vector`` (m,): a dense linear SSM, simulated.

    Procedure: draw i.i.d. zero-mean input (``distribution`` "uniform" on [-1, 1] or
    "gaussian"), shape (num_sequences, num_steps, F) with F = ``num_features`` (or the
    model's input width; 1 for linear SSMs); the target signal is channel
    ``input_channel``. Collect features, drop the first max(washout, max_lag) steps of every
    sequence (state transient; every kept step has all lags), split the rest in time:
    the first ``train_fraction`` for a ridge fit (features and targets centred on the
    training split, penalty ``ridge * sigma_max^2`` of the training features), the rest for
    the score. MF_hat(k) = squared correlation between prediction and u_{t-k} on the
    held-out steps, in [0, 1].

    ``inputs`` (S, T, F) (or (S, T)) replaces the random input, e.g. for token models
    (then pass ``signal`` (S, T), the scalar sequence to reconstruct; default:
    ``inputs[..., input_channel]``).

    Returns:
        :class:`MemoryFunction` with ``values`` (max_lag + 1,) ((..., max_lag + 1) for
        batched eigenvalues), ``rank`` and ``condition_number`` of the training features,
        ``state_dim`` = number of feature columns D, ``infinite_horizon`` False.
    """
    if sum(x is not None for x in (model, eigenvalues, state_matrix)) != 1:
        raise ValueError("give exactly one of model, eigenvalues or state_matrix")
    if layer is not None and model is None:
        raise ValueError("layer= is only used with model=")
    max_lag = _check_int(max_lag, "max_lag", 0)
    num_sequences = _check_int(num_sequences, "num_sequences", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    input_channel = _check_int(input_channel, "input_channel", 0)
    washout = max_lag if washout is None else _check_int(washout, "washout", 0)
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real) or not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or ridge < 0:
        raise ValueError(f"ridge must be a number >= 0, got {ridge!r}")
    if model is not None and not callable(model):
        raise ValueError(f"model must be a Keras model/layer or a callable, got {type(model).__name__}")

    feature_model = _feature_model(model, layer) if model is not None else None
    model_steps, model_features = _model_input_info(feature_model) if model is not None else (None, None)

    if inputs is None:
        if num_steps is None:
            num_steps = model_steps if model_steps is not None else 20000
        num_steps = _check_int(num_steps, "num_steps", 2)
        width = 1 if model is None else _check_int(
            num_features if num_features is not None else (model_features or 1), "num_features", 1)
        if input_channel >= width:
            raise ValueError(f"input_channel must be < the input width {width}, got {input_channel}")
        rng = np.random.default_rng(seed)
        shape = (num_sequences, num_steps, width)
        drive = rng.uniform(-1.0, 1.0, shape) if distribution == "uniform" else rng.standard_normal(shape)
        target = drive[..., input_channel] if signal is None else signal
    else:
        drive = np.asarray(inputs)
        if drive.ndim not in (2, 3):
            raise ValueError(f"inputs must have shape (S, T) or (S, T, F), got {drive.shape}")
        if signal is not None:
            target = signal
        elif drive.ndim == 3:
            if input_channel >= drive.shape[-1]:
                raise ValueError(f"input_channel must be < inputs.shape[-1] = {drive.shape[-1]}, got {input_channel}")
            target = drive[..., input_channel]
        else:
            target = drive
    target = _as_finite_array(target, "signal", 2).astype(np.float64)
    if target.shape != drive.shape[:2]:
        raise ValueError(f"signal must have shape {drive.shape[:2]} (S, T) like inputs, got {target.shape}")
    readout = {"target": target, "max_lag": max_lag, "start": max(washout, max_lag),
               "train_fraction": train_fraction, "ridge": ridge}

    if model is not None:
        return _readout_memories([_model_states(feature_model, drive, batch_size)], (), **readout)
    scalar_input = drive if drive.ndim == 2 else drive[..., input_channel]
    batch_shape, systems = _linear_systems(eigenvalues, state_matrix, input_vector)
    states = (simulate_linear_states(scalar_input, **system) for system in systems)  # one at a time
    return _readout_memories(states, batch_shape, **readout)
