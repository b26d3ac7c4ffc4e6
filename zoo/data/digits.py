"""Digits: scikit-learn's ``load_digits`` (1797 real 8x8 handwritten digits shipped inside the sklearn
wheel, pixel values 0..16) as 64-step sequences, row-major, 10 classes. A small offline stand-in for
quick runs and tests.

Encodings (option ``encoding``):
  "tokens": id = value + 1 (1..17), 0 = pad (never present), ``vocab_size = 18``;
  "real" (default): one feature ``(value / 16 - 0.5) / 0.5`` in [-1, 1], ``n_features = 1``.

Split: deterministic stratified 70% / 15% / 15% train / val / test (per class, shuffled with
``data_seed``; each class is cut at the rounded cumulative fractions): 1258 / 270 / 269 examples.
"""

from __future__ import annotations

import numpy as np

from ._common import SplitData
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

NUM_CLASSES = 10
SEQ_LEN = 64
MAX_VALUE = 16
VOCAB_SIZE = MAX_VALUE + 2
VALUE_OFFSET = 1
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
DIGITS_OPTIONS = {"encoding": "real", "data_seed": 0}


def digits_encoding(encoding: str) -> InputEncoding:
    if encoding == "tokens":
        return InputEncoding("tokens", offset=VALUE_OFFSET)
    return InputEncoding("real", scale=1.0 / MAX_VALUE, mean=0.5, std=0.5)


def stratified_split_indices(labels: np.ndarray, fractions: dict, seed: int) -> dict:
    """Per class: shuffle that class's indices with ``seed``, cut them by the cumulative fractions.

    Returns {split: sorted index array}; every class is spread over the splits in the same proportions.
    """
    rng = np.random.default_rng(seed)
    names = list(fractions)
    cumulative = np.cumsum([fractions[name] for name in names])
    parts = {name: [] for name in names}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.round(cumulative * len(members)).astype(int)
        start = 0
        for name, stop in zip(names, cuts):
            parts[name].append(members[start:stop])
            start = stop
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def load_digits_split(split: str, *, data_seed: int) -> tuple[SplitData, int]:
    """Return (split data of int values 0..16, shape (N, 64) uint8, seq_len = 64)."""
    from sklearn.datasets import load_digits  # here: 1.4 s to import (measured), paid by this task alone

    bunch = load_digits()
    values = np.asarray(bunch.data, dtype=np.uint8)  # (1797, 64), row-major 8x8
    labels = np.asarray(bunch.target, dtype=np.int64)
    index = stratified_split_indices(labels, SPLIT_FRACTIONS, data_seed)[split]
    return SplitData(inputs=(values[index],), labels=labels[index]), SEQ_LEN


def load_digits_task_split(split: str, data_dir, cache_dir, options: dict) -> tuple[SplitData, int]:
    return load_digits_split(split, data_seed=options["data_seed"])


register_task(TaskSpec(name="digits", options=DIGITS_OPTIONS, load=load_digits_task_split,
                       encoding=lambda options: digits_encoding(options["encoding"]), seq_len=SEQ_LEN,
                       vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES))
