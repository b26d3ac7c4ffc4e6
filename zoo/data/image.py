"""LRA Image: CIFAR-10 as grayscale pixel sequences of length 1024 (row-major), 10 classes.

Grayscale = ``tf.image.rgb_to_grayscale`` (weights 0.2989, 0.5870, 0.1140; uint8 result), as LRA.
Encodings (option ``encoding``):
  "tokens": id = pixel + 1 (1..256), 0 = pad (never present), ``vocab_size = 257``;
  "real" (default, as the S4 code): one feature ``(pixel / 255 - 122.6 / 255) / (61 / 255)``,
  ``n_features = 1``.

Sources (first match wins):
1. the official python version of CIFAR-10 (cifar-10-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html)
   unpacked: ``data_dir/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (or data_dir itself being
   that folder); these are Python pickles, so only point this at files you trust;
2. tfds ``cifar10`` read from the tfds ``data_dir`` (None: tfds' default) with ``download=False``
   unless ``download=True``.

Splits (LRA): train = the first 90% of the 50k training images (45k), val = the last 10% (5k; tfds
``train[90%:]``), test = the 10k test images.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ._common import DataNotFoundError, MalformedDataError, SplitData, logger, tfds_arrays
from .pipeline import InputEncoding, tensorflow
from .registry import TaskSpec, register_task

NUM_CLASSES = 10
SEQ_LEN = 1024
VOCAB_SIZE = 257
PIXEL_OFFSET = 1
TFDS_NAME = "cifar10"
IMAGE_OPTIONS = {"encoding": "real", "download": False}
#: Channel statistics of grayscale CIFAR-10 used by the S4 code, on the 0..255 scale.
GRAY_MEAN, GRAY_STD = 122.6, 61.0
TFDS_SPLITS = {"train": "train[:90%]", "val": "train[90%:]", "test": "test"}
_HINT = (
    "download cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and unpack it into data_dir "
    "(giving data_dir/cifar-10-batches-py/data_batch_1 ...), or prepare the tfds dataset 'cifar10' on a machine "
    "with internet (python -c \"import tensorflow_datasets as tfds; tfds.load('cifar10')\") and pass its tfds "
    "data_dir (e.g. ~/tensorflow_datasets)"
)


def image_encoding(encoding: str) -> InputEncoding:
    if encoding == "tokens":
        return InputEncoding("tokens", offset=PIXEL_OFFSET)
    return InputEncoding("real", scale=1.0 / 255.0, mean=GRAY_MEAN / 255.0, std=GRAY_STD / 255.0)


def rgb_to_gray_sequences(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 RGB -> (N, 1024) uint8 grayscale, row-major (tf.image.rgb_to_grayscale)."""
    tf = tensorflow()

    gray = tf.image.rgb_to_grayscale(tf.constant(images, dtype=tf.uint8)).numpy()
    return gray.reshape(len(images), -1)


def find_cifar_python_dir(data_dir) -> Path | None:
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir / "cifar-10-batches-py", data_dir):
        if (candidate / "data_batch_1").exists():
            return candidate
    return None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (N, 32, 32, 3) uint8 RGB images and int64 labels."""
    if not path.exists():
        raise DataNotFoundError(f"CIFAR-10 batch missing: expected {path}; {_HINT}")
    with open(path, "rb") as f:
        try:
            batch = pickle.load(f, encoding="bytes")
        except Exception as err:
            raise MalformedDataError(f"{path}: not a CIFAR-10 python pickle ({err})") from err
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise MalformedDataError(f"{path}: expected a dict with b'data' and b'labels' ({err!r})") from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise MalformedDataError(f"{path}: b'data' must be (N, 3072) with N labels, got {data.shape}, {len(labels)}")
    # Rows hold the red, green, blue 32x32 planes one after another.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def read_cifar_python(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "test":
        return _read_cifar_batch(directory / "test_batch")
    parts = [_read_cifar_batch(directory / f"data_batch_{i}") for i in range(1, 6)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    num_train = len(images) - len(images) // 10
    if split == "train":
        return images[:num_train], labels[:num_train]
    return images[num_train:], labels[num_train:]


def read_cifar_tfds(split: str, data_dir, download: bool) -> tuple[np.ndarray, np.ndarray]:
    images, labels = tfds_arrays(TFDS_NAME, TFDS_SPLITS[split], data_dir, download, _HINT)
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def load_image(split: str, *, data_dir, download: bool) -> tuple[SplitData, int]:
    """Return (split data of uint8 grayscale pixels (N, 1024), seq_len = 1024)."""
    directory = find_cifar_python_dir(data_dir)
    if directory is not None:
        logger.info("image: reading CIFAR-10 python batches from %s", directory)
        images, labels = read_cifar_python(directory, split)
    else:
        images, labels = read_cifar_tfds(split, data_dir, download)
    if images.shape[1:] != (32, 32, 3):
        raise MalformedDataError(f"CIFAR-10 images must be 32x32x3, got {images.shape[1:]}")
    return SplitData(inputs=(rgb_to_gray_sequences(images),), labels=labels), SEQ_LEN


def load_image_split(split: str, data_dir, cache_dir: Path, options: dict) -> tuple[SplitData, int]:
    return load_image(split, data_dir=data_dir, download=options["download"])


register_task(TaskSpec(name="image", options=IMAGE_OPTIONS, load=load_image_split,
                       encoding=lambda options: image_encoding(options["encoding"]), seq_len=SEQ_LEN,
                       vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES))
