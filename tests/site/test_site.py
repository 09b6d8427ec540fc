"""Layer 7: checks of the built HTML site, without a browser.

Run after building the book: `jupyter-book build .` then `pytest tests/site`.
The checks themselves live in `tests/site/checks.py`; `tests/test_site_checks.py` proves each
one reports the fault it looks for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.site import checks

pytestmark = pytest.mark.site


def _report(problems: list[str], what: str) -> str:
    shown = "\n  ".join(problems[:50])
    more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
    return f"{len(problems)} {what}:\n  {shown}{more}"


# (1) every TOC page was rendered ----------------------------------------------------------------
def test_toc_page_rendered(site_dir: Path, docname: str) -> None:
    problems = checks.check_page_rendered(checks.page_path(site_dir, docname))
    assert not problems, _report(problems, "rendering problems")


def test_toc_pages_fixture_lists_every_toc_entry(toc_pages: list[Path], site_dir: Path) -> None:
    # The root page comes first, and every page is a distinct .html file inside the site.
    assert toc_pages, "the table of contents lists no pages"
    assert len(set(toc_pages)) == len(toc_pages)
    assert all(p.suffix == ".html" and site_dir in p.parents for p in toc_pages)


def test_index_redirects_to_an_existing_page(site_dir: Path) -> None:
    problems = checks.check_redirect(site_dir, site_dir / "index.html")
    assert not problems, _report(problems, "redirect problems")


# (2) internal links ---------------------------------------------------------------------------
def test_internal_links_resolve(site_dir: Path) -> None:
    pages = checks.html_pages(site_dir)
    assert pages, f"no HTML pages under {site_dir}"
    problems = checks.find_broken_links(site_dir, pages)
    assert not problems, _report(problems, "broken internal links")


# (3) images -----------------------------------------------------------------------------------
def test_images_resolve(site_dir: Path) -> None:
    problems = checks.find_broken_images(site_dir)
    assert not problems, _report(problems, "broken images")


def test_chapter_has_executed_figure(site_dir: Path, chapter: str) -> None:
    problems = checks.check_has_output_figure(checks.page_path(site_dir, chapter))
    assert not problems, _report(problems, "pages without figures")


# (4) no error outputs -------------------------------------------------------------------------
def test_no_error_outputs(site_dir: Path) -> None:
    problems = []
    for page in checks.html_pages(site_dir):
        where = page.relative_to(site_dir).as_posix()
        problems += checks.find_error_outputs(page.read_text(encoding="utf-8"), where)
    assert not problems, _report(problems, "error outputs")


# (5) MathJax from the site, nothing from other hosts ------------------------------------------
def test_math_pages_load_local_mathjax(site_dir: Path) -> None:
    pages = checks.html_pages(site_dir)
    problems = [p for page in pages for p in checks.check_local_mathjax(site_dir, page)]
    assert not problems, _report(problems, "pages without a local MathJax")


def test_some_page_has_math(site_dir: Path, toc_pages: list[Path]) -> None:
    # Guards the MathJax checks against passing vacuously (e.g. if math markup changed class).
    assert any(checks.has_math(checks.soup_of(p)) for p in toc_pages if p.is_file()), (
        "no TOC page contains an element with class `math`"
    )


def test_no_external_resources(site_dir: Path) -> None:
    problems = []
    for page in checks.html_pages(site_dir):
        where = page.relative_to(site_dir).as_posix()
        problems += checks.find_external_resources(page.read_text(encoding="utf-8"), where)
    assert not problems, _report(problems, "resources loaded from another host")


def test_local_scripts_and_stylesheets_exist(site_dir: Path) -> None:
    pages = checks.html_pages(site_dir)
    problems = [p for page in pages for p in checks.find_missing_local_assets(site_dir, page)]
    assert not problems, _report(problems, "missing local assets")


# (6) notebook downloads -----------------------------------------------------------------------
def test_chapter_offers_notebook_download(site_dir: Path, chapter: str) -> None:
    problems = checks.check_notebook_download(site_dir, chapter)
    assert not problems, _report(problems, "download problems")


# (7) bibliography -----------------------------------------------------------------------------
def test_bibliography_lists_outline_references(site_dir: Path, toc_docs: list[str]) -> None:
    pages = [d for d in toc_docs if Path(d).name == "bibliography"]
    assert pages, "the table of contents has no `bibliography` page"
    page = checks.page_path(site_dir, pages[0])
    assert page.is_file(), f"{page} was not rendered"
    problems = checks.find_missing_works(page.read_text(encoding="utf-8"))
    assert not problems, _report(problems, "missing references")
