"""keras_ssm.MemoryTracker: records on schedule in any model.fit, files that load and plot, resume without gaps
or duplicates, clear errors. (The kill-and-resume test of a zoo run is in tests/zoo/test_rundir.py.)"""

import json

import keras
import numpy as np
import pytest

import keras_ssm
from keras_ssm.memory.tracking import TRACKING_JSON, TRACKING_NPZ


def two_layer_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 2))
    h = keras_ssm.S4D(n=8, seed=1, dt_min=0.01, dt_max=0.3, name="s4d")(inputs)
    h = keras_ssm.S4(n=8, seed=2, name="s4")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)))
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data():
    x = np.random.default_rng(0).normal(size=(48, 32, 2)).astype("float32")
    return x, (x[:, -3, 0] > 0).astype("int32")


def test_records_every_n_steps_with_gradients_and_plots(tmp_path):
    model, (x, y) = two_layer_model(), data()
    tracker = keras_ssm.MemoryTracker(tmp_path, every=2, unit="step", lags=(1, 4, 16), batch=(x[:8], y[:8]),
                                      horizon=32)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[tracker], verbose=0)   # 6 steps
    tracking = keras_ssm.load_memory_tracking(tmp_path)
    assert list(tracking.steps) == [0, 2, 4, 6] and tracking.layers == ["s4d", "s4"]
    lam = tracking.array("s4d", "eigenvalues")
    assert lam.shape == (4, 2, 4) and np.all(np.abs(lam) < 1)
    assert not np.allclose(lam[0], lam[-1])                   # training moved them
    np.testing.assert_allclose(lam[-1], model.get_layer("s4d").discrete_eigenvalues(), rtol=1e-6)
    assert tracking.array("s4", "mf").shape == (4, 2, 3) and tracking.array("s4d", "push_by_lag").shape == (4, 32)
    for record in tracking.records:
        for name in ("s4d", "s4"):
            norms = record["layers"][name]["gradient_norm"]
            assert norms["C"] > 0 and norms["output_mixing"] > 0 and norms["eigenvalues"] > 0
    assert np.isnan(tracking.records[0]["layers"]["s4"]["gradient_norm"]["log_dt"])  # S4: no closed form
    # Steps 2 and 4 fall inside epochs: their records hold that step's weights (on jax too, whose trainer
    # keeps them outside the variables until the epoch ends), so every record differs from the next.
    for earlier, later in zip(lam[:-1], lam[1:]):
        assert not np.allclose(earlier, later, rtol=1e-7)
    fig = tracker.plot()
    assert (tmp_path / "memory_tracking.png").stat().st_size > 10_000 and len(fig.axes) == 6


def test_epoch_unit_and_resume_drop_repeated_records_and_fill_the_missing_one(tmp_path):
    model, (x, y) = two_layer_model(), data()
    kwargs = dict(every=1, unit="epoch", lags=(1, 8), layers=["s4d"], horizon=32)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[keras_ssm.MemoryTracker(tmp_path, **kwargs)], verbose=0)
    first = json.loads((tmp_path / TRACKING_JSON).read_text())["records"]
    assert [(r["step"], r["epoch_boundary"]) for r in first] == [(0, 0), (3, 1), (6, 2)]
    # A resume from the checkpoint after epoch 1 of a run whose tracker wrote up to epoch 2 but lost
    # the record of epoch 1 (killed between the checkpoint and the record): the later record goes, the
    # missing one is taken.
    tracking = keras_ssm.load_memory_tracking(tmp_path)
    tracking.records.pop(1)
    tracking.arrays = {k: [v[0], v[2]] for k, v in tracking.arrays.items()}
    keras_ssm.memory.tracking.save_memory_tracking(tmp_path, tracking)
    model.optimizer.iterations.assign(3)
    model.fit(x, y, batch_size=16, initial_epoch=1, epochs=3, callbacks=[keras_ssm.MemoryTracker(tmp_path, **kwargs)],
              verbose=0)
    resumed = keras_ssm.load_memory_tracking(tmp_path)
    assert [(r["step"], r["epoch_boundary"]) for r in resumed.records] == [(0, 0), (3, 1), (6, 2), (9, 3)]
    assert resumed.array("s4d", "length").shape == (4, 2)
    with np.load(tmp_path / TRACKING_NPZ) as npz:
        assert list(npz["step"]) == [0, 3, 6, 9]


def test_other_settings_in_the_same_directory_are_refused(tmp_path):
    model, (x, y) = two_layer_model(), data()
    model.fit(x, y, batch_size=48, epochs=1, verbose=0,
              callbacks=[keras_ssm.MemoryTracker(tmp_path, lags=(1,), horizon=32)])
    with pytest.raises(ValueError, match="other settings"):
        model.fit(x, y, batch_size=48, epochs=1, verbose=0,
                  callbacks=[keras_ssm.MemoryTracker(tmp_path, lags=(2,), horizon=32)])


@pytest.mark.parametrize("kwargs, match", [
    (dict(every=0), "`every` must be an integer >= 1"),
    (dict(every=1.5), "`every` must be an integer >= 1"),
    (dict(unit="batch"), "`unit` must be one of"),
    (dict(lags=(1, 40), horizon=32), r"`lags` must be .* \[0, horizon = 32\)"),
    (dict(lags=()), "`lags` must be a non-empty list"),
    (dict(layers="s4d"), "`layers` must be None or a non-empty list"),
    (dict(batch=np.zeros(3)), "`batch` must be None or a tuple"),
    (dict(horizon=0), "`horizon` must be an integer >= 1"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_ssm.MemoryTracker(tmp_path, **kwargs)


def test_unknown_layers_and_models_without_ssm_layers_are_named(tmp_path):
    model, (x, y) = two_layer_model(), data()
    with pytest.raises(ValueError, match="no SSM layer 'ssm9'.*s4d, s4"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_ssm.MemoryTracker(tmp_path, layers=["ssm9"])])
    plain = keras.Sequential([keras.Input((32, 2)), keras.layers.Dense(2)])
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match="has no SSM layer: looked for"):
        plain.fit(x, np.zeros((48, 32, 2)), epochs=1, verbose=0, callbacks=[keras_ssm.MemoryTracker(tmp_path)])
