"""The task registry: each task module of ``zoo.data`` declares its :class:`TaskSpec` and registers it.

    register_task(TaskSpec(name="listops", options=LISTOPS_OPTIONS, load=load_listops_split,
                           encoding=lambda options: InputEncoding("tokens"), seq_len=2000,
                           vocab_size=VOCAB_SIZE, num_classes=NUM_CLASSES))

``zoo.data.load_task`` loads through ``spec.load``; ``zoo.models`` builds a model without data from
``spec.input_shape(options)``; the presets of ``zoo.configs`` are rows keyed by the registered names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.registry import Registry

from ._common import SplitData
from .pipeline import InputEncoding


@dataclass(frozen=True)
class TaskSpec:
    """What the zoo knows of a task.

    Attributes:
        name: the registry key (``TrainConfig.task``, ``load_task(name)``).
        options: the task options and their defaults (``load_task(name, split, **options)``).
        load: ``load(split, data_dir, cache_dir, options) -> (SplitData, seq_len)`` for split "train",
            "val" or "test" with the resolved options (``data_dir`` None: the task's own source).
        encoding: ``encoding(options) -> InputEncoding``, how stored values become model inputs.
        seq_len, vocab_size, num_classes: the input shape at the default options; vocab_size counts the pad
            id 0 (the nominal LRA shapes: Tay et al. 2021, "Long Range Arena").
        two_inputs: each example is a pair of sequences (retrieval).
        check_options: raises ValueError for resolved options the task cannot use (beyond the generic
            checks of sizes, lengths and seeds in ``zoo.data.load_task_arrays``).
        shape: ``shape(options) -> dict`` of the shape entries (seq_len, vocab_size, num_classes) that
            options change; None: ``max_length`` or ``seq_len`` set seq_len, nothing else changes.
    """

    name: str
    options: Mapping[str, Any]
    load: Callable[[str, Path | None, Path, dict], tuple[SplitData, int]]
    encoding: Callable[[dict], InputEncoding]
    seq_len: int
    vocab_size: int
    num_classes: int
    two_inputs: bool = False
    check_options: Callable[[dict], None] | None = field(default=None, repr=False)
    shape: Callable[[dict], dict] | None = field(default=None, repr=False)

    def input_shape(self, options: Mapping[str, Any]) -> dict:
        """The model-facing shape under resolved ``options``: {seq_len, vocab_size, n_features, num_classes,
        two_inputs}; real-valued encodings have vocab_size None and one feature."""
        shape = {"seq_len": self.seq_len, "vocab_size": self.vocab_size, "num_classes": self.num_classes}
        if self.shape is not None:
            shape.update(self.shape(dict(options)))
        else:
            for key in ("max_length", "seq_len"):
                if key in options:
                    shape["seq_len"] = int(options[key])
        real = self.encoding(dict(options)).kind == "real"
        return {**shape, "vocab_size": None if real else shape["vocab_size"], "n_features": 1 if real else None,
                "two_inputs": self.two_inputs}


#: Every task of the zoo, in registration order (the LRA tasks, digits, the delayed-recall tasks).
TASKS = Registry("task")


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Register ``spec`` under ``spec.name``; a task module calls this once, at import."""
    return TASKS.register(spec.name, spec, replace=replace)


def get_task(name: str) -> TaskSpec:
    """The TaskSpec of ``name``; an unknown name is a ValueError listing the tasks."""
    return TASKS.lookup(name)
