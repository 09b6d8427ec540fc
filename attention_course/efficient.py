r"""Attention in less memory: exact tiled attention, sliding-window attention, linear attention.

Shapes follow :mod:`attention_course.attention`: ``query`` ``(..., Lq, E)``, ``key``
``(..., Lk, E)``, ``value`` ``(..., Lk, Ev)``, boolean masks broadcastable to ``(..., Lq, Lk)``
with ``True`` = may attend, ``is_causal`` aligned bottom-right. Every function returns the
output ``(..., Lq, Ev)`` only.

- :func:`memory_efficient_attention` — *exact* attention tiled over queries and keys with an
  online softmax (Rabe & Staats, 2021; Dao et al., 2022). Forward and backward need O(n) extra
  memory: a custom autograd function saves only the inputs, the output and one logsumexp per
  query, and recomputes each block's probabilities in backward.
  :func:`memory_efficient_kernel` is the same computation with the kernel signature of
  :mod:`attention_course.kernels` (hand it to ``MultiHeadAttention(attention_fn=...)``).
- :func:`local_attention` — softmax attention restricted to a sliding window
  (:func:`~attention_course.masks.local_mask`), computed block by block in O(n·w) memory.
- :func:`linear_attention` / :func:`linear_attention_recurrent` — kernelised attention
  (Katharopoulos et al., 2020) with a positive feature map (``elu + 1`` by default): O(n·d²)
  time, and a causal form both as chunked cumulative sums and as an RNN recurrence.
- :func:`block_sparse_attention` — softmax attention under a sparse mask, skipping the blocks
  the mask rules out.

Kernel adapters (hand them to ``MultiHeadAttention`` / ``GPT`` as ``attention_fn``):
:func:`memory_efficient_kernel`, :func:`local_kernel`, :func:`linear_kernel`,
:func:`block_sparse_kernel` — each refuses (``ValueError`` naming the argument) what the
function under it cannot honour: a ``mask``, a ``scale``, dropout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from attention_course._checks import check_bool, check_float, check_int, check_tensor
from attention_course.attention import (
    _check_query_key,
    _check_value,
    _masked_softmax,
    _resolve_scale,
    _scaled_scores,
    check_attention_inputs,
)
from attention_course.masks import _attention_mask

__all__ = ["memory_efficient_attention", "memory_efficient_kernel", "local_attention",
           "linear_attention", "linear_attention_recurrent", "elu_feature_map"]


# ------------------------------------------------------------ memory-efficient exact attention

def _block_allowed(mask, is_causal, qs, qe, ks, ke, Lq, Lk, device):
    """Boolean ``(..., qe-qs or 1, ke-ks or 1)`` of allowed pairs in one block, or ``None``."""
    allowed = None
    if mask is not None:
        rows = slice(None) if mask.shape[-2] == 1 else slice(qs, qe)
        cols = slice(None) if mask.shape[-1] == 1 else slice(ks, ke)
        allowed = mask[..., rows, cols]
    if is_causal and ke - 1 > qs + (Lk - Lq):  # some pair in the block lies above the diagonal
        i = torch.arange(qs, qe, device=device)[:, None]
        j = torch.arange(ks, ke, device=device)[None, :]
        causal = j <= i + (Lk - Lq)  # bottom-right
        allowed = causal if allowed is None else allowed & causal
    return allowed


def _key_end(is_causal, qe, Lq, Lk):
    """One past the last key any query in ``[qs, qe)`` may see (causal blocks beyond it are
    skipped: they are entirely masked)."""
    if not is_causal:
        return Lk
    return max(0, min(Lk, qe + (Lk - Lq)))


def _compute_dtype(x):
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _forward(q, k, v, mask, is_causal, scale, bq, bk):
    """Online-softmax forward on checked arguments → ``(output, logsumexp)`` in the compute
    dtype; ``logsumexp`` ``(..., Lq, 1)`` is 0 for a query with no allowed key."""
    Lq, Lk = q.shape[-2], k.shape[-2]
    dtype = _compute_dtype(q)
    root = math.sqrt(scale)
    out = q.new_zeros(*q.shape[:-1], v.shape[-1], dtype=dtype)  # (..., Lq, Ev)
    lse = q.new_zeros(*q.shape[:-1], 1, dtype=dtype)  # (..., Lq, 1)
    for qs in range(0, Lq, bq):
        qe = min(qs + bq, Lq)
        qb = q[..., qs:qe, :].to(dtype) * root  # (..., bq, E)
        m = torch.full((*qb.shape[:-1], 1), -torch.inf, dtype=dtype, device=q.device)
        l = torch.zeros_like(m)  # noqa: E741 — running sum of exp(s - m)
        acc = torch.zeros(*qb.shape[:-1], v.shape[-1], dtype=dtype, device=q.device)
        for ks in range(0, _key_end(is_causal, qe, Lq, Lk), bk):
            ke = min(ks + bk, Lk)
            s = qb @ (k[..., ks:ke, :].to(dtype) * root).transpose(-2, -1)  # (..., bq, bk)
            allowed = _block_allowed(mask, is_causal, qs, qe, ks, ke, Lq, Lk, q.device)
            if allowed is not None:
                s = s.masked_fill(~allowed, -torch.inf)
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            m_safe = m_new.masked_fill(m_new == -torch.inf, 0.0)  # rows with no key yet
            p = torch.exp(s - m_safe)  # masked scores give exp(-inf) = 0
            alpha = torch.exp(m - m_safe)  # rescales what was summed under the old maximum
            l = l * alpha + p.sum(dim=-1, keepdim=True)  # noqa: E741
            acc = acc * alpha + p @ v[..., ks:ke, :].to(dtype)
            m = m_new
        empty = l == 0  # no allowed key: output 0, logsumexp 0 (never NaN)
        out[..., qs:qe, :] = acc / l.masked_fill(empty, 1.0)
        lse[..., qs:qe, :] = (m + torch.log(l)).masked_fill(empty, 0.0)
    return out, lse


def _backward(grad_out, q, k, v, out, lse, mask, is_causal, scale, bq, bk, needs):
    """FlashAttention-style backward: recompute each block's probabilities from ``lse``;
    ``dS = P * (dP - rowsum(dO * O))``."""
    Lq, Lk = q.shape[-2], k.shape[-2]
    dtype = _compute_dtype(q)
    root = math.sqrt(scale)
    grad_out = grad_out.to(dtype)
    delta = (grad_out * out).sum(dim=-1, keepdim=True)  # (..., Lq, 1)
    dq = torch.zeros(q.shape, dtype=dtype, device=q.device) if needs[0] else None
    dk = torch.zeros(k.shape, dtype=dtype, device=q.device) if needs[1] else None
    dv = torch.zeros(v.shape, dtype=dtype, device=q.device) if needs[2] else None
    for qs in range(0, Lq, bq):
        qe = min(qs + bq, Lq)
        qb = q[..., qs:qe, :].to(dtype) * root
        dob, lseb, db = grad_out[..., qs:qe, :], lse[..., qs:qe, :], delta[..., qs:qe, :]
        for ks in range(0, _key_end(is_causal, qe, Lq, Lk), bk):
            ke = min(ks + bk, Lk)
            kb = k[..., ks:ke, :].to(dtype) * root
            vb = v[..., ks:ke, :].to(dtype)
            s = qb @ kb.transpose(-2, -1)  # (..., bq, bk)
            allowed = _block_allowed(mask, is_causal, qs, qe, ks, ke, Lq, Lk, q.device)
            if allowed is not None:
                s = s.masked_fill(~allowed, -torch.inf)
            p = torch.exp(s - lseb)  # the forward's probabilities, recomputed
            if dv is not None:
                dv[..., ks:ke, :] += p.transpose(-2, -1) @ dob
            ds = p * (dob @ vb.transpose(-2, -1) - db)  # gradient of the scaled scores
            if dq is not None:
                dq[..., qs:qe, :] += (ds @ kb) * root
            if dk is not None:
                dk[..., ks:ke, :] += (ds.transpose(-2, -1) @ qb) * root
    return tuple(None if g is None else g.to(x.dtype) for g, x in zip((dq, dk, dv), (q, k, v),
                                                                          strict=True))


class _MemoryEfficientAttention(torch.autograd.Function):
    """Saves ``query, key, value, mask``, the output and the logsumexp: O(n·d) + O(n)."""

    @staticmethod
    def forward(ctx, query, key, value, mask, is_causal, scale, bq, bk):
        out, lse = _forward(query, key, value, mask, is_causal, scale, bq, bk)
        ctx.save_for_backward(query, key, value, mask, out, lse)
        ctx.args = (is_causal, scale, bq, bk)
        ctx.mark_non_differentiable(lse)
        return out.to(query.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        query, key, value, mask, out, lse = ctx.saved_tensors
        is_causal, scale, bq, bk = ctx.args
        grads = _backward(grad_out, query, key, value, out, lse, mask, is_causal, scale, bq, bk,
                          ctx.needs_input_grad[:3])
        return (*grads, None, None, None, None, None)


def memory_efficient_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    query_chunk_size: int = 128,
    key_chunk_size: int = 128,
) -> torch.Tensor:
    """Exact scaled dot-product attention in O(n) extra memory, forward and backward.

    Shapes: ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)``, ``value`` ``(..., Lk, Ev)``,
    ``mask`` boolean broadcastable to ``(..., Lq, Lk)`` → output ``(..., Lq, Ev)``; the same
    semantics as :func:`~attention_course.attention.scaled_dot_product_attention` (bottom-right
    ``is_causal``, ``scale`` default ``1/sqrt(E)``, zeros for a query with no allowed key).

    Queries are processed ``query_chunk_size`` at a time; for each chunk, keys
    ``key_chunk_size`` at a time with an online softmax: a running maximum ``m``, a running sum
    ``l`` of ``exp(s - m)`` and a running output, all rescaled by ``exp(m_old - m_new)`` when
    the maximum grows. Only one ``(query_chunk, key_chunk)`` block of scores exists at a time.
    Backward is a custom autograd function that recomputes the blocks from the saved
    per-query logsumexp instead of storing them. float16/bfloat16 are computed in float32.
    Not twice differentiable. Chunk sizes need not divide the lengths.
    """
    check_attention_inputs(query, key, value, mask, is_causal=is_causal, scale=scale)
    check_int("query_chunk_size", query_chunk_size, minimum=1)
    check_int("key_chunk_size", key_chunk_size, minimum=1)
    return _memory_efficient(query, key, value, mask, is_causal=is_causal, scale=scale,
                             query_chunk_size=query_chunk_size, key_chunk_size=key_chunk_size)


def _memory_efficient(query, key, value, mask, *, is_causal, scale, query_chunk_size,
                      key_chunk_size):
    return _MemoryEfficientAttention.apply(query, key, value, mask, is_causal,
                                           _resolve_scale(scale, query), query_chunk_size,
                                           key_chunk_size)


def memory_efficient_kernel(query, key, value, mask=None, *, is_causal=False, scale=None,
                            dropout_p=0.0):
    """:func:`memory_efficient_attention` with the kernel signature → ``(output, None)``.

    For ``MultiHeadAttention(..., attention_fn=memory_efficient_kernel)``. It never forms the
    weights (``need_weights=True`` is refused by the layer) and has no dropout: ``dropout_p``
    must be 0 (put the layer in ``eval()`` mode or build it with ``dropout=0``).
    """
    if dropout_p != 0.0:
        raise ValueError(f"memory_efficient_kernel does not implement attention dropout: "
                         f"dropout_p must be 0.0, got {dropout_p!r} (use eval() mode or "
                         f"dropout=0)")
    return _memory_efficient(query, key, value, mask, is_causal=is_causal, scale=scale,
                             query_chunk_size=128, key_chunk_size=128), None


# ------------------------------------------------------------------------- local attention

def local_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    window: int,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    block_size: int | None = None,
) -> torch.Tensor:
    """Sliding-window softmax attention in O(n·w) memory.

    Equal to the reference attention under ``masks.local_mask(L, window, causal=is_causal)``:
    query ``i`` attends to keys ``j`` with ``|i - j| <= window`` (``j <= i`` too when causal).
    Self-attention only: ``Lq == Lk`` is required. Shapes as in
    :func:`memory_efficient_attention` → output ``(..., L, Ev)``.

    Queries are processed ``block_size`` at a time (default ``max(window, 64)``), each block
    against only the ``block_size + 2·window`` keys it can see, so scores (and what autograd
    keeps of them) total O(n·(block_size + window)), not O(n²).
    """
    check_attention_inputs(query, key, value, is_causal=is_causal, scale=scale)
    check_int("window", window, minimum=0)
    if block_size is not None:
        check_int("block_size", block_size, minimum=1)
    L = query.shape[-2]
    if key.shape[-2] != L:
        raise ValueError(f"local_attention is self-attention: query and key must have the same "
                         f"length, got Lq={L} and Lk={key.shape[-2]}")
    scale = _resolve_scale(scale, query)
    block = max(window, 64) if block_size is None else block_size
    dtype = _compute_dtype(query)
    outputs = []
    for qs in range(0, L, block):
        qe = min(qs + block, L)
        ks, ke = max(0, qs - window), (qe if is_causal else min(L, qe - 1 + window + 1))
        s = _scaled_scores(query[..., qs:qe, :].to(dtype), key[..., ks:ke, :].to(dtype),
                           scale)  # (..., bq, ke-ks)
        i = torch.arange(qs, qe, device=query.device)[:, None]
        j = torch.arange(ks, ke, device=query.device)[None, :]
        allowed = (i - j).abs() <= window  # local_mask's rule, for this block only
        if is_causal:
            allowed = allowed & (j <= i)
        weights = _masked_softmax(s, allowed)  # j = i is always allowed
        outputs.append(weights.to(value.dtype) @ value[..., ks:ke, :])
    if not outputs:  # L == 0
        return value.new_zeros(*query.shape[:-1], value.shape[-1])
    return torch.cat(outputs, dim=-2)  # (..., L, Ev)


# ------------------------------------------------------------------------ linear attention

def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1``: the positive feature map of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1.0


def _linear_inputs(query, key, value, is_causal, feature_map, eps):
    _check_query_key(query, key)
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(f"query has feature size E={query.shape[-1]} but key has "
                         f"{key.shape[-1]}")
    _check_value(value, key)
    check_bool("is_causal", is_causal)
    if feature_map is not None and not callable(feature_map):
        raise TypeError(f"feature_map must be a function (tensor -> tensor) or None, got "
                        f"{type(feature_map).__name__} {feature_map!r}")
    check_float("eps", eps, minimum=0.0)
    if is_causal and key.shape[-2] != query.shape[-2]:
        raise ValueError(f"causal linear attention needs Lq == Lk, got Lq={query.shape[-2]} "
                         f"and Lk={key.shape[-2]}")
    phi = elu_feature_map if feature_map is None else feature_map
    phi_q, phi_k = phi(query), phi(key)
    for name, x, like in (("feature_map(query)", phi_q, query), ("feature_map(key)", phi_k, key)):
        check_tensor(name, x, floating=True)
        if x.shape[:-1] != like.shape[:-1]:
            raise ValueError(f"{name} must keep the shape (..., L) of its input "
                             f"{tuple(like.shape[:-1])} up to the last dimension, "
                             f"got {tuple(x.shape)}")
    if phi_q.shape[-1] != phi_k.shape[-1]:
        raise ValueError(f"feature_map gives query features of size {phi_q.shape[-1]} but key "
                         f"features of size {phi_k.shape[-1]}")
    return phi_q, phi_k


def linear_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    feature_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> torch.Tensor:
    r"""Linear attention :math:`o_i = \phi(q_i)^\top S / (\phi(q_i)^\top z + \epsilon)`.

    Non-causal: :math:`S = \sum_j \phi(k_j) v_j^\top` ``(..., F, Ev)`` and
    :math:`z = \sum_j \phi(k_j)` are formed once — O(n·F·Ev) time, no ``n × n`` matrix.
    Causal (``Lq == Lk`` required): the sums run over ``j <= i``; computed chunk by chunk
    (``chunk_size`` queries at a time): the state of all earlier chunks plus a small masked
    product inside the chunk. :func:`linear_attention_recurrent` is the same causal output as an
    RNN. ``feature_map`` maps ``(..., L, E)`` to positive features ``(..., L, F)``; default
    ``elu(x) + 1``. No mask argument (padding is not expressible in the sums' shape here).
    """
    phi_q, phi_k = _linear_inputs(query, key, value, is_causal, feature_map, eps)
    check_int("chunk_size", chunk_size, minimum=1)
    if not is_causal:
        state = phi_k.transpose(-2, -1) @ value  # (..., F, Ev)
        z = phi_k.sum(dim=-2)  # (..., F)
        return (phi_q @ state) / ((phi_q @ z.unsqueeze(-1)) + eps)  # (..., Lq, Ev)
    L = query.shape[-2]
    state = phi_k.new_zeros(*phi_k.shape[:-2], phi_k.shape[-1], value.shape[-1])
    z = phi_k.new_zeros(*phi_k.shape[:-2], phi_k.shape[-1], 1)
    outputs = []
    for cs in range(0, L, chunk_size):
        ce = min(cs + chunk_size, L)
        qc, kc, vc = phi_q[..., cs:ce, :], phi_k[..., cs:ce, :], value[..., cs:ce, :]
        inner = torch.tril(qc @ kc.transpose(-2, -1))  # (..., c, c): j <= i within the chunk
        numerator = qc @ state + inner @ vc
        denominator = qc @ z + inner.sum(dim=-1, keepdim=True) + eps
        outputs.append(numerator / denominator)
        state = state + kc.transpose(-2, -1) @ vc
        z = z + kc.sum(dim=-2).unsqueeze(-1)
    if not outputs:
        return value.new_zeros(*query.shape[:-1], value.shape[-1])
    return torch.cat(outputs, dim=-2)  # (..., L, Ev)


def linear_attention_recurrent(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    feature_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""Causal linear attention as an RNN: one step per position,
    :math:`S_i = S_{i-1} + \phi(k_i) v_i^\top`, :math:`z_i = z_{i-1} + \phi(k_i)`,
    :math:`o_i = \phi(q_i)^\top S_i / (\phi(q_i)^\top z_i + \epsilon)`.

    The same output as ``linear_attention(..., is_causal=True)`` with O(F·Ev) state per
    sequence — what makes autoregressive decoding constant-time per token. ``Lq == Lk``.
    """
    phi_q, phi_k = _linear_inputs(query, key, value, True, feature_map, eps)
    state = phi_k.new_zeros(*phi_k.shape[:-2], phi_k.shape[-1], value.shape[-1])
    z = phi_k.new_zeros(*phi_k.shape[:-2], phi_k.shape[-1])
    outputs = []
    for t in range(query.shape[-2]):
        state = state + phi_k[..., t, :, None] * value[..., t, None, :]  # (..., F, Ev)
        z = z + phi_k[..., t, :]
        q = phi_q[..., t, :]  # (..., F)
        numerator = (q.unsqueeze(-2) @ state).squeeze(-2)  # (..., Ev)
        outputs.append(numerator / ((q * z).sum(dim=-1, keepdim=True) + eps))
    if not outputs:
        return value.new_zeros(*query.shape[:-1], value.shape[-1])
    return torch.stack(outputs, dim=-2)  # (..., L, Ev)


# ------------------------------------------------------------------ block-sparse attention

def _active_blocks(mask, Lq, Lk, block):
    """Boolean ``(ceil(Lq/b), ceil(Lk/b))``: which blocks hold at least one allowed pair (in any
    batch element)."""
    nq, nk = -(-Lq // block), -(-Lk // block)
    flat = torch.broadcast_to(mask, (*mask.shape[:-2], Lq, Lk)).reshape(-1, Lq, Lk).any(dim=0)
    padded = torch.zeros(nq * block, nk * block, dtype=torch.bool, device=mask.device)
    padded[:Lq, :Lk] = flat
    return padded.view(nq, block, nk, block).any(dim=3).any(dim=1)  # (nq, nk)


def block_sparse_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor,
    *,
    block_size: int = 64,
    scale: float | None = None,
) -> torch.Tensor:
    """Softmax attention under a sparse boolean ``mask`` that skips the blocks it rules out.

    Equal to the reference attention under the same ``mask`` (``True`` = may attend; a query
    with no allowed key gets output 0). The ``(Lq, Lk)`` plane is cut into
    ``block_size × block_size`` blocks; a block where the mask is ``False`` everywhere (in every
    batch element) is never computed: each query block's scores are formed only against the
    keys of its non-empty key blocks. With the sparse patterns of
    :func:`~attention_course.masks.local_mask`, :func:`~attention_course.masks.fixed_mask` or
    :func:`~attention_course.masks.strided_mask` (block sizes matched to the pattern) the work
    falls from O(L²) to the number of non-empty blocks. Gradients flow by autograd through the
    blocks that were computed.

    Shapes: ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)``, ``value`` ``(..., Lk, Ev)``,
    ``mask`` boolean broadcastable to ``(..., Lq, Lk)`` (required) → output ``(..., Lq, Ev)``.
    """
    if mask is None:
        raise TypeError("mask must be a boolean tensor (block_sparse_attention needs the "
                        "sparsity pattern), got None")
    check_attention_inputs(query, key, value, mask, scale=scale)
    check_int("block_size", block_size, minimum=1)
    Lq, Lk = query.shape[-2], key.shape[-2]
    out_shape = (*torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], mask.shape[:-2]),
                 Lq, value.shape[-1])
    if Lq == 0 or Lk == 0:
        return value.new_zeros(out_shape)
    scale = _resolve_scale(scale, query)
    dtype = _compute_dtype(query)
    active = _active_blocks(mask, Lq, Lk, block_size).tolist()  # list of lists of bool
    full = torch.broadcast_to(mask, (*mask.shape[:-2], Lq, Lk))
    outputs = []
    for qi, row in enumerate(active):
        qs, qe = qi * block_size, min((qi + 1) * block_size, Lq)
        starts = [ki * block_size for ki, on in enumerate(row) if on]
        if not starts:  # every key of this query block is masked: output 0
            outputs.append(value.new_zeros((*out_shape[:-2], qe - qs, out_shape[-1])))
            continue
        keys = torch.cat([torch.arange(s, min(s + block_size, Lk), device=query.device)
                          for s in starts])  # the key positions of the non-empty blocks
        qb = query[..., qs:qe, :].to(dtype)  # (..., bq, E)
        kb = key.index_select(-2, keys).to(dtype)  # (..., nk, E)
        vb = value.index_select(-2, keys).to(dtype)  # (..., nk, Ev)
        s = _scaled_scores(qb, kb, scale)  # (..., bq, nk)
        allowed = full[..., qs:qe, :].index_select(-1, keys)  # (..., bq, nk)
        o = _masked_softmax(s, allowed) @ vb  # rows with no allowed key: 0
        outputs.append(torch.broadcast_to(o, (*out_shape[:-2], qe - qs, out_shape[-1]))
                       .to(value.dtype))
    return torch.cat(outputs, dim=-2)  # (..., Lq, Ev)


__all__ += ["block_sparse_attention"]


# ---------------------------------------------------------------------------- kernel adapters

def _refuse(kernel_name, *, mask=None, dropout_p=0.0, scale=None, allow_mask=False,
            allow_scale=True):
    """Raise ``ValueError`` (naming the argument) for what the adapted function cannot do."""
    if dropout_p != 0.0:
        raise ValueError(f"{kernel_name} does not implement attention dropout: dropout_p must "
                         f"be 0.0, got {dropout_p!r} (use eval() mode or dropout=0)")
    if not allow_mask and mask is not None:
        raise ValueError(f"{kernel_name} cannot honour a mask: mask must be None, got a tensor "
                         f"of shape {tuple(mask.shape)} (only is_causal is supported)")
    if not allow_scale and scale is not None:
        raise ValueError(f"{kernel_name} has no softmax temperature: scale must be None, got "
                         f"{scale!r}")


def _named(kernel, name):
    kernel.__name__ = kernel.__qualname__ = name
    return kernel


def local_kernel(window: int):
    """A kernel (see :mod:`attention_course.kernels`) running :func:`local_attention` with
    ``window`` → ``(output (..., L, Ev), None)``.

    For ``MultiHeadAttention(..., attention_fn=local_kernel(w))`` or ``GPT(config,
    attention_fn=local_kernel(w))``: self-attention (``Lq == Lk``) under the sliding window
    (causal when ``is_causal``). A ``mask`` cannot be honoured (``ValueError``), nor dropout
    (``dropout_p`` must be 0); weights are never formed.
    """
    check_int("window", window, minimum=0)
    name = f"local_kernel(window={window})"

    def kernel(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0):
        _refuse(name, mask=mask, dropout_p=dropout_p)
        return local_attention(query, key, value, window, is_causal=is_causal,
                               scale=scale), None

    return _named(kernel, name)


def linear_kernel(feature_map: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
                  eps: float = 1e-6):
    """A kernel running :func:`linear_attention` (``feature_map``, ``eps``) → ``(output
    (..., Lq, Ev), None)``.

    Not softmax attention, hence not the reference's numbers: it swaps ``exp(q·k/√E)`` for
    ``φ(q)·φ(k)``. It honours ``is_causal`` (``Lq == Lk``) but no ``mask`` and no ``scale``
    (``ValueError`` naming the argument), and no dropout (``dropout_p`` must be 0).
    """
    if feature_map is not None and not callable(feature_map):
        raise TypeError(f"feature_map must be a function (tensor -> tensor) or None, got "
                        f"{type(feature_map).__name__} {feature_map!r}")
    check_float("eps", eps, minimum=0.0)
    name = f"linear_kernel({getattr(feature_map, '__name__', 'elu_feature_map')})"

    def kernel(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0):
        _refuse(name, mask=mask, dropout_p=dropout_p, scale=scale, allow_scale=False)
        return linear_attention(query, key, value, is_causal=is_causal,
                                feature_map=feature_map, eps=eps), None

    return _named(kernel, name)


def block_sparse_kernel(pattern: Callable[[int], torch.Tensor], *, block_size: int = 64):
    """A kernel running :func:`block_sparse_attention` under a sparse ``pattern`` →
    ``(output (..., Lq, Ev), None)``.

    ``pattern(L)`` returns a boolean ``(L, L)`` mask for ``L`` keys, e.g.
    ``functools.partial(masks.strided_mask, stride=8)`` or ``masks.fixed_mask`` likewise; its
    last ``Lq`` rows are used (bottom-right, as ``is_causal``). The pattern is combined with the
    call's ``mask`` and ``is_causal`` (all must allow a pair), and blocks of ``block_size`` that
    the result rules out are skipped. ``dropout_p`` must be 0.
    """
    if not callable(pattern):
        raise TypeError(f"pattern must be a function length -> (L, L) boolean mask, got "
                        f"{type(pattern).__name__} {pattern!r}")
    check_int("block_size", block_size, minimum=1)
    name = f"block_sparse_kernel({getattr(pattern, '__name__', type(pattern).__name__)})"

    def kernel(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0):
        _refuse(name, mask=mask, dropout_p=dropout_p, allow_mask=True)
        Lq, Lk = query.shape[-2], key.shape[-2]
        allowed = pattern(Lk)
        if (not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool
                or tuple(allowed.shape) != (Lk, Lk)):
            got = (f"{allowed.dtype} tensor of shape {tuple(allowed.shape)}"
                   if isinstance(allowed, torch.Tensor) else type(allowed).__name__)
            raise ValueError(f"pattern({Lk}) must return a boolean ({Lk}, {Lk}) mask, got {got}")
        allowed = allowed[Lk - Lq:].to(query.device)  # (Lq, Lk): bottom-right rows
        combined = _attention_mask(mask, Lq, Lk, is_causal=is_causal, device=query.device)
        if combined is not None:
            allowed = allowed & combined  # (..., Lq, Lk)
        return block_sparse_attention(query, key, value, allowed, block_size=block_size,
                                      scale=scale), None

    return _named(kernel, name)


__all__ += ["local_kernel", "linear_kernel", "block_sparse_kernel"]
