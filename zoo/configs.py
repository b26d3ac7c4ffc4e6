"""Preconfigured Long Range Arena training runs: one preset per task and size, as plain data.

A run is described by a :class:`TrainConfig` (a dataclass: printable, JSON round-trippable).
:func:`get_config` returns the preset for ``(task, preset)`` with optional overrides applied;
overrides from a JSON file or the command line go through :meth:`TrainConfig.replace`, which
rejects unknown keys and values of the wrong type or range.

Presets (hyperparameters in ``FULL`` follow the state-spaces/s4 LRA configs of the S4D paper era;
``SMALL`` uses the official "-small" sizes where they exist; ``QUICK`` is our CPU demo size):

- ``full``: the published sizes (hours to days on an accelerator).
- ``small``: reduced compute (official "-small" variants for listops, text and pathfinder; our
  analogous reductions for retrieval, image and pathx).
- ``quick``: CPU demo sizes, the default preset of ``python zoo/train.py TASK``. With generated
  data (listops: 8000 trees of length < 120; pathfinder: 4000 images at contour length 6) and for
  digits it runs in about 1-4 minutes on 2 CPU cores and beats the majority class. text, retrieval
  and image keep their full training sets (the loaders have no subsampling option) at a shorter
  length or width; pathx (length 16384) only exercises the pipeline on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_ssm import choices
from keras_ssm.ops.init import (
    AUTHOR_INITS,
    DISCRETE_INITS,
    EIGENVALUE_INITS,
    check_eigenvalue_init,
    check_frozen_modes,
    check_init_string,
)
from zoo.data.api import TASKS
from zoo.registry import SSM_LAYERS

PRESETS = ("full", "small", "quick")
DEFAULT_PRESET = "quick"
#: The SSM layers (zoo.registry.SSM_LAYERS: "s4d", "s4" and any registered later).
MODELS = SSM_LAYERS
NORMS = choices.NORMS
#: Sequence pooling before the classifier: masked mean over time, or the last (non-padded) step.
POOLINGS = ("mean", "last")
DISTRIBUTE = (None, "data")
#: Named eigenvalue initialisations (None = the layer's default: "inv" for S4D, "legs" for S4). The config key
#: `init` also takes the discrete families with parameters ("unity_rings:rho=0.99,p=4") and a path to a .npy
#: file of continuous eigenvalues (N/2,) or (H, N/2) (keras_ssm.ops.init.check_eigenvalue_init).
INITS = (None,) + EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS
#: Discretizations (None = the layer's default: "zoh" for S4D, "bilinear" for S4, which requires it).
DISCRETIZATIONS = (None,) + choices.DISCRETIZATIONS


# Fields that say where and how loudly a run happens, not what it computes: a resuming invocation (or
# a sweep, or an experiment rerun) may change them without making it a different run.
RUN_ONLY_FIELDS = ("output_dir", "verbose", "data_dir", "cache_dir", "backup_every", "track_memory")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one zoo training run.

    Model: ``num_layers`` residual blocks ``SSMBlock(S4D|S4(n=d_state), norm, prenorm, dropout)`` of
    width ``d_model``, bidirectional by default, after a token embedding (``mask_zero``) or a linear
    encoder, then ``pooling`` (masked mean, or the last step) and a linear classifier (an MLP head on
    ``[e1, e2, e1*e2, e1-e2]`` for the two-input retrieval task). ``norm_momentum`` is the
    BatchNormalization momentum of the moving statistics; 0.9 equals PyTorch's default (0.1) used by
    the reference code (Keras' default 0.99 needs ~1000 steps to forget the initial variance of 1).

    Optimisation: AdamW with linear warmup over ``warmup_fraction`` of all steps to ``lr``, then cosine
    decay to 0; the SSM variables (``layer.ssm_variables``: eigenvalues, dt, B) follow the same schedule
    scaled to peak ``ssm_lr`` and get no weight decay.
    """

    task: str = "listops"
    preset: str = DEFAULT_PRESET
    # model
    model: str = "s4d"
    num_layers: int = 2
    d_model: int = 64
    d_state: int = 64
    rank: int = 1
    init: str | None = None
    trainable_eigenvalues: bool = True
    frozen_modes: float | None = None  # fraction of each channel's modes kept frozen while the rest train
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    discretization: str | None = None
    bidirectional: bool = True
    norm: str = "batch"
    norm_momentum: float = 0.9
    prenorm: bool = False
    dropout: float = 0.0
    pooling: str = "mean"
    # optimisation
    lr: float = 0.01
    ssm_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    batch_size: int = 50
    epochs: int = 10
    # data: extra keyword arguments of zoo.data.load_task (task-specific, e.g. sizes and lengths)
    data_options: dict = field(default_factory=dict)
    data_dir: str | None = None
    cache_dir: str | None = None
    # run
    seed: int = 0
    output_dir: str | None = None
    distribute: str | None = None
    memory_horizon: int = 1024  # lags of the memory-function plots, capped at the task's seq_len
    divergence_factor: float | None = 20.0
    backup_every: str = "epoch"  # mid-epoch backups: "epoch" (none), "<N>" steps, "<M>m" / "<S>s", or both
    track_memory: int = 0  # keras_ssm.MemoryTracker every this many steps (0: off)
    verbose: int = 1

    def __post_init__(self):
        _validate(self)

    # ------------------------------------------------------------------------------------------
    def replace(self, **overrides) -> "TrainConfig":
        """A copy with ``overrides`` applied; ``data_options`` entries are merged into the current ones.

        Raises:
            ValueError: for an unknown key (the message lists the valid keys) or an invalid value.
        """
        unknown = sorted(set(overrides) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(
                f"Unknown config key(s) {unknown}. Valid keys: {', '.join(FIELD_NAMES)}."
            )
        values = {name: _coerce(name, value) for name, value in overrides.items()}
        if "data_options" in values:
            values["data_options"] = {**self.data_options, **values["data_options"]}
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict:
        return {f.name: (dict(getattr(self, f.name)) if f.name == "data_options" else getattr(self, f.name))
                for f in dataclasses.fields(self)}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build a config from a complete or partial dict: the (task, preset) preset, then the values."""
        if not isinstance(values, dict):
            raise ValueError(f"A config must be a JSON object / dict, got {type(values).__name__}.")
        task = values.get("task", TrainConfig.task)
        preset = values.get("preset", DEFAULT_PRESET)
        return get_config(task, preset).replace(**values)

    @property
    def eigenvalue_mode(self) -> str:
        return "learned" if self.trainable_eigenvalues else "fixed"

    def default_output_dir(self) -> str:
        """``runs/<task>-<preset>-<model>-<fixed|learned>-seed<k>`` (relative to the working directory)."""
        return str(Path("runs") / f"{self.task}-{self.preset}-{self.model}-{self.eigenvalue_mode}-seed{self.seed}")

    def resolved_output_dir(self) -> str:
        return self.output_dir if self.output_dir is not None else self.default_output_dir()

    def __str__(self) -> str:
        width = max(len(name) for name in FIELD_NAMES)
        lines = [f"TrainConfig({self.task}, preset={self.preset})"]
        lines += [f"  {name:<{width}} = {getattr(self, name)!r}{self._resolved_note(name)}" for name in FIELD_NAMES]
        return "\n".join(lines)

    def summary(self) -> str:
        """Two lines: the model and the training settings a reader checks first (every field: ``str(config)``)."""
        layer = SSM_LAYERS[self.model].layer_class
        init = self.init if self.init is not None else layer.default_init
        discretization = self.discretization if self.discretization is not None else layer.default_discretization
        model = (f"{layer.__name__} ({init} init, {discretization}), {self.num_layers} layer(s) of H = {self.d_model}, "
                 f"N = {self.d_state}{f', rank {self.rank}' if self.model == 's4' else ''}"
                 f"{', bidirectional' if self.bidirectional else ''}, {self.norm} norm")
        modes = f", {self.frozen_modes:g} of the modes frozen" if self.frozen_modes else ""
        training = (f"{self.eigenvalue_mode} eigenvalues{modes}, dt in [{self.dt_min:g}, {self.dt_max:g}]; lr {self.lr:g} "
                    f"(SSM {self.ssm_lr:g}), weight decay {self.weight_decay:g}, batch {self.batch_size}, "
                    f"{self.epochs} epochs, seed {self.seed}")
        return f"model: {self.task} ({self.preset} preset), {model}\ntraining: {training}"

    def _resolved_note(self, name: str) -> str:
        """For ``init`` and ``discretization`` left at None: what the model's layer uses instead."""
        if name not in ("init", "discretization") or getattr(self, name) is not None:
            return ""
        layer = SSM_LAYERS[self.model].layer_class
        return f"  (the {layer.__name__} default: {getattr(layer, 'default_' + name)!r})"


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check ``value`` against the declared type of field ``name`` (ints are accepted for floats)."""
    declared = _FIELD_TYPES[name]
    if name == "backup_every" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # --set backup_every=500: a number of steps
    optional = "None" in declared
    base = declared.replace(" | None", "")
    if value is None:
        if optional:
            return None
        raise ValueError(f"Config key `{name}` cannot be None (expected {base}).")
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"Config key `{name}` must be true or false, got {value!r}.")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"Config key `{name}` must be an integer, got {value!r}.")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Config key `{name}` must be a number, got {value!r}.")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"Config key `{name}` must be a string, got {value!r}.")
        return value
    if base == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"Config key `{name}` must be a JSON object / dict, got {value!r}.")
        return dict(value)
    raise TypeError(f"unhandled field type {declared!r} for {name}")  # pragma: no cover


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"Config key `{name}` must be one of {allowed}, got {value!r}.")


def _check_positive(name, value, allow_zero=False):
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Config key `{name}` must be a finite number {bound}, got {value!r}.")


def parse_backup_every(text: str) -> tuple[int | None, float | None]:
    """``backup_every`` -> (steps, seconds) between mid-epoch backups (None: not by that measure).

    "epoch": only the epoch-end backup; "500": also every 500 training steps; "10m" / "90s": also every 10
    minutes / 90 seconds of training; "500,10m": whichever comes first.

    Raises:
        ValueError: anything else; the message shows the accepted forms.
    """
    steps = seconds = None
    forms = "'epoch', a number of steps ('500'), minutes or seconds ('10m', '90s'), or both ('500,10m')"
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"Config key `backup_every` must be {forms}, got {text!r}.")
    if text.strip() == "epoch":
        return None, None
    for part in text.split(","):
        part = part.strip()
        unit = part[-1:] if part[-1:] in ("m", "s") else ""
        number = part[:-1] if unit else part
        try:
            value = float(number) if unit else int(number)
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and value > 0) or (unit and seconds) or (not unit and steps):
            raise ValueError(f"Config key `backup_every` must be {forms}, got {text!r}.")
        if unit:
            seconds = value * (60.0 if unit == "m" else 1.0)
        else:
            steps = value
    return steps, seconds


def _check_init(config: TrainConfig) -> None:
    """`init`: None or what ``check_eigenvalue_init`` accepts for d_state (a name of INITS, a discrete family
    with parameters, a readable .npy file); `frozen_modes`: a fraction in [0, 1] of a model whose eigenvalues
    train."""
    if config.init is not None:
        try:
            check_eigenvalue_init(check_init_string(config.init), config.d_state)
        except ValueError as err:
            raise ValueError(f"Config key `init`: {err}") from None
    if config.frozen_modes is not None:
        try:
            check_frozen_modes(config.frozen_modes, config.d_state)
        except ValueError as err:
            raise ValueError(f"Config key `frozen_modes`: {err}") from None
        if not config.trainable_eigenvalues:
            raise ValueError("Config key `frozen_modes` needs trainable_eigenvalues=true (with fixed eigenvalues "
                             "every mode is frozen already).")


def _validate(config: TrainConfig) -> None:
    for name in FIELD_NAMES:
        _coerce(name, getattr(config, name))
    _check_choice("task", config.task, TASKS)
    _check_choice("preset", config.preset, PRESETS)
    _check_choice("model", config.model, MODELS)
    _check_choice("discretization", config.discretization, DISCRETIZATIONS)
    _check_choice("norm", config.norm, NORMS)
    _check_choice("pooling", config.pooling, POOLINGS)
    _check_choice("distribute", config.distribute, DISTRIBUTE)
    for name in ("num_layers", "d_model", "d_state", "rank", "batch_size", "epochs", "memory_horizon"):
        if getattr(config, name) < 1:
            raise ValueError(f"Config key `{name}` must be >= 1, got {getattr(config, name)!r}.")
    if config.d_state % 2:
        raise ValueError(f"Config key `d_state` must be even (conjugate pairs), got {config.d_state}.")
    _check_init(config)
    for name in ("lr", "ssm_lr", "dt_min", "dt_max"):
        _check_positive(name, getattr(config, name))
    _check_positive("weight_decay", config.weight_decay, allow_zero=True)
    if config.dt_min >= config.dt_max:
        raise ValueError(f"Config keys need dt_min < dt_max, got dt_min={config.dt_min}, dt_max={config.dt_max}.")
    if not 0.0 <= config.norm_momentum < 1.0:
        raise ValueError(f"Config key `norm_momentum` must be in [0, 1), got {config.norm_momentum!r}.")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"Config key `dropout` must be in [0, 1), got {config.dropout!r}.")
    if not 0.0 <= config.warmup_fraction < 1.0:
        raise ValueError(f"Config key `warmup_fraction` must be in [0, 1), got {config.warmup_fraction!r}.")
    if config.divergence_factor is not None and not config.divergence_factor > 1.0:
        raise ValueError(
            f"Config key `divergence_factor` must be > 1 (or null to only stop on NaN/inf), "
            f"got {config.divergence_factor!r}."
        )
    parse_backup_every(config.backup_every)
    if isinstance(config.track_memory, bool) or config.track_memory < 0:
        raise ValueError(f"Config key `track_memory` must be an integer >= 0 (steps between records; 0: off), "
                         f"got {config.track_memory!r}.")
    if config.verbose not in (0, 1, 2):
        raise ValueError(f"Config key `verbose` must be 0, 1 or 2, got {config.verbose!r}.")
    for key in config.data_options:
        if not isinstance(key, str):
            raise ValueError(f"data_options keys must be strings, got {key!r}.")


# ---------------------------------------------------------------------------------------------
# Preset tables. Keys are TrainConfig fields; every task's row is complete for the fields that differ
# between tasks. "Published" = the LRA experiment configs of the public state-spaces/s4 repository (S4/S4D,
# Gu et al.), with N=64.

_COMMON = dict(model="s4d", bidirectional=True, warmup_fraction=0.1, ssm_lr=1e-3, dt_max=1e-1, dt_min=1e-3)
# Full-size epochs take minutes to hours: a backup every 10 minutes bounds what a preemption or a kill loses.
_PRESET_COMMON = {"full": dict(backup_every="10m")}

# Delayed recall (ours): a causal model read out at its last step, so the label must be held in the
# state for `delay` steps. dt in [0.1, 1] puts the initial memory function of every channel at ~0 by
# lag 200 (the long variant's delay; measured max MF(200) ~ 4e-6 over seeds 0-4).
_DELAYED_RECALL = dict(num_layers=2, d_model=32, d_state=32, norm="layer", prenorm=True, dropout=0.0,
                       bidirectional=False, pooling="last", lr=0.01, weight_decay=0.0, batch_size=64, epochs=20,
                       dt_min=0.1, dt_max=1.0)
# The short variant keeps the LRA dt range [1e-3, 1e-1]: its initial memory is the long, thin memory of
# the LRA presets (mean memory length ~197 of 256 lags, mean MF(4) ~ 0.35 over channels of seeds 0-4),
# while only lag 4 matters: the regime where the paper expects learned eigenvalues (which can trade
# memory length for accuracy) to beat fixed ones.
_DELAYED_RECALL_SHORT = {**_DELAYED_RECALL, "dt_min": 1e-3, "dt_max": 1e-1}

FULL = {
    "listops": dict(num_layers=8, d_model=128, d_state=64, norm="batch", prenorm=False, dropout=0.0, lr=0.01,
                    weight_decay=0.05, batch_size=50, epochs=40),
    "text": dict(num_layers=6, d_model=256, d_state=64, norm="batch", prenorm=True, dropout=0.0, lr=0.01,
                 weight_decay=0.05, batch_size=16, epochs=32, data_options={"max_length": 4096}),
    "retrieval": dict(num_layers=6, d_model=256, d_state=64, norm="batch", prenorm=True, dropout=0.0, lr=0.01,
                      weight_decay=0.05, batch_size=64, epochs=20, data_options={"max_length": 4000}),
    "image": dict(num_layers=6, d_model=512, d_state=64, norm="layer", prenorm=False, dropout=0.1, lr=0.01,
                  weight_decay=0.05, batch_size=50, epochs=200, data_options={"encoding": "real"}),
    "pathfinder": dict(num_layers=6, d_model=256, d_state=64, norm="batch", prenorm=True, dropout=0.0, lr=0.004,
                       weight_decay=0.03, batch_size=64, epochs=200, data_options={"encoding": "real"}),
    "pathx": dict(num_layers=6, d_model=256, d_state=64, norm="batch", prenorm=True, dropout=0.0, lr=5e-4,
                  weight_decay=0.05, batch_size=16, epochs=50, dt_min=1e-4, data_options={"encoding": "real"}),
    # Not an LRA task: scikit-learn's 8x8 digits as 64-step sequences (our choice of sizes).
    "digits": dict(num_layers=4, d_model=64, d_state=64, norm="batch", prenorm=False, dropout=0.1, lr=0.01,
                   weight_decay=0.05, batch_size=64, epochs=60, data_options={"encoding": "real"}),
    "delayed_recall": _DELAYED_RECALL,
    "delayed_recall_short": _DELAYED_RECALL_SHORT,
}

# Official "-small" variants for listops, text, pathfinder; the others are our analogous reductions.
SMALL = {
    "listops": {**FULL["listops"], "num_layers": 4, "d_model": 128, "d_state": 64, "epochs": 40},
    "text": {**FULL["text"], "num_layers": 4, "d_model": 128, "d_state": 64, "weight_decay": 0.0, "batch_size": 50},
    "retrieval": {**FULL["retrieval"], "num_layers": 4, "d_model": 128, "d_state": 64},
    "image": {**FULL["image"], "num_layers": 4, "d_model": 256, "d_state": 64, "epochs": 100},
    "pathfinder": {**FULL["pathfinder"], "num_layers": 6, "d_model": 128, "d_state": 64, "epochs": 40,
                   "weight_decay": 0.01},
    "pathx": {**FULL["pathx"], "num_layers": 6, "d_model": 128, "d_state": 64, "epochs": 25},
    "digits": {**FULL["digits"], "num_layers": 2, "d_model": 32, "d_state": 32, "epochs": 30},
    "delayed_recall": FULL["delayed_recall"],
    "delayed_recall_short": FULL["delayed_recall_short"],
}

# CPU demo sizes: minutes on 2 cores. Sequence lengths and example counts come down through the
# data options where the loader has them (generated listops / pathfinder); text, retrieval and image
# keep their full training sets (the loaders have no subsampling option) at a shorter length.
QUICK = {
    "listops": dict(num_layers=2, d_model=64, d_state=32, norm="batch", prenorm=False, dropout=0.0, lr=0.01,
                    weight_decay=0.05, batch_size=50, epochs=4,
                    data_options={"num_train": 8000, "num_val": 500, "num_test": 500,
                                  "min_length": 20, "max_length": 120}),
    "text": dict(num_layers=2, d_model=64, d_state=32, norm="batch", prenorm=True, dropout=0.0, lr=0.01,
                 weight_decay=0.05, batch_size=32, epochs=3, data_options={"max_length": 512}),
    "retrieval": dict(num_layers=2, d_model=64, d_state=32, norm="batch", prenorm=True, dropout=0.0, lr=0.01,
                      weight_decay=0.05, batch_size=32, epochs=2, data_options={"max_length": 512}),
    "image": dict(num_layers=2, d_model=64, d_state=32, norm="layer", prenorm=False, dropout=0.0, lr=0.01,
                  weight_decay=0.05, batch_size=50, epochs=2, data_options={"encoding": "real"}),
    # Generated Pathfinder-32 at the easiest contour length (6), 4000 images.
    "pathfinder": dict(num_layers=2, d_model=64, d_state=32, norm="batch", prenorm=True, dropout=0.0, lr=0.004,
                       weight_decay=0.03, batch_size=64, epochs=3,
                       data_options={"encoding": "real", "num_examples": 4000, "difficulty": 6}),
    # Path-X (length 16384) does not learn in CPU minutes; this only exercises the pipeline end to end.
    "pathx": dict(num_layers=2, d_model=64, d_state=32, norm="batch", prenorm=True, dropout=0.0, lr=5e-4,
                  weight_decay=0.05, batch_size=16, epochs=1, dt_min=1e-4,
                  data_options={"encoding": "real", "num_examples": 1000}),
    "digits": dict(num_layers=2, d_model=32, d_state=16, norm="batch", prenorm=False, dropout=0.0, lr=0.01,
                   weight_decay=0.05, batch_size=64, epochs=10, data_options={"encoding": "real"}),
    # 5 epochs: the short variant is near its plateau by then, the long one stays at chance (measured).
    "delayed_recall": {**_DELAYED_RECALL, "epochs": 5},
    "delayed_recall_short": {**_DELAYED_RECALL_SHORT, "epochs": 5},
}

PRESET_TABLES = {"full": FULL, "small": SMALL, "quick": QUICK}


def register_presets(task: str, *, full: dict, small: dict | None = None, quick: dict | None = None,
                     replace: bool = False) -> None:
    """Add the preset rows of a registered task (``zoo.data.register_task``): TrainConfig fields (other than
    task and preset) over ``_COMMON``; ``small`` defaults to ``full``, ``quick`` to ``small``.

    Raises:
        ValueError: unknown task or key, a row that does not make a valid config, or rows registered before
            (unless ``replace``).
    """
    _check_choice("task", task, TASKS)
    small = full if small is None else small
    rows = {"full": full, "small": small, "quick": small if quick is None else quick}
    for preset, row in rows.items():
        unknown = sorted(set(row) - set(FIELD_NAMES) | set(row) & {"task", "preset"})
        if unknown:
            raise ValueError(f"Preset row {task!r}/{preset!r}: key(s) {unknown} are not preset fields. Valid keys: "
                             f"{', '.join(name for name in FIELD_NAMES if name not in ('task', 'preset'))}.")
        if task in PRESET_TABLES[preset] and not replace:
            raise ValueError(f"Task {task!r} has a {preset!r} preset already; pass replace=True to replace it.")
    for preset, row in rows.items():
        TrainConfig(task=task, preset=preset, **{**_COMMON, **row})  # every row must make a valid config
    for preset, row in rows.items():
        PRESET_TABLES[preset][task] = dict(row)


def get_config(task: str, preset: str = DEFAULT_PRESET, **overrides) -> TrainConfig:
    """The preset ``preset`` for ``task``, with ``overrides`` (TrainConfig fields) applied.

    Raises:
        ValueError: unknown task, preset or override key.
    """
    _check_choice("task", task, TASKS)
    _check_choice("preset", preset, PRESETS)
    if task not in PRESET_TABLES[preset]:
        raise ValueError(f"Task {task!r} has no {preset!r} preset; add its rows with zoo.configs.register_presets.")
    values = {**_COMMON, **_PRESET_COMMON.get(preset, {}), **PRESET_TABLES[preset][task]}
    values["data_options"] = dict(values.get("data_options", {}))
    base = TrainConfig(task=task, preset=preset, **values)
    return base.replace(**overrides) if overrides else base


def read_json_object(path, what: str = "Config file") -> dict:
    """The JSON object stored at ``path``; a missing file, invalid JSON or a non-object is a ValueError
    that starts with ``what`` and names the path."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path} must hold a JSON object, got {type(values).__name__}.")
    return values


def load_json_overrides(path) -> dict:
    """Read a JSON object of config overrides from ``path`` (keys are validated by ``replace``)."""
    values = read_json_object(path, "Config file")
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"Config file {path}: unknown key(s) {unknown}. Valid keys: {', '.join(FIELD_NAMES)}.")
    return values
