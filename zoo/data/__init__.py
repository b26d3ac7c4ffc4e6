"""Data for the LRA model zoo: loaders of the official files / tfds datasets, and our generators.

    from zoo.data import load_task, TaskInfo, TASKS
    ds, info = load_task("listops", "train", batch_size=50)          # generated on first use, then cached
    ds, info = load_task("text", "test", data_dir="~/data")          # ~/data/aclImdb/... or a tfds data_dir
    ds, info = load_task("retrieval", "val", data_dir="~/lra_release")
    ds, info = load_task("image", "train", encoding="tokens")       # tfds cifar10 (offline: data_dir, download=False)
    ds, info = load_task("pathfinder", "train", num_examples=20_000) # generated Pathfinder-32, difficulty 14
    ds, info = load_task("pathx", "train", data_dir="~/lra_release") # official Path-X
    ds, info = load_task("digits", "train")                          # sklearn digits, offline, tiny
    ds, info = load_task("delayed_recall", "train", delay=100)       # synthetic memory task

Every dataset yields (x, y) batches with y int32 (batch,) and x int32 (batch, seq_len) token ids padded
with 0 to exactly seq_len, or float32 (batch, seq_len, 1) for real-valued encodings, or for retrieval
a tuple (x1, x2) of token batches. ``info`` (TaskInfo) gives seq_len, vocab_size (incl. pad 0) or
n_features, num_classes, two_inputs, num_examples and class_counts of the split.

Tasks, sources (``data_dir`` layouts) and options (defaults in brackets; ``task_options(name)``):

listops     data_dir=None: our LRA generator, cached; data_dir: ``basic_{train,val,test}.tsv`` in data_dir,
            data_dir/listops-1000 or data_dir/lra_release/listops-1000. vocab 16: 0 pad, 1..10 digits
            0..9, 11 [MIN, 12 [MAX, 13 [MED, 14 [SM, 15 ]. seq_len = max_length.
            Options: num_train [96000], num_val [2000], num_test [2000], min_length [500],
            max_length [2000] (generated trees have min_length < length < max_length), generate [True],
            data_seed [0], num_workers [cpu count], progress [True].
text        IMDB bytes, id = byte + 1, vocab 257. data_dir/aclImdb/{train,test}/{pos,neg}/*.txt, else tfds
            "imdb_reviews" in data_dir (tfds default dir when None). val = test (as LRA).
            Options: max_length [4096], download [False].
retrieval   AAN pairs, data_dir (or data_dir/tsv_data, data_dir/lra_release/tsv_data) with
            new_aan_pairs.{train,eval,test}.tsv; val = eval. Two inputs of bytes, id = byte + 1, vocab 257.
            Options: max_length [4000] per document.
image       CIFAR-10 grayscale, seq_len 1024; data_dir/cifar-10-batches-py (python pickles), else tfds
            "cifar10" in data_dir. Split 45k / 5k (last 10% of train) / 10k test.
            Options: encoding ["real": (p/255 - 122.6/255) / (61/255) | "tokens": id = p + 1, vocab 257],
            download [False].
pathfinder  Official layout ``pathfinder<res>/<curv_baseline|curv_contour_length_9|curv_contour_length_14>/
            {metadata/*.npy, imgs/*/sample_*.png}`` under data_dir (or data_dir/lra_release); data_dir=None:
            our generator (resolutions 32 and 128), cached in the same layout. 80/10/10 split seeded by
            data_seed. seq_len = res**2. Options: resolution [32], difficulty [14] (6, 9, 14), encoding
            ["real": (p/255 - 0.5)/0.5 | "tokens": id = p + 1, vocab 257], generate [True],
            num_examples [200000] (generated set size), data_seed [0], num_workers [cpu count], progress.
pathx       = pathfinder at resolution 128 (seq_len 16384); same options except resolution.
digits      scikit-learn load_digits (1797 real 8x8 images), seq_len 64, stratified 70/15/15 split by
            data_seed. Options: encoding ["real": (v/16 - 0.5)/0.5 | "tokens": id = v + 1, vocab 18],
            data_seed [0].
delayed_recall        synthetic memory task (zoo.data.delayed_recall): seq_len i.i.d. uniform symbols 0..K-1,
delayed_recall_short  label = the symbol at position seq_len-1-delay; generated, not cached. Options:
            delay [200 | short variant: 4], seq_len [256], num_classes [8] (K), num_train [4000],
            num_val [500], num_test [1000], encoding ["tokens": id = s + 1, vocab K + 1 | "real":
            2 s/(K-1) - 1], data_seed [0].

Caching: generated sets and processed arrays live in ``cache_dir`` (default ``$KERAS_SSM_DATA`` or
``~/.cache/keras_ssm/data``), keyed by every generator parameter and seed, or by the source files'
size and mtime; reuse is logged (logger "zoo.data"). Every generated or processed file has a record
next to it (``<file>.check.json``: row count, size, SHA-256), checked on each use: a damaged entry (cut,
deleted, changed) is regenerated or rebuilt with one warning saying so. Every data problem the user can
fix raises a DataError (a ValueError): DataNotFoundError (naming the expected path and how to obtain
the data; also a FileNotFoundError) or MalformedDataError (naming file:line; also empty or
header-only files).
Generators run in ``num_workers`` spawned processes: scripts that call them need the usual
``if __name__ == "__main__":`` guard.
"""

from ._common import DataError, DataNotFoundError, MalformedDataError, RaggedArray, SplitData, default_cache_dir
from .api import (
    LRA_TASKS,
    SPLITS,
    TASKS,
    TaskInfo,
    TaskSpec,
    get_task,
    load_task,
    load_task_arrays,
    register_task,
    resolve_task_options,
    task_options,
)

__all__ = [
    "LRA_TASKS",
    "TASKS",
    "SPLITS",
    "TaskInfo",
    "TaskSpec",
    "get_task",
    "register_task",
    "resolve_task_options",
    "load_task",
    "load_task_arrays",
    "task_options",
    "DataError",
    "DataNotFoundError",
    "MalformedDataError",
    "RaggedArray",
    "SplitData",
    "default_cache_dir",
]
