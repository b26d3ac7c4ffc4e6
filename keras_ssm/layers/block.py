"""SSMBlock: normalisation, SSM layer, dropout and residual connection."""

import keras

from keras_ssm.choices import NORMS
from keras_ssm.layers.base import check_rate


@keras.saving.register_keras_serializable(package="keras_ssm")
class SSMBlock(keras.layers.Layer):
    """Residual block around an SSM layer, as used on Long Range Arena.

        prenorm=True:   x + dropout(ssm(norm(x)))
        prenorm=False:  norm(x + dropout(ssm(x)))

    Args:
        layer: the SSM layer instance (e.g. `keras_ssm.S4D(...)`), shape-preserving on (batch, length, H).
        norm: "batch" (BatchNormalization over batch and length, padded positions excluded) or "layer".
        prenorm: normalise before the SSM (True) or after the residual sum (False).
        dropout: channel dropout rate on the SSM branch.
        norm_momentum: momentum of BatchNormalization's moving statistics. The default 0.9 is the
            reference training's (PyTorch's momentum 0.1); Keras' own 0.99 needs ~1000 steps to forget
            the initial statistics, which leaves short runs evaluating with stale ones.
    """

    def __init__(self, layer, norm="layer", prenorm=True, dropout=0.0, norm_momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"`layer` must be a Keras layer instance, got {layer!r}.")
        if norm not in NORMS:
            raise ValueError(f"`norm` must be one of {NORMS}, got {norm!r}.")
        if not isinstance(prenorm, bool):
            raise ValueError(f"`prenorm` must be True or False, got {prenorm!r}.")
        check_rate("dropout", dropout)
        check_rate("norm_momentum", norm_momentum)
        self.layer = layer
        self.norm = norm
        self.prenorm = prenorm
        self.dropout = float(dropout)
        self.norm_momentum = float(norm_momentum)
        if norm == "batch":
            self.norm_layer = keras.layers.BatchNormalization(
                momentum=self.norm_momentum, name="norm", dtype=self.dtype_policy
            )
        else:
            self.norm_layer = keras.layers.LayerNormalization(name="norm", dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.SpatialDropout1D(self.dropout, dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"SSMBlock expects inputs of rank 3 (batch, length, features), got shape {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"SSMBlock needs a known feature dimension (last axis), got shape {tuple(input_shape)}."
            )
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: int(input_shape[-1])})
        self.norm_layer.build(input_shape)
        if not self.layer.built:
            self.layer.build(input_shape)

    def _normalize(self, x, training, mask):
        if self.norm == "batch":
            return self.norm_layer(x, training=training, mask=mask)
        return self.norm_layer(x)

    def call(self, inputs, training=None, mask=None):
        x = inputs
        z = self._normalize(x, training, mask) if self.prenorm else x
        z = self.layer(z, training=training, mask=mask)
        z = self.dropout_layer(z, training=training)
        x = x + z
        return x if self.prenorm else self._normalize(x, training, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "norm": self.norm,
                "prenorm": self.prenorm,
                "dropout": self.dropout,
                "norm_momentum": self.norm_momentum,
            }
        )
        return config
