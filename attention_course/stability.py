"""Numerical failures of attention code, written the naive way on purpose (Chapter 8).

Each function here is the *broken* version of something the course does safely elsewhere; the
notebook reproduces the failure with it, then shows the fix:

- :func:`naive_softmax` — ``exp(x) / sum(exp(x))`` without subtracting the maximum: ``exp``
  overflows to ``inf`` (above 88.7 in float32, 11.1 in float16) and ``inf / inf`` is NaN.
  The fix: ``torch.softmax`` / :func:`~attention_course.attention.masked_softmax`.
- :func:`fill_masked_softmax` — masking by *filling* blocked scores with a constant: ``-inf``
  turns a fully masked row into NaN, ``-1e9`` into uniform weights over keys it must not see,
  and ``-1e9`` is ``-inf`` in float16. The fix: ``torch.finfo(dtype).min`` as the constant, or
  the course's masked softmax, which gives such a row zero weights.
- :func:`naive_scaled_scores` — ``(Q Kᵀ) · scale``: the raw dot products overflow float16
  (max 65504) before the scale brings them back. The fix: scale first, or compute in float32
  (:func:`~attention_course.attention.reference_attention` does both).

and one fix that is not elsewhere in the course:

- :func:`qk_norm` — LayerNorm (without parameters) on queries and keys before the product:
  logits stay bounded however large ``W_Q`` and ``W_K`` grow, so attention cannot collapse
  onto one key by logit growth alone (Dehghani et al. 2023, "Scaling Vision Transformers to
  22 billion parameters"; the models add a learned gain, which we leave out).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attention_course._checks import check_float, check_mask, check_tensor

__all__ = ["naive_softmax", "fill_masked_softmax", "naive_scaled_scores", "qk_norm"]


def naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / exp(x).sum(dim)``: the textbook formula, *without* the
    max subtraction.

    NaN as soon as one ``exp`` overflows; ``torch.softmax`` computes
    ``exp(x - max x)`` instead: the same numbers, and no overflow.
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def fill_masked_softmax(scores: torch.Tensor, mask: torch.Tensor,
                        fill: float) -> torch.Tensor:
    """Softmax over the last dimension after replacing blocked scores (``mask`` False) by
    ``fill`` *converted to the scores' dtype* (as an additive mask built in that dtype is).

    ``scores`` ``(..., Lq, Lk)``, ``mask`` boolean broadcastable to it (``True`` = may attend).
    With ``fill=-inf`` a fully masked row is NaN; with a large finite ``fill`` it is uniform;
    ``-1e9`` becomes ``-inf`` in float16 (whose most negative finite number is -65504).
    """
    check_tensor("scores", scores, min_ndim=1, floating=True)
    check_mask(mask, scores.shape, device=scores.device, device_of="scores")
    fill_value = torch.tensor(float(fill), dtype=scores.dtype)  # -1e9 -> -inf in float16
    return torch.softmax(torch.where(mask, scores, fill_value), dim=-1)


def naive_scaled_scores(query: torch.Tensor, key: torch.Tensor,
                        scale: float | None = None) -> torch.Tensor:
    """``(query @ keyᵀ) * scale`` in the inputs' dtype: the product first, the scale after.

    ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)`` → ``(..., Lq, Lk)``; ``scale``
    defaults to ``1/√E``. In float16 a raw dot product above 65504 is ``inf`` before the scale
    is applied.
    """
    check_tensor("query", query, min_ndim=2, floating=True)
    check_tensor("key", key, min_ndim=2, dtype=query.dtype)
    scale = (1.0 / math.sqrt(query.shape[-1]) if scale is None
             else check_float("scale", scale, minimum=0.0, include_minimum=False))
    return (query @ key.transpose(-2, -1)) * scale  # (..., Lq, Lk)


def qk_norm(query: torch.Tensor, key: torch.Tensor,
            eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """QK-norm: every query and key vector normalised to mean 0 and
    variance 1 over its features (a LayerNorm without gain or bias), before
    the dot product.

    ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)`` → the same shapes.
    Afterwards ``|q · k| <= E`` (Cauchy–Schwarz, ``|q| = |k| = √E``), so the
    scaled logits are at most ``√E`` in size, whatever the scale of the
    projections.
    """
    check_tensor("query", query, min_ndim=1, floating=True)
    check_tensor("key", key, min_ndim=1, dtype=query.dtype)
    E = query.shape[-1]
    if key.shape[-1] != E:
        raise ValueError(f"query has feature size E={E} but key has "
                         f"{key.shape[-1]}; expected (..., Lq, E) and "
                         f"(..., Lk, E)")
    eps = check_float("eps", eps, minimum=0.0)
    return (F.layer_norm(query, (E,), eps=eps),  # (..., Lq, E)
            F.layer_norm(key, (E,), eps=eps))  # (..., Lk, E)
