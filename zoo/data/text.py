"""LRA Text: IMDB reviews as byte sequences (binary sentiment).

Encoding: token id = byte + 1 (1..256), 0 = pad, so ``vocab_size = 257``; reviews longer than
``max_length`` (default 4096, as the S4 papers; LRA's code default was 1000) are cut, the count logged.

Sources (first match wins):
1. a local ``aclImdb`` directory (the Stanford "Large Movie Review Dataset" archive aclImdb_v1.tar.gz):
   ``data_dir/aclImdb/{train,test}/{pos,neg}/*.txt`` (or data_dir itself being ``aclImdb``);
2. tfds ``imdb_reviews`` (``plain_text``) read from the tfds ``data_dir`` (None: tfds' default
   ``~/tensorflow_datasets``) with ``download=False`` unless ``download=True`` is passed.

Splits: train = the 25k train reviews; test = the 25k test reviews; **val = test** (LRA has no separate
validation set for this task and reports test accuracy; the loader logs this when val is requested).
Order: aclImdb files are read pos then neg, sorted by file name; the train split is shuffled by the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    DataNotFoundError,
    RaggedBuilder,
    SplitData,
    cached_split,
    log_truncation,
    logger,
    tfds_arrays,
)
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

NUM_CLASSES = 2
VOCAB_SIZE = 257  # pad + 256 byte values
BYTE_OFFSET = 1
TFDS_NAME = "imdb_reviews"
TEXT_OPTIONS = {"max_length": 4096, "download": False}
_ACLIMDB_HINT = (
    "download aclImdb_v1.tar.gz (https://ai.stanford.edu/~amaas/data/sentiment/) and unpack it so that "
    "data_dir/aclImdb/train/pos/*.txt exists, or prepare the tfds dataset 'imdb_reviews' on a machine with "
    "internet (python -c \"import tensorflow_datasets as tfds; tfds.load('imdb_reviews')\") and pass its tfds "
    "data_dir (e.g. ~/tensorflow_datasets)"
)


def find_aclimdb_dir(data_dir) -> Path | None:
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir / "aclImdb", data_dir):
        if (candidate / "train" / "pos").is_dir():
            return candidate
    return None


def read_aclimdb_split(root: Path, split: str, max_length: int) -> SplitData:
    """Bytes of every review in ``root/<split>/{pos,neg}/*.txt`` (label 1 = pos), cut to max_length."""
    rows = RaggedBuilder(np.uint8, max_length)
    labels = []
    for label, polarity in ((1, "pos"), (0, "neg")):
        directory = root / split / polarity
        if not directory.is_dir():
            raise DataNotFoundError(f"IMDB directory missing: expected {directory}; {_ACLIMDB_HINT}")
        files = sorted(directory.glob("*.txt"))
        if not files:
            raise DataNotFoundError(f"no *.txt reviews in {directory}; {_ACLIMDB_HINT}")
        for file in files:
            rows.append(file.read_bytes())
            labels.append(label)
    return SplitData(inputs=(rows.build(),), labels=np.asarray(labels, dtype=np.int64),
                     truncated=(rows.num_truncated,))


def read_tfds_split(split: str, data_dir, download: bool, max_length: int) -> SplitData:
    texts, labels = tfds_arrays(TFDS_NAME, split, data_dir, download, _ACLIMDB_HINT)
    rows = RaggedBuilder(np.uint8, max_length)
    for text in texts:
        rows.append(bytes(text))
    return SplitData(inputs=(rows.build(),), labels=np.asarray(labels, dtype=np.int64),
                     truncated=(rows.num_truncated,))


def load_text(split: str, *, data_dir, cache_dir: Path, max_length: int, download: bool) -> tuple[SplitData, int]:
    """Return (split data of raw bytes cut to max_length, seq_len = max_length); the pipeline adds BYTE_OFFSET."""
    source_split = "test" if split in ("val", "test") else "train"
    if split == "val":
        logger.info("text: val = the IMDB test split (as in LRA)")
    root = find_aclimdb_dir(data_dir)
    if root is not None:
        directory = root / source_split
        signature = [str(directory.resolve())] + [
            [d.name, d.stat().st_mtime_ns, sum(1 for _ in d.iterdir())]
            for d in (directory / "pos", directory / "neg") if d.is_dir()
        ]
        data = cached_split(cache_dir, "text", {"aclimdb": signature, "max_length": max_length},
                            lambda: read_aclimdb_split(root, source_split, max_length))
    else:
        data = read_tfds_split(source_split, data_dir, download, max_length)
    log_truncation(f"text ({source_split})", data, max_length)
    return data, max_length


def load_text_split(split: str, data_dir, cache_dir: Path, options: dict) -> tuple[SplitData, int]:
    return load_text(split, data_dir=data_dir, cache_dir=cache_dir, **options)


register_task(TaskSpec(name="text", options=TEXT_OPTIONS, load=load_text_split,
                       encoding=lambda options: InputEncoding("tokens", offset=BYTE_OFFSET),
                       seq_len=TEXT_OPTIONS["max_length"], vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES))
