"""Name -> entry registries of the zoo, and the one of SSM layers.

    SSM_LAYERS["s4"].layer_class            # keras_ssm.S4 (imported on first use)
    SSM_LAYERS["s4"].default_init           # "legs": the class attribute, never restated here
    register_layer("my_ssm", "my_package.layers:MySSM", fields=("rank",))

A :class:`Registry` keeps its entries in registration order, iterates over their names (so it serves as
argparse ``choices`` and in membership tests), prints as the tuple of names, and refuses a name twice.
The task registry is ``zoo.data.TASKS`` (each ``zoo.data.<task>`` module registers its ``TaskSpec``);
this module holds the layer registry: each entry names a ``keras_ssm.BaseSSM`` subclass and the
``TrainConfig`` fields it takes beyond the common ones (``zoo.models.make_ssm_layer`` passes them).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator


class Registry(Mapping):
    """An insertion-ordered mapping name -> entry with clear errors (``kind`` names the argument)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any, *, replace: bool = False) -> Any:
        """Add ``entry`` under ``name`` and return it; a name registered before is a ValueError unless
        ``replace``."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"A {self.kind} name must be an identifier (letters, digits, '_'), got {name!r}.")
        if name in self._entries and not replace:
            raise ValueError(f"A {self.kind} named {name!r} is registered already; pass replace=True to replace it.")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self.lookup(name)
        del self._entries[name]

    def lookup(self, name: str) -> Any:
        """The entry of ``name``; an unknown name is a ValueError listing the registered ones."""
        if name not in self._entries:
            raise ValueError(f"`{self.kind}` must be one of {tuple(self._entries)}, got {name!r}.")
        return self._entries[name]

    def __getitem__(self, name: str) -> Any:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return repr(tuple(self._entries))


@dataclass(frozen=True)
class LayerSpec:
    """One SSM layer the zoo can build: ``target`` is the class or ``"module:attribute"`` (imported on
    first use, so that listing the names loads no backend); ``fields`` are the TrainConfig fields passed
    to it as keyword arguments on top of those every ``keras_ssm.BaseSSM`` takes."""

    name: str
    target: Any
    fields: tuple[str, ...] = ()

    @property
    def layer_class(self) -> type:
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    @property
    def default_init(self):
        return self.layer_class.default_init

    @property
    def default_discretization(self) -> str:
        return self.layer_class.default_discretization


#: The SSM layers of the zoo: TrainConfig.model names one.
SSM_LAYERS = Registry("model")


def register_layer(name: str, target, fields=(), *, replace: bool = False) -> LayerSpec:
    """Register an SSM layer class (or ``"module:attribute"``) under ``name`` for ``TrainConfig.model``."""
    return SSM_LAYERS.register(name, LayerSpec(name, target, tuple(fields)), replace=replace)


register_layer("s4d", "keras_ssm:S4D")
register_layer("s4", "keras_ssm:S4", fields=("rank",))
