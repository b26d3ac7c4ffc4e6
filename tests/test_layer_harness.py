"""Every layer class that keras_ssm exports, through the one layer harness (tests/layer_harness.py):
config and `.keras` round trips, masking, dtype policy, causality, step mode = convolution, training
(gradients, frozen variables), clear errors. Backend: KERAS_BACKEND.

LAYER_CASES is the one list: a new layer class gets every check by one entry there (and
test_every_exported_layer_class_has_a_case fails until it has one). The first case of each class runs
every check that applies; a variant may skip a check whose code path another case already runs (as
keras-hub's `run_layer_test(..., run_training_check=False)` does), saying which."""

import inspect

import pytest

import keras

import keras_ssm
from keras_ssm import S4, S4D, SSMBlock
from layer_harness import CHECKS, applicable_checks, nested_layer, run_layer_test


def case(layer_cls, skip=(), **init_kwargs):
    return layer_cls, init_kwargs, frozenset(skip)


#: id -> (layer class, init kwargs, checks skipped). Together the variants cover both discretizations
#: with and without the gated output in step mode, frozen eigenvalues, dt training alone, bidirectional
#: kernels, S4's rank 2 and wide dt range, and SSMBlock with batch and layer norm, pre- and post-norm,
#: with dropout. Training (a compiled train step per case, seconds on jax) is skipped where the same
#: gradients are already taken: S4D's bidirectional kernel in SSMBlock-S4D-batchnorm (and test_s4d.py's
#: gradients for every init), its ungated output in S4D-bilinear-linear-dt-only, BatchNormalization
#: after the residual in SSMBlock-S4-postnorm-dropout, S4D frozen in S4D-bilinear-gated-frozen.
LAYER_CASES = {
    "S4D": case(S4D, n=8, seed=1),  # zoh, gated GELU output, everything trains
    "S4D-bilinear-gated-frozen": case(S4D, n=8, discretization="bilinear", trainable_eigenvalues=False, seed=2),
    "S4D-zoh-linear": case(S4D, skip={"training"}, n=8, init="lin", activation=None, gated_output=False, seed=3),
    "S4D-bilinear-linear-dt-only": case(S4D, n=8, init="real", discretization="bilinear", trainable_eigenvalues=False,
                                        trainable_dt=True, dt_min=1e-4, dt_max=0.5, activation=None,
                                        gated_output=False, seed=7),
    "S4D-bidirectional": case(S4D, skip={"training"}, n=8, bidirectional=True, seed=0),
    "S4": case(S4, n=8, seed=1),  # HiPPO-LegS, rank 1, gated GELU output
    "S4-rank2-linear-dt-only": case(S4, n=8, init="real", rank=2, trainable_eigenvalues=False, trainable_dt=True,
                                    dt_min=1e-4, dt_max=0.5, activation=None, gated_output=False, seed=7),
    "S4-rank2-bidirectional": case(S4, n=8, rank=2, bidirectional=True, dt_min=1e-4, dt_max=1.0, seed=0),
    "SSMBlock-S4D-batchnorm": case(SSMBlock, layer=nested_layer(S4D, n=8, bidirectional=True, seed=1), norm="batch"),
    "SSMBlock-S4-layernorm": case(SSMBlock, layer=nested_layer(S4, n=8, bidirectional=True, seed=0), norm="layer"),
    "SSMBlock-S4D-postnorm-dropout": case(
        SSMBlock, skip={"training"},
        layer=nested_layer(S4D, n=8, bidirectional=True, trainable_eigenvalues=False, init="legs",
                           discretization="bilinear", dropout=0.1, seed=4),
        norm="batch", prenorm=False, dropout=0.1, norm_momentum=0.8),
    "SSMBlock-S4-postnorm-dropout": case(
        SSMBlock,
        layer=nested_layer(S4, n=8, rank=2, bidirectional=True, trainable_eigenvalues=False, dt_min=1e-4,
                           dt_max=1.0, dropout=0.1, seed=4),
        norm="batch", prenorm=False, dropout=0.1),
}

#: Exported layer classes that are not sequence -> sequence layers, with where they are tested.
NOT_HARNESSED = {
    "BaseSSM": "abstract: S4D and S4 are its concrete classes",
    "MaskedMeanPooling": "sequence -> vector pooling: tests/zoo/test_models.py, tests/test_serialization.py",
    "LastStep": "sequence -> vector pooling: tests/zoo/test_models.py, tests/test_serialization.py",
}

#: (layer class name, check) -> why it fails today: run as strict xfail, so fixing it shows up as XPASS.
KNOWN_FAILURES = {}


def _param(name, check):
    cls = LAYER_CASES[name][0]
    reason = KNOWN_FAILURES.get((cls.__name__, check))
    return pytest.param(name, check, id=f"{name}-{check}",
                        marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else [])


PARAMS = [_param(name, check) for name, (cls, kwargs, skip) in LAYER_CASES.items()
          for check in applicable_checks(cls, kwargs) if check not in skip]


@pytest.mark.parametrize("name, check", PARAMS)
def test_layer(name, check):
    cls, kwargs, _ = LAYER_CASES[name]
    run_layer_test(cls, kwargs, checks=[check])


def test_every_exported_layer_class_has_a_case():
    exported = {name for name in keras_ssm.__all__
                if inspect.isclass(obj := getattr(keras_ssm, name)) and issubclass(obj, keras.layers.Layer)}
    covered = {cls.__name__ for cls, _, _ in LAYER_CASES.values()}
    assert exported - set(NOT_HARNESSED) == covered, "add the new layer class to LAYER_CASES (or NOT_HARNESSED)"
    assert set(NOT_HARNESSED) <= exported


def test_the_first_case_of_each_class_skips_nothing_and_every_check_runs():
    first = {}
    for cls, _, skip in LAYER_CASES.values():
        first.setdefault(cls, skip)
    assert all(not skip for skip in first.values())
    applies = {(cls, check) for cls, kwargs, _ in LAYER_CASES.values() for check in applicable_checks(cls, kwargs)}
    runs = {(LAYER_CASES[p.values[0]][0], p.values[1]) for p in PARAMS}
    assert runs == applies  # every check that applies to a layer class runs on it
    assert {check for _, check in runs} == set(CHECKS)
