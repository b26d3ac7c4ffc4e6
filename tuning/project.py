"""A sweep project's identity: ``sweep.json``, the check that a rerun is the same sweep, the project name,
and how its trials are named.

``sweep.json`` holds what identifies a sweep (task, preset, tuner, objective, base TrainConfig, search
space in its JSON form) plus what the chief records when it starts (devices, val majority rate, memory
horizon). A rerun resumes the project only if the identifying part is the same, the TrainConfig's
run-only fields (``zoo.configs.RUN_ONLY_FIELDS``: where data and logs go) aside. Used by the sweep
(:mod:`tuning.search`) and the report (:mod:`tuning.report`); imports neither keras nor keras_tuner.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuning.space import SearchSpace
from zoo.configs import RUN_ONLY_FIELDS, TrainConfig
from zoo.rundir import SWEEP_FILE, DamagedFileError, RunDirectoryError, directory_entries, read_json

TUNERS = ("random", "bayesian", "hyperband")
#: What every sweep maximises: the validation accuracy at the trial's best epoch.
OBJECTIVE = "val_accuracy"
#: KerasTuner's weights file of a trial's best epoch, in ``trial_<id>/`` (contract: tests/test_upstream_contracts.py).
TRIAL_CHECKPOINT_FILE = "checkpoint.weights.h5"


class SweepProjectError(RunDirectoryError):
    """The project directory holds another sweep (or is not a sweep, or a damaged file) and cannot be resumed."""


def trial_number(trial_id) -> int | str:
    """The number a trial is shown with: KerasTuner's ``Running Trial #<n>``, 1-based (trial id ``"0"`` is
    trial 1; its folder stays KerasTuner's ``trial_0``). A non-numeric id is shown as it is."""
    text = str(trial_id)
    return int(text) + 1 if text.isdigit() else text


def trial_label(trial_id) -> str:
    """``Trial #<n>`` (:func:`trial_number`), as KerasTuner and every line of the sweep name a trial."""
    return f"Trial #{trial_number(trial_id)}"


def trial_folder(trial_id) -> str:
    """KerasTuner's folder of a trial in its project: ``trial_<id>``."""
    return f"trial_{trial_id}"


def default_project_name(base_config: TrainConfig, tuner: str) -> str:
    return f"{base_config.task}-{base_config.preset}-{base_config.model}-{tuner}"


def sweep_description(tuner: str, base_config: TrainConfig, space: SearchSpace, memory_screen=None) -> dict:
    """What identifies a sweep (stored in sweep.json and compared on resume); ``memory_screen``: the screen's
    threshold, or None."""
    return {"task": base_config.task, "preset": base_config.preset, "tuner": tuner,
            "objective": OBJECTIVE, "base_config": base_config.to_dict(), "space": space.to_json_dict(),
            "memory_screen": memory_screen}


def _comparable(description: dict) -> dict:
    base = {k: v for k, v in description["base_config"].items() if k not in RUN_ONLY_FIELDS}
    return {**{k: description[k] for k in ("task", "preset", "tuner", "space")}, "base_config": base,
            "memory_screen": description.get("memory_screen")}


_DAMAGED_FIX = "The sweep cannot resume from it: restore the file, or rerun with --overwrite to start over."


def read_sweep_file(project_dir) -> dict:
    path = Path(project_dir) / SWEEP_FILE
    if not path.exists():
        raise SweepProjectError(f"{project_dir} holds no {SWEEP_FILE}: not a tuning/sweep.py project.")
    try:
        return read_json(path, _DAMAGED_FIX)
    except DamagedFileError as err:
        raise SweepProjectError(str(err)) from None


def check_project_files(project_dir: Path) -> None:
    """Raise SweepProjectError naming the first unreadable JSON file of the project (KerasTuner's too)."""
    for path in sorted(project_dir.glob("*.json")) + sorted(project_dir.glob("trial_*/*.json")):
        try:
            read_json(path, _DAMAGED_FIX)
        except DamagedFileError as err:
            raise SweepProjectError(str(err)) from None


def prepare_project(project_dir: Path, description: dict, overwrite: bool) -> bool:
    """Validate (resume) or mark for replacement (``overwrite``) the project directory; nothing is deleted here.

    Returns:
        True when an existing sweep is resumed.

    Raises:
        SweepProjectError: the directory holds a different sweep, something that is not a sweep, or a
            damaged file.
    """
    if overwrite:
        return False
    if directory_entries(project_dir):
        if not (project_dir / SWEEP_FILE).exists():
            raise SweepProjectError(
                f"{project_dir} is not empty and holds no {SWEEP_FILE}: choose another --project-name or "
                f"pass --overwrite to delete it."
            )
        check_project_files(project_dir)
        diff = stored_sweep_difference(project_dir, description)
        if diff:
            raise SweepProjectError(
                f"{project_dir} holds a different sweep ({diff}). Rerun with the same settings to resume it, "
                f"choose another --project-name, or pass --overwrite to start over."
            )
        return True
    return False


def stored_sweep_difference(project_dir: Path, description: dict) -> str:
    """How the sweep recorded in ``project_dir``'s sweep.json differs from ``description`` ("" if it does
    not, run-only fields aside)."""
    stored = _comparable(read_sweep_file(project_dir))
    current = _comparable(json.loads(json.dumps(description)))
    return "" if stored == current else _describe_difference(stored, current)


def _describe_difference(stored: dict, current: dict) -> str:
    parts = []
    for key in ("task", "preset", "tuner", "memory_screen"):
        if stored.get(key) != current.get(key):
            parts.append(f"{key}: stored {stored.get(key)!r}, now {current.get(key)!r}")
    for group in ("space", "base_config"):
        for k in sorted(set(stored[group]) | set(current[group])):
            if stored[group].get(k) != current[group].get(k):
                parts.append(f"{group}.{k}: stored {stored[group].get(k)!r}, now {current[group].get(k)!r}")
    return "; ".join(parts)
