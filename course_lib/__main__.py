"""The course's command line: `python -m course_lib <command>`.

    release [NN ...]        generate the student exercise notebooks from exercises/solutions/
    execute PATH [PATH ...] re-execute notebooks in place (files or folders), deterministic output
    grade SUBMISSION ...    grade submitted exercise notebooks into DIR/gradebook.csv (sandboxed)
    site [--out DIR]        the course as a static website (offline), lesson decks included
    slides [--out DIR]      one reveal.js slide deck per lesson

Each command is a function `_cmd_<name>(args) -> int` registered in `_parser()`; add new ones
(for example `grade`) the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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


def _cmd_grade(args: argparse.Namespace) -> int:
    from course_lib.grading import detect_isolation, grade
    from course_lib.grading.collect import resolve_exercise
    from course_lib.grading.console import ProgressBar, summary_table

    try:
        exercise = resolve_exercise(args.exercise) if args.exercise else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    isolation = detect_isolation("none" if args.no_isolation else "auto")
    if not isolation.isolated:
        print(f"warning: {isolation.description}", file=sys.stderr)
    try:
        graded = grade(
            args.submissions, args.out, timeout=args.timeout, memory_mb=args.memory,
            jobs=args.jobs, exercise=exercise,
            isolation="none" if args.no_isolation else "auto", progress=ProgressBar(),
        )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the gradebook in {args.out}: {error}", file=sys.stderr)
        return 1
    if not graded:
        print("no notebooks (*.ipynb) found in " + ", ".join(map(str, args.submissions)),
              file=sys.stderr)
        return 2
    print(summary_table(graded, isolation.description))
    print(f"Gradebook: {args.out / 'gradebook.csv'} (and gradebook.json, feedback/)")
    return 0


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _cmd_site(args: argparse.Namespace) -> int:
    from course_lib.site import build_site

    pages = build_site(args.root, args.out, slides=not args.no_slides)
    print(f"wrote {len(pages)} pages to {args.out}/ (open {args.out / 'index.html'})")
    return 0


def _cmd_slides(args: argparse.Namespace) -> int:
    from course_lib.site import build_slides

    decks = build_slides(args.root, args.out)
    print(f"wrote {len(decks)} slide decks to {args.out}/")
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

    grade = commands.add_parser(
        "grade",
        help="grade submitted exercise notebooks into a gradebook, each in a sandbox",
        description="Recognise each notebook's exercise, run its code in an isolated, limited "
        "process, judge its functions with the course's checkers and write DIR/gradebook.csv, "
        "DIR/gradebook.json and DIR/feedback/<submission>.md.",
    )
    grade.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION",
                       help="a notebook or a folder of notebooks")
    grade.add_argument("--out", type=Path, default=Path("grades"), metavar="DIR",
                       help="where to write the gradebook (default: grades/)")
    grade.add_argument("--timeout", type=_positive(float), default=60.0, metavar="SECONDS",
                       help="wall-clock limit per submission (default: 60)")
    grade.add_argument("--memory", type=_positive(int), default=2048, metavar="MB",
                       help="memory limit per submission (default: 2048)")
    grade.add_argument("--jobs", type=_positive(int), default=1, metavar="N",
                       help="submissions graded at the same time (default: 1)")
    grade.add_argument("--exercise", metavar="NN",
                       help="grade only this exercise; other notebooks are marked unreadable")
    grade.add_argument("--no-isolation", action="store_true",
                       help="do not use bubblewrap even when it is available (limits only)")
    grade.set_defaults(run=_cmd_grade)

    site = commands.add_parser(
        "site", help="build the course as a static website that works offline",
        description="Export every lesson and student exercise (with their committed outputs) "
        "to HTML pages with a home page and navigation, and the lesson decks into DIR/slides/.",
    )
    site.add_argument("--out", type=Path, default=Path("site"), metavar="DIR",
                      help="where to write the site (default: site/)")
    site.add_argument("--root", type=Path, default=Path("."), help="the course's folder")
    site.add_argument("--no-slides", action="store_true", help="do not build the decks")
    site.set_defaults(run=_cmd_site)

    slides = commands.add_parser(
        "slides", help="build one reveal.js slide deck per lesson (offline)",
        description="Export each lesson to a reveal.js deck, from its cells' slideshow metadata.",
    )
    slides.add_argument("--out", type=Path, default=Path("site/slides"), metavar="DIR",
                        help="where to write the decks (default: site/slides/)")
    slides.add_argument("--root", type=Path, default=Path("."), help="the course's folder")
    slides.set_defaults(run=_cmd_slides)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
