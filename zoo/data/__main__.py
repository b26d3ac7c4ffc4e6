"""Prepare (generate / decode / cache) a task's data ahead of training and print its TaskInfo per split.

    python -m zoo.data listops num_train=10000 max_length=1000
    python -m zoo.data pathfinder --data-dir ~/lra_release difficulty=9
"""

from __future__ import annotations

import argparse
import ast
import logging

from .api import SPLITS, TASKS, load_task_arrays


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options are key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare string such as encoding=tokens


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("options", nargs="*", type=_parse_option, help="task options as key=value")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for split in SPLITS:
        try:
            _, info, _ = load_task_arrays(args.task, split, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                          **dict(args.options))
        except (ValueError, OSError) as err:  # DataError, bad options: the message says what to do
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        print(split, info)


if __name__ == "__main__":
    main()
