"""Full-float32 contractions for the SSM kernels, whatever the backend's default matmul precision.

On recent NVIDIA GPUs, jax and tensorflow run float32 matmuls and einsums in TF32 by default (a
10-bit mantissa: inputs rounded to about 5e-4 relative), and any backend can be told to do so
globally (`jax.default_matmul_precision`, `torch.set_float32_matmul_precision("high")`). The SSM
kernels (S4D's Vandermonde products, S4's Cauchy sums and C~ squarings) feed every output of a
layer, and at long lengths their sums have many terms, so they call `precise_einsum` /
`precise_matmul` instead of `keras.ops.einsum` / `keras.ops.matmul`. Everything else (the model's
Dense layers in particular) keeps the backend's default.

What "precise" means per backend (decided once, here):

- jax: `precision=jax.lax.Precision.HIGHEST` on the contraction (carried by every dot_general in
  the program, forward and backward; a CPU ignores it, a GPU then runs true float32).
- tensorflow: TF32 can only be switched off for the whole process
  (`tf.config.experimental.enable_tensor_float_32_execution(False)`), which would also slow the
  Dense layers. Instead, when TensorFlow sees a GPU and TF32 is enabled, the contraction runs in
  float64 and the result is cast back to float32 (TF32 never applies to float64; gradients flow
  through the casts in float64 too). On a CPU, or with TF32 disabled, it is a plain float32 einsum.
- torch: its default float32 matmul precision is already "highest" (full float32), so the contraction
  is a plain einsum. If the process lowered it (`torch.set_float32_matmul_precision("high"|"medium")`,
  or `torch.backends.cuda.matmul.allow_tf32 = True`), the contraction runs in float64 as on
  tensorflow, forward and backward.

The float64 path costs little: the contracted tensors of the kernels are O(H N sqrt(L)) (S4D),
O(H N L / 2) (S4 Cauchy sums) and O(H N^2) (S4 squarings), small beside the layer's FFTs and Dense.

The setting (process-wide; "highest" unless changed):

    keras_ssm.ops.set_kernel_precision("default")   # plain keras.ops.einsum / matmul from now on
    with keras_ssm.ops.kernel_precision("default"):  # the same within the block only
        kernel = layer.kernel(length)
    keras_ssm.ops.get_kernel_precision()            # "highest" | "default"

"default" gives the kernels the backend's default matmul precision (TF32 on recent NVIDIA GPUs for jax
and tensorflow), e.g. to measure what the precise contractions buy (benchmarks/gpu_check.py). It is
read when a contraction runs or is traced: a function compiled earlier keeps the precision it was
traced with.
"""

import contextlib
import functools

import keras
from keras import ops

KERNEL_PRECISIONS = ("highest", "default")
_kernel_precision = "highest"


def set_kernel_precision(precision: str) -> None:
    """Set the precision of the kernels' contractions: "highest" (full float32, as shipped) or "default"
    (the backend's default matmul precision: plain keras.ops.einsum / matmul)."""
    global _kernel_precision
    if precision not in KERNEL_PRECISIONS:
        raise ValueError(f"`precision` must be one of {KERNEL_PRECISIONS}, got {precision!r}.")
    _kernel_precision = precision


def get_kernel_precision() -> str:
    """The current kernel precision: "highest" or "default" (see `set_kernel_precision`)."""
    return _kernel_precision


@contextlib.contextmanager
def kernel_precision(precision: str):
    """Within the block, the kernels' contractions use ``precision`` (`set_kernel_precision`); restored after."""
    previous = get_kernel_precision()
    set_kernel_precision(precision)
    try:
        yield
    finally:
        set_kernel_precision(previous)


def precise_einsum(subscripts, *operands):
    """`keras.ops.einsum(subscripts, *operands)` at full float32 precision on every backend.

    Same arguments, shapes and result dtype (float32 in, float32 out) as `keras.ops.einsum`; see the
    module docstring for how each backend is made to keep full precision. With the kernel precision
    "default" (`set_kernel_precision`), exactly `keras.ops.einsum`.
    """
    backend = keras.backend.backend()
    if _kernel_precision == "default" or _symbolic(operands):
        return ops.einsum(subscripts, *operands)
    operands = [ops.convert_to_tensor(x) for x in operands]
    if backend == "jax":
        # Backend modules load on their own backend only (measured import: jax 1.4 s, tensorflow 5.3 s,
        # torch 2.2 s; each may be absent).
        import jax
        import jax.numpy as jnp

        return jnp.einsum(subscripts, *operands, precision=jax.lax.Precision.HIGHEST)
    if backend in ("tensorflow", "torch") and _common_float_dtype(operands) == "float32" and _needs_float64(backend):
        operands = [ops.cast(x, "float64") for x in operands]
        return ops.cast(ops.einsum(subscripts, *operands), "float32")
    return ops.einsum(subscripts, *operands)


def precise_matmul(x1, x2):
    """`keras.ops.matmul(x1, x2)` at full float32 precision on every backend (as `precise_einsum`)."""
    backend = keras.backend.backend()
    if _kernel_precision == "default" or _symbolic((x1, x2)):
        return ops.matmul(x1, x2)
    x1, x2 = ops.convert_to_tensor(x1), ops.convert_to_tensor(x2)
    if backend == "jax":
        import jax  # loaded on its own backend only (see precise_einsum)
        import jax.numpy as jnp

        return jnp.matmul(x1, x2, precision=jax.lax.Precision.HIGHEST)
    if backend in ("tensorflow", "torch") and _common_float_dtype((x1, x2)) == "float32" and _needs_float64(backend):
        return ops.cast(ops.matmul(ops.cast(x1, "float64"), ops.cast(x2, "float64")), "float32")
    return ops.matmul(x1, x2)


def reduced_precision_active(backend=None):
    """Whether plain float32 contractions of ``backend`` (default: the Keras backend) may run below
    full float32 here (TF32/bfloat16), i.e. whether `precise_einsum` takes its float64 path.

    jax always answers False: its precise path is the HIGHEST precision flag, not float64.
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return False
    return _needs_float64(backend)


def _needs_float64(backend):
    if backend == "tensorflow":
        import tensorflow as tf  # 5.3 s to import, on its own backend only

        return bool(tf.config.experimental.tensor_float_32_execution_enabled()) and _tensorflow_sees_gpu()
    if backend == "torch":
        return _torch_reduced_precision()
    return False


def _torch_reduced_precision():
    import torch  # 2.2 s to import, on its own backend only

    # torch >= 2.9: per-backend settings ("ieee" = full float32, "tf32" / "bf16" = reduced, "none" = inherit)
    for name in ("cuda", "mkldnn"):
        setting = getattr(getattr(getattr(torch.backends, name, None), "matmul", None), "fp32_precision", None)
        if setting in ("tf32", "bf16"):
            return True
    try:  # the process-wide setting (legacy API)
        return (torch.get_float32_matmul_precision() != "highest"
                or bool(getattr(torch.backends.cuda.matmul, "allow_tf32", False)))
    except RuntimeError:  # legacy and new APIs were mixed: torch leaves it to the per-backend settings above
        return False


@functools.lru_cache(maxsize=None)
def _tensorflow_sees_gpu():
    import tensorflow as tf  # 5.3 s to import, on its own backend only

    return bool(tf.config.list_logical_devices("GPU"))


def _symbolic(operands):
    return any(isinstance(x, keras.KerasTensor) for x in operands)


def _common_float_dtype(operands):
    dtypes = {keras.backend.standardize_dtype(x.dtype) for x in operands}
    return dtypes.pop() if len(dtypes) == 1 else None
