"""environment.yml (conda) installs the same packages as pyproject.toml (pip) and the Makefile."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines):
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, lines)}


def pyproject_set():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return _requirements(lines), project["requires-python"]


def environment_set():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += [line for line in dep["pip"] if not line.startswith("-")]  # options, -e .
        else:
            conda.append(dep)
    python = next(d for d in conda if d.startswith("python="))
    conda = [d for d in conda if d not in (python, "pip")]
    return _requirements(conda + pip), python.split("=", 1)[1]


def makefile_torch():
    match = re.search(r"^TORCH := (torch==\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile must define TORCH := torch==<version>"
    return Requirement(match.group(1))


def test_environment_yml_and_pyproject_install_the_same_packages():
    py, _ = pyproject_set()
    env, _ = environment_set()
    assert sorted(env) == sorted(py), (
        f"only in environment.yml: {sorted(set(env) - set(py))}; "
        f"only in pyproject.toml: {sorted(set(py) - set(env))}"
    )
    drift = {name: (str(env[name]), str(py[name]))
             for name in py if name != "torch" and env[name] != py[name]}
    assert not drift, f"version specifiers differ (environment.yml, pyproject.toml): {drift}"


def test_torch_pin_is_the_makefiles_and_satisfies_pyproject():
    py, _ = pyproject_set()
    env, _ = environment_set()
    torch = makefile_torch()
    assert env["torch"] == torch.specifier, f"environment.yml {env['torch']} vs Makefile {torch}"
    pinned = next(iter(torch.specifier)).version
    assert py["torch"].contains(pinned), f"torch {pinned} does not satisfy pyproject {py['torch']}"


def test_environment_python_satisfies_requires_python():
    _, requires = pyproject_set()
    _, python = environment_set()
    assert SpecifierSet(requires).contains(python + ".0"), (python, requires)


def test_book_build_pins_jupyter_book_1():
    py, _ = pyproject_set()
    spec = py["jupyter-book"]
    assert spec.contains("1.0.4") and not spec.contains("2.0.0"), spec


def test_readme_and_setup_page_state_the_minimum_python_of_pyproject():
    _, requires = pyproject_set()  # e.g. ">=3.11"
    minimum = requires.removeprefix(">=")
    for page in ("README.md", "book/setup.md"):
        stated = re.findall(r"Python (\d+\.\d+) or newer", (ROOT / page).read_text())
        assert stated, f"{page} does not state the minimum Python version"
        assert set(stated) == {minimum}, f"{page} says Python {stated}; pyproject: {requires}"
