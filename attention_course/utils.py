"""Small notebook helpers: reproducible seeding and showing the package's own source code."""

from __future__ import annotations

import inspect
import random
import textwrap

import numpy as np
import torch

from attention_course._checks import check_int

__all__ = ["set_seed", "show_source", "count_parameters"]


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded the same way.

    ``seed`` is an int in ``[0, 2**32 - 1]`` (NumPy's range).
    """
    check_int("seed", seed, minimum=0)
    if seed > 2**32 - 1:
        raise ValueError(f"seed must be <= 2**32 - 1 = {2**32 - 1} (NumPy's limit), got {seed}")
    seed = int(seed)  # a NumPy integer is fine, but random.seed only takes a Python int
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
    kinds = (inspect.ismodule, inspect.isclass, inspect.isfunction, inspect.ismethod,
             inspect.iscode, inspect.isframe, inspect.istraceback)  # what inspect can read
    python_code = any(kind(obj) for kind in kinds)
    if not python_code:
        raise TypeError(f"obj must be a module, class, function or method written in Python, got "
                        f"{type(obj).__name__} {obj!r}")
    source = textwrap.dedent(inspect.getsource(obj))  # methods come indented
    try:
        from IPython.display import Code
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return source
    return Code(source, language="python")


def count_parameters(module) -> int:
    """Number of scalar parameters of an ``nn.Module`` (shared parameters counted once)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters())
