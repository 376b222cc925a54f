"""The course outside JupyterLab: a static HTML site and one reveal.js deck per lesson.

    build_site(root, out)      out/index.html (the syllabus from the README), one page per lesson
                               (out/notebooks/NN_name.html) and per student exercise
                               (out/exercises/NN_name.html), the notebooks themselves beside them,
                               and the decks in out/slides/
    build_slides(root, out)    out/NN_name.slides.html, one deck per lesson

Both are nbconvert exports with the templates in `site_templates/` (nbconvert's JupyterLab and
reveal templates, extended): the pages look like the notebooks do in JupyterLab, with their
committed outputs and figures (embedded as data: URIs). Which cells are slides, sub-slides,
fragments or skipped comes from each lesson's cell metadata `slideshow.slide_type`.

Everything renders with no network: MathJax 3 (package `django-static-mathjax`) and reveal.js
(package `sphinx-revealjs`) are copied from the environment into the build, and the templates
load nothing else (no require.js, no widget manager, no CDN). The instructor's solutions
(exercises/solutions/) are never published, nor are the cells tagged `maintainer-check` (the
maintainers' checks) and the hosted set-up cell; the downloadable notebooks are the notebooks.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

# Not in a folder named site/: the .gitignore keeps the built site/ out of git.
TEMPLATES = Path(__file__).parent / "site_templates"
SITE_TITLE = "Self-attention, from scratch"
STATIC = "_static"
REVEAL_THEME = "white"
# A cell of `assert`s that checks a result for the maintainers (the course's convention; tests/
# test_notebook_conventions.py): in the notebooks, never on the pages or in the decks.
MAINTAINER_CHECK_TAG = "maintainer-check"
# TeX in, SVG out (no web fonts), every TeX extension built in: it loads no other file.
MATHJAX_FILE = "tex-svg-full.js"

# MathJax 3: `$...$` and `$$...$$` as in JupyterLab's Markdown cells. SVG output needs no web fonts.
MATHJAX_CONFIG = {
    "tex": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "svg": {"fontCache": "global"},
    "options": {"enableMenu": False},
}


@dataclass(frozen=True)
class Page:
    """One notebook of the course, as a page of the site."""

    kind: str  # "lesson" or "exercise"
    number: str  # "03"
    source: Path  # the notebook
    title: str  # its first heading

    @property
    def folder(self) -> str:
        return "notebooks" if self.kind == "lesson" else "exercises"

    @property
    def path(self) -> str:
        """The page, relative to the site's root: notebooks/03_scaling_and_softmax.html."""
        return f"{self.folder}/{self.source.stem}.html"

    @property
    def slides(self) -> str:
        """The deck, relative to the site's root (lessons only)."""
        return f"slides/{self.source.stem}.slides.html"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.number}"


# ---------------------------------------------------------------------------------------------
# What is published, in course order


def _title(notebook: Path) -> str:
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


def course_pages(root: Path) -> list[Page]:
    """Every lesson and student exercise, in course order: lesson 00, lesson 01, exercise 01, ...

    Only `exercises/NN_*.ipynb` are published, never the masters in `exercises/solutions/`.
    """
    pages = [
        Page(kind, path.name[:2], path, _title(path))
        for kind, folder in (("lesson", "notebooks"), ("exercise", "exercises"))
        for path in sorted((root / folder).glob("[0-9][0-9]_*.ipynb"))
    ]
    return sorted(pages, key=lambda page: (page.number, page.kind != "lesson"))


# ---------------------------------------------------------------------------------------------
# Assets served from the build


def _package_dir(module: str, needed_for: str) -> Path:
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        package = {"mathjax": "django-static-mathjax", "sphinx_revealjs": "sphinx-revealjs"}[module]
        raise RuntimeError(
            f"{needed_for} needs the package {package} (in the dev extra): "
            "make setup, or .venv/bin/python -m pip install -e '.[dev]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_mathjax(static: Path) -> None:
    source = _package_dir("mathjax", "typesetting formulas offline") / "static" / "mathjax"
    target = static / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "es5" / MATHJAX_FILE, target / MATHJAX_FILE)
    shutil.copy2(source / "LICENSE", target / "LICENSE")


def _copy_reveal(static: Path) -> None:
    source = _package_dir("sphinx_revealjs", "the slides") / "_static" / "revealjs"
    target = static / "reveal"
    if target.exists():
        shutil.rmtree(target)
    (target / "dist" / "theme").mkdir(parents=True)
    for name in ("reveal.js", "reveal.css", "reset.css", f"theme/{REVEAL_THEME}.css"):
        shutil.copy2(source / "dist" / name, target / "dist" / name)
    fonts = "theme/fonts/source-sans-pro"  # the white theme's font, imported by its CSS
    shutil.copytree(source / "dist" / fonts, target / "dist" / fonts)
    shutil.copytree(source / "plugin" / "notes", target / "plugin" / "notes")
    shutil.copy2(source / "LICENSE", target / "LICENSE")


def _mathjax_head(static_url: str) -> str:
    config = json.dumps(MATHJAX_CONFIG)
    return (
        f"<script>window.MathJax = {config};</script>\n"
        f'<script defer src="{static_url}/mathjax/{MATHJAX_FILE}"></script>'
    )


# ---------------------------------------------------------------------------------------------
# Exports

# A link in a notebook's text to another notebook, or to the lessons' or exercises' folder.
_NOTEBOOK_LINK = re.compile(
    r'<a\s[^>]*?href="((?:\.\./|\./)*(?:[^":#?]+\.ipynb|notebooks/?|exercises/?))(#[^"]*)?"'
    r"[^>]*>(.*?)</a>",
    re.S,
)


def _relink(body: str, source_dir: str, out_dir: str, published: set[str]) -> str:
    """Point links between notebooks (`../exercises/01_x.ipynb`) at their pages (`.html`).

    `source_dir` is the notebook's folder and `out_dir` the output's folder, both relative to the
    site's root; `published` holds the site's pages (index.html included). A link to a folder
    leads to the home page; a link to something that has no page here keeps only its text.
    """

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0).split(">", 1)[0]
        if " download" in tag:
            return match.group(0)  # the link to download the notebook itself
        target = posixpath.normpath(posixpath.join(source_dir, match.group(1)))
        as_page = target.removesuffix(".ipynb") + ".html" if target.endswith(".ipynb") else ""
        if target in ("notebooks", "exercises"):
            as_page = "index.html"
        if as_page not in published:
            return match.group(3)
        href = posixpath.relpath(as_page, out_dir or ".") + (match.group(2) or "")
        old = f'href="{match.group(1)}{match.group(2) or ""}"'
        return match.group(0).replace(old, f'href="{href}"', 1)

    return _NOTEBOOK_LINK.sub(replace, body)


def _exporter(kind: str):  # -> nbconvert.exporters.TemplateExporter
    from nbconvert import HTMLExporter, SlidesExporter

    if kind == "page":
        return HTMLExporter(
            template_name="course_page",
            extra_template_basedirs=[str(TEMPLATES)],
            embed_images=True,
        )
    return SlidesExporter(
        template_name="course_slides",
        extra_template_basedirs=[str(TEMPLATES)],
        embed_images=True,
        reveal_url_prefix=f"{STATIC}/reveal",
        reveal_theme=REVEAL_THEME,
        reveal_transition="slide",
    )


def _export(exporter, notebook, name: str, course: dict) -> str:  # noqa: ANN001
    import nbformat

    from course_lib.hosted import TAG as SETUP_TAG

    nb = notebook if not isinstance(notebook, Path) else nbformat.read(notebook, as_version=4)
    # Left out: the set-up cell for hosted notebooks (course_lib.hosted) installs nothing on a web
    # page, and a maintainer check (collapsed in JupyterLab) is test code, not teaching.
    left_out = {SETUP_TAG, MAINTAINER_CHECK_TAG}
    nb = nbformat.from_dict({**nb, "cells": [
        cell for cell in nb.cells
        if left_out.isdisjoint(cell.get("metadata", {}).get("tags", []))
    ]})
    resources = {"metadata": {"name": name}, "course": course}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def _home_notebook(root: Path, pages: list[Page], with_slides: bool):  # -> NotebookNode
    """The home page as a one-cell notebook: the README's introduction and syllabus."""
    import nbformat

    readme = (root / "README.md").read_text(encoding="utf-8")
    sections = re.split(r"(?m)^(?=## )", readme)
    keep = [sections[0]] + [
        s for s in sections[1:] if s.startswith(("## The course", "## References"))
    ]
    intro = (
        "*This is the course as a website: every lesson and exercise with its outputs and "
        "figures, to read before (or instead of) running it. To run the notebooks, play with "
        "the explorers and check your exercises, follow **Start** in the README: "
        "`make lab`.*\n\n"
    )
    order = ["## In course order\n"]
    for page in pages:
        line = f"- [{page.title}]({page.path})"
        line += f" · [notebook]({page.folder}/{page.source.name})"
        if page.kind == "lesson" and with_slides:
            line += f" · [slides]({page.slides})"
        order.append(line)
    text = keep[0].rstrip() + "\n\n" + intro + "".join(keep[1:-1])
    text += "\n".join(order) + "\n\n" + (keep[-1] if len(keep) > 2 else "")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])


def build_site(root: Path, out: Path, *, slides: bool = True) -> list[Path]:
    """Write the static site of the course under `out`; returns the pages written.

    With `slides` (the default) the lesson decks go to `out/slides/` and each lesson page links
    to its deck.
    """
    root, out = Path(root).resolve(), Path(out)
    pages = course_pages(root)
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(out / STATIC)
    published = {page.path for page in pages} | {"index.html"}
    exporter = _exporter("page")
    written: list[Path] = []

    up = "../"
    home_link = {"href": up + "index.html", "label": "home"}
    for i, page in enumerate(pages):
        extra = [{"href": page.source.name, "label": "notebook (.ipynb)", "download": True}]
        if page.kind == "lesson" and slides:
            extra.append({"href": up + page.slides, "label": "slides"})
        course = {
            "home": up + "index.html",
            "here": page.label,
            "prev": _nav(pages[i - 1], up) if i > 0 else home_link,
            "next": _nav(pages[i + 1], up) if i + 1 < len(pages) else None,
            "extra": extra,
            "mathjax_head": _mathjax_head(up + STATIC),
        }
        body = _export(exporter, page.source, f"{page.title} · {SITE_TITLE}", course)
        target = out / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        body = _relink(body, page.folder, page.folder, published)
        target.write_text(body, encoding="utf-8")
        shutil.copy2(page.source, target.parent / page.source.name)  # the notebook, to download
        written.append(target)

    home = {
        "home": "index.html",
        "here": "",
        "prev": None,
        "next": _nav(pages[0], "") if pages else None,
        "extra": [],
        "mathjax_head": _mathjax_head(STATIC),
    }
    body = _export(exporter, _home_notebook(root, pages, slides), SITE_TITLE, home)
    (out / "index.html").write_text(_relink(body, "", "", published), encoding="utf-8")
    written.insert(0, out / "index.html")
    if slides:
        build_slides(root, out / "slides")
    return written


def _nav(page: Page, up: str) -> dict[str, str]:
    return {"href": up + page.path, "label": html.escape(page.title)}


def build_slides(root: Path, out: Path) -> list[Path]:
    """Write one reveal.js deck per lesson under `out` (with reveal.js and MathJax beside them)."""
    root, out = Path(root).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(out / STATIC)
    _copy_reveal(out / STATIC)
    exporter = _exporter("slides")
    # Links between notebooks lead to the site's pages where the site is (`make site` builds both).
    pages = course_pages(root)
    published = {
        path
        for path in [page.path for page in pages] + ["index.html"]
        if (out.parent / path).exists()
    }
    written = []
    for page in pages:
        if page.kind != "lesson":
            continue
        course = {
            "home": "../index.html" if "index.html" in published else None,
            "page": f"../{page.path}" if page.path in published else None,
            "mathjax_head": _mathjax_head(STATIC),
        }
        body = _export(exporter, page.source, f"{page.title} · {SITE_TITLE}", course)
        target = out / f"{page.source.stem}.slides.html"
        target.write_text(_relink(body, page.folder, "slides", published), encoding="utf-8")
        written.append(target)
    return written
