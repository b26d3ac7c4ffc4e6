"""The search space of an SSM sweep, on KerasTuner's hyperparameters: dt range, eigenvalue
initialisation, fixed/learned eigenvalues, learning rate.

Five dimensions, each a TrainConfig field of the zoo (:mod:`zoo.configs`):

============================  ==========================================  =====================
dimension                     default                                     sampling
============================  ==========================================  =====================
``dt_min``                    [1e-4, 1e-1]                                log-uniform
``dt_max``                    [1e-2, 1]   (always > ``dt_min``)           log-uniform, see below
``init``                      inv, lin, real, legs, random                choice (any zoo init *)
``trainable_eigenvalues``     true, false                                 choice
``lr``                        [1e-3, 3e-2]                                log-uniform
============================  ==========================================  =====================

(*) The default choices are the five S4D inits; a narrowed ``init`` may also name the discrete families
(``linear_magnitudes``, ``unity_rings``, with parameters as ``unity_rings:rho=0.99,p=4``) or a ``.npy`` file of
continuous eigenvalues, as the zoo's ``--init`` does.

Each dimension is one KerasTuner hyperparameter (``keras_tuner.engine.hyperparameters``): ``Fixed`` (one
value), ``Float`` with ``sampling="log"`` (a range) or ``Choice`` / ``Boolean`` (a set of values). They
are written in a JSON form (a two-number list is a range, any other list a choice set, a scalar a
fixed value)::

    {"dt_min": [1e-4, 1e-2], "init": ["inv", "lin"], "trainable_eigenvalues": false}

in a ``--space`` file, in ``sweep.json``, and on the command line as ``--range dt_min=1e-4,1e-2
--range init=inv,lin --fix trainable_eigenvalues=false``; see :func:`build_search_space`.

Keeping ``dt_max`` above ``dt_min``: when both are searched, the tuner samples ``dt_min`` and a
position ``p`` in [0, 1] (hyperparameter ``dt_max_position``), and

    dt_max = lo * (hi / lo) ** p,   lo = max(dt_max_low, DT_RATIO_MIN * dt_min),   hi = dt_max_high,

i.e. ``dt_max`` is log-uniform over the part of its range that lies at least 1 % above ``dt_min``; the
upper bound of ``dt_min`` is lowered to ``dt_max_high / DT_RATIO_MIN`` so that part is never empty.
Every sampled pair therefore satisfies ``dt_min < dt_max`` and lies in the requested ranges, and the
map is smooth for the Bayesian tuner. A fixed ``dt_max`` or fixed ``dt_min`` needs no position.
:meth:`SearchSpace.tuner_hyperparameters` is the space the oracle samples; :meth:`SearchSpace.values_for`
maps a trial's values back to the five dimensions.

Every value is checked in its JSON form first: keras_tuner (which imports TensorFlow) is imported only
when a valid space is built, so ``--help`` and a bad flag answer at once.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from keras_ssm.ops.init import EIGENVALUE_INITS, check_init_string
from zoo.configs import read_json_object

#: The eigenvalue initialisations a sweep tries by default (keras_ssm.ops.initial_eigenvalues).
INIT_CHOICES = EIGENVALUE_INITS
FLOAT_DIMENSIONS = ("dt_min", "dt_max", "lr")
DIMENSIONS = ("dt_min", "dt_max", "init", "trainable_eigenvalues", "lr")
#: A sampled dt_max is at least this factor above dt_min (when either one is searched).
DT_RATIO_MIN = 1.01
#: Name of the hyperparameter holding dt_max's log-position between its bounds (see the module docstring).
DT_MAX_POSITION = "dt_max_position"
#: The default space in its JSON form.
DEFAULT_SPACE = {"dt_min": [1e-4, 1e-1], "dt_max": [1e-2, 1.0], "init": list(INIT_CHOICES),
                 "trainable_eigenvalues": [True, False], "lr": [1e-3, 3e-2]}


# ---------------------------------------------------------------------------------------------
# Checking dimensions in their JSON form.

def _check_dimension_name(name: str, source: str) -> None:
    if name not in DIMENSIONS:
        raise ValueError(
            f"{source}: unknown search dimension {name!r}. Known dimensions: {', '.join(DIMENSIONS)} "
            f"(other TrainConfig keys are set with --set KEY=VALUE)."
        )


def _check_init_value(value: Any, source: str) -> str:
    """An init choice (``keras_ssm.ops.init.check_init_string``; checked against d_state when each trial's
    config is built)."""
    try:
        return check_init_string(value)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def _check_value(name: str, value: Any, source: str) -> Any:
    """``value`` as a valid value of dimension ``name`` (ints become floats for float dimensions)."""
    if name in FLOAT_DIMENSIONS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: `{name}` values must be numbers, got {value!r}.")
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{source}: `{name}` values must be finite and > 0, got {value!r}.")
        return value
    if name == "init":
        return _check_init_value(value, source)
    if not isinstance(value, bool):
        raise ValueError(f"{source}: `trainable_eigenvalues` values must be true or false, got {value!r}.")
    return value


def check_dimension(name: str, value: Any, source: str = "search space") -> Any:
    """Dimension ``name``'s JSON form ``value``, checked and normalised.

    A scalar is a fixed value; for ``dt_min``, ``dt_max`` and ``lr`` a list must be ``[low, high]`` (a
    log-uniform range; ``low == high`` is the fixed value); for ``init`` and ``trainable_eigenvalues`` a
    list is a choice set (one entry: fixed).

    Raises:
        ValueError: unknown dimension, wrong type, non-positive or reversed bounds, unknown init,
            empty or repeated choices. The message names ``source``.
    """
    _check_dimension_name(name, source)
    if not isinstance(value, (list, tuple)):
        return _check_value(name, value, source)
    if name in FLOAT_DIMENSIONS:
        if len(value) != 2:
            raise ValueError(f"{source}: a `{name}` range must be two numbers [low, high], got {list(value)!r}.")
        low, high = (_check_value(name, v, source) for v in value)
        if low > high:
            raise ValueError(f"{source}: the `{name}` range needs low <= high, got [{low:g}, {high:g}].")
        return low if low == high else [low, high]
    values = [_check_value(name, v, source) for v in value]
    if not values:
        raise ValueError(f"{source}: the `{name}` choices are empty.")
    if len(set(values)) != len(values):
        raise ValueError(f"{source}: the `{name}` choices {values!r} repeat a value.")
    return values[0] if len(values) == 1 else values


def _check_dt_bounds(dt_min: Any, dt_max: Any) -> None:
    """Raise unless some dt_min < dt_max pair exists (with the DT_RATIO_MIN margin when sampled)."""
    if not isinstance(dt_min, list) and not isinstance(dt_max, list):
        if not dt_min < dt_max:
            raise ValueError(f"search space: dt_min must be < dt_max, got dt_min={dt_min:g} >= dt_max={dt_max:g}.")
        return
    min_low, max_high = _bounds(dt_min)[0], _bounds(dt_max)[1]
    if not min_low * DT_RATIO_MIN <= max_high:
        raise ValueError(
            f"search space: the dt ranges admit no dt_min < dt_max: the smallest dt_min ({min_low:g}) is not "
            f"below the largest dt_max ({max_high:g}) by the required factor {DT_RATIO_MIN:g}. "
            f"Lower dt_min or raise dt_max."
        )


def _bounds(value) -> tuple[float, float]:
    return (value[0], value[1]) if isinstance(value, list) else (value, value)


# ---------------------------------------------------------------------------------------------
def _declare(hp, name: str, value: Any) -> None:
    """Register dimension ``name`` (checked JSON form) on KerasTuner's ``hp``."""
    if not isinstance(value, list):
        hp.Fixed(name, value)
    elif name in FLOAT_DIMENSIONS:
        hp.Float(name, value[0], value[1], sampling="log")
    elif name == "trainable_eigenvalues":
        hp.Boolean(name)
    else:
        hp.Choice(name, value)


def _json_form(hyperparameter) -> Any:
    """The JSON form of one of :func:`_declare`'s hyperparameters (other values unchanged)."""
    kind = type(hyperparameter).__name__
    if kind == "Fixed":
        return hyperparameter.value
    if kind == "Float" and hyperparameter.sampling == "log":
        return [hyperparameter.min_value, hyperparameter.max_value]
    if kind == "Boolean":
        return [True, False]
    if kind == "Choice":
        return list(hyperparameter.values)
    return hyperparameter


class SearchSpace:
    """The five sweep dimensions (see the module docstring), as a KerasTuner ``HyperParameters``.

    ``SearchSpace()`` is the default space (``DEFAULT_SPACE``); narrow or fix dimensions of it with
    :meth:`updated`, in the JSON form::

        space = SearchSpace().updated({"dt_min": [1e-4, 1e-2], "init": ["inv", "lin"], "lr": 0.005})

    Args:
        dimensions: {name: value} for every name in ``DIMENSIONS``: the JSON form, or a KerasTuner
            ``Fixed``, log-sampled ``Float``, ``Choice`` or ``Boolean`` hyperparameter. Default (None):
            the default space.
        source: what to name in error messages (a file, a flag).

    Attributes:
        hyperparameters: ``keras_tuner.HyperParameters`` with one hyperparameter per dimension, in
            ``DIMENSIONS`` order.

    Raises:
        ValueError: a missing/unknown dimension, an invalid value, or dt bounds that admit no
            ``dt_min < dt_max`` pair.
    """

    def __init__(self, dimensions: Mapping[str, Any] | None = None, source: str = "search space"):
        dimensions = DEFAULT_SPACE if dimensions is None else dimensions
        for name in dimensions:
            _check_dimension_name(name, source)
        missing = [name for name in DIMENSIONS if name not in dimensions]
        if missing:
            raise ValueError(f"{source}: missing dimension(s) {missing}; to change only some dimensions of the "
                             f"default space, use SearchSpace().updated({{name: value}}).")
        self._values = {name: check_dimension(name, _json_form(dimensions[name]), source) for name in DIMENSIONS}
        _check_dt_bounds(self._values["dt_min"], self._values["dt_max"])
        # here: KerasTuner imports Keras and TensorFlow (5.9 s measured), which sweep.py --help does not pay
        import keras_tuner as kt

        self.hyperparameters = kt.HyperParameters()
        for name in DIMENSIONS:
            _declare(self.hyperparameters, name, self._values[name])

    @classmethod
    def default(cls) -> "SearchSpace":
        """The default space (``DEFAULT_SPACE``), the same as ``SearchSpace()``."""
        return cls(DEFAULT_SPACE)

    @classmethod
    def from_json_dict(cls, values: Mapping[str, Any], source: str = "search space") -> "SearchSpace":
        """The inverse of :meth:`to_json_dict` (all five dimensions given)."""
        return cls(values, source)

    def to_json_dict(self) -> dict:
        return {name: _json_form(hyperparameter) for name, hyperparameter in self.dimensions.items()}

    @property
    def dimensions(self) -> dict:
        """{name: KerasTuner hyperparameter} in ``DIMENSIONS`` order."""
        return {hyperparameter.name: hyperparameter for hyperparameter in self.hyperparameters.space}

    def updated(self, dimensions: Mapping[str, Any]) -> "SearchSpace":
        """A copy with the dimensions in ``dimensions`` (JSON form) replaced, validated as a whole."""
        return SearchSpace({**self._values, **dimensions})

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchSpace) and self._values == other._values

    def __repr__(self) -> str:
        return f"SearchSpace({self._values!r})"

    @property
    def searched(self) -> tuple[str, ...]:
        """Names of the dimensions that vary between trials."""
        return tuple(name for name in DIMENSIONS if isinstance(self._values[name], list))

    def dt_min_upper(self) -> float:
        """The largest dt_min a trial can take: min(dt_min_high, dt_max_high / DT_RATIO_MIN) when
        dt_min is a range, so that some dt_max above it exists."""
        low, high = _bounds(self._values["dt_min"])
        if low == high:
            return low
        return min(high, _bounds(self._values["dt_max"])[1] / DT_RATIO_MIN)

    # -----------------------------------------------------------------------------------------
    def tuner_hyperparameters(self):
        """The ``keras_tuner.HyperParameters`` the oracle samples.

        ``dt_min`` (Float, log, capped at :meth:`dt_min_upper`), ``dt_max`` (Fixed) or
        ``dt_max_position`` (Float in [0, 1]), ``init`` (Choice), ``trainable_eigenvalues`` (Boolean),
        ``lr`` (Float, log); fixed dimensions are ``Fixed`` so every trial records them.
        """
        import keras_tuner as kt  # 5.9 s to import (see __init__)

        hp = kt.HyperParameters()
        dt_min_low = _bounds(self._values["dt_min"])[0]
        _declare(hp, "dt_min", [dt_min_low, self.dt_min_upper()] if self.dt_min_upper() > dt_min_low else dt_min_low)
        if isinstance(self._values["dt_max"], list):
            hp.Float(DT_MAX_POSITION, 0.0, 1.0)
        else:
            hp.Fixed("dt_max", self._values["dt_max"])
        for name in ("init", "trainable_eigenvalues", "lr"):
            _declare(hp, name, self._values[name])
        return hp

    def values_for(self, hp_values: Mapping[str, Any]) -> dict:
        """The TrainConfig values {dt_min, dt_max, init, trainable_eigenvalues, lr} of a trial.

        ``hp_values`` are the trial's hyperparameter values (``trial.hyperparameters.values``); the
        fixed dimensions are taken from this space when absent. ``dt_max`` comes from
        ``dt_max_position`` as in the module docstring.
        """
        values = {}
        for name in ("dt_min", "init", "trainable_eigenvalues", "lr"):
            if name in hp_values:
                values[name] = hp_values[name]
            elif isinstance(self._values[name], list):
                raise ValueError(f"trial hyperparameters lack the searched dimension `{name}`.")
            else:
                values[name] = self._values[name]
        dt_max = self._values["dt_max"]
        if isinstance(dt_max, list):
            values["dt_max"] = dt_max_from_position(values["dt_min"], hp_values[DT_MAX_POSITION], *dt_max)
        else:
            values["dt_max"] = dt_max
        return {name: values[name] for name in DIMENSIONS}

    def describe(self) -> str:
        """One line per dimension, for logs."""
        lines = []
        for name in DIMENSIONS:
            value = self._values[name]
            if not isinstance(value, list):
                text = f"fixed {value!r}"
            elif name in FLOAT_DIMENSIONS:
                text = f"log-uniform [{value[0]:g}, {value[1]:g}]"
                if name == "dt_min" and self.dt_min_upper() < value[1]:
                    text += f" (capped at {self.dt_min_upper():.4g} to leave room for dt_max)"
                if name == "dt_max":
                    text += f" above {DT_RATIO_MIN:g} x dt_min"
            else:
                text = "one of " + ", ".join(repr(v) for v in value)
            lines.append(f"  {name:<22} {text}")
        return "\n".join(lines)


def dt_max_from_position(dt_min: float, position: float, dt_max_low: float, dt_max_high: float) -> float:
    """dt_max = lo * (hi / lo) ** position, lo = max(dt_max_low, DT_RATIO_MIN * dt_min), hi = dt_max_high.

    ``position`` in [0, 1] is clipped; ``lo > hi`` (a dt_min above the space's cap) is an error.
    """
    lo, hi = max(dt_max_low, DT_RATIO_MIN * dt_min), dt_max_high
    if lo > hi:
        raise ValueError(
            f"dt_min={dt_min:g} leaves no dt_max in [{dt_max_low:g}, {dt_max_high:g}] at least "
            f"{DT_RATIO_MIN:g} x dt_min."
        )
    position = min(max(float(position), 0.0), 1.0)
    return float(min(max(lo * (hi / lo) ** position, lo), hi))


# ---------------------------------------------------------------------------------------------
# Reading dimensions from a JSON file and from command-line flags.

def load_space_file(path) -> dict[str, Any]:
    """{name: checked JSON form} from a JSON object file (format in the module docstring)."""
    values = read_json_object(path, "search-space file")
    return {name: check_dimension(name, value, source=str(path)) for name, value in values.items()}


_TRUE, _FALSE = ("true", "yes", "1", "learned"), ("false", "no", "0", "fixed")


def _parse_scalar(name: str, text: str, flag: str):
    text = text.strip()
    if name in FLOAT_DIMENSIONS:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{flag} {name}: {text!r} is not a number.") from None
    if name == "trainable_eigenvalues":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{flag} trainable_eigenvalues: expected true or false, got {text!r}.")
    return text


def _parse_flags(items, flag: str, split_values: bool) -> dict[str, Any]:
    """``--fix NAME=VALUE`` or ``--range NAME=A,B,...`` items -> {name: checked JSON form}."""
    dimensions = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}.")
        _check_dimension_name(name, flag)
        value = [_parse_scalar(name, part, flag) for part in text.split(",")] if split_values \
            else _parse_scalar(name, text, flag)
        dimensions[name] = check_dimension(name, value, source=f"{flag} {item}")
    return dimensions


def build_search_space(space_file=None, fix=(), ranges=(), base: SearchSpace | None = None) -> SearchSpace:
    """The sweep's space: ``base`` (default :meth:`SearchSpace.default`) < ``space_file`` < ``--range`` < ``--fix``.

    ``--fix NAME=VALUE`` fixes a dimension; ``--range NAME=LOW,HIGH`` narrows a float dimension and
    ``--range NAME=A,B,...`` gives a choice set.

    Raises:
        ValueError: any invalid entry, a dimension given both by --fix and --range, or dt bounds
            without a dt_min < dt_max pair. Raised before any model is built.
    """
    dimensions = load_space_file(space_file) if space_file else {}
    range_dims, fix_dims = _parse_flags(ranges, "--range", True), _parse_flags(fix, "--fix", False)
    both = sorted(set(range_dims) & set(fix_dims))
    if both:
        raise ValueError(f"dimension(s) {both} given both with --fix and --range; use one.")
    return (base or SearchSpace.default()).updated({**dimensions, **range_dims, **fix_dims})
