"""Gradient (activation) checkpointing: trade recomputation for memory.

Training stores, for the backward pass, every intermediate tensor of every layer: with the
reference attention kernel that includes each layer's ``(B, H, L, L)`` weights. A
*checkpointed* layer stores only its input; its forward pass is run again during the backward
pass to rebuild the intermediates it needs, one layer at a time. Memory for activations drops
from ``N`` layers' worth to one layer's worth (plus the ``N`` inputs), at the price of a second
forward pass — about a third more compute (forward ≈ 1 unit, backward ≈ 2).

:func:`run_layers` is the whole technique, over ``torch.utils.checkpoint.checkpoint`` with
``use_reentrant=False`` (PyTorch's recommended implementation: it works with inputs that do not
require gradients and with ``torch.autograd.grad``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from attention_course._checks import check_bool, check_tensor

__all__ = ["run_layers"]


def run_layers(layers: Iterable[nn.Module], x: torch.Tensor, *,
               checkpoint: bool = False) -> torch.Tensor:
    """Apply ``layers`` in order to ``x`` ``(B, L, D)`` → ``(B, L, D)``.

    With ``checkpoint=True`` each layer runs under
    ``torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)``:
    autograd keeps only the layer's input and recomputes the layer during
    the backward pass. Outputs and gradients are the same numbers as without
    checkpointing when the layers are deterministic (torch replays dropout
    with the same random state).
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    check_bool("checkpoint", checkpoint)
    for layer in layers:
        if not callable(layer):
            raise TypeError(f"layers must hold modules or functions, got "
                            f"{type(layer).__name__}")
        if checkpoint:  # keep x only; recompute layer(x) when backward needs it
            x = _checkpoint(layer, x, use_reentrant=False)
        else:
            x = layer(x)
    return x
