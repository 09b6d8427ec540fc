r"""The key–value cache of autoregressive decoding (Chapter 8), at the seam between
:meth:`~attention_course.multihead.MultiHeadAttention.project` and ``attend``.

A decoder that generates token ``t`` needs the keys and values of tokens ``0 … t``. Without a
cache it recomputes all of them at every step; with one it projects only the new token and
appends its key and value to those of the earlier steps. A cache is a plain value, ``(k, v)``
per attention layer, returned by one call and passed to the next — never hidden state inside a
module — so a step is a pure function ``(tokens, past) → (logits, present)``.

Causality needs no special case: the new queries are the *last* ``T`` positions of ``P + T``
keys, and the course's causal mask is aligned bottom-right (query ``i`` sees keys
``≤ P + i``), so ``is_causal=True`` is right with or without a cache.

Shape legend: ``B`` batch, ``H`` query heads, ``Hkv`` key/value heads (``H`` unless grouped),
``P`` cached positions, ``T`` new positions, ``Dh`` per-head size.
"""

from __future__ import annotations

import torch

from attention_course._checks import check_bool, check_tensor
from attention_course.multihead import MultiHeadAttention, split_heads

__all__ = ["project_with_cache"]

#: One layer's cache: keys and values ``(B, Hkv, P, Dh)`` each.
LayerCache = tuple[torch.Tensor, torch.Tensor]


def _check_past(past, attn: MultiHeadAttention, query: torch.Tensor) -> None:
    if not (isinstance(past, tuple) and len(past) == 2):
        raise TypeError(f"past must be a (keys, values) tuple of one layer's cache or None, "
                        f"got {type(past).__name__}")
    B, Hkv, Dh = query.shape[0], attn.num_kv_heads, attn.head_dim
    for name, x in zip(("past keys", "past values"), past, strict=True):
        check_tensor(name, x, ndim=4, floating=True)
        if x.shape[0] != B or x.shape[1] != Hkv or x.shape[3] != Dh:
            raise ValueError(f"{name} must have shape (B={B}, Hkv={Hkv}, P, Dh={Dh}) as a "
                             f"previous step returned them, got {tuple(x.shape)}")
    if past[0].shape != past[1].shape:
        raise ValueError(f"past keys {tuple(past[0].shape)} and values {tuple(past[1].shape)} "
                         f"must have the same shape")


def project_with_cache(attn: MultiHeadAttention, query: torch.Tensor,
                       key: torch.Tensor, value: torch.Tensor,
                       past: LayerCache | None = None, *, static: bool = False,
                       checked: bool = False):
    """:meth:`MultiHeadAttention.project` with a cache → ``(q, k, v, present)``.

    - ``past=None``: plain projection; ``present = (k, v)`` starts a cache.
    - ``static=False`` (a decoder's self-attention): the new keys and values
      are appended to ``past`` on the time axis, ``k, v`` ``(B, Hkv, P + T,
      Dh)``; ``present`` is the grown cache.
    - ``static=True`` (cross-attention to a fixed encoder memory): ``past``
      holds the memory's keys and values, reused; only ``query`` is
      projected (``key``, ``value`` are ignored); ``present`` is ``past``.

    ``query`` ``(B, T, D)``; ``q`` is ``(B, H, T, Dh)``. ``checked=True``: the
    caller already checked ``query``, ``key``, ``value``; ``past`` is always
    checked.
    """
    check_bool("static", static)
    if past is None:
        q, k, v = attn.project(query, key, value, checked=checked)
        return q, k, v, (k, v)
    check_tensor("query", query, ndim=3, floating=True)
    _check_past(past, attn, query)
    if static:
        q = split_heads(attn.W_Q(query), attn.num_heads)  # (B, H, T, Dh)
        return q, past[0], past[1], past
    q, k, v = attn.project(query, key, value, checked=checked)  # (B, ·, T, Dh)
    k = torch.cat([past[0], k], dim=2)  # (B, Hkv, P + T, Dh)
    v = torch.cat([past[1], v], dim=2)
    return q, k, v, (k, v)
