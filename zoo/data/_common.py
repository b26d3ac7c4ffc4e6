"""Shared machinery of the zoo data loaders: errors, logging, caching, array containers.

Nothing here imports TensorFlow; the tf.data pipeline lives in ``zoo.data.pipeline``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from keras_ssm.devices import configure_tensorflow
from zoo.rundir import write_npz_atomic, write_text_atomic

logger = logging.getLogger("zoo.data")

#: Environment variable that overrides the default cache directory.
CACHE_ENV_VAR = "KERAS_SSM_DATA"

#: LRA release archive (the official files): https://storage.googleapis.com/long-range-arena/lra_release.gz
LRA_ARCHIVE_HINT = (
    "the official Long Range Arena release archive "
    "(https://storage.googleapis.com/long-range-arena/lra_release.gz, unpacks to lra_release/...)"
)


class DataError(ValueError):
    """A problem with the user's data that the user can fix: the message names the file and what to do.

    Every data error of the zoo is one (``DataNotFoundError``, ``MalformedDataError``), so a command
    line can report it as one line."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data file or directory is missing; the message names the expected path and how to obtain it."""


class MalformedDataError(DataError):
    """A data file has a row or field that cannot be parsed, or no rows; the message names ``file:line``."""


#: Suffix of the record written next to every generated or processed file: its row count, size and SHA-256.
CHECK_SUFFIX = ".check.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_record_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECK_SUFFIX)


def record_check(path: Path, rows: int) -> None:
    """Record ``path``'s row count, byte size and SHA-256 in ``<path>.check.json``."""
    path = Path(path)
    record = {"rows": int(rows), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    write_text_atomic(check_record_path(path), json.dumps(record))


def verify_check(path: Path, rows: int | None = None) -> str | None:
    """None when ``path`` matches its check record (and has ``rows`` rows, if given), else the reason.

    The reason is "no check record" for a file written before records existed (or whose writer was
    stopped between the file and its record)."""
    path = Path(path)
    if not path.exists():
        return f"{path} is missing"
    try:
        record = json.loads(check_record_path(path).read_text())
        recorded_rows, recorded_bytes, recorded_sha = int(record["rows"]), int(record["bytes"]), record["sha256"]
    except FileNotFoundError:
        return "no check record"
    except (OSError, ValueError, KeyError, TypeError):
        return f"the check record {check_record_path(path)} is damaged"
    if rows is not None and recorded_rows != rows:
        return f"{path} holds {recorded_rows} rows, {rows} expected"
    stat = path.stat()
    if stat.st_size != recorded_bytes:
        return f"{path} has {stat.st_size} bytes, {recorded_bytes} recorded (cut or changed)"
    # Hash a file once per process (the three splits of a task read the same files); any write
    # changes its size or modification time and so the key.
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, recorded_sha)
    if key not in _VERIFIED:
        if file_sha256(path) != recorded_sha:
            return f"{path} does not match its recorded SHA-256 (changed or damaged)"
        _VERIFIED.add(key)
    return None


_VERIFIED: set = set()


def default_cache_dir() -> Path:
    """``$KERAS_SSM_DATA`` if set, else ``~/.cache/keras_ssm/data``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/keras_ssm/data").expanduser()


def resolve_cache_dir(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def params_digest(params: dict, length: int = 12) -> str:
    """Stable short hex digest of a JSON-serialisable parameter dict (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_signature(paths: Iterable[Path]) -> list:
    """Identity of source files for cache keys: (absolute path, size, mtime_ns) of each, without reading them."""
    signature = []
    for path in paths:
        stat = Path(path).stat()
        signature.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return signature


def check_can_generate(what: str, problem: str, directory: Path, generate: bool, lra_subdir: str) -> None:
    """Before (re)generating ``what`` into ``directory``, where its cached copy has ``problem``
    ("missing" or what is damaged): a DataNotFoundError naming the LRA archive when ``generate`` is
    False, else a warning when a damaged copy is about to be replaced."""
    if not generate:
        state = "not found" if problem == "missing" else f"damaged ({problem})"
        raise DataNotFoundError(
            f"generated {what} data {state} at {directory} and generate=False; pass generate=True, or "
            f"data_dir= pointing at lra_release/{lra_subdir} of {LRA_ARCHIVE_HINT}"
        )
    if problem != "missing":
        logger.warning("%s: generated data in %s is damaged (%s); regenerating it", what.lower(), directory, problem)


@contextlib.contextmanager
def atomic_directory(final_dir: Path, replace: bool = False):
    """Yield a temporary sibling directory that is renamed to ``final_dir`` only if the block succeeds.

    An interrupted generation therefore never leaves a half-written cache entry behind. If
    ``final_dir`` exists when the block ends, it is kept (another process finished first), unless
    ``replace``: then it is a damaged entry, moved aside and deleted after the new one is in place.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        yield tmp_dir
        if final_dir.exists() and replace:
            old_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.damaged-", dir=final_dir.parent))
            os.replace(final_dir, old_dir / final_dir.name)
            os.replace(tmp_dir, final_dir)
            shutil.rmtree(old_dir, ignore_errors=True)
        elif final_dir.exists():  # another process finished first; keep its copy
            shutil.rmtree(tmp_dir)
        else:
            os.replace(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def lra_candidates(folder: str) -> list[str]:
    """Where an LRA release folder may sit under a data_dir: itself, the folder, or inside the unpacked
    archive (which nests some folders as ``lra_release/lra_release/...``)."""
    return [".", folder, f"lra_release/{folder}", f"lra_release/lra_release/{folder}"]


def first_existing_dir(data_dir: Path, candidates: Sequence[str], marker: str) -> Path | None:
    """Return the first ``data_dir / c`` (for ``c`` in candidates) that contains ``marker``, else None."""
    for candidate in candidates:
        directory = Path(data_dir) / candidate
        if (directory / marker).exists():
            return directory
    return None


@dataclass(frozen=True)
class RaggedArray:
    """Variable-length sequences stored flat: sequence ``i`` is ``values[row_splits[i]:row_splits[i+1]]``."""

    values: np.ndarray  # (total_length,)
    row_splits: np.ndarray  # (num_sequences + 1,) int64, row_splits[0] == 0

    def __post_init__(self):
        if self.row_splits.ndim != 1 or self.row_splits[0] != 0 or self.row_splits[-1] != len(self.values):
            raise ValueError("row_splits must start at 0 and end at len(values)")

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.row_splits[i] : self.row_splits[i + 1]]

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray], dtype) -> "RaggedArray":
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        row_splits = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        values = np.concatenate(rows).astype(dtype, copy=False) if rows else np.zeros(0, dtype)
        return cls(values=values, row_splits=row_splits)


class RaggedBuilder:
    """Append byte strings / arrays one by one into a RaggedArray without a Python list of arrays.

    With ``max_length``, longer rows are cut to their first ``max_length`` entries and counted in
    ``num_truncated``.
    """

    def __init__(self, dtype=np.uint8, max_length: int | None = None):
        self._dtype = np.dtype(dtype)
        self._max_length = max_length
        self.num_truncated = 0
        self._buffer = bytearray() if self._dtype == np.uint8 else None
        self._chunks: list[np.ndarray] = []
        self._lengths: list[int] = []

    def append(self, row) -> None:
        if self._max_length is not None and len(row) > self._max_length:
            row = row[: self._max_length]
            self.num_truncated += 1
        if self._buffer is not None and isinstance(row, (bytes, bytearray, memoryview)):
            self._buffer += row
            self._lengths.append(len(row))
        else:
            row = np.asarray(row, dtype=self._dtype)
            if self._buffer is not None:
                self._buffer += row.tobytes()
            else:
                self._chunks.append(row)
            self._lengths.append(len(row))

    def build(self) -> RaggedArray:
        if self._buffer is not None:
            values = np.frombuffer(bytes(self._buffer), dtype=np.uint8).copy()
        else:
            values = np.concatenate(self._chunks) if self._chunks else np.zeros(0, self._dtype)
        row_splits = np.zeros(len(self._lengths) + 1, dtype=np.int64)
        np.cumsum(np.asarray(self._lengths, dtype=np.int64), out=row_splits[1:])
        return RaggedArray(values=values, row_splits=row_splits)


@dataclass(frozen=True)
class SplitData:
    """One split in memory: ``inputs`` is a tuple (one entry per model input) of RaggedArray or dense
    ndarray (num_examples, seq_len); ``labels`` is int64 (num_examples,); ``truncated`` counts, per
    input, the rows that were cut to the maximum length when the split was read."""

    inputs: tuple
    labels: np.ndarray
    truncated: tuple = ()

    def __post_init__(self):
        for x in self.inputs:
            if len(x) != len(self.labels):
                raise ValueError(f"inputs have {len(x)} rows but there are {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)


def save_split(path: Path, split: SplitData) -> None:
    """Write a SplitData to ``path`` (.npz, uncompressed) atomically."""
    arrays = {"labels": split.labels, "truncated": np.asarray(split.truncated, dtype=np.int64)}
    for i, x in enumerate(split.inputs):
        if isinstance(x, RaggedArray):
            arrays[f"x{i}_values"] = x.values
            arrays[f"x{i}_row_splits"] = x.row_splits
        else:
            arrays[f"x{i}_dense"] = x
    write_npz_atomic(path, arrays)
    record_check(path, rows=len(split))


def load_split(path: Path) -> SplitData:
    """Read a ``save_split`` file; a damaged one raises MalformedDataError naming it."""
    try:
        return _load_split(path)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise MalformedDataError(f"{path}: damaged cache file ({type(err).__name__}: {err}); delete it to rebuild "
                                 f"it") from err


def _load_split(path: Path) -> SplitData:
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
        inputs = []
        i = 0
        while True:
            if f"x{i}_dense" in names:
                inputs.append(f[f"x{i}_dense"])
            elif f"x{i}_values" in names:
                inputs.append(RaggedArray(values=f[f"x{i}_values"], row_splits=f[f"x{i}_row_splits"]))
            else:
                break
            i += 1
        truncated = tuple(int(n) for n in f["truncated"]) if "truncated" in names else ()
        return SplitData(inputs=tuple(inputs), labels=f["labels"], truncated=truncated)


def cached_split(cache_dir: Path, task: str, key_params: dict, build) -> SplitData:
    """Return the processed split cached under ``cache_dir/processed``, building (and saving) it on a miss.

    ``key_params`` must identify the source (e.g. file signatures) and every processing option.
    """
    path = Path(cache_dir) / "processed" / f"{task}-{params_digest(key_params, 16)}.npz"
    if path.exists():
        problem = verify_check(path)
        if problem == "no check record":  # written before check records existed: keep it if it reads
            try:
                split = load_split(path)
                record_check(path, rows=len(split))
                logger.info("%s: reusing processed cache %s (check record added)", task, path)
                return split
            except MalformedDataError as err:
                problem = str(err)
            except OSError:  # read-only cache: use what was read
                return split
        elif problem is None:
            try:
                split = load_split(path)
                logger.info("%s: reusing processed cache %s", task, path)
                return split
            except MalformedDataError as err:
                problem = str(err)
        logger.warning("%s: processed cache %s is damaged (%s); rebuilding it", task, path, problem)
    split = build()
    try:
        save_split(path, split)
        logger.info("%s: wrote processed cache %s", task, path)
    except OSError as err:  # a read-only cache must not stop loading
        logger.warning("%s: could not write processed cache %s (%s)", task, path, err)
    return split


def log_truncation(what: str, split: SplitData, max_length: int) -> None:
    for i, count in enumerate(split.truncated):
        if count:
            input_name = f" input {i + 1}" if len(split.inputs) > 1 else ""
            logger.info("%s%s: %d of %d sequences were cut to max_length=%d", what, input_name, count, len(split),
                        max_length)


def truncate_rows(rows: RaggedArray, max_length: int, what: str) -> RaggedArray:
    """Cut every row to at most ``max_length`` entries, logging how many rows were cut."""
    lengths = rows.lengths
    too_long = int(np.count_nonzero(lengths > max_length))
    if too_long == 0:
        return rows
    logger.warning("%s: truncated %d of %d sequences to max_length=%d", what, too_long, len(rows), max_length)
    kept = np.minimum(lengths, max_length)
    starts = rows.row_splits[:-1]
    index = np.repeat(starts, kept) + (np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept))
    row_splits = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=row_splits[1:])
    return RaggedArray(values=rows.values[index], row_splits=row_splits)


def tfds_arrays(name: str, split: str, data_dir, download: bool, hint: str):
    """All examples of a tfds split as numpy arrays (features, labels); clear error when not prepared."""
    configure_tensorflow()  # hide GPUs from TensorFlow before tfds starts it (as zoo.data.pipeline.tensorflow)
    import tensorflow_datasets as tfds  # here: it imports TensorFlow (seconds), which only the tfds sources need

    try:
        dataset = tfds.load(name, split=split, data_dir=None if data_dir is None else str(data_dir),
                            download=download, as_supervised=True)
    except (AssertionError, FileNotFoundError, OSError) as err:  # tfds: AssertionError "could not find data in"
        location = data_dir if data_dir is not None else "~/tensorflow_datasets (tfds default)"
        raise DataNotFoundError(
            f"tfds dataset {name!r} (split {split!r}) is not prepared in {location} (download={download}): "
            f"{type(err).__name__}: {str(err)[:300]}. To obtain it: {hint}"
        ) from err
    features, labels = [], []
    for batch_features, batch_labels in tfds.as_numpy(dataset.batch(1024)):
        features.append(batch_features)
        labels.append(batch_labels)
    if not features:
        raise DataNotFoundError(f"tfds dataset {name!r} split {split!r} in {data_dir} is empty")
    return np.concatenate(features), np.concatenate(labels)


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {', '.join(map(repr, allowed))}")


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
