r"""The Vision Transformer (ViT, Dosovitskiy et al., 2020): an image as a sequence of patches.

An image ``(C, H, W)`` is cut into ``N = (H / P) * (W / P)`` non-overlapping ``P x P`` patches,
each flattened to ``C * P * P`` numbers (:func:`patchify`) and projected to ``D`` features by
one matrix :math:`E`; a learned class token is prepended and a learned position embedding
added; a stack of pre-LN Transformer encoder layers (the course's :class:`~attention_course.
transformer.Encoder`, exact GELU) mixes the ``1 + N`` tokens; a final LayerNorm and a linear
head read the class token::

    z_0 = [x_class; x_p^1 E; …; x_p^N E] + E_pos          (B, 1 + N, D)
    z_l = z'_l + MLP(LN(z'_l)),  z'_l = z_{l-1} + MSA(LN(z_{l-1}))
    logits = head(LN(z_L)[:, 0])                            (B, K)

**Patch embedding: a convolution is a linear map of patches.** ``Conv2d(C, D, kernel_size=P,
stride=P)`` visits each patch once and takes a dot product of it with each of its ``D``
filters: exactly ``patchify(images, P) @ E + b`` with ``E = conv.weight.reshape(D, C*P*P).T``,
provided the patch features are flattened in the filter's order ``(c, y, x)`` and the patches
come in the convolution's row-major order (left to right, then top to bottom), which is what
:func:`patchify` does. The model stores :math:`E` as ``patch_embedding``, an ``nn.Linear(C*P*P,
D)``; :meth:`ViT.from_huggingface` reshapes Hugging Face's ``Conv2d`` weight into it.

**Attention weights on request.** ``forward(images, need_weights=True)`` returns ``(logits,
weights)``: a list, one dict per layer from the bottom, ``{"self_attn": (B, H, 1 + N, 1 + N)}``
(the convention of the Transformer stacks). Token ``0`` is the class token, token ``1 + i`` the
patch ``i`` of :func:`patchify`; ``weights[-1]["self_attn"][:, :, 0, 1:]`` is where the class
token looks, one value per patch (reshape it to ``(H / P, W / P)`` to draw it over the image).

Names and defaults follow Hugging Face's ``ViTModel`` where the course has no name of its own
(``cls_token``, ``position_embeddings``); its ``layer_norm_eps`` default is ``1e-12``, the
original ViT's (and this module's) ``1e-6``; :meth:`ViT.from_huggingface` copies the eps.

Shape legend: ``B`` batch, ``C`` channels, ``H``/``W`` image height/width (``= image_size``),
``P`` = ``patch_size``, ``N`` patches, ``D`` = ``d_model``, ``K`` classes, ``L = 1 + N`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_instance,
    check_int,
    check_like_module,
    check_tensor,
)
from attention_course.kernels import AttentionFn, check_attention_fn
from attention_course.transformer import Encoder, EncoderLayer

__all__ = ["ViTConfig", "ViT", "patchify"]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened non-overlapping patches: ``(B, C, H, W)`` →
    ``(B, N, C*P*P)``.

    Patch ``n = i * (W / P) + j`` is the block of rows ``i*P … (i+1)*P - 1``
    and columns ``j*P … (j+1)*P - 1`` (row-major: left to right, then top to
    bottom), flattened in the order ``(channel, row, column)``: the order of
    a ``Conv2d`` filter, so ``Conv2d(C, D, P, stride=P)`` equals
    ``patchify(images, P) @ conv.weight.reshape(D, -1).T + conv.bias``.
    ``H`` and ``W`` must be multiples of ``patch_size``.
    """
    check_tensor("images", images, ndim=4)
    check_int("patch_size", patch_size, minimum=1)
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"images has height {H} and width {W}; expected both "
                         f"to be multiples of patch_size={patch_size}")
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P): patch, then pixel
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a :class:`ViT`, validated on construction.

    Square images of ``image_size`` pixels a side with ``num_channels`` channels, cut into
    ``patch_size`` x ``patch_size`` patches (``patch_size`` divides ``image_size``);
    ``num_layers`` pre-LN encoder layers of ``num_heads`` heads over ``d_model`` features, an
    MLP of ``dim_feedforward`` hidden units (``None``: ``4 * d_model``, stored as the number)
    with the exact GELU; ``num_classes`` outputs. One ``dropout`` rate serves the embeddings,
    the attention weights and the residual branches. ``qkv_bias`` gives the query, key and value
    projections a bias (every other linear layer and LayerNorm has one). ``init_std`` is the
    standard deviation of the initial class token and position embeddings.
    """

    image_size: int
    patch_size: int
    num_channels: int = 3
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 4
    dim_feedforward: int | None = None
    num_classes: int = 10
    dropout: float = 0.0
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    init_std: float = 0.02

    def __post_init__(self):
        for name in ("image_size", "patch_size", "num_channels", "d_model", "num_heads",
                     "num_layers", "num_classes"):
            check_int(name, getattr(self, name), minimum=1)
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide "
                             f"image_size={self.image_size} (non-overlapping patches that "
                             f"tile the image)")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"num_heads={self.num_heads}")
        if self.dim_feedforward is None:
            object.__setattr__(self, "dim_feedforward", 4 * self.d_model)
        check_int("dim_feedforward", self.dim_feedforward, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, include_maximum=False)
        check_float("layer_norm_eps", self.layer_norm_eps, minimum=0.0, include_minimum=False)
        check_float("init_std", self.init_std, minimum=0.0, include_minimum=False)
        check_bool("qkv_bias", self.qkv_bias)

    @property
    def grid_size(self) -> int:
        """Patches per side, ``image_size / patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """``N = grid_size ** 2``."""
        return self.grid_size ** 2

    @property
    def patch_dim(self) -> int:
        """Numbers per flattened patch, ``C * P * P``."""
        return self.num_channels * self.patch_size ** 2

    @property
    def head_dim(self) -> int:
        """Features per head, ``Dh = d_model / num_heads``."""
        return self.d_model // self.num_heads


class ViT(nn.Module):
    """A Vision Transformer image classifier (see the module docstring).

    ``ViT(config, *, attention_fn=None)``; ``attention_fn`` is the kernel of every layer (see
    :mod:`attention_course.kernels`; ``None``: the reference kernel when weights are requested,
    torch's fused one otherwise — the same numbers). ``forward(images, *, need_weights=False)``:
    ``images`` ``(B, C, H, W)`` floating → ``logits (B, K)``, or ``(logits, weights)`` with
    ``need_weights=True``.
    :meth:`encode` gives the tokens before the head, ``(B, 1 + N, D)``.

    Parameters: ``patch_embedding`` (``nn.Linear(C*P*P, D)``, the paper's :math:`E`),
    ``cls_token`` ``(1, 1, D)``, ``position_embeddings`` ``(1, 1 + N, D)``, ``encoder`` (an
    :class:`~attention_course.transformer.Encoder` of ``num_layers`` independently initialised
    pre-LN :class:`~attention_course.transformer.EncoderLayer` s, its ``norm`` the final
    LayerNorm), ``head`` (``nn.Linear(D, K)``).
    """

    def __init__(self, config: ViTConfig, *, attention_fn: AttentionFn | None = None):
        super().__init__()
        check_instance("config", config, ViTConfig)
        check_attention_fn(attention_fn)
        c = self.config = config
        self.patch_embedding = nn.Linear(c.patch_dim, c.d_model)  # E: (C*P*P) -> D
        self.cls_token = nn.Parameter(torch.empty(1, 1, c.d_model))  # x_class
        self.position_embeddings = nn.Parameter(torch.empty(1, 1 + c.num_patches, c.d_model))
        self.dropout = nn.Dropout(c.dropout)

        def layer():
            new = EncoderLayer(c.d_model, c.num_heads, c.dim_feedforward, c.dropout,
                               activation="gelu", layer_norm_eps=c.layer_norm_eps,
                               norm_first=True, attention_fn=attention_fn)
            if not c.qkv_bias:  # W_O, the MLP and the norms keep their biases
                for name in ("W_Q", "W_K", "W_V"):
                    setattr(new.self_attn, name, nn.Linear(c.d_model, c.d_model, bias=False))
            return new

        self.encoder = Encoder(layer(), c.num_layers,
                               nn.LayerNorm(c.d_model, eps=c.layer_norm_eps))
        # Encoder deep-copies one layer (as nn.TransformerEncoder does); give each its own init.
        self.encoder.layers = nn.ModuleList(layer() for _ in range(c.num_layers))
        self.head = nn.Linear(c.d_model, c.num_classes)
        with torch.no_grad():
            nn.init.normal_(self.cls_token, std=c.init_std)
            nn.init.normal_(self.position_embeddings, std=c.init_std)

    # --- checks ------------------------------------------------------------------------------

    def check_inputs(self, images, *, need_weights=False) -> None:
        """Check ``forward``'s arguments; errors name them, what they got and what was
        expected."""
        c = self.config
        check_tensor("images", images, ndim=4, floating=True)
        expected = (c.num_channels, c.image_size, c.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images has shape {tuple(images.shape)}; expected (B, C, H, W) = "
                             f"(B, {c.num_channels}, {c.image_size}, {c.image_size}): "
                             f"{c.num_channels} channel(s) and {c.image_size}x{c.image_size} "
                             f"pixels, cut into {c.num_patches} patches of "
                             f"{c.patch_size}x{c.patch_size}")
        check_like_module("images", images, self.patch_embedding.weight)
        check_bool("need_weights", need_weights)

    # --- forward -----------------------------------------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``z_0``: class token and patch embeddings plus positions → ``(B, 1 + N, D)``
        (``images`` unchecked: call :meth:`check_inputs` first)."""
        patches = self.patch_embedding(patchify(images, self.config.patch_size))  # (B, N, D)
        cls = self.cls_token.expand(images.shape[0], -1, -1)  # (B, 1, D)
        tokens = torch.cat([cls, patches], dim=1)  # (B, 1 + N, D)
        return self.dropout(tokens + self.position_embeddings)  # (B, 1 + N, D)

    def encode(self, images: torch.Tensor, *, need_weights: bool = False):
        """``images`` ``(B, C, H, W)`` → the final-LayerNorm'd tokens ``(B, 1 + N, D)`` (Hugging
        Face's ``last_hidden_state``), or ``(tokens, weights)`` with ``need_weights=True``."""
        self.check_inputs(images, need_weights=need_weights)
        return self.encoder(self.embed(images), need_weights=need_weights)

    def forward(self, images: torch.Tensor, *, need_weights: bool = False):
        """``images`` ``(B, C, H, W)`` → ``logits (B, K)`` from the class token; with
        ``need_weights=True``: ``(logits, weights)``, one dict ``{"self_attn": (B, H, L, L)}``
        per layer, bottom to top."""
        out = self.encode(images, need_weights=need_weights)
        tokens, weights = out if need_weights else (out, None)  # (B, 1 + N, D)
        logits = self.head(tokens[:, 0])  # (B, K): the class token only
        return (logits, weights) if need_weights else logits

    # --- Hugging Face ------------------------------------------------------------------------

    @classmethod
    def from_huggingface(cls, model) -> ViT:
        """An exact copy of a ``transformers`` ``ViTModel`` or ``ViTForImageClassification``
        (same weights, dtype, device and train/eval mode).

        Copied: ``embeddings.cls_token``, ``.position_embeddings``,
        ``.patch_embeddings.projection`` (a ``Conv2d``, reshaped into ``patch_embedding``), per
        layer ``attention.q_proj/k_proj/v_proj/o_proj`` → ``self_attn.W_Q/W_K/W_V/W_O``,
        ``layernorm_before/after`` → ``norms[0]/[1]``, ``mlp.fc1/fc2`` → ``linear1/linear2``,
        the final ``layernorm`` → ``encoder.norm`` (with its eps), and the ``classifier`` →
        ``head``. Then :meth:`encode` equals ``model(x).last_hidden_state`` and, for a
        classifier, :meth:`forward` its ``logits`` (both read the class token after the final
        LayerNorm). Not copied: a ``ViTModel``'s pooler (``tanh(dense(·))`` of the class token,
        which the classifier does not use) — a ``ViTModel`` gets a freshly initialised head
        with ``config.num_labels`` outputs — and the ``mask_token`` of masked image modelling.
        Hugging Face's ``interpolate_pos_encoding`` is a no-op at the configured resolution, the
        only one the copy accepts. Refused: non-square images or patches, an activation other
        than the exact GELU (``hidden_act="gelu"``), a ``head_dim`` other than ``D / H``,
        different attention and hidden dropout rates, a classifier without labels.

        ``transformers`` is an optional extra, imported here only.
        """
        from transformers import ViTForImageClassification, ViTModel

        if isinstance(model, ViTForImageClassification):
            vit, classifier = model.vit, model.classifier
            if not isinstance(classifier, nn.Linear):
                raise ValueError(f"model.classifier is {type(classifier).__name__} "
                                 f"(num_labels={model.config.num_labels}); expected an "
                                 f"nn.Linear head (num_labels >= 1)")
        elif isinstance(model, ViTModel):
            vit, classifier = model, None
        else:
            raise TypeError(f"model must be a transformers ViTModel or "
                            f"ViTForImageClassification, got {type(model).__name__}")
        config = cls._config_from_huggingface(vit.config)
        ref = vit.embeddings.cls_token
        new = cls(config).to(dtype=ref.dtype, device=ref.device)
        emb = vit.embeddings
        with torch.no_grad():
            new.cls_token.copy_(emb.cls_token)
            new.position_embeddings.copy_(emb.position_embeddings)
            conv = emb.patch_embeddings.projection  # Conv2d(C, D, P, stride=P)
            new.patch_embedding.weight.copy_(conv.weight.reshape(config.d_model, -1))
            new.patch_embedding.bias.copy_(conv.bias)
            for ours, theirs in zip(new.encoder.layers, vit.layers, strict=True):
                a = theirs.attention
                pairs = ((ours.self_attn.W_Q, a.q_proj), (ours.self_attn.W_K, a.k_proj),
                         (ours.self_attn.W_V, a.v_proj), (ours.self_attn.W_O, a.o_proj),
                         (ours.norms[0], theirs.layernorm_before),
                         (ours.norms[1], theirs.layernorm_after),
                         (ours.linear1, theirs.mlp.fc1), (ours.linear2, theirs.mlp.fc2))
                for mine, hf in pairs:
                    mine.load_state_dict(hf.state_dict())
            new.encoder.norm.load_state_dict(vit.layernorm.state_dict())
            if classifier is not None:
                new.head.load_state_dict(classifier.state_dict())
        return new.train(model.training)

    @staticmethod
    def _config_from_huggingface(hf) -> ViTConfig:
        """A :class:`ViTConfig` from a ``transformers.ViTConfig``, refusing what the course
        lacks."""
        sizes = {}
        for name in ("image_size", "patch_size"):
            value = getattr(hf, name)
            if isinstance(value, (list, tuple)):
                if len(value) != 2 or value[0] != value[1]:
                    raise ValueError(f"config.{name}={value!r}: the course's ViT takes square "
                                     f"images and patches (one int)")
                value = value[0]
            sizes[name] = value
        if hf.hidden_act != "gelu":
            raise ValueError(f"config.hidden_act={hf.hidden_act!r} has no counterpart in the "
                             f"course; expected 'gelu' (the exact GELU)")
        head_dim = getattr(hf, "head_dim", None)
        if head_dim is not None and head_dim * hf.num_attention_heads != hf.hidden_size:
            raise ValueError(f"config.head_dim={head_dim} must be hidden_size / "
                             f"num_attention_heads = {hf.hidden_size} / "
                             f"{hf.num_attention_heads}")
        if hf.hidden_dropout_prob != hf.attention_probs_dropout_prob:
            raise ValueError(f"config.hidden_dropout_prob={hf.hidden_dropout_prob} and "
                             f"attention_probs_dropout_prob={hf.attention_probs_dropout_prob} "
                             f"differ; the course's layers have one dropout rate")
        return ViTConfig(
            **sizes, num_channels=hf.num_channels, d_model=hf.hidden_size,
            num_heads=hf.num_attention_heads, num_layers=hf.num_hidden_layers,
            dim_feedforward=hf.intermediate_size, num_classes=max(hf.num_labels, 1),
            dropout=float(hf.hidden_dropout_prob), layer_norm_eps=hf.layer_norm_eps,
            qkv_bias=hf.qkv_bias, init_std=hf.initializer_range)
