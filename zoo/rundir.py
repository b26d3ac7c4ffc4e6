"""Safe files and directories for zoo runs and sweeps: atomic writes, readers that name a damaged file,
and one writer per directory.

- :func:`write_text_atomic` / :func:`write_json_atomic` / :func:`write_csv_atomic`: the content goes to a
  temporary file in the same directory, is flushed to disk, then renamed over the target
  (``os.replace``), so a reader or a killed writer sees either the old file or the new one, never a
  truncated one (``keras_ssm.files``). Every JSON and CSV file the zoo and the sweeps write goes through these.
- :func:`read_json`: ``json.loads`` of a file, raising :class:`DamagedFileError` (a ValueError) that names
  the file and says what to do when it is empty, truncated or not JSON.
- :class:`DirectoryLock`: a lock file ``<directory>/.lock`` holding the owner's pid, host, start time and
  batch job (:func:`scheduler_job`). A second process gets :class:`LockedError` naming the owner; a lock
  left by a process that no longer runs on this host, or by an earlier attempt of the same batch job (a
  requeue, on any host), is taken over with one line saying so. Acquisition is serialised by
  ``fcntl.flock`` on the directory itself, so two starters cannot both take over the same stale lock.

It also owns every file name the zoo and the sweeps write (the constants below): ``zoo/runs.py`` (one run
directory), the experiments (their per-run analysis and reports) and ``tuning/`` (one sweep project) read
them from here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import sys
import time
from pathlib import Path

from keras_ssm.files import (  # noqa: F401 (the zoo's writers are the library's)
    is_temporary,
    temporary_path,
    write_atomic,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)

LOCK_FILE = ".lock"

# A run directory (zoo.runs).
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
BEST_MODEL_FILE = "best.keras"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"
INITIAL_WEIGHTS_FILE = "initial.weights.h5"
CURVES_FILE = "training_curves.png"
MEMORY_PLOT_FILE = "memory_functions.png"
DIVERGED_FILE = "diverged.json"
TENSORBOARD_DIR = "tensorboard"
# A run's memory analysis (zoo.analysis) and an experiment's directory and report.
ANALYSIS_FILE = "analysis.json"
ANALYSIS_ARRAYS_FILE = "analysis.npz"
EMPIRICAL_FILE = "empirical.json"
RUNS_DIR = "runs"
SHARDS_FILE = "shards.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
VALIDATION_CURVES_PLOT = "validation_curves.png"
HORIZON_PLOT = "memory_horizon.png"
LONGEST_PLOT = "longest_memory.png"
# A sweep project (tuning).
SWEEP_FILE = "sweep.json"
WORKERS_DIR = "workers"
INITIAL_MEMORY_FILE = "initial_memory.json"
SWEEP_CSV_FILE = "results.csv"
SWEEP_MARKDOWN_FILE = "results.md"
SWEEP_PLOT_FILE = "results.png"
SWEEP_BEST_FILE = "best.json"
ORACLE_FILE = "oracle.json"  # KerasTuner's oracle state (with the memory screen's screened-out samples)


class RunDirectoryError(ValueError):
    """A run directory or sweep project cannot be used as asked (another run, another writer, a damaged
    file); the message says what to do."""


class DamagedFileError(RunDirectoryError):
    """A file the zoo wrote cannot be read (empty, truncated or not the expected format)."""


class LockedError(RunDirectoryError):
    """Another live process holds the directory's lock."""


# ---------------------------------------------------------------------------------------------
def display_path(path) -> str:
    """``path`` as a user types it from the working directory: relative when inside it, absolute otherwise."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(resolved)


def write_json_exclusive(path, data) -> bool:
    """``data`` as indented JSON at ``path`` unless a file is there: written to a temporary file, fsynced, then
    hard-linked to ``path`` (atomic and exclusive: of two writers starting at once, one creates it). Returns
    whether this call created it."""
    path = Path(path)
    tmp = temporary_path(path)
    write_atomic(tmp, "w", lambda f: f.write(json.dumps(data, indent=1)))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def write_csv_atomic(path, rows, fieldnames) -> Path:
    """Rows (dicts) under a header of ``fieldnames`` as CSV, written atomically; None is written as ''."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return write_text_atomic(path, buffer.getvalue())


def save_weights_atomic(model, path) -> Path:
    """``model.save_weights`` to a temporary ``.weights.h5`` next to ``path``, renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".partial-{path.name}")
    model.save_weights(tmp, overwrite=True)
    tmp.replace(path)
    return path


def read_json(path, what_to_do: str):
    """``json.loads`` of ``path``.

    Raises:
        DamagedFileError: the file is empty, truncated or not JSON; the message names the file, the
            reason, and ``what_to_do``.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = "it is empty" if not text.strip() else f"it is not valid JSON ({err})"
        raise DamagedFileError(f"{path} is damaged: {reason}. {what_to_do}") from None


# ---------------------------------------------------------------------------------------------
def _process_start_time(pid: int):
    """The start time of process ``pid`` in clock ticks since boot (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


#: Environment variables naming the batch job and its attempt, for schedulers other than SLURM.
JOB_ID_ENV, JOB_ATTEMPT_ENV = "KERAS_SSM_JOB_ID", "KERAS_SSM_JOB_ATTEMPT"


def scheduler_job(environ=None) -> dict | None:
    """``{"id": job id, "attempt": n}`` of the batch job this process belongs to, or None outside one.

    SLURM: ``SLURM_JOB_ID`` and ``SLURM_RESTART_COUNT`` (unset before the first requeue: attempt 0). Any
    other scheduler: its job script sets ``KERAS_SSM_JOB_ID`` and ``KERAS_SSM_JOB_ATTEMPT`` (0, 1, ...; the
    attempt must grow with every requeue of the job).

    Raises:
        ValueError: an attempt that is not a non-negative integer.
    """
    env = os.environ if environ is None else environ
    for id_name, attempt_name in ((JOB_ID_ENV, JOB_ATTEMPT_ENV), ("SLURM_JOB_ID", "SLURM_RESTART_COUNT")):
        if env.get(id_name):
            attempt = env.get(attempt_name, "0") or "0"
            if not attempt.isdigit():
                raise ValueError(f"{attempt_name} must be a non-negative integer (the job's attempt), got "
                                 f"{attempt!r}.")
            return {"id": env[id_name], "attempt": int(attempt)}
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _requeued_from(owner: dict) -> bool:
    """Whether this process is a later attempt of the batch job that wrote the lock ``owner``: the scheduler
    starts attempt n+1 of a job only after attempt n has ended, and one job id with one attempt names one
    incarnation, so no live writer is ever taken over (two tasks of one attempt share the attempt: refused)."""
    mine, theirs = scheduler_job(), owner.get("job")
    if mine is None or not isinstance(theirs, dict):
        return False
    try:
        return str(theirs.get("id")) == str(mine["id"]) and int(theirs.get("attempt")) < mine["attempt"]
    except (TypeError, ValueError):
        return False


_HELD: dict[str, "DirectoryLock"] = {}


class DirectoryLock:
    """One writer per directory: ``with DirectoryLock(path, "run directory"):`` ... (see the module docstring).

    Args:
        directory: the directory to lock (created if missing).
        what: how messages name the directory ("run directory", "sweep project").

    Raises (on entering):
        LockedError: a live process (or one on another host, which cannot be checked) holds the lock;
            the message names its pid, host and start time, and the lock file to delete if it is
            certainly gone.
    """

    def __init__(self, directory, what: str = "directory"):
        self.directory = Path(directory)
        self.what = what
        self.path = self.directory / LOCK_FILE
        self.created_directory = False
        self._held = False

    # The flock on the directory serialises the check-and-write below between processes.
    @contextlib.contextmanager
    def _guard(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: the lock file alone
            yield
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _owner_record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "start_time": _process_start_time(os.getpid()),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv),
                "job": scheduler_job()}

    def acquire(self) -> "DirectoryLock":
        key = str(self.directory.resolve())
        if key in _HELD:
            raise LockedError(f"The {self.what} {self.directory} is already in use by this process.")
        if not self.directory.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            self.created_directory = True
        with self._guard():
            if self.path.exists():
                owner = self._read_owner()
                requeued = owner is not None and _requeued_from(owner)
                if owner is not None and not requeued and self._owner_alive(owner):
                    raise LockedError(
                        f"The {self.what} {self.directory} is in use by process {owner.get('pid')} on host "
                        f"{owner.get('host')!r} (started {owner.get('started', '?')}: {owner.get('command', '?')}). "
                        f"Wait for it to finish or stop it; if you are sure it is gone, delete {self.path}. A "
                        f"scheduler's requeued job takes the lock over by itself when it sets the job id and "
                        f"attempt (SLURM's, or {JOB_ID_ENV} and {JOB_ATTEMPT_ENV})."
                    )
                if requeued:
                    job = owner["job"]
                    print(f"Taking over the lock of {self.directory}: it was held by attempt {job['attempt']} of job "
                          f"{job['id']} on host {owner.get('host')!r}, and this is attempt "
                          f"{scheduler_job()['attempt']} of the same job (requeued: the earlier attempt has ended).",
                          file=sys.stderr, flush=True)
                elif owner is None:
                    print(f"Taking over the unreadable lock file {self.path}.", file=sys.stderr, flush=True)
                else:
                    print(f"Taking over the lock of {self.directory}: process {owner.get('pid')} on this host "
                          f"no longer runs.", file=sys.stderr, flush=True)
            write_json_atomic(self.path, self._owner_record())
        self._held = True
        _HELD[key] = self
        return self

    def _read_owner(self):
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    @staticmethod
    def _owner_alive(owner: dict) -> bool:
        if owner.get("host") != socket.gethostname():
            return True  # cannot check a process on another host
        try:
            pid = int(owner["pid"])
        except (KeyError, TypeError, ValueError):
            return False
        if pid == os.getpid():
            return False  # left behind by this process (not held: see _HELD)
        if not _pid_alive(pid):
            return False
        start = owner.get("start_time")
        # A live pid with another start time is a new process that reused the number.
        return start is None or _process_start_time(pid) in (None, start)

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        _HELD.pop(str(self.directory.resolve()), None)
        owner = self._read_owner()
        if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            with contextlib.suppress(OSError):
                self.path.unlink()
        # A directory this lock created and nothing else filled is removed again (a failed start).
        if self.created_directory:
            with contextlib.suppress(OSError):
                self.directory.rmdir()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def directory_entries(directory) -> list[Path]:
    """The entries of ``directory`` other than its lock file and leftover temporary files."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.name != LOCK_FILE and not is_temporary(p)]
