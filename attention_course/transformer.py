"""Transformer blocks: encoder and decoder layers and their stacks.

Each layer mirrors its ``torch.nn`` counterpart (batch-first) and can copy one with
``from_torch``. Post-LN (the original paper, default) computes ``LayerNorm(x + Sublayer(x))``;
pre-LN (``norm_first=True``) computes ``x + Sublayer(LayerNorm(x))``. Masks use the course
convention (boolean, ``True`` = may attend) with the shapes :class:`MultiHeadAttention` accepts.

**Attention weights on request.** Every layer and stack takes ``need_weights``; with ``True`` it
returns ``(output, weights)`` instead of ``output``: a layer gives a dict of per-head weights
``{"self_attn": (B, H, L, L)}`` (a decoder layer adds ``"cross_attn": (B, H, T, S)``), a stack
a list of those dicts, one per layer, bottom to top. ``attention_fn`` (see
:mod:`attention_course.kernels`) sets the kernel of every attention block of a layer.

Arguments are checked once, where the caller passes them, and errors use the caller's names.

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` = ``d_model``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import check_bool, check_float, check_int
from attention_course.cache import project_with_cache
from attention_course.kernels import AttentionFn, check_attention_fn
from attention_course.multihead import MultiHeadAttention

__all__ = ["EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "ACTIVATIONS"]

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation_name(fn) -> str:
    if isinstance(fn, nn.GELU) and fn.approximate != "none":  # F.gelu is the exact GELU
        raise ValueError(f"activation {fn!r} (approximate={fn.approximate!r}) has no "
                         f"counterpart in the course (relu or the exact gelu)")
    for name, f in ACTIVATIONS.items():
        if fn is f or isinstance(fn, {"relu": nn.ReLU, "gelu": nn.GELU}[name]):
            return name
    raise ValueError(f"activation {fn!r} has no counterpart in the course (relu or gelu)")


class _Layer(nn.Module):
    """What encoder and decoder layers share: the feed-forward block, norms and residuals."""

    def __init__(self, d_model, num_heads, dim_feedforward, dropout, activation, layer_norm_eps,
                 norm_first, bias, attention_fn, num_attn, num_norms):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        check_int("dim_feedforward", dim_feedforward, minimum=1)
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0,
                              include_maximum=False)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        check_float("layer_norm_eps", layer_norm_eps, minimum=0.0, include_minimum=False)
        check_bool("norm_first", norm_first)
        check_bool("bias", bias)
        check_attention_fn(attention_fn)
        self.activation, self.norm_first = activation, norm_first
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
                                   for _ in range(num_norms))
        self.dropout = nn.Dropout(dropout)
        # Created last, as in earlier versions: the parameter order fixes the random init.
        attn = {"bias": bias, "dropout": dropout, "attention_fn": attention_fn}
        self.self_attn = MultiHeadAttention(d_model, num_heads, **attn)
        if num_attn == 2:
            self.cross_attn = MultiHeadAttention(d_model, num_heads, **attn)

    def feed_forward(self, x):
        """Position-wise ``linear2(act(linear1(x)))``: ``(B, L, D)`` → same."""
        act = ACTIVATIONS[self.activation]
        hidden = self.dropout(act(self.linear1(x)))  # (B, L, F)
        return self.linear2(hidden)  # (B, L, D)

    def sublayer(self, i, x, block):
        """Residual + LayerNorm around ``block``: post-LN or pre-LN."""
        if self.norm_first:
            return x + self.dropout(block(self.norms[i](x)))  # x + Sublayer(LN(x))
        return self.norms[i](x + self.dropout(block(x)))  # LN(x + Sublayer(x))

    @staticmethod
    def _attend(attn, query, memory, mask, is_causal, need_weights, past=None, static=False):
        """``attn`` on checked arguments → ``(output (B, Lq, D), weights or None, present)``.

        ``past``/``present``: this attention's key–value cache, see
        :func:`~attention_course.cache.project_with_cache` (``static`` for cross-attention)."""
        q, k, v, present = project_with_cache(attn, query, memory, memory, past,
                                              static=static, checked=True)
        out, weights = attn.attend(q, k, v, mask, is_causal=is_causal,
                                   need_weights=need_weights, checked=True)
        return out, weights, present

    def _copy_common(self, m, num_norms):
        with torch.no_grad():
            for ours, theirs in ((self.linear1, m.linear1), (self.linear2, m.linear2),
                                 *((self.norms[i], getattr(m, f"norm{i + 1}"))
                                   for i in range(num_norms))):
                ours.load_state_dict(theirs.state_dict())
                if isinstance(ours, nn.LayerNorm):  # each torch norm may have its own eps
                    ours.eps = theirs.eps


def _layer_options(m):
    """Constructor options of a torch Transformer layer, refusing what the course lacks."""
    if not m.self_attn.batch_first:
        raise ValueError("the torch layer must be batch_first=True (the course is batch-first)")
    return {
        "d_model": m.linear1.in_features, "num_heads": m.self_attn.num_heads,
        "dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p,
        "activation": _activation_name(m.activation), "layer_norm_eps": m.norm1.eps,
        "norm_first": m.norm_first, "bias": m.linear1.bias is not None,
    }


def _with_weights(x, weights, need_weights):
    return (x, weights) if need_weights else x


class EncoderLayer(_Layer):
    """Self-attention + feed-forward, mirroring ``nn.TransformerEncoderLayer(batch_first=True)``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 norm_first: bool = False, bias: bool = True, *,
                 attention_fn: AttentionFn | None = None):
        super().__init__(d_model, num_heads, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias, attention_fn, num_attn=1, num_norms=2)

    def check_inputs(self, x, mask=None, *, is_causal=False, need_weights=False):
        """Check ``forward``'s arguments; return the mask as ``(B|1, H|1, L|1, L)``."""
        return self.self_attn.check_inputs(x, x, x, mask, is_causal=is_causal,
                                           need_weights=need_weights,
                                           names=("x", "x", "x", "mask"))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *,
                is_causal: bool = False, need_weights: bool = False):
        """``x`` ``(B, L, D)`` → ``(B, L, D)``; ``mask`` e.g. ``padding[:, None, :]``.

        With ``need_weights=True``: ``(output, {"self_attn": (B, H, L, L)})``.
        """
        mask = self.check_inputs(x, mask, is_causal=is_causal, need_weights=need_weights)
        x, weights, _ = self._forward(x, mask, is_causal, need_weights)
        return _with_weights(x, weights, need_weights)

    def _forward(self, x, mask, is_causal, need_weights, past=None):
        """``forward`` on checked arguments → ``(output, weights, present)``.

        ``past``/``present``: key–value caches ``{"self_attn": (k, v)}``
        (Chapter 8, :mod:`attention_course.cache`)."""
        weights, present = {}, {}

        def self_attention(h):  # (B, L, D) -> (B, L, D); keeps the weights
            out, weights["self_attn"], present["self_attn"] = self._attend(
                self.self_attn, h, h, mask, is_causal, need_weights,
                None if past is None else past["self_attn"])
            return out

        x = self.sublayer(0, x, self_attention)
        return self.sublayer(1, x, self.feed_forward), weights, present

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoderLayer) -> EncoderLayer:
        """An exact copy of ``m`` (same weights, dtype and device)."""
        if not isinstance(m, nn.TransformerEncoderLayer):
            raise TypeError(f"m must be nn.TransformerEncoderLayer, got {type(m).__name__}")
        new = cls(**_layer_options(m)).to(m.linear1.weight)
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new._copy_common(m, 2)
        return new.train(m.training)


class DecoderLayer(_Layer):
    """Masked self-attention, cross-attention over ``memory``, feed-forward; mirrors
    ``nn.TransformerDecoderLayer(batch_first=True)``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 norm_first: bool = False, bias: bool = True, *,
                 attention_fn: AttentionFn | None = None):
        super().__init__(d_model, num_heads, dim_feedforward, dropout, activation,
                         layer_norm_eps, norm_first, bias, attention_fn, num_attn=2, num_norms=3)

    def check_inputs(self, x, memory, tgt_mask=None, memory_mask=None, *, is_causal=False,
                     need_weights=False):
        """Check ``forward``'s arguments; return both masks in ``(B|1, H|1, Lq|1, Lk)`` form."""
        tgt_mask = self.self_attn.check_inputs(x, x, x, tgt_mask, is_causal=is_causal,
                                               need_weights=need_weights,
                                               names=("x", "x", "x", "tgt_mask"))
        memory_mask = self.cross_attn.check_inputs(x, memory, memory, memory_mask,
                                                   names=("x", "memory", "memory",
                                                          "memory_mask"))
        return tgt_mask, memory_mask

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                tgt_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                *, is_causal: bool = False, need_weights: bool = False):
        """``x`` ``(B, T, D)``, ``memory`` ``(B, S, D)`` → ``(B, T, D)``.

        ``is_causal`` masks future target positions; ``memory_mask`` e.g.
        ``src_padding[:, None, :]``. With ``need_weights=True``: ``(output, {"self_attn":
        (B, H, T, T), "cross_attn": (B, H, T, S)})``.
        """
        masks = self.check_inputs(x, memory, tgt_mask, memory_mask, is_causal=is_causal,
                                  need_weights=need_weights)
        x, weights, _ = self._forward(x, memory, *masks, is_causal, need_weights)
        return _with_weights(x, weights, need_weights)

    def _forward(self, x, memory, tgt_mask, memory_mask, is_causal,
                 need_weights, past=None):
        """``forward`` on checked arguments → ``(output, weights, present)``.

        ``past``/``present``: key–value caches ``{"self_attn": (k, v),
        "cross_attn": (k, v)}`` (Chapter 8, :mod:`attention_course.cache`):
        the first grows by the new positions, the second holds the memory's
        keys and values, projected once."""
        weights, present = {}, {}
        past = past or {}

        def self_attention(h):  # (B, T, D) -> (B, T, D), causal over the target
            out, weights["self_attn"], present["self_attn"] = self._attend(
                self.self_attn, h, h, tgt_mask, is_causal, need_weights,
                past.get("self_attn"))
            return out

        def cross_attention(h):  # queries h (B, T, D); keys, values: memory
            out, weights["cross_attn"], present["cross_attn"] = self._attend(
                self.cross_attn, h, memory, memory_mask, False, need_weights,
                past.get("cross_attn"), static=True)
            return out  # (B, T, D)

        x = self.sublayer(0, x, self_attention)
        x = self.sublayer(1, x, cross_attention)
        return self.sublayer(2, x, self.feed_forward), weights, present

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoderLayer) -> DecoderLayer:
        """An exact copy of ``m`` (same weights, dtype and device)."""
        if not isinstance(m, nn.TransformerDecoderLayer):
            raise TypeError(f"m must be nn.TransformerDecoderLayer, got {type(m).__name__}")
        new = cls(**_layer_options(m)).to(m.linear1.weight)
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new.cross_attn = MultiHeadAttention.from_torch(m.multihead_attn)
        new._copy_common(m, 3)
        return new.train(m.training)


class _Stack(nn.Module):
    layer_type: type

    def __init__(self, layer: nn.Module, num_layers: int, norm: nn.LayerNorm | None = None):
        super().__init__()
        if not isinstance(layer, self.layer_type):
            raise TypeError(f"layer must be a {self.layer_type.__name__}, got "
                            f"{type(layer).__name__}")
        check_int("num_layers", num_layers, minimum=1)
        if norm is not None and not isinstance(norm, nn.LayerNorm):
            raise TypeError(f"norm must be an nn.LayerNorm or None, got {type(norm).__name__}")
        d_model = layer.linear1.in_features
        if norm is not None and tuple(norm.normalized_shape) != (d_model,):
            raise ValueError(f"norm normalises shape {tuple(norm.normalized_shape)} but the "
                             f"layers have d_model={d_model}; expected nn.LayerNorm({d_model})")
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm  # a final LayerNorm (what pre-LN stacks need), or None

    def _run(self, x, need_weights, *args, past=None):
        """Every layer's ``_forward`` on checked arguments, then the final norm → ``(x,
        [weights dict per layer], [cache dict per layer])``; ``past``: the caches a previous
        call returned (see :mod:`~attention_course.cache`), or ``None``."""
        weights, present = [], []
        for i, layer in enumerate(self.layers):
            x, w, p = layer._forward(x, *args, need_weights,
                                     None if past is None else past[i])
            weights.append(w)
            present.append(p)
        return (x if self.norm is None else self.norm(x)), weights, present

    @classmethod
    def _from_torch(cls, m, torch_type):
        if not isinstance(m, torch_type):
            raise TypeError(f"m must be nn.{torch_type.__name__}, got {type(m).__name__}")
        new = cls(cls.layer_type.from_torch(m.layers[0]), len(m.layers),
                  None if m.norm is None else copy.deepcopy(m.norm))
        new.layers = nn.ModuleList(cls.layer_type.from_torch(layer) for layer in m.layers)
        return new


class Encoder(_Stack):
    """``num_layers`` copies of an :class:`EncoderLayer` (+ optional final norm), like
    ``nn.TransformerEncoder``. ``forward(x, mask=None, *, is_causal=False,
    need_weights=False)``; weights: a list of per-layer dicts."""

    layer_type = EncoderLayer

    def forward(self, x, mask=None, *, is_causal=False, need_weights=False):
        mask = self.layers[0].check_inputs(x, mask, is_causal=is_causal,
                                           need_weights=need_weights)
        return _with_weights(*self._run(x, need_weights, mask, is_causal)[:2], need_weights)

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoder) -> Encoder:
        """An exact copy of ``m`` (every layer and the final norm)."""
        return cls._from_torch(m, nn.TransformerEncoder)


class Decoder(_Stack):
    """``num_layers`` copies of a :class:`DecoderLayer` (+ optional final norm), like
    ``nn.TransformerDecoder``. ``forward(x, memory, tgt_mask=None, memory_mask=None, *,
    is_causal=False, need_weights=False)``; weights: a list of per-layer dicts."""

    layer_type = DecoderLayer

    def forward(self, x, memory, tgt_mask=None, memory_mask=None, *, is_causal=False,
                need_weights=False):
        masks = self.layers[0].check_inputs(x, memory, tgt_mask, memory_mask,
                                            is_causal=is_causal, need_weights=need_weights)
        return _with_weights(*self._run(x, need_weights, memory, *masks, is_causal)[:2],
                             need_weights)

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoder) -> Decoder:
        """An exact copy of ``m`` (every layer and the final norm)."""
        return cls._from_torch(m, nn.TransformerDecoder)
