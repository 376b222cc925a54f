"""The course's command line: `python -m course_lib <command>`.

    release [NN ...]        generate the student exercise notebooks from exercises/solutions/
    execute PATH [PATH ...] re-execute notebooks in place (files or folders), deterministic output

Each command is a function `_cmd_<name>(args) -> int` registered in `_parser()`; add new ones
(for example `grade`) the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_release(args: argparse.Namespace) -> int:
    from course_lib.release import release

    written = release(args.exercises, args.only, execute=not args.no_execute)
    if not written:
        print(f"no master notebooks found in {args.exercises / 'solutions'}", file=sys.stderr)
        return 1
    for path in written:
        print(f"released {path}")
    return 0


def _cmd_execute(args: argparse.Namespace) -> int:
    from course_lib.release import execute_in_place

    for path in execute_in_place(args.paths):
        print(f"executed {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib", description="Tools for the self-attention course."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    release = commands.add_parser(
        "release",
        help="generate the student notebooks in exercises/ from the masters in "
        "exercises/solutions/",
        description="Replace each ### BEGIN SOLUTION ... ### END SOLUTION block of the master "
        "notebooks by a stub, clear and regenerate the outputs, write exercises/NN_name.ipynb.",
    )
    release.add_argument(
        "only", nargs="*", help="exercises to release, by number or name (default: all)"
    )
    release.add_argument(
        "--exercises", type=Path, default=Path("exercises"), help="the exercises folder"
    )
    release.add_argument(
        "--no-execute", action="store_true", help="do not run the notebooks (no outputs)"
    )
    release.set_defaults(run=_cmd_release)

    execute = commands.add_parser(
        "execute", help="re-execute notebooks in place, with deterministic metadata"
    )
    execute.add_argument("paths", nargs="+", type=Path, help="notebooks or folders")
    execute.set_defaults(run=_cmd_execute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
