r"""T5, the text-to-text encoder–decoder Transformer (Raffel et al., 2020).

Every task is "text in, text out": a task prefix (``"translate English to German: …"``,
``"summarize: …"``) tells one model which task to do. The architecture is the encoder–decoder
of Vaswani et al. with four changes:

- **RMSNorm** (:class:`RMSNorm`, Hugging Face's ``T5LayerNorm``): ``x / rms(x) * w`` — no mean
  subtraction, no bias; used *before* each sub-layer (pre-norm) and once after each stack.
- **No biases** anywhere (attention, feed-forward, LM head).
- **No position embedding**: a learned scalar per head and per *relative position bucket* is
  added to the attention scores, :math:`s_{ij} = q_i \cdot k_j + b_h(\mathrm{bucket}(j - i))`,
  and the dot product is **not** scaled by :math:`1/\sqrt{d}` (T5 folds the scale into the
  initialisation of ``W_Q``). Buckets (:func:`relative_position_bucket`) are exact for small
  distances and logarithmically wider up to ``max_distance``. Encoder self-attention uses
  bidirectional buckets, decoder self-attention causal ones, cross-attention no bias. The bias
  is computed once per stack (Hugging Face keeps its table in the first layer,
  ``block[0]…relative_attention_bias``; here it is the stack's ``position_bias``) and shared
  by every layer of that stack.
- **One embedding** ``shared`` ``(V, D)`` for encoder input, decoder input and the LM head; the
  head multiplies the decoder output by :math:`D^{-1/2}` first (``config.scale_logits``, what
  Hugging Face does for the original T5; T5 v1.1 does not).

The attention of each layer is the course's :class:`~attention_course.multihead.
MultiHeadAttention` (``bias=False``) split at its seam: :meth:`~attention_course.multihead.
MultiHeadAttention.project` (through :func:`~attention_course.cache.project_with_cache` for the
KV cache), then :func:`~attention_course.attention.attention` with T5's compatibility function
(:func:`biased_dot_product_score`), then ``W_O``. No second attention implementation: T5's
attention *is* the soft lookup of Chapter 2 with a different score.

::

    encoder:  h = shared[src];  h += SelfAttn(RMS(h), bias_enc);  h += FF(RMS(h));  m = RMS(h)
    decoder:  g = shared[tgt];  g += SelfAttn(RMS(g), bias_dec, causal)
                                g += CrossAttn(RMS(g), m);  g += FF(RMS(g))
    logits = RMS(g) · D^{-1/2} · shared^T                                     (B, T, V)

**Hugging Face's T5.** :meth:`T5.from_huggingface` copies a ``transformers``
``T5ForConditionalGeneration`` (tested in float64 on randomly initialised models, offline). A
reader with network access can copy the pretrained ``t5-small`` (60M parameters, ~240 MB; not
run by the course, which never downloads weights)::

    from transformers import AutoTokenizer, T5ForConditionalGeneration
    hf = T5ForConditionalGeneration.from_pretrained("t5-small").eval()
    tokenizer = AutoTokenizer.from_pretrained("t5-small")
    model = T5.from_huggingface(hf)        # 6 + 6 layers, D = 512, H = 8, 32 buckets
    batch = tokenizer(["translate English to German: Attention is all you need."],
                      return_tensors="pt")
    out = model.greedy_decode(batch.input_ids, batch.attention_mask.bool(), 20)
    print(tokenizer.decode(out[0], skip_special_tokens=True))

Hugging Face's ``T5LayerNorm`` computes the mean square in float32 even for float64 inputs (a
safeguard for half precision); :class:`RMSNorm` uses at least float32 and float64 for float64
inputs, so in float64 the two differ by ~1e-8 unless Hugging Face's norms are switched to the
inputs' precision with :func:`huggingface_norms_in_input_precision` (what the tests do).

Names: ``paper`` → ``code``: :math:`b_h(\cdot)` → ``position_bias.embedding.weight[bucket,
h]`` ``(num_buckets, H)``; ``d_ff`` → ``config.d_ff``; ``d_kv`` → ``D / H`` (the course requires
``H · d_kv = D``, as in ``t5-small``).

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length (new target positions when
decoding with a cache), ``P`` cached target positions, ``D`` = ``d_model``, ``H`` heads,
``Dh = D / H``, ``V`` vocabulary, ``F`` = ``d_ff``, ``K`` = ``num_buckets``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_int,
    check_like_module,
    check_same_device,
    check_tensor,
    check_tokens,
)
from attention_course.attention import attention, dot_product_score
from attention_course.cache import project_with_cache
from attention_course.data.vocab import BOS, PAD
from attention_course.masks import causal_mask
from attention_course.multihead import MultiHeadAttention, check_head_mask, merge_heads

__all__ = ["T5Config", "T5", "RMSNorm", "RelativePositionBias", "relative_position_bucket",
           "relative_positions", "biased_dot_product_score",
           "huggingface_norms_in_input_precision"]

FEED_FORWARDS = ("relu", "gated-gelu")


def relative_position_bucket(relative_position: torch.Tensor, *,
                             bidirectional: bool, num_buckets: int,
                             max_distance: int) -> torch.Tensor:
    """Map relative positions ``j - i`` (key minus query position) to bucket
    ids in ``[0, num_buckets)``; same shape as ``relative_position`` (an
    integer tensor), dtype int64.

    - ``bidirectional=True`` (encoder): half of the buckets for keys *after*
      the query (``j - i > 0``), half for the others; distance ``|j - i|``.
    - ``bidirectional=False`` (causal decoder): only the past counts,
      distance ``n = max(i - j, 0)`` (future keys, masked anyway, share
      bucket 0 with ``j = i``).

    Of the ``K`` buckets of one direction (``num_buckets``, halved if
    bidirectional), the first ``K/2`` are exact (``n = 0 … K/2 - 1``); the
    others cover ``K/2 <= n < max_distance`` in logarithmically growing bins,
    ``K/2 + ⌊log(n / (K/2)) / log(max_distance / (K/2)) · K/2⌋``; every
    ``n >= max_distance`` lands in the last bucket. Nearby words are told
    apart exactly, far ones roughly, and any length maps to a known bucket.
    The logarithm is taken in float32, as in Mesh TensorFlow and Hugging
    Face (``T5Attention._relative_position_bucket``): the same buckets.
    """
    check_tensor("relative_position", relative_position, integer=True)
    check_bool("bidirectional", bidirectional)
    check_int("num_buckets", num_buckets, minimum=4 if bidirectional else 2)
    check_int("max_distance", max_distance, minimum=1)
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    if bidirectional:
        num_buckets //= 2  # one half per direction
        after = (relative_position > 0).long()  # keys after the query
        buckets += after * num_buckets
        distance = relative_position.abs().long()
    else:  # only the past: n = i - j >= 0
        distance = (-relative_position).clamp(min=0).long()
    max_exact = num_buckets // 2
    if max_distance <= max_exact:
        total = num_buckets * (2 if bidirectional else 1)
        raise ValueError(f"max_distance must exceed the {max_exact} exact "
                         f"buckets (num_buckets={total}), got "
                         f"max_distance={max_distance}")
    ratio = distance.float().clamp(min=1) / max_exact  # log(0) never used
    log_bucket = (torch.log(ratio) / math.log(max_distance / max_exact)
                  * (num_buckets - max_exact)).long()  # truncated, as in TF
    large = (max_exact + log_bucket).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


def relative_positions(query_len: int, key_len: int, *, device=None) -> torch.Tensor:
    """``(Lq, Lk)`` integer matrix of ``j - i``: key position minus query position."""
    check_int("query_len", query_len, minimum=0)
    check_int("key_len", key_len, minimum=0)
    i = torch.arange(query_len, device=device)[:, None]  # (Lq, 1)
    j = torch.arange(key_len, device=device)[None, :]  # (1, Lk)
    return j - i  # (Lq, Lk)


def biased_dot_product_score(bias: torch.Tensor):
    r"""T5's compatibility function: :math:`f(q_i, k_j) = q_i \cdot k_j + b_{ij}` — an
    *unscaled* dot product plus an additive ``bias`` broadcastable to ``(..., Lq, Lk)`` (T5's
    relative position bias ``(1, H, Lq, Lk)``). Returns ``score(query, key)`` for
    :func:`~attention_course.attention.attention`'s ``score=``."""
    check_tensor("bias", bias, floating=True)

    def score(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return dot_product_score(query, key) + bias  # (..., Lq, Lk)

    return score


class RMSNorm(nn.Module):
    r"""Root-mean-square layer norm (Zhang & Sennrich, 2019; T5's ``T5LayerNorm``):
    :math:`y = w \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon}` over the last axis. No mean is
    subtracted and there is no bias. The mean square is accumulated in at least float32
    (float64 for float64 inputs). ``x`` ``(..., D)`` → ``(..., D)``."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        self.eps = check_float("eps", eps, minimum=0.0, include_minimum=False)
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        mean_square = x.to(dtype).pow(2).mean(-1, keepdim=True)  # (..., 1)
        return self.weight * (x * torch.rsqrt(mean_square + self.eps)).to(x.dtype)


class RelativePositionBias(nn.Module):
    """The learned bias table of one stack: ``embedding`` ``(K, H)``, one scalar per bucket and
    head. ``forward(query_len, key_len)`` → bias ``(1, H, Lq, Lk)`` for queries at positions
    ``0 … Lq-1`` and keys ``0 … Lk-1``. ``bidirectional``: encoder (``True``) or causal decoder
    (``False``) buckets, see :func:`relative_position_bucket`."""

    def __init__(self, num_heads: int, *, bidirectional: bool, num_buckets: int = 32,
                 max_distance: int = 128):
        super().__init__()
        check_int("num_heads", num_heads, minimum=1)
        check_bool("bidirectional", bidirectional)
        relative_position_bucket(torch.zeros(1, dtype=torch.long), bidirectional=bidirectional,
                                 num_buckets=num_buckets, max_distance=max_distance)  # checks
        self.bidirectional, self.num_buckets = bidirectional, num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, query_len: int, key_len: int) -> torch.Tensor:
        device = self.embedding.weight.device
        buckets = relative_position_bucket(
            relative_positions(query_len, key_len, device=device),
            bidirectional=self.bidirectional, num_buckets=self.num_buckets,
            max_distance=self.max_distance)  # (Lq, Lk)
        return self.embedding(buckets).permute(2, 0, 1)[None]  # (1, H, Lq, Lk)


@dataclass(frozen=True)
class T5Config:
    """Hyper-parameters and token ids of a :class:`T5`, validated on construction.

    ``feed_forward``: ``"relu"`` (T5: ``wo(relu(wi x))``) or ``"gated-gelu"`` (T5 v1.1:
    ``wo(gelu_tanh(wi_0 x) * wi_1 x)``). ``scale_logits``: multiply the decoder output by
    ``d_model ** -0.5`` before the tied LM head (T5: ``True``; T5 v1.1: ``False``).
    ``dropout`` (Hugging Face's ``dropout_rate``) applies where Hugging Face applies it: the
    embeddings, each sub-layer's output, the feed-forward hidden layer, the attention weights
    and the final norm's output. ``bos_id`` starts the decoder (Hugging Face's
    ``decoder_start_token_id``, which is T5's pad token ``0``; the course's default is its
    ``BOS``)."""

    vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 128
    num_buckets: int = 32
    max_distance: int = 128
    dropout: float = 0.0
    feed_forward: str = "relu"
    eps: float = 1e-6
    scale_logits: bool = True
    pad_id: int = PAD
    bos_id: int = BOS

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "num_heads", "num_encoder_layers",
                     "num_decoder_layers", "d_ff"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        relative_position_bucket(torch.zeros(1, dtype=torch.long), bidirectional=True,
                                 num_buckets=self.num_buckets, max_distance=self.max_distance)
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        if not isinstance(self.feed_forward, str) or self.feed_forward not in FEED_FORWARDS:
            raise ValueError(f"feed_forward must be one of {FEED_FORWARDS}, "
                             f"got {self.feed_forward!r}")
        check_float("eps", self.eps, minimum=0.0, include_minimum=False)
        check_bool("scale_logits", self.scale_logits)
        for name in ("pad_id", "bos_id"):
            check_int(name, getattr(self, name), minimum=0)
            if getattr(self, name) >= self.vocab_size:
                raise ValueError(f"{name}={getattr(self, name)} must be a token of the "
                                 f"vocabulary (size {self.vocab_size})")


class T5Attention(nn.Module):
    """One T5 attention sub-layer's attention: a bias-free :class:`MultiHeadAttention`
    (``attn``) run at its seam with T5's unscaled, position-biased score.

    ``forward(x, kv, mask, bias, past=None, *, static=False)``: queries from ``x`` ``(B, Lq,
    D)``, keys/values from ``kv`` ``(B, Lk, D)``; ``mask`` boolean broadcastable to ``(B, H, Lq,
    Lk)`` (``True`` = may attend) or ``None``; ``bias`` ``(1, H, Lq, Lk)`` or ``None``;
    ``past``/``static``: see :func:`~attention_course.cache.project_with_cache`. Returns
    ``(output (B, Lq, D), weights (B, H, Lq, Lk), present)``."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, num_heads, bias=False)
        self.dropout = dropout

    def forward(self, x, kv, mask, bias, past=None, *, static=False):
        q, k, v, present = project_with_cache(self.attn, x, kv, kv, past, static=static,
                                              checked=True)  # (B, H, Lq|Lk, Dh)
        score = dot_product_score if bias is None else biased_dot_product_score(bias)
        heads, weights = attention(q, k, v, score=score, mask=mask)  # (B, H, Lq, Dh)
        if self.training and self.dropout > 0.0:  # dropout on the weights, as Hugging Face
            weights = F.dropout(weights, p=self.dropout, training=True)
            heads = weights @ v
        return self.attn.W_O(merge_heads(heads)), weights, present  # (B, Lq, D)


class FeedForward(nn.Module):
    """``wo(dropout(relu(wi x)))`` or, gated, ``wo(dropout(gelu_tanh(wi_0 x) * wi_1 x))``;
    no biases. ``(..., D)`` → ``(..., D)``."""

    def __init__(self, d_model: int, d_ff: int, kind: str = "relu", dropout: float = 0.0):
        super().__init__()
        self.gated = kind == "gated-gelu"
        if self.gated:
            self.wi_0 = nn.Linear(d_model, d_ff, bias=False)
            self.wi_1 = nn.Linear(d_model, d_ff, bias=False)
        else:
            self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            hidden = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x)  # (..., F)
        else:
            hidden = F.relu(self.wi(x))  # (..., F)
        return self.wo(self.dropout(hidden))


class T5Layer(nn.Module):
    """One pre-norm block: ``x += SelfAttn(RMS(x))``; for a decoder layer also ``x +=
    CrossAttn(RMS(x), memory)``; then ``x += FF(RMS(x))``. ``forward(x, self_mask, bias,
    memory=None, memory_mask=None, past=None)`` → ``(x, weights dict, present dict)``."""

    def __init__(self, config: T5Config, *, decoder: bool):
        super().__init__()
        c = config
        self.decoder = decoder
        self.self_norm = RMSNorm(c.d_model, c.eps)
        self.self_attn = T5Attention(c.d_model, c.num_heads, c.dropout)
        if decoder:
            self.cross_norm = RMSNorm(c.d_model, c.eps)
            self.cross_attn = T5Attention(c.d_model, c.num_heads, c.dropout)
        self.ff_norm = RMSNorm(c.d_model, c.eps)
        self.ff = FeedForward(c.d_model, c.d_ff, c.feed_forward, c.dropout)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, self_mask, bias, memory=None, memory_mask=None, past=None):
        past = past or {}
        h = self.self_norm(x)  # (B, L, D)
        out, w_self, kv_self = self.self_attn(h, h, self_mask, bias, past.get("self_attn"))
        x = x + self.dropout(out)
        weights, present = {"self_attn": w_self}, {"self_attn": kv_self}
        if self.decoder:
            h = self.cross_norm(x)
            cached = past.get("cross_attn")  # the memory's keys and values, projected once
            out, w_cross, kv_cross = self.cross_attn(h, memory, memory_mask, None, cached,
                                                     static=cached is not None)
            x = x + self.dropout(out)
            weights["cross_attn"], present["cross_attn"] = w_cross, kv_cross
        x = x + self.dropout(self.ff(self.ff_norm(x)))  # (B, L, D)
        return x, weights, present


class T5Stack(nn.Module):
    """An encoder or decoder stack: ``position_bias`` (one table for all layers), ``layers``,
    ``final_norm``."""

    def __init__(self, config: T5Config, *, decoder: bool):
        super().__init__()
        c = config
        n = c.num_decoder_layers if decoder else c.num_encoder_layers
        self.position_bias = RelativePositionBias(c.num_heads, bidirectional=not decoder,
                                                  num_buckets=c.num_buckets,
                                                  max_distance=c.max_distance)
        self.layers = nn.ModuleList(T5Layer(c, decoder=decoder) for _ in range(n))
        self.final_norm = RMSNorm(c.d_model, c.eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, self_mask, memory=None, memory_mask=None, past=None):
        """``x`` ``(B, L, D)`` embeddings of positions ``P … P + L - 1`` (``P`` cached, 0
        without ``past``) → ``(hidden (B, L, D), weights per layer, present per layer)``."""
        P = 0 if past is None else past[0]["self_attn"][0].shape[2]
        L = x.shape[1]
        bias = self.position_bias(P + L, P + L)[:, :, P:]  # new queries = last L rows
        x = self.dropout(x)
        weights, present = [], []
        for i, layer in enumerate(self.layers):
            x, w, kv = layer(x, self_mask, bias, memory, memory_mask,
                             None if past is None else past[i])
            weights.append(w)
            present.append(kv)
        return self.dropout(self.final_norm(x)), weights, present


class T5(nn.Module):
    """T5 (see the module docstring). ``forward(src, tgt_in, src_mask=None, *,
    need_weights=False)`` → ``(logits (B, T, V), weights or None)``, with :meth:`encode`,
    :meth:`decode`, :meth:`decode_step` (KV cache) and :meth:`greedy_decode`.

    ``src`` ``(B, S)`` and ``tgt_in`` ``(B, T)`` token ids; ``src_mask`` ``(B, S)`` boolean,
    ``True`` at real source tokens (``None``: all real; Hugging Face's ``attention_mask``).
    Target padding needs no mask: it comes after the real tokens, which the causal mask keeps
    from seeing it. With ``need_weights=True`` the weights are ``{"encoder": [...], "decoder":
    [...]}``, per layer bottom to top a dict: encoder ``{"self_attn": (B, H, S, S)}``, decoder
    ``{"self_attn": (B, H, T, T), "cross_attn": (B, H, T, S)}``.

    Initialisation as Hugging Face's (Mesh TensorFlow's): ``shared`` :math:`\\mathcal{N}(0,
    1)`; ``W_Q`` :math:`\\mathcal{N}(0, 1/(D\\,D_h))` (the missing :math:`1/\\sqrt{D_h}` of the
    scores lives here), ``W_K``, ``W_V``, ``wi`` and the bias tables :math:`\\mathcal{N}(0,
    1/D)`, ``W_O`` :math:`\\mathcal{N}(0, 1/D)`, ``wo`` :math:`\\mathcal{N}(0, 1/F)`, norms 1.
    """

    def __init__(self, config: T5Config):
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config must be a T5Config, got {type(config).__name__}")
        c = self.config = config
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = T5Stack(c, decoder=False)
        self.decoder = T5Stack(c, decoder=True)
        self._init_weights()

    def _init_weights(self):
        c, Dh = self.config, self.config.d_model // self.config.num_heads
        with torch.no_grad():
            nn.init.normal_(self.shared.weight, std=1.0)
            for module in self.modules():
                if isinstance(module, MultiHeadAttention):
                    nn.init.normal_(module.W_Q.weight, std=(c.d_model * Dh) ** -0.5)
                    for linear in (module.W_K, module.W_V, module.W_O):
                        nn.init.normal_(linear.weight, std=c.d_model ** -0.5)
                elif isinstance(module, FeedForward):
                    for name in ("wi", "wi_0", "wi_1"):
                        if hasattr(module, name):
                            nn.init.normal_(getattr(module, name).weight, std=c.d_model ** -0.5)
                    nn.init.normal_(module.wo.weight, std=c.d_ff ** -0.5)
                elif isinstance(module, RelativePositionBias):
                    nn.init.normal_(module.embedding.weight, std=c.d_model ** -0.5)

    # ------------------------------------------------------------------------- checks

    def _check_tokens(self, name, tokens):
        check_tensor(name, tokens, ndim=2, integer=True)
        check_same_device(name, tokens, "the model", self.shared.weight.device)
        check_tokens(name, tokens, self.config.vocab_size)

    def _source_mask(self, src, src_mask):
        """``src_mask`` ``(B, S)`` → key mask ``(B, 1, 1, S)`` (``None`` stays ``None``)."""
        if src_mask is None:
            return None
        check_tensor("src_mask", src_mask, ndim=2, dtype=torch.bool)
        if src_mask.shape != src.shape:
            raise ValueError(f"src_mask must have the shape of src {tuple(src.shape)} (B, S), "
                             f"True at real tokens; got {tuple(src_mask.shape)}")
        check_same_device("src_mask", src_mask, "src", src.device)
        return src_mask[:, None, None, :]  # (B, 1, 1, S)

    def _check_memory(self, tgt, memory, key_mask):
        check_tensor("memory", memory, ndim=3, floating=True)
        if memory.shape[2] != self.config.d_model:
            raise ValueError(f"memory must have shape (B, S, D) with D = d_model = "
                             f"{self.config.d_model} (as encode returns it), got "
                             f"{tuple(memory.shape)}")
        check_like_module("memory", memory, self.shared.weight)
        if tgt.shape[0] != memory.shape[0]:
            raise ValueError(f"tgt has batch size {tgt.shape[0]} but memory has "
                             f"{memory.shape[0]}")
        if key_mask is not None:
            if not isinstance(key_mask, torch.Tensor) or key_mask.dim() != 4:
                got = (tuple(key_mask.shape) if isinstance(key_mask, torch.Tensor)
                       else type(key_mask).__name__)
                raise ValueError(f"key_mask must have shape (B, 1, 1, S) as encode returns "
                                 f"it, got {got}")
            B, S = memory.shape[:2]
            check_head_mask("key_mask", key_mask, B, self.config.num_heads, tgt.shape[1], S,
                            device=memory.device)

    # ------------------------------------------------------------------------- model

    def _encode(self, src, key_mask):
        memory, weights, _ = self.encoder(self.shared(src), key_mask)  # (B, S, D)
        return memory, weights

    def _decode(self, tgt, memory, key_mask, past=None):
        P = 0 if past is None else past[0]["self_attn"][0].shape[2]
        causal = causal_mask(tgt.shape[1], P + tgt.shape[1], device=tgt.device)  # (T, P+T)
        h, weights, present = self.decoder(self.shared(tgt), causal, memory, key_mask, past)
        if self.config.scale_logits:
            h = h * self.config.d_model ** -0.5
        return h @ self.shared.weight.T, weights, present  # (B, T, V): the tied head

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None):
        """``src`` ``(B, S)`` → ``(memory (B, S, D), key_mask (B, 1, 1, S) or None)`` for
        :meth:`decode` and :meth:`decode_step`."""
        self._check_tokens("src", src)
        key_mask = self._source_mask(src, src_mask)
        return self._encode(src, key_mask)[0], key_mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor,
               key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``tgt_in`` ``(B, T)`` → logits ``(B, T, V)`` (causal: position t sees ≤ t)."""
        self._check_tokens("tgt_in", tgt_in)
        self._check_memory(tgt_in, memory, key_mask)
        return self._decode(tgt_in, memory, key_mask)[0]

    def decode_step(self, tgt_new: torch.Tensor, memory: torch.Tensor,
                    key_mask: torch.Tensor | None = None, past=None):
        """Decode the next target tokens with a key–value cache → ``(logits (B, T, V),
        present)``.

        ``tgt_new`` ``(B, T)`` are the tokens at positions ``P … P + T - 1`` after the ``P``
        already decoded; ``past`` is what the previous call returned (``None``: ``P = 0``).
        ``present`` holds, per decoder layer, ``{"self_attn": (k, v), "cross_attn": (k, v)}``:
        the keys and values of all ``P + T`` target positions ``(B, H, P + T, Dh)`` and the
        memory's ``(B, H, S, Dh)``, projected once. The position bias of the new queries is the
        last ``T`` rows of the ``(P + T, P + T)`` bias. Feeding a target in pieces gives the
        logits :meth:`decode` gives for the whole."""
        self._check_tokens("tgt_new", tgt_new)
        self._check_memory(tgt_new, memory, key_mask)
        n = self.config.num_decoder_layers
        if past is not None and (not isinstance(past, list) or len(past) != n):
            raise TypeError(f"past must be the list of {n} per-layer caches a previous "
                            f"decode_step returned, or None; got {type(past).__name__}")
        logits, _, present = self._decode(tgt_new, memory, key_mask, past)
        return logits, present

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor,
                src_mask: torch.Tensor | None = None, *, need_weights: bool = False):
        """Teacher forcing → ``(logits (B, T, V), weights or None)`` (see the class
        docstring)."""
        self._check_tokens("src", src)
        self._check_tokens("tgt_in", tgt_in)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in has batch size {tgt_in.shape[0]} but src has "
                             f"{src.shape[0]}")
        check_bool("need_weights", need_weights)
        key_mask = self._source_mask(src, src_mask)
        memory, enc_weights = self._encode(src, key_mask)
        logits, dec_weights, _ = self._decode(tgt_in, memory, key_mask)
        if not need_weights:
            return logits, None
        return logits, {"encoder": enc_weights, "decoder": dec_weights}

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_mask: torch.Tensor | None, max_len: int, *,
                      use_cache: bool = True) -> torch.Tensor:
        """Generate ``max_len`` tokens after ``bos_id``, feeding back the argmax → ``(B,
        max_len)`` (``bos_id`` not included). ``use_cache``: one new token per step with
        :meth:`decode_step`'s cache, or the whole prefix again; the same tokens."""
        check_int("max_len", max_len, minimum=1)
        check_bool("use_cache", use_cache)
        memory, key_mask = self.encode(src, src_mask)
        tokens = torch.full((src.shape[0], 1), self.config.bos_id, device=src.device)
        past = None
        for _ in range(max_len):
            if use_cache:
                logits, _, past = self._decode(tokens[:, -1:], memory, key_mask, past)
            else:
                logits = self._decode(tokens, memory, key_mask)[0]  # (B, t, V)
            tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)
        return tokens[:, 1:]

    # ------------------------------------------------------------------------- Hugging Face

    @classmethod
    def from_huggingface(cls, model) -> T5:
        """An exact copy of a ``transformers`` ``T5ForConditionalGeneration`` (same weights,
        dtype, device and train/eval mode).

        Copied: ``shared``; per stack the relative attention bias table of ``block[0]``'s
        self-attention → ``position_bias.embedding``; per block ``SelfAttention`` /
        ``EncDecAttention`` ``q, k, v, o`` → ``self_attn`` / ``cross_attn`` ``.attn.W_Q, W_K,
        W_V, W_O``; their ``layer_norm`` → ``self_norm`` / ``cross_norm``; ``DenseReluDense``
        ``wi`` (or ``wi_0, wi_1``), ``wo`` → ``ff``; its ``layer_norm`` → ``ff_norm``;
        ``final_layer_norm`` → ``final_norm``. The LM head is ``shared`` (Hugging Face ties it
        always); ``scale_decoder_outputs`` → ``scale_logits``; the generation config's
        ``decoder_start_token_id`` (default: ``pad_token_id``, T5's choice) → ``bos_id``.
        Refused: ``d_kv * num_heads != d_model``, an activation other than ``relu`` /
        ``gated-gelu``.

        ``transformers`` is an optional extra, imported here only.
        """
        from transformers import T5ForConditionalGeneration

        if not isinstance(model, T5ForConditionalGeneration):
            raise TypeError(f"model must be a transformers T5ForConditionalGeneration, got "
                            f"{type(model).__name__}")
        start = getattr(model.generation_config, "decoder_start_token_id", None)
        config = cls._config_from_huggingface(model.config, start)
        ref = model.shared.weight
        new = cls(config).to(dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            new.shared.weight.copy_(model.shared.weight)
            for ours, theirs in ((new.encoder, model.encoder), (new.decoder, model.decoder)):
                table = theirs.block[0].layer[0].SelfAttention.relative_attention_bias
                ours.position_bias.embedding.weight.copy_(table.weight)
                for layer, block in zip(ours.layers, theirs.block, strict=True):
                    sub = list(block.layer)
                    pairs = [(layer.self_attn, sub[0].SelfAttention, layer.self_norm, sub[0])]
                    if layer.decoder:
                        pairs.append((layer.cross_attn, sub[1].EncDecAttention,
                                      layer.cross_norm, sub[1]))
                    for mine, hf, norm, hf_layer in pairs:
                        a = mine.attn
                        for linear, hf_linear in ((a.W_Q, hf.q), (a.W_K, hf.k), (a.W_V, hf.v),
                                                  (a.W_O, hf.o)):
                            linear.weight.copy_(hf_linear.weight)
                        norm.weight.copy_(hf_layer.layer_norm.weight)
                    dense = sub[-1].DenseReluDense
                    for name in ("wi", "wi_0", "wi_1", "wo"):
                        if hasattr(layer.ff, name):
                            getattr(layer.ff, name).weight.copy_(getattr(dense, name).weight)
                    layer.ff_norm.weight.copy_(sub[-1].layer_norm.weight)
                ours.final_norm.weight.copy_(theirs.final_layer_norm.weight)
        return new.train(model.training)

    @staticmethod
    def _config_from_huggingface(hf, start: int | None = None) -> T5Config:
        if hf.d_kv * hf.num_heads != hf.d_model:
            raise ValueError(f"the course's attention needs d_kv * num_heads == d_model; got "
                             f"d_kv={hf.d_kv}, num_heads={hf.num_heads}, d_model={hf.d_model}")
        kind = "gated-gelu" if hf.is_gated_act else hf.dense_act_fn
        if kind not in FEED_FORWARDS or (hf.is_gated_act and hf.dense_act_fn not in
                                         ("gelu_new", "gelu_pytorch_tanh")):
            raise ValueError(f"feed_forward_proj={hf.feed_forward_proj!r} is not supported; "
                             f"expected one of {FEED_FORWARDS}")
        return T5Config(
            vocab_size=hf.vocab_size, d_model=hf.d_model, num_heads=hf.num_heads,
            num_encoder_layers=hf.num_layers, num_decoder_layers=hf.num_decoder_layers,
            d_ff=hf.d_ff, num_buckets=hf.relative_attention_num_buckets,
            max_distance=hf.relative_attention_max_distance, dropout=float(hf.dropout_rate),
            feed_forward=kind, eps=float(hf.layer_norm_epsilon),
            scale_logits=bool(hf.scale_decoder_outputs), pad_id=hf.pad_token_id,
            bos_id=hf.pad_token_id if start is None else start)


def huggingface_norms_in_input_precision(model):
    """Make every ``T5LayerNorm`` of a ``transformers`` T5 accumulate its mean square in the
    inputs' precision (at least float32), like :class:`RMSNorm`, and return ``model``.

    Hugging Face's ``T5LayerNorm`` always computes ``mean(x²)`` in float32 (against overflow in
    half precision), so a float64 model differs from a float64 :class:`T5` by ~1e-8 — float32
    rounding, not a difference in the math. This replaces the ``forward`` of each norm
    *instance* (the class is untouched); a float32 model computes the same numbers as
    before."""
    from transformers.models.t5.modeling_t5 import T5LayerNorm

    def forward(self, hidden_states):
        return RMSNorm.forward(self, hidden_states)

    for module in model.modules():
        if isinstance(module, T5LayerNorm):
            module.eps = module.variance_epsilon
            module.forward = forward.__get__(module)
    return model
