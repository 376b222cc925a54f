"""The static site and the slides in a real browser, with every other host blocked (issue 9).

The site is built from the committed notebooks into a temporary folder and served from a local
server on 127.0.0.1 (one lesson page and one deck are also opened from file://). Chromium is
Debian's `/usr/bin/chromium`, driven by Playwright for Python; any request whose host is not the
local server is aborted and recorded. For every page and deck: no request to another host was
attempted, no local asset is missing, every formula is typeset by MathJax (no raw `$...$` left in
the text, no TeX error), every figure image loaded, the navigation links resolve, and each deck
has several slides. Screenshots go to test-artifacts/site/.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from browser_support import chromium, why_not_runnable

from course_lib.site import build_site, course_pages

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "site"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.browser


# What the page shows once MathJax is done: raw TeX left in the visible text, TeX errors, formulas
# typeset, images and whether they loaded.
INSPECT = """(root) => {
  const scope = document.querySelector(root) || document.body;
  const copy = scope.cloneNode(true);
  copy.querySelectorAll('script, style, pre, code, textarea, mjx-container')
      .forEach((node) => node.remove());
  const text = copy.textContent;
  const raw = text.match(/\\$\\$[^$]+\\$\\$|\\$[^$\\n]+\\$|\\\\\\(.+?\\\\\\)/g) || [];
  return {
    raw: raw.slice(0, 5),
    formulas: scope.querySelectorAll('mjx-container').length,
    errors: Array.from(scope.querySelectorAll('mjx-merror')).map((e) => e.textContent),
    images: Array.from(scope.querySelectorAll('img')).map(
        (img) => ({src: img.src.slice(0, 60), ok: img.complete && img.naturalWidth > 0})),
    links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.href),
  };
}"""

WAIT_FOR_MATHJAX = """() => {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return false;
  if (!window.__typeset) {
    window.__typeset = 'pending';
    MathJax.startup.promise.then(() => { window.__typeset = 'done'; });
  }
  return window.__typeset === 'done';
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    build_site(ROOT, out)
    return out


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Browser:
    """One Chromium; every request to another host is aborted and recorded."""

    def __init__(self, context: Any, origin: str) -> None:
        self.context = context
        self.origin = origin
        self.blocked: list[str] = []
        self.missing: list[str] = []
        context.route("**/*", self._route)
        context.on("response", self._response)
        context.on("requestfailed", lambda request: self.missing.append(request.url))

    def _local(self, url: str) -> bool:
        return url.startswith((self.origin + "/", "file://", "data:", "blob:", "about:"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if self._local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.missing.append(f"{response.status} {response.url}")


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="site-chromium-"))
    try:
        with chromium(profile) as context:  # the same Chromium set-up as the JupyterLab test
            context.set_default_timeout(TIMEOUT_MS)
            yield Browser(context, server)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _local_file(url: str, site: Path, origin: str) -> Path | None:
    """The file of the site a link points to, or None for an ordinary link to the web."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if url.startswith(origin + "/"):
        return site / unquote(urlsplit(url).path).lstrip("/")
    return None


def _open(browser: Browser, url: str, *, deck: bool = False) -> Any:
    page = browser.context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function(WAIT_FOR_MATHJAX)
    if deck:
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
    return page


def _check(page: Any, name: str, site: Path, origin: str, root: str = "body") -> dict:
    result = page.evaluate(INSPECT, root)
    assert not result["raw"], f"{name}: formulas left as raw TeX: {result['raw']}"
    assert not result["errors"], f"{name}: MathJax could not typeset: {result['errors']}"
    broken = [image["src"] for image in result["images"] if not image["ok"]]
    assert not broken, f"{name}: images that did not load: {broken}"
    for link in result["links"]:
        target = _local_file(link.split("#")[0], site, origin)
        assert target is None or target.exists(), f"{name}: the link {link} leads nowhere"
    return result


def _notebook_counts(path: Path) -> tuple[int, bool]:
    """(figures, has math) of a notebook: its image outputs, and `$` in its Markdown."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in cells
        for output in cell.get("outputs", [])
    )
    math = any("$" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return figures, math


def test_every_page_renders_offline(browser: Browser, site: Path, server: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = [("index", f"{server}/index.html", None)] + [
        (page.path, f"{server}/{page.path}", page.source) for page in course_pages(ROOT)
    ]
    for name, url, source in pages:
        page = _open(browser, url)
        result = _check(page, name, site, server)
        if source is not None:
            figures, math = _notebook_counts(source)
            assert len(result["images"]) == figures, f"{name}: not every figure is on the page"
            assert not math or result["formulas"] > 0, f"{name}: no formula was typeset"
            nav = page.locator("nav.course-nav.top a")
            assert nav.count() >= 3, f"{name}: the navigation bar is missing"
        shot = Path(name).with_suffix("").as_posix().replace("/", "-")
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
        first_formula = page.locator("mjx-container").first
        if result["formulas"]:
            first_formula.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"{shot}-formulas.png"))
        page.close()
    assert not browser.blocked, f"requests to other hosts: {browser.blocked}"
    assert not browser.missing, f"missing local files: {browser.missing}"


def test_every_deck_renders_offline(browser: Browser, site: Path, server: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for lesson in [page for page in course_pages(ROOT) if page.kind == "lesson"]:
        name = lesson.slides
        page = _open(browser, f"{server}/{name}", deck=True)
        total = page.evaluate("() => Reveal.getTotalSlides()")
        assert total >= 5, f"{name}: only {total} slides"
        result = _check(page, name, site, server, root=".reveal .slides")
        figures, math = _notebook_counts(lesson.source)
        assert not math or result["formulas"] > 0, f"{name}: no formula was typeset"
        assert len(result["images"]) >= min(figures, 1), f"{name}: the figures are missing"
        stem = lesson.source.stem
        page.screenshot(path=str(ARTIFACTS / f"slides-{stem}-1.png"))
        page.evaluate("() => Reveal.configure({transition: 'none'})")  # no waiting for animations
        # a slide with a formula and one with a figure, as the room would see them
        for what, selector in (("formula", "mjx-container"), ("figure", "img")):
            index = page.evaluate(
                """(selector) => {
                  const slides = Reveal.getSlides();
                  const i = slides.findIndex((s) => s.querySelector(selector));
                  if (i < 0) return null;
                  const at = Reveal.getIndices(slides[i]);
                  Reveal.slide(at.h, at.v);
                  return i;
                }""",
                selector,
            )
            if index is not None:
                page.wait_for_timeout(150)
                page.screenshot(path=str(ARTIFACTS / f"slides-{stem}-{what}.png"))
        page.close()
    assert not browser.blocked, f"requests to other hosts: {browser.blocked}"
    assert not browser.missing, f"missing local files: {browser.missing}"


def test_pages_and_decks_also_render_from_file_urls(browser: Browser, site: Path) -> None:
    lesson = next(page for page in course_pages(ROOT) if page.number == "03")
    for name, deck in ((lesson.path, False), (lesson.slides, True)):
        page = _open(browser, (site / name).as_uri(), deck=deck)
        result = _check(page, name, site, "file://", root=".reveal .slides" if deck else "body")
        assert result["formulas"] > 0 and result["images"], f"{name} from file:// is incomplete"
        page.close()
    assert not browser.blocked, f"requests to other hosts: {browser.blocked}"
