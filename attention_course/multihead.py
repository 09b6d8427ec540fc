r"""Multi-head attention: :math:`\mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h) W_O` with
:math:`\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)`.

Shape legend: ``B`` batch, ``Lq``/``Lk`` query/key lengths, ``D`` = ``d_model``, ``H`` (query)
heads, ``Hkv`` key/value heads, ``r = H / Hkv`` query heads per key/value head, ``Dh = D / H``
per-head size. All heads' projections are stored as one ``nn.Linear`` each (``W_Q``: ``D``
outputs = ``H`` blocks of ``Dh``; ``W_K``, ``W_V``: ``Hkv`` blocks of ``Dh``). With
``Hkv = H`` this is exactly how ``torch.nn.MultiheadAttention`` stores them, so
:meth:`MultiHeadAttention.from_torch` copies weights one to one.

**Grouped-query and multi-query attention** (Chapter 8). ``num_kv_heads`` = ``Hkv`` key/value
heads serve the ``H`` query heads: query head ``h`` attends with key/value head
``h // r`` (the ``r`` consecutive query heads of a group share one). ``Hkv = H`` is standard
multi-head attention, ``Hkv = 1`` multi-query attention (MQA, Shazeer 2019), anything between
grouped-query attention (GQA, Ainslie et al. 2023). Keys and values — what a KV cache stores
while decoding, see :func:`kv_cache_bytes` — shrink by the factor ``r``; the queries, the
output projection and the number of attention patterns (``H``) do not.

==================  ===============================  ====================================
paper               code                             shape
==================  ===============================  ====================================
:math:`h`           ``num_heads`` (``H``)            query heads
:math:`G`           ``num_kv_heads`` (``Hkv``)       key/value heads (GQA-G's groups)
:math:`W_i^Q`       ``W_Q.weight[i*Dh:(i+1)*Dh]``    ``(Dh, D)``, ``i < H``
:math:`W_j^K`       ``W_K.weight[j*Dh:(j+1)*Dh]``    ``(Dh, kdim)``, ``j < Hkv``
:math:`W_j^V`       ``W_V.weight[j*Dh:(j+1)*Dh]``    ``(Dh, vdim)``, ``j < Hkv``
:math:`W^O`         ``W_O.weight``                   ``(D, D)``
==================  ===============================  ====================================

The attention itself is a *kernel* handed to the module (``attention_fn``, see
:mod:`attention_course.kernels`): the module projects, the kernel attends, the module merges.
:meth:`MultiHeadAttention.project` and :meth:`MultiHeadAttention.attend` are the two halves of
``forward``, so a caller can insert something between them (Chapter 8's KV cache concatenates
past keys and values there) without a new branch in the module. ``project`` returns the
*small* keys and values ``(B, Hkv, Lk, Dh)``; ``attend`` repeats each of them for the ``r``
query heads of its group (:func:`expand_kv_heads`, what ``enable_gqa=True`` does in torch's
``scaled_dot_product_attention``) just before the kernel, so every kernel sees ``H`` heads and
none needs to know about groups.

Masks follow the course convention (boolean, ``True`` = may attend); ``nn.MultiheadAttention``
uses the opposite polarity — see :mod:`attention_course.masks`.
"""

from __future__ import annotations

import torch
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_int,
    check_like_module,
    check_mask,
    check_tensor,
)
from attention_course.kernels import AttentionFn, check_attention_fn, select_kernel

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads", "expand_kv_heads",
           "kv_cache_bytes", "check_head_mask"]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, L, D)`` → ``(B, H, L, Dh)``.

    Head ``i`` gets features ``i*Dh … (i+1)*Dh - 1``."""
    check_tensor("x", x, ndim=3)
    check_int("num_heads", num_heads, minimum=1)
    B, L, D = x.shape
    if D % num_heads:
        raise ValueError(f"x has D={D} features, not divisible by "
                         f"num_heads={num_heads}")
    x = x.view(B, L, num_heads, D // num_heads)  # (B, L, H, Dh)
    return x.transpose(1, 2)  # (B, H, L, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, L, Dh)`` → ``(B, L, H*Dh)``: the Concat.

    The inverse of :func:`split_heads`."""
    check_tensor("x", x, ndim=4)
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).reshape(B, L, H * Dh)  # (B, L, D)


def expand_kv_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, Hkv, L, Dh)`` → ``(B, H, L, Dh)``: key/value head ``j`` repeated for query heads
    ``j*r … (j+1)*r - 1`` (``r = H / Hkv``), so query head ``h`` uses key/value head ``h // r``.

    The head layout of torch's ``scaled_dot_product_attention(..., enable_gqa=True)``
    (``repeat_interleave`` on the head axis). Returns ``x`` itself when ``Hkv == H``."""
    check_tensor("x", x, ndim=4)
    check_int("num_heads", num_heads, minimum=1)
    num_kv_heads = x.shape[1]
    if num_kv_heads == 0 or num_heads % num_kv_heads:
        raise ValueError(f"x has {num_kv_heads} key/value heads (shape {tuple(x.shape)}), "
                         f"which must divide num_heads={num_heads}")
    if num_kv_heads == num_heads:
        return x
    return x.repeat_interleave(num_heads // num_kv_heads, dim=1)  # (B, H, L, Dh)


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, length: int,
                   batch_size: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes a KV cache of ``length`` positions takes: two tensors (keys and values) of shape
    ``(batch_size, num_kv_heads, length, head_dim)`` per layer, in ``dtype``.

    ``2 * num_layers * batch_size * num_kv_heads * length * head_dim * itemsize``. The number of
    *query* heads does not appear: going from ``H`` key/value heads (multi-head) to ``Hkv``
    (grouped-query) divides the cache by ``H / Hkv``, to one (multi-query) by ``H``."""
    for name, value in (("num_layers", num_layers), ("num_kv_heads", num_kv_heads),
                        ("head_dim", head_dim)):
        check_int(name, value, minimum=1)
    check_int("length", length, minimum=0)
    check_int("batch_size", batch_size, minimum=0)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float16), got "
                        f"{type(dtype).__name__} {dtype!r}")
    return 2 * num_layers * batch_size * num_kv_heads * length * head_dim * dtype.itemsize


def check_head_mask(name: str, mask, B: int, H: int, Lq: int, Lk: int, *,
                    device: torch.device | None = None) -> torch.Tensor | None:
    """Check a mask given to multi-head attention; return it as ``(B|1, H|1, Lq|1, Lk)``.

    Accepted (``True`` = may attend): ``(Lq, Lk)``, ``(B, Lq or 1, Lk)`` (e.g. a key padding
    mask ``padding[:, None, :]``) or ``(B or 1, H or 1, Lq or 1, Lk)``. ``name`` is the
    caller's name for the argument (``mask``, ``tgt_mask``, ``memory_mask`` …); with
    ``device``, the mask must be on it (the inputs' device).

    A ``(B, Lk)`` key-padding mask (missing its query axis) is refused, except when ``B == Lq``:
    then it cannot be told apart from an ``(Lq, Lk)`` mask and is read as one. Write
    ``padding[:, None, :]``.
    """
    for size_name, size in (("B", B), ("H", H), ("Lq", Lq), ("Lk", Lk)):
        check_int(size_name, size, minimum=0)
    if mask is None:
        return None
    check_tensor(name, mask)
    if mask.dim() == 3:  # (B, Lq or 1, Lk): the same for every head
        check_mask(mask, torch.Size((B, Lq, Lk)), name, device=device, device_of="the inputs")
        return mask[:, None]
    if mask.dim() in (2, 4):
        check_mask(mask, torch.Size((B, H, Lq, Lk)), name, device=device, device_of="the inputs")
        return mask
    raise ValueError(f"{name} must have 2, 3 or 4 dimensions ((Lq, Lk), (B, Lq or 1, Lk) or "
                     f"(B or 1, H or 1, Lq or 1, Lk)), got shape {tuple(mask.shape)}")


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first, mirroring ``torch.nn.MultiheadAttention``.

    ``MultiHeadAttention(d_model, num_heads, *, kdim=None, vdim=None, bias=True, dropout=0.0,
    attention_fn=None, num_kv_heads=None)``; ``kdim``/``vdim`` are the feature sizes of
    ``key``/``value`` for cross-attention (default ``d_model``). ``attention_fn`` is the kernel
    every call uses (see :mod:`attention_course.kernels`); ``None`` picks the reference when
    weights are requested and torch's fused kernel otherwise (same numbers, tested).
    ``num_kv_heads`` (``Hkv``, a divisor of ``num_heads``) is the number of key/value heads:
    ``None`` = ``num_heads`` (multi-head), ``1`` multi-query, otherwise grouped-query attention
    (see the module docstring); ``W_K`` and ``W_V`` then have ``Hkv * Dh`` outputs.
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
        attention_fn: AttentionFn | None = None,
        num_kv_heads: int | None = None,
    ):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check_int("num_kv_heads", num_kv_heads, minimum=1)
        if num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads} "
                             f"(1 = multi-query, num_heads = multi-head attention)")
        kdim = d_model if kdim is None else kdim
        vdim = d_model if vdim is None else vdim
        check_int("kdim", kdim, minimum=1)
        check_int("vdim", vdim, minimum=1)
        check_bool("bias", bias)
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        check_attention_fn(attention_fn)
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.num_kv_heads = num_kv_heads
        self.kdim, self.vdim, self.dropout = kdim, vdim, dropout
        self.attention_fn = attention_fn
        kv_features = num_kv_heads * self.head_dim  # Hkv * Dh (= D for multi-head attention)
        self.W_Q = nn.Linear(d_model, d_model, bias=bias)  # all heads' W_i^Q, stacked
        self.W_K = nn.Linear(kdim, kv_features, bias=bias)  # the Hkv key/value heads' W_j^K
        self.W_V = nn.Linear(vdim, kv_features, bias=bias)
        self.W_O = nn.Linear(d_model, d_model, bias=bias)

    def check_inputs(self, query, key, value, mask=None, *, is_causal=False, need_weights=False,
                     names=("query", "key", "value", "mask")) -> torch.Tensor | None:
        """Check a call's arguments (in the caller's words: ``names``); return the mask as
        ``(B|1, H|1, Lq|1, Lk)``. Layers call it once with their own argument names."""
        q_name, k_name, v_name, mask_name = names
        self._check_sequences(query, key, value, names[:3])
        check_bool("is_causal", is_causal)
        check_bool("need_weights", need_weights)
        B, Lq, Lk = query.shape[0], query.shape[1], key.shape[1]
        return check_head_mask(mask_name, mask, B, self.num_heads, Lq, Lk, device=query.device)

    def _check_sequences(self, query, key, value, names) -> None:
        q_name, k_name, v_name = names
        param = self.W_Q.weight
        for name, x, size in ((q_name, query, self.d_model), (k_name, key, self.kdim),
                              (v_name, value, self.vdim)):
            check_tensor(name, x, ndim=3, floating=True)
            if x.shape[-1] != size:
                raise ValueError(f"{name} must have shape (B, L, {size}), got {tuple(x.shape)}")
            check_like_module(name, x, param)
        if key.shape[0] != query.shape[0]:
            raise ValueError(f"{k_name} has batch size {key.shape[0]} but {q_name} has "
                             f"{query.shape[0]}; expected {k_name} of shape "
                             f"(B={query.shape[0]}, Lk, {self.kdim})")
        if value.shape[:2] != key.shape[:2]:
            raise ValueError(f"{v_name} {tuple(value.shape)} and {k_name} {tuple(key.shape)} "
                             f"must share B and Lk: expected {v_name} of shape "
                             f"({key.shape[0]}, {key.shape[1]}, {self.vdim})")

    def project(self, query: torch.Tensor, key: torch.Tensor,
                value: torch.Tensor, *, checked: bool = False):
        """Per-head queries ``(B, H, Lq, Dh)``, keys and values
        ``(B, Hkv, Lk, Dh)``.

        Keys and values keep their ``Hkv = num_kv_heads`` heads (what a KV
        cache stores); :meth:`attend` expands them. ``query`` ``(B, Lq, D)``,
        ``key`` ``(B, Lk, kdim)``, ``value`` ``(B, Lk, vdim)`` are checked as
        :meth:`forward` checks them, unless ``checked=True`` (a caller that
        already ran :meth:`check_inputs`)."""
        if checked is not True:  # only a caller that ran check_inputs skips
            self._check_sequences(query, key, value, ("query", "key", "value"))
        q = split_heads(self.W_Q(query), self.num_heads)  # (B, H, Lq, Dh)
        k = split_heads(self.W_K(key), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        v = split_heads(self.W_V(value), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        return q, k, v

    def attend(self, q, k, v, mask=None, *, is_causal=False,
               need_weights=False, checked=False):
        """Run the kernel on per-head ``q`` ``(B, H, Lq, Dh)``, ``k`` and ``v``
        ``(B, Hkv, Lk, Dh)`` (as :meth:`project` returns them), then merge the
        heads and apply ``W_O`` → ``(output (B, Lq, D), weights (B, H, Lq, Lk)
        or None)``.

        ``k`` and ``v`` are expanded to ``H`` heads (:func:`expand_kv_heads`: query
        head ``h`` uses key/value head ``h // (H / Hkv)``) before the kernel runs;
        ``k`` and ``v`` that already have ``H`` heads are used as they are. The
        weights are per *query* head. ``mask`` takes the shapes :meth:`forward`
        accepts; the arguments are checked unless ``checked=True`` (then ``mask``
        is as :meth:`check_inputs` returns it)."""
        if checked is not True:  # only a caller that ran check_inputs skips
            mask = self._check_heads(q, k, v, mask, is_causal, need_weights)
        kernel = select_kernel(self.attention_fn, need_weights)
        p = self.dropout if self.training else 0.0
        k = expand_kv_heads(k, self.num_heads)  # (B, H, Lk, Dh)
        v = expand_kv_heads(v, self.num_heads)  # (B, H, Lk, Dh)
        heads, weights = kernel(q, k, v, mask, is_causal=is_causal,
                                dropout_p=p)  # (B, H, Lq, Dh), (B, H, Lq, Lk)
        if need_weights and weights is None:
            name = getattr(kernel, "__name__", repr(kernel))
            raise ValueError(f"need_weights=True but attention_fn {name} "
                             f"returns no weights; use a kernel that does "
                             f"(e.g. reference_attention)")
        output = self.W_O(merge_heads(heads))  # (B, Lq, D)
        return output, (weights if need_weights else None)

    def _check_heads(self, q, k, v, mask, is_causal, need_weights):
        """:meth:`attend`'s checks; returns the mask as ``(B|1, H|1, Lq|1, Lk)``."""
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        for name, x in (("q", q), ("k", k), ("v", v)):
            check_tensor(name, x, ndim=4, floating=True)
            heads_ok = x.shape[1] == H or (name != "q" and x.shape[1] == Hkv)
            if not heads_ok or x.shape[3] != Dh:
                expected = (f"(B, H={H}, L, Dh={Dh})" if name == "q" or Hkv == H else
                            f"(B, Hkv={Hkv} (or H={H}), L, Dh={Dh})")
                raise ValueError(f"{name} must have shape {expected} (per head, as project "
                                 f"returns it), got {tuple(x.shape)}")
            check_like_module(name, x, self.W_O.weight)
        if k.shape[0] != q.shape[0] or v.shape[:3] != k.shape[:3]:
            raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} "
                             f"must share B, and k and v must share their heads and Lk")
        check_bool("is_causal", is_causal)
        check_bool("need_weights", need_weights)
        B, Lq, Lk = q.shape[0], q.shape[2], k.shape[2]
        return check_head_mask("mask", mask, B, H, Lq, Lk, device=q.device)

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
        """``query`` ``(B, Lq, D)``, ``key`` ``(B, Lk, kdim)``,
        ``value`` ``(B, Lk, vdim)`` → ``(output (B, Lq, D),
        weights (B, H, Lq, Lk) or None)``.

        ``mask`` (``True`` = may attend): ``(Lq, Lk)``, ``(B, Lq or 1, Lk)``
        (e.g. a key padding mask ``padding[:, None, :]``) or
        ``(B or 1, H or 1, Lq or 1, Lk)``. ``is_causal`` adds a
        bottom-right-aligned causal mask. ``need_weights=True`` returns the
        weights of each query head (``H`` of them, also when ``Hkv < H``). A
        query with no allowed key outputs ``W_O``'s bias (its heads output
        zeros).
        """
        mask = self.check_inputs(query, key, value, mask, is_causal=is_causal,
                                 need_weights=need_weights)
        q, k, v = self.project(query, key, value, checked=True)  # (B, H|Hkv, L, Dh)
        return self.attend(q, k, v, mask, is_causal=is_causal,
                           need_weights=need_weights, checked=True)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """An exact copy of ``m``: same weights, dtype and device.

        Call the copy batch-first, whatever ``m.batch_first`` says. torch's
        module is multi-head attention: the copy has ``num_kv_heads =
        num_heads``."""
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m must be a torch.nn.MultiheadAttention, got "
                            f"{type(m).__name__}")
        if m.bias_k is not None or m.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn have no counterpart "
                             "in the course")
        bias = m.in_proj_bias is not None
        new = cls(m.embed_dim, m.num_heads, kdim=m.kdim, vdim=m.vdim, bias=bias,
                  dropout=m.dropout, num_kv_heads=m.num_heads)
        ref = m.out_proj.weight
        new = new.to(dtype=ref.dtype, device=ref.device)
        if m._qkv_same_embed_dim:
            weights = m.in_proj_weight.chunk(3)
        else:
            weights = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
        biases = m.in_proj_bias.chunk(3) if bias else (None, None, None)
        with torch.no_grad():
            projections = (new.W_Q, new.W_K, new.W_V)
            for linear, w, b in zip(projections, weights, biases, strict=True):
                linear.weight.copy_(w)
                if b is not None:
                    linear.bias.copy_(b)
            new.W_O.weight.copy_(m.out_proj.weight)
            if bias:
                new.W_O.bias.copy_(m.out_proj.bias)
        return new.train(m.training)
