from keras_ssm.layers.base import ArrayInitializer, BaseSSM
from keras_ssm.layers.block import SSMBlock
from keras_ssm.layers.pooling import LastStep, MaskedMeanPooling
from keras_ssm.layers.s4d import S4D
from keras_ssm.layers.s4 import S4

__all__ = ["ArrayInitializer", "BaseSSM", "LastStep", "MaskedMeanPooling", "S4", "S4D", "SSMBlock"]
