r"""Attention as a soft lookup: compatibility scores, the masked softmax, and attention itself.

Shape legend (as in torch's docs):

- ``...`` — any number of leading batch dimensions (``B``, or ``B, H``), equal for all inputs
- ``Lq`` — number of queries, ``Lk`` — number of keys (= number of values)
- ``E`` — query/key feature size (``d_k`` in the papers), ``Ev`` — value feature size (``d_v``)

Every mask follows the course convention: boolean, ``True`` = may attend
(see :mod:`attention_course.masks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_int,
    check_like_module,
    check_mask,
    check_same_device,
    check_tensor,
)
from attention_course.masks import _attention_mask

__all__ = [
    "dot_product_score",
    "scaled_dot_product_score",
    "additive_score",
    "AdditiveScore",
    "masked_softmax",
    "zero_fully_masked_rows",
    "attention",
    "scaled_dot_product_attention",
    "reference_attention",
    "check_attention_inputs",
]


def _check_query_key(query, key) -> None:
    check_tensor("query", query, min_ndim=2, floating=True)
    check_tensor("key", key, min_ndim=2, floating=True)
    if key.dtype != query.dtype:
        raise TypeError(f"key has dtype {key.dtype} but query has dtype {query.dtype}")
    if key.device != query.device:
        raise ValueError(f"key is on {key.device} but query is on {query.device}")
    if key.shape[:-2] != query.shape[:-2]:
        raise ValueError(
            f"query {tuple(query.shape)} and key {tuple(key.shape)} must share their leading "
            f"(batch) dimensions: expected key of shape (..., Lk, E) with ... = "
            f"{tuple(query.shape[:-2])}"
        )


def _check_same_feature_size(query, key) -> None:
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(
            f"query has feature size E={query.shape[-1]} but key has {key.shape[-1]}; "
            f"dot-product scores need query (..., Lq, E) and key (..., Lk, E)"
        )


def dot_product_score(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    r"""Dot-product compatibility :math:`f(q, k) = q^\top k`.

    Shapes: ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)`` → scores ``(..., Lq, Lk)``.
    """
    _check_query_key(query, key)
    _check_same_feature_size(query, key)
    return query @ key.transpose(-2, -1)  # (..., Lq, E) @ (..., E, Lk) -> (..., Lq, Lk)


def scaled_dot_product_score(
    query: torch.Tensor, key: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    r"""Scaled dot product :math:`f(q, k) = q^\top k / \sqrt{d_k}` (or ``* scale`` if given).

    Shapes: ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)`` → scores ``(..., Lq, Lk)``.

    Both sides are multiplied by :math:`\sqrt{\text{scale}}` *before* the product (as torch
    does): the same scores, but float16 inputs whose raw dot products exceed 65504 do not
    overflow.
    """
    _check_query_key(query, key)
    _check_same_feature_size(query, key)
    return _scaled_scores(query, key, _resolve_scale(scale, query))


def _scaled_scores(query: torch.Tensor, key: torch.Tensor, scale: float) -> torch.Tensor:
    root = math.sqrt(scale)
    return (query * root) @ (key * root).transpose(-2, -1)  # (..., Lq, Lk)


def _resolve_scale(scale, query) -> float:
    if scale is None:
        return 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    return check_float("scale", scale, minimum=0.0, include_minimum=False)


def additive_score(
    query: torch.Tensor,
    key: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    v: torch.Tensor,
) -> torch.Tensor:
    r"""Additive (Bahdanau) compatibility :math:`f(q, k) = v^\top \tanh(W_q q + W_k k)`.

    Shapes: ``query`` ``(..., Lq, Dq)``, ``key`` ``(..., Lk, Dk)``, ``W_q`` ``(A, Dq)``,
    ``W_k`` ``(A, Dk)``, ``v`` ``(A,)`` → scores ``(..., Lq, Lk)``. ``A`` is the hidden
    ("alignment") size. Weight matrices use the ``nn.Linear`` layout ``(out, in)``.
    Queries and keys may have different sizes, unlike dot-product scores.
    """
    _check_query_key(query, key)
    check_tensor("W_q", W_q, ndim=2, dtype=query.dtype)
    check_tensor("W_k", W_k, ndim=2, dtype=query.dtype)
    check_tensor("v", v, ndim=1, dtype=query.dtype)
    for name, w in (("W_q", W_q), ("W_k", W_k), ("v", v)):
        check_same_device(name, w, "query", query.device)
    if W_q.shape[1] != query.shape[-1]:
        raise ValueError(f"W_q must have shape (A, Dq={query.shape[-1]}), got {tuple(W_q.shape)}")
    if W_k.shape[1] != key.shape[-1]:
        raise ValueError(f"W_k must have shape (A, Dk={key.shape[-1]}), got {tuple(W_k.shape)}")
    if not W_q.shape[0] == W_k.shape[0] == v.shape[0]:
        raise ValueError(
            f"W_q {tuple(W_q.shape)}, W_k {tuple(W_k.shape)} and v {tuple(v.shape)} must share "
            f"the hidden size A in their first dimension"
        )
    return _additive_from_projections(query @ W_q.T, key @ W_k.T, v)  # (..., Lq, Lk)


def _additive_from_projections(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``q`` ``(..., Lq, A)`` = projected queries, ``k`` ``(..., Lk, A)`` = projected keys."""
    hidden = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (..., Lq, 1, A) + (..., 1, Lk, A)
    return hidden @ v  # (..., Lq, Lk, A) @ (A,) -> (..., Lq, Lk)


class AdditiveScore(nn.Module):
    """Learnable additive score: a thin module over :func:`additive_score`.

    ``AdditiveScore(query_dim, key_dim, hidden_dim)(query, key)`` → ``(..., Lq, Lk)``.
    Pass it as ``score=`` to :func:`attention` (Chapter 2) or to a Bahdanau decoder (Chapter 1).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim),
                            ("hidden_dim", hidden_dim)):
            check_int(name, value, minimum=1)
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        self._check_inputs(query, key)
        return additive_score(query, key, self.W_q.weight, self.W_k.weight,
                              self.v.weight[0])

    def _check_inputs(self, query, key) -> None:
        """``query`` ``(..., Lq, query_dim)`` and ``key`` ``(..., Lk, key_dim)`` with the module's
        dtype and device (named as the caller passed them, not as weights)."""
        _check_query_key(query, key)
        for name, x, size in (("query", query, self.W_q.in_features),
                              ("key", key, self.W_k.in_features)):
            if x.shape[-1] != size:
                raise ValueError(f"{name} must have shape (..., L, {size}) ({name}_dim={size}), "
                                 f"got {tuple(x.shape)}")
        check_like_module("query", query, self.W_q.weight)

    def with_keys(self, key: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The same score for many queries against fixed keys: ``W_k k`` is computed once.

        A decoder scores a new query against the same encoder outputs at every step; the
        returned ``score(query, key)`` must be called with this very ``key`` tensor.
        """
        check_tensor("key", key, min_ndim=2, floating=True)
        if key.shape[-1] != self.W_k.in_features:
            raise ValueError(f"key must have shape (..., Lk, {self.W_k.in_features}) "
                             f"(key_dim={self.W_k.in_features}), got {tuple(key.shape)}")
        check_like_module("key", key, self.W_k.weight)
        projected = self.W_k(key)  # (..., Lk, A)

        def score(query: torch.Tensor, key_again: torch.Tensor) -> torch.Tensor:
            if key_again is not key:
                raise ValueError("score from with_keys(key) was called with a different key")
            _check_query_key(query, key)
            if query.shape[-1] != self.W_q.in_features:
                raise ValueError(f"query must have shape (..., Lq, {self.W_q.in_features}) "
                                 f"(query_dim={self.W_q.in_features}), got {tuple(query.shape)}")
            return _additive_from_projections(self.W_q(query), projected, self.v.weight[0])

        return score


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1
) -> torch.Tensor:
    """Softmax over keys that ignores masked keys; a row with no allowed key gives all zeros.

    Shapes: ``scores`` ``(..., Lq, Lk)``; ``mask`` boolean, broadcastable to the scores
    (``True`` = may attend); returns weights of the scores' shape.

    Masked scores become ``-inf`` *before* the softmax, so they get exactly zero weight and no
    gradient. A fully masked row would be ``softmax([-inf, ..., -inf]) = NaN``; instead its scores
    are replaced by zeros (finite) and its weights are set to zero afterwards
    (:func:`zero_fully_masked_rows`), so neither the output nor the gradient contains NaN.
    """
    check_tensor("scores", scores, min_ndim=1, floating=True)
    check_int("dim", dim)
    if mask is None:
        if not -scores.dim() <= dim < scores.dim():
            raise ValueError(f"dim={dim} is out of range for scores with {scores.dim()} "
                             f"dimensions")
        return torch.softmax(scores, dim=dim)
    if dim not in (-1, scores.dim() - 1):
        raise ValueError(f"masked_softmax normalises over the last (key) dimension, got dim={dim}")
    check_mask(mask, scores.shape, device=scores.device, device_of="scores")
    return _masked_softmax(scores, mask)


def _masked_softmax(scores: torch.Tensor,
                    mask: torch.Tensor | None) -> torch.Tensor:
    """:func:`masked_softmax` on checked arguments: the computation itself."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    any_allowed = mask.any(dim=-1, keepdim=True)  # (..., Lq, 1)
    scores = scores.masked_fill(~mask, float("-inf"))  # blocked keys: -inf
    scores = scores.masked_fill(~any_allowed, 0.0)  # rows with no key: finite
    weights = torch.softmax(scores, dim=-1)  # (..., Lq, Lk)
    return _zero_fully_masked_rows(weights, mask)  # rows with no key: zeros


def zero_fully_masked_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The course's rule for a query whose keys are all masked: zeros, never NaN.

    ``x`` ``(..., Lq, F)`` (weights or an output), ``mask`` boolean ``(..., Lq or 1, Lk)``
    broadcastable to ``x``'s leading dimensions (it is checked like an attention mask for scores
    ``(..., Lq, Lk)``). Every attention kernel of the course applies it, so they all agree on
    such rows.
    """
    check_tensor("x", x, min_ndim=1)
    if mask is not None:
        check_tensor("mask", mask, min_ndim=1)
        check_mask(mask, torch.Size((*x.shape[:-1], mask.shape[-1])), device=x.device,
                   device_of="x")
    return _zero_fully_masked_rows(x, mask)


def _zero_fully_masked_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x
    return x.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = scaled_dot_product_score,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Soft lookup with any compatibility function: :math:`\sum_j \alpha_{ij} v_j`.

    Shapes: ``query`` ``(..., Lq, Dq)``, ``key`` ``(..., Lk, Dk)``, ``value`` ``(..., Lk, Ev)``,
    ``mask`` broadcastable to ``(..., Lq, Lk)``. ``score(query, key)`` must return
    ``(..., Lq, Lk)``. Returns ``(output (..., Lq, Ev), weights (..., Lq, Lk))``.
    """
    _check_query_key(query, key)
    _check_value(value, key)
    if not callable(score):
        raise TypeError(f"score must be a function score(query, key) -> (..., Lq, Lk), got "
                        f"{type(score).__name__} {score!r}")
    expected = (*query.shape[:-1], key.shape[-2])
    if mask is not None:
        check_mask(mask, torch.Size(expected), device=query.device)
    scores = score(query, key)  # (..., Lq, Lk)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != expected:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(
            f"score(query, key) must return shape (..., Lq, Lk) = {expected}, got {got}"
        )
    if scores.dtype != value.dtype:
        raise TypeError(f"score(query, key) returned dtype {scores.dtype}; expected the inputs' "
                        f"dtype {value.dtype}")
    weights = _masked_softmax(scores, mask)  # (..., Lq, Lk)
    return weights @ value, weights  # (..., Lq, Ev)


def _check_value(value, key) -> None:
    check_tensor("value", value, min_ndim=2, floating=True)
    if value.dtype != key.dtype:
        raise TypeError(f"value has dtype {value.dtype} but key has dtype {key.dtype}")
    check_same_device("value", value, "key", key.device)
    if value.shape[:-1] != key.shape[:-1]:
        raise ValueError(
            f"value must have shape (..., Lk, Ev) matching key {tuple(key.shape)} in all but "
            f"the last dimension, got {tuple(value.shape)}"
        )


def check_attention_inputs(
    query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0
) -> None:
    """Validate the arguments of an attention kernel call (see
    :func:`scaled_dot_product_attention`); raise ``TypeError``/``ValueError`` naming the
    argument."""
    _check_query_key(query, key)
    _check_same_feature_size(query, key)
    _check_value(value, key)
    check_bool("is_causal", is_causal)
    if scale is not None:
        check_float("scale", scale, minimum=0.0, include_minimum=False)
    check_float("dropout_p", dropout_p, minimum=0.0, maximum=1.0, include_maximum=False)
    if mask is not None:
        check_mask(mask, torch.Size((*query.shape[:-1], key.shape[-2])), device=query.device)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scaled dot-product attention, written out: :math:`\mathrm{softmax}(QK^\top/\sqrt{d_k})V`.

    Shapes: ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)``, ``value`` ``(..., Lk, Ev)``;
    ``mask`` boolean broadcastable to ``(..., Lq, Lk)``, ``True`` = may attend.
    Returns ``(output (..., Lq, Ev), weights (..., Lq, Lk))``.

    - ``is_causal`` adds :func:`~attention_course.masks.causal_mask` aligned **bottom-right**
      (the last query sees every key; torch's ``causal_lower_right``), combined with ``mask``
      by logical AND.
    - ``scale`` defaults to :math:`1/\sqrt{E}`.
    - A query whose keys are all masked gets zero weights and a zero output (torch's SDPA
      documents no such guarantee).
    - ``dropout_p > 0`` drops weights (then rescales by ``1/(1-p)``) before they meet the
      values; the returned weights are the ones actually used.

    Equivalent to ``torch.nn.functional.scaled_dot_product_attention(query, key, value,
    attn_mask=mask, scale=scale)`` for rows with at least one allowed key; tests prove it.
    The arguments are checked here; the computation is :func:`reference_attention`.
    """
    check_attention_inputs(query, key, value, mask, is_causal=is_causal, scale=scale,
                           dropout_p=dropout_p)
    return reference_attention(query, key, value, mask, is_causal=is_causal, scale=scale,
                               dropout_p=dropout_p)


def reference_attention(query, key, value, mask=None, *, is_causal=False,
                        scale=None, dropout_p=0.0):
    """The reference attention kernel: the explicit math of
    :func:`scaled_dot_product_attention`, on arguments already checked (by it,
    or by :class:`MultiHeadAttention`).

    float16/bfloat16 inputs get their scores and softmax in float32 (as torch's
    kernels accumulate), so scores beyond float16's range (65504) do not
    overflow to ``inf``/NaN; the weights come back in the inputs' dtype."""
    Lq, Lk = query.shape[-2], key.shape[-2]
    low_precision = query.dtype in (torch.float16, torch.bfloat16)
    q, k = (query.float(), key.float()) if low_precision else (query, key)
    scores = _scaled_scores(q, k, _resolve_scale(scale, query))  # (..., Lq, Lk)
    mask = _attention_mask(mask, Lq, Lk, is_causal=is_causal,
                           device=query.device)
    weights = _masked_softmax(scores, mask).to(query.dtype)  # (..., Lq, Lk)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return weights @ value, weights  # (..., Lq, Ev), (..., Lq, Lk)
