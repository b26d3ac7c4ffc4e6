"""Option values of the keras_ssm layers, importable without Keras (configs and command lines check
against these before a model is built)."""

from keras_ssm.ops.discrete import DISCRETIZATIONS

#: `SSMBlock(norm=...)`: BatchNormalization or LayerNormalization.
NORMS = ("batch", "layer")

__all__ = ["DISCRETIZATIONS", "NORMS"]
