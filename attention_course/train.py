"""A small, deterministic training loop shared by every chapter that trains a model."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm  # the text bar: tqdm.auto would need ipywidgets in Jupyter

from attention_course._checks import check_int

__all__ = ["TrainResult", "train", "quiet"]


def quiet() -> bool:
    """True when progress bars should stay silent: under pytest/nbval, CI, or the book build
    (``ATTENTION_COURSE_QUIET=1``, set by the Makefile), or without a terminal or notebook."""
    if os.environ.get("ATTENTION_COURSE_QUIET") or os.environ.get("PYTEST_CURRENT_TEST"):
        return True
    in_kernel = "ipykernel" in sys.modules
    return not (in_kernel or sys.stderr.isatty())


@dataclass
class TrainResult:
    """What :func:`train` returns: one loss per step, and the wall-clock time."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def smoothed(self, window: int = 20) -> list[float]:
        """Running mean of the losses over ``window`` steps (for plots)."""
        out, total = [], 0.0
        for i, loss in enumerate(self.losses):
            total += loss - (self.losses[i - window] if i >= window else 0.0)
            out.append(total / min(i + 1, window))
        return out


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    sample_batch: Callable[[torch.Generator], object],
    *,
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
    clip_norm: float | None = 1.0,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` with Adam for ``steps`` steps; return the loss history.

    ``sample_batch(generator)`` draws a batch from a generator seeded with ``seed``, and
    ``loss_fn(model, batch)`` returns a scalar loss, so the same seed and the same freshly
    initialised model give the same history. Gradients are clipped to ``clip_norm`` (``None`` to
    disable). ``progress=None`` shows a bar only in an interactive session (see :func:`quiet`).
    """
    check_int("steps", steps, minimum=1)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    result = TrainResult()
    show = (not quiet()) if progress is None else progress
    bar = tqdm(range(steps), disable=not show, desc="training", leave=False)
    start = time.perf_counter()
    model.train()
    for _ in bar:
        batch = sample_batch(generator)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {len(result.losses)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        result.losses.append(loss.item())
        if show:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
