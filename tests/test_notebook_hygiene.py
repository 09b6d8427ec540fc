"""Guards on the committed notebooks: no outputs, kernelspec python3, in the TOC, hosted-ready."""

import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", [toc]):
        walk(part.get("chapters", []))
    return files


def read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    nb = read(path)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_kernelspec_is_python3_and_valid_format(path):
    nb = read(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_name_title_and_toc(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name
    assert f"notebooks/{path.stem}" in toc_files(), f"{path.name} is not listed in _toc.yml"
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "start with an H1"


def test_every_toc_entry_exists():
    for entry in toc_files():
        matches = [p for p in (ROOT / entry).parent.glob(Path(entry).name + ".*")
                   if p.suffix in (".md", ".ipynb")]
        assert matches, f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_installs_the_package_from_the_configured_repository_when_missing(path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    code = [c.source for c in read(path).cells if c.cell_type == "code"]
    assert "except ImportError" in code[0] and f"git+{url}" in code[0], (
        "the first code cell must install the course from repository.url when it is missing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_backend_override(path):
    text = path.read_text()
    assert "MPLBACKEND" not in text and "matplotlib.use(" not in text, "figures would disappear"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_module_hooks(path):
    """Notebooks read weights and activations through the package's on-request APIs
    (``need_weights=True``, ``GPT.residual_stream``), not hooks on the modules."""
    code = "\n".join("".join(c["source"]) for c in read(path)["cells"]
                     if c["cell_type"] == "code")
    assert not re.search(r"register_\w*hook", code), "use the package's on-request APIs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_solutions_are_gated_and_collapsed(path):
    cells = read(path).cells
    starts = [i for i, c in enumerate(cells) if "{solution-start}" in c.source]
    exercises = [c for c in cells if c.cell_type == "markdown" and "{exercise}" in c.source]
    assert len(exercises) >= 3, f"{path.name}: every chapter has at least three exercises"
    assert len(starts) == len(exercises), "every exercise needs one gated solution"
    for i in starts:
        assert ":class: dropdown" in cells[i].source
        end = next(j for j in range(i, len(cells)) if "{solution-end}" in cells[j].source)
        code = [c for c in cells[i + 1:end] if c.cell_type == "code"]
        assert code, f"solution at cell {i} has no code"
        for c in code:
            assert c.metadata.get("jupyter", {}).get("source_hidden") is True, (
                f"solution code at cell {cells.index(c)} must be collapsed (source_hidden)"
            )
            assert "check_" in code[-1].source, "a solution ends by running its checker"


# --- written for the page: nothing wider than the book's column ------------------------------

PAGE_WIDTH = 80  # characters the book's code column shows without horizontal scrolling


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_code_lines_fit_the_page(path):
    long = [f"cell {cell.get('id')}: {line!r}"
            for cell in read(path).cells if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > PAGE_WIDTH]
    assert not long, f"{len(long)} code lines over {PAGE_WIDTH} characters:\n" + "\n".join(long)


def shown_objects():
    """Every package object a notebook displays with ``show_source(name)``."""
    import attention_course

    modules = [importlib.import_module(info.name) for info in
               pkgutil.walk_packages(attention_course.__path__, "attention_course.")
               if not info.name.endswith("__main__")]
    found = {}
    for path in NOTEBOOKS:
        for cell in read(path).cells:
            if cell.cell_type != "code":
                continue
            for name in re.findall(r"show_source\(([\w.]+)\)", cell.source):
                head, *rest = name.split(".")
                owners = [m for m in modules if head in vars(m)
                          and getattr(vars(m)[head], "__module__", None) == m.__name__]
                assert owners, f"{path.name}: show_source({name}) names no package object"
                obj = vars(owners[0])[head]
                for attr in rest:
                    obj = getattr(obj, attr)
                found[f"{path.name}: {name}"] = obj
    return found


def test_source_shown_in_the_book_fits_the_page():
    shown = shown_objects()
    assert shown, "no notebook shows package source"
    long = [f"{where}: {line!r}" for where, obj in shown.items()
            for line in textwrap.dedent(inspect.getsource(obj)).splitlines()
            if len(line) > PAGE_WIDTH]
    assert not long, f"{len(long)} shown source lines over {PAGE_WIDTH}:\n" + "\n".join(long)
