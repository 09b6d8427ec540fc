"""The Transformer: encoder and decoder layers, their stacks, and an encoder–decoder model.

Each layer mirrors its ``torch.nn`` counterpart (batch-first) and can copy one with
``from_torch``. Post-LN (the original paper, default) computes ``LayerNorm(x + Sublayer(x))``;
pre-LN (``norm_first=True``) computes ``x + Sublayer(LayerNorm(x))``. Masks use the course
convention (boolean, ``True`` = may attend) with the shapes :class:`MultiHeadAttention` accepts.

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` = ``d_model``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import check_int, check_tensor
from attention_course.data import BOS, PAD
from attention_course.masks import padding_mask
from attention_course.multihead import MultiHeadAttention
from attention_course.positional import SinusoidalPositionalEncoding

__all__ = ["TransformerConfig", "EncoderLayer", "DecoderLayer", "Encoder", "Decoder",
           "Transformer"]

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


@dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of a :class:`Transformer`, validated on construction."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = False
    max_len: int = 256

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_heads",
                     "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "max_len"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")


def _activation_name(fn) -> str:
    for name, f in ACTIVATIONS.items():
        if fn is f or isinstance(fn, {"relu": nn.ReLU, "gelu": nn.GELU}[name]):
            return name
    raise ValueError(f"activation {fn!r} has no counterpart in the course (relu or gelu)")


class _Layer(nn.Module):
    """What encoder and decoder layers share: the feed-forward block, norms and residuals."""

    def __init__(self, d_model, dim_feedforward, dropout, activation, layer_norm_eps,
                 norm_first, bias, num_norms):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.activation, self.norm_first = activation, norm_first
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
                                   for _ in range(num_norms))
        self.dropout = nn.Dropout(dropout)

    def feed_forward(self, x):
        """Position-wise ``linear2(act(linear1(x)))`` ``(B, L, D)`` → ``(B, L, D)``."""
        hidden = self.dropout(ACTIVATIONS[self.activation](self.linear1(x)))  # (B, L, F)
        return self.linear2(hidden)

    def sublayer(self, i, x, block):
        """Residual + LayerNorm around ``block``: post-LN or pre-LN."""
        if self.norm_first:
            return x + self.dropout(block(self.norms[i](x)))  # x + Sublayer(LN(x))
        return self.norms[i](x + self.dropout(block(x)))  # LN(x + Sublayer(x))

    def _copy_common(self, m, num_norms):
        with torch.no_grad():
            for ours, theirs in ((self.linear1, m.linear1), (self.linear2, m.linear2),
                                 *((self.norms[i], getattr(m, f"norm{i + 1}"))
                                   for i in range(num_norms))):
                ours.load_state_dict(theirs.state_dict())


def _layer_options(m, num_norms):
    """Constructor options of a torch Transformer layer, refusing what the course lacks."""
    if not m.self_attn.batch_first:
        raise ValueError("the torch layer must be batch_first=True (the course is batch-first)")
    return {
        "d_model": m.linear1.in_features, "num_heads": m.self_attn.num_heads,
        "dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p,
        "activation": _activation_name(m.activation), "layer_norm_eps": m.norm1.eps,
        "norm_first": m.norm_first, "bias": m.linear1.bias is not None,
    }


class EncoderLayer(_Layer):
    """Self-attention + feed-forward, mirroring ``nn.TransformerEncoderLayer(batch_first=True)``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 norm_first: bool = False, bias: bool = True):
        super().__init__(d_model, dim_feedforward, dropout, activation, layer_norm_eps,
                         norm_first, bias, num_norms=2)
        self.self_attn = MultiHeadAttention(d_model, num_heads, bias=bias, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *,
                is_causal: bool = False) -> torch.Tensor:
        """``x`` ``(B, L, D)`` → ``(B, L, D)``; ``mask`` e.g. ``padding[:, None, :]``."""
        x = self.sublayer(0, x, lambda h: self.self_attn(h, h, h, mask, is_causal=is_causal)[0])
        return self.sublayer(1, x, self.feed_forward)

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoderLayer) -> EncoderLayer:
        """An exact copy of ``m`` (same weights, dtype and device)."""
        if not isinstance(m, nn.TransformerEncoderLayer):
            raise TypeError(f"m must be nn.TransformerEncoderLayer, got {type(m).__name__}")
        new = cls(**_layer_options(m, 2)).to(m.linear1.weight)
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new._copy_common(m, 2)
        return new.train(m.training)


class DecoderLayer(_Layer):
    """Masked self-attention, cross-attention over ``memory``, feed-forward; mirrors
    ``nn.TransformerDecoderLayer(batch_first=True)``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 norm_first: bool = False, bias: bool = True):
        super().__init__(d_model, dim_feedforward, dropout, activation, layer_norm_eps,
                         norm_first, bias, num_norms=3)
        self.self_attn = MultiHeadAttention(d_model, num_heads, bias=bias, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, bias=bias, dropout=dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                tgt_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                *, is_causal: bool = False) -> torch.Tensor:
        """``x`` ``(B, T, D)``, ``memory`` ``(B, S, D)`` → ``(B, T, D)``.

        ``is_causal`` masks future target positions; ``memory_mask`` e.g.
        ``src_padding[:, None, :]``.
        """
        x = self.sublayer(0, x, lambda h: self.self_attn(h, h, h, tgt_mask,
                                                         is_causal=is_causal)[0])
        x = self.sublayer(1, x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0])
        return self.sublayer(2, x, self.feed_forward)

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoderLayer) -> DecoderLayer:
        """An exact copy of ``m`` (same weights, dtype and device)."""
        if not isinstance(m, nn.TransformerDecoderLayer):
            raise TypeError(f"m must be nn.TransformerDecoderLayer, got {type(m).__name__}")
        new = cls(**_layer_options(m, 3)).to(m.linear1.weight)
        new.self_attn = MultiHeadAttention.from_torch(m.self_attn)
        new.cross_attn = MultiHeadAttention.from_torch(m.multihead_attn)
        new._copy_common(m, 3)
        return new.train(m.training)


class _Stack(nn.Module):
    def __init__(self, layer: nn.Module, num_layers: int, norm: nn.LayerNorm | None):
        super().__init__()
        check_int("num_layers", num_layers, minimum=1)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm  # a final LayerNorm (what pre-LN stacks need), or None

    def _finish(self, x):
        return x if self.norm is None else self.norm(x)

    @classmethod
    def _from_torch(cls, m, layer_cls):
        new = cls(layer_cls.from_torch(m.layers[0]), len(m.layers),
                  None if m.norm is None else copy.deepcopy(m.norm))
        new.layers = nn.ModuleList(layer_cls.from_torch(layer) for layer in m.layers)
        return new


class Encoder(_Stack):
    """``num_layers`` copies of an :class:`EncoderLayer` (+ optional final norm), like
    ``nn.TransformerEncoder``."""

    def forward(self, x, mask=None, *, is_causal=False):
        for layer in self.layers:
            x = layer(x, mask, is_causal=is_causal)
        return self._finish(x)

    @classmethod
    def from_torch(cls, m: nn.TransformerEncoder) -> Encoder:
        if not isinstance(m, nn.TransformerEncoder):
            raise TypeError(f"m must be nn.TransformerEncoder, got {type(m).__name__}")
        return cls._from_torch(m, EncoderLayer)


class Decoder(_Stack):
    """``num_layers`` copies of a :class:`DecoderLayer` (+ optional final norm), like
    ``nn.TransformerDecoder``."""

    def forward(self, x, memory, tgt_mask=None, memory_mask=None, *, is_causal=False):
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, is_causal=is_causal)
        return self._finish(x)

    @classmethod
    def from_torch(cls, m: nn.TransformerDecoder) -> Decoder:
        if not isinstance(m, nn.TransformerDecoder):
            raise TypeError(f"m must be nn.TransformerDecoder, got {type(m).__name__}")
        return cls._from_torch(m, DecoderLayer)


class Transformer(nn.Module):
    """Encoder–decoder Transformer for token sequences, with the same interface as
    :class:`attention_course.rnn.Seq2Seq`: ``forward(src, src_lengths, tgt_in)`` → ``(logits
    (B, T, V), None)`` and :meth:`greedy_decode`."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        c = self.config = config
        layer = {"d_model": c.d_model, "num_heads": c.num_heads,
                 "dim_feedforward": c.dim_feedforward, "dropout": c.dropout,
                 "activation": c.activation, "norm_first": c.norm_first}
        final_norm = nn.LayerNorm(c.d_model) if c.norm_first else None
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model, padding_idx=PAD)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model, padding_idx=PAD)
        self.positional = SinusoidalPositionalEncoding(c.d_model, c.max_len)
        self.encoder = Encoder(EncoderLayer(**layer), c.num_encoder_layers, final_norm)
        self.decoder = Decoder(DecoderLayer(**layer), c.num_decoder_layers,
                               copy.deepcopy(final_norm))
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size)
        # The stacks deep-copy one layer; re-initialise every matrix so layers start different
        # (as torch's nn.Transformer does, with Xavier-uniform).
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embedding" not in name:
                nn.init.xavier_uniform_(p)

    def _embed(self, embedding, tokens):
        return self.positional(embedding(tokens) * math.sqrt(self.config.d_model))  # (B, L, D)

    def encode(self, src, src_lengths):
        """``src`` ``(B, S)`` → memory ``(B, S, D)`` and the key mask ``(B, 1, S)``."""
        check_tensor("src", src, ndim=2, integer=True)
        check_tensor("src_lengths", src_lengths, ndim=1, integer=True)
        key_mask = padding_mask(src_lengths, src.shape[1])[:, None, :]  # (B, 1, S)
        return self.encoder(self._embed(self.src_embedding, src), key_mask), key_mask

    def decode(self, tgt_in, memory, key_mask):
        """``tgt_in`` ``(B, T)`` → logits ``(B, T, V)`` (causal: position t sees ≤ t)."""
        h = self._embed(self.tgt_embedding, tgt_in)
        return self.generator(self.decoder(h, memory, memory_mask=key_mask, is_causal=True))

    def forward(self, src, src_lengths, tgt_in):
        memory, key_mask = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, key_mask), None

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, max_len: int):
        """Generate ``max_len`` tokens from ``BOS``, feeding back the argmax → ``(B, max_len)``
        and ``None`` (no per-step weights; use the layers' ``need_weights`` to inspect them)."""
        check_int("max_len", max_len, minimum=1)
        memory, key_mask = self.encode(src, src_lengths)
        tokens = torch.full((src.shape[0], 1), BOS, device=src.device)  # (B, 1)
        for _ in range(max_len):
            logits = self.decode(tokens, memory, key_mask)  # (B, t, V)
            tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)
        return tokens[:, 1:], None
