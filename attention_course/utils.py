"""Small notebook helpers: reproducible seeding and showing the package's own source code."""

from __future__ import annotations

import inspect
import random
import textwrap

import numpy as np
import torch

__all__ = ["set_seed", "show_source"]


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds legacy np.random calls in learner code
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def show_source(obj) -> object:
    """Display the source of a package function or class with syntax highlighting.

    The book shows the code that actually runs: notebooks call this instead of copying code.
    Returns an ``IPython.display.Code`` object (rendered by Jupyter), or the plain source string
    when IPython is not available.
    """
    source = textwrap.dedent(inspect.getsource(obj))  # methods come indented
    try:
        from IPython.display import Code
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return source
    return Code(source, language="python")
