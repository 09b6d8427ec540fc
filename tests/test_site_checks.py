"""Self-tests of the built-site checks (tests/site/checks.py) on small synthetic sites.

Every check must be able to fail: each test builds a tiny site in tmp_path with one known fault
and asserts that the check reports it (and stays quiet on the healthy variant). No built book is
needed, so this runs with the unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.site import checks

HEAD = '<html><head><meta charset="utf-8"><title>t</title>{head}</head><body>{body}</body></html>'


def write(root: Path, rel: str, body: str = "", head: str = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD.format(head=head, body=body), encoding="utf-8")
    return path


def touch(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def cell(outputs: str, tags: str = "") -> str:
    """A code cell as myst-nb renders it."""
    return (
        f'<div class="cell docutils container {tags}"><div class="cell_input docutils container">'
        '<pre>x</pre></div><div class="cell_output docutils container">'
        f"{outputs}</div></div>"
    )


# --------------------------------------------------------------------------------- toc_files
def test_toc_files_collects_root_parts_chapters_and_sections(tmp_path: Path) -> None:
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro.md\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/setup\n"
        "        sections:\n          - file: book/setup_more.md\n"
        "          - url: https://example.org\n            title: ext\n"
        "  - caption: B\n    chapters:\n      - file: notebooks/02_x.ipynb\n"
        "      - glob: extra/*\n      - file: book/setup\n",
        encoding="utf-8",
    )
    assert checks.toc_files(toc) == [
        "book/intro",
        "book/setup",
        "book/setup_more",
        "notebooks/02_x",
    ]


def test_toc_files_rejects_a_toc_without_root(tmp_path: Path) -> None:
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nchapters: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="root"):
        checks.toc_files(toc)


def test_is_notebook_page() -> None:
    assert checks.is_notebook_page("notebooks/02_attention_basics")
    assert not checks.is_notebook_page("book/intro")


# ------------------------------------------------------------------------ (1) page rendered
def test_check_page_rendered_reports_missing_empty_and_headless_pages(tmp_path: Path) -> None:
    assert "missing" in checks.check_page_rendered(tmp_path / "nope.html")[0]
    touch(tmp_path, "empty.html", b"")
    assert "empty" in checks.check_page_rendered(tmp_path / "empty.html")[0]
    write(tmp_path, "noh1.html", "<h2>Only a subtitle</h2>")
    assert "<h1>" in checks.check_page_rendered(tmp_path / "noh1.html")[0]
    write(tmp_path, "ok.html", "<h1>Title</h1>")
    assert checks.check_page_rendered(tmp_path / "ok.html") == []


def test_check_redirect(tmp_path: Path) -> None:
    refresh = '<meta http-equiv="Refresh" content="0; url={}" />'
    write(tmp_path, "book/intro.html", "<h1>Intro</h1>")
    write(tmp_path, "index.html", head=refresh.format("book/intro.html"))
    assert checks.check_redirect(tmp_path, tmp_path / "index.html") == []
    write(tmp_path, "index.html", head=refresh.format("book/gone.html"))
    assert "missing" in checks.check_redirect(tmp_path, tmp_path / "index.html")[0]


# ------------------------------------------------------------------------ (2) links
def test_find_broken_links_reports_missing_file_and_fragment(tmp_path: Path) -> None:
    write(tmp_path, "book/a.html", '<h1 id="top">A</h1><section id="masking"></section>')
    write(
        tmp_path,
        "book/b.html",
        '<a href="a.html">ok</a> <a href="a.html#masking">ok</a> <a href="#here">ok</a>'
        '<span id="here"></span> <a href="https://example.org/x">external</a>'
        '<a href="mailto:a@b.c">mail</a> <a href="../_sources/book/a.md">source</a>'
        '<a href="missing.html">broken</a> <a href="a.html#nowhere">bad fragment</a>',
    )
    touch(tmp_path, "_sources/book/a.md")
    problems = checks.find_broken_links(tmp_path)
    assert len(problems) == 2, problems
    assert any("missing.html" in p for p in problems)
    assert any("'nowhere'" in p for p in problems)


def test_find_broken_links_reports_links_that_leave_the_site(tmp_path: Path) -> None:
    write(tmp_path, "book/a.html", "<h1>A</h1>")
    write(
        tmp_path,
        "book/b.html",
        '<a href="/book/a.html">root-absolute</a> <a href="../../outside.html">outside</a>'
        '<a href="file:///home/me/a.html">file</a>',
    )
    touch(tmp_path.parent, "outside.html")
    problems = checks.find_broken_links(tmp_path)
    assert len(problems) == 3, problems
    assert any("root-absolute" in p for p in problems)
    assert any("outside the site" in p for p in problems)
    assert any("leaves the site" in p for p in problems)


def test_find_broken_links_skips_asset_folders(tmp_path: Path) -> None:
    write(tmp_path, "_static/vendor/demo.html", '<a href="nowhere.html">x</a>')
    write(tmp_path, "page.html", '<a href="page.html">self</a>')
    assert [p.name for p in checks.html_pages(tmp_path)] == ["page.html"]
    assert checks.find_broken_links(tmp_path) == []


def test_find_broken_links_follows_directory_links_to_index(tmp_path: Path) -> None:
    write(tmp_path, "sub/index.html", "<h1>Sub</h1>")
    write(tmp_path, "page.html", '<a href="sub/">sub</a> <a href="other/">missing</a>')
    problems = checks.find_broken_links(tmp_path)
    assert len(problems) == 1 and "other/" in problems[0], problems


# ------------------------------------------------------------------------ (3) images
def test_find_broken_images(tmp_path: Path) -> None:
    touch(tmp_path, "_images/fig.png")
    write(
        tmp_path,
        "book/p.html",
        '<img src="../_images/fig.png"> <img src="data:image/png;base64,AAAA">'
        '<img src="../_images/gone.png">',
    )
    problems = checks.find_broken_images(tmp_path)
    assert len(problems) == 1 and "gone.png" in problems[0], problems


def test_check_has_output_figure_ignores_logos(tmp_path: Path) -> None:
    logo = '<img alt="Binder logo" src="../_static/images/logo_binder.svg">'
    page = write(tmp_path, "notebooks/ch.html", logo + cell('<pre class="output">1</pre>'))
    assert "no figure" in checks.check_has_output_figure(page)[0]
    figure = '<img alt="fig" src="../_images/abc.png">'
    page = write(tmp_path, "notebooks/ch.html", logo + cell(figure))
    assert checks.check_has_output_figure(page) == []


# ------------------------------------------------------------------------ (4) error outputs
TRACEBACK = (
    '<div class="output traceback highlight-ipythontb notranslate"><pre>'
    "ValueError                                Traceback (most recent call last)\n"
    "ValueError: mask has shape (2, 3)</pre></div>"
)


def test_find_error_outputs_reports_a_traceback_block_once() -> None:
    problems = checks.find_error_outputs(cell(TRACEBACK), "ch.html")
    assert len(problems) == 1 and "traceback" in problems[0], problems


def test_find_error_outputs_reports_stderr_and_error_blocks() -> None:
    stderr = '<div class="output stderr highlight-myst-ansi"><pre>UserWarning: careful</pre></div>'
    error = '<div class="output error"><pre>boom</pre></div>'
    problems = checks.find_error_outputs(cell(stderr) + cell(error))
    assert len(problems) == 2
    assert any("stderr" in p for p in problems) and any("error output" in p for p in problems)


def test_find_error_outputs_reports_error_text_printed_to_stdout() -> None:
    printed = "<div class=\"output stream highlight-myst-ansi\"><pre>KeyError: 'q'</pre></div>"
    problems = checks.find_error_outputs(cell(printed))
    assert len(problems) == 1 and "KeyError" in problems[0], problems
    tb = '<div class="output stream"><pre>Traceback (most recent call last):\n...</pre></div>'
    assert len(checks.find_error_outputs(cell(tb))) == 1


def test_find_error_outputs_accepts_clean_outputs_prose_and_tagged_demos() -> None:
    clean = cell('<div class="output stream"><pre>accuracy 0.97</pre></div>')
    prose = "<p>A bad mask raises <code>ValueError: mask has shape …</code>.</p>"
    demo = cell(
        '<div class="output stream"><pre>ValueError: mask has shape (2, 3)</pre></div>',
        tags="tag_shows-error-message",
    )
    assert checks.find_error_outputs(clean + prose + demo) == []
    # The tag exempts printed messages only, never a traceback block.
    assert len(checks.find_error_outputs(cell(TRACEBACK, tags="tag_shows-error-message"))) == 1


# ------------------------------------------------------------------------ (5) MathJax, hosts
MATH = '<span class="math notranslate nohighlight">\\(x^2\\)</span>'


def test_has_math_matches_the_math_class_only() -> None:
    from bs4 import BeautifulSoup

    assert checks.has_math(BeautifulSoup(f"<p>{MATH}</p>", "html.parser"))
    ignored = '<section class="tex2jax_ignore mathjax_ignore"><p>no math</p></section>'
    assert not checks.has_math(BeautifulSoup(ignored, "html.parser"))


def test_check_local_mathjax(tmp_path: Path) -> None:
    local = '<script defer src="../_static/mathjax/tex-chtml.js?v=1"></script>'
    cdn = (
        '<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
    )
    page = write(tmp_path, "book/p.html", MATH, head=cdn)
    assert "no MathJax script inside the site" in checks.check_local_mathjax(tmp_path, page)[0]
    page = write(tmp_path, "book/p.html", MATH, head=local)
    assert checks.check_local_mathjax(tmp_path, page) != [], "script file does not exist yet"
    touch(tmp_path, "_static/mathjax/tex-chtml.js")
    assert checks.check_local_mathjax(tmp_path, page) == []
    no_math = write(tmp_path, "book/q.html", "<p>plain</p>")
    assert checks.check_local_mathjax(tmp_path, no_math) == []


def test_find_external_resources_reports_other_hosts_only() -> None:
    html = HEAD.format(
        head=(
            '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
            '<script src="//unpkg.com/thebe/lib/index.js"></script>'
            '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Lato">'
            '<link rel="canonical" href="https://example.org/book/p.html">'
            '<link rel="stylesheet" href="../_static/pygments.css">'
            '<script src="http://127.0.0.1:8000/_static/x.js"></script>'
            '<script src="http://localhost/x.js"></script>'
            '<style>@import "https://fonts.example.com/a.css";</style>'
        ),
        body=(
            '<img src="https://img.shields.io/badge.svg"> <img src="data:image/png;base64,AA">'
            "<div style=\"background: url('https://example.com/bg.png')\"></div>"
            '<a href="https://github.com/x/y">links are not loads</a>'
        ),
    )
    problems = checks.find_external_resources(html, "p.html")
    joined = "\n".join(problems)
    assert len(problems) == 6, joined
    for host in (
        "cdn.jsdelivr.net",
        "unpkg.com",
        "fonts.googleapis.com",
        "img.shields.io",
        "example.com/bg.png",
        "fonts.example.com",
    ):
        assert host in joined
    assert "canonical" not in joined and "127.0.0.1" not in joined and "github.com" not in joined


def test_find_missing_local_assets(tmp_path: Path) -> None:
    touch(tmp_path, "_static/ok.js")
    page = write(
        tmp_path,
        "book/p.html",
        head='<script src="../_static/ok.js?v=1"></script>'
        '<script src="../_static/gone.js"></script>'
        '<link rel="stylesheet" href="../_static/gone.css"><script>inline()</script>',
    )
    problems = checks.find_missing_local_assets(tmp_path, page)
    assert len(problems) == 2 and all("gone" in p for p in problems), problems


# ------------------------------------------------------------------------ (6) downloads
def test_check_notebook_download(tmp_path: Path) -> None:
    doc = "notebooks/02_x"
    link = '<a href="../_sources/notebooks/02_x.ipynb" class="btn">.ipynb</a>'
    write(tmp_path, f"{doc}.html", "<h1>Ch</h1>")
    problems = checks.check_notebook_download(tmp_path, doc)
    assert len(problems) == 2, problems  # no file, no link
    touch(tmp_path, "_sources/notebooks/02_x.ipynb", b"{}")
    assert "no download link" in checks.check_notebook_download(tmp_path, doc)[0]
    write(tmp_path, f"{doc}.html", "<h1>Ch</h1>" + link)
    assert checks.check_notebook_download(tmp_path, doc) == []


# ------------------------------------------------------------------------ (7) bibliography
def entry(text: str) -> str:
    return (
        '<div class="citation" role="doc-biblioentry"><span class="label">[X]</span>'
        f"<p>{text}</p></div>"
    )


VASWANI = entry("Ashish Vaswani, Noam Shazeer, and others. Attention is all you need. 2017.")
BAHDANAU = entry(
    "Dzmitry Bahdanau, Kyunghyun Cho, and Yoshua Bengio. Neural machine "
    "translation by jointly learning to align and translate. In ICLR. 2015."
)
DOSOVITSKIY = entry(
    "Alexey Dosovitskiy and others. An image is worth 16x16 words: "
    "transformers for image recognition at scale. 2021."
)


def test_find_missing_works_accepts_the_three_outline_references() -> None:
    assert checks.find_missing_works(VASWANI + BAHDANAU + DOSOVITSKIY) == []


def test_find_missing_works_reports_a_missing_reference() -> None:
    problems = checks.find_missing_works(VASWANI + BAHDANAU)
    assert len(problems) == 1 and "Dosovitskiy" in problems[0], problems


def test_find_missing_works_needs_author_title_and_year_in_one_entry() -> None:
    split = entry("Vaswani. Some other paper. 2019.") + entry("Someone. Attention is all you need.")
    problems = checks.find_missing_works(split + BAHDANAU + DOSOVITSKIY)
    assert len(problems) == 1 and "Vaswani" in problems[0], problems
