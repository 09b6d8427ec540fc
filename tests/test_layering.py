"""The import-linter contracts in pyproject.toml hold, and they can fail: a copy of the package
where the core imports a model (or the task data) breaks them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml")], cwd=tree,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "attention_course", tmp_path / "attention_course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layering_contracts_hold(tmp_path):
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("masks.py", "import attention_course.data.vocab", "The core knows no model"),
    ("multihead.py", "import attention_course.models.rnn_seq2seq", "The core knows no model"),
    ("attention.py", "import matplotlib", "The core knows no model"),
    ("models/rnn_seq2seq.py", "import attention_course.train", "Models never import"),
    ("bench.py", "import attention_course.models.gpt", "Analysis and benchmarks"),
    ("models/transformer_seq2seq.py", "import attention_course.models.rnn_seq2seq",
     "independent"),
    ("multihead.py", "import attention_course.efficient", "never import efficient"),
    ("kernels.py", "import attention_course.efficient", "never import efficient"),
    ("cache.py", "import attention_course.models.gpt", "The core knows no model"),
    ("models/gpt.py", "import attention_course.inference", "Models never import"),
    ("inference.py", "import attention_course.train", "Generation drives models"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    tree = copy_tree(tmp_path)
    path = tree / "attention_course" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    broken = [block for block in result.stdout.split("\n\n") if "BROKEN" in block]
    assert any(contract in block for block in broken), result.stdout
