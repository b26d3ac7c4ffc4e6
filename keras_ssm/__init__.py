"""keras_ssm: structured state space models (S4, S4D) for Keras 3."""

from keras_ssm import ops
from keras_ssm.layers import BaseSSM, S4D, SSMBlock

__version__ = "0.1.0"

__all__ = ["BaseSSM", "S4D", "SSMBlock", "ops", "__version__"]
