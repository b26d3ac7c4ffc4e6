"""Ctrl-C during a fit stops at the end of the current step, even when the signal lands in Python code that
swallows exceptions (a garbage-collector callback, a __del__): zoo.interrupts, wired into zoo.core."""

import signal

import keras
import pytest

from conftest import tiny_config
from zoo.core import fit_and_evaluate, load_training_data
from zoo.interrupts import fit_scope, handle_interrupts, stop_pending
from zoo import interrupts

@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own SIGINT handler, as in a terminal (a test runner started in the background inherits SIGINT
    ignored, and Python then installs none)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


OPTIONS = {"seq_len": 8, "delay": 2, "num_train": 128, "num_val": 32, "num_test": 32}


class CtrlCInSwallowingCode(keras.callbacks.Callback):
    """At the end of train step ``at_step`` (0-based), SIGINT arrives while code that ignores exceptions
    runs, as jax's gc callback does ("Exception ignored in ..."); ``presses`` of them."""

    def __init__(self, at_step, presses=1):
        super().__init__()
        self.at_step, self.presses, self.steps_seen = at_step, presses, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_seen += 1
        if self.steps_seen - 1 == self.at_step:
            for _ in range(self.presses):
                try:
                    signal.raise_signal(signal.SIGINT)
                except KeyboardInterrupt:
                    pass  # swallowed, as in a gc callback


def _fit(tmp_path, callback):
    config = tiny_config("delayed_recall_short", tmp_path, epochs=2, batch_size=32, verbose=0, num_layers=1,
                         d_model=8, d_state=4, data_options=OPTIONS)
    data = load_training_data(config)
    model_holder = {}

    class Keep(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            model_holder["model"] = self.model

    result = fit_and_evaluate(config, data, callbacks=[Keep(), callback])
    return result, model_holder["model"]


def test_a_swallowed_ctrl_c_still_stops_the_fit_at_the_next_step_boundary(tmp_path):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with handle_interrupts():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        callback = CtrlCInSwallowingCode(at_step=1)
        with pytest.raises(KeyboardInterrupt):
            _fit(tmp_path, callback)
        # Ctrl-C came in while step 2's callbacks ran: the fit stopped at the end of step 3, not an epoch later
        assert callback.steps_seen == 3
        assert stop_pending() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the previous handler is back


def test_without_the_handler_a_swallowed_ctrl_c_is_lost(tmp_path):
    """Why the handler exists: Python's default handler raises inside the swallowing code and the fit goes on."""
    callback = CtrlCInSwallowingCode(at_step=2)
    result, _ = _fit(tmp_path, callback)
    assert result.epochs_completed == 2 and callback.steps_seen == 2 * 4


def test_outside_a_fit_and_on_the_second_press_ctrl_c_raises_at_once():
    with handle_interrupts():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # no fit running: the usual behaviour
        with fit_scope():
            signal.raise_signal(signal.SIGINT)  # recorded for the step boundary
            assert interrupts._State.pending == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)  # a step that hangs is still stoppable
        with fit_scope():
            signal.raise_signal(signal.SIGINT)
        assert interrupts._State.pending is None  # a request left when a fit ends does not leak into the next


def test_preempt_signal_names_are_checked_with_the_allowed_forms(capsys):
    from zoo.interrupts import parse_signal_names
    from zoo.train import main as train_main

    assert parse_signal_names("TERM, usr1,SIGTERM") == ("SIGTERM", "SIGUSR1")
    assert parse_signal_names("") == ()
    for bad in ("SIGKILL", "INT", "FOO"):
        with pytest.raises(ValueError, match=r"--preempt-signals: .* such as SIGTERM, SIGUSR1"):
            parse_signal_names(bad)
    assert train_main(["listops", "--preempt-signals", "SIGFOO"]) == 2
    assert "error: --preempt-signals: 'SIGFOO' is not a signal" in capsys.readouterr().err
