r"""Positional encodings: sinusoidal (Vaswani et al., 2017) and learned.

Self-attention is permutation-equivariant, so token order must be added to the inputs.
The sinusoidal encoding is

.. math::
    PE_{(pos, 2i)} = \sin\!\left(pos / 10000^{2i/d}\right), \qquad
    PE_{(pos, 2i+1)} = \cos\!\left(pos / 10000^{2i/d}\right),

and ``PE(pos + k)`` is a fixed linear function of ``PE(pos)`` (a rotation of each (sin, cos)
pair by the angle ``k * ω_i``): :func:`relative_shift_matrix` builds it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attention_course._checks import check_dtype, check_float, check_int, check_tensor

__all__ = [
    "sinusoidal_frequencies",
    "sinusoidal_encoding",
    "relative_shift_matrix",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
]


def sinusoidal_frequencies(d_model: int, base: float = 10000.0) -> torch.Tensor:
    """Angular frequencies ``ω_i = base^(-2i/d)`` of the ``ceil(d/2)`` (sin, cos) pairs.

    ``d_model >= 1``; ``base`` a finite number ``> 0``. Returns float64 ``(ceil(d/2),)``.
    """
    check_int("d_model", d_model, minimum=1)
    check_float("base", base, minimum=0.0, include_minimum=False)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),)
    return base ** (-two_i / d_model)


def sinusoidal_encoding(max_len: int, d_model: int, *,
                        dtype=torch.float32) -> torch.Tensor:
    """``(max_len, d_model)``: even columns ``sin(pos ω_i)``, odd columns
    ``cos(pos ω_i)``.

    ``max_len, d_model >= 1``; computed in float64 and returned as ``dtype``
    (a floating ``torch.dtype``).
    """
    check_int("max_len", max_len, minimum=1)
    check_int("d_model", d_model, minimum=1)
    check_dtype("dtype", dtype, floating=True)
    omega = sinusoidal_frequencies(d_model)  # (ceil(d/2),)
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    angles = pos * omega  # (max_len, ceil(d/2))
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(dtype)


def relative_shift_matrix(k: int, d_model: int, *, dtype=torch.float64) -> torch.Tensor:
    """``(d_model, d_model)`` matrix ``M_k`` with ``PE(pos + k) = M_k @ PE(pos)`` for every pos.

    Block diagonal: each (sin, cos) pair is rotated by ``k ω_i``, whatever ``pos`` is. (With an
    odd ``d_model`` the last, unpaired sine column is left out: its row is zero.) ``k`` is any
    int, ``d_model >= 1``, ``dtype`` a floating ``torch.dtype``.
    """
    check_int("k", k)
    check_int("d_model", d_model, minimum=1)
    check_dtype("dtype", dtype, floating=True)
    omega = sinusoidal_frequencies(d_model)
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i, w in enumerate(omega[: d_model // 2].tolist()):
        c, s = math.cos(k * w), math.sin(k * w)
        # sin(a + b) = sin a cos b + cos a sin b;  cos(a + b) = cos a cos b - sin a sin b
        M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = c, s
        M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -s, c
    return M.to(dtype)


def _check_input(x, max_len: int, d_model: int, start: int = 0) -> None:
    check_tensor("x", x, ndim=3, floating=True)
    check_int("start", start, minimum=0)
    if x.shape[2] != d_model:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, L, D) with D = d_model = "
                         f"{d_model}")
    if start + x.shape[1] > max_len:
        raise ValueError(f"x has shape {tuple(x.shape)} and start = {start}: positions up to "
                         f"{start + x.shape[1] - 1} but max_len = {max_len}")


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding to ``x`` ``(B, L, D)`` (a buffer, not a parameter).

    ``d_model, max_len >= 1``. ``x`` must be floating with ``D = d_model`` and
    ``L <= max_len``; the output has ``x``'s dtype. The table is kept in float64 (cast to
    ``x``'s dtype when added), so a float64 model gets a float64-accurate encoding.
    """

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("max_len", max_len, minimum=1)
        pe = sinusoidal_encoding(max_len, d_model, dtype=torch.float64)  # (max_len, D)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor, *, start: int = 0) -> torch.Tensor:
        """``x`` ``(B, L, D)`` at positions ``start … start + L - 1`` (``start > 0``: the next
        tokens of a sequence decoded step by step) → ``(B, L, D)``."""
        _check_input(x, self.pe.shape[0], self.pe.shape[1], start)
        L = x.shape[1]
        return x + self.pe[start:start + L].to(x.dtype)  # (B, L, D)


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned vector per position to ``x`` ``(B, L, D)`` (BERT/GPT style).

    ``d_model, max_len >= 1``. ``x`` must be floating with ``D = d_model`` and
    ``L <= max_len``; the output has ``x``'s dtype (the table is cast to it).
    """

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("max_len", max_len, minimum=1)
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor, *, start: int = 0) -> torch.Tensor:
        """``x`` ``(B, L, D)`` at positions ``start … start + L - 1`` → ``(B, L, D)``."""
        _check_input(x, self.embedding.num_embeddings, self.embedding.embedding_dim, start)
        L = x.shape[1]
        return x + self.embedding.weight[start:start + L].to(x.dtype)  # (B, L, D)
