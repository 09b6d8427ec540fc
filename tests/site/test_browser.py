"""Layer 8: the built site in headless Chromium (Debian's, through Playwright's `executable_path`).

Every TOC page is loaded once from a loopback server, with every request that would leave the
machine aborted and recorded; the tests then assert on what the browser saw: equations typeset by
MathJax, no outside requests, no console or page errors, failed local requests, figures that
decoded, and a full-page screenshot of the root page and of every chapter.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.site import checks

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the `browser` fixture skips (or fails under CI) without playwright
    PlaywrightError = Exception

pytestmark = pytest.mark.site

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_MS = int(float(os.environ.get("COURSE_BROWSER_TIMEOUT", "60")) * 1000)
MATHJAX_TIMEOUT_MS = min(TIMEOUT_MS, 30_000)
# Console "error" messages we accept. Keep it empty: each entry must say why it is unavoidable.
CONSOLE_ERROR_ALLOWLIST: tuple[str, ...] = ()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

UNRENDERED_MATH_JS = """() => [...document.querySelectorAll('.math')]
    .filter(e => !e.querySelector('mjx-container'))
    .map(e => e.textContent.trim().slice(0, 80))"""
MATH_ERRORS_JS = """() => [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(e => e.getAttribute('data-mjx-error') || e.textContent.trim().slice(0, 80))"""
# Decode every figure in the cell outputs (scrolling it into view first, in case it is lazy).
FIGURES_JS = """async () => Promise.all(
    [...document.querySelectorAll('div.cell_output img')].map(async (img) => {
        img.scrollIntoView();
        try { await img.decode(); } catch (e) { /* a broken image keeps naturalWidth 0 */ }
        return {src: img.getAttribute('src'), width: img.naturalWidth};
    }))"""


@dataclasses.dataclass(repr=False)
class Visit:
    """What the browser observed while loading one page."""

    url: str
    final_url: str
    aborted: list[str]
    failed: list[str]
    console_errors: list[str]
    page_errors: list[str]
    math_in_html: int
    mathjax_error: str  # empty when MathJax loaded and finished typesetting
    mjx_containers: int
    unrendered_math: list[str]
    math_errors: list[str]
    figures: list[dict]
    screenshot: Path | None


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def load_page(
    browser, url: str, math_in_html: int, screenshot: Path | None, wait_for_math: bool = True
) -> Visit:
    """Load `url` in a fresh context that blocks every non-loopback request, and observe it."""
    aborted: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []

    def route(route) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    def on_response(response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    def on_console(message) -> None:
        if message.type == "error":
            loc = message.location or {}
            console_errors.append(f"{message.text} ({loc.get('url', '?')}:{loc.get('lineNumber')})")

    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, service_workers="block", java_script_enabled=True
    )
    try:
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.on("response", on_response)
        page.on(
            "requestfailed",
            lambda r: (
                failed.append(f"{r.failure} {r.url}")
                if _is_local(r.url) and r.url not in aborted
                else None
            ),
        )
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        mathjax_error = ""
        if wait_for_math and page.locator("script[src*='mathjax' i]").count():
            try:
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                    timeout=MATHJAX_TIMEOUT_MS,
                )
                page.evaluate("() => MathJax.startup.promise.then(() => true)")
            except PlaywrightError as exc:  # timeout, or the typesetting promise rejected
                mathjax_error = str(exc).splitlines()[0]
        else:
            mathjax_error = "the page loads no MathJax script"
        figures = page.evaluate(FIGURES_JS)
        page.wait_for_load_state("networkidle")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(screenshot), full_page=True)
        return Visit(
            url=url,
            final_url=page.url,
            aborted=aborted,
            failed=failed,
            console_errors=console_errors,
            page_errors=page_errors,
            math_in_html=math_in_html,
            mathjax_error=mathjax_error,
            mjx_containers=page.locator("mjx-container").count(),
            unrendered_math=page.evaluate(UNRENDERED_MATH_JS),
            math_errors=page.evaluate(MATH_ERRORS_JS),
            figures=figures,
            screenshot=screenshot,
        )
    finally:
        context.close()


@pytest.fixture(scope="module")
def visit(browser, site_server: str, site_dir: Path, screenshot_dir: Path, root_docname: str):
    """`visit(docname)` → the `Visit` of that TOC page (each page is loaded once per module)."""
    cache: dict[str, Visit | str] = {}

    def _visit(docname: str) -> Visit:
        if docname not in cache:
            page = checks.page_path(site_dir, docname)
            if not page.is_file():
                pytest.fail(f"{docname}: {page} was not rendered", pytrace=False)
            math = len(checks.soup_of(page).select(".math"))
            wants_shot = docname == root_docname or checks.is_notebook_page(docname)
            shot = screenshot_dir / f"{Path(docname).name}.png" if wants_shot else None
            url = urljoin(site_server, f"{docname}.html")
            try:
                cache[docname] = load_page(browser, url, math, shot)
            except PlaywrightError as exc:  # remembered, so the page is not retried per test
                cache[docname] = f"{docname}: loading {url} failed: {exc}"
        result = cache[docname]
        if isinstance(result, str):
            pytest.fail(result, pytrace=False)
        return result

    return _visit


# (a) equations render -------------------------------------------------------------------------
def test_math_renders(visit, docname: str) -> None:
    v = visit(docname)
    if v.math_in_html == 0:
        assert v.unrendered_math == []
        return
    assert not v.mathjax_error, (
        f"{docname}: {v.math_in_html} math elements, but MathJax did not run: {v.mathjax_error}"
    )
    assert v.mjx_containers >= v.math_in_html, (
        f"{docname}: {v.mjx_containers} typeset equations (mjx-container) for "
        f"{v.math_in_html} math elements"
    )
    assert not v.unrendered_math, f"{docname}: math left as raw TeX: {v.unrendered_math[:10]}"
    assert not v.math_errors, f"{docname}: MathJax errors: {v.math_errors[:10]}"


# (b) no request leaves the machine -------------------------------------------------------------
def test_no_request_leaves_the_machine(visit, docname: str) -> None:
    v = visit(docname)
    assert not v.aborted, (
        f"{docname}: {len(v.aborted)} request(s) tried to leave the machine (blocked):\n  "
        + "\n  ".join(v.aborted)
    )


def test_no_failed_local_requests(visit, docname: str) -> None:
    v = visit(docname)
    assert not v.failed, f"{docname}: failed requests to the site:\n  " + "\n  ".join(v.failed)


# (c) no console errors, no uncaught page errors -------------------------------------------------
def test_no_console_errors(visit, docname: str) -> None:
    v = visit(docname)
    errors = [e for e in v.console_errors if not any(a in e for a in CONSOLE_ERROR_ALLOWLIST)]
    assert not errors, f"{docname}: console errors:\n  " + "\n  ".join(errors)


def test_no_page_errors(visit, docname: str) -> None:
    errors = visit(docname).page_errors  # uncaught exceptions, including script syntax errors
    assert not errors, f"{docname}: page errors:\n  " + "\n  ".join(errors)


# (d) screenshots, figures ----------------------------------------------------------------------
def test_screenshot_saved(visit, shot_page: str) -> None:
    shot = visit(shot_page).screenshot
    assert shot is not None and shot.is_file(), f"{shot_page}: no screenshot at {shot}"
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC), f"{shot} is not a PNG screenshot"


def test_chapter_figures_load(visit, chapter: str) -> None:
    figures = visit(chapter).figures
    assert figures, f"{chapter}: no figure (<img> in a cell output) on the page"
    broken = [f["src"] for f in figures if not f["width"]]
    assert not broken, f"{chapter}: figures that did not load (naturalWidth 0): {broken}"


def test_site_root_redirects_in_the_browser(browser, site_server: str, root_docname: str) -> None:
    v = load_page(browser, site_server, math_in_html=0, screenshot=None, wait_for_math=False)
    assert v.final_url == urljoin(site_server, f"{root_docname}.html"), (
        f"opening the site root ended at {v.final_url}, not at the root page {root_docname}"
    )
    assert not v.aborted, f"the site root requested outside URLs: {v.aborted}"


# (e) the interactive attention viewer works in the built pages ---------------------------------
VIEWER_KEYS_JS = """root => [...root.querySelectorAll('.acv-k')].map(k =>
    k.dataset.weight === undefined ? null : Number(k.dataset.weight))"""


def test_attention_viewer_reacts_to_hover_in_the_built_book(
    browser, site_server: str, site_dir: Path, toc_docs: list[str]
) -> None:
    pages = [d for d in toc_docs if checks.is_notebook_page(d)
             and 'class="acv' in checks.page_path(site_dir, d).read_text(encoding="utf-8")]
    assert pages, "no chapter page shows the interactive attention viewer"
    for docname in pages:
        aborted: list[str] = []

        def route(route, aborted=aborted) -> None:
            if _is_local(route.request.url):
                route.continue_()
            else:
                aborted.append(route.request.url)
                route.abort()

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", route)
            page = context.new_page()
            page.goto(urljoin(site_server, f"{docname}.html"), wait_until="load")
            root = page.locator(".acv[data-acv-ready=true]").first
            root.wait_for()
            root.scroll_into_view_if_needed()
            queries = root.locator(".acv-q")
            assert queries.count() >= 3, f"{docname}: the viewer shows too few tokens"
            assert all(w is None for w in root.evaluate(VIEWER_KEYS_JS))  # nothing selected
            last = queries.count() - 1
            queries.nth(last).hover()
            after_last = root.evaluate(VIEWER_KEYS_JS)
            queries.nth(1).hover()
            after_second = root.evaluate(VIEWER_KEYS_JS)
            for row in (after_last, after_second):  # one row of weights: a distribution
                assert None not in row and abs(sum(row) - 1) < 0.01, (docname, row)
            assert after_last != after_second, f"{docname}: hovering another token changed nothing"
            assert not aborted, f"{docname}: the viewer requested outside URLs: {aborted}"
        finally:
            context.close()
