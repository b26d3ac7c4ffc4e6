"""The memory screen: skip sweep trials whose initial memory cannot reach the task's lags, before they train.

Before the oracle hands out a trial, the screen computes the closed-form memory function of the SSM layer
its hyperparameters describe: the init's continuous eigenvalues (``keras_ssm.ops.init.initial_eigenvalues``,
N = the config's ``d_state``) at H = ``d_model`` step sizes log-spaced over the trial's [dt_min, dt_max] (the
range each layer draws its dt from), discretized as the config says, finite horizon = the sequence length.
The trial's score is the best channel's MF at the task's relevant lag:

* delayed recall: the recall delay;
* a classification task: half the sequence length (``CLASSIFICATION_LAG_FRACTION``), where the screen asks
  that some channel still holds the first half of the sequence at the last position.

A trial scoring below the threshold is screened out: it is not trained, but it counts toward ``max_trials``
(a sweep draws ``max_trials`` samples, the same ones as without the screen, and trains those that pass), and it
is recorded with its values, the lag, the score and the reason in the oracle's state (``oracle.json``,
key ``screened``), so a resumed sweep screens identically and a distributed sweep's chief, which owns the
oracle, screens for every worker. The oracle then samples again; after ``MAX_SCREENED_IN_A_ROW`` screened
samples in a row the search stops, with the reason.

The default threshold, 0.43, is the learnable edge measured by ``python zoo/experiment.py learning-direction``
(docs/results/learning-direction): over 70 delayed-recall runs, the best channel's MF(delay) at
initialisation predicted whether a run learned the delay with ROC AUC 0.93, and MF = 0.43 is the threshold of
largest Youden J (tpr - fpr). For classification tasks the same number is used without a calibration of its
own: the sweep report's Spearman correlations and the screened-out list show whether it suits the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keras_ssm.memory import memory_function
from keras_ssm.ops.discrete import discretize_diagonal_numpy
from keras_ssm.ops.init import EIGENVALUE_INITS, initial_eigenvalues

#: The calibrated default threshold (module docstring).
DEFAULT_THRESHOLD = 0.43
#: The relevant lag of a classification task, as a fraction of its sequence length.
CLASSIFICATION_LAG_FRACTION = 0.5
#: Screened samples in a row after which the search stops (the space holds almost nothing that passes).
MAX_SCREENED_IN_A_ROW = 200


def check_threshold(threshold) -> float:
    """``threshold`` as a float in (0, 1], else a ValueError naming it."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or not 0.0 < threshold <= 1.0:
        raise ValueError(f"--memory-screen THRESHOLD must be a number in (0, 1] (the MF at the task's lag a trial "
                         f"needs), got {threshold!r}.")
    return float(threshold)


def check_screen_arguments(threshold, tuner: str, config) -> float:
    """The checks a screened sweep passes before anything runs: the threshold, random search, an S4D model."""
    threshold = check_threshold(threshold)
    if tuner != "random":
        raise ValueError(f"--memory-screen works with --tuner random, got --tuner {tuner} (its sampler would "
                         f"propose a screened-out point again).")
    if config.model != "s4d":
        raise ValueError(f"--memory-screen screens S4D models (whose eigenvalues are the init's); the sweep's model "
                         f"is {config.model!r}. Use --model s4d, or sweep without the screen.")
    return threshold


@dataclass(frozen=True)
class MemoryScreen:
    """Screens trial values {dt_min, dt_max, init, ...} by MF at ``lag`` (module docstring).

    Attributes:
        threshold: in (0, 1].
        lag: the task's relevant lag (0 <= lag < horizon).
        horizon: the sequence length.
        state_size, channels: N and H of the model's SSM layers.
        discretization: "zoh" or "bilinear".
        lag_source: in words, where ``lag`` comes from (for the report).
    """

    threshold: float
    lag: int
    horizon: int
    state_size: int
    channels: int
    discretization: str = "zoh"
    lag_source: str = ""

    @classmethod
    def for_task(cls, config, seq_len: int, delay: int | None, threshold: float = DEFAULT_THRESHOLD) -> "MemoryScreen":
        """The screen of a zoo TrainConfig's task: its recall ``delay``, else half of ``seq_len``."""
        threshold = check_screen_arguments(threshold, "random", config)
        if seq_len is None or seq_len < 2:
            raise ValueError(f"--memory-screen needs a task with a sequence length >= 2, got {seq_len!r}.")
        if delay is not None:
            lag, source = int(delay), f"the recall delay {delay}"
        else:
            lag = int(CLASSIFICATION_LAG_FRACTION * seq_len)
            source = f"half the sequence length ({seq_len} // 2 = {lag})"
        return cls(threshold, lag, int(seq_len), int(config.d_state), int(config.d_model),
                   config.discretization or "zoh", source)

    def score(self, values: dict) -> float:
        """The best channel's MF at ``lag`` of the layer that ``values`` describe."""
        init = values["init"]
        if init not in EIGENVALUE_INITS:
            raise ValueError(f"--memory-screen scores the continuous inits {EIGENVALUE_INITS}, got {init!r}.")
        a = initial_eigenvalues(init, self.state_size, num_channels=self.channels, seed=0)
        dt = np.geomspace(values["dt_min"], values["dt_max"], self.channels)[:, None]
        lam, _ = discretize_diagonal_numpy(dt, a, self.discretization)
        mf = memory_function(lam, horizon=self.horizon).values
        return float(np.max(mf[:, self.lag]))

    def check(self, values: dict) -> dict | None:
        """None when ``values`` pass; otherwise the record of a screened-out sample."""
        score = self.score(values)
        if score >= self.threshold:
            return None
        return {"values": dict(values), "lag": self.lag, "mf_at_lag": score, "threshold": self.threshold,
                "reason": f"MF({self.lag}) at initialisation {score:.3g} < {self.threshold:g} (best of "
                          f"{self.channels} channels; lag = {self.lag_source})"}

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "lag": self.lag, "horizon": self.horizon, "state_size": self.state_size,
                "channels": self.channels, "discretization": self.discretization, "lag_source": self.lag_source}
