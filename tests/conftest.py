"""Shared test helpers. pytest (default "prepend" import mode, no tests/__init__.py) puts tests/ on
sys.path when it loads this file, so test modules, tests/zoo/ included, can ``from conftest import ...``."""


#: The test size of a zoo model: 1 block of H=16, N=8 (compiles and trains in seconds on CPU).
TINY_SIZES = dict(num_layers=1, d_model=16, d_state=8)


def tiny_config(task="digits", tmp_path=None, **overrides):
    """A quick-preset zoo TrainConfig of ``task`` at test size (``TINY_SIZES``), then ``overrides``.

    With ``tmp_path``, the run writes to ``tmp_path/"run"`` and caches data in ``tmp_path/"cache"``
    (unless ``overrides`` set ``output_dir`` / ``cache_dir``)."""
    from zoo.configs import get_config  # here, not at the top: loading conftest must not import zoo

    values = dict(TINY_SIZES)
    if tmp_path is not None:
        values.update(output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"))
    values.update(overrides)
    return get_config(task, "quick", **values)


def corrupt_classifier_at(epoch, corrupt):
    """A Keras callback that sets the zoo model's classifier kernel k to ``corrupt(k)`` (numpy in, numpy out)
    when epoch ``epoch`` (0-based) begins: a run that goes wrong on purpose."""
    import keras

    class CorruptClassifier(keras.callbacks.Callback):
        def on_epoch_begin(self, current, logs=None):
            if current == epoch:
                kernel = self.model.get_layer("classifier").kernel
                kernel.assign(corrupt(kernel.numpy()))

    return CorruptClassifier()
