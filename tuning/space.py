"""The search space of an SSM sweep: dt range, eigenvalue initialisation, fixed/learned eigenvalues, lr.

Five dimensions, each a TrainConfig field of the zoo (:mod:`zoo.configs`):

============================  ==========================================  =====================
dimension                     default                                     sampling
============================  ==========================================  =====================
``dt_min``                    [1e-4, 1e-1]                                log-uniform
``dt_max``                    [1e-2, 1]   (always > ``dt_min``)           log-uniform, see below
``init``                      inv, lin, legs, real, random                choice (any zoo init *)
``trainable_eigenvalues``     true, false                                 choice
``lr``                        [1e-3, 3e-2]                                log-uniform
============================  ==========================================  =====================

(*) The default choices are the five S4D inits; a narrowed ``init`` may also name the discrete families
(``linear_magnitudes``, ``unity_rings``, with parameters as ``unity_rings:rho=0.99,p=4``) or a ``.npy`` file of
continuous eigenvalues, as the zoo's ``--init`` does.

Each dimension is :class:`Fixed` (one value), :class:`LogRange` (a float range sampled on a log
scale) or :class:`Choice` (a set of values). Narrow or fix them with a JSON object (a two-number list
is a range, any other list a choice set, a scalar a fixed value)::

    {"dt_min": [1e-4, 1e-2], "init": ["inv", "lin"], "trainable_eigenvalues": false}

or on the command line (``--range dt_min=1e-4,1e-2 --range init=inv,lin --fix trainable_eigenvalues=false``);
see :func:`build_search_space`.

Keeping ``dt_max`` above ``dt_min``: when both are searched, the tuner samples ``dt_min`` and a
position ``p`` in [0, 1] (hyperparameter ``dt_max_position``), and

    dt_max = lo * (hi / lo) ** p,   lo = max(dt_max_low, DT_RATIO_MIN * dt_min),   hi = dt_max_high,

i.e. ``dt_max`` is log-uniform over the part of its range that lies at least 1 % above ``dt_min``; the
upper bound of ``dt_min`` is lowered to ``dt_max_high / DT_RATIO_MIN`` so that part is never empty.
Every sampled pair therefore satisfies ``dt_min < dt_max`` and lies in the requested ranges, and the
map is smooth for the Bayesian tuner. A fixed ``dt_max`` or fixed ``dt_min`` needs no position.

Nothing here imports keras or keras_tuner; :meth:`SearchSpace.declare` takes a KerasTuner
``HyperParameters`` object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from zoo.configs import read_json_object

#: The eigenvalue initialisations a sweep can try (keras_ssm.ops.initial_eigenvalues).
INIT_CHOICES = ("inv", "lin", "legs", "real", "random")
FLOAT_DIMENSIONS = ("dt_min", "dt_max", "lr")
CHOICE_DIMENSIONS = ("init", "trainable_eigenvalues")
DIMENSIONS = ("dt_min", "dt_max", "init", "trainable_eigenvalues", "lr")
#: A sampled dt_max is at least this factor above dt_min (when either one is searched).
DT_RATIO_MIN = 1.01
#: Name of the hyperparameter holding dt_max's log-position between its bounds (see the module docstring).
DT_MAX_POSITION = "dt_max_position"


@dataclass(frozen=True)
class Fixed:
    """One value, not searched."""

    value: Any


@dataclass(frozen=True)
class LogRange:
    """A float range [low, high] (0 < low < high), sampled log-uniformly."""

    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    """A set of values (at least two), one of which each trial takes."""

    values: tuple


Spec = Fixed | LogRange | Choice

DEFAULT_DIMENSIONS: dict[str, Spec] = {
    "dt_min": LogRange(1e-4, 1e-1),
    "dt_max": LogRange(1e-2, 1.0),
    "init": Choice(INIT_CHOICES),
    "trainable_eigenvalues": Choice((True, False)),
    "lr": LogRange(1e-3, 3e-2),
}


# ---------------------------------------------------------------------------------------------
# Checking single values and specs.

def _check_dimension_name(name: str, source: str) -> None:
    if name not in DIMENSIONS:
        raise ValueError(
            f"{source}: unknown search dimension {name!r}. Known dimensions: {', '.join(DIMENSIONS)} "
            f"(other TrainConfig keys are set with --set KEY=VALUE)."
        )


def _check_init_value(value: Any, source: str) -> str:
    """An init choice: a name of INIT_CHOICES, a discrete family with parameters
    ("unity_rings:rho=0.99,p=4", "linear_magnitudes:rho=0.95") or a path to a readable .npy file of
    continuous eigenvalues (checked against d_state when each trial's config is built)."""
    from keras_ssm.ops.init import DISCRETE_INITS, parse_init_name  # numpy only

    if isinstance(value, str) and value.endswith(".npy"):
        try:
            import numpy as np

            np.load(value)
        except OSError as err:
            raise ValueError(f"{source}: `init` file {value!r} could not be read: {err}") from None
        return value
    name = value.partition(":")[0] if isinstance(value, str) else None
    if name not in INIT_CHOICES + DISCRETE_INITS:
        raise ValueError(f"{source}: unknown `init` {value!r}; allowed: {', '.join(INIT_CHOICES + DISCRETE_INITS)} "
                         f"(discrete families with parameters, e.g. unity_rings:rho=0.99,p=4), or a .npy file.")
    try:
        parse_init_name(value)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    return value


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
    if name == "trainable_eigenvalues":
        if not isinstance(value, bool):
            raise ValueError(f"{source}: `trainable_eigenvalues` values must be true or false, got {value!r}.")
        return value
    raise AssertionError(name)  # pragma: no cover - names are checked first


def make_spec(name: str, value: Any, source: str = "search space") -> Spec:
    """The spec of dimension ``name`` from a JSON-style value.

    A scalar is :class:`Fixed`; for ``dt_min``, ``dt_max`` and ``lr`` a list must be ``[low, high]``
    (a :class:`LogRange`; ``low == high`` is the fixed value); for ``init`` and
    ``trainable_eigenvalues`` a list is a :class:`Choice` (one entry: fixed).

    Raises:
        ValueError: unknown dimension, wrong type, non-positive or reversed bounds, unknown init,
            empty or repeated choices. The message names ``source``.
    """
    _check_dimension_name(name, source)
    if isinstance(value, (Fixed, LogRange, Choice)):
        return _checked_spec(name, value, source)
    if isinstance(value, (list, tuple)):
        if name in FLOAT_DIMENSIONS:
            if len(value) != 2:
                raise ValueError(
                    f"{source}: a `{name}` range must be two numbers [low, high], got {list(value)!r}."
                )
            return _checked_spec(name, LogRange(value[0], value[1]), source)
        return _checked_spec(name, Choice(tuple(value)), source)
    return _checked_spec(name, Fixed(value), source)


def _checked_spec(name: str, spec: Spec, source: str) -> Spec:
    if isinstance(spec, Fixed):
        return Fixed(_check_value(name, spec.value, source))
    if isinstance(spec, LogRange):
        if name not in FLOAT_DIMENSIONS:
            raise ValueError(f"{source}: `{name}` takes a set of choices, not a numeric range.")
        low, high = _check_value(name, spec.low, source), _check_value(name, spec.high, source)
        if low > high:
            raise ValueError(f"{source}: the `{name}` range needs low <= high, got [{low:g}, {high:g}].")
        return Fixed(low) if low == high else LogRange(low, high)
    if isinstance(spec, Choice):
        if name in FLOAT_DIMENSIONS:
            raise ValueError(f"{source}: `{name}` takes a [low, high] range or one number, not a choice set.")
        values = tuple(_check_value(name, v, source) for v in spec.values)
        if not values:
            raise ValueError(f"{source}: the `{name}` choices are empty.")
        if len(set(values)) != len(values):
            raise ValueError(f"{source}: the `{name}` choices {list(values)!r} repeat a value.")
        return Fixed(values[0]) if len(values) == 1 else Choice(values)
    raise ValueError(f"{source}: not a search-space spec: {spec!r}")  # pragma: no cover


def spec_to_json(spec: Spec) -> Any:
    """The JSON form read by :func:`make_spec` (scalar, [low, high] or [choices...])."""
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, LogRange):
        return [spec.low, spec.high]
    return list(spec.values)


def _bounds(spec: Spec) -> tuple[float, float]:
    if isinstance(spec, Fixed):
        return spec.value, spec.value
    return spec.low, spec.high


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSpace:
    """The five sweep dimensions (see the module docstring); validated on construction.

    Attributes:
        dimensions: {name: Fixed | LogRange | Choice} for every name in ``DIMENSIONS``.

    Raises:
        ValueError: a missing/unknown dimension, an invalid spec, or dt bounds that admit no
            ``dt_min < dt_max`` pair.
    """

    dimensions: Mapping[str, Spec]

    def __post_init__(self):
        names = set(self.dimensions)
        missing, unknown = set(DIMENSIONS) - names, names - set(DIMENSIONS)
        if unknown:
            _check_dimension_name(sorted(unknown)[0], "search space")
        if missing:
            raise ValueError(f"search space: missing dimension(s) {sorted(missing)}.")
        checked = {name: _checked_spec(name, self.dimensions[name], "search space") for name in DIMENSIONS}
        object.__setattr__(self, "dimensions", checked)
        _check_dt_bounds(checked["dt_min"], checked["dt_max"])

    @classmethod
    def default(cls) -> "SearchSpace":
        return cls(dict(DEFAULT_DIMENSIONS))

    @classmethod
    def from_json_dict(cls, values: Mapping[str, Any], source: str = "search space") -> "SearchSpace":
        """The inverse of :meth:`to_json_dict` (all five dimensions given)."""
        return cls({name: make_spec(name, value, source) for name, value in values.items()})

    def updated(self, specs: Mapping[str, Spec]) -> "SearchSpace":
        """A copy with the dimensions in ``specs`` replaced (validated as a whole)."""
        return SearchSpace({**self.dimensions, **specs})

    @property
    def searched(self) -> tuple[str, ...]:
        """Names of the dimensions that vary between trials."""
        return tuple(name for name in DIMENSIONS if not isinstance(self.dimensions[name], Fixed))

    def to_json_dict(self) -> dict:
        return {name: spec_to_json(self.dimensions[name]) for name in DIMENSIONS}

    def dt_min_upper(self) -> float:
        """The largest dt_min a trial can take: min(dt_min_high, dt_max_high / DT_RATIO_MIN) when
        dt_max is a range or dt_min is a range, so that some dt_max above it exists."""
        dt_min, dt_max = self.dimensions["dt_min"], self.dimensions["dt_max"]
        low, high = _bounds(dt_min)
        if isinstance(dt_min, Fixed):
            return low
        return min(high, _bounds(dt_max)[1] / DT_RATIO_MIN)

    # -----------------------------------------------------------------------------------------
    def declare(self, hp) -> dict:
        """Register the hyperparameters on KerasTuner's ``hp`` and return the trial's config values.

        Hyperparameters: ``dt_min`` (Float, log), ``dt_max`` (Fixed) or ``dt_max_position`` (Float in
        [0, 1]), ``init`` (Choice), ``trainable_eigenvalues`` (Boolean), ``lr`` (Float, log); fixed
        dimensions are ``hp.Fixed`` so every trial records them.

        Returns:
            {dt_min, dt_max, init, trainable_eigenvalues, lr}: :meth:`values_for` of ``hp.values``.
        """
        dims = self.dimensions
        dt_min_low = _bounds(dims["dt_min"])[0]
        dt_min_high = self.dt_min_upper()
        if dt_min_low == dt_min_high:
            hp.Fixed("dt_min", dt_min_low)
        else:
            hp.Float("dt_min", dt_min_low, dt_min_high, sampling="log")
        if isinstance(dims["dt_max"], Fixed):
            hp.Fixed("dt_max", dims["dt_max"].value)
        else:
            hp.Float(DT_MAX_POSITION, 0.0, 1.0)
        for name in CHOICE_DIMENSIONS:
            spec = dims[name]
            if isinstance(spec, Fixed):
                hp.Fixed(name, spec.value)
            elif name == "trainable_eigenvalues":
                hp.Boolean(name)
            else:
                hp.Choice(name, list(spec.values))
        if isinstance(dims["lr"], Fixed):
            hp.Fixed("lr", dims["lr"].value)
        else:
            hp.Float("lr", dims["lr"].low, dims["lr"].high, sampling="log")
        return self.values_for(hp.values)

    def values_for(self, hp_values: Mapping[str, Any]) -> dict:
        """The TrainConfig values {dt_min, dt_max, init, trainable_eigenvalues, lr} of a trial.

        ``hp_values`` are the trial's hyperparameter values (``trial.hyperparameters.values``); the
        fixed dimensions are taken from this space when absent. ``dt_max`` comes from
        ``dt_max_position`` as in the module docstring.
        """
        dims = self.dimensions
        values = {}
        for name in ("dt_min", "init", "trainable_eigenvalues", "lr"):
            spec = dims[name]
            values[name] = hp_values[name] if name in hp_values else _fixed_value(spec, name)
        if isinstance(dims["dt_max"], Fixed):
            values["dt_max"] = dims["dt_max"].value
        else:
            values["dt_max"] = dt_max_from_position(values["dt_min"], hp_values[DT_MAX_POSITION],
                                                    dims["dt_max"].low, dims["dt_max"].high)
        return {name: values[name] for name in DIMENSIONS}

    def describe(self) -> str:
        """One line per dimension, for logs."""
        lines = []
        for name in DIMENSIONS:
            spec = self.dimensions[name]
            if isinstance(spec, Fixed):
                text = f"fixed {spec.value!r}"
            elif isinstance(spec, LogRange):
                text = f"log-uniform [{spec.low:g}, {spec.high:g}]"
                if name == "dt_min" and self.dt_min_upper() < spec.high:
                    text += f" (capped at {self.dt_min_upper():.4g} to leave room for dt_max)"
                if name == "dt_max":
                    text += f" above {DT_RATIO_MIN:g} x dt_min (hyperparameter {DT_MAX_POSITION})"
            else:
                text = "one of " + ", ".join(repr(v) for v in spec.values)
            lines.append(f"  {name:<22} {text}")
        return "\n".join(lines)


def _fixed_value(spec: Spec, name: str):
    if not isinstance(spec, Fixed):
        raise ValueError(f"trial hyperparameters lack the searched dimension `{name}`.")
    return spec.value


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


def _check_dt_bounds(dt_min: Spec, dt_max: Spec) -> None:
    """Raise unless some dt_min < dt_max pair exists (with the DT_RATIO_MIN margin when sampled)."""
    min_low, _ = _bounds(dt_min)
    _, max_high = _bounds(dt_max)
    if isinstance(dt_min, Fixed) and isinstance(dt_max, Fixed):
        if not dt_min.value < dt_max.value:
            raise ValueError(
                f"search space: dt_min must be < dt_max, got dt_min={dt_min.value:g} >= dt_max={dt_max.value:g}."
            )
        return
    if not min_low * DT_RATIO_MIN <= max_high:
        raise ValueError(
            f"search space: the dt ranges admit no dt_min < dt_max: the smallest dt_min ({min_low:g}) is not "
            f"below the largest dt_max ({max_high:g}) by the required factor {DT_RATIO_MIN:g}. "
            f"Lower dt_min or raise dt_max."
        )


# ---------------------------------------------------------------------------------------------
# Reading specs from a JSON file and from command-line flags.

def load_space_file(path) -> dict[str, Spec]:
    """{name: spec} from a JSON object file (format in the module docstring)."""
    values = read_json_object(path, "search-space file")
    return {name: make_spec(name, value, source=str(path)) for name, value in values.items()}


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


def _split_flag(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}.")
    _check_dimension_name(name, flag)
    return name, value


def parse_fix_flags(items) -> dict[str, Spec]:
    """``--fix NAME=VALUE`` items -> {name: Fixed}."""
    specs = {}
    for item in items:
        name, text = _split_flag(item, "--fix")
        specs[name] = make_spec(name, _parse_scalar(name, text, "--fix"), source=f"--fix {item}")
    return specs


def parse_range_flags(items) -> dict[str, Spec]:
    """``--range NAME=LOW,HIGH`` (float dimensions) or ``--range NAME=A,B,...`` (choices) -> {name: spec}."""
    specs = {}
    for item in items:
        name, text = _split_flag(item, "--range")
        parts = [_parse_scalar(name, part, "--range") for part in text.split(",")]
        specs[name] = make_spec(name, parts, source=f"--range {item}")
    return specs


def build_search_space(space_file=None, fix=(), ranges=(), base: SearchSpace | None = None) -> SearchSpace:
    """The sweep's space: ``base`` (default :meth:`SearchSpace.default`) < ``space_file`` < ``--range`` < ``--fix``.

    Raises:
        ValueError: any invalid entry, a dimension given both by --fix and --range, or dt bounds
            without a dt_min < dt_max pair. Raised before any model is built.
    """
    specs = load_space_file(space_file) if space_file else {}
    range_specs, fix_specs = parse_range_flags(ranges), parse_fix_flags(fix)
    both = sorted(set(range_specs) & set(fix_specs))
    if both:
        raise ValueError(f"dimension(s) {both} given both with --fix and --range; use one.")
    specs.update(range_specs)
    specs.update(fix_specs)
    return (base or SearchSpace.default()).updated(specs)
