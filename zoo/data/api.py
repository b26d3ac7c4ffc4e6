"""``load_task``: one entry point for the LRA tasks (and the small ``digits`` stand-in).

See the package docstring (``zoo.data``) for the per-task sources, options and encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Each task module registers its TaskSpec on import, in this order (the order of TASKS).
from . import listops, text, retrieval, image, pathfinder, digits, delayed_recall  # noqa: F401, I001
from ._common import DataError, SplitData, check_choice, check_positive_int, logger, resolve_cache_dir
from .pipeline import make_dataset, tensorflow
from .registry import TASKS, TaskSpec, get_task, register_task

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
SPLITS = ("train", "val", "test")
ENCODINGS = ("tokens", "real")


@dataclass(frozen=True)
class TaskInfo:
    """What a model needs to know about a task split.

    vocab_size includes the pad id 0 (None for real-valued inputs); n_features is the feature count of
    real-valued inputs (None for token inputs); class_counts[c] = examples of class c in this split.
    """

    name: str
    seq_len: int
    vocab_size: int | None
    n_features: int | None
    num_classes: int
    two_inputs: bool
    num_examples: int
    class_counts: tuple

    @property
    def majority_rate(self) -> float:
        """Accuracy of always predicting the most frequent class of this split."""
        return max(self.class_counts) / self.num_examples if self.num_examples else 0.0


def task_options(name: str) -> dict:
    """The task-specific options of ``name`` and their defaults."""
    return dict(get_task(name).options)


def resolve_task_options(name: str, options: dict) -> dict:
    """``task_options(name)`` updated by ``options``, checked: an unknown option, a size, length, seed or
    worker count that is not a positive integer, an encoding not in ENCODINGS, or a value the task's own
    ``check_options`` refuses is a ValueError naming the option."""
    spec = get_task(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for task {name!r}; allowed options: {sorted(spec.options)}"
        )
    resolved = {**spec.options, **options}
    for key in ("num_train", "num_val", "num_test", "num_examples", "max_length"):
        if key in resolved:
            check_positive_int(key, resolved[key])
    for key in ("min_length", "data_seed"):
        if key in resolved:
            check_positive_int(key, resolved[key], minimum=0)
    if resolved.get("num_workers") is not None:
        check_positive_int("num_workers", resolved["num_workers"])
    if "encoding" in resolved:
        check_choice("encoding", resolved["encoding"], ENCODINGS)
    if spec.check_options is not None:
        spec.check_options(resolved)
    return resolved


def load_task_arrays(name: str, split: str, *, data_dir=None, cache_dir=None, **options):
    """Load a split as numpy arrays, without TensorFlow (except the tfds / grayscale code paths).

    Returns (SplitData, TaskInfo, InputEncoding); ``load_task`` wraps this in a tf.data pipeline.
    """
    spec = get_task(name)
    check_choice("split", split, SPLITS)
    opts = resolve_task_options(name, options)
    cache_dir = resolve_cache_dir(cache_dir)
    data_dir = None if data_dir is None else Path(data_dir).expanduser()
    data, seq_len = spec.load(split, data_dir, cache_dir, opts)
    encoding = spec.encoding(opts)
    shape = spec.input_shape(opts)
    vocab_size, n_features, num_classes = shape["vocab_size"], shape["n_features"], shape["num_classes"]
    if len(data) == 0:  # the readers name the file; this guards every source (never a tf.data buffer_size error)
        raise DataError(f"{name}/{split} has no examples (data_dir={data_dir}, cache_dir={cache_dir}); check the "
                        f"split's file or options")
    counts = np.bincount(data.labels, minlength=num_classes)
    info = TaskInfo(name=name, seq_len=int(seq_len), vocab_size=vocab_size, n_features=n_features,
                    num_classes=num_classes, two_inputs=spec.two_inputs, num_examples=len(data),
                    class_counts=tuple(int(c) for c in counts))
    logger.info("%s/%s: %d examples, seq_len %d, class counts %s", name, split, info.num_examples, info.seq_len,
                info.class_counts)
    return data, info, encoding


def load_task(name: str, split: str, *, data_dir=None, cache_dir=None, batch_size: int = 32, shuffle=None,
              seed: int = 0, drop_remainder: bool = False, epochs=None, **options):
    """Batched, padded tf.data pipeline of one split of an LRA task, and its TaskInfo.

    Args:
        name: one of TASKS.
        split: "train", "val" or "test".
        data_dir: where the official files / tfds data live (per task, see ``zoo.data``); None = our
            generator (listops, pathfinder, pathx), tfds' default directory (text, image), sklearn (digits).
        cache_dir: generated data and processed arrays; default ``$KERAS_SSM_DATA`` or
            ``~/.cache/keras_ssm/data``.
        batch_size: examples per batch.
        shuffle: None means True for "train", False otherwise; a seeded reshuffle every epoch.
        seed: shuffle seed (the data itself depends on the ``data_seed`` option, not on this).
        drop_remainder: drop the last incomplete batch.
        epochs: None (one epoch per iteration of the dataset), or (first, stop): the batches of epochs
            first..stop-1 in one dataset, epoch e in the order given by (seed, e) alone (for exact
            resume; fit with ``steps_per_epoch``).
        **options: task-specific options (``task_options(name)`` lists them with defaults); unknown
            ones raise ValueError.

    Returns:
        (dataset, info): dataset yields (x, y) with y int32 (batch,); x int32 (batch, seq_len) token ids
        (0 = pad), or float32 (batch, seq_len, 1) for real-valued encodings, or a tuple (x1, x2) of token
        batches for two-input tasks (retrieval).
    """
    batch_size = check_positive_int("batch_size", batch_size)
    tensorflow()  # configured (GPUs hidden from a pure input pipeline) before any TensorFlow use
    if shuffle is None:
        shuffle = split == "train"
    data, info, encoding = load_task_arrays(name, split, data_dir=data_dir, cache_dir=cache_dir, **options)

    dataset = make_dataset(data, seq_len=info.seq_len, encoding=encoding, batch_size=batch_size,
                           shuffle=bool(shuffle), seed=seed, drop_remainder=drop_remainder, epochs=epochs)
    return dataset, info


__all__ = ["LRA_TASKS", "TASKS", "SPLITS", "TaskInfo", "TaskSpec", "get_task", "load_task", "load_task_arrays",
           "register_task", "resolve_task_options", "task_options", "SplitData"]
