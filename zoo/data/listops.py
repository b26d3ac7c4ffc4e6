"""ListOps (LRA): generator of the LRA distribution, reader of the official TSV layout, tokenizer.

Layout (official ``lra_release/listops-1000/`` and our generated cache alike)::

    basic_train.tsv  basic_val.tsv  basic_test.tsv      header "Source\\tTarget", then one tree a row

Source is the fully parenthesised expression, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``; Target is its value 0..9.

Tokenisation (as LRA): drop ``(`` and ``)``, split on whitespace. Vocabulary (``VOCAB``, id = index)::

    0 <pad> | 1..10 digits "0".."9" | 11 "[MIN" | 12 "[MAX" | 13 "[MED" | 14 "[SM" | 15 "]"

so ``vocab_size = 16``. The token count of a tree equals LRA's "length" (operators, ``]`` and digits).

Generator (LRA ``listops.py`` semantics, seeded): a node at depth d < max_depth=10 is an operator with
probability 0.25 (else a uniform digit; depth 10 is always a digit); an operator node has
``randint(2, 10)`` children at depth d + 1 and a uniform operator among MIN, MAX, MED (median,
truncated to int), SM (sum mod 10). Trees start at depth 1 and are kept when
``min_length < length < max_length`` and not seen before; the first ``num_train`` kept trees form the
train split, the next ``num_val`` val, the next ``num_test`` test (so splits are disjoint).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ._common import (
    LRA_ARCHIVE_HINT,
    DataNotFoundError,
    MalformedDataError,
    RaggedBuilder,
    SplitData,
    atomic_directory,
    cached_split,
    check_can_generate,
    check_positive_int,
    file_signature,
    first_existing_dir,
    logger,
    lra_candidates,
    params_digest,
    record_check,
    truncate_rows,
    verify_check,
)
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
DIGITS = tuple(str(d) for d in range(10))
PAD_ID = 0
#: id -> token; VOCAB[0] is padding.
VOCAB = ("<pad>",) + DIGITS + OPERATORS + (END,)
TOKEN_IDS = {token: i for i, token in enumerate(VOCAB) if i != PAD_ID}
VOCAB_SIZE = len(VOCAB)
NUM_CLASSES = 10

SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
HEADER = "Source\tTarget"
MAX_DEPTH = 10
MAX_ARGS = 10
OPERATOR_PROBABILITY = 0.25
GENERATOR_VERSION = 1  # bump when the generator's output for a given seed changes
_CHUNK_SIZE = 250  # kept trees per generator work unit


def apply_operator(op: str, values: list[int]) -> int:
    """Value of an operator applied to its arguments (all in 0..9)."""
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[SM":
        return sum(values) % 10
    if op == "[MED":
        ordered = sorted(values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) // 2  # int(np.median): mean of the middle two, truncated
    raise ValueError(f"unknown ListOps operator {op!r}; allowed: {OPERATORS}")


def tokenize(source: str) -> list[str]:
    """LRA tokenisation: drop parentheses, split on whitespace."""
    return source.replace("(", " ").replace(")", " ").split()


class _TooLong(Exception):
    pass


def sample_tree(rand, max_length: int, max_depth: int = MAX_DEPTH, max_args: int = MAX_ARGS):
    """Draw one tree. ``rand()`` returns uniform floats in [0, 1).

    Returns (source string, value, length), or None as soon as the tree reaches ``max_length`` tokens
    (such a tree would be rejected anyway, so generating the rest is skipped).
    """
    pieces: list[str] = []
    count = 0

    def node(depth: int) -> int:
        nonlocal count
        if depth < max_depth and rand() <= OPERATOR_PROBABILITY:
            num_args = 2 + int(rand() * (max_args - 1))
            op = OPERATORS[int(rand() * len(OPERATORS))]
            count += 2
            if count >= max_length:
                raise _TooLong
            # ((op, a0), a1) ... , END) printed with one "(" per pair: "( " * (num_args + 1)
            pieces.append("( " * (num_args + 1) + op)
            values = []
            for _ in range(num_args):
                pieces.append(" ")
                values.append(node(depth + 1))
                pieces.append(" )")
            pieces.append(" ] )")
            return apply_operator(op, values)
        count += 1
        if count >= max_length:
            raise _TooLong
        digit = int(rand() * 10)
        pieces.append(DIGITS[digit])
        return digit

    try:
        value = node(1)
    except _TooLong:
        return None
    return "".join(pieces), value, count


def _chunk_seed(seed: int, chunk_index: int) -> int:
    state = np.random.SeedSequence([int(seed), GENERATOR_VERSION, int(chunk_index)]).generate_state(2, dtype=np.uint64)
    return int(state[0]) << 64 | int(state[1])


def generate_chunk(args) -> list[tuple[str, int, int]]:
    """Work unit: ``_CHUNK_SIZE`` trees with min_length < length < max_length, from chunk ``chunk_index``'s
    own random stream (so the output does not depend on how chunks are spread over processes)."""
    seed, chunk_index, min_length, max_length, chunk_size = args
    rand = random.Random(_chunk_seed(seed, chunk_index)).random
    kept = []
    while len(kept) < chunk_size:
        tree = sample_tree(rand, max_length)
        if tree is not None and tree[2] > min_length:
            kept.append(tree)
    return kept


def _iterate_chunks(seed, min_length, max_length, num_workers):
    """Yield the generator's chunks in index order, computing them in ``num_workers`` processes."""
    chunk_index = 0
    if num_workers <= 1:
        while True:
            yield generate_chunk((seed, chunk_index, min_length, max_length, _CHUNK_SIZE))
            chunk_index += 1
    context = multiprocessing.get_context("spawn")
    with context.Pool(num_workers) as pool:
        while True:
            round_args = [
                (seed, chunk_index + i, min_length, max_length, _CHUNK_SIZE) for i in range(4 * num_workers)
            ]
            chunk_index += len(round_args)
            yield from pool.imap(generate_chunk, round_args)


@dataclass(frozen=True)
class ListOpsGeneratorConfig:
    num_train: int = 96_000
    num_val: int = 2_000
    num_test: int = 2_000
    min_length: int = 500
    max_length: int = 2_000
    seed: int = 0

    def __post_init__(self):
        for name in ("num_train", "num_val", "num_test"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("min_length", self.min_length, minimum=0)
        check_positive_int("max_length", self.max_length)
        if self.max_length - self.min_length < 2:
            raise ValueError(
                f"need min_length < length < max_length to be satisfiable, got min_length={self.min_length}, "
                f"max_length={self.max_length}"
            )
        if self.max_length <= 5:
            raise ValueError(f"max_length must be > 5 (the shortest tree has 4 tokens), got {self.max_length}")

    def cache_name(self) -> str:
        params = dict(vars(self), version=GENERATOR_VERSION, max_depth=MAX_DEPTH, max_args=MAX_ARGS)
        return (
            f"listops-{self.num_train}-{self.num_val}-{self.num_test}-len{self.min_length}-{self.max_length}"
            f"-seed{self.seed}-{params_digest(params, 10)}"
        )


def generate_listops_files(out_dir: Path, config: ListOpsGeneratorConfig, num_workers: int | None = None,
                           progress: bool = True) -> None:
    """Generate the three TSV files of ``config`` into ``out_dir`` (the official layout).

    Deterministic for a given config (independent of ``num_workers``). Duplicate trees are skipped
    (counted in the log).
    """
    total = config.num_train + config.num_val + config.num_test
    if num_workers is None:  # starting a process costs about a second: use one per 20k trees
        num_workers = min(os.cpu_count() or 1, max(1, total // 20_000))
    num_workers = max(1, min(int(num_workers), -(-total // _CHUNK_SIZE)))
    out_dir = Path(out_dir)
    boundaries = [("train", config.num_train), ("val", config.num_val), ("test", config.num_test)]
    seen: set[bytes] = set()
    duplicates = 0
    files = {split: open(out_dir / SPLIT_FILES[split], "w", encoding="utf-8", newline="\n") for split, _ in boundaries}
    try:
        for handle in files.values():
            handle.write(HEADER + "\n")
        split_index, written = 0, 0
        chunks = _iterate_chunks(config.seed, config.min_length, config.max_length, num_workers)
        with tqdm(total=total, desc="generating ListOps", unit="tree", disable=not progress) as bar:
            for chunk in chunks:
                for source, value, _ in chunk:
                    digest = hashlib.blake2b(source.encode(), digest_size=16).digest()
                    if digest in seen:
                        duplicates += 1
                        if duplicates > max(10_000, 10 * total):
                            raise RuntimeError(
                                f"ListOps generator: {duplicates} duplicate trees while collecting {total} distinct "
                                f"ones; min_length={config.min_length}, max_length={config.max_length} allow too "
                                f"few distinct trees"
                            )
                        continue
                    seen.add(digest)
                    split, size = boundaries[split_index]
                    files[split].write(f"{source}\t{value}\n")
                    written += 1
                    bar.update(1)
                    if written == size:
                        split_index, written = split_index + 1, 0
                        if split_index == len(boundaries):
                            break
                if split_index == len(boundaries):
                    break
            chunks.close()
    finally:
        for handle in files.values():
            handle.close()
    logger.info("listops: generated %d trees (%d duplicates skipped)", total, duplicates)


def expected_rows(config: ListOpsGeneratorConfig) -> dict:
    """Data rows (header not counted) of each generated split file."""
    return {"train": config.num_train, "val": config.num_val, "test": config.num_test}


def count_tsv_rows(path: Path) -> int | None:
    """Data rows of a TSV written by the generator (header + one tree a line), or None when it is not
    such a file (no header, or a last line without its newline)."""
    header = HEADER.encode() + b"\n"
    newlines, last = 0, b""
    with open(path, "rb") as f:
        if f.read(len(header)) != header:
            return None
        for block in iter(lambda: f.read(1 << 20), b""):
            newlines += block.count(b"\n")
            last = block[-1:]
    return newlines if last in (b"", b"\n") else None


def generated_data_problem(directory: Path, config: ListOpsGeneratorConfig) -> str | None:
    """None when every generated split file in ``directory`` matches its check record (rows, size,
    SHA-256), else what is wrong. Files from before check records existed are checked by their row
    counts and then get a record."""
    if not directory.exists():
        return "missing"
    for split, rows in expected_rows(config).items():
        path = directory / SPLIT_FILES[split]
        problem = verify_check(path, rows=rows)
        if problem == "no check record":
            counted = count_tsv_rows(path)
            if counted != rows:
                return f"{path} has {counted} rows, {rows} expected"
            with contextlib.suppress(OSError):  # a read-only cache is still usable
                record_check(path, rows=rows)
        elif problem is not None:
            return problem
    return None


def ensure_generated(cache_dir: Path, config: ListOpsGeneratorConfig, num_workers=None, progress=True,
                     generate=True) -> Path:
    """Directory holding the generated TSVs of ``config``, generating them on the first call and
    regenerating them when an entry is damaged (a file cut, deleted or changed); with
    ``generate=False`` a missing or damaged entry is a DataNotFoundError instead."""
    directory = Path(cache_dir) / "listops" / config.cache_name()
    problem = generated_data_problem(directory, config)
    if problem is None:
        logger.info("listops: reusing generated data in %s", directory)
        if progress and directory not in _ANNOUNCED:  # once per process, not once per split
            print(f"listops: using the generated data cached in {directory}", flush=True)
        _ANNOUNCED.add(directory)
        return directory
    check_can_generate("ListOps", problem, directory, generate, "listops-1000")
    logger.info("listops: generating %s into %s", config, directory)
    if progress:
        print(f"listops: generating {config.num_train + config.num_val + config.num_test} examples "
              f"(lengths {config.min_length}-{config.max_length}, seed {config.seed}) into {directory}; "
              f"later runs reuse them", flush=True)
    with atomic_directory(directory, replace=problem != "missing") as tmp_dir:
        generate_listops_files(tmp_dir, config, num_workers=num_workers, progress=progress)
        for split, rows in expected_rows(config).items():
            record_check(tmp_dir / SPLIT_FILES[split], rows=rows)
    logger.info("listops: wrote %s", directory)
    _ANNOUNCED.add(directory)
    return directory


_ANNOUNCED: set[Path] = set()  # cache directories whose location this process has printed


def read_listops_tsv(path: Path) -> SplitData:
    """Parse one ListOps TSV (header ``Source\\tTarget``) into token ids (uint8 ragged) and labels."""
    path = Path(path)
    rows = RaggedBuilder(np.uint8)
    labels = []
    blank = line_number = 0
    with open(path, encoding="utf-8", newline="") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if line_number == 1:
                if line.strip() != HEADER:
                    raise MalformedDataError(f"{path}:1: expected the header {HEADER!r}, got {line[:80]!r}")
                continue
            if not line.strip():
                blank += 1
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise MalformedDataError(
                    f"{path}:{line_number}: expected 2 tab-separated fields (Source, Target), got {len(fields)}"
                )
            source, target = fields
            try:
                label = int(target)
            except ValueError:
                raise MalformedDataError(f"{path}:{line_number}: Target {target!r} is not an integer") from None
            if not 0 <= label < NUM_CLASSES:
                raise MalformedDataError(f"{path}:{line_number}: Target {label} is outside 0..9")
            try:
                ids = bytes([TOKEN_IDS[token] for token in tokenize(source)])
            except KeyError as err:
                raise MalformedDataError(
                    f"{path}:{line_number}: unknown ListOps token {err.args[0]!r}; allowed: {list(TOKEN_IDS)}"
                ) from None
            if not ids:
                raise MalformedDataError(f"{path}:{line_number}: empty Source")
            rows.append(ids)
            labels.append(label)
    if blank:
        logger.warning("listops: skipped %d blank lines in %s", blank, path)
    if not labels:
        what = "is empty" if line_number == 0 else "has a header but no data rows"
        raise MalformedDataError(f"{path} {what}: a ListOps split needs rows 'Source<TAB>Target'; restore the "
                                 f"file from the release (or pass data_dir=None to use our generator)")
    return SplitData(inputs=(rows.build(),), labels=np.asarray(labels, dtype=np.int64))


LISTOPS_OPTIONS = {
    "num_train": 96_000,
    "num_val": 2_000,
    "num_test": 2_000,
    "min_length": 500,
    "max_length": 2_000,
    "generate": True,
    "data_seed": 0,
    "num_workers": None,
    "progress": True,
}


def find_listops_dir(data_dir: Path) -> Path:
    data_dir = Path(data_dir).expanduser()
    found = first_existing_dir(data_dir, lra_candidates("listops-1000"), SPLIT_FILES["train"])
    if found is None:
        raise DataNotFoundError(
            f"ListOps files not found: expected {data_dir / 'basic_train.tsv'} (or the same under "
            f"{data_dir}/[lra_release/[lra_release/]]listops-1000). They are the folder "
            f"lra_release/listops-1000 of {LRA_ARCHIVE_HINT}; or pass data_dir=None to use our generator."
        )
    return found


def load_listops(split: str, *, data_dir, cache_dir: Path, num_train, num_val, num_test, min_length, max_length,
                 generate, data_seed, num_workers, progress) -> tuple[SplitData, int]:
    """Return (split data, seq_len). data_dir=None: our generated set in the cache (generated if absent
    and ``generate``); otherwise the official files under data_dir. seq_len = max_length; longer official
    sequences are truncated (counted in the log)."""
    if data_dir is not None:
        directory = find_listops_dir(data_dir)
    else:
        config = ListOpsGeneratorConfig(num_train=num_train, num_val=num_val, num_test=num_test,
                                        min_length=min_length, max_length=max_length, seed=data_seed)
        directory = ensure_generated(cache_dir, config, num_workers=num_workers, progress=progress,
                                     generate=generate)
    path = directory / SPLIT_FILES[split]
    if not path.exists():
        raise DataNotFoundError(f"ListOps split file missing: expected {path} (from lra_release/listops-1000)")
    data = cached_split(
        cache_dir, "listops", {"source": file_signature([path]), "version": GENERATOR_VERSION},
        lambda: read_listops_tsv(path),
    )
    (rows,) = data.inputs
    rows = truncate_rows(rows, max_length, f"listops {path}")
    return SplitData(inputs=(rows,), labels=data.labels), max_length


def load_listops_split(split: str, data_dir, cache_dir: Path, options: dict) -> tuple[SplitData, int]:
    return load_listops(split, data_dir=data_dir, cache_dir=cache_dir, **options)


register_task(TaskSpec(name="listops", options=LISTOPS_OPTIONS, load=load_listops_split,
                       encoding=lambda options: InputEncoding("tokens"), seq_len=LISTOPS_OPTIONS["max_length"],
                       vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES))
