"""``load_task``: one entry point for the LRA tasks (and the small ``digits`` stand-in).

See the package docstring (``zoo.data``) for the per-task sources, options and encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import DataError, SplitData, check_choice, check_positive_int, logger, resolve_cache_dir
from .pipeline import InputEncoding

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
#: The LRA tasks, the digits stand-in and the synthetic delayed-recall memory tasks (zoo.data.delayed_recall).
TASKS = LRA_TASKS + ("digits", "delayed_recall", "delayed_recall_short")
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


def _defaults(name: str) -> dict:
    from . import delayed_recall, digits, image, listops, pathfinder, retrieval, text

    return {
        "listops": listops.LISTOPS_OPTIONS,
        "text": text.TEXT_OPTIONS,
        "retrieval": retrieval.RETRIEVAL_OPTIONS,
        "image": image.IMAGE_OPTIONS,
        "pathfinder": pathfinder.PATHFINDER_OPTIONS,
        "pathx": pathfinder.PATHX_OPTIONS,
        "digits": digits.DIGITS_OPTIONS,
        **delayed_recall.TASK_OPTIONS,
    }[name]


def task_options(name: str) -> dict:
    """The task-specific options of ``name`` and their defaults."""
    check_choice("name", name, TASKS)
    return dict(_defaults(name))


def _resolve_options(name: str, options: dict) -> dict:
    defaults = task_options(name)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for task {name!r}; allowed options: {sorted(defaults)}"
        )
    resolved = {**defaults, **options}
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
    if "difficulty" in resolved:
        check_choice("difficulty", resolved["difficulty"], (6, 9, 14))
    if "resolution" in resolved:
        from .pathfinder import RESOLUTIONS

        check_choice("resolution", resolved["resolution"], RESOLUTIONS)
    if "delay" in resolved:
        from .delayed_recall import check_delayed_recall_options

        check_delayed_recall_options(resolved["delay"], resolved["seq_len"], resolved["num_classes"])
    return resolved


def _tokens(offset: int) -> InputEncoding:
    return InputEncoding("tokens", offset=offset)


def load_task_arrays(name: str, split: str, *, data_dir=None, cache_dir=None, **options):
    """Load a split as numpy arrays, without TensorFlow (except the tfds / grayscale code paths).

    Returns (SplitData, TaskInfo, InputEncoding); ``load_task`` wraps this in a tf.data pipeline.
    """
    check_choice("name", name, TASKS)
    check_choice("split", split, SPLITS)
    opts = _resolve_options(name, options)
    cache_dir = resolve_cache_dir(cache_dir)
    data_dir = None if data_dir is None else Path(data_dir).expanduser()
    two_inputs = False
    if name == "listops":
        from . import listops

        data, seq_len = listops.load_listops(split, data_dir=data_dir, cache_dir=cache_dir, **opts)
        encoding, vocab_size, num_classes = _tokens(0), listops.VOCAB_SIZE, listops.NUM_CLASSES
    elif name == "text":
        from . import text

        data, seq_len = text.load_text(split, data_dir=data_dir, cache_dir=cache_dir, **opts)
        encoding, vocab_size, num_classes = _tokens(text.BYTE_OFFSET), text.VOCAB_SIZE, text.NUM_CLASSES
    elif name == "retrieval":
        from . import retrieval

        data, seq_len = retrieval.load_retrieval(split, data_dir=data_dir, cache_dir=cache_dir, **opts)
        encoding, vocab_size, num_classes = _tokens(retrieval.BYTE_OFFSET), retrieval.VOCAB_SIZE, 2
        two_inputs = True
    elif name == "image":
        from . import image

        data, seq_len = image.load_image(split, data_dir=data_dir, download=opts["download"])
        encoding, vocab_size, num_classes = image.image_encoding(opts["encoding"]), image.VOCAB_SIZE, 10
    elif name in ("pathfinder", "pathx"):
        from . import pathfinder

        opts = dict(opts)
        resolution = opts.pop("resolution", 128)
        encoding_name = opts.pop("encoding")
        data, seq_len = pathfinder.load_pathfinder(split, data_dir=data_dir, cache_dir=cache_dir,
                                                   resolution=resolution, **opts)
        encoding, vocab_size, num_classes = (pathfinder.pathfinder_encoding(encoding_name), pathfinder.VOCAB_SIZE,
                                             pathfinder.NUM_CLASSES)
    elif name in ("delayed_recall", "delayed_recall_short"):
        from . import delayed_recall

        opts = dict(opts)
        encoding_name = opts.pop("encoding")
        data, seq_len = delayed_recall.load_delayed_recall(split, **opts)
        num_classes = int(opts["num_classes"])
        encoding = delayed_recall.delayed_recall_encoding(encoding_name, num_classes)
        vocab_size = delayed_recall.vocab_size(num_classes)
    else:  # digits
        from . import digits

        data, seq_len = digits.load_digits_split(split, data_seed=opts["data_seed"])
        encoding, vocab_size, num_classes = digits.digits_encoding(opts["encoding"]), digits.VOCAB_SIZE, 10
    if encoding.kind == "real":
        vocab_size, n_features = None, 1
    else:
        n_features = None
    if len(data) == 0:  # the readers name the file; this guards every source (never a tf.data buffer_size error)
        raise DataError(f"{name}/{split} has no examples (data_dir={data_dir}, cache_dir={cache_dir}); check the "
                        f"split's file or options")
    counts = np.bincount(data.labels, minlength=num_classes)
    info = TaskInfo(name=name, seq_len=int(seq_len), vocab_size=vocab_size, n_features=n_features,
                    num_classes=num_classes, two_inputs=two_inputs, num_examples=len(data),
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
    from .pipeline import make_dataset, tensorflow

    tensorflow()  # configured (GPUs hidden from a pure input pipeline) before any TensorFlow use
    if shuffle is None:
        shuffle = split == "train"
    data, info, encoding = load_task_arrays(name, split, data_dir=data_dir, cache_dir=cache_dir, **options)

    dataset = make_dataset(data, seq_len=info.seq_len, encoding=encoding, batch_size=batch_size,
                           shuffle=bool(shuffle), seed=seed, drop_remainder=drop_remainder, epochs=epochs)
    return dataset, info


__all__ = ["LRA_TASKS", "TASKS", "SPLITS", "TaskInfo", "load_task", "load_task_arrays", "task_options", "SplitData"]
