"""Checks of the built HTML site (test layer 7), as plain functions.

Each function takes paths or HTML text and returns a list of problems (human-readable strings);
an empty list means the check passed. The site tests (``tests/site/test_site.py``) assert that the
lists are empty; ``tests/test_site_checks.py`` feeds the functions small synthetic sites to prove
that every check reports the fault it exists for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from bs4 import BeautifulSoup

# Folders of a Sphinx build that hold assets or copies of sources, not pages to check.
SKIP_DIRS = frozenset({"_static", "_sources", "_sphinx_design_static", "_images", "_downloads"})
# Link schemes that point off the site on purpose (repository button, Colab/Binder, citations).
EXTERNAL_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# Source suffixes a `_toc.yml` entry may carry.
SOURCE_SUFFIXES = frozenset({".md", ".ipynb", ".rst", ".myst"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# <link rel> values that only describe a relation and make the browser fetch nothing.
NON_FETCHING_RELS = frozenset(
    {
        "canonical",
        "alternate",
        "next",
        "prev",
        "index",
        "search",
        "author",
        "license",
        "help",
        "copyright",
        "top",
        "up",
        "first",
        "last",
        "contents",
        "glossary",
        "me",
    }
)
# A cell tagged with this shows an error *message* on purpose (e.g. the ValueError text the
# package raises for a bad shape, printed from an `except` block). Its text outputs are exempt from
# the "looks like an error" pattern, never from traceback/stderr blocks.
ERROR_TEXT_ALLOWED_TAG = "tag_shows-error-message"
ERROR_TEXT = re.compile(r"Traceback|\b\w+Error:")
BLOCK_SELECTOR = ".output.traceback, .output.error, .output.stderr"


# --------------------------------------------------------------------------- the table of contents
def toc_files(toc_path: Path) -> list[str]:
    """Document names (``book/intro``) of every page in a Jupyter Book ``_toc.yml``, root first.

    Collects ``root`` and every ``file:`` entry of parts, chapters, sections (and any nesting),
    dropping a source suffix such as ``.md`` or ``.ipynb``; ``url:`` and ``glob:`` entries have no
    single page and are skipped.
    """
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_path}: expected a mapping with a `root:` entry, got {toc!r:.80}")
    names = [_docname(toc["root"])]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                names.append(_docname(node["file"]))
            for key, value in node.items():
                if key not in ("file", "root"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return list(dict.fromkeys(names))  # unique, in order


def _docname(entry: object) -> str:
    name = str(entry).strip().strip("/")
    path = Path(name)
    return path.with_suffix("").as_posix() if path.suffix in SOURCE_SUFFIXES else name


def page_path(site_dir: Path, docname: str) -> Path:
    """The HTML file Sphinx writes for a document name."""
    return Path(site_dir) / f"{docname}.html"


def is_notebook_page(docname: str) -> bool:
    """True for chapter pages, i.e. pages built from a notebook in ``notebooks/``."""
    return docname.startswith("notebooks/")


# --------------------------------------------------------------------------------------- helpers
def html_pages(site_dir: Path) -> list[Path]:
    """Every ``.html`` file under ``site_dir`` outside the asset folders, sorted."""
    site_dir = Path(site_dir)
    return sorted(
        p
        for p in site_dir.rglob("*.html")
        if not SKIP_DIRS.intersection(p.relative_to(site_dir).parts[:-1])
    )


_SOUPS: dict[tuple[str, str], BeautifulSoup] = {}


def soup_of(path: Path) -> BeautifulSoup:
    """Parsed HTML of a file, cached on its path and content. Do not mutate the result."""
    data = Path(path).read_bytes()
    key = (str(Path(path).resolve()), hashlib.sha1(data).hexdigest())
    if key not in _SOUPS:
        if len(_SOUPS) > 512:
            _SOUPS.clear()
        _SOUPS[key] = BeautifulSoup(data.decode("utf-8", errors="replace"), "html.parser")
    return _SOUPS[key]


def ids_of(path: Path) -> set[str]:
    """Every fragment target in a page: element ids and ``<a name>`` anchors."""
    soup = soup_of(path)
    ids = {str(el["id"]) for el in soup.find_all(id=True)}
    ids |= {str(el["name"]) for el in soup.find_all("a", attrs={"name": True})}
    return ids


def _is_local_host(netloc: str) -> bool:
    host = netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        host = host.split("]")[0] + "]"
    else:
        host = host.split(":")[0]
    return host.lower() in LOCAL_HOSTS


def _resolve(site_dir: Path, page: Path, url_path: str) -> Path:
    """Filesystem path a relative URL path in ``page`` points to (``dir/`` → ``dir/index.html``)."""
    target = (page.parent / unquote(url_path)).resolve()
    if url_path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _rel(path: Path, site_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(site_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def _classes(el) -> list[str]:
    value = el.get("class") or []
    return value.split() if isinstance(value, str) else list(value)


# ------------------------------------------------------------------------ (1) every page rendered
def check_page_rendered(path: Path) -> list[str]:
    """The page exists, is not empty and has an ``<h1>`` with text."""
    path = Path(path)
    if not path.is_file():
        return [f"{path}: page was not rendered (file missing)"]
    if path.stat().st_size == 0:
        return [f"{path}: page is empty"]
    h1 = soup_of(path).find("h1")
    if h1 is None or not h1.get_text(strip=True):
        return [f"{path}: page has no <h1> heading"]
    return []


def check_redirect(site_dir: Path, page: Path) -> list[str]:
    """A ``<meta http-equiv=refresh>`` page (e.g. the top ``index.html``) points to a real page."""
    soup = soup_of(page)
    problems = []
    for meta in soup.find_all("meta", attrs={"http-equiv": re.compile("^refresh$", re.I)}):
        match = re.search(r"url\s*=\s*['\"]?([^'\"\s;]+)", meta.get("content", ""), re.I)
        if not match:
            problems.append(f"{_rel(page, site_dir)}: refresh without a target URL")
            continue
        url = urlsplit(match.group(1))
        if url.scheme or url.netloc:
            problems.append(f"{_rel(page, site_dir)}: redirects off the site to {match.group(1)}")
        elif not _resolve(site_dir, page, url.path).is_file():
            problems.append(f"{_rel(page, site_dir)}: redirects to missing {match.group(1)}")
    return problems


# ------------------------------------------------------------------------ (2) internal links
def find_broken_links(site_dir: Path, pages: Iterable[Path] | None = None) -> list[str]:
    """Relative ``<a href>`` links that miss their file, or their ``#fragment`` on the target page.

    Links with an external scheme (http, https, mailto, tel) are not followed. A link with any
    other scheme (``file:``…), a root-absolute path (breaks when the site is served from a
    sub-path, as on GitHub Pages) or a path leaving the site folder is reported.
    """
    site_dir = Path(site_dir).resolve()
    problems = []
    for page in html_pages(site_dir) if pages is None else pages:
        page = Path(page).resolve()
        where = _rel(page, site_dir)
        for a in soup_of(page).find_all("a", href=True):
            href = str(a["href"]).strip()
            if not href:
                continue
            url = urlsplit(href)
            if url.scheme.lower() in EXTERNAL_LINK_SCHEMES:
                continue
            if url.scheme or url.netloc:
                problems.append(f"{where}: link to {href!r} leaves the site")
                continue
            if url.path.startswith("/"):
                problems.append(f"{where}: root-absolute link {href!r} (use a relative link)")
                continue
            target = _resolve(site_dir, page, url.path) if url.path else page
            if not _inside(target, site_dir):
                problems.append(f"{where}: link {href!r} points outside the site")
            elif not target.is_file():
                problems.append(f"{where}: broken link {href!r} (no {_rel(target, site_dir)})")
            elif url.fragment and target.suffix == ".html":
                fragment = unquote(url.fragment)
                if fragment not in ids_of(target):
                    problems.append(
                        f"{where}: link {href!r}: no id {fragment!r} in {_rel(target, site_dir)}"
                    )
    return problems


# ------------------------------------------------------------------------ (3) images
def find_broken_images(site_dir: Path, pages: Iterable[Path] | None = None) -> list[str]:
    """Relative ``<img src>`` that miss their file (``data:`` URIs are fine; external hosts are
    reported by :func:`find_external_resources`)."""
    site_dir = Path(site_dir).resolve()
    problems = []
    for page in html_pages(site_dir) if pages is None else pages:
        page = Path(page).resolve()
        for img in soup_of(page).find_all("img"):
            src = str(img.get("src", "")).strip()
            if not src:
                problems.append(f"{_rel(page, site_dir)}: <img> without src")
                continue
            url = urlsplit(src)
            if url.scheme or url.netloc:
                continue
            target = _resolve(site_dir, page, url.path)
            if not _inside(target, site_dir) or not target.is_file():
                problems.append(f"{_rel(page, site_dir)}: image {src!r} not found")
    return problems


def output_images(page: Path) -> list:
    """``<img>`` elements inside executed cell outputs (figures, not logos or icons)."""
    return soup_of(page).select("div.cell_output img")


def check_has_output_figure(page: Path) -> list[str]:
    """A chapter page shows at least one figure produced by executing its notebook."""
    if not output_images(page):
        return [f"{page}: no figure (<img> inside a cell output) — was the notebook executed?"]
    return []


# ------------------------------------------------------------------------ (4) error outputs
def find_error_outputs(html: str, where: str = "page") -> list[str]:
    """Error output blocks in a page's HTML.

    Reports myst-nb's ``.output.traceback`` / ``.output.error`` / ``.output.stderr`` blocks, and any
    output element whose text contains "Traceback" or a line starting ``SomethingError:`` (an
    exception printed to stdout). Cells tagged ``shows-error-message`` may print such a line.
    """
    soup = BeautifulSoup(html, "html.parser")
    problems = []
    blocks = soup.select(BLOCK_SELECTOR)
    for el in blocks:
        kind = next(k for k in ("traceback", "error", "stderr") if k in _classes(el))
        problems.append(f"{where}: {kind} output: {_snippet(el.get_text())}")
    skip = {id(el) for el in blocks}
    for el in soup.find_all(class_=lambda c: c is not None and "output" in c):
        if id(el) in skip or any(id(parent) in skip for parent in el.parents):
            continue  # inside an error block, or already reported through an enclosing output
        if el.select_one(BLOCK_SELECTOR) is not None:
            continue  # contains an error block, reported above
        cell = el.find_parent(class_="cell")
        if cell is not None and ERROR_TEXT_ALLOWED_TAG in _classes(cell):
            continue
        text = el.get_text()
        match = ERROR_TEXT.search(text)
        if match:
            skip.add(id(el))
            problems.append(f"{where}: error text in output: {_snippet(text[match.start() :])}")
    return problems


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ------------------------------------------------------------------------ (5) MathJax, no CDN
def has_math(soup: BeautifulSoup) -> bool:
    """The page has math for MathJax to typeset (Sphinx/MyST mark it with class ``math``)."""
    return bool(soup.select(".math"))


def local_mathjax_scripts(site_dir: Path, page: Path) -> list[str]:
    """``<script src>`` of MathJax that resolve to an existing file inside the site."""
    site_dir = Path(site_dir).resolve()
    page = Path(page).resolve()
    found = []
    for script in soup_of(page).find_all("script", src=True):
        src = str(script["src"])
        url = urlsplit(src)
        if url.scheme or url.netloc or "mathjax" not in url.path.lower():
            continue
        target = _resolve(site_dir, page, url.path)
        if _inside(target, site_dir) and target.is_file():
            found.append(src)
    return found


def check_local_mathjax(site_dir: Path, page: Path) -> list[str]:
    """A page with math loads MathJax from the site itself."""
    if not has_math(soup_of(page)) or local_mathjax_scripts(site_dir, page):
        return []
    scripts = [
        str(s["src"])
        for s in soup_of(page).find_all("script", src=True)
        if "mathjax" in str(s["src"]).lower()
    ]
    return [
        f"{_rel(page, site_dir)}: has math but no MathJax script inside the site "
        f"(MathJax scripts: {scripts or 'none'})"
    ]


def _fetched_urls(soup: BeautifulSoup) -> Iterator[tuple[str, str]]:
    """(element, URL) for every URL the browser fetches while loading the page."""
    for el in soup.find_all("script", src=True):
        yield "script", str(el["src"])
    for el in soup.find_all("link", href=True):
        rels = {r.lower() for r in (el.get("rel") or [])}
        if rels and rels <= NON_FETCHING_RELS:
            continue
        yield f"link rel={' '.join(sorted(rels)) or '?'}", str(el["href"])
    for tag in ("img", "iframe", "audio", "video", "source", "track", "embed", "input"):
        for el in soup.find_all(tag, src=True):
            yield tag, str(el["src"])
    for el in soup.find_all("object", data=True):
        yield "object", str(el["data"])
    for el in soup.find_all(style=True):  # inline CSS url(...)
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", str(el["style"])):
            yield "style", url
    for el in soup.find_all("style"):
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")]+)", el.get_text()):
            yield "style", url


def find_external_resources(html: str, where: str = "page") -> list[str]:
    """Resources (scripts, stylesheets, images, frames…) a page loads from another host."""
    problems = []
    for kind, url in _fetched_urls(BeautifulSoup(html, "html.parser")):
        parts = urlsplit(url.strip())
        if parts.scheme.lower() == "data":
            continue
        if parts.netloc and not _is_local_host(parts.netloc):
            problems.append(f"{where}: <{kind}> loads {url}")
    return problems


def find_missing_local_assets(site_dir: Path, page: Path) -> list[str]:
    """Local scripts and stylesheets of a page that are not in the site."""
    site_dir = Path(site_dir).resolve()
    page = Path(page).resolve()
    problems = []
    for kind, url in _fetched_urls(soup_of(page)):
        if kind not in ("script",) and not kind.startswith("link"):
            continue
        parts = urlsplit(url.strip())
        if parts.scheme or parts.netloc:
            continue
        target = _resolve(site_dir, page, parts.path)
        if not _inside(target, site_dir) or not target.is_file():
            problems.append(f"{_rel(page, site_dir)}: <{kind}> {url} not found in the site")
    return problems


# ------------------------------------------------------------------------ (6) notebook downloads
def check_notebook_download(site_dir: Path, docname: str) -> list[str]:
    """A chapter page offers its ``.ipynb``: ``_sources/<doc>.ipynb`` exists and is linked."""
    site_dir = Path(site_dir).resolve()
    source = site_dir / "_sources" / f"{docname}.ipynb"
    problems = []
    if not source.is_file() or source.stat().st_size == 0:
        problems.append(f"{docname}: notebook download _sources/{docname}.ipynb is missing")
    page = page_path(site_dir, docname).resolve()
    if page.is_file():
        linked = {
            _resolve(site_dir, page, urlsplit(str(a["href"])).path)
            for a in soup_of(page).find_all("a", href=True)
            if not urlsplit(str(a["href"])).scheme and urlsplit(str(a["href"])).path
        }
        if source.resolve() not in linked:
            problems.append(f"{docname}: page has no download link to _sources/{docname}.ipynb")
    return problems


# ------------------------------------------------------------------------ (7) bibliography
# (label, author surname, regex for the title, accepted years); case-insensitive.
REQUIRED_WORKS = (
    ("Vaswani et al. 2017", "vaswani", r"attention\s+is\s+all\s+you\s+need", ("2017",)),
    (
        "Bahdanau et al.",
        "bahdanau",
        r"jointly\s+learning\s+to\s+align\s+and\s+translate",
        ("2014", "2015"),
    ),
    ("Dosovitskiy et al.", "dosovitskiy", r"16\s*(?:x|×|\\times)\s*16\s+words", ("2020", "2021")),
)


def find_missing_works(html: str, works=REQUIRED_WORKS) -> list[str]:
    """Works from ``works`` that no single bibliography entry of the page lists.

    An entry matches when its text has the author's surname, the title and one of the years.
    Entries are sphinxcontrib-bibtex's ``role="doc-biblioentry"`` elements (or, failing those,
    list items / paragraphs).
    """
    soup = BeautifulSoup(html, "html.parser")
    entries = soup.select('[role="doc-biblioentry"], .citation') or soup.find_all(["li", "p"])
    texts = [" ".join(e.get_text(" ").split()).lower() for e in entries]
    missing = []
    for label, surname, title, years in works:
        if not any(
            surname in t and re.search(title, t) and any(y in t for y in years) for t in texts
        ):
            missing.append(f"bibliography does not list {label} ({surname}, /{title}/, {years})")
    return missing
