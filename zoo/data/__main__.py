"""Prepare (generate / decode / cache) a task's data ahead of training and print its TaskInfo per split.

    python -m zoo.data listops --preset quick        # exactly what `python zoo/train.py listops` trains on
    python -m zoo.data listops num_train=10000 max_length=1000
    python -m zoo.data pathfinder --data-dir ~/lra_release difficulty=9
"""

from __future__ import annotations

import argparse
import ast
import logging

from zoo.configs import get_config

from .api import SPLITS, TASKS, load_task_arrays, task_options


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options are key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare string such as encoding=tokens


def _options_epilog() -> str:
    lines = ["task options (key=default):"]
    for task in TASKS:
        options = ", ".join(f"{key}={value!r}" for key, value in task_options(task).items())
        lines.append(f"  {task}: {options or '(none)'}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.data", description=__doc__, epilog=_options_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("options", nargs="*", type=_parse_option,
                        help="task options as key=value (below: each task's options and defaults); the "
                             "defaults are the full published sizes, not the zoo's quick preset")
    parser.add_argument("--preset", default=None, choices=("full", "small", "quick"),
                        help="start from the data options of this zoo preset (key=value options still override); "
                             "default: the task's own defaults below")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the official task files or a prepared tfds data_dir (default: none; "
                             "ListOps and Pathfinder are generated)")
    parser.add_argument("--cache-dir", default=None,
                        help="data cache (default: $KERAS_SSM_DATA or ~/.cache/keras_ssm/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options = dict(args.options)
    if args.preset is not None:
        options = {**get_config(args.task, args.preset).data_options, **options}
    for split in SPLITS:
        try:
            _, info, _ = load_task_arrays(args.task, split, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                          **options)
        except (ValueError, OSError) as err:  # DataError, bad options: the message says what to do
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        print(split, info)


if __name__ == "__main__":
    main()
