"""Pathfinder and Path-X: one loader for the official layout, and our generator writing the same layout.

Layout (official ``lra_release/pathfinder{32,64,128,256}/<difficulty>/`` and our cache alike)::

    <difficulty>/metadata/<batch>.npy     one image a line (text, despite the name), whitespace columns:
                                          0 = subdirectory (imgs/<batch>), 1 = file name, 2 = index,
                                          3 = label (0/1), 4.. = generator parameters
    <difficulty>/imgs/<batch>/sample_<i>.png    grayscale resolution x resolution

``<difficulty>`` is ``curv_baseline`` (contour length 6), ``curv_contour_length_9`` or
``curv_contour_length_14``. Metadata files written with ``np.save`` (binary) are read too.

Loading: every metadata row in batch order; images that are missing, unreadable (e.g. the empty
``pathfinder32/curv_baseline/imgs/0/sample_172.png`` of the release) or all black are skipped, and the
counts are logged. Split: a permutation of the valid images seeded with ``data_seed``; the first 80%
are train, the next 10% val, the last 10% test. Decoded images are cached (``cache_dir/processed``).

Encodings: "tokens": id = pixel + 1 (1..256), ``vocab_size = 257``; "real" (default): one feature
``(pixel / 255 - 0.5) / 0.5`` (the S4 code's normalisation), ``n_features = 1``. seq_len = resolution**2.

Generation (data_dir=None): ``num_examples`` images (default 200_000, LRA's size; exactly balanced labels)
by ``zoo.data.pathfinder_generator`` into ``cache_dir/pathfinder/<name>/pathfinder<res>/<difficulty>/``,
1000 images per batch folder, in ``num_workers`` processes; each batch has its own seeded stream, so the
images do not depend on the number of workers and a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ._common import (
    LRA_ARCHIVE_HINT,
    DataNotFoundError,
    MalformedDataError,
    SplitData,
    atomic_directory,
    check_can_generate,
    check_choice,
    file_signature,
    first_existing_dir,
    logger,
    lra_candidates,
    params_digest,
    record_check,
    verify_check,
)
from .pathfinder_generator import DIFFICULTY_DIRS, GENERATOR_VERSION, PathfinderParams, generate_batch
from .pipeline import InputEncoding
from .registry import TaskSpec, register_task

NUM_CLASSES = 2
VOCAB_SIZE = 257
PIXEL_OFFSET = 1
IMAGES_PER_BATCH = 1000
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
RESOLUTIONS = (32, 64, 128, 256)
GENERATED_RESOLUTIONS = (32, 128)
PATHX_RESOLUTION = 128  # pathx = pathfinder at this resolution (seq_len 16384)
PATHFINDER_OPTIONS = {
    "resolution": 32,
    "difficulty": 14,
    "encoding": "real",
    "generate": True,
    "num_examples": 200_000,
    "data_seed": 0,
    "num_workers": None,
    "progress": True,
}
PATHX_OPTIONS = {key: value for key, value in PATHFINDER_OPTIONS.items() if key != "resolution"}


def pathfinder_encoding(encoding: str) -> InputEncoding:
    if encoding == "tokens":
        return InputEncoding("tokens", offset=PIXEL_OFFSET)
    return InputEncoding("real", scale=1.0 / 255.0, mean=0.5, std=0.5)


def difficulty_subdir(resolution: int, difficulty: int) -> str:
    return f"pathfinder{resolution}/{DIFFICULTY_DIRS[difficulty]}"


# ----------------------------------------------------------------------------------------------- writing


def _metadata_line(subdir: str, name: str, index: int, label: int, params: PathfinderParams, margin: int) -> str:
    """Official column order: subdir, file, index, label, continuity, contour length, distractor length,
    paddle length, paddle thickness, paddle margin, number of contrasts."""
    return (
        f"{subdir} {name} {index} {label} {params.continuity} {params.contour_length} {params.distractor_length} "
        f"{params.paddle_length} {params.thickness} {margin} 1"
    )


def write_generated_batch(args) -> tuple[int, int]:
    """Work unit: generate batch ``batch_index`` and write its PNGs and metadata file under ``root``.

    Returns (number of images, number of distractors that did not fit)."""
    root, params_dict, seed, batch_index, count = args
    params = PathfinderParams(**{k: (tuple(v) if k == "margins" else v) for k, v in params_dict.items()
                                 if k != "version"})
    sequence = np.random.SeedSequence(
        [int(seed), GENERATOR_VERSION, params.resolution, params.contour_length, int(batch_index)]
    )
    images, labels, facts = generate_batch(params, count, sequence)
    subdir = f"imgs/{batch_index}"
    image_dir = Path(root) / subdir
    image_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, label, fact) in enumerate(zip(images, labels, facts)):
        name = f"sample_{i}.png"
        Image.fromarray(image).save(image_dir / name, optimize=False, compress_level=1)
        lines.append(_metadata_line(subdir, name, i, int(label), params, fact["margin"]))
    metadata_dir = Path(root) / "metadata"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    (metadata_dir / f"{batch_index}.npy").write_text("\n".join(lines) + "\n")
    return count, sum(fact["distractors_missing"] for fact in facts)


def generate_pathfinder_dir(root: Path, params: PathfinderParams, num_examples: int, seed: int,
                            num_workers: int | None = None, progress: bool = True) -> None:
    """Write ``num_examples`` generated images in the official layout into ``root`` (the difficulty dir)."""
    counts = _batch_counts(num_examples)
    tasks = [(str(root), params.to_dict(), seed, b, count) for b, count in enumerate(counts)]
    if num_workers is None:  # starting a process costs about a second: use one per 2000 images
        num_workers = min(os.cpu_count() or 1, max(1, num_examples // 2000))
    num_workers = max(1, min(int(num_workers), len(tasks)))
    missing = 0
    with tqdm(total=num_examples, desc=f"generating Pathfinder-{params.resolution}", unit="img",
              disable=not progress) as bar:
        if num_workers == 1:
            results = map(write_generated_batch, tasks)
            for count, batch_missing in results:
                missing += batch_missing
                bar.update(count)
        else:
            with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
                for count, batch_missing in pool.imap(write_generated_batch, tasks):
                    missing += batch_missing
                    bar.update(count)
    logger.info(
        "pathfinder: generated %d images (%d of %d distractor snakes did not fit and were left out)",
        num_examples, missing, num_examples * params.num_distractors,
    )


def generated_root(cache_dir: Path, params: PathfinderParams, num_examples: int, seed: int) -> Path:
    key = dict(params.to_dict(), num_examples=num_examples, seed=seed, images_per_batch=IMAGES_PER_BATCH)
    name = (f"pathfinder{params.resolution}-{DIFFICULTY_DIRS[params.contour_length]}-n{num_examples}-seed{seed}-"
            f"{params_digest(key, 10)}")
    return Path(cache_dir) / "pathfinder" / name


def _batch_counts(num_examples: int) -> list[int]:
    """Images in each generated batch folder (= rows of each metadata file)."""
    return [min(IMAGES_PER_BATCH, num_examples - start) for start in range(0, num_examples, IMAGES_PER_BATCH)]


def generated_data_problem(root: Path, params: PathfinderParams, num_examples: int) -> str | None:
    """None when the generated set under ``root`` is complete as far as its metadata tells (params.json,
    and every metadata file matching its check record), "missing" when there is none, else what is wrong.
    Missing or unreadable images are found when the images are decoded (see ``load_pathfinder``)."""
    if not root.exists():
        return "missing"
    if not (root / "params.json").exists():
        return f"{root / 'params.json'} is missing"
    metadata_dir = root / difficulty_subdir(params.resolution, params.contour_length) / "metadata"
    for batch, rows in enumerate(_batch_counts(num_examples)):
        path = metadata_dir / f"{batch}.npy"
        problem = verify_check(path, rows=rows)
        if problem == "no check record":  # generated before check records existed
            counted = len(_metadata_rows(path))
            if counted != rows:
                return f"{path} has {counted} rows, {rows} expected"
            with contextlib.suppress(OSError):
                record_check(path, rows=rows)
        elif problem is not None:
            return problem
    return None


def ensure_generated(cache_dir: Path, params: PathfinderParams, num_examples: int, seed: int,
                     num_workers=None, progress=True, generate=True, damaged: str | None = None) -> Path:
    """The difficulty directory of the generated set, generating it on the first call and regenerating
    it when it is damaged (``damaged``: a problem the caller found, e.g. images that do not decode)."""
    root = generated_root(cache_dir, params, num_examples, seed)
    subdir = difficulty_subdir(params.resolution, params.contour_length)
    problem = damaged or generated_data_problem(root, params, num_examples)
    if problem is None:
        logger.info("pathfinder: reusing generated data in %s", root)
        return root / subdir
    check_can_generate("Pathfinder", problem, root, generate, subdir)
    logger.info("pathfinder: generating %d images with %s into %s", num_examples, params, root)
    with atomic_directory(root, replace=problem != "missing") as tmp_root:
        target = tmp_root / subdir
        target.mkdir(parents=True)
        generate_pathfinder_dir(target, params, num_examples, seed, num_workers=num_workers, progress=progress)
        for batch, rows in enumerate(_batch_counts(num_examples)):
            record_check(target / "metadata" / f"{batch}.npy", rows=rows)
        (tmp_root / "params.json").write_text(
            json.dumps(dict(params.to_dict(), num_examples=num_examples, seed=seed), indent=1)
        )
    logger.info("pathfinder: wrote %s", root)
    return root / subdir


# ----------------------------------------------------------------------------------------------- reading


def _metadata_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, columns) of every non-blank row of a metadata file (text, or binary np.save)."""
    raw = path.read_bytes()
    if raw.startswith(b"\x93NUMPY"):
        array = np.load(path, allow_pickle=False)
        return [(i + 1, [str(v) for v in np.atleast_1d(row)]) for i, row in enumerate(np.atleast_2d(array))]
    rows = []
    for line_number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if line.strip():
            rows.append((line_number, line.split()))
    return rows


def _batch_order(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def read_metadata(directory: Path) -> tuple[list[str], np.ndarray]:
    """Relative image paths and labels of every metadata row of a difficulty directory, in batch order."""
    metadata_dir = directory / "metadata"
    files = sorted(metadata_dir.glob("*.npy"), key=_batch_order)
    if not files:
        raise DataNotFoundError(f"no metadata files: expected {metadata_dir}/<batch>.npy")
    paths, labels = [], []
    for file in files:
        for line_number, columns in _metadata_rows(file):
            if len(columns) < 4:
                raise MalformedDataError(
                    f"{file}:{line_number}: expected at least 4 columns (subdir, file, index, label), "
                    f"got {len(columns)}"
                )
            try:
                label = float(columns[3])
            except ValueError:
                raise MalformedDataError(f"{file}:{line_number}: label {columns[3]!r} is not a number") from None
            if label not in (0.0, 1.0):
                raise MalformedDataError(f"{file}:{line_number}: label {columns[3]!r} is not 0 or 1")
            paths.append(f"{columns[0]}/{columns[1]}")
            labels.append(int(label))
    return paths, np.asarray(labels, dtype=np.int64)


def decode_images(directory: Path, paths: list[str], labels: np.ndarray, resolution: int,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode PNGs to (N, resolution**2) uint8; skip missing, unreadable and all-black images (counted)."""
    images = np.zeros((len(paths), resolution * resolution), dtype=np.uint8)
    keep = np.zeros(len(paths), dtype=bool)
    skipped = {"missing": 0, "unreadable": 0, "black": 0}
    for i, relative in enumerate(tqdm(paths, desc="decoding Pathfinder PNGs", unit="img", disable=not progress,
                                      mininterval=2.0)):
        file = directory / relative
        try:
            with Image.open(file) as image:
                pixels = np.asarray(image.convert("L"))
        except FileNotFoundError:
            skipped["missing"] += 1
            continue
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            skipped["unreadable"] += 1
            continue
        if pixels.shape != (resolution, resolution):
            raise MalformedDataError(f"{file}: expected a {resolution}x{resolution} image, got {pixels.shape}")
        if not pixels.any():
            skipped["black"] += 1
            continue
        images[i] = pixels.reshape(-1)
        keep[i] = True
    return images[keep], labels[keep], skipped


class _DamagedGeneratedSet(Exception):
    """Images of a generated set are missing or unreadable: it must be regenerated."""


def _processed_cache(cache: Path):
    """(images (memory-mapped), labels, info) of a processed cache entry, or (None, reason) when it is
    missing or damaged. Entries from before check records existed are kept if their arrays read."""
    if not cache.exists():
        return None, "missing"
    try:
        info = json.loads((cache / "info.json").read_text())
        num_images = int(info["num_images"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"{cache / 'info.json'} is unreadable ({type(err).__name__})"
    for name in ("images.npy", "labels.npy"):
        problem = verify_check(cache / name, rows=num_images)
        if problem == "no check record":
            try:
                rows = len(np.load(cache / name, mmap_mode="r"))
            except (OSError, ValueError, EOFError) as err:
                return None, f"{cache / name} is unreadable ({type(err).__name__}: {err})"
            if rows != num_images:
                return None, f"{cache / name} has {rows} rows, {num_images} recorded"
            with contextlib.suppress(OSError):
                record_check(cache / name, rows=num_images)
        elif problem is not None:
            return None, problem
    return (np.load(cache / "images.npy", mmap_mode="r"), np.load(cache / "labels.npy"), info), None


def load_difficulty_dir(directory: Path, resolution: int, cache_dir: Path, progress: bool = True,
                        generated: bool = False):
    """All valid images and labels of a difficulty directory, through the processed cache.

    Returns memory-mapped (N, resolution**2) uint8 images and (N,) int64 labels. A damaged processed
    entry is rebuilt (one warning). ``generated``: the directory is our generated set, in which every
    image must decode (else ``_DamagedGeneratedSet``)."""
    metadata_files = sorted((directory / "metadata").glob("*.npy"), key=_batch_order)
    if not metadata_files:
        raise DataNotFoundError(f"no metadata files: expected {directory / 'metadata'}/<batch>.npy")
    key = {"metadata": file_signature(metadata_files), "resolution": resolution, "version": 1}
    cache = Path(cache_dir) / "processed" / f"pathfinder-{params_digest(key, 16)}"
    cached, problem = _processed_cache(cache)
    if cached is not None:
        images, labels, info = cached
        logger.info("pathfinder: reusing processed cache %s (%d images; skipped when decoded: %s)", cache,
                    info["num_images"], info["skipped"])
        return images, labels
    if problem != "missing":
        logger.warning("pathfinder: processed cache %s is damaged (%s); rebuilding it", cache, problem)
    paths, labels = read_metadata(directory)
    images, labels, skipped = decode_images(directory, paths, labels, resolution, progress=progress)
    if generated and any(skipped.values()):
        raise _DamagedGeneratedSet(f"{sum(skipped.values())} of {len(paths)} images in {directory} do not decode "
                                   f"({skipped})")
    if any(skipped.values()):
        logger.warning("pathfinder: skipped %d of %d images in %s: %s", sum(skipped.values()), len(paths),
                       directory, skipped)
    if len(images) == 0:
        raise DataNotFoundError(f"no readable images listed in {directory / 'metadata'} (skipped: {skipped})")
    try:
        with atomic_directory(cache, replace=problem != "missing") as tmp:
            np.save(tmp / "images.npy", images)
            np.save(tmp / "labels.npy", labels)
            record_check(tmp / "images.npy", rows=len(images))
            record_check(tmp / "labels.npy", rows=len(images))
            (tmp / "info.json").write_text(json.dumps({"num_images": len(images), "skipped": skipped,
                                                       "source": str(directory)}))
        logger.info("pathfinder: wrote processed cache %s", cache)
    except OSError as err:
        logger.warning("pathfinder: could not write processed cache %s (%s)", cache, err)
    return images, labels


def split_indices(num_examples: int, split: str, seed: int) -> np.ndarray:
    """Sorted indices of ``split`` in a seeded 80/10/10 permutation of range(num_examples)."""
    order = np.random.default_rng(seed).permutation(num_examples)
    num_train = int(round(SPLIT_FRACTIONS[0] * num_examples))
    num_val = int(round(SPLIT_FRACTIONS[1] * num_examples))
    bounds = {"train": (0, num_train), "val": (num_train, num_train + num_val), "test": (num_train + num_val, None)}
    start, stop = bounds[split]
    return np.sort(order[start:stop])


def find_pathfinder_dir(data_dir, resolution: int, difficulty: int) -> Path:
    data_dir = Path(data_dir).expanduser()
    subdir = difficulty_subdir(resolution, difficulty)
    found = first_existing_dir(data_dir, lra_candidates(subdir) + [DIFFICULTY_DIRS[difficulty]], "metadata")
    if found is None:
        raise DataNotFoundError(
            f"Pathfinder data not found: expected {data_dir / subdir / 'metadata'} (or the same under "
            f"{data_dir}/[lra_release/[lra_release/]], or data_dir pointing at the difficulty folder itself). It "
            f"is the folder lra_release/{subdir} of {LRA_ARCHIVE_HINT}; or pass "
            f"data_dir=None to use our generator"
        )
    return found


def load_pathfinder(split: str, *, data_dir, cache_dir: Path, resolution: int, difficulty: int, generate: bool,
                    num_examples: int, data_seed: int, num_workers, progress: bool) -> tuple[SplitData, int]:
    """Return (split data of uint8 pixels (N, resolution**2), seq_len = resolution**2)."""
    if data_dir is not None:
        directory = find_pathfinder_dir(data_dir, resolution, difficulty)
        images, labels = load_difficulty_dir(directory, resolution, cache_dir, progress=progress)
    else:
        if resolution not in GENERATED_RESOLUTIONS:
            raise ValueError(
                f"our Pathfinder generator supports resolution {GENERATED_RESOLUTIONS}, got {resolution}; "
                f"pass data_dir= with the official lra_release/pathfinder{resolution} folder"
            )
        params = PathfinderParams.for_resolution(resolution, difficulty)
        generation = dict(num_workers=num_workers, progress=progress, generate=generate)
        directory = ensure_generated(cache_dir, params, num_examples, data_seed, **generation)
        try:
            images, labels = load_difficulty_dir(directory, resolution, cache_dir, progress=progress, generated=True)
        except _DamagedGeneratedSet as err:  # regenerate once, then decode as usual
            directory = ensure_generated(cache_dir, params, num_examples, data_seed, damaged=str(err), **generation)
            images, labels = load_difficulty_dir(directory, resolution, cache_dir, progress=progress)
    index = split_indices(len(labels), split, data_seed)
    return SplitData(inputs=(np.asarray(images[index]),), labels=np.asarray(labels[index])), resolution**2


def check_pathfinder_options(options: dict) -> None:
    check_choice("difficulty", options["difficulty"], tuple(DIFFICULTY_DIRS))
    check_choice("resolution", options.get("resolution", PATHX_RESOLUTION), RESOLUTIONS)


def load_pathfinder_split(split: str, data_dir, cache_dir: Path, options: dict) -> tuple[SplitData, int]:
    options = {"resolution": PATHX_RESOLUTION, **options}
    options.pop("encoding")
    return load_pathfinder(split, data_dir=data_dir, cache_dir=cache_dir, **options)


def _pathfinder_shape(options: dict) -> dict:
    return {"seq_len": options.get("resolution", PATHX_RESOLUTION) ** 2}


for _name, _options in (("pathfinder", PATHFINDER_OPTIONS), ("pathx", PATHX_OPTIONS)):
    register_task(TaskSpec(name=_name, options=_options, load=load_pathfinder_split,
                           encoding=lambda options: pathfinder_encoding(options["encoding"]),
                           seq_len=_pathfinder_shape(_options)["seq_len"], vocab_size=VOCAB_SIZE,
                           num_classes=NUM_CLASSES, check_options=check_pathfinder_options, shape=_pathfinder_shape))
