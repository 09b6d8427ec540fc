r"""Multi-head attention: :math:`\mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h) W_O` with
:math:`\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)`.

Shape legend: ``B`` batch, ``Lq``/``Lk`` query/key lengths, ``D`` = ``d_model``, ``H`` heads,
``Dh = D / H`` per-head size. All heads' projections are stored as one ``nn.Linear`` each
(``W_q``, ``W_k``, ``W_v``: ``D`` outputs = ``H`` blocks of ``Dh``), exactly as
``torch.nn.MultiheadAttention`` stores them, so :meth:`MultiHeadAttention.from_torch` copies
weights one to one.

Masks follow the course convention (boolean, ``True`` = may attend); ``nn.MultiheadAttention``
uses the opposite polarity — see :mod:`attention_course.masks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import check_int, check_mask, check_tensor
from attention_course.attention import scaled_dot_product_attention
from attention_course.masks import causal_mask

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads"]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, L, D)`` → ``(B, H, L, Dh)``: head ``i`` gets features ``i*Dh … (i+1)*Dh - 1``."""
    B, L, D = x.shape
    return x.view(B, L, num_heads, D // num_heads).transpose(1, 2)  # (B, H, L, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, L, Dh)`` → ``(B, L, H*Dh)``, the inverse of :func:`split_heads` (the Concat)."""
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).reshape(B, L, H * Dh)  # (B, L, D)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first, mirroring ``torch.nn.MultiheadAttention``.

    ``MultiHeadAttention(d_model, num_heads, *, kdim=None, vdim=None, bias=True, dropout=0.0)``;
    ``kdim``/``vdim`` are the feature sizes of ``key``/``value`` for cross-attention
    (default ``d_model``).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        kdim = d_model if kdim is None else kdim
        vdim = d_model if vdim is None else vdim
        check_int("kdim", kdim, minimum=1)
        check_int("vdim", vdim, minimum=1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.kdim, self.vdim, self.dropout = kdim, vdim, dropout
        self.W_q = nn.Linear(d_model, d_model, bias=bias)  # all heads' W_i^Q, stacked
        self.W_k = nn.Linear(kdim, d_model, bias=bias)
        self.W_v = nn.Linear(vdim, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def _check_inputs(self, query, key, value):
        check_tensor("query", query, ndim=3, floating=True)
        check_tensor("key", key, ndim=3, floating=True)
        check_tensor("value", value, ndim=3, floating=True)
        expected = {"query": (query, self.d_model), "key": (key, self.kdim),
                    "value": (value, self.vdim)}
        for name, (x, size) in expected.items():
            if x.shape[-1] != size:
                raise ValueError(f"{name} must have shape (B, L, {size}), got {tuple(x.shape)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                f"{tuple(value.shape)} must share B, and key/value must share Lk"
            )

    def _full_mask(self, mask, B, Lq, Lk, is_causal, device):
        """The mask as ``(B or 1, H or 1, Lq or 1, Lk)``; ``None`` if nothing is masked."""
        if mask is not None:
            if mask.dim() == 3:  # (B, Lq or 1, Lk): the same for every head
                check_mask(mask, torch.Size((B, Lq, Lk)))
                mask = mask[:, None]
            else:
                check_mask(mask, torch.Size((B, self.num_heads, Lq, Lk)))
        if is_causal:
            causal = causal_mask(Lq, Lk, device=device)  # (Lq, Lk), bottom-right aligned
            mask = causal if mask is None else mask & causal
        return mask

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``query`` ``(B, Lq, D)``, ``key`` ``(B, Lk, kdim)``, ``value`` ``(B, Lk, vdim)`` →
        ``(output (B, Lq, D), weights (B, H, Lq, Lk) or None)``.

        ``mask`` (``True`` = may attend): ``(Lq, Lk)``, ``(B, Lq or 1, Lk)`` (e.g. a key padding
        mask ``padding[:, None, :]``) or ``(B or 1, H or 1, Lq or 1, Lk)``. ``is_causal`` adds a
        bottom-right-aligned causal mask. With ``need_weights=False`` the heads run in torch's
        fused ``scaled_dot_product_attention`` (same numbers, tested); with ``True`` they run in
        the course's explicit :func:`~attention_course.attention.scaled_dot_product_attention`.
        A query with no allowed key outputs ``W_o``'s bias (its heads output zeros).
        """
        self._check_inputs(query, key, value)
        B, Lq, Lk = query.shape[0], query.shape[1], key.shape[1]
        q = split_heads(self.W_q(query), self.num_heads)  # (B, H, Lq, Dh)
        k = split_heads(self.W_k(key), self.num_heads)  # (B, H, Lk, Dh)
        v = split_heads(self.W_v(value), self.num_heads)  # (B, H, Lk, Dh)
        p = self.dropout if self.training else 0.0
        if need_weights:
            mask = self._full_mask(mask, B, Lq, Lk, is_causal, query.device)
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        else:
            weights = None
            if mask is None and is_causal and Lq == Lk:  # torch's own causal kernel path
                heads = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                mask = self._full_mask(mask, B, Lq, Lk, is_causal, query.device)
                heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
                if mask is not None:  # rows with no allowed key: zeros, as the reference
                    heads = heads.masked_fill(~mask.any(-1, keepdim=True), 0.0)
        return self.W_o(merge_heads(heads)), weights  # (B, Lq, D)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """An exact copy of ``m`` (same weights, dtype and device; call it batch-first)."""
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m must be a torch.nn.MultiheadAttention, got {type(m).__name__}")
        if m.bias_k is not None or m.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn have no counterpart in the course")
        bias = m.in_proj_bias is not None
        new = cls(m.embed_dim, m.num_heads, kdim=m.kdim, vdim=m.vdim, bias=bias,
                  dropout=m.dropout)
        ref = m.out_proj.weight
        new = new.to(dtype=ref.dtype, device=ref.device)
        if m._qkv_same_embed_dim:
            weights = m.in_proj_weight.chunk(3)
        else:
            weights = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
        biases = m.in_proj_bias.chunk(3) if bias else (None, None, None)
        with torch.no_grad():
            for linear, w, b in zip((new.W_q, new.W_k, new.W_v), weights, biases, strict=True):
                linear.weight.copy_(w)
                if b is not None:
                    linear.bias.copy_(b)
            new.W_o.weight.copy_(m.out_proj.weight)
            if bias:
                new.W_o.bias.copy_(m.out_proj.bias)
        return new.train(m.training)
