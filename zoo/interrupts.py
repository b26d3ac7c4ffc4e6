"""Ctrl-C that stops a fit at a step boundary, never half-way through Python that swallows it.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread happens to be. Inside a
garbage-collector callback or a ``__del__`` (jax runs one on every collection) the exception is printed as
"Exception ignored in ..." and dropped, so the run goes on as if nothing was pressed. Here:

    with handle_interrupts():          # the CLIs, around their main()
        ...                            # outside a fit: Ctrl-C raises KeyboardInterrupt at once, as usual
        with fit_scope():              # zoo.core around model.fit
            ...                        # first Ctrl-C: recorded; StopAtStepBoundary raises KeyboardInterrupt
                                       # at the end of the current train/validation step
                                       # second Ctrl-C: raises at once (a step that hangs is still stoppable)

Without :func:`handle_interrupts` (a library call, a notebook, SIGINT ignored by the shell) nothing changes.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import keras

__all__ = ["StopAtStepBoundary", "fit_scope", "handle_interrupts", "interrupt_pending"]


class _State:
    installed = False  # our handler is the SIGINT handler
    fits = 0  # fits running under fit_scope
    pending = False  # a Ctrl-C waits for the next step boundary


def _on_sigint(signum, frame):
    if _State.fits and not _State.pending:
        _State.pending = True
        return
    _State.pending = False
    raise KeyboardInterrupt


@contextlib.contextmanager
def handle_interrupts():
    """Install the step-boundary SIGINT handler for the block, when SIGINT has Python's default handler and
    this is the main thread; the previous handler comes back afterwards."""
    usable = (threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGINT) is signal.default_int_handler and not _State.installed)
    if not usable:
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _State.installed, _State.pending = True, False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _State.installed, _State.pending = False, False


@contextlib.contextmanager
def fit_scope():
    """Mark a running fit: inside, a first Ctrl-C waits for :class:`StopAtStepBoundary`."""
    _State.fits += 1
    try:
        yield
    finally:
        _State.fits -= 1
        if not _State.fits:
            _State.pending = False


def interrupt_pending() -> bool:
    return _State.pending


class StopAtStepBoundary(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` at the end of the step during which Ctrl-C was pressed (see the module)."""

    def _check(self, *_, logs=None):
        if _State.pending:
            _State.pending = False
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check
