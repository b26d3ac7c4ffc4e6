"""tf.data pipelines over in-memory splits: shuffled index -> batched gather -> encode -> pad to seq_len.

The split arrays are held once in memory as (ragged) tensors; each batch is one ``tf.gather`` of
``batch_size`` rows, so no per-example Python runs during training. Every batch has the fixed
shape (batch, seq_len[, n_features]) so jit-compiled train steps do not retrace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_ssm.devices import configure_tensorflow

from ._common import RaggedArray, SplitData


def tensorflow():
    """The TensorFlow module for the input pipeline: the one place the zoo imports it for data.

    Where TensorFlow only feeds another Keras backend (jax, torch), its GPUs are hidden so that tf.data
    takes no GPU memory; with the tensorflow backend, GPU memory grows on demand
    (`keras_ssm.devices.configure_tensorflow`). Call before any other TensorFlow use (tfds included).
    """
    return configure_tensorflow()


@dataclass(frozen=True)
class InputEncoding:
    """How stored values become model inputs.

    kind="tokens": ``id = stored + offset`` for every stored entry, then right-padded with 0 to seq_len;
        output int32 (batch, seq_len).
    kind="real": ``x = (stored * scale - mean) / std``; output float32 (batch, seq_len, 1).
        Only for fixed-length (dense) inputs.
    """

    kind: str
    offset: int = 0
    scale: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        if self.kind not in ("tokens", "real"):
            raise ValueError(f"InputEncoding.kind must be 'tokens' or 'real', got {self.kind!r}")


def _to_tensor(x):
    tf = tensorflow()

    if isinstance(x, RaggedArray):
        return tf.RaggedTensor.from_row_splits(
            tf.constant(x.values), tf.constant(x.row_splits, dtype=tf.int64), validate=False
        )
    return tf.constant(np.ascontiguousarray(x))


def _encode_batch(batch, encoding: InputEncoding, seq_len: int):
    tf = tensorflow()

    if encoding.kind == "tokens":
        if isinstance(batch, tf.RaggedTensor):
            batch = tf.ragged.map_flat_values(lambda v: tf.cast(v, tf.int32) + encoding.offset, batch)
            return batch.to_tensor(default_value=0, shape=[None, seq_len])
        tokens = tf.cast(batch, tf.int32) + encoding.offset
        return tf.ensure_shape(tokens, [None, seq_len])
    if isinstance(batch, tf.RaggedTensor):
        raise ValueError("real-valued encoding needs fixed-length inputs")
    values = (tf.cast(batch, tf.float32) * encoding.scale - encoding.mean) / encoding.std
    return tf.ensure_shape(values[..., None], [None, seq_len, 1])


def make_dataset(
    split: SplitData,
    *,
    seq_len: int,
    encoding: InputEncoding,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_remainder: bool,
    epochs: tuple[int, int] | None = None,
):
    """Batched tf.data.Dataset of (x, y) over ``split``.

    x: one tensor (batch, seq_len) int32 / (batch, seq_len, 1) float32, or a tuple of them when the
    split has several inputs; y: int32 (batch,). With ``shuffle`` the order is a seeded permutation
    that changes every epoch (``reshuffle_each_iteration``), reproducible across runs for a given seed.

    With ``epochs=(first, stop)`` the dataset is the batches of epochs first, ..., stop - 1 one after
    the other (fit it with ``steps_per_epoch``), and epoch e's order is the permutation
    ``tf.random.experimental.stateless_shuffle(range(n), seed=(seed, e))``: a pure function of (seed, e),
    so a run resumed at epoch e sees the same batches as one that never stopped.
    """
    tf = tensorflow()

    num_examples = len(split)
    inputs = tuple(_to_tensor(x) for x in split.inputs)
    labels = tf.constant(split.labels.astype(np.int32))

    if epochs is not None:
        first, stop = (int(e) for e in epochs)

        def epoch_batches(epoch):
            order = tf.range(num_examples, dtype=tf.int64)
            if shuffle:
                key = tf.stack([tf.constant(int(seed), tf.int64), epoch])
                order = tf.random.experimental.stateless_shuffle(order, seed=key)
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)

        indices = tf.data.Dataset.range(first, stop).flat_map(epoch_batches)
    else:
        indices = tf.data.Dataset.range(num_examples)
        if shuffle:
            indices = indices.shuffle(num_examples, seed=int(seed), reshuffle_each_iteration=True)
        indices = indices.batch(batch_size, drop_remainder=drop_remainder)

    def gather(batch_indices):
        xs = tuple(_encode_batch(tf.gather(x, batch_indices), encoding, seq_len) for x in inputs)
        return (xs[0] if len(xs) == 1 else xs), tf.gather(labels, batch_indices)

    dataset = indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
