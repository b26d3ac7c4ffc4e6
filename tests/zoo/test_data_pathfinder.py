"""Pathfinder / Path-X: generated images (markers, balance, connectivity), layout writer, loader, cache."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from zoo.data import DataNotFoundError, MalformedDataError, load_task, load_task_arrays
from zoo.data import pathfinder as pf
from zoo.data.pathfinder_generator import PathfinderParams, generate_batch

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def marker_centres(image: np.ndarray, core: int) -> list:
    """Marker discs found from the image alone: blobs of fully covered pixels that contain a core x core
    block of 255 (paths are too thin for that)."""
    full = image == 255
    if core > 1:
        full = ndimage.binary_opening(full, structure=np.ones((core, core), dtype=bool))
    labels, count = ndimage.label(full, structure=EIGHT_CONNECTED)
    return [tuple(np.round(c).astype(int)) for c in ndimage.center_of_mass(full, labels, range(1, count + 1))]


def markers_connected(image: np.ndarray, centres) -> bool:
    components, _ = ndimage.label(image > 0, structure=EIGHT_CONNECTED)
    first, second = (components[r, c] for r, c in centres)
    assert first > 0 and second > 0
    return first == second


@pytest.mark.parametrize("difficulty", [6, 14])
def test_generated_32_markers_balance_and_connectivity(difficulty):
    params = PathfinderParams.for_resolution(32, difficulty)
    images, labels, facts = generate_batch(params, 40, np.random.SeedSequence(11))
    assert images.shape == (40, 32, 32) and images.dtype == np.uint8
    assert labels.sum() == 20  # exactly balanced
    assert len(set(labels[:20].tolist())) == 2  # in a shuffled order
    for image, label in zip(images, labels):
        centres = marker_centres(image, core=1)
        assert len(centres) == 2, "expected exactly two marker discs"
        assert np.hypot(*np.subtract(*centres)) >= params.seed_distance - 2
        assert markers_connected(image, centres) == bool(label)
    # anti-aliased: intermediate grey levels are present
    assert ((images > 0) & (images < 255)).any(axis=(1, 2)).all()


def test_generated_pathx_markers_and_connectivity():
    params = PathfinderParams.for_resolution(128, 14)
    images, labels, _ = generate_batch(params, 4, np.random.SeedSequence(3))
    assert images.shape == (4, 128, 128) and labels.sum() == 2
    for image, label in zip(images, labels):
        centres = marker_centres(image, core=3)
        assert len(centres) == 2
        assert markers_connected(image, centres) == bool(label)


def test_generator_is_deterministic():
    params = PathfinderParams.for_resolution(32, 9)
    a = generate_batch(params, 6, np.random.SeedSequence(5))
    b = generate_batch(params, 6, np.random.SeedSequence(5))
    c = generate_batch(params, 6, np.random.SeedSequence(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="difficulty"):
        PathfinderParams.for_resolution(32, 7)
    with pytest.raises(ValueError, match="resolution 32 or 128"):
        PathfinderParams.for_resolution(64, 14)


def test_generated_layout_splits_and_cache(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    options = dict(cache_dir=tmp_path, num_examples=60, difficulty=6, num_workers=1, progress=False)
    data, info, encoding = load_task_arrays("pathfinder", "train", encoding="tokens", **options)
    root = pf.generated_root(tmp_path, PathfinderParams.for_resolution(32, 6), 60, 0)
    difficulty_dir = root / "pathfinder32" / "curv_baseline"
    metadata = (difficulty_dir / "metadata" / "0.npy").read_text().splitlines()
    assert len(metadata) == 60
    columns = metadata[0].split()
    assert columns[0] == "imgs/0" and columns[1] == "sample_0.png" and columns[3] in ("0", "1")
    assert (difficulty_dir / "imgs" / "0" / "sample_59.png").exists()
    assert info.seq_len == 1024 and info.vocab_size == 257 and info.n_features is None and info.num_classes == 2
    assert info.num_examples == 48 and data.inputs[0].shape == (48, 1024)
    assert encoding.offset == 1

    def fail(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(pf, "generate_pathfinder_dir", fail)
    caplog.clear()
    val, val_info, _ = load_task_arrays("pathfinder", "val", **options)
    test, _, _ = load_task_arrays("pathfinder", "test", **options)
    assert "reusing generated data" in caplog.text and "reusing processed cache" in caplog.text
    assert val_info.num_examples == 6 and len(test) == 6 and val_info.n_features == 1 and val_info.vocab_size is None
    # splits are disjoint and together hold every generated image
    rows = np.concatenate([data.inputs[0], val.inputs[0], test.inputs[0]])
    assert len(np.unique(rows, axis=0)) == 60
    labels = np.concatenate([data.labels, val.labels, test.labels])
    assert labels.sum() == 30


def test_pipeline_encodings(tmp_path):
    options = dict(cache_dir=tmp_path, num_examples=20, num_workers=1, progress=False, batch_size=20, shuffle=False)
    ds, info = load_task("pathfinder", "train", encoding="tokens", **options)
    tokens, y = next(iter(ds))
    assert tokens.shape == (16, 1024) and tokens.dtype.name == "int32" and y.dtype.name == "int32"
    ds, info = load_task("pathfinder", "train", encoding="real", **options)
    real, y2 = next(iter(ds))
    assert real.shape == (16, 1024, 1) and real.dtype.name == "float32" and info.n_features == 1
    np.testing.assert_allclose(real.numpy()[..., 0], ((tokens.numpy() - 1) / 255 - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_array_equal(y, y2)


def write_official(root, resolution=32, binary_metadata=False):
    """Tiny official-layout tree: 10 good images, plus a black one, an empty file and a missing file."""
    directory = root / "lra_release" / f"pathfinder{resolution}" / "curv_contour_length_14"
    (directory / "imgs" / "0").mkdir(parents=True)
    (directory / "metadata").mkdir()
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for i in range(13):
        name = f"sample_{i}.png"
        label = i % 2
        if i < 10:
            pixels = rng.integers(0, 256, size=(resolution, resolution), dtype=np.uint8)
            pixels[0, 0] = 1 + i  # distinguishable and never black
            Image.fromarray(pixels).save(directory / "imgs" / "0" / name)
            labels.append(label)
        elif i == 10:
            Image.fromarray(np.zeros((resolution, resolution), np.uint8)).save(directory / "imgs" / "0" / name)
        elif i == 11:
            (directory / "imgs" / "0" / name).write_bytes(b"")
        rows.append(["imgs/0", name, str(i), str(label), "1.0", "14", "4", "2", "0.5", "1", "1"])
    if binary_metadata:
        np.save(directory / "metadata" / "0.npy", np.array(rows))
    else:
        (directory / "metadata" / "0.npy").write_text("\n".join(" ".join(r) for r in rows) + "\n")
    return directory, np.array(labels)


@pytest.mark.parametrize("binary_metadata", [False, True])
def test_official_layout_loader_skips_bad_images_with_counts(tmp_path, caplog, binary_metadata):
    caplog.set_level(logging.INFO, logger="zoo.data")
    _, labels = write_official(tmp_path, binary_metadata=binary_metadata)
    parts = [load_task_arrays("pathfinder", split, data_dir=tmp_path, cache_dir=tmp_path / "c", encoding="tokens",
                              progress=False)[0] for split in ("train", "val", "test")]
    assert [len(p) for p in parts] == [8, 1, 1]
    assert "skipped 3 of 13 images" in caplog.text
    assert "'missing': 1, 'unreadable': 1, 'black': 1" in caplog.text
    firsts = np.concatenate([p.inputs[0][:, 0] for p in parts])
    got_labels = np.concatenate([p.labels for p in parts])
    np.testing.assert_array_equal(got_labels, labels[firsts - 1])  # every image keeps its own label


def test_official_layout_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="lra_release/pathfinder32/curv_contour_length_14"):
        load_task_arrays("pathfinder", "train", data_dir=tmp_path, cache_dir=tmp_path / "c")
    directory, _ = write_official(tmp_path)
    with pytest.raises(MalformedDataError, match="expected a 128x128 image"):
        load_task_arrays("pathfinder", "train", data_dir=directory, cache_dir=tmp_path / "c", resolution=128,
                         progress=False)
    with open(directory / "metadata" / "0.npy", "a") as f:
        f.write("imgs/0 sample_0.png 0 maybe\n")
    with pytest.raises(MalformedDataError, match=r"0\.npy:14: label 'maybe'"):
        load_task_arrays("pathfinder", "train", data_dir=tmp_path, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="difficulty"):
        load_task_arrays("pathfinder", "train", data_dir=tmp_path, difficulty=10)
    with pytest.raises(DataNotFoundError, match="generate=False"):
        load_task_arrays("pathx", "train", cache_dir=tmp_path / "c", generate=False)


# ----------------------------------------------------------------------------- damaged cache entries
GENERATED = dict(num_examples=20, difficulty=6, num_workers=1, progress=False, encoding="tokens")


def generated_difficulty_dir(cache):
    return pf.generated_root(cache, PathfinderParams.for_resolution(32, 6), 20, 0) / "pathfinder32" / "curv_baseline"


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("damage", ["metadata_cut", "metadata_deleted", "params_deleted", "image_deleted",
                                    "image_emptied"])
def test_a_damaged_generated_set_is_regenerated_with_one_warning(tmp_path, caplog, damage):
    first, _, _ = load_task_arrays("pathfinder", "train", cache_dir=tmp_path, **GENERATED)
    directory = generated_difficulty_dir(tmp_path)
    metadata = directory / "metadata" / "0.npy"
    original = metadata.read_bytes()
    if damage == "metadata_cut":
        metadata.write_text("\n".join(original.decode().splitlines()[:5]) + "\n")
    elif damage == "metadata_deleted":
        metadata.unlink()
    elif damage == "params_deleted":
        (directory.parents[1] / "params.json").unlink()
    else:
        # the decoded images are cached: damage the images and drop the processed cache, as a user
        # cleaning up "processed/" would
        for entry in (tmp_path / "processed").iterdir():
            shutil.rmtree(entry)
        image = directory / "imgs" / "0" / "sample_3.png"
        image.unlink() if damage == "image_deleted" else image.write_bytes(b"")
    caplog.clear()
    caplog.set_level(logging.INFO, logger="zoo.data")
    second, info, _ = load_task_arrays("pathfinder", "train", cache_dir=tmp_path, **GENERATED)
    assert info.num_examples == 16
    np.testing.assert_array_equal(second.inputs[0], first.inputs[0])
    np.testing.assert_array_equal(second.labels, first.labels)
    assert metadata.read_bytes() == original
    warnings = warnings_of(caplog)
    assert len(warnings) == 1 and "damaged" in warnings[0] and "regenerating" in warnings[0], warnings


@pytest.mark.parametrize("damage", ["truncated", "deleted", "changed"])
def test_a_damaged_processed_pathfinder_cache_is_rebuilt(tmp_path, caplog, damage):
    first, _, _ = load_task_arrays("pathfinder", "train", cache_dir=tmp_path, **GENERATED)
    (cache,) = (tmp_path / "processed").iterdir()
    images = cache / "images.npy"
    data = images.read_bytes()
    if damage == "truncated":
        images.write_bytes(data[: len(data) - 1000])
    elif damage == "deleted":
        images.unlink()
    else:
        images.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    caplog.clear()
    caplog.set_level(logging.INFO, logger="zoo.data")
    second, _, _ = load_task_arrays("pathfinder", "train", cache_dir=tmp_path, **GENERATED)
    np.testing.assert_array_equal(second.inputs[0], first.inputs[0])
    assert images.read_bytes() == data
    warnings = warnings_of(caplog)
    assert len(warnings) == 1 and str(cache) in warnings[0] and "rebuilding" in warnings[0], warnings
