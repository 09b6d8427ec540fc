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

from attention_course._checks import check_bool, check_float, check_int

__all__ = ["TrainResult", "train", "quiet"]

_SEED_MIN, _SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed accepts


def quiet() -> bool:
    """True when progress bars should stay silent: under pytest/nbval, CI, or the book build
    (``ATTENTION_COURSE_QUIET=1``, set by the Makefile), or without a terminal or notebook."""
    if os.environ.get("ATTENTION_COURSE_QUIET") or os.environ.get("PYTEST_CURRENT_TEST"):
        return True
    in_kernel = "ipykernel" in sys.modules
    return not (in_kernel or sys.stderr.isatty())


@dataclass
class TrainResult:
    """What :func:`train` returns: one loss per step, the wall-clock time, and the learning rate
    each step used."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    learning_rates: list[float] = field(default_factory=list)

    def smoothed(self, window: int = 20) -> list[float]:
        """Running mean of the losses over ``window`` steps (for plots); ``window >= 1``."""
        check_int("window", window, minimum=1)
        out, total = [], 0.0
        for i, loss in enumerate(self.losses):
            total += loss - (self.losses[i - window] if i >= window else 0.0)
            out.append(total / min(i + 1, window))
        return out


def _global_seed(seed: int) -> int:
    """A seed for torch's global generator derived from ``seed`` (one SplitMix64 step), so
    dropout masks do not replay the raw random stream of the batch generator seeded with
    ``seed``."""
    mask = 2**64 - 1
    z = (seed + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _check_loss(loss, step: int) -> None:
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn(model, batch) must return a scalar tensor, got "
                        f"{type(loss).__name__} at step {step}")
    if loss.numel() != 1 or not loss.is_floating_point():
        raise TypeError(f"loss_fn(model, batch) must return a scalar floating-point tensor, got "
                        f"shape {tuple(loss.shape)} dtype {loss.dtype} at step {step}")
    if not loss.requires_grad:
        raise ValueError(f"loss_fn(model, batch) returned a loss that does not require grad at "
                         f"step {step}: it must be computed from the model's trainable "
                         f"parameters (not detached, not under torch.no_grad())")


def _checked_schedule(lr_schedule: Callable[[int], float]) -> Callable[[int], float]:
    """``lr_schedule`` with its value checked at every step: a finite real number ``>= 0``."""

    def factor(step: int) -> float:
        value = lr_schedule(step)
        try:
            return check_float("lr_schedule(step)", value, minimum=0.0)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} (at step {step})") from None

    return factor


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
    lr_schedule: Callable[[int], float] | None = None,
) -> TrainResult:
    """Train ``model`` with Adam for ``steps`` steps; return the loss history.

    ``sample_batch(generator)`` draws a batch from a generator seeded with ``seed``, and
    ``loss_fn(model, batch)`` returns a scalar loss, so the same seed and the same freshly
    initialised model give the same history, bit for bit — dropout included: inside the loop
    torch's global generator (CPU and CUDA) is seeded from ``seed`` too, in a fork that is undone
    on return, so the caller's global random state is the same afterwards as before. Gradients
    are clipped to ``clip_norm`` (``None`` to disable). ``progress=None`` shows a bar only in an
    interactive session (see :func:`quiet`). The model is left in ``eval()`` mode.

    ``lr_schedule(step)`` (optional) returns a factor for the 0-based step ``step``: that step
    uses the learning rate ``lr * lr_schedule(step)`` (through
    ``torch.optim.lr_scheduler.LambdaLR``; see :mod:`attention_course.schedules` for warmup and
    Vaswani et al.'s schedule). A factor must be a finite number ``>= 0``. ``None`` (default)
    keeps ``lr`` constant. The rate each step used is in ``TrainResult.learning_rates``.

    Arguments are checked before any step: ``steps >= 1``, ``lr`` finite and ``> 0``,
    ``clip_norm`` finite and ``> 0`` or ``None``, ``seed`` an int, ``progress`` a bool or
    ``None``; the model must have a trainable parameter.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"model ({type(model).__name__}) has no trainable parameter "
                         f"(none, or all with requires_grad=False): there is nothing to train")
    for name, fn, call in (("loss_fn", loss_fn, "loss_fn(model, batch)"),
                           ("sample_batch", sample_batch, "sample_batch(generator)")):
        if not callable(fn):
            raise TypeError(f"{name} must be a function called as {call}, got "
                            f"{type(fn).__name__} {fn!r}")
    check_int("steps", steps, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, include_minimum=False)
    check_int("seed", seed)
    if not _SEED_MIN <= seed <= _SEED_MAX:
        raise ValueError(f"seed must be in [-2**63, 2**64 - 1] (torch's seed range), got {seed}")
    seed, steps = int(seed), int(steps)  # NumPy integers too
    if clip_norm is not None:
        clip_norm = check_float("clip_norm", clip_norm, minimum=0.0, include_minimum=False)
    if progress is not None:
        check_bool("progress", progress)
    if lr_schedule is not None and not callable(lr_schedule):
        raise TypeError(f"lr_schedule must be a function step -> factor or None, got "
                        f"{type(lr_schedule).__name__} {lr_schedule!r}")

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = (None if lr_schedule is None else
                 torch.optim.lr_scheduler.LambdaLR(optimizer, _checked_schedule(lr_schedule)))
    result = TrainResult()
    show = (not quiet()) if progress is None else progress
    bar = tqdm(range(steps), disable=not show, desc="training", leave=False)
    start = time.perf_counter()
    model.train()
    cuda_devices = range(torch.cuda.device_count())  # empty without CUDA
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        torch.manual_seed(_global_seed(seed))  # dropout & co.: deterministic per seed
        for _ in bar:
            batch = sample_batch(generator)
            loss = loss_fn(model, batch)
            step = len(result.losses)
            _check_loss(loss, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            result.learning_rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            result.losses.append(loss.item())
            if show:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
