"""LRA Retrieval: ACL Anthology Network (AAN) citation pairs, two byte-level documents per example.

Official layout (``lra_release/tsv_data/``)::

    new_aan_pairs.train.tsv   new_aan_pairs.eval.tsv   new_aan_pairs.test.tsv

No header; each row has 5 tab-separated fields ``label id1 id2 text1 text2`` (label "0"/"1", also as
float "0.0"/"1.0"; no quoting). Each text becomes bytes, token id = byte + 1, 0 = pad, cut to
``max_length`` (default 4000 per document, as LRA), so ``vocab_size = 257``; the model gets the
tuple (x1, x2). Splits: train / val = eval file / test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    LRA_ARCHIVE_HINT,
    DataNotFoundError,
    MalformedDataError,
    RaggedBuilder,
    SplitData,
    cached_split,
    file_signature,
    first_existing_dir,
    log_truncation,
    lra_candidates,
)
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

NUM_CLASSES = 2
VOCAB_SIZE = 257
BYTE_OFFSET = 1
SPLIT_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
RETRIEVAL_OPTIONS = {"max_length": 4000}


def find_retrieval_dir(data_dir) -> Path:
    if data_dir is None:
        raise DataNotFoundError(
            "retrieval (AAN) has no generator and no tfds dataset: pass data_dir= pointing at the folder "
            f"lra_release/tsv_data of {LRA_ARCHIVE_HINT} (it holds new_aan_pairs.train.tsv, .eval.tsv, .test.tsv)"
        )
    data_dir = Path(data_dir).expanduser()
    found = first_existing_dir(data_dir, lra_candidates("tsv_data"), SPLIT_FILES["train"])
    if found is None:
        raise DataNotFoundError(
            f"AAN retrieval files not found: expected {data_dir / SPLIT_FILES['train']} (or the same under "
            f"{data_dir}/[lra_release/[lra_release/]]tsv_data); they are the folder "
            f"lra_release/tsv_data of {LRA_ARCHIVE_HINT}"
        )
    return found


def _parse_label(field: bytes, path: Path, line_number: int) -> int:
    try:
        value = float(field)
    except ValueError:
        raise MalformedDataError(f"{path}:{line_number}: label {field[:20]!r} is not a number") from None
    if value not in (0.0, 1.0):
        raise MalformedDataError(f"{path}:{line_number}: label {value} is not 0 or 1")
    return int(value)


def read_aan_tsv(path: Path, max_length: int) -> SplitData:
    """Parse one AAN pairs TSV into two ragged byte arrays (documents cut to max_length) and labels."""
    path = Path(path)
    first, second = RaggedBuilder(np.uint8, max_length), RaggedBuilder(np.uint8, max_length)
    labels = []
    with open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip(b"\r\n")
            fields = line.split(b"\t")
            if len(fields) != 5:
                raise MalformedDataError(
                    f"{path}:{line_number}: expected 5 tab-separated fields (label id1 id2 text1 text2), "
                    f"got {len(fields)}"
                )
            labels.append(_parse_label(fields[0], path, line_number))
            first.append(fields[3])
            second.append(fields[4])
    if not labels:
        raise MalformedDataError(f"{path}:1: no rows")
    return SplitData(inputs=(first.build(), second.build()), labels=np.asarray(labels, dtype=np.int64),
                     truncated=(first.num_truncated, second.num_truncated))


def load_retrieval(split: str, *, data_dir, cache_dir: Path, max_length: int) -> tuple[SplitData, int]:
    """Return (split data of raw bytes cut to max_length, seq_len = max_length)."""
    directory = find_retrieval_dir(data_dir)
    path = directory / SPLIT_FILES[split]
    if not path.exists():
        raise DataNotFoundError(f"AAN split file missing: expected {path} (from lra_release/tsv_data)")
    data = cached_split(cache_dir, "retrieval", {"source": file_signature([path]), "max_length": max_length},
                        lambda: read_aan_tsv(path, max_length))
    log_truncation(f"retrieval ({path.name})", data, max_length)
    return data, max_length


def load_retrieval_split(split: str, data_dir, cache_dir: Path, options: dict) -> tuple[SplitData, int]:
    return load_retrieval(split, data_dir=data_dir, cache_dir=cache_dir, **options)


register_task(TaskSpec(name="retrieval", options=RETRIEVAL_OPTIONS, load=load_retrieval_split,
                       encoding=lambda options: InputEncoding("tokens", offset=BYTE_OFFSET),
                       seq_len=RETRIEVAL_OPTIONS["max_length"], vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES,
                       two_inputs=True))
