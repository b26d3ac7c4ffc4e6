"""Finding the S4/S4D layers inside a Keras model: the one walk that the optimizer and the memory analysis share.

Layers are recognised by the keras_ssm SSM layer interface (duck typing): ``is_diagonal``,
``discrete_eigenvalues()`` and ``discrete_state_space()``. This module imports neither keras nor
scipy, so numpy-only tools (``python -m keras_ssm.memory``) and ``keras_ssm.optimizers`` can both
import it at module top. (It sits beside ``keras_ssm/layers/`` rather than inside it because
importing anything under ``keras_ssm.layers`` runs that package's ``__init__``, which imports keras.)
"""

from __future__ import annotations

__all__ = ["is_ssm_layer", "find_ssm_layers", "mark_ssm_variables", "is_marked_ssm_variable"]

#: The attribute an SSM layer sets on its SSM variables (``layer.ssm_variables``) when it is built, so that an
#: optimizer that only sees the variables (``SSMAdamW.build``) finds them.
_SSM_VARIABLE_MARK = "keras_ssm_ssm_variable"


def mark_ssm_variables(variables) -> None:
    """Mark ``variables`` as SSM variables (the reference training's own learning rate, no weight decay)."""
    for variable in variables:
        setattr(variable, _SSM_VARIABLE_MARK, True)


def is_marked_ssm_variable(variable) -> bool:
    """Whether an SSM layer marked ``variable`` with :func:`mark_ssm_variables`."""
    return getattr(variable, _SSM_VARIABLE_MARK, False) is True


def is_ssm_layer(obj) -> bool:
    """True for objects with the keras_ssm SSM layer interface (S4D, S4)."""
    return (
        hasattr(obj, "is_diagonal")
        and callable(getattr(obj, "discrete_eigenvalues", None))
        and callable(getattr(obj, "discrete_state_space", None))
    )


def _children(layer) -> list:
    """Direct sublayers of a Keras layer or model (Keras 3 tracks them in _layers)."""
    flatten = getattr(layer, "_flatten_layers", None)
    if callable(flatten):
        return list(flatten(include_self=False, recursive=False))
    return list(getattr(layer, "layers", []) or [])


def find_ssm_layers(model) -> dict:
    """All S4/S4D layers anywhere inside ``model``, as {path: layer}.

    Paths join layer names from the top level down with "/", e.g. "block_1/s4d"
    (nested models, SSMBlock wrappers, custom layers holding sublayers). A layer
    reached twice (shared) is listed once, under its first path. ``model`` may itself
    be an SSM layer (then the result is {model.name: model}).
    """
    found = {}
    seen = set()

    def visit(layer, prefix):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        name = getattr(layer, "name", type(layer).__name__)
        path = f"{prefix}/{name}" if prefix else name
        if is_ssm_layer(layer):
            found[path] = layer
            return
        for child in _children(layer):
            visit(child, path)

    if is_ssm_layer(model):
        visit(model, "")
        return found
    seen.add(id(model))
    for child in _children(model):
        visit(child, "")
    return found
