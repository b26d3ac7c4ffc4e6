"""KerasTuner sweeps of the SSM's memory-determining hyperparameters on the zoo tasks.

- :mod:`tuning.space`: the search space (dt_min, dt_max, init, trainable_eigenvalues, lr), its JSON and
  command-line forms and validation.
- :mod:`tuning.hypermodel`: ``SSMHyperModel``, a ``kt.HyperModel`` built from the zoo (get_config,
  build_model, make_optimizer, load_task) that records each trial's initial memory functions.
- :mod:`tuning.search`: resumable sweeps (``run_sweep``) with random, Bayesian or Hyperband tuners.
- :mod:`tuning.report`: results table (CSV, Markdown), plot and best.json of a sweep directory.
- ``python tuning/sweep.py TASK ...``: the command line (``--help``).

Submodules import keras_tuner and keras; this package file imports nothing.
"""
