"""Stop requests (Ctrl-C, a scheduler's SIGTERM or SIGUSR1) that end a fit at a step boundary with a backup.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside a
garbage-collector callback or a ``__del__`` (jax runs one on every collection) the exception is printed as
"Exception ignored in ..." and dropped, and the run goes on. SIGTERM's default action kills the process at
once: a preempted cluster job lost the epoch in progress and left its lock behind. Here:

    with handle_interrupts(preempt_signals=("SIGTERM", "SIGUSR1")):   # the CLIs, around their main()
        ...                      # outside a fit: SIGINT raises KeyboardInterrupt, SIGTERM/SIGUSR1 Preempted
        with fit_scope():        # zoo.core around model.fit
            ...                  # first signal: recorded. At the end of the current training step (or, during
                                 # validation, at the epoch end) LatchStopRequest (the first callback) takes it,
                                 # zoo.callbacks.RunBackup writes a backup of that step, then
                                 # StopAtStepBoundary (the last callback) raises KeyboardInterrupt (SIGINT)
                                 # or Preempted (the others).
                                 # a second signal: raised at once (a step that hangs is still stoppable; the
                                 # last complete backup stays valid, every backup file being atomic).

The exceptions unwind through the run directory's lock, which is released; the CLIs turn them into one line
and the exit status :data:`INTERRUPTED_EXIT` (130) or :data:`PREEMPTED_EXIT` (75, sysexits' EX_TEMPFAIL:
"try again", what a requeue script tests for). Without :func:`handle_interrupts` (a library call, a notebook,
a signal the shell set to be ignored) nothing changes.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading

import keras

from zoo.distributed import process_count, process_max

__all__ = ["DEFAULT_PREEMPT_SIGNALS", "INTERRUPTED_EXIT", "PREEMPTED_EXIT", "LatchStopRequest", "Preempted",
           "StopAtStepBoundary",
           "fit_scope", "handle_interrupts", "note_backup", "parse_signal_names", "stop_pending"]

#: The signals that mean "preempted: save and stop" by default (SLURM sends SIGTERM, and SIGUSR1 when asked
#: with ``--signal=USR1@<seconds>``, ahead of the time limit).
DEFAULT_PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1")
INTERRUPTED_EXIT = 130
PREEMPTED_EXIT = 75


class Preempted(BaseException):
    """A preemption signal stopped the run (a BaseException like KeyboardInterrupt: no ``except Exception``
    of a library treats it as a failed trial)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class _State:
    installed = False  # our handlers are installed
    owned = ()  # the signals they handle
    fits = 0  # fits running under fit_scope
    pending = None  # the signal number of a stop waiting for the next step boundary
    latched = None  # the stop taken at this step boundary (by LatchStopRequest, the first callback)
    backup = None  # what the last backup written in this process holds (for the closing line)


def _stop(signum):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Preempted(signal.Signals(signum).name)


def _on_signal(signum, frame):
    if _State.fits:
        first = _State.pending is None and _State.latched is None
        _State.pending = signum  # a second one is raised at once too; if that is swallowed, the next step raises
        if first:
            return
    _stop(signum)


def parse_signal_names(text) -> tuple[str, ...]:
    """'SIGTERM,SIGUSR1' (or 'TERM,USR1', or '' for none) -> ('SIGTERM', 'SIGUSR1').

    Raises:
        ValueError: an unknown name, or SIGINT/SIGKILL/SIGSTOP (Ctrl-C has its own meaning; the others cannot
            be caught); the message lists what is allowed.
    """
    names = []
    for item in (text.split(",") if isinstance(text, str) else list(text)):
        item = str(item).strip().upper()
        if not item:
            continue
        name = item if item.startswith("SIG") else "SIG" + item
        if name in ("SIGINT", "SIGKILL", "SIGSTOP") or not isinstance(getattr(signal, name, None), signal.Signals):
            raise ValueError(f"--preempt-signals: {item!r} is not a signal that can mean preemption; give names "
                             f"such as SIGTERM, SIGUSR1, SIGUSR2, SIGHUP, comma-separated ('' for none).")
        names.append(name)
    return tuple(dict.fromkeys(names))


@contextlib.contextmanager
def handle_interrupts(preempt_signals=DEFAULT_PREEMPT_SIGNALS):
    """Install the step-boundary handler for SIGINT (when it has Python's default handler) and for each of
    ``preempt_signals`` (when it has its default action) for the block; the previous handlers come back
    afterwards. In a thread other than the main one, or nested, it does nothing."""
    if threading.current_thread() is not threading.main_thread() or _State.installed:
        yield
        return
    wanted = [signal.SIGINT] + [getattr(signal, name) for name in parse_signal_names(preempt_signals)]
    default = {signal.SIGINT: signal.default_int_handler}
    previous = {}
    for signum in wanted:
        if signal.getsignal(signum) is default.get(signum, signal.SIG_DFL):
            previous[signum] = signal.signal(signum, _on_signal)
    _State.installed, _State.pending, _State.backup, _State.owned = True, None, None, tuple(previous)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.installed, _State.pending, _State.latched, _State.owned = False, None, None, ()


@contextlib.contextmanager
def fit_scope():
    """Mark a running fit: inside, a first stop signal waits for the next step boundary. Our handlers are
    installed again first: ``jax.distributed.initialize`` puts a C++ SIGTERM handler of its own (XLA's
    preemption notifier) in their place, which Python's ``signal.getsignal`` does not show."""
    if threading.current_thread() is threading.main_thread():
        for signum in _State.owned:
            signal.signal(signum, _on_signal)
    _State.fits += 1
    try:
        yield
    finally:
        _State.fits -= 1
        if not _State.fits:
            _State.pending = _State.latched = None


def stop_pending() -> str | None:
    """The name of the signal whose stop is being carried out at this step boundary, or None."""
    return None if _State.latched is None else signal.Signals(_State.latched).name


def note_backup(description: str) -> None:
    """Record what the backup just written holds (the CLIs' closing line after a stop says it)."""
    _State.backup = description


def last_backup() -> str | None:
    return _State.backup


class LatchStopRequest(keras.callbacks.Callback):
    """The first callback of a fit: a stop requested before the end of this step is taken at this boundary
    (one that comes in while the callbacks run waits for the next step, so the backup and the stop agree).
    In a multi-process run the processes agree at every step (one small collective), so that all of them
    stop at the same step when any one is signalled, and none waits forever in a collective of the next."""

    def on_train_begin(self, logs=None):
        self._processes = process_count()

    def _latch(self, *_, logs=None):
        pending = _State.pending or 0
        if self._processes > 1:
            pending = process_max(pending)
        if pending:
            _State.latched, _State.pending = pending, None

    on_train_batch_end = on_epoch_end = _latch


class StopAtStepBoundary(keras.callbacks.Callback):
    """The last callback of a fit: raise the stop latched at this step or epoch end (see the module), after
    the callbacks before it (the backup) have seen it through :func:`stop_pending`. At an epoch's last
    training step it waits for the epoch end (validation, then the epoch's own backup)."""

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 < self.params.get("steps", math.inf):
            _raise_latched()

    def on_epoch_end(self, epoch, logs=None):
        _raise_latched()


def _raise_latched():
    if _State.latched is not None:
        signum, _State.latched = _State.latched, None
        _stop(signum)
