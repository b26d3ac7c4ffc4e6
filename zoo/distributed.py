"""Multi-process data parallelism on the jax backend: one model trained over the devices of several
processes or hosts (``keras.distribution.initialize`` + ``keras.distribution.DataParallel``).

Every process runs the same command with its own process id:

    python zoo/train.py listops --distribute data --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0
    python zoo/train.py listops --distribute data --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1

(or Keras' environment variables ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES``,
``KERAS_DISTRIBUTION_PROCESS_ID``). Keras shards each global batch over the processes (each reads its own
rows); the gradients are averaged over all devices, so the run computes what one process computes at
the same global batch. Process 0 owns the run directory (lock, checkpoints, history, plots, results);
the others run the same steps with their files in a private temporary directory, after copying process
0's backup so that a resumed run resumes everywhere from the same epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass

import numpy as np

ADDRESS_ENV = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
COUNT_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ID_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"


@dataclass(frozen=True)
class ProcessGroup:
    """The processes of one multi-process run: the coordinator (process 0) address, their number, and
    this process's id."""

    coordinator: str
    num_processes: int
    process_id: int


def process_group(coordinator=None, num_processes=None, process_id=None, environ=None) -> ProcessGroup | None:
    """The process group given by flags (first) or Keras' environment variables; None for one process.

    Raises:
        ValueError: only some of the three are given, a malformed address, a count < 1 or an id outside
            0..num_processes-1; the message names the flag and the environment variable.
    """
    env = os.environ if environ is None else environ
    values = {"--coordinator": coordinator if coordinator is not None else env.get(ADDRESS_ENV),
              "--num-processes": num_processes if num_processes is not None else env.get(COUNT_ENV),
              "--process-id": process_id if process_id is not None else env.get(ID_ENV)}
    given = [name for name, value in values.items() if value not in (None, "")]
    if not given:
        return None
    if len(given) < 3:
        missing = [name for name in values if name not in given]
        raise ValueError(f"multi-process training needs --coordinator HOST:PORT, --num-processes N and --process-id K "
                         f"(or {ADDRESS_ENV}, {COUNT_ENV}, {ID_ENV}); missing: {', '.join(missing)}.")
    address = str(values["--coordinator"]).split(",")[0].strip()
    if not re.fullmatch(r"[^\s:]+:\d{1,5}", address) or not 1 <= int(address.rsplit(":", 1)[1]) <= 65535:
        raise ValueError(f"--coordinator must be HOST:PORT (process 0's address, port 1..65535), got "
                         f"{values['--coordinator']!r}.")
    count, index = _as_int("--num-processes", values["--num-processes"]), _as_int("--process-id", values["--process-id"])
    if count < 1:
        raise ValueError(f"--num-processes must be >= 1, got {count}.")
    if not 0 <= index < count:
        raise ValueError(f"--process-id must be in 0..{count - 1} (--num-processes {count}), got {index}.")
    return ProcessGroup(address, count, index)


def _as_int(name, value) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None


def initialize(group: ProcessGroup, *, backend: str | None = None) -> None:
    """Join the process group (before any computation). On CPU, jax's gloo collectives are used.

    ``backend``: the Keras backend (default: the one Keras runs on).

    Raises:
        ValueError: a backend other than jax, or a process count that the coordinator does not confirm.
    """
    backend = _keras().backend.backend() if backend is None else backend
    if backend != "jax":
        raise ValueError(f"multi-process data parallelism needs the JAX backend (KERAS_BACKEND=jax); the backend is "
                         f"{backend!r}.")
    jax = _jax()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    _keras().distribution.initialize(group.coordinator, group.num_processes, group.process_id)
    if jax.process_count() != group.num_processes or jax.process_index() != group.process_id:
        raise ValueError(f"the coordinator at {group.coordinator} reports process {jax.process_index()} of "
                         f"{jax.process_count()}, not {group.process_id} of {group.num_processes}: start every "
                         f"process with the same --num-processes and distinct --process-id 0..N-1.")


def _keras():
    """Keras, imported on first use: ``python zoo/train.py --help`` imports this module, and Keras with its
    backend costs 3-4 s to import (measured here), which --help and a bad flag do not pay."""
    import keras

    return keras


def _jax():
    """jax with ``jax.experimental.multihost_utils`` when Keras runs on jax, else None (the tensorflow and torch
    backends neither need jax nor pay its import, 1-2 s measured here)."""
    if _keras().backend.backend() != "jax":
        return None
    import jax
    import jax.experimental.multihost_utils  # noqa: F401 (the submodule is not loaded by `import jax`)

    return jax


def process_count() -> int:
    """Processes of the run (1 unless :func:`initialize` joined a group)."""
    jax = _jax()
    return 1 if jax is None else jax.process_count()


def process_index() -> int:
    """This process's id (0 = the coordinator, which owns the run directory)."""
    jax = _jax()
    return 0 if jax is None else jax.process_index()


def barrier(name: str) -> None:
    """Wait until every process of the group reaches ``name`` (no-op for one process)."""
    if process_count() > 1:
        _jax().experimental.multihost_utils.sync_global_devices(name)


def broadcast_flag(value: bool) -> bool:
    """Process 0's ``value`` on every process (a collective: every process must call it)."""
    if process_count() == 1:
        return bool(value)
    multihost_utils = _jax().experimental.multihost_utils
    return bool(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(1 if value else 0))))


def process_max(value: int) -> int:
    """The largest of every process's ``value`` (a collective: every process must call it)."""
    if process_count() == 1:
        return int(value)
    every = _jax().experimental.multihost_utils.process_allgather(np.int32(value))
    return int(np.max(np.asarray(every)))


def check_same_config(config_dict: dict) -> None:
    """Every process must train the same config (a collective).

    Raises:
        ValueError: the processes' configs (run-only fields aside) differ.
    """
    if process_count() == 1:
        return
    multihost_utils = _jax().experimental.multihost_utils
    digest = hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode()).digest()[:8]
    mine = np.frombuffer(digest, dtype=np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    differing = [k for k in range(every.shape[0]) if not np.array_equal(every[k], every[0])]
    if differing:
        raise ValueError(f"processes {differing} were started with another config than process 0: start every "
                         f"process with the same command (only --process-id differs).")
