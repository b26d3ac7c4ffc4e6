"""Atomic file writes (numpy and the standard library only): the content goes to a temporary file in the
same directory, is flushed to disk, then renamed over the target (``os.replace``), so a reader or a killed
writer sees either the old file or the new one, never a truncated one.

The temporary file is ``.<name>.<pid>.tmp`` next to the target (:func:`is_temporary`). Every file that
keras_ssm, the zoo and the sweeps write goes through :func:`write_atomic`.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "write_text_atomic", "write_json_atomic", "write_npz_atomic", "is_temporary",
           "temporary_path"]

_TMP_SUFFIX = ".tmp"


def temporary_path(path) -> Path:
    """The temporary file this process writes ``path`` through: ``.<name>.<pid>.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")


def is_temporary(path) -> bool:
    """True for the temporary files of :func:`write_atomic` (``.<name>.<pid>.tmp``)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def write_atomic(path, mode: str, write) -> Path:
    """``write(f)`` into a temporary file next to ``path`` (opened with ``mode``), fsync, ``os.replace`` over
    ``path``; the temporary file is removed when anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, **({"encoding": "utf-8", "newline": ""} if "b" not in mode else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`write_atomic`)."""
    return write_atomic(path, "w", lambda f: f.write(text))


def write_json_atomic(path, data) -> Path:
    """``data`` as indented JSON, written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_npz_atomic(path, arrays: dict) -> Path:
    """``numpy.savez`` of ``arrays`` ({name: array}) to ``path``, atomically."""
    return write_atomic(path, "wb", lambda f: np.savez(f, **arrays))  # a file object: savez adds no suffix
