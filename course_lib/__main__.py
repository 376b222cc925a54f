"""The course's command line: `python -m course_lib <command>`.

    release [NN ...]        generate the student exercise notebooks from exercises/solutions/
    execute PATH [PATH ...] re-execute notebooks in place (files or folders), deterministic output
    grade SUBMISSION ...    grade submitted exercise notebooks into DIR/gradebook.csv (sandboxed);
                            --roster CSV --lms canvas|moodle: also the LMS's import file
    hub-publish DIR         the learners' copy of the course for the hub: no solutions, no history
    hub-link --hub --repo   the nbgitpuller link that opens the course on a JupyterHub
    collect HOMES_GLOB ...  copy the learners' exercise notebooks from the hub into submissions/
    setup-cells [PATH ...]  the set-up cell for hosted notebooks (Colab, Binder) at the top of each
    site [--out DIR]        the course as a static website (offline), lesson decks included
    slides [--out DIR]      one reveal.js slide deck per lesson
    experiment longrange    lesson 06's trained RNN / GRU / attention comparison over seeds:
                            tables [--task T] [--quick] [--seeds K] [--jobs N] [--json PATH]
    train gpt               train the character-level GPT on Python's help topics, with the bigram
                            baseline and a multi-seed check; write a checkpoint (--out PATH)
    train seq2seq           train the encoder-decoder on the dates task (words -> ISO dates), with
                            other seeds; write a checkpoint (--out PATH)
    train seq2seq-rnn       the GRU encoder-decoder without and with attention on the same task:
                            exact match against source length (--out PATH)

Each command is a function `_cmd_<name>(args) -> int` registered in `_parser()`; add new ones
(for example `grade`) the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
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
    from course_lib.grading import (
        UncontainedError,
        changed_originals,
        detect_isolation,
        grade,
        lacking_updates,
        new_seed,
        skipped_submissions,
    )
    from course_lib.grading.console import ProgressBar, printable, summary_table
    from course_lib.grading.isolation import refusal
    from course_lib.grading.lms import read_roster, roster_duplicates
    from course_lib.grading.submissions import resolve_exercise

    if args.lms and not args.roster:
        print("error: --lms needs --roster (the learners' identities in the LMS)", file=sys.stderr)
        return 2
    try:
        exercise = resolve_exercise(args.exercise) if args.exercise else None
        roster = read_roster(args.roster) if args.roster else None  # checked before grading
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in roster_duplicates(roster or []):  # before grading: fix the roster now
        print(f"roster: {problem}", file=sys.stderr)
    isolation = detect_isolation("none" if args.no_isolation else "auto")
    if not isolation.contained and not args.accept_risk:
        print(f"error: {refusal(isolation)}", file=sys.stderr)
        return 2
    if not isolation.isolated:
        print(f"warning: {isolation.description}", file=sys.stderr)
    if not args.release.is_dir():
        print(f"release check: skipped (no folder {args.release.resolve()}; --release DIR names "
              "the released student notebooks, to list submissions that lack their cells)",
              file=sys.stderr)
    seed = new_seed() if args.seed is None else args.seed
    print(f"Seed of this run's fresh cases: {seed} (--seed {seed} grades the same way again)",
          file=sys.stderr)
    try:
        graded = grade(
            args.submissions, args.out, timeout=args.timeout, memory_mb=args.memory,
            jobs=args.jobs, exercise=exercise,
            isolation="none" if args.no_isolation else "auto", progress=ProgressBar(),
            seed=seed, accept_risk=args.accept_risk,
            release=args.release if args.release.is_dir() else None,
        )
    except (FileNotFoundError, UncontainedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the gradebook in {args.out}: {error}", file=sys.stderr)
        return 1
    if not graded:
        print("no notebooks (*.ipynb) found in " + ", ".join(map(str, args.submissions)),
              file=sys.stderr)
        return 2
    for name, other in skipped_submissions(args.out).items():
        print(f"skipped {printable(name)}: exercise {other}, not {exercise} (not graded)")
    print(summary_table(graded, isolation.description))
    print(f"Gradebook: {args.out / 'gradebook.csv'} (and gradebook.json, feedback/)")
    for name in changed_originals(args.out):
        print(f"warning: {printable(name)} changed while the batch was graded (a submission "
              "reached it: the risk accepted); its grade is of the file as it was before",
              file=sys.stderr)
    for name, cells in lacking_updates(args.out).items():
        print(f"not up to date: {printable(name)} lacks {len(cells)} cell(s) of {args.release}/ "
              f"(first: {printable(cells[0])}): a re-pull kept the learner's version")
    return _lms_export(args, roster) if roster else 0


def _lms_export(args: argparse.Namespace, roster: list) -> int:
    """--roster / --lms: match the gradebook to the roster, list mismatches, write DIR/<lms>.csv."""
    from course_lib.grading.lms import read_gradebook, reconcile, write_lms

    table = reconcile(read_gradebook(args.out / "gradebook.csv"), roster)
    problems = table.problems(duplicates=False)  # duplicates were listed before grading
    for problem in problems:
        print(f"roster: {problem}", file=sys.stderr)
    matched = len(table.learners) - len(table.no_submission)
    if args.lms and not matched:
        why = ("; the roster's duplicates (listed above) are not exported"
               if table.duplicates else "")
        print(f"error: no learner of the roster {args.roster} has a graded submission, so "
              f"nothing was written for {args.lms.capitalize()}: the roster's `learner` column "
              "must be the name of each learner's folder of submissions (one folder per "
              f"learner, as `collect` makes them){why}", file=sys.stderr)
        return 1
    print(f"Roster: {matched} of {len(roster)} learners matched, {len(table.learners)} "
          f"exported, {len(problems) + len(table.duplicates)} problems listed")
    if args.lms:
        path = write_lms(args.out / f"{args.lms}.csv", table, args.lms)
        print(f"For {args.lms.capitalize()}: {path}")
    return 0


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _cmd_hub_link(args: argparse.Namespace) -> int:
    from course_lib.hub import hub_link, repo_warning

    if repo_warning(args.repo):
        print(f"warning: {repo_warning(args.repo)}", file=sys.stderr)
    try:
        print(hub_link(args.hub, args.repo, args.branch))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from course_lib.hub import collect

    try:
        collected = collect(args.homes, args.out, prefix=args.prefix, exercise=args.exercise)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for learner in collected:
        print(learner.message(), file=sys.stdout if learner.started else sys.stderr)
    started = sum(learner.started for learner in collected)
    also = f" --exercise {args.exercise}" if args.exercise else ""
    print(f"collected {started} of {len(collected)} learners into {args.out}/; grade them with "
          f"python -m course_lib grade {args.out}{also}")
    return 0


def _cmd_hub_publish(args: argparse.Namespace) -> int:
    from course_lib.hub import publish

    try:
        published = publish(args.source, args.dest, args.ref)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in published.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    notebooks = sum(path.endswith(".ipynb") for path in published.files)
    what = (f"commit {published.commit[:12]}" if published.commit else "unchanged")
    print(f"{published.dest}: {len(published.files)} files ({notebooks} notebooks) from "
          f"{published.source_commit[:12]}, {what}; no solutions, no history of them")
    print(f"learners' servers clone it as other users: git config --system --add safe.directory "
          f"{published.dest / '.git'}; the link: python -m course_lib hub-link --hub URL "
          f"--repo {published.dest}")
    return 0


def _cmd_setup_cells(args: argparse.Namespace) -> int:
    from course_lib.hosted import REPOSITORY, default_notebooks, is_placeholder, update_notebooks

    url = args.repo or REPOSITORY
    if is_placeholder(url):
        print(f"note: {url} is a placeholder; set REPOSITORY in course_lib/hosted.py (or pass "
              "--repo) to the course's published repository", file=sys.stderr)
    try:
        changed = update_notebooks(args.paths or default_notebooks(), url, args.check)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    verb = "lacks the current set-up cell" if args.check else "set-up cell inserted/updated"
    for path in changed:
        print(f"{path}: {verb}")
    if not args.check and changed:
        print("re-execute them (python -m course_lib execute ...), then release the students'")
    return 1 if args.check and changed else 0


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


def _cmd_experiment(args: argparse.Namespace) -> int:
    import json

    from course_lib import longrange

    if args.quick:
        if args.task != "both" and args.task != "marked":
            print("error: --quick is the marked task's live run", file=sys.stderr)
            return 2
        configs = {"marked": longrange.LongRangeConfig.quick()}
    else:
        full = {"marked": longrange.LongRangeConfig(),
                "steps_back": longrange.LongRangeConfig.steps_back()}
        configs = {task: config for task, config in full.items()
                   if args.task in ("both", task)}
    if args.seeds is not None:
        configs = {task: replace(config, seeds=args.seeds) for task, config in configs.items()}
    live = sys.stderr.isatty()

    def progress(done: int, total: int, label: str) -> None:
        bar = "█" * (30 * done // total) + "░" * (30 - 30 * done // total)
        line = f"training {bar} {done}/{total}  {label}"
        print(f"\r\x1b[2K{line}" if live else line, end="" if live else "\n",
              file=sys.stderr, flush=True)

    results = {}
    for task, config in configs.items():
        results[task] = result = longrange.long_range_experiment(config, progress, args.jobs)
        if live:
            print(file=sys.stderr)
        print(longrange.format_table(result))
        print(f"({result.seconds:.0f} s)\n")
    if args.json:
        command = "python -m course_lib " + " ".join(args.argv)
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(longrange.results_json(results, command), indent=1)
                                 + "\n")
        except OSError as error:
            print(f"error: cannot write {args.json}: {error}", file=sys.stderr)
            return 1
        print(f"JSON: {args.json}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import time

    if args.model in ("seq2seq", "seq2seq-rnn"):
        return _cmd_train_seq2seq(args)

    from course_lib import lm_training
    from course_lib.corpus import load_corpus
    from course_lib.gpt import GPTConfig
    from course_lib.longrange import provenance
    from course_lib.training import TrainingDivergedError

    start = time.perf_counter()
    corpus = load_corpus()
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, n_ctx=args.n_ctx,
                       d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers,
                       positions=args.positions)
    given = {name: getattr(args, name) for name in ("steps", "seed", "batch_size", "lr",
                                                    "bigram_steps", "repeat_fraction")}
    settings = replace(lm_training.TrainSettings(),
                       **{name: value for name, value in given.items() if value is not None})
    settings = replace(settings, eval_every=min(settings.eval_every, settings.steps),
                       warmup=min(settings.warmup, settings.steps))
    if settings.repeat_fraction and (config.n_ctx + 1) // 2 < 8:
        print(f"error: --repeat-fraction needs room for a passage of 8 characters written twice "
              f"in a window: use --n-ctx 15 or more (got {config.n_ctx}).", file=sys.stderr)
        return 2
    repeats = (f"; {settings.repeat_fraction:.0%} of the training windows carry a passage "
               "written twice" if settings.repeat_fraction else "")
    print(f"corpus: Python's help topics, {len(corpus.train)} training and "
          f"{len(corpus.heldout)} held-out characters, {corpus.tokenizer.vocab_size} tokens; "
          f"model: {config}{repeats}")
    try:
        experiment = lm_training.run_gpt_experiment(
            config, settings, corpus, seeds=args.seeds, seed_steps=args.seed_steps,
            progress=sys.stderr if sys.stderr.isatty() else False)
    except TrainingDivergedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = experiment.summary
    record = provenance("python -m course_lib " + " ".join(args.argv),
                        time.perf_counter() - start)
    record |= {"seed": settings.seed, "corpus": {"digest": corpus.digest,
                                             "train_tokens": len(corpus.train),
                                             "heldout_tokens": len(corpus.heldout)}, **summary}
    print(f"sample (temperature {summary['sample']['temperature']}):\n"
          f"{summary['sample']['text']}")
    try:
        path = lm_training.save_checkpoint(args.out or "gpt_char.npz", experiment.params, config,
                                           experiment.history, record,
                                           tokenizer=corpus.tokenizer)
    except OSError as error:
        print(f"error: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    print(f"checkpoint: {path} ({path.stat().st_size / 1024:.0f} KiB, "
          f"{record['seconds']:.0f} s in all)")
    return 0


def _cmd_train_seq2seq(args: argparse.Namespace) -> int:
    import time

    from course_lib import seq2seq_training as st
    from course_lib.longrange import provenance
    from course_lib.training import TrainingDivergedError

    start = time.perf_counter()
    config = st.default_config(args.d_model, args.n_heads, args.n_layers, args.n_decoder_layers)
    given = {name: getattr(args, name) for name in ("steps", "seed", "batch_size", "lr",
                                                    "max_train_length")}
    settings = replace(st.Seq2SeqSettings(),
                       **{name: value for name, value in given.items() if value is not None})
    settings = replace(settings, warmup=min(settings.warmup, settings.steps))
    command = "python -m course_lib " + " ".join(args.argv)
    if args.model == "seq2seq-rnn":
        shipped = st.load_seq2seq_checkpoint() if args.with_transformer else None
        results = st.rnn_comparison(settings, seeds=args.seeds, d_h=args.d_model,
                                    transformer=shipped)
        record = provenance(command, time.perf_counter() - start) | {"seed": settings.seed}
        path = st.save_rnn_comparison(args.out or "seq2seq_rnn.npz", results, record)
        print(f"results: {path} ({record['seconds']:.0f} s in all)")
        return 0
    print(f"model: {config}")
    try:
        experiment = st.run_seq2seq_experiment(
            config, settings, seeds=args.seeds,
            progress=sys.stderr if sys.stderr.isatty() else False)
    except TrainingDivergedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    record = provenance(command, time.perf_counter() - start)
    record |= {"seed": settings.seed, **experiment.summary}
    try:
        path = st.save_seq2seq_checkpoint(args.out or "seq2seq_translation.npz", experiment.run,
                                          config, record)
    except OSError as error:
        print(f"error: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    print(f"checkpoint: {path} ({path.stat().st_size / 1024:.0f} KiB, "
          f"{record['seconds']:.0f} s in all)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib", description="Tools for the self-attention course.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="An instructor's steps, in order (docs/workshop.md explains each):\n"
        "  1. release              generate the student notebooks from the masters\n"
        "  2. hub-link             the link that puts the course on each learner's hub server\n"
        "  3. collect              copy the learners' notebooks, one folder per learner\n"
        "  4. grade --roster --lms grade them and write the LMS's import file\n"
        "Each command has its own --help.",
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
        "--exercises", type=Path, default=Path("exercises"), metavar="DIR",
        help="the exercises folder, with the masters in DIR/solutions/ (default: exercises/)"
    )
    release.add_argument(
        "--no-execute", action="store_true", help="do not run the notebooks (no outputs)"
    )
    release.set_defaults(run=_cmd_release)

    execute = commands.add_parser(
        "execute", help="re-execute notebooks in place, with deterministic metadata",
        description="Run each notebook (or every notebook in each folder) top to bottom in a "
        "fresh kernel and write its outputs back into it, with deterministic metadata, so that "
        "committed outputs change only when the results do.",
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
                       help="grade only this exercise (03, 3 or its name); notebooks of other "
                       "exercises are skipped: not graded, not in the gradebook or LMS file")
    grade.add_argument("--no-isolation", action="store_true",
                       help="do not use bubblewrap even when it is available (as root, each "
                       "submission still runs as a user of its own where it can; else the "
                       "grader refuses)")
    grade.add_argument("--i-accept-that-submissions-can-read-and-change-this-machine",
                       dest="accept_risk", action="store_true",
                       help="run the submissions even where nothing keeps one from the other "
                       "learners' notebooks, the solutions and this machine (no bubblewrap, no "
                       "user of its own): only on a throw-away machine that holds nothing else")
    grade.add_argument("--release", type=Path, default=Path("exercises"), metavar="DIR",
                       help="the released student notebooks: a submission that lacks some of "
                       "their cells (an update the learner's re-pull did not bring) is listed "
                       "(default: exercises/ of the current folder, when there is one; "
                       "otherwise the check is skipped, and said so)")
    grade.add_argument("--seed", type=int, metavar="N",
                       help="seed of the fresh cases graded besides the notebooks' own "
                       "(default: a new one, printed; the same seed gives the same gradebook)")
    grade.add_argument("--roster", type=Path, metavar="CSV",
                       help="map learners to the LMS; needs one folder per learner "
                       "(SUBMISSION/<learner>/, as collect makes them): columns learner, "
                       "student_id, name, email [, section, canvas_id, sis_login_id]; see "
                       "docs/workshop.md")
    grade.add_argument("--lms", choices=("canvas", "moodle"),
                       help="also write DIR/canvas.csv or DIR/moodle.csv (needs --roster)")
    grade.set_defaults(run=_cmd_grade)

    hub_link = commands.add_parser(
        "hub-link", help="print the nbgitpuller link that puts the course on a JupyterHub",
        description="The link clones (or pulls again, keeping the learner's changes) the "
        "repository into each learner's home on the hub and opens lesson 00 in JupyterLab. A "
        "re-pull keeps the learner's version of a file both of you changed, and drops your "
        "change to it; `grade --release exercises/` lists who lacks the released cells.",
    )
    hub_link.add_argument("--hub", required=True, metavar="URL",
                          help="the hub's address, e.g. https://hub.example.org")
    hub_link.add_argument("--repo", required=True, metavar="URL",
                          help="the course's git repository, as the hub reaches it")
    hub_link.add_argument("--branch", metavar="B", help="default: the repository's own")
    hub_link.set_defaults(run=_cmd_hub_link)

    hub_publish = commands.add_parser(
        "hub-publish", help="build the learners' copy of the course that the hub link hands out",
        description="Build or update DIR, a git repository holding only the lessons, the "
        "released student notebooks and the README as committed in the instructor's checkout: "
        "no exercises/solutions/, no history of the instructor's repository. Each run adds one "
        "commit, which learners get by clicking the link again. Point hub-link --repo at DIR.",
    )
    hub_publish.add_argument("dest", type=Path, metavar="DIR",
                             help="the learners' copy, e.g. /srv/self-attention-course")
    hub_publish.add_argument("--source", type=Path, default=Path("."), metavar="CHECKOUT",
                             help="the instructor's checkout (default: the current folder)")
    hub_publish.add_argument("--ref", default="HEAD", help="what to publish (default: HEAD)")
    hub_publish.set_defaults(run=_cmd_hub_publish)

    collect = commands.add_parser(
        "collect", help="copy every learner's exercise notebooks from the hub's home folders",
        description="Copy every notebook in exercises/ (whatever its name; not solutions/ or "
        "checkpoints) from each learner's home (or the course folder in it) into "
        "DIR/<learner>/, one folder per learner, ready for `grade --roster`; the originals are "
        "only read. With --exercise, only the notebooks recognised as that exercise.",
    )
    collect.add_argument("homes", nargs="+", metavar="HOMES_GLOB",
                         help="the learners' home folders, e.g. '/home/jupyter-*' (quoted)")
    collect.add_argument("--out", type=Path, default=Path("submissions"), metavar="DIR",
                         help="where to copy them (default: submissions/)")
    collect.add_argument("--prefix", default="jupyter-",
                         help="dropped from a home folder's name to give the hub name "
                         "(default: jupyter-, The Littlest JupyterHub's)")
    collect.add_argument("--exercise", metavar="NN",
                         help="collect only this exercise (03, 3 or its name), recognised "
                         "from each notebook's content (default: every notebook in exercises/)")
    collect.set_defaults(run=_cmd_collect)

    setup_cells = commands.add_parser(
        "setup-cells", help="put the hosted-notebook set-up cell at the top of each notebook",
        description="Insert or update the cell that installs course_lib when it is missing "
        "(Colab, Binder) in every lesson and exercise master; idempotent.",
    )
    setup_cells.add_argument("paths", nargs="*", type=Path,
                             help="notebooks (default: notebooks/NN_*, exercises/solutions/NN_*)")
    setup_cells.add_argument("--repo", default=None, metavar="REQUIREMENT",
                             help="where the cell installs course_lib from (pip requirement)")
    setup_cells.add_argument("--check", action="store_true",
                             help="change nothing; exit 1 if a notebook lacks the current cell")
    setup_cells.set_defaults(run=_cmd_setup_cells)

    site = commands.add_parser(
        "site", help="build the course as a static website that works offline",
        description="Export every lesson and student exercise (with their committed outputs) "
        "to HTML pages with a home page and navigation, and the lesson decks into DIR/slides/.",
    )
    site.add_argument("--out", type=Path, default=Path("site"), metavar="DIR",
                      help="where to write the site (default: site/)")
    site.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                      help="the course's folder (default: the current folder)")
    site.add_argument("--no-slides", action="store_true", help="do not build the decks")
    site.set_defaults(run=_cmd_site)

    slides = commands.add_parser(
        "slides", help="build one reveal.js slide deck per lesson (offline)",
        description="Export each lesson to a reveal.js deck, from its cells' slideshow metadata.",
    )
    slides.add_argument("--out", type=Path, default=Path("site/slides"), metavar="DIR",
                        help="where to write the decks (default: site/slides/)")
    slides.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                        help="the course's folder (default: the current folder)")
    slides.set_defaults(run=_cmd_slides)

    experiment = commands.add_parser(
        "experiment", help="run a lesson's experiment at full size (longrange: lesson 06)",
        description="longrange: train a vanilla RNN, a GRU and one self-attention layer (and, on "
        "the steps-back task, attention with positions) at growing distance (same loop, "
        "optimiser, batch and step budget; learning rate tuned per model on a separate seed) "
        "and print, over seeds, accuracy, steps to 90% and the far token's Jacobian before and "
        "after training. Both tasks' full grids take many minutes (--jobs N trains N runs at a "
        "time); "
        "lesson 06 loads the shipped results of "
        "`python -m course_lib experiment longrange --jobs 2 --json "
        "course_lib/results/longrange_full.json`.",
    )
    experiment.add_argument("name", choices=("longrange",), help="the experiment")
    experiment.add_argument("--task", choices=("marked", "steps_back", "both"), default="both",
                            help="which task (default: both)")
    experiment.add_argument("--quick", action="store_true",
                            help="exactly the live run lesson 06 trains (seconds)")
    experiment.add_argument("--seeds", type=_positive(int), metavar="K",
                            help="training seeds per model and distance (default: 5; quick: 1)")
    experiment.add_argument("--jobs", type=_positive(int), default=1, metavar="N",
                            help="runs trained at the same time, one process each (default: 1; "
                            "the numbers do not depend on it)")
    experiment.add_argument("--json", type=Path, metavar="PATH",
                            help="also write the results, with how they were made, as JSON")
    experiment.set_defaults(run=_cmd_experiment)

    train = commands.add_parser(
        "train", help="train the course's character-level GPT, or its encoder-decoder, and "
        "write a checkpoint",
        description="gpt: train the bigram baseline, then --seeds shorter GPT runs (one seed "
        "each, with the bigram of that seed), then the main GPT run, all on CPython 3.11.7's help "
        "topics (pydoc_data.topics, shipped in course_lib/texts/); print the held-out losses, "
        "each GPT's strongest induction head (measured on held-out passages written twice) "
        "and a sample; write the main model, its "
        "history and how it was made to --out (.npz). The course's checkpoint "
        "(course_lib/results/gpt_char.npz), and lesson 12's second model "
        "(course_lib/results/gpt_char_repeats.npz, --repeat-fraction 1), were made by the "
        "commands in their provenance. The "
        "training settings not given default to course_lib.lm_training.TrainSettings's. "
        "seq2seq: train the encoder-decoder on the dates task (course_lib.translation_task) "
        "with --seeds other seeds, then the main run; print the exact-match accuracies (held-out "
        "dates, and sources longer than any in training) and the alignment shares; write the "
        "main model, its records and how it was made to --out (.npz); the course's checkpoint "
        "is course_lib/results/seq2seq_translation.npz. Its settings not given default to "
        "course_lib.seq2seq_training.Seq2SeqSettings's (--n-ctx, --positions, --seed-steps, "
        "--bigram-steps and --repeat-fraction are the GPT's only). seq2seq-rnn: the GRU "
        "encoder-decoder without and with attention (width --d-model), --seeds seeds each "
        "from --seed, with seq2seq's "
        "training settings; exact match against source length, written to --out "
        "(course_lib/results/seq2seq_rnn.npz).",
    )
    train.add_argument("model", choices=("gpt", "seq2seq", "seq2seq-rnn"), help="the model")
    train.add_argument("--steps", type=_positive(int),
                       help="training steps of the main run")
    train.add_argument("--seed", type=int,
                       help="seed of the main run; the shorter runs use the next ones")
    train.add_argument("--out", type=Path, metavar="PATH",
                       help="where to write the checkpoint (default: gpt_char.npz, "
                       "seq2seq_translation.npz)")
    train.add_argument("--seeds", type=int, default=3, metavar="K",
                       help="shorter runs with other seeds, for the multi-seed check "
                       "(default: 3; 0: none)")
    train.add_argument("--seed-steps", type=_positive(int), default=300, metavar="N",
                       help="training steps of each of those runs (default: 300)")
    train.add_argument("--n-ctx", type=_positive(int), default=64,
                       help="context length (default: 64)")
    train.add_argument("--d-model", type=_positive(int), default=64, help="(default: 64)")
    train.add_argument("--n-heads", type=_positive(int), default=4, help="(default: 4)")
    train.add_argument("--n-layers", type=_positive(int), default=2, help="(default: 2)")
    train.add_argument("--positions", choices=("learned", "rope"), default="learned",
                       help="position information (default: learned)")
    train.add_argument("--batch-size", type=_positive(int), help="windows per step")
    train.add_argument("--lr", type=_positive(float), help="peak learning rate of Adam")
    train.add_argument("--bigram-steps", type=_positive(int),
                       help="training steps of the bigram")
    train.add_argument("--repeat-fraction", type=_fraction, metavar="P",
                       help="gpt: the probability that a training window carries a passage of "
                       "the text written twice, where copying from the context pays (default: 0; "
                       "lesson 12's second model, course_lib/results/gpt_char_repeats.npz: 1)")
    train.add_argument("--n-decoder-layers", type=_positive(int),
                       help="seq2seq: decoder blocks (default: --n-layers; then --n-layers counts "
                       "the encoder's)")
    train.add_argument("--with-transformer", action="store_true",
                       help="seq2seq-rnn: also measure the shipped encoder-decoder by length")
    train.add_argument("--max-train-length", type=_positive(int),
                       help="seq2seq: the longest source in training, in words (longer ones are "
                       "held out)")
    train.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
