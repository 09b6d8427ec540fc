"""Attention kernels: interchangeable functions that compute scaled dot-product attention.

A *kernel* is any function with the reference signature

.. code-block:: python

    kernel(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0)
        -> (output (..., Lq, Ev), weights (..., Lq, Lk) or None)

and the course's semantics: boolean ``mask`` with ``True`` = may attend, ``is_causal`` aligned
bottom-right, zeros for a query with no allowed key. :class:`~attention_course.multihead.
MultiHeadAttention` takes one as ``attention_fn`` — the single seam through which the reference
math, torch's fused kernel, Chapter 7's memory-efficient kernel or Chapter 8's cached decoding
reach every layer and model. Kernels receive arguments their caller has already checked (use
:func:`~attention_course.attention.scaled_dot_product_attention` or :func:`fused_attention`
for a checked call).

- :func:`~attention_course.attention.reference_attention` — explicit math; returns the weights.
- :func:`torch_fused_attention` — ``torch.nn.functional.scaled_dot_product_attention``; returns
  ``None`` for the weights (the fused kernel never materialises them).

:func:`select_kernel` is the one place that chooses between them.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from attention_course._checks import check_bool
from attention_course.attention import (
    _zero_fully_masked_rows,
    check_attention_inputs,
    reference_attention,
)
from attention_course.masks import _attention_mask

__all__ = ["AttentionFn", "reference_attention", "torch_fused_attention", "fused_attention",
           "select_kernel", "check_attention_fn", "EXACT_KERNELS"]


class AttentionFn(Protocol):
    """The kernel signature (see the module docstring)."""

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 mask: torch.Tensor | None = None, *, is_causal: bool = False,
                 scale: float | None = None, dropout_p: float = 0.0,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def torch_fused_attention(query, key, value, mask=None, *, is_causal=False, scale=None,
                          dropout_p=0.0):
    """torch's fused ``scaled_dot_product_attention`` with the course's semantics → ``(output,
    None)``.

    Without a mask, ``is_causal`` uses torch's own bottom-right causal bias
    (``causal_lower_right``), which runs torch's causal kernels; otherwise the causal and given
    masks are combined into one boolean mask. Queries with no allowed key get zeros.
    """
    Lq, Lk = query.shape[-2], key.shape[-2]
    if mask is None and is_causal and 0 < Lq <= Lk:  # every query sees >= 1 key
        # Imported here: torch.nn.attention.bias pulls in torch._dynamo (~1 s at import).
        from torch.nn.attention.bias import causal_lower_right

        bias = causal_lower_right(Lq, Lk)
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias,
                                              dropout_p=dropout_p, scale=scale), None
    mask = _attention_mask(mask, Lq, Lk, is_causal=is_causal, device=query.device)
    if Lk == 0:  # torch's kernels refuse an empty key set; no key means a zero output
        return value.new_zeros(*query.shape[:-1], value.shape[-1]), None
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                            dropout_p=dropout_p, scale=scale)
    return _zero_fully_masked_rows(output, mask), None  # (..., Lq, Ev)


def fused_attention(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0):
    """:func:`torch_fused_attention` with its arguments checked first (a public entry point)."""
    check_attention_inputs(query, key, value, mask, is_causal=is_causal, scale=scale,
                           dropout_p=dropout_p)
    return torch_fused_attention(query, key, value, mask, is_causal=is_causal, scale=scale,
                                 dropout_p=dropout_p)


def check_attention_fn(attention_fn) -> None:
    """A layer's or model's ``attention_fn`` must be a kernel function or ``None``."""
    if attention_fn is not None and not callable(attention_fn):
        raise TypeError(f"attention_fn must be a kernel function or None, got "
                        f"{type(attention_fn).__name__} {attention_fn!r}")


def select_kernel(attention_fn: AttentionFn | None, need_weights: bool) -> AttentionFn:
    """The kernel a layer runs: ``attention_fn`` if one was given; otherwise the reference
    when the caller wants the weights, torch's fused kernel when it does not."""
    check_attention_fn(attention_fn)
    check_bool("need_weights", need_weights)
    if attention_fn is not None:
        return attention_fn
    return reference_attention if need_weights else torch_fused_attention


#: Kernels that compute exactly the reference's output (up to rounding); the conformance test
#: (``tests/test_kernels.py``) runs every one of them against the float64 reference.
EXACT_KERNELS: dict[str, AttentionFn] = {
    "reference": reference_attention,
    "torch_fused": torch_fused_attention,
}
