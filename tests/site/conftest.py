"""Fixtures for the built-site tests (layers 7 and 8); run after `make book`.

Environment variables:
    COURSE_SITE_DIR        built HTML to test (default: <repo>/_build/html)
    COURSE_TOC             table of contents listing the pages (default: <repo>/_toc.yml)
    COURSE_SCREENSHOT_DIR  where screenshots go (default: <site dir>/../screenshots, i.e.
                           <repo>/_build/screenshots for the default site)
    CHROMIUM_PATH          browser executable (default: /usr/bin/chromium)
    CI                     when set, a missing browser fails the browser tests instead of skipping
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.site.checks import is_notebook_page, page_path, toc_files

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def toc_path() -> Path:
    return Path(os.environ.get("COURSE_TOC") or REPO / "_toc.yml")


@functools.cache
def toc_docnames() -> tuple[str, ...]:
    """Document names of the TOC pages, root first (read at collection time, no site needed)."""
    return tuple(toc_files(toc_path()))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`docname`: every TOC page; `chapter`: the pages built from notebooks/;
    `shot_page`: the pages to screenshot (the root page and the chapters)."""
    docs = toc_docnames()
    if "docname" in metafunc.fixturenames:
        metafunc.parametrize("docname", docs)
    if "chapter" in metafunc.fixturenames:
        metafunc.parametrize("chapter", [d for d in docs if is_notebook_page(d)])
    if "shot_page" in metafunc.fixturenames:
        metafunc.parametrize("shot_page", [d for d in docs if d == docs[0] or is_notebook_page(d)])


@pytest.fixture(scope="session")
def site_dir() -> Path:
    """The built site; a missing build is a failure (these tests exist to check it)."""
    path = Path(os.environ.get("COURSE_SITE_DIR") or REPO / "_build" / "html").resolve()
    if not (path / "index.html").is_file():
        pytest.fail(
            f"built site not found at {path}; run `make book` (or jupyter-book build .) first",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def toc_docs() -> list[str]:
    """Document names of the TOC pages (`book/intro`, …), root first."""
    return list(toc_docnames())


@pytest.fixture(scope="session")
def root_docname() -> str:
    return toc_docnames()[0]


@pytest.fixture(scope="session")
def toc_pages(site_dir: Path) -> list[Path]:
    """`<site_dir>/<file>.html` for the root and every `file:` entry of the TOC."""
    return [page_path(site_dir, d) for d in toc_docnames()]


@pytest.fixture(scope="session")
def screenshot_dir(site_dir: Path) -> Path:
    path = Path(os.environ.get("COURSE_SCREENSHOT_DIR") or site_dir.parent / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_server(site_dir: Path):
    """Base URL (ending in "/") of a loopback HTTP server serving the built site."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _no_browser(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests cannot be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    executable = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    if not (Path(executable).is_file() and os.access(executable, os.X_OK)):
        _no_browser(
            f"Chromium not found at {executable} (install Debian `chromium` or set CHROMIUM_PATH)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _no_browser(f"the `playwright` package is not installed: {exc}")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()
