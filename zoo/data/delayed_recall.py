"""Delayed recall: a synthetic memory task whose difficulty the memory function predicts directly.

Each example is a sequence of ``seq_len`` symbols drawn i.i.d. uniformly from ``{0, ..., num_classes-1}``;
its label is the symbol ``delay`` steps before the last position,

    x = (s_0, ..., s_{L-1}),  s_t ~ U{0..K-1} i.i.d.,   y = s_{L-1-delay}     (L = seq_len, K = num_classes).

A causal model that reads out its final position must therefore hold the input from lag ``delay`` in its
state: a linear SSM channel can reconstruct a fraction MF(delay) of it (keras_ssm.memory), so lags where the
initial memory function is ~0 are where the theory predicts that (i) a reservoir (fixed eigenvalues) cannot
solve the task and (ii) learning the eigenvalues gets no gradient signal to extend the memory there. Every
symbol is equally likely, so chance accuracy is 1/K, and the label is independent of every other position.

Two task names share this generator and differ only in their default ``delay``:

    delayed_recall        the long variant, delay 200 at seq_len 256 (beyond the initial memory of the zoo's
                          delayed-recall presets, see zoo.configs)
    delayed_recall_short  the short variant, delay 4: only short, accurate memory matters

Encodings (option ``encoding``):
  "tokens" (default): id = symbol + 1 (1..K), 0 = pad (never present), ``vocab_size = K + 1``;
  "real": one feature ``2 s / (K - 1) - 1`` in [-1, 1], ``n_features = 1``.

Splits: train / val / test are drawn independently from ``numpy.random.default_rng((data_seed, split))``
with split = 0, 1, 2, so every split is reproducible and no example is shared by construction (beyond
chance collisions of K**L sequences). Nothing is cached: generation takes milliseconds.
"""

from __future__ import annotations

import numpy as np

from ._common import SplitData, check_positive_int
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

SYMBOL_OFFSET = 1
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
#: Defaults of the long variant ("delayed_recall").
DELAYED_RECALL_OPTIONS = {
    "delay": 200,
    "seq_len": 256,
    "num_classes": 8,
    "num_train": 4000,
    "num_val": 500,
    "num_test": 1000,
    "encoding": "tokens",
    "data_seed": 0,
}
#: Defaults of the short variant ("delayed_recall_short"): the same except the delay.
DELAYED_RECALL_SHORT_OPTIONS = {**DELAYED_RECALL_OPTIONS, "delay": 4}


def check_delayed_recall_options(delay, seq_len, num_classes) -> None:
    """Raise ValueError unless 0 <= delay < seq_len and num_classes >= 2 (at most 65535)."""
    check_positive_int("seq_len", seq_len)
    check_positive_int("delay", delay, minimum=0)
    check_positive_int("num_classes", num_classes, minimum=2)
    if delay >= seq_len:
        raise ValueError(f"delay must be < seq_len (the label is the symbol at position seq_len-1-delay), "
                         f"got delay={delay}, seq_len={seq_len}")
    if num_classes > np.iinfo(np.uint16).max:
        raise ValueError(f"num_classes must be <= {np.iinfo(np.uint16).max}, got {num_classes}")


def label_position(seq_len: int, delay: int) -> int:
    """Index of the recalled symbol: seq_len - 1 - delay."""
    return seq_len - 1 - delay


def generate_delayed_recall(num_examples: int, *, seq_len: int, delay: int, num_classes: int,
                            seed) -> tuple[np.ndarray, np.ndarray]:
    """i.i.d. uniform symbols and their delayed labels.

    Returns:
        (symbols, labels): symbols (num_examples, seq_len) uint8 (uint16 for num_classes > 256) with values
        0..num_classes-1; labels int64 (num_examples,) = symbols[:, seq_len - 1 - delay].
    """
    check_delayed_recall_options(delay, seq_len, num_classes)
    check_positive_int("num_examples", num_examples)
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, num_classes, size=(num_examples, seq_len), dtype=dtype)
    labels = symbols[:, label_position(seq_len, delay)].astype(np.int64)
    return symbols, labels


def delayed_recall_encoding(encoding: str, num_classes: int) -> InputEncoding:
    """tokens: id = symbol + 1; real: x = 2 s / (K - 1) - 1."""
    if encoding == "tokens":
        return InputEncoding("tokens", offset=SYMBOL_OFFSET)
    return InputEncoding("real", scale=2.0 / (num_classes - 1), mean=1.0, std=1.0)


def vocab_size(num_classes: int) -> int:
    """Token vocabulary including the pad id 0."""
    return num_classes + SYMBOL_OFFSET


def load_delayed_recall(split: str, *, delay, seq_len, num_classes, num_train, num_val, num_test,
                        data_seed) -> tuple[SplitData, int]:
    """Return (split data, seq_len) of the delayed-recall task (see the module docstring)."""
    sizes = {"train": num_train, "val": num_val, "test": num_test}
    symbols, labels = generate_delayed_recall(sizes[split], seq_len=seq_len, delay=delay, num_classes=num_classes,
                                              seed=(int(data_seed), SPLIT_INDEX[split]))
    return SplitData(inputs=(symbols,), labels=labels), int(seq_len)


def load_delayed_recall_split(split: str, data_dir, cache_dir, options: dict) -> tuple[SplitData, int]:
    return load_delayed_recall(split, **{key: value for key, value in options.items() if key != "encoding"})


def _check_options(options: dict) -> None:
    check_delayed_recall_options(options["delay"], options["seq_len"], options["num_classes"])


def _shape(options: dict) -> dict:
    return {"seq_len": int(options["seq_len"]), "num_classes": int(options["num_classes"]),
            "vocab_size": vocab_size(int(options["num_classes"]))}


def _encoding(options: dict) -> InputEncoding:
    return delayed_recall_encoding(options["encoding"], options["num_classes"])


for _name, _options in (("delayed_recall", DELAYED_RECALL_OPTIONS),
                        ("delayed_recall_short", DELAYED_RECALL_SHORT_OPTIONS)):
    register_task(TaskSpec(name=_name, options=_options, load=load_delayed_recall_split, encoding=_encoding,
                           **_shape(_options), check_options=_check_options, shape=_shape))
