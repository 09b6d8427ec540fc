"""The notebooks' own exercise code against the checkers: every worked solution passes with one
success line and every stub gets the notice. Only the function definitions (and imports) of the
exercise cells are run, so the rest of the notebook, and its training, is not needed."""

import ast
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attention_course.attention import masked_softmax
from tests.exercises.registry import exercises

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _code_cells(chapter: str) -> list[str]:
    (path,) = NOTEBOOKS.glob(f"{chapter.removeprefix('ch')}_*.ipynb")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _define(source: str, name: str):
    """Run the imports and function definitions of ``source``; return the function ``name``."""
    tree = ast.parse(source)
    kept = [node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    namespace = {"torch": torch, "math": math, "nn": nn, "F": F,
                 "masked_softmax": masked_softmax}
    exec(compile(ast.Module(kept, type_ignores=[]), f"<{name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _checked(exercise, suffix: str):
    """The function of the notebook cell that calls ``check_<name>(<something><suffix>)``."""
    call = f"check_{exercise.name}("
    for source in _code_cells(exercise.chapter):
        for line in source.splitlines():
            if line.startswith(call) and line.rstrip().endswith(f"{suffix})"):
                return _define(source, line.strip()[len(call):-1])
    raise AssertionError(f"no cell calls {call}...{suffix})")


def test_the_worked_solution_passes(exercise, capsys):
    exercise.check(_checked(exercise, "_solution"))
    out = capsys.readouterr().out
    assert out == f"✅ {exercise.name}: all {exercise.n_cases} checks passed.\n"


def test_the_stub_gets_the_notice(exercise, capsys):
    exercise.check(_checked(exercise, "_exercise"))
    assert capsys.readouterr().out.startswith(f"⏳ {exercise.name}: not attempted yet")


@pytest.mark.parametrize("chapter", sorted({ex.chapter for ex in exercises()}))
def test_every_exercise_of_a_notebook_is_checked_here(chapter):
    registered = {f"check_{ex.name}(" for ex in exercises() if ex.chapter == chapter}
    called = {line.split("(")[0] + "(" for source in _code_cells(chapter)
              for line in source.splitlines() if line.startswith("check_")}
    assert called == registered
