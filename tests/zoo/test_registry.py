"""The task and layer registries: a test-only task and layer added the documented way, trained end to end;
registry errors; every registered task's nominal input shape equals what its loader reports."""

import json

import numpy as np
import pytest

import keras_ssm
from conftest import TINY_SIZES
from zoo.configs import PRESET_TABLES, TrainConfig, get_config, register_presets
from zoo.data import SplitData, TaskSpec, get_task, load_task, register_task
from zoo.data.api import TASKS
from zoo.data.pipeline import InputEncoding
from zoo.models import build_model, input_spec_from_info, make_ssm_layer, nominal_input_spec
from zoo.registry import SSM_LAYERS, Registry, register_layer
from zoo.runs import train

# ---------------------------------------------------------------------------------------------
# A test-only task, written as the README's checklist says: its options and loader, its spec, its presets.

FIRST_SYMBOL_OPTIONS = {"seq_len": 24, "num_classes": 3, "num_train": 192, "num_val": 48, "num_test": 48,
                        "data_seed": 0}


def load_first_symbol_split(split, data_dir, cache_dir, options):
    """Random symbols 0..K-1; the label is the first one (a task any causal or bidirectional SSM learns)."""
    rng = np.random.default_rng((options["data_seed"], ("train", "val", "test").index(split)))
    size = options[f"num_{split}"]
    symbols = rng.integers(0, options["num_classes"], size=(size, options["seq_len"]), dtype=np.uint8)
    return SplitData(inputs=(symbols,), labels=symbols[:, 0].astype(np.int64)), options["seq_len"]


def first_symbol_spec(name):
    return TaskSpec(name=name, options=FIRST_SYMBOL_OPTIONS, load=load_first_symbol_split,
                    encoding=lambda options: InputEncoding("tokens", offset=1), seq_len=24, vocab_size=4,
                    num_classes=3, shape=lambda options: {"seq_len": options["seq_len"],
                                                          "num_classes": options["num_classes"],
                                                          "vocab_size": options["num_classes"] + 1})


@pytest.fixture
def first_symbol_task():
    name = "test_first_symbol"
    register_task(first_symbol_spec(name))
    try:
        register_presets(name, full=dict(num_layers=1, d_model=16, d_state=8, norm="layer", lr=0.01,
                                         weight_decay=0.0, batch_size=32, epochs=3))
        yield name
    finally:
        TASKS.unregister(name)
        for table in PRESET_TABLES.values():
            table.pop(name, None)


def test_a_registered_task_trains_end_to_end(first_symbol_task, tmp_path):
    config = get_config(first_symbol_task, "quick", output_dir=str(tmp_path / "run"), verbose=0, epochs=2,
                        memory_horizon=24)
    spec = nominal_input_spec(first_symbol_task, config.data_options)
    assert (spec.seq_len, spec.vocab_size, spec.num_classes) == (24, 4, 3)
    results = train(config)
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["test_accuracy"] == results["test_accuracy"] and 0.0 <= results["test_accuracy"] <= 1.0
    assert TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == config
    _, info = load_task(first_symbol_task, "test", num_classes=5, seq_len=10)
    assert input_spec_from_info(info) == nominal_input_spec(first_symbol_task, {"num_classes": 5, "seq_len": 10})
    with pytest.raises(ValueError, match="unknown option.*'delay'.*allowed options"):
        load_task(first_symbol_task, "train", delay=3)


def test_register_presets_checks_its_rows(first_symbol_task):
    with pytest.raises(ValueError, match="has a 'full' preset already"):
        register_presets(first_symbol_task, full={"epochs": 1})
    with pytest.raises(ValueError, match=r"key\(s\) \['epoch'\] are not preset fields"):
        register_presets(first_symbol_task, full={"epoch": 1}, replace=True)
    with pytest.raises(ValueError, match="`d_state` must be even"):
        register_presets(first_symbol_task, full={"d_state": 7}, replace=True)
    assert get_config(first_symbol_task, "small").d_state == 8  # the valid rows are untouched
    with pytest.raises(ValueError, match="`task` must be one of"):
        register_presets("no_such_task", full={})


def test_a_task_without_presets_is_a_clear_error():
    register_task(first_symbol_spec("test_no_presets"))
    try:
        with pytest.raises(ValueError, match="has no 'quick' preset; add its rows with zoo.configs.register_presets"):
            get_config("test_no_presets")
    finally:
        TASKS.unregister("test_no_presets")


def test_registry_errors():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="A widget named 'a' is registered already; pass replace=True"):
        registry.register("a", 2)
    registry.register("a", 2, replace=True)
    with pytest.raises(ValueError, match="must be an identifier"):
        registry.register("a-b", 3)
    with pytest.raises(ValueError, match=r"`widget` must be one of \('a',\), got 'b'"):
        registry.lookup("b")
    assert list(registry) == ["a"] and "a" in registry and registry["a"] == 2 and repr(registry) == "('a',)"
    with pytest.raises(ValueError, match="`task` must be one of .*'listops'.*got 'lisstops'"):
        get_task("lisstops")
    with pytest.raises(ValueError, match="`model` must be one of .*'s4d', 's4'.*got 's5'"):
        get_config("digits", model="s5")


# ---------------------------------------------------------------------------------------------
# A registered layer: the zoo builds it from its name; its default init comes from the class.

class NarrowS4D(keras_ssm.S4D):
    """S4D whose default eigenvalue init is "lin" (a subclass, as a user's own layer would be)."""

    default_init = "lin"


def test_a_registered_layer_is_built_by_the_zoo():
    register_layer("test_narrow_s4d", NarrowS4D)
    try:
        config = get_config("digits", model="test_narrow_s4d", **TINY_SIZES)
        assert SSM_LAYERS["test_narrow_s4d"].default_init == "lin" and "the NarrowS4D default: 'lin'" in str(config)
        layer = make_ssm_layer(config, 0, seq_len=64)
        assert type(layer) is NarrowS4D and layer.n == config.d_state
        model = build_model(config)
        assert any(isinstance(sub, NarrowS4D) for sub in model._flatten_layers())
        s4 = make_ssm_layer(get_config("digits", model="s4", rank=2, **TINY_SIZES), 0)
        assert type(s4) is keras_ssm.S4 and s4.rank == 2  # the S4 entry's own field
    finally:
        SSM_LAYERS.unregister("test_narrow_s4d")
    with pytest.raises(ValueError, match="`model` must be one of"):
        get_config("digits", model="test_narrow_s4d")


# ---------------------------------------------------------------------------------------------
# Nominal shapes (models without data) against the loaders, for every task whose data the tests can make.

LOADABLE = [
    ("digits", {"encoding": "real"}),
    ("digits", {"encoding": "tokens"}),
    ("delayed_recall", {"num_train": 8, "num_val": 8, "num_test": 8}),
    ("delayed_recall_short", {"num_classes": 5, "seq_len": 40, "encoding": "real", "num_test": 8}),
    ("listops", {"num_train": 20, "num_val": 5, "num_test": 5, "min_length": 20, "max_length": 80,
                 "num_workers": 1, "progress": False}),
    ("pathfinder", {"num_examples": 40, "difficulty": 6, "num_workers": 1, "progress": False}),
]


@pytest.mark.parametrize("task,options", LOADABLE, ids=[f"{t}-{i}" for i, (t, _) in enumerate(LOADABLE)])
def test_nominal_spec_matches_the_loader(task, options, tmp_path):
    _, info = load_task(task, "test", cache_dir=str(tmp_path), **options)
    assert input_spec_from_info(info) == nominal_input_spec(task, options)


def test_every_task_has_a_spec_and_presets():
    for task in TASKS:
        spec = get_task(task)
        shape = spec.input_shape(spec.options)
        assert shape["seq_len"] >= 1 and shape["num_classes"] >= 2, task
        for preset in PRESET_TABLES:
            assert get_config(task, preset).task == task
