r"""BERT (Devlin et al., 2019): an encoder-only Transformer pre-trained by filling in masked words.

Token, learned position and token-type (segment) embeddings are summed and LayerNorm'd; a stack
of **post-LN** Transformer encoder layers (the course's :class:`~attention_course.transformer.
EncoderLayer` with ``norm_first=False`` and the exact GELU) mixes them with **bidirectional**
self-attention — no causal mask, every token sees every other real token; then heads read the
result::

    h_0 = LN(E_tok[tokens] + E_pos[0 … L-1] + E_type[token_type_ids])       (B, L, D)
    a_l = LN(h_{l-1} + Attention_l(h_{l-1}))          padding keys masked, H heads
    h_l = LN(a_l + FFN_l(a_l))                         FFN = W_2 GELU(W_1 ·)
    mlm_logits = LN(GELU(h_N W_t)) E_tok^T + b          (B, L, V)  decoder tied to E_tok
    pooled = tanh(h_N[:, 0] W_p)                        (B, D)     the [CLS] token
    class_logits = pooled W_c (or h_N[:, 0] W_c without a pooler)   (B, K)

The masked-language-model (MLM) head's decoder *is* the word-embedding matrix (tied, as in
BERT): only its bias ``mlm_bias`` is its own. :mod:`attention_course.objectives.mlm` makes the
inputs and labels it is trained on (BERT's 80/10/10 rule).

==========================  ==============================================  ================
paper / Hugging Face        code                                            shape
==========================  ==============================================  ================
token embedding             ``word_embeddings``                             ``(V, D)``
position embedding          ``position_embeddings``                         ``(max_len, D)``
segment embedding           ``token_type_embeddings``                       ``(types, D)``
``attention.self.query``    ``encoder.layers[l].self_attn.W_Q`` (K, V)      ``(D, D)``
``attention.output.dense``  ``encoder.layers[l].self_attn.W_O``             ``(D, D)``
``attention.output.LN``     ``encoder.layers[l].norms[0]``                  ``(D,)``
``intermediate.dense``      ``encoder.layers[l].linear1``                   ``(F, D)``
``output.dense``            ``encoder.layers[l].linear2``                   ``(D, F)``
``output.LayerNorm``        ``encoder.layers[l].norms[1]``                  ``(D,)``
``pooler.dense``            ``pooler``                                      ``(D, D)``
``cls.predictions``         ``mlm_transform``, ``mlm_norm``, ``mlm_bias``   ``(D, D)``, ``(V,)``
``classifier``              ``classifier``                                  ``(K, D)``
==========================  ==============================================  ================

**Padding.** ``attention_mask`` ``(B, L)`` is boolean, ``True`` at real tokens (Hugging Face's
``attention_mask`` with 1/0 written as ``True``/``False``). Padding *keys* are masked for every
query; padding *queries* are computed like the others (as in Hugging Face) and are meaningless.

**Attention weights on request.** ``forward(..., need_weights=True)`` fills
:attr:`BERTOutput.weights`: one dict per layer, bottom to top, ``{"self_attn": (B, H, L, L)}``
(the convention of the Transformer stacks).

**Initialisation** (BERT's, as in Hugging Face): every linear and embedding matrix from
:math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma` = ``config.init_std``, the padding token's
embedding row zero, biases zero, LayerNorms the identity.

**A real checkpoint** (needs network access the course never assumes; not run by the book)::

    from transformers import BertForMaskedLM, BertTokenizerFast
    hf = BertForMaskedLM.from_pretrained("bert-base-uncased").eval()
    tokenizer = BertTokenizerFast.from_pretrained("bert-base-uncased")
    model = BERT.from_huggingface(hf)
    batch = tokenizer(["The capital of France is [MASK]."], return_tensors="pt")
    out = model(batch["input_ids"], attention_mask=batch["attention_mask"].bool(),
                token_type_ids=batch["token_type_ids"])
    where = batch["input_ids"] == tokenizer.mask_token_id
    print(tokenizer.decode(out.mlm_logits[where].argmax(-1)))  # "paris"

Shape legend: ``B`` batch, ``L`` sequence length (``<= max_len``), ``D`` = ``d_model``, ``H``
heads, ``F`` = ``dim_feedforward``, ``V`` vocabulary, ``K`` = ``num_labels``.
"""

from __future__ import annotations

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
from attention_course.data.vocab import PAD
from attention_course.kernels import AttentionFn, check_attention_fn
from attention_course.transformer import Encoder, EncoderLayer

__all__ = ["BERTConfig", "BERT", "BERTOutput"]


@dataclass(frozen=True)
class BERTConfig:
    """Hyper-parameters of a :class:`BERT`, validated on construction.

    ``vocab_size`` token ids (``pad_id`` among them), sequences of at most ``max_len`` tokens,
    ``type_vocab_size`` segment ids; ``num_layers`` post-LN encoder layers of ``num_heads`` heads
    over ``d_model`` features with an MLP of ``dim_feedforward`` hidden units (``None``:
    ``4 * d_model``, stored as the number) and the exact GELU. One ``dropout`` rate serves the
    embeddings, attention weights, residual branches and the classifier's input. ``pooler``: a
    ``tanh`` dense layer on ``[CLS]``; ``mlm_head``: the masked-language-model head;
    ``num_labels``: outputs of a classification head on ``[CLS]`` (``0``: none).
    """

    vocab_size: int
    max_len: int = 512
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int | None = None
    type_vocab_size: int = 2
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    pad_id: int = PAD
    pooler: bool = True
    mlm_head: bool = True
    num_labels: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "num_heads", "num_layers",
                     "type_vocab_size"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        if self.dim_feedforward is None:
            object.__setattr__(self, "dim_feedforward", 4 * self.d_model)
        check_int("dim_feedforward", self.dim_feedforward, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        check_float("layer_norm_eps", self.layer_norm_eps, minimum=0.0, include_minimum=False)
        check_float("init_std", self.init_std, minimum=0.0, include_minimum=False)
        check_int("pad_id", self.pad_id, minimum=0)
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must be a token id in [0, "
                             f"{self.vocab_size - 1}] (vocab_size={self.vocab_size})")
        check_bool("pooler", self.pooler)
        check_bool("mlm_head", self.mlm_head)
        check_int("num_labels", self.num_labels, minimum=0)


@dataclass(frozen=True)
class BERTOutput:
    """What :meth:`BERT.forward` returns; a head the model lacks gives ``None``.

    ``hidden`` ``(B, L, D)``: the last layer's tokens (Hugging Face's ``last_hidden_state``);
    ``pooled`` ``(B, D)``; ``mlm_logits`` ``(B, L, V)``; ``class_logits`` ``(B, K)``;
    ``weights``: with ``need_weights=True``, one dict ``{"self_attn": (B, H, L, L)}`` per layer.
    """

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    class_logits: torch.Tensor | None = None
    weights: list[dict[str, torch.Tensor]] | None = None


class BERT(nn.Module):
    """An encoder-only Transformer with BERT's embeddings and heads (see the module docstring).

    ``BERT(config, *, attention_fn=None)``; ``attention_fn`` is the kernel of every layer (see
    :mod:`attention_course.kernels`). ``forward(tokens, *, attention_mask=None,
    token_type_ids=None, need_weights=False)`` → :class:`BERTOutput`.
    """

    def __init__(self, config: BERTConfig, *, attention_fn: AttentionFn | None = None):
        super().__init__()
        check_instance("config", config, BERTConfig)
        check_attention_fn(attention_fn)
        c = self.config = config
        D, eps = c.d_model, c.layer_norm_eps
        self.word_embeddings = nn.Embedding(c.vocab_size, D, padding_idx=c.pad_id)
        self.position_embeddings = nn.Embedding(c.max_len, D)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, D)
        self.embedding_norm = nn.LayerNorm(D, eps=eps)
        self.dropout = nn.Dropout(c.dropout)

        def layer():  # post-LN (norm_first=False), exact GELU: BERT's layer
            return EncoderLayer(D, c.num_heads, c.dim_feedforward, c.dropout,
                                activation="gelu", layer_norm_eps=eps, norm_first=False,
                                attention_fn=attention_fn)

        self.encoder = Encoder(layer(), c.num_layers)  # post-LN: no final norm
        self.encoder.layers = nn.ModuleList(layer() for _ in range(c.num_layers))
        self.pooler = nn.Linear(D, D) if c.pooler else None
        if c.mlm_head:
            self.mlm_transform = nn.Linear(D, D)
            self.mlm_norm = nn.LayerNorm(D, eps=eps)
            self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))  # decoder: word_embeddings
        self.classifier = nn.Linear(D, c.num_labels) if c.num_labels else None
        self.apply(self._init)

    def _init(self, module):
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # --- checks ------------------------------------------------------------------------------

    def check_inputs(self, tokens, *, attention_mask=None, token_type_ids=None,
                     need_weights=False) -> None:
        """Check ``forward``'s arguments; errors name them, what they got and what was
        expected."""
        c = self.config
        check_tokens("tokens", tokens, c.vocab_size)
        B, L = tokens.shape
        if not 1 <= L <= c.max_len:
            raise ValueError(f"tokens has shape {tuple(tokens.shape)}; expected (B, L) with "
                             f"1 <= L <= max_len={c.max_len}")
        device = self.word_embeddings.weight.device
        check_same_device("tokens", tokens, "the model", device)
        if attention_mask is not None:
            check_tensor("attention_mask", attention_mask, ndim=2)
            if attention_mask.dtype != torch.bool:
                raise TypeError(f"attention_mask must be a boolean tensor (True = real token), "
                                f"got dtype {attention_mask.dtype}; write mask.bool()")
            if attention_mask.shape != tokens.shape:
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; "
                                 f"expected the shape of tokens, (B, L) = {(B, L)}")
            check_same_device("attention_mask", attention_mask, "tokens", tokens.device)
            if attention_mask.numel() and not bool(attention_mask.any(dim=1).all()):
                raise ValueError("attention_mask has a row without any real token (all "
                                 "False); expected at least one True per sequence")
        if token_type_ids is not None:
            check_tokens("token_type_ids", token_type_ids, c.type_vocab_size)
            if token_type_ids.shape != tokens.shape:
                raise ValueError(f"token_type_ids has shape {tuple(token_type_ids.shape)}; "
                                 f"expected the shape of tokens, (B, L) = {(B, L)}")
            check_same_device("token_type_ids", token_type_ids, "tokens", tokens.device)
        check_bool("need_weights", need_weights)

    # --- forward -----------------------------------------------------------------------------

    def embed(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None = None):
        """``h_0 = LN(E_tok + E_pos + E_type)`` → ``(B, L, D)`` (arguments unchecked)."""
        L = tokens.shape[1]
        positions = torch.arange(L, device=tokens.device)  # (L,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(tokens)  # one segment: type 0
        x = (self.word_embeddings(tokens) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))  # (B, L, D)
        return self.dropout(self.embedding_norm(x))

    def mlm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` → MLM logits ``(B, L, V)``: transform, GELU, LayerNorm, then the tied
        decoder ``E_tok^T`` and its bias."""
        h = self.mlm_norm(F.gelu(self.mlm_transform(hidden)))  # (B, L, D)
        return F.linear(h, self.word_embeddings.weight, self.mlm_bias)  # (B, L, V)

    def forward(self, tokens: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                need_weights: bool = False) -> BERTOutput:
        """``tokens`` ``(B, L)`` → :class:`BERTOutput` (every head the config has).

        ``attention_mask`` ``(B, L)`` bool, ``True`` at real tokens (``None``: all real);
        ``token_type_ids`` ``(B, L)`` segment ids (``None``: all 0). ``[CLS]`` is position 0.
        """
        self.check_inputs(tokens, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, need_weights=need_weights)
        x = self.embed(tokens, token_type_ids)  # (B, L, D)
        mask = None if attention_mask is None else attention_mask[:, None, :]  # (B, 1, L) keys
        out = self.encoder(x, mask, need_weights=need_weights)
        hidden, weights = out if need_weights else (out, None)  # (B, L, D)
        cls = hidden[:, 0]  # (B, D): the [CLS] token
        pooled = None if self.pooler is None else torch.tanh(self.pooler(cls))  # (B, D)
        mlm_logits = self.mlm_head(hidden) if self.config.mlm_head else None  # (B, L, V)
        class_logits = None
        if self.classifier is not None:
            summary = cls if pooled is None else pooled  # (B, D)
            class_logits = self.classifier(self.dropout(summary))  # (B, K)
        return BERTOutput(hidden, pooled, mlm_logits, class_logits, weights)

    # --- Hugging Face ------------------------------------------------------------------------

    @classmethod
    def from_huggingface(cls, model) -> BERT:
        """An exact copy of a ``transformers`` ``BertModel``, ``BertForMaskedLM`` or
        ``BertForSequenceClassification`` (same weights, dtype, device and train/eval mode).

        Copied: the three embeddings and their LayerNorm; per layer ``attention.self.query/key/
        value`` → ``self_attn.W_Q/W_K/W_V``, ``attention.output.dense`` → ``W_O``,
        ``attention.output.LayerNorm`` → ``norms[0]``, ``intermediate.dense`` → ``linear1``,
        ``output.dense`` → ``linear2``, ``output.LayerNorm`` → ``norms[1]``; the pooler when
        the model has one; ``cls.predictions`` → the MLM head; ``classifier``. Then
        ``forward(...).hidden`` equals ``last_hidden_state``, ``.pooled`` ``pooler_output``,
        ``.mlm_logits`` / ``.class_logits`` the ``logits``. Refused: an activation other than
        the exact GELU, different attention and hidden dropout rates, an MLM decoder not tied
        to the word embeddings, a decoder, position embeddings other than absolute.

        ``transformers`` is an optional extra, imported here only.
        """
        from transformers import BertForMaskedLM, BertForSequenceClassification, BertModel

        mlm = classifier = None
        if isinstance(model, BertForMaskedLM):
            bert, mlm = model.bert, model.cls.predictions
        elif isinstance(model, BertForSequenceClassification):
            bert, classifier = model.bert, model.classifier
        elif isinstance(model, BertModel):
            bert = model
        else:
            raise TypeError(f"model must be a transformers BertModel, BertForMaskedLM or "
                            f"BertForSequenceClassification, got {type(model).__name__}")
        emb = bert.embeddings
        if mlm is not None and mlm.decoder.weight is not emb.word_embeddings.weight:
            raise ValueError("model's MLM decoder is not tied to its word embeddings "
                             "(config.tie_word_embeddings=False); the course's BERT ties them")
        config = cls._config_from_huggingface(
            bert.config, pooler=bert.pooler is not None, mlm_head=mlm is not None,
            num_labels=0 if classifier is None else classifier.out_features)
        ref = emb.word_embeddings.weight
        new = cls(config).to(dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            for ours, theirs in ((new.word_embeddings, emb.word_embeddings),
                                 (new.position_embeddings, emb.position_embeddings),
                                 (new.token_type_embeddings, emb.token_type_embeddings),
                                 (new.embedding_norm, emb.LayerNorm)):
                ours.weight.copy_(theirs.weight)
                if isinstance(ours, nn.LayerNorm):
                    ours.bias.copy_(theirs.bias)
            for ours, theirs in zip(new.encoder.layers, bert.encoder.layer, strict=True):
                att = theirs.attention
                pairs = ((ours.self_attn.W_Q, att.self.query), (ours.self_attn.W_K, att.self.key),
                         (ours.self_attn.W_V, att.self.value),
                         (ours.self_attn.W_O, att.output.dense),
                         (ours.norms[0], att.output.LayerNorm),
                         (ours.linear1, theirs.intermediate.dense),
                         (ours.linear2, theirs.output.dense),
                         (ours.norms[1], theirs.output.LayerNorm))
                for mine, hf in pairs:
                    mine.load_state_dict(hf.state_dict())
            if bert.pooler is not None:
                new.pooler.load_state_dict(bert.pooler.dense.state_dict())
            if mlm is not None:
                new.mlm_transform.load_state_dict(mlm.transform.dense.state_dict())
                new.mlm_norm.load_state_dict(mlm.transform.LayerNorm.state_dict())
                new.mlm_bias.copy_(mlm.bias)
            if classifier is not None:
                new.classifier.load_state_dict(classifier.state_dict())
        return new.train(model.training)

    @staticmethod
    def _config_from_huggingface(hf, **heads) -> BERTConfig:
        """A :class:`BERTConfig` from a ``transformers.BertConfig``, refusing what the course
        lacks."""
        if hf.hidden_act != "gelu":
            raise ValueError(f"config.hidden_act={hf.hidden_act!r} has no counterpart in the "
                             f"course; expected 'gelu' (the exact GELU)")
        if hf.hidden_dropout_prob != hf.attention_probs_dropout_prob:
            raise ValueError(f"config.hidden_dropout_prob={hf.hidden_dropout_prob} and "
                             f"attention_probs_dropout_prob={hf.attention_probs_dropout_prob} "
                             f"differ; the course's layers have one dropout rate")
        if getattr(hf, "is_decoder", False) or getattr(hf, "add_cross_attention", False):
            raise ValueError("config.is_decoder / add_cross_attention: the course's BERT is an "
                             "encoder (bidirectional self-attention only)")
        kind = getattr(hf, "position_embedding_type", "absolute")
        if kind != "absolute":
            raise ValueError(f"config.position_embedding_type={kind!r}; expected 'absolute'")
        return BERTConfig(
            vocab_size=hf.vocab_size, max_len=hf.max_position_embeddings,
            d_model=hf.hidden_size, num_heads=hf.num_attention_heads,
            num_layers=hf.num_hidden_layers, dim_feedforward=hf.intermediate_size,
            type_vocab_size=hf.type_vocab_size, dropout=float(hf.hidden_dropout_prob),
            layer_norm_eps=hf.layer_norm_eps, init_std=hf.initializer_range,
            pad_id=hf.pad_token_id if hf.pad_token_id is not None else PAD, **heads)
