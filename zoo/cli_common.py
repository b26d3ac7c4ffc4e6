"""Command-line helpers shared by the zoo and tuning scripts (zoo/train.py, zoo/experiment.py,
tuning/sweep.py): ``--set KEY=VALUE`` parsing, the one-line error / traceback convention and Ctrl-C handling."""

from __future__ import annotations

import json
import os
import sys

from zoo.interrupts import (
    DEFAULT_PREEMPT_SIGNALS,
    INTERRUPTED_EXIT,
    PREEMPTED_EXIT,
    Preempted,
    handle_interrupts,
    last_backup,
)

__all__ = ["TRACEBACK_ENV", "fail", "parse_set_overrides", "run_interruptible", "want_traceback"]


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_set_overrides(items) -> dict:
    """['a=1', 'data_options.max_length=200'] -> {'a': 1, 'data_options': {'max_length': 200}}."""
    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}.")
        value = _parse_value(value)
        if key.startswith("data_options."):
            option = key[len("data_options."):]
            if not option:
                raise ValueError(f"--set {item!r}: missing the data option name after 'data_options.'.")
            overrides.setdefault("data_options", {})[option] = value
        else:
            overrides[key] = value
    return overrides


TRACEBACK_ENV = "KERAS_SSM_TRACEBACK"


def fail(message: str, code: int = 2) -> int:
    """Print ``error: message`` as one line on stderr and return ``code`` (the traceback, when the
    KERAS_SSM_TRACEBACK environment variable is set, comes from the caller re-raising)."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
    return code


def want_traceback() -> bool:
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def run_interruptible(main, args, resume_hint: str, preempt_signals=DEFAULT_PREEMPT_SIGNALS) -> int:
    """``main(args)`` under :func:`zoo.interrupts.handle_interrupts`: a fit stops at the end of the current step
    after writing a backup of it. Ctrl-C prints one line ending in ``resume_hint`` and returns 130; a
    preemption signal (``preempt_signals``) prints one line saying what was saved and returns 75, the status a
    requeue script tests for. The traceback instead when KERAS_SSM_TRACEBACK is set."""
    try:
        with handle_interrupts(preempt_signals):
            return main(args)
    except KeyboardInterrupt:
        if want_traceback():
            raise
        print(f"\nInterrupted.{_saved()} {resume_hint}", file=sys.stderr, flush=True)
        return INTERRUPTED_EXIT
    except Preempted as stop:
        if want_traceback():
            raise
        print(f"\nPreempted ({stop.signal_name}).{_saved()} {resume_hint} Exit status {PREEMPTED_EXIT}: "
              f"requeue the job.", file=sys.stderr, flush=True)
        return PREEMPTED_EXIT


def _saved() -> str:
    backup = last_backup()
    return f" Saved {backup}." if backup else ""
