"""The encoder–decoder Transformer for token sequences (Vaswani et al., 2017).

Embeddings scaled by :math:`\\sqrt{d_\\text{model}}` plus sinusoidal positions, an
:class:`~attention_course.transformer.Encoder` and a causal
:class:`~attention_course.transformer.Decoder`, and a linear output layer ("generator").

The embeddings start from :math:`\\mathcal{N}(0, 1/d_\\text{model})`, so that after the
:math:`\\sqrt{d_\\text{model}}` scale every feature of a token has unit variance: the same scale
as the sinusoids it is added to (features in ``[-1, 1]``, variance 1/2). ``nn.Embedding``'s own
:math:`\\mathcal{N}(0, 1)` would make the tokens :math:`\\sqrt{d_\\text{model}}` times larger and
drown the positions. :math:`\\mathcal{N}(0, 1/d_\\text{model})` is also the right scale for an
output layer, so ``tie_weights=True`` can share the target embedding with the generator, as
Vaswani et al. (2017) did.

Token ids (``pad_id``, ``bos_id``) come from :class:`TransformerConfig`, whose defaults are the
course vocabulary's (:mod:`attention_course.data.vocab`).

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` = ``d_model``,
``V`` target vocabulary, ``H`` heads.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_instance,
    check_int,
    check_lengths,
    check_like_module,
    check_same_device,
    check_tensor,
    check_tokens,
)
from attention_course.data.vocab import BOS, PAD
from attention_course.masks import key_padding_mask
from attention_course.multihead import check_head_mask
from attention_course.positional import SinusoidalPositionalEncoding
from attention_course.transformer import ACTIVATIONS, Decoder, DecoderLayer, Encoder, EncoderLayer

__all__ = ["TransformerConfig", "TransformerSeq2Seq"]


@dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters and token ids of a :class:`TransformerSeq2Seq`, validated on
    construction."""

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
    tie_weights: bool = False
    max_len: int = 256
    pad_id: int = PAD
    bos_id: int = BOS

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_heads",
                     "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "max_len"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        check_bool("norm_first", self.norm_first)
        check_bool("tie_weights", self.tie_weights)
        for name in ("pad_id", "bos_id"):
            check_int(name, getattr(self, name), minimum=0)
        if self.pad_id >= min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(f"pad_id={self.pad_id} must be a token of both vocabularies "
                             f"(sizes {self.src_vocab_size} and {self.tgt_vocab_size})")
        if self.bos_id >= self.tgt_vocab_size:
            raise ValueError(f"bos_id={self.bos_id} must be a token of the target vocabulary "
                             f"(size {self.tgt_vocab_size})")


class TransformerSeq2Seq(nn.Module):
    """Encoder–decoder Transformer with the interface of
    :class:`~attention_course.models.rnn_seq2seq.RNNSeq2Seq`: ``forward(src, src_lengths,
    tgt_in, *, need_weights=False)`` → ``(logits (B, T, V), weights or None)`` and
    :meth:`greedy_decode`.

    With ``need_weights=True`` the weights are ``{"encoder": [...], "decoder": [...]}``: per
    layer, bottom to top, a dict of per-head weights — encoder ``{"self_attn": (B, H, S, S)}``,
    decoder ``{"self_attn": (B, H, T, T), "cross_attn": (B, H, T, S)}``.

    With ``config.tie_weights`` the generator's weight *is* the target embedding's
    (``generator.weight is tgt_embedding.weight``, ``(V, D)``): one matrix reads tokens in and
    scores them out, and the model has ``V·D`` fewer parameters. The generator keeps its own bias.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        check_instance("config", config, TransformerConfig)
        c = self.config = config
        layer = {"d_model": c.d_model, "num_heads": c.num_heads,
                 "dim_feedforward": c.dim_feedforward, "dropout": c.dropout,
                 "activation": c.activation, "norm_first": c.norm_first}
        final_norm = nn.LayerNorm(c.d_model) if c.norm_first else None
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_id)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id)
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
        # Embeddings: N(0, 1/D), so that sqrt(D) * embedding has unit-variance features, like
        # the sinusoids added to it. The PAD row stays zero.
        with torch.no_grad():
            for embedding in (self.src_embedding, self.tgt_embedding):
                nn.init.normal_(embedding.weight, std=c.d_model ** -0.5)
                embedding.weight[c.pad_id].zero_()
        if c.tie_weights:  # one (V, D) matrix: embedding in, generator out
            self.generator.weight = self.tgt_embedding.weight

    def _embed(self, embedding, tokens, start=0):
        """Scaled embedding plus the encoding of positions ``start …`` → ``(B, L, D)``."""
        x = embedding(tokens) * math.sqrt(self.config.d_model)  # (B, L, D)
        return self.positional(x, start=start)

    def _check_tokens(self, name, tokens, vocab_size):
        check_tensor(name, tokens, ndim=2, integer=True)
        check_same_device(name, tokens, "the model", self.generator.weight.device)
        check_tokens(name, tokens, vocab_size)

    def _check_source(self, src, src_lengths):
        self._check_tokens("src", src, self.config.src_vocab_size)
        check_tensor("src_lengths", src_lengths)
        check_same_device("src_lengths", src_lengths, "src", src.device)
        check_lengths("src_lengths", src_lengths, src.shape[0], src.shape[1])
        if src.shape[1] > self.config.max_len:
            raise ValueError(f"src has length {src.shape[1]}; the model's max_len is "
                             f"{self.config.max_len}")

    def _check_target(self, tgt_in, batch_size, batch_of="src"):
        self._check_tokens("tgt_in", tgt_in, self.config.tgt_vocab_size)
        if tgt_in.shape[0] != batch_size:
            raise ValueError(f"tgt_in has batch size {tgt_in.shape[0]} but {batch_of} has "
                             f"{batch_size}")
        if tgt_in.shape[1] > self.config.max_len:
            raise ValueError(f"tgt_in has length {tgt_in.shape[1]}; the model's max_len is "
                             f"{self.config.max_len}")

    def _encode(self, src, src_lengths, need_weights=False):
        key_mask = key_padding_mask(src_lengths, src.shape[1])[:, None]  # (B, 1, 1, S)
        h = self._embed(self.src_embedding, src)  # (B, S, D)
        memory, weights, _ = self.encoder._run(h, need_weights, key_mask, False)
        return memory, key_mask, (weights if need_weights else None)

    def _decode(self, tgt_in, memory, key_mask, need_weights=False, past=None):
        """→ ``(logits (B, T, V), weights or None, present)``; ``past``/``present``: the
        decoder's key–value caches, one dict per layer (see :meth:`decode_step`)."""
        start = 0 if past is None else past[0]["self_attn"][0].shape[2]  # cached positions
        h = self._embed(self.tgt_embedding, tgt_in, start)  # (B, T, D)
        h, weights, present = self.decoder._run(h, need_weights, memory, None, key_mask, True,
                                                past=past)
        return self.generator(h), (weights if need_weights else None), present

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor):
        """``src`` ``(B, S)``, ``src_lengths`` ``(B,)`` → memory ``(B, S, D)`` and the key mask
        ``(B, 1, 1, S)`` for :meth:`decode`."""
        self._check_source(src, src_lengths)
        return self._encode(src, src_lengths)[:2]

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor):
        """``tgt_in`` ``(B, T)`` → logits ``(B, T, V)`` (causal: position t sees ≤ t).

        ``memory`` ``(B, S, D)`` and ``key_mask`` ``(B, 1, 1, S)`` (or ``(B, 1, S)``; ``None``:
        no source padding) as :meth:`encode` returns them."""
        key_mask = self._check_decode(tgt_in, memory, key_mask)
        return self._decode(tgt_in, memory, key_mask)[0]

    def decode_step(self, tgt_new: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor,
                    past=None):
        """Decode the next target tokens with a key–value cache → ``(logits (B, T, V),
        present)``.

        ``tgt_new`` ``(B, T)`` are the tokens after the ``P`` already decoded (at positions
        ``P … P + T - 1``); ``past`` is what the previous call returned (``None`` at the
        start: ``P = 0``). ``present`` holds, per decoder layer, ``{"self_attn": (k, v),
        "cross_attn": (k, v)}``: the self-attention's keys and values of all ``P + T``
        positions ``(B, H, P + T, Dh)``, and the memory's, projected once ``(B, H, S, Dh)``.
        Feeding a sequence in pieces gives the logits :meth:`decode` gives for the whole.
        """
        key_mask = self._check_decode(tgt_new, memory, key_mask)
        if past is not None:
            if not isinstance(past, list) or len(past) != self.config.num_decoder_layers:
                raise TypeError(f"past must be the list of {self.config.num_decoder_layers} "
                                f"per-layer caches a previous decode_step returned, or None; "
                                f"got {type(past).__name__}")
            done = past[0]["self_attn"][0].shape[2]
            if done + tgt_new.shape[1] > self.config.max_len:
                raise ValueError(f"past holds {done} positions and tgt_new adds "
                                 f"{tgt_new.shape[1]}: more than max_len = "
                                 f"{self.config.max_len}")
        logits, _, present = self._decode(tgt_new, memory, key_mask, past=past)
        return logits, present

    def _check_decode(self, tgt_in, memory, key_mask):
        """:meth:`decode`'s checks; returns ``key_mask`` as ``(B|1, H|1, T|1, S)``."""
        check_tensor("memory", memory, ndim=3, floating=True)
        if memory.shape[2] != self.config.d_model:
            raise ValueError(f"memory must have shape (B, S, D) with D = d_model = "
                             f"{self.config.d_model} (as encode returns it), got "
                             f"{tuple(memory.shape)}")
        check_like_module("memory", memory, self.generator.weight)
        self._check_target(tgt_in, memory.shape[0], batch_of="memory")
        if key_mask is not None:
            check_tensor("key_mask", key_mask)
            if key_mask.dim() < 3:  # a (B, S) mask would be read as (T, S) when B == T
                raise ValueError(f"key_mask must have shape (B, 1, 1, S) or (B, 1, S) (as encode "
                                 f"returns it), got {tuple(key_mask.shape)}")
            B, S = memory.shape[:2]
            key_mask = check_head_mask("key_mask", key_mask, B, self.config.num_heads,
                                       tgt_in.shape[1], S, device=memory.device)
        return key_mask

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor, *,
                need_weights: bool = False):
        """Teacher forcing: ``src`` ``(B, S)``, ``src_lengths`` ``(B,)``, ``tgt_in`` ``(B, T)``
        → ``(logits (B, T, V), weights or None)`` (see the class docstring)."""
        self._check_source(src, src_lengths)
        self._check_target(tgt_in, src.shape[0])
        check_bool("need_weights", need_weights)
        memory, key_mask, enc_weights = self._encode(src, src_lengths, need_weights)
        logits, dec_weights, _ = self._decode(tgt_in, memory, key_mask, need_weights)
        weights = {"encoder": enc_weights, "decoder": dec_weights} if need_weights else None
        return logits, weights

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int, *,
                      use_cache: bool = True):
        """Generate ``max_len`` tokens from ``bos_id``, feeding back the argmax → tokens
        ``(B, max_len)`` and ``None`` (call ``forward`` with ``need_weights=True`` on the
        result to inspect the weights).

        ``use_cache=True`` decodes one new token per step with a key–value cache
        (:meth:`decode_step`); ``False`` re-decodes the whole prefix at every step. Both give
        the same tokens."""
        self._check_source(src, src_lengths)
        check_int("max_len", max_len, minimum=1)
        check_bool("use_cache", use_cache)
        if max_len > self.config.max_len:
            raise ValueError(f"max_len={max_len} exceeds the model's max_len "
                             f"{self.config.max_len}")
        memory, key_mask, _ = self._encode(src, src_lengths)
        tokens = torch.full((src.shape[0], 1), self.config.bos_id, device=src.device)  # (B, 1)
        past = None
        for _ in range(max_len):
            if use_cache:  # only the newest token, with the cache of the earlier ones
                logits, _, past = self._decode(tokens[:, -1:], memory, key_mask, past=past)
            else:  # the whole prefix again
                logits, _, _ = self._decode(tokens, memory, key_mask)  # (B, t, V)
            tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)
        return tokens[:, 1:], None
