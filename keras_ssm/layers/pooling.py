"""Sequence pooling that respects a padding mask: the mean over real positions, or the last real position."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ssm")
class MaskedMeanPooling(keras.layers.Layer):
    """(batch, length, H) -> (batch, H): the mean over the unmasked positions.

        out[b] = sum_t m[b, t] x[b, t] / max(sum_t m[b, t], 1)

    Padded positions are removed by selection (`where`), not by multiplying with the mask, so a
    NaN or inf at a padded position cannot reach the output, and an all-padding row gives 0 instead
    of 0 / 0. Without a mask it is the plain mean over time (as `GlobalAveragePooling1D`).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        keep = ops.cast(mask, "bool")[..., None]
        total = ops.sum(ops.where(keep, inputs, ops.zeros_like(inputs)), axis=1)
        count = ops.sum(ops.cast(keep, inputs.dtype), axis=1)
        return total / ops.maximum(count, ops.ones_like(count))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="keras_ssm")
class LastStep(keras.layers.Layer):
    """(batch, length, H) -> (batch, H): the features at the last position, or with a padding mask
    (right padding) at the last unmasked position ``sum(mask) - 1`` (position 0 for all-padding rows)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs[:, -1, :]
        last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(inputs, last[:, None, None], axis=1)[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, mask=None):
        return None


# Models saved before these layers moved here from the zoo name LastStep "keras_ssm_zoo>LastStep".
keras.saving.get_custom_objects().setdefault("keras_ssm_zoo>LastStep", LastStep)
