"""`make site` and `make slides` (issue 9): the course as static HTML and reveal.js decks, offline.

The site is built once, through the command line, from the committed notebooks into a temporary
folder. Checked without a browser: every lesson and student exercise has its page and every lesson
its deck with several slides, every relative link and resource resolves to a file of the build,
nothing is loaded from another host (ordinary hyperlinks in the text, such as arXiv references,
are fine), and the instructor's solutions are not published. tests/test_site_browser.py renders
it all in Chromium.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from course_lib.__main__ import main
from course_lib.site import course_pages

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
# The attributes that make a browser fetch something (an <a href> only does when clicked).
RESOURCE_ATTRIBUTES = {
    "script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src",
    "audio": "src", "embed": "src", "track": "src", "object": "data", "link": "href",
}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])(https?:)?//""", re.I)


class Links(HTMLParser):
    """The resources, anchors and executable inline scripts of an HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.resources: list[str] = []
        self.anchors: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.sections = 0
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in RESOURCE_ATTRIBUTES and values.get(RESOURCE_ATTRIBUTES[tag]):
            self.resources.append(values[RESOURCE_ATTRIBUTES[tag]])
        if tag == "a" and "href" in values:
            self.anchors.append(values["href"])
        if tag == "section":
            self.sections += 1
        if tag == "script" and not values.get("src") and values.get("type", "text/javascript") in (
            "text/javascript", "module"
        ):
            self._in = "script"
        elif tag == "style":
            self._in = "style"

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def is_local(url: str) -> bool:
    """A file of the build (or inline data), not something from another host."""
    return url.startswith("data:") or (not urlsplit(url).scheme and not url.startswith("//"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    assert main(["site", "--root", str(ROOT), "--out", str(out)]) == 0
    return out


def html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_lesson_and_exercise_has_its_page_and_every_lesson_its_deck(site: Path) -> None:
    assert LESSONS and EXERCISES
    assert (site / "index.html").is_file()
    for notebook in LESSONS + EXERCISES:
        folder = notebook.parent.name
        assert (site / folder / f"{notebook.stem}.html").is_file(), notebook
        assert (site / folder / notebook.name).read_bytes() == notebook.read_bytes()
    for lesson in LESSONS:
        deck = site / "slides" / f"{lesson.stem}.slides.html"
        assert deck.is_file(), deck
        assert parse(deck).sections >= 5, f"{deck.name} has fewer than 5 slides"


def test_pages_are_in_course_order_with_the_home_page_first(site: Path) -> None:
    pages = course_pages(ROOT)
    assert [(p.kind, p.number) for p in pages[:3]] == [
        ("lesson", "00"), ("lesson", "01"), ("exercise", "01")
    ]
    home = parse(site / "index.html").anchors
    positions = [home.index(page.path) for page in pages]
    assert positions == sorted(positions)
    for previous, page in zip(pages, pages[1:], strict=False):
        anchors = parse(site / page.path).anchors
        assert f"../{previous.path}" in anchors, f"{page.path} does not link back"
        assert page.source.name in anchors, f"{page.path} does not link to its notebook"


def test_the_solutions_are_not_published(site: Path) -> None:
    assert not (site / "exercises" / "solutions").exists()
    for path in html_files(site):
        assert "### BEGIN SOLUTION" not in path.read_text(encoding="utf-8"), path


def test_the_hosted_set_up_cell_is_in_the_notebooks_but_not_on_the_pages(site: Path) -> None:
    marker = "COURSE_LIB_URL"  # the set-up cell's environment variable (course_lib.hosted)
    for notebook in LESSONS + EXERCISES:
        assert marker in notebook.read_text(encoding="utf-8"), notebook  # the test can fail
        page = site / notebook.parent.name / f"{notebook.stem}.html"
        assert marker not in page.read_text(encoding="utf-8"), page
        assert (site / notebook.parent.name / notebook.name).read_bytes() == notebook.read_bytes()


MAINTAINER_CHECK = "# Maintainer check:"  # the first line of every maintainer-check cell


def test_no_maintainer_check_is_on_a_page_or_in_a_deck(site: Path) -> None:
    for path in html_files(site):
        assert "Maintainer check:" not in path.read_text(encoding="utf-8"), path


def test_a_maintainer_check_is_left_out_of_the_page_and_the_deck(tmp_path: Path) -> None:
    """On a lesson that surely has one: the page and the deck leave the cell out, the
    downloadable notebook keeps it, and the cells around it are still there."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    shutil.copyfile(ROOT / "README.md", root / "README.md")
    lesson = nbformat.read(LESSONS[1], as_version=4)
    checked = next(i for i, cell in enumerate(lesson.cells) if cell.cell_type == "code"
                   and "maintainer-check" not in cell.metadata.get("tags", []) and i > 1)
    check = nbformat.v4.new_code_cell(
        f"{MAINTAINER_CHECK} the cell above ran\nassert 'sentinel-7a1f'",
        metadata={"tags": ["maintainer-check"], "jupyter": {"source_hidden": True},
                  "slideshow": {"slide_type": "skip"}},
    )
    lesson.cells.insert(checked + 1, check)
    nbformat.write(lesson, root / "notebooks" / LESSONS[1].name)
    out = tmp_path / "site"
    assert main(["site", "--root", str(root), "--out", str(out)]) == 0
    page = out / "notebooks" / f"{LESSONS[1].stem}.html"
    deck = out / "slides" / f"{LESSONS[1].stem}.slides.html"
    for built in (page, deck):
        assert "sentinel-7a1f" not in built.read_text(encoding="utf-8"), built
    assert "sentinel-7a1f" in (out / "notebooks" / LESSONS[1].name).read_text(encoding="utf-8")
    # every other code cell is on the page (the hosted set-up cell is left out too)
    shown = [cell for cell in lesson.cells if cell.cell_type == "code" and not
             {"maintainer-check", "course-setup"} & set(cell.metadata.get("tags", []))]
    assert page.read_text(encoding="utf-8").count('class="jp-Cell jp-CodeCell') == len(shown)


def test_a_diagrams_alt_text_is_the_images_alt_on_its_page(site: Path) -> None:
    """course_lib.diagrams stores a figure's alt text in the output's metadata (image/png.alt);
    the page carries it as the <img>'s alt, so a screen reader says what the diagram shows."""
    notebook = nbformat.read(ROOT / "notebooks" / "04_weighted_sum.ipynb", as_version=4)
    alts = [output["metadata"]["image/png"]["alt"] for cell in notebook.cells
            if cell.cell_type == "code" for output in cell.get("outputs", [])
            if "alt" in output.get("metadata", {}).get("image/png", {})]
    assert alts, "lesson 04 shows no diagram with alt text"
    page = (site / "notebooks" / "04_weighted_sum.html").read_text(encoding="utf-8")
    for alt in alts:
        assert f'alt="{html.escape(alt)}"' in page


def test_every_relative_link_and_resource_resolves(site: Path) -> None:
    for path in html_files(site):
        links = parse(path)
        for url in links.resources + links.anchors:
            if not is_local(url) or url.startswith(("#", "data:")) or not url.split("#")[0]:
                continue
            target = (path.parent / unquote(url.split("#")[0])).resolve()
            assert target.is_file(), f"{path.relative_to(site)}: {url} leads nowhere"
            assert site.resolve() in target.parents, f"{path.relative_to(site)}: {url} leaves"


def test_nothing_is_loaded_from_another_host(site: Path) -> None:
    for path in html_files(site):
        links = parse(path)
        remote = [url[:80] for url in links.resources if not is_local(url)]
        assert not remote, f"{path.relative_to(site)} loads {remote}"
        for script in links.scripts:
            assert not re.search(r"https?://", script), f"{path.relative_to(site)}: {script[:200]}"
        for style in links.styles:
            assert not CSS_URL.search(style), f"{path.relative_to(site)} loads CSS from the web"
    for path in sorted(site.rglob("*.css")):
        assert not CSS_URL.search(path.read_text(encoding="utf-8")), path
    # ordinary hyperlinks in the text are fine: the home page cites arXiv
    assert any(url.startswith("https://arxiv.org/") for url in parse(site / "index.html").anchors)


def test_every_lesson_has_slideshow_metadata() -> None:
    used = set()
    for lesson in LESSONS:
        cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
        types = [cell["metadata"].get("slideshow", {}).get("slide_type") for cell in cells]
        setup = "course-setup" in cells[0]["metadata"].get("tags", [])  # course_lib.hosted
        assert types[int(setup)] == "slide", f"{lesson.name} must open with a slide"
        assert None not in types, f"{lesson.name}: a cell has no slideshow.slide_type"
        used |= set(types)
    assert {"slide", "subslide", "fragment", "skip"} <= used
