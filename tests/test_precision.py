"""The SSM kernels' contractions keep full float32 precision whatever the backend's default.

A CPU ignores matmul precision settings, so accuracy cannot be seen here; instead the tests check
the program the backend builds: on jax every dot_general of the kernel (forward and backward) carries
Precision.HIGHEST even under `jax.default_matmul_precision("bfloat16")`, while the model's Dense layer
keeps the default. On tensorflow and torch the float64 path (taken on a TF32-enabled GPU, or when torch's
float32 matmul precision was lowered) is exercised by forcing its condition.
"""

import keras
import numpy as np
import pytest

import keras_ssm
from keras_ssm.ops import precision

BACKEND = keras.backend.backend()
# Backend modules are imported inside the tests of their backend only (jax 1.4 s, tensorflow 5.3 s, torch 2.2 s).


def _dot_generals(jaxpr):
    """Every dot_general equation in a jaxpr, sub-jaxprs (pjit, custom_jvp, while, scan) included."""
    from jax.extend import core

    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(sub, core.ClosedJaxpr):
                    found += _dot_generals(sub.jaxpr)
                elif isinstance(sub, core.Jaxpr):
                    found += _dot_generals(sub)
    return found


def _is_highest(eqn):
    import jax

    prec = eqn.params["precision"]
    return prec is not None and all(p == jax.lax.Precision.HIGHEST for p in prec)


def _kernel_jaxprs(layer, length):
    """jaxprs of the layer's kernel and of the gradient of its sum w.r.t. the layer's trainable variables."""
    import jax

    variables = layer.trainable_variables

    def kernel_sum(params):
        with keras.StatelessScope(state_mapping=list(zip(variables, params))):
            return keras.ops.sum(layer.convolution_kernel(length))

    values = [v.value for v in variables]
    return jax.make_jaxpr(kernel_sum)(values).jaxpr, jax.make_jaxpr(jax.grad(kernel_sum))(values).jaxpr


@pytest.mark.skipif(BACKEND != "jax", reason="jaxpr inspection needs the jax backend")
@pytest.mark.parametrize("layer_factory", [
    lambda: keras_ssm.S4D(n=8, seed=0),
    lambda: keras_ssm.S4D(n=8, discretization="bilinear", bidirectional=True, seed=0),
    lambda: keras_ssm.S4(n=8, seed=0),
    lambda: keras_ssm.S4(n=8, rank=2, bidirectional=True, seed=0),
], ids=["s4d-zoh", "s4d-bilinear-bidirectional", "s4", "s4-rank2-bidirectional"])
def test_kernel_contractions_carry_highest_precision_under_bfloat16_default(layer_factory):
    import jax

    layer = layer_factory()
    layer.build((2, 64, 4))
    with jax.default_matmul_precision("bfloat16"):
        forward, backward = _kernel_jaxprs(layer, 64)
    for name, jaxpr in (("forward", forward), ("backward", backward)):
        dots = _dot_generals(jaxpr)
        assert dots, f"no dot_general in the {name} kernel program"
        low = [str(eqn.params["precision"]) for eqn in dots if not _is_highest(eqn)]
        assert not low, f"{name}: {len(low)} of {len(dots)} kernel dot_generals below HIGHEST: {low}"


@pytest.mark.skipif(BACKEND != "jax", reason="jaxpr inspection needs the jax backend")
def test_dense_layers_keep_the_backend_default_and_hlo_carries_highest():
    """In a whole layer call, only the kernel's contractions are HIGHEST: the Dense(2H) keeps the default."""
    import jax

    layer = keras_ssm.S4D(n=8, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 32, 4)).astype("float32")
    layer.build(x.shape)
    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]

    def call(params, inputs):
        return layer.stateless_call(params, fixed, inputs)[0]

    with jax.default_matmul_precision("bfloat16"):
        jaxpr = jax.make_jaxpr(call)(trainable, x).jaxpr
        lowered = jax.jit(call).lower(trainable, x).as_text()
    dots = _dot_generals(jaxpr)
    highest = [eqn for eqn in dots if _is_highest(eqn)]
    others = [eqn for eqn in dots if not _is_highest(eqn)]
    assert highest, "the Vandermonde product should carry HIGHEST"
    assert others, "the Dense(2H) matmul should keep the backend default precision"
    assert lowered.count("HIGHEST") >= 2  # carried into the program XLA compiles


@pytest.mark.skipif(BACKEND == "jax", reason="the float64 path is for tensorflow and torch")
def test_float64_path_matches_float64_reference(monkeypatch):
    """With reduced precision active (forced), contractions run in float64 and return float32."""
    monkeypatch.setattr(precision, "_needs_float64", lambda backend: True)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5, 7)).astype("float32")
    b = rng.normal(size=(3, 7, 4)).astype("float32")
    expected = np.einsum("hij,hjk->hik", a.astype("float64"), b.astype("float64"))
    for result in (precision.precise_einsum("hij,hjk->hik", a, b), precision.precise_matmul(a, b)):
        assert keras.backend.standardize_dtype(result.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(result), expected, rtol=1e-6, atol=1e-6)
    assert precision.reduced_precision_active()


@pytest.mark.skipif(BACKEND != "torch", reason="torch precision flags")
def test_torch_lowered_matmul_precision_is_detected():
    import torch

    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert not precision.reduced_precision_active("torch")
        torch.set_float32_matmul_precision("high")
        assert precision.reduced_precision_active("torch")
    finally:
        torch.set_float32_matmul_precision(previous)
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9's per-backend setting
        saved = matmul.fp32_precision
        try:
            matmul.fp32_precision = "tf32"
            assert precision.reduced_precision_active("torch")
            matmul.fp32_precision = "ieee"
            assert not precision.reduced_precision_active("torch")
        finally:
            matmul.fp32_precision = saved


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's graph")
@pytest.mark.parametrize("kernel_precision, dtype", [("highest", "float64"), ("default", "float32")])
def test_tensorflow_float64_path_in_graph(monkeypatch, kernel_precision, dtype):
    """The float64 path (forced) in a tf.function graph; the "default" kernel precision keeps float32."""
    import tensorflow as tf

    monkeypatch.setattr(precision, "_needs_float64", lambda backend: True)

    @tf.function
    def f(a, b):
        return precision.precise_einsum("ij,jk->ik", a, b)

    with keras_ssm.ops.kernel_precision(kernel_precision):
        graph = f.get_concrete_function(tf.TensorSpec((3, 4), tf.float32), tf.TensorSpec((4, 2), tf.float32)).graph
    contraction_dtypes = {op.get_attr("T") for op in graph.get_operations()
                          if op.type in ("Einsum", "MatMul", "BatchMatMulV2")}
    assert contraction_dtypes == {tf.as_dtype(dtype)}


# ---------------------------------------------------------------------------------------------
# The documented switch: keras_ssm.ops.set_kernel_precision / kernel_precision.

def test_kernel_precision_setting_is_validated_and_restored():
    assert keras_ssm.ops.get_kernel_precision() == "highest"
    with pytest.raises(ValueError, match="`precision` must be one of"):
        keras_ssm.ops.set_kernel_precision("tf32")
    with pytest.raises(RuntimeError):
        with keras_ssm.ops.kernel_precision("default"):
            assert keras_ssm.ops.get_kernel_precision() == "default"
            raise RuntimeError("inside the block")
    assert keras_ssm.ops.get_kernel_precision() == "highest"
    keras_ssm.ops.set_kernel_precision("default")
    try:
        assert keras_ssm.ops.get_kernel_precision() == "default"
    finally:
        keras_ssm.ops.set_kernel_precision("highest")


def test_default_kernel_precision_is_the_plain_contraction(monkeypatch):
    """"default": exactly keras.ops.einsum / matmul, even where the precise path would take float64."""
    monkeypatch.setattr(precision, "_needs_float64", lambda backend: True)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 5, 7)).astype("float32")
    b = rng.normal(size=(3, 7, 4)).astype("float32")
    with keras_ssm.ops.kernel_precision("default"):
        pairs = [(precision.precise_einsum("hij,hjk->hik", a, b), keras.ops.einsum("hij,hjk->hik", a, b)),
                 (precision.precise_matmul(a, b), keras.ops.matmul(a, b))]
    for got, plain in pairs:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(plain))


@pytest.mark.skipif(BACKEND != "jax", reason="jaxpr inspection needs the jax backend")
def test_default_kernel_precision_drops_highest_from_the_kernel_program():
    layer = keras_ssm.S4(n=8, seed=0)
    layer.build((2, 64, 4))
    with keras_ssm.ops.kernel_precision("default"):
        forward, _ = _kernel_jaxprs(layer, 64)
    assert not any(_is_highest(eqn) for eqn in _dot_generals(forward))
    forward, _ = _kernel_jaxprs(layer, 64)  # restored after the block
    assert all(_is_highest(eqn) for eqn in _dot_generals(forward))
