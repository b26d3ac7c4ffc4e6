"""Model builders of the zoo: SSM sequence classifiers for the LRA tasks.

Single-input tasks::

    tokens (batch, L) int32 -> Embedding(vocab, H, mask_zero=True)        [or real (batch, L, F) -> Dense(H)]
      -> num_layers x SSMBlock(S4D|S4(n=d_state, bidirectional), norm, prenorm, dropout)
      -> final norm (prenorm only) -> masked mean over time (or last step) -> Dense(num_classes) logits

Two-input tasks (retrieval): the same encoder, shared, on each document -> e1, e2 (batch, H), then
``[e1, e2, e1 * e2, e1 - e2]`` (batch, 4H) -> Dense(H, gelu) -> Dense(num_classes) logits.

The padding mask (token id 0) flows from the embedding through every block (zeroed inputs to the
convolution, batch statistics over real positions) into the mean pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

import keras_ssm
from keras_ssm.layers.pooling import LastStep, MaskedMeanPooling
from zoo.configs import DEFAULT_PRESET, get_config
from zoo.data.api import get_task, resolve_task_options
from zoo.registry import SSM_LAYERS


@dataclass(frozen=True)
class InputSpec:
    """The input side of a task as the model needs it (a subset of ``zoo.data.TaskInfo``)."""

    seq_len: int
    vocab_size: int | None
    n_features: int | None
    num_classes: int
    two_inputs: bool = False


def nominal_input_spec(task: str, data_options: dict | None = None) -> InputSpec:
    """The input shape of ``task`` under its default options updated by ``data_options``, from the task's
    registered spec (``zoo.data.get_task(task).input_shape``), without loading data; training uses the
    loader's TaskInfo, which it equals."""
    return InputSpec(**get_task(task).input_shape(resolve_task_options(task, data_options or {})))


def input_spec_from_info(info) -> InputSpec:
    """InputSpec from a ``zoo.data.TaskInfo`` (or anything with the same attributes)."""
    return InputSpec(seq_len=int(info.seq_len), vocab_size=info.vocab_size, n_features=info.n_features,
                     num_classes=int(info.num_classes), two_inputs=bool(info.two_inputs))


def make_ssm_layer(config, index: int, seq_len: int | None = None):
    """The SSM layer of block ``index``: the class registered for ``config.model`` (``zoo.registry.SSM_LAYERS``)
    with the config's settings and the layer's own fields (``rank`` for S4).

    `init="memory"` without a horizon is designed for ``seq_len`` (the task's sequence length).
    """
    layer = SSM_LAYERS.lookup(config.model)
    init = config.init
    if init == "memory" and seq_len is not None:
        init = f"memory:horizon={int(seq_len)}"
    return layer.layer_class(
        n=config.d_state,
        init=init,
        trainable_eigenvalues=config.trainable_eigenvalues,
        dt_min=config.dt_min,
        dt_max=config.dt_max,
        discretization=config.discretization,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        frozen_modes=config.frozen_modes,
        seed=config.seed * 1000 + index,  # layers draw their own numpy seeds; keep runs reproducible
        name=f"ssm{index}",
        **{name: getattr(config, name) for name in layer.fields},
    )


def _norm_layer(norm: str, name: str, momentum: float):
    if norm == "batch":
        return keras.layers.BatchNormalization(momentum=momentum, name=name)
    return keras.layers.LayerNormalization(name=name)


def _input(spec: InputSpec, name: str):
    if spec.vocab_size is not None:
        return keras.Input(shape=(spec.seq_len,), dtype="int32", name=name)
    return keras.Input(shape=(spec.seq_len, spec.n_features), dtype="float32", name=name)


def _encode(x, config, spec: InputSpec):
    """Input tensor -> pooled features (batch, d_model)."""
    if spec.vocab_size is not None:
        x = keras.layers.Embedding(spec.vocab_size, config.d_model, mask_zero=True, name="embedding")(x)
    else:
        x = keras.layers.Dense(config.d_model, name="input_projection")(x)
    for i in range(config.num_layers):
        x = keras_ssm.SSMBlock(make_ssm_layer(config, i, spec.seq_len), norm=config.norm, prenorm=config.prenorm,
                               dropout=config.dropout, norm_momentum=config.norm_momentum, name=f"block{i}")(x)
    if config.prenorm:
        x = _norm_layer(config.norm, "final_norm", config.norm_momentum)(x)
    if config.pooling == "last":
        return LastStep(name="last_step")(x)
    # Finite for an all-padding example (0, not 0 / 0); padded positions are selected away, not multiplied.
    return MaskedMeanPooling(name="mean_pool")(x)


def build_model(config, spec=None, *, preset: str | None = None, **overrides) -> keras.Model:
    """The zoo classifier of a task preset or a config, uncompiled.

        zoo.build_model("listops")                              # the quick preset
        zoo.build_model("listops", preset="full", model="s4")   # any TrainConfig field as an override
        zoo.build_model(config, info)                           # what training does

    Args:
        config: a task name (one of ``zoo.configs.TASKS``: its ``preset`` config with ``overrides``) or a
            ``zoo.configs.TrainConfig``.
        spec: the inputs, an InputSpec or a ``zoo.data.TaskInfo``; None = the task's nominal LRA shape
            (``nominal_input_spec`` of the config's ``data_options``).
        preset: "full", "small" or "quick" (default: the zoo's default preset); only with a task name.
        overrides: TrainConfig fields; only with a task name.

    Returns a built functional ``keras.Model`` producing logits (batch, num_classes); two inputs
    ``[x1, x2]`` when ``spec.two_inputs``.
    """
    if isinstance(config, str):
        config = get_config(config, preset or DEFAULT_PRESET, **overrides)
    elif preset is not None or overrides:
        raise ValueError("`preset` and config overrides go with a task name; with a TrainConfig, use "
                         "config.replace(...).")
    if spec is None:
        spec = nominal_input_spec(config.task, config.data_options)
    if not isinstance(spec, InputSpec):
        spec = input_spec_from_info(spec)
    if (spec.vocab_size is None) == (spec.n_features is None):
        raise ValueError(f"An input spec needs exactly one of vocab_size / n_features, got {spec}.")
    name = f"{config.task}_{config.model}"
    if not spec.two_inputs:
        inputs = _input(spec, "inputs")
        pooled = _encode(inputs, config, spec)
        logits = keras.layers.Dense(spec.num_classes, name="classifier")(pooled)
        return keras.Model(inputs, logits, name=name)

    encoder_input = _input(spec, "document")
    encoder = keras.Model(encoder_input, _encode(encoder_input, config, spec), name="encoder")
    x1, x2 = _input(spec, "document1"), _input(spec, "document2")
    e1, e2 = encoder(x1), encoder(x2)
    features = keras.layers.Concatenate(name="pair_features")(
        [e1, e2, keras.layers.Multiply(name="product")([e1, e2]), keras.layers.Subtract(name="difference")([e1, e2])]
    )
    hidden = keras.layers.Dense(config.d_model, activation="gelu", name="head_hidden")(features)
    logits = keras.layers.Dense(spec.num_classes, name="classifier")(hidden)
    return keras.Model([x1, x2], logits, name=name)


# ---------------------------------------------------------------------------------------------
def iter_layers(layer):
    """``layer`` and every layer nested in it (functional sub-models, wrappers such as SSMBlock), once each."""
    seen = set()
    stack = [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        children = list(getattr(current, "_layers", None) or [])
        inner = getattr(current, "layer", None)
        if isinstance(inner, keras.layers.Layer):
            children.append(inner)
        stack.extend(reversed(children))


def count_parameters(model) -> dict:
    """Parameter counts of a built model.

    Returns a dict with ``trainable``; ``frozen`` (non-trainable parameters other than normalisation
    statistics, e.g. fixed eigenvalues); ``frozen_fraction = frozen / (trainable + frozen)``;
    ``statistics`` (BatchNormalization moving means/variances, not parameters).
    """
    statistics_ids = {
        id(v)
        for layer in iter_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.non_trainable_weights
    }
    trainable = sum(_size(v) for v in model.trainable_weights)
    frozen = sum(_size(v) for v in model.non_trainable_weights if id(v) not in statistics_ids)
    statistics = sum(_size(v) for v in model.non_trainable_weights if id(v) in statistics_ids)
    total = trainable + frozen
    return {
        "trainable": trainable,
        "frozen": frozen,
        "frozen_fraction": frozen / total if total else 0.0,
        "statistics": statistics,
    }


def _size(variable) -> int:
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size
