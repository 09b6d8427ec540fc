"""Learning-rate schedules: functions ``step -> factor`` for ``train``.

A schedule is a plain function of the 0-based index of the optimiser step
about to be taken (what ``torch.optim.lr_scheduler.LambdaLR`` passes);
:func:`attention_course.train.train` multiplies its ``lr`` by the factor at
every step (``lr_schedule=``). Both schedules here rise linearly from almost
zero (*warmup*), so the first updates of a fresh model are small.

- :func:`linear_warmup`: ``min(1, (step + 1) / warmup)``, then constant.
- :func:`noam_schedule`: Vaswani et al.'s (2017) schedule,
  ``d_model^-0.5 · min(n^-0.5, n · warmup^-1.5)`` with ``n = step + 1``: a
  linear rise for ``warmup`` steps to the peak ``(d_model · warmup)^-0.5``,
  then a decay like ``1/sqrt(n)``. With ``train(..., lr=1.0)`` the learning
  rate is the paper's ``lrate`` itself.
"""

from __future__ import annotations

from collections.abc import Callable

from attention_course._checks import check_int

__all__ = ["linear_warmup", "noam_schedule"]


def _check_step(step) -> int:
    check_int("step", step, minimum=0)
    return int(step)


def linear_warmup(steps: int) -> Callable[[int], float]:
    """A factor rising linearly over ``steps`` optimiser steps, then 1.

    ``factor(step) = min(1, (step + 1) / steps)`` for the 0-based ``step``:
    ``1/steps`` at the first update, exactly 1 from step ``steps - 1`` on.
    ``steps >= 1`` (``1``: no warmup).
    """
    check_int("steps", steps, minimum=1)
    warmup = int(steps)

    def factor(step: int) -> float:
        return min(1.0, (_check_step(step) + 1) / warmup)

    return factor


def noam_schedule(d_model: int, warmup: int) -> Callable[[int], float]:
    """Vaswani et al.'s rate, ``d^-0.5 · min(n^-0.5, n · warmup^-1.5)``.

    ``n = step + 1`` is the 1-based step number (the paper counts from 1).
    The rate grows linearly for ``warmup`` steps, peaks at ``n = warmup``
    with the value ``(d_model · warmup)^-0.5``, then decays like
    ``n^-0.5``. The paper used ``d_model = 512``, ``warmup = 4000`` (peak
    ``7.0e-4``). Pass it to ``train`` with ``lr=1.0`` to get these rates
    exactly, or with another ``lr`` to scale them. ``d_model >= 1``,
    ``warmup >= 1``.
    """
    check_int("d_model", d_model, minimum=1)
    check_int("warmup", warmup, minimum=1)
    scale, warmup = float(d_model) ** -0.5, int(warmup)

    def factor(step: int) -> float:
        n = _check_step(step) + 1  # the paper's step number, from 1
        return scale * min(n ** -0.5, n * warmup ** -1.5)

    return factor
