r"""A decoder-only Transformer language model with the structure of GPT-2 (Radford et al., 2019).

Token embedding ``wte`` plus a learned position embedding ``wpe``, a stack of pre-LN blocks, a
final LayerNorm ``ln_f`` and a linear LM head that shares its matrix with ``wte``::

    h_0 = wte[tokens] + wpe[0 … T-1]
    a_l = h_{l-1} + Attention_l(LN(h_{l-1}))          causal self-attention, H heads
    h_l = a_l + MLP_l(LN(a_l))                        skipped when attention_only
    logits = LN_f(h_N) · wte^T

The names follow Hugging Face's ``GPT2LMHeadModel`` (``wte``, ``wpe``, ``blocks[l].ln_1``,
``.attn``, ``.ln_2``, ``.mlp.c_fc``, ``.mlp.c_proj``, ``ln_f``, ``lm_head``) so that Chapter 10
can copy one into the other; GPT-2's activation is ``activation="gelu_tanh"`` (its
``gelu_new``). The attention of a block is a :class:`~attention_course.multihead.
MultiHeadAttention` (``is_causal=True``); its kernel is ``attention_fn`` (see
:mod:`attention_course.kernels`). ``config.num_kv_heads`` (``Hkv``) makes it grouped-query
(``1 < Hkv < H``) or multi-query (``Hkv = 1``) attention: ``H`` query heads share ``Hkv``
key/value heads, so each block's ``W_K`` and ``W_V`` have ``Hkv * Dh`` rows instead of ``D``
and a KV cache is ``H / Hkv`` times smaller (see :mod:`attention_course.multihead`).

**Attention weights on request.** ``forward(tokens, need_weights=True)`` returns, with the
logits, one dict per block, bottom to top: ``{"self_attn": (B, H, T, T)}`` — the convention of
the Transformer stacks, so ``analysis.stack_weights(weights, "self_attn")`` gives
``(N, B, H, T, T)``.

**Head ablation.** ``head_mask`` ``(N, H)`` multiplies the output of head ``h`` of block ``l``
by ``head_mask[l, h]`` before the heads are concatenated and ``W_O`` mixes them (what Hugging
Face's ``head_mask`` does): ``0`` removes a head, ``1`` keeps it. The block applies it to the
head's *values*: attention is linear in them, ``softmax(QK^T/\sqrt{d}) (m V) = m \cdot
softmax(QK^T/\sqrt{d}) V``, so any kernel computes the masked heads, and the weights returned
are the heads' patterns, unchanged by the mask. With grouped-query attention the values are
first repeated per query head, so the mask still acts on one query head at a time. Non-binary
factors scale a head, and gradients flow into ``head_mask`` (a head's importance, Michel et
al., 2019).

**Initialisation** (GPT-2's, as in Hugging Face and nanoGPT): every linear and embedding matrix
from :math:`\mathcal{N}(0, \sigma^2)` with :math:`\sigma` = ``config.init_std`` (0.02, Hugging
Face's ``initializer_range``), biases zero, LayerNorms the identity; the projections that
write into the residual stream (each block's ``attn.W_O`` and ``mlp.c_proj``) from
:math:`\mathcal{N}(0, (\sigma/\sqrt{R})^2)`, with :math:`R` the number of residual branches:
``2 * num_layers`` (``num_layers`` when ``attention_only``). Each branch adds a random vector
to the residual stream; this keeps the variance of their sum independent of depth. With
grouped-query attention ``W_K`` and ``W_V`` just have fewer rows, initialised the same way.

**Hugging Face's GPT-2.** :meth:`GPT.from_huggingface` copies a ``transformers``
``GPT2LMHeadModel`` into a :class:`GPT` whose logits are the same numbers (tested in float64
against randomly initialised models, offline). A reader with network access can copy the real
pretrained GPT-2 the same way (not run by the course, which never downloads weights)::

    from transformers import GPT2LMHeadModel, GPT2TokenizerFast
    hf = GPT2LMHeadModel.from_pretrained("gpt2").eval()      # 124M parameters, ~500 MB
    tokenizer = GPT2TokenizerFast.from_pretrained("gpt2")
    model = GPT.from_huggingface(hf)                          # 12 blocks, D = 768, H = 12
    prompt = tokenizer("Attention is", return_tensors="pt").input_ids
    text = tokenizer.decode(generate(model, prompt, 20)[0])   # inference.generate, greedy

Shape legend: ``B`` batch, ``T`` sequence length (``<= max_len``), ``D`` = ``d_model``, ``H``
(query) heads, ``Hkv`` key/value heads, ``Dh = D / H``, ``N`` blocks, ``V`` vocabulary, ``F`` =
``dim_feedforward``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_instance,
    check_int,
    check_same_device,
    check_tensor,
    check_tokens,
)
from attention_course.cache import project_with_cache
from attention_course.kernels import AttentionFn, check_attention_fn
from attention_course.multihead import MultiHeadAttention, expand_kv_heads

__all__ = ["GPTConfig", "GPT", "Block", "MLP", "ACTIVATIONS", "INIT_STD"]

#: The MLP's activations: ``gelu`` is the exact GELU, ``gelu_tanh`` its tanh approximation
#: (GPT-2's ``gelu_new``), ``relu`` the original Transformer's.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}

#: Standard deviation of GPT-2's initial weights.
INIT_STD = 0.02


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a :class:`GPT`, validated on construction.

    ``vocab_size`` tokens, positions ``0 … max_len - 1`` (GPT-2's ``n_positions``),
    ``num_layers`` blocks of ``num_heads`` heads over ``d_model`` features; the MLP has
    ``dim_feedforward`` hidden units (``None``: ``4 * d_model``, stored as the number). One
    ``dropout`` rate serves the embeddings, the attention weights and both residual branches.
    ``bias`` gives every linear layer and LayerNorm a bias (the LM head never has one).
    ``attention_only`` leaves out every MLP and its LayerNorm. ``tie_weights`` makes the LM
    head's matrix the token embedding's. ``init_std`` is the standard deviation of the initial
    weights (GPT-2's ``initializer_range``, 0.02; see the module docstring).
    ``num_kv_heads`` is the number of key/value heads, a divisor of ``num_heads`` (``None``:
    ``num_heads``, standard multi-head attention, stored as the number; ``1``: multi-query;
    otherwise grouped-query attention).
    """

    vocab_size: int
    max_len: int = 256
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int | None = None
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    activation: str = "gelu"
    bias: bool = True
    attention_only: bool = False
    tie_weights: bool = True
    init_std: float = INIT_STD
    num_kv_heads: int | None = None  # last, so positional arguments keep their meaning

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "num_heads", "num_layers"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        if self.num_kv_heads is None:
            object.__setattr__(self, "num_kv_heads", self.num_heads)
        check_int("num_kv_heads", self.num_kv_heads, minimum=1)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads={self.num_kv_heads} must divide "
                             f"num_heads={self.num_heads} (1 = multi-query, num_heads = "
                             f"multi-head attention)")
        if self.dim_feedforward is None:
            object.__setattr__(self, "dim_feedforward", 4 * self.d_model)
        check_int("dim_feedforward", self.dim_feedforward, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        check_float("layer_norm_eps", self.layer_norm_eps, minimum=0.0, include_minimum=False)
        check_float("init_std", self.init_std, minimum=0.0, include_minimum=False)
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        for name in ("bias", "attention_only", "tie_weights"):
            check_bool(name, getattr(self, name))

    @property
    def head_dim(self) -> int:
        """Features per head, ``Dh = d_model / num_heads``."""
        return self.d_model // self.num_heads


class MLP(nn.Module):
    """Position-wise ``c_proj(act(c_fc(x)))``: ``(B, T, D)`` → ``(B, T, D)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.activation = config.activation
        self.c_fc = nn.Linear(config.d_model, config.dim_feedforward, bias=config.bias)
        self.c_proj = nn.Linear(config.dim_feedforward, config.d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(ACTIVATIONS[self.activation](self.c_fc(x)))  # (B, T, D)


class Block(nn.Module):
    """One pre-LN block: ``x + Attention(ln_1(x))``, then ``x + MLP(ln_2(x))`` (no MLP and no
    ``ln_2`` when ``config.attention_only``)."""

    def __init__(self, config: GPTConfig, *, attention_fn: AttentionFn | None = None):
        super().__init__()
        c = config
        self.ln_1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.attn = MultiHeadAttention(c.d_model, c.num_heads, bias=c.bias, dropout=c.dropout,
                                       attention_fn=attention_fn, num_kv_heads=c.num_kv_heads)
        if not c.attention_only:
            self.ln_2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
            self.mlp = MLP(c)
        self.dropout = nn.Dropout(c.dropout)  # on each residual branch

    def self_attention(self, h: torch.Tensor, head_mask: torch.Tensor | None = None,
                       need_weights: bool = False, past=None, mask=None):
        """Causal self-attention of the normalised stream ``h`` ``(B, T, D)`` on checked
        arguments → ``(output (B, T, D), weights (B, H, T, P + T) or None, present)``.

        ``head_mask`` ``(H,)`` scales each head's values, hence its output (see the module
        docstring). ``past``/``present``: the block's key–value cache ``(k, v)``, each
        ``(B, Hkv, P, Dh)`` (Chapter 8, :func:`~attention_course.cache.project_with_cache`):
        the new keys and values are appended between ``project`` and ``attend``, and the
        bottom-right causal mask lets the ``T`` new queries see all ``P + T`` keys up to their
        own. ``mask`` ``(B, 1, 1, P + T)``: keys that may be attended (padding excluded)."""
        q, k, v, present = project_with_cache(self.attn, h, h, h, past,
                                              checked=True)  # (B, H|Hkv, ·, Dh)
        if head_mask is not None:  # one factor per query head: give each its own values
            H = self.attn.num_heads
            k, v = expand_kv_heads(k, H), expand_kv_heads(v, H)  # (B, H, P + T, Dh)
            v = v * head_mask[:, None, None]  # (B, H, P + T, Dh): head i's values times m_i
        out, weights = self.attn.attend(q, k, v, mask, is_causal=True,
                                        need_weights=need_weights, checked=True)
        return out, weights, present

    def _forward(self, x, head_mask, need_weights, past=None, mask=None):
        """``x`` ``(B, T, D)`` on checked arguments → ``(x (B, T, D), {"self_attn": weights},
        present)`` (see :meth:`self_attention` for ``past``, ``present`` and ``mask``)."""
        out, weights, present = self.self_attention(self.ln_1(x), head_mask, need_weights,
                                                    past, mask)
        x = x + self.dropout(out)  # (B, T, D)
        if hasattr(self, "mlp"):
            x = x + self.dropout(self.mlp(self.ln_2(x)))  # (B, T, D)
        return x, {"self_attn": weights}, present


class GPT(nn.Module):
    """A GPT-2-style language model (see the module docstring).

    ``GPT(config, *, attention_fn=None)``; ``attention_fn`` is the kernel of every block
    (``None``: the reference kernel when weights are requested, torch's fused one otherwise —
    the same numbers). ``forward(tokens, *, need_weights=False, head_mask=None)`` →
    ``(logits (B, T, V), weights or None)``.

    With ``config.tie_weights`` the LM head's weight *is* the token embedding
    (``lm_head.weight is wte.weight``, ``(V, D)``).
    """

    def __init__(self, config: GPTConfig, *, attention_fn: AttentionFn | None = None):
        super().__init__()
        check_instance("config", config, GPTConfig)
        check_attention_fn(attention_fn)
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.d_model)  # token embedding
        self.wpe = nn.Embedding(c.max_len, c.d_model)  # learned position embedding
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c, attention_fn=attention_fn)
                                    for _ in range(c.num_layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_weights:  # one (V, D) matrix: embedding in, scores out
            self.lm_head.weight = self.wte.weight

    @classmethod
    def from_huggingface(cls, model) -> GPT:
        """An exact copy of a ``transformers`` ``GPT2LMHeadModel`` (same weights,
        dtype, device and train/eval mode): ``forward(tokens)[0]`` equals
        ``model(tokens).logits``.

        GPT-2's linear layers are ``Conv1D``: ``y = x W + b`` with ``W``
        ``(in, out)``, the transpose of an ``nn.Linear`` weight ``(out, in)``;
        each block's ``attn.c_attn`` packs ``[W_Q | W_K | W_V]`` ``(D, 3D)``
        and its bias ``(3D,)``. Copied: ``transformer.wte``, ``.wpe``
        (``n_positions`` → ``max_len``), per block ``ln_1``, ``attn.c_attn``
        (split and transposed into ``attn.W_Q/W_K/W_V``), ``attn.c_proj`` →
        ``attn.W_O``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj`` (transposed),
        ``transformer.ln_f`` (with ``layer_norm_epsilon``) and ``lm_head`` —
        tied to ``wte`` exactly when the source ties them. ``n_inner``
        (``None``: ``4 * n_embd``) becomes ``dim_feedforward``;
        ``activation_function`` ``"gelu_new"`` or ``"gelu_pytorch_tanh"``
        becomes ``"gelu_tanh"``, ``"gelu"`` and ``"relu"`` keep their names;
        the dropout rate is the shared ``resid_pdrop = embd_pdrop =
        attn_pdrop``.

        Refused, with the reason: a model other than ``GPT2LMHeadModel``;
        attention without the ``1/sqrt(Dh)`` scaling (``scale_attn_weights=
        False``) or with GPT-2's extra ``1/(layer + 1)``
        (``scale_attn_by_inverse_layer_idx``); ``reorder_and_upcast_attn`` (a
        mixed-precision variant the course does not reproduce);
        cross-attention (``add_cross_attention``); another activation;
        different dropout rates.

        ``transformers`` is an optional extra, imported here only.
        """
        from transformers import GPT2LMHeadModel

        if not isinstance(model, GPT2LMHeadModel):
            raise TypeError(f"model must be a transformers GPT2LMHeadModel, "
                            f"got {type(model).__name__}")
        hf = model.transformer
        tied = model.lm_head.weight is hf.wte.weight
        config = cls._config_from_huggingface(
            model.config, hf.wte.weight.shape[0], tied)
        ref = hf.wte.weight
        new = cls(config).to(dtype=ref.dtype, device=ref.device)
        D = config.d_model
        with torch.no_grad():
            new.wte.weight.copy_(hf.wte.weight)
            new.wpe.weight.copy_(hf.wpe.weight)
            for ours, theirs in zip(new.blocks, hf.h, strict=True):
                ours.ln_1.load_state_dict(theirs.ln_1.state_dict())
                ours.ln_2.load_state_dict(theirs.ln_2.state_dict())
                w = theirs.attn.c_attn.weight  # (D, 3D): [W_Q | W_K | W_V]
                b = theirs.attn.c_attn.bias  # (3D,)
                qkv = (ours.attn.W_Q, ours.attn.W_K, ours.attn.W_V)
                for i, linear in enumerate(qkv):
                    part = slice(i * D, (i + 1) * D)
                    linear.weight.copy_(w[:, part].T)  # (D, D): (out, in)
                    linear.bias.copy_(b[part])
                pairs = ((ours.attn.W_O, theirs.attn.c_proj),
                         (ours.mlp.c_fc, theirs.mlp.c_fc),
                         (ours.mlp.c_proj, theirs.mlp.c_proj))
                for linear, conv in pairs:
                    # Conv1D (in, out) -> nn.Linear (out, in)
                    linear.weight.copy_(conv.weight.T)
                    linear.bias.copy_(conv.bias)
            new.ln_f.load_state_dict(hf.ln_f.state_dict())
            if not tied:
                new.lm_head.weight.copy_(model.lm_head.weight)
        return new.train(model.training)

    @staticmethod
    def _config_from_huggingface(hf, vocab_size: int, tied: bool) -> GPTConfig:
        """A :class:`GPTConfig` from a ``transformers.GPT2Config``, refusing what the course
        lacks."""
        refused = {
            "scale_attn_weights": (False, "attention without the 1/sqrt(Dh) scaling"),
            "scale_attn_by_inverse_layer_idx": (True, "the extra 1/(layer + 1) scaling of "
                                                      "attention scores"),
            "reorder_and_upcast_attn": (True, "the reordered, float32-upcast attention of "
                                              "mixed-precision training"),
            "add_cross_attention": (True, "cross-attention to an encoder (the course's GPT "
                                          "is decoder-only)"),
        }
        for name, (bad, what) in refused.items():
            if bool(getattr(hf, name)) == bad:
                raise ValueError(f"config.{name}={getattr(hf, name)!r} asks for {what}, which "
                                 f"the course's GPT does not have; expected {not bad}")
        activations = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                       "gelu": "gelu", "relu": "relu"}
        if hf.activation_function not in activations:
            raise ValueError(f"config.activation_function={hf.activation_function!r} has no "
                             f"counterpart in the course; expected one of "
                             f"{sorted(activations)}")
        rates = {name: float(getattr(hf, name))
                 for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
        if len(set(rates.values())) > 1:
            raise ValueError(f"config has different dropout rates {rates}; the course's GPT "
                             f"has one rate for embeddings, attention and residual branches")
        return GPTConfig(
            vocab_size=vocab_size, max_len=hf.n_positions, d_model=hf.n_embd,
            num_heads=hf.n_head, num_layers=hf.n_layer, dim_feedforward=hf.n_inner,
            dropout=rates["resid_pdrop"], layer_norm_eps=hf.layer_norm_epsilon,
            activation=activations[hf.activation_function], bias=True, tie_weights=tied,
            init_std=hf.initializer_range)

    def _init_weights(self) -> None:
        """GPT-2's initialisation (see the module docstring)."""
        c = self.config
        residual_branches = c.num_layers * (1 if c.attention_only else 2)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, mean=0.0, std=c.init_std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
                # nn.LayerNorm starts as the identity (weight 1, bias 0) already.
            for block in self.blocks:
                outputs = [block.attn.W_O] + ([] if c.attention_only else [block.mlp.c_proj])
                for linear in outputs:  # the layers that write into the residual stream
                    nn.init.normal_(linear.weight, mean=0.0,
                                    std=c.init_std / math.sqrt(residual_branches))

    # --- checks ------------------------------------------------------------------------------

    def check_inputs(self, tokens, *, need_weights=False, head_mask=None):
        """Check ``forward``'s arguments (errors name them); return ``head_mask`` in the
        parameters' dtype, or ``None``."""
        c = self.config
        check_tensor("tokens", tokens, ndim=2, integer=True)
        check_same_device("tokens", tokens, "the model", self.wte.weight.device)
        if tokens.shape[1] < 1 or tokens.shape[1] > c.max_len:
            raise ValueError(f"tokens has shape {tuple(tokens.shape)}; expected (B, T) with "
                             f"1 <= T <= max_len = {c.max_len}")
        check_tokens("tokens", tokens, c.vocab_size)
        check_bool("need_weights", need_weights)
        if head_mask is None:
            return None
        check_tensor("head_mask", head_mask, floating=True)
        expected = (c.num_layers, c.num_heads)
        if tuple(head_mask.shape) != expected:
            raise ValueError(f"head_mask has shape {tuple(head_mask.shape)}; expected "
                             f"(num_layers, num_heads) = {expected}, one factor per head "
                             f"(1 keeps a head, 0 removes it)")
        check_same_device("head_mask", head_mask, "the model", self.wte.weight.device)
        if not torch.isfinite(head_mask).all():
            raise ValueError("head_mask must be finite (1 keeps a head, 0 removes it)")
        return head_mask.to(self.wte.weight.dtype)

    # --- forward -----------------------------------------------------------------------------

    def _embed(self, tokens: torch.Tensor, start: int = 0,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """``wte[tokens] + wpe[positions]`` (then dropout) → ``(B, T, D)``; ``positions``
        ``(B, T)``, or ``start … start + T - 1`` for every row."""
        if positions is None:
            positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.dropout(self.wte(tokens) + self.wpe(positions))  # (B, T, D)

    def _forward(self, tokens, need_weights=False, head_mask=None, past=None,
                 attention_mask=None, states=None):
        """``forward`` on checked arguments → ``(logits, [weights dict per block], [cache per
        block])``; see :meth:`forward_with_cache` for ``past`` and ``attention_mask``. A list
        ``states`` receives the residual stream before every block and after the last."""
        P = 0 if past is None else past[0][0].shape[2]  # cached positions
        if attention_mask is None:
            x, mask = self._embed(tokens, P), None  # (B, T, D)
        else:  # positions count real tokens only; padding is never a key
            positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # (B, P + T)
            x = self._embed(tokens, positions=positions[:, P:])  # (B, T, D)
            mask = attention_mask[:, None, None, :]  # (B, 1, 1, P + T)
        weights, present = [], []
        for n, block in enumerate(self.blocks):
            if states is not None:
                states.append(x)
            x, w, p = block._forward(x, None if head_mask is None else head_mask[n],
                                     need_weights, None if past is None else past[n], mask)
            weights.append(w)
            present.append(p)
        if states is not None:
            states.append(x)
        return self.lm_head(self.ln_f(x)), weights, present  # (B, T, V)

    def residual_stream(self, tokens: torch.Tensor) -> torch.Tensor:
        """The residual stream on request: ``tokens`` ``(B, T)`` → ``(N + 1, B, T, D)``, the
        input of every block and, last, the output of the last block (what ``ln_f``
        normalises before the LM head)."""
        self.check_inputs(tokens)
        states = []
        self._forward(tokens, states=states)
        return torch.stack(states)  # (N + 1, B, T, D)

    def forward(self, tokens: torch.Tensor, *, need_weights: bool = False,
                head_mask: torch.Tensor | None = None):
        """``tokens`` ``(B, T)`` integer ids → ``(logits (B, T, V), weights or None)``.

        ``logits[:, t]`` scores the token at ``t + 1`` and depends on ``tokens[:, :t + 1]``
        only. With ``need_weights=True`` the weights are a list, one dict per block from the
        bottom: ``{"self_attn": (B, H, T, T)}``. ``head_mask`` ``(N, H)`` (floating) multiplies
        each head's output before ``W_O`` (``0`` ablates it).
        """
        head_mask = self.check_inputs(tokens, need_weights=need_weights, head_mask=head_mask)
        logits, weights, _ = self._forward(tokens, need_weights, head_mask)
        return logits, (weights if need_weights else None)

    def forward_with_cache(self, tokens: torch.Tensor, past=None, *,
                           attention_mask: torch.Tensor | None = None):
        """The next tokens with a key–value cache → ``(logits (B, T, V),
        present)``.

        ``tokens`` ``(B, T)`` follow the ``P`` positions in ``past``: the list
        of per-block ``(k, v)`` ``(B, Hkv, P, Dh)`` a previous call returned
        (``None``: ``P = 0``); ``present`` has ``P + T`` positions. A sequence
        fed in pieces gets the logits :meth:`forward` gives for the whole.
        ``attention_mask`` ``(B, P + T)`` bool: real tokens ``True`` after left
        padding ``False`` (prompts of different lengths in one batch).
        """
        self.check_inputs(tokens)
        P = self.check_past(past, tokens.shape[0])
        T = tokens.shape[1]
        if P + T > self.config.max_len:
            raise ValueError(f"past holds {P} positions and tokens adds {T}: "
                             f"more than max_len = {self.config.max_len}")
        if attention_mask is not None:
            self.check_attention_mask(attention_mask, (tokens.shape[0], P + T))
        logits, _, present = self._forward(tokens, past=past,
                                           attention_mask=attention_mask)
        return logits, present

    def check_past(self, past, batch_size: int) -> int:
        """Check a cache for :meth:`forward_with_cache`; return its length ``P``."""
        if past is None:
            return 0
        N, Hkv, Dh = self.config.num_layers, self.config.num_kv_heads, self.config.head_dim
        if not isinstance(past, (list, tuple)) or not all(
                isinstance(p, tuple) and len(p) == 2 for p in past):
            raise TypeError(f"past must be the list of {N} per-block (keys, values) a previous "
                            f"call returned, or None; got {type(past).__name__}")
        if len(past) != N:
            raise ValueError(f"past has {len(past)} entries; the model has {N} blocks")
        P = past[0][0].shape[2] if past[0][0].dim() == 4 else -1
        for n, (k, v) in enumerate(past):
            for name, x in (("keys", k), ("values", v)):
                check_tensor(f"past[{n}] {name}", x, ndim=4, floating=True)
                if tuple(x.shape) != (batch_size, Hkv, P, Dh):
                    raise ValueError(f"past[{n}] {name} has shape {tuple(x.shape)}; expected "
                                     f"(B={batch_size}, Hkv={Hkv}, P={P}, Dh={Dh})")
        return P

    @staticmethod
    def check_attention_mask(attention_mask, shape) -> None:
        """Check a left-padding mask: bool, of ``shape`` ``(B, L)``, every row ``False …
        False True … True`` with at least one ``True``."""
        check_tensor("attention_mask", attention_mask, ndim=2, dtype=torch.bool)
        if tuple(attention_mask.shape) != tuple(shape):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; "
                             f"expected {tuple(shape)} (batch, past + new positions)")
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any():
            raise ValueError("attention_mask must pad on the left: False … False True … True "
                             "in every row")
        if not attention_mask[:, -1].all():
            raise ValueError("attention_mask must mark at least one real token (True) in "
                             "every row")
