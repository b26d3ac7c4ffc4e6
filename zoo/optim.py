"""Optimizer of the zoo runs: keras_ssm.optimizers.SSMAdamW with warmup + cosine decay."""

from __future__ import annotations

import keras

from keras_ssm.optimizers import SSMAdamW


def warmup_cosine_schedule(peak_lr: float, total_steps: int, warmup_fraction: float):
    """Linear warmup from 0 to ``peak_lr`` over ``round(warmup_fraction * total_steps)`` steps, then
    cosine decay to 0 over the remaining steps: a ``keras.optimizers.schedules.CosineDecay``."""
    if total_steps < 1:
        raise ValueError(f"`total_steps` must be >= 1, got {total_steps!r}.")
    warmup_steps = int(round(warmup_fraction * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=peak_lr,
        warmup_steps=warmup_steps,
    )


def make_optimizer(*, lr: float, ssm_lr: float, weight_decay: float, total_steps: int,
                   warmup_fraction: float) -> SSMAdamW:
    """SSMAdamW (it finds the SSM variables of the model it is compiled with) with the warmup + cosine schedule of ``total_steps`` steps."""
    return SSMAdamW(warmup_cosine_schedule(lr, total_steps, warmup_fraction), weight_decay=weight_decay,
                    ssm_lr_scale=ssm_lr / lr)
