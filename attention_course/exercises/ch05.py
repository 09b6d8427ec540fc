"""Checkers for Chapter 5 (the Transformer).

- :func:`check_sinusoidal_encoding` — ``sinusoidal_encoding(max_len, d_model)`` → ``(max_len,
  d_model)``, the fixed positional encoding of Vaswani et al. (2017)
- :func:`check_sublayer` — ``sublayer(x, block, norm, norm_first)``: the residual connection and
  layer normalisation around one sublayer, post-LN or pre-LN
- :func:`check_decoder_masks` — ``decoder_masks(src_lengths, tgt_lengths, src_len, tgt_len)`` →
  ``(self_mask (B, T, T), memory_mask (B, T, S))``, the two masks of a decoder layer (causal and
  target padding; source padding), ``True`` = may attend

References: :func:`attention_course.positional.sinusoidal_encoding`, the two formulas
``LayerNorm(x + Sublayer(x))`` / ``x + Sublayer(LayerNorm(x))`` of
:meth:`attention_course.transformer.EncoderLayer.sublayer`, and
:func:`attention_course.masks.causal_mask` with :func:`~attention_course.masks.padding_mask`.
The ``_mutant`` functions are a reference with one known mistake each, used only to recognise
the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import torch
from torch import nn

from attention_course import positional
from attention_course.exercises._framework import (
    Case,
    Checker,
    Mistake,
    float32_as_float64,
    randn,
)
from attention_course.masks import causal_mask, padding_mask
from attention_course.multihead import MultiHeadAttention

__all__ = ["check_sinusoidal_encoding", "check_sublayer", "check_decoder_masks"]


# --- the sinusoidal encoding ------------------------------------------------------------------

def _encoding_cases() -> list[Case]:
    sizes = ((6, 8), (10, 4), (50, 16), (7, 6), (4, 2))
    return [Case(f"max_len={n} positions, d_model={d}", {"max_len": n, "d_model": d})
            for n, d in sizes]


def _encoding_reference(max_len, d_model):
    return positional.sinusoidal_encoding(max_len, d_model, dtype=torch.float64)


def _encoding_from(angles_fn, max_len, d_model, *, first="sin", halves=False, start=0):
    """Build an encoding from ``angles_fn(pos (N, 1), column (1, d)) -> (N, d)`` angles."""
    pos = torch.arange(start, start + max_len, dtype=torch.float64)[:, None]  # (N, 1)
    column = torch.arange(d_model, dtype=torch.float64)[None, :]  # (1, d)
    angles = angles_fn(pos, column)  # (N, d)
    even = column % 2 == 0 if not halves else column < d_model // 2
    sin, cos = torch.sin(angles), torch.cos(angles)
    return torch.where(even, sin, cos) if first == "sin" else torch.where(even, cos, sin)


def _pair_angles(exponent):
    """Angles ``pos / 10000^(exponent(pair index i))`` with the pair index of each column."""
    def angles(pos, column):
        return pos / 10000.0 ** exponent(column)
    return angles


def _encoding_angles(d_model, *, halves=False):
    def exponent(column):  # 2i / d, with i the index of the (sin, cos) pair of this column
        i = column % (d_model // 2) if halves else column // 2
        return 2 * i / d_model
    return _pair_angles(exponent)


def _enc_swapped_mutant(max_len, d_model):
    return _encoding_from(_encoding_angles(d_model), max_len, d_model, first="cos")


def _enc_pair_index_mutant(max_len, d_model):  # i / d instead of 2i / d
    return _encoding_from(_pair_angles(lambda c: (c // 2) / d_model), max_len, d_model)


def _enc_column_index_mutant(max_len, d_model):  # j / d with j the column index
    return _encoding_from(_pair_angles(lambda c: c / d_model), max_len, d_model)


def _enc_double_column_mutant(max_len, d_model):  # 2j / d with j the column index
    return _encoding_from(_pair_angles(lambda c: 2 * c / d_model), max_len, d_model)


def _enc_reciprocal_mutant(max_len, d_model):  # pos * 10000^(2i/d)
    def angles(pos, column):
        return pos * 10000.0 ** (2 * (column // 2) / d_model)
    return _encoding_from(angles, max_len, d_model)


def _enc_halves_mutant(max_len, d_model):
    return _encoding_from(_encoding_angles(d_model, halves=True), max_len, d_model, halves=True)


def _enc_from_one_mutant(max_len, d_model):
    return _encoding_from(_encoding_angles(d_model), max_len, d_model, start=1)


def _enc_transposed_mutant(max_len, d_model):
    return _encoding_reference(max_len, d_model).T


def _enc_one_function(first):
    def mutant(max_len, d_model):
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        column = torch.arange(d_model, dtype=torch.float64)[None, :]
        return first(_encoding_angles(d_model)(pos, column))
    return mutant


def _enc_exponent_zero_mutant(max_len, d_model):  # (2i) // d = 0: every frequency is 1
    return _encoding_from(_pair_angles(lambda c: 0 * c), max_len, d_model)


def _enc_max_len_mutant(max_len, d_model):  # 2i / max_len
    return _encoding_from(_pair_angles(lambda c: 2 * (c // 2) / max_len), max_len, d_model)


_ENCODING_MISTAKES = (
    Mistake("sin and cos are swapped",
            "Even columns 2i hold the sine, odd columns 2i+1 the cosine: PE(pos, 2i) = "
            "sin(pos / 10000^(2i/d)) and PE(pos, 2i+1) = cos(pos / 10000^(2i/d)). (Row 0 is then "
            "0, 1, 0, 1, ...)", (_enc_swapped_mutant,)),
    Mistake("wrong exponent: the frequency of a column uses the wrong index",
            "Columns 2i and 2i+1 form one (sin, cos) pair and share ONE frequency, "
            "1 / 10000^(2i/d): the exponent is 2i/d with i the pair index (i = column // 2), so "
            "it takes the even values 0, 2/d, 4/d, ... Using i/d, or the column index j itself "
            "(j/d or 2j/d), gives the wrong frequencies.",
            (_enc_pair_index_mutant, _enc_column_index_mutant, _enc_double_column_mutant)),
    Mistake("the position is multiplied by 10000^(2i/d) instead of divided",
            "The angle is pos / 10000^(2i/d) = pos * 10000^(-2i/d): the first pair turns once "
            "per 2π positions and the others ever more slowly, down to a wavelength of about "
            "2π · 10000. Multiplying makes the higher columns spin wildly instead.",
            (_enc_reciprocal_mutant,)),
    Mistake("sin and cos fill two halves instead of alternating columns",
            "Putting all sines in the first d/2 columns and all cosines in the last d/2 is a "
            "common variant (the values are the same, in another order), but the formula of the "
            "paper, and the course's encoding, interleave them: sine in the even columns "
            "(pe[:, 0::2]), cosine in the odd ones (pe[:, 1::2]).", (_enc_halves_mutant,)),
    Mistake("positions start at 1",
            "Positions are counted from 0, as tensor indices are: row 0 is the encoding of the "
            "first token, sin(0) = 0 and cos(0) = 1. Use torch.arange(max_len).",
            (_enc_from_one_mutant,)),
    Mistake("the encoding is transposed: (d_model, max_len)",
            "Row pos is the encoding of position pos, so the result is (max_len, d_model): "
            "one row per position, one column per feature, like the embeddings it is added "
            "to.", (_enc_transposed_mutant,)),
    Mistake("the same function fills the even and the odd columns",
            "Each pair of columns holds one sine and one cosine of the same angle: "
            "pe[:, 0::2] = sin(angles) and pe[:, 1::2] = cos(angles). A copy-paste slip that "
            "uses sin (or cos) twice loses that pairing.",
            (_enc_one_function(torch.sin), _enc_one_function(torch.cos))),
    Mistake("every pair has the same frequency: the exponent became 0",
            "The exponent 2i/d is a fraction. Integer division (2 * i // d_model, or "
            "torch.arange(0, d, 2) // d) rounds it down to 0, so 10000^0 = 1 for every pair. "
            "Divide with `/` in floating point.", (_enc_exponent_zero_mutant,)),
    Mistake("max_len used instead of d_model in the exponent",
            "The frequencies depend on the feature index and the model size only: "
            "1 / 10000^(2i / d_model). The number of positions max_len plays no part in them.",
            (_enc_max_len_mutant,)),
)


_ENCODING = Checker(
    "sinusoidal_encoding", _encoding_cases, _encoding_reference, _ENCODING_MISTAKES,
    outputs=("pe",), shapes=("(max_len, d_model)",), rtol=1e-5, atol=1e-5,
    normalise=float32_as_float64,
    error_hint="Hint: positions torch.arange(max_len)[:, None] (max_len, 1) times frequencies "
               "10000 ** (-torch.arange(0, d_model, 2) / d_model) (d/2,) broadcast to "
               "(max_len, d/2) angles; fill pe[:, 0::2] and pe[:, 1::2].",
)


def check_sinusoidal_encoding(fn) -> None:
    """Check ``fn(max_len, d_model)`` (``d_model`` even) → ``(max_len, d_model)`` with
    ``PE(pos, 2i) = sin(pos / 10000^(2i/d))`` and ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``.
    float32 and float64 results are both accepted (compared to 1e-5). Prints one line on
    success."""

    _ENCODING.check(fn)


# --- residual connection and layer normalisation ---------------------------------------------

class _FeedForward(nn.Module):
    """A position-wise feed-forward sublayer ``relu(h @ W1) @ W2`` for the test cases."""

    def __init__(self, W1: torch.Tensor, W2: torch.Tensor):
        super().__init__()
        self.register_buffer("W1", W1)
        self.register_buffer("W2", W2)
        D, F = W1.shape
        self.description = f"feed-forward relu(h @ W1) @ W2 ({D} → {F} → {D})"

    def forward(self, h):
        return torch.relu(h @ self.W1) @ self.W2

    def __repr__(self):
        return self.description


class _SelfAttention(nn.Module):
    """Self-attention as a sublayer: ``mha(h, h, h)[0]``."""

    def __init__(self, mha: MultiHeadAttention, D: int, H: int):
        super().__init__()
        self.mha = mha
        self.description = f"self-attention MultiHeadAttention({D}, {H})"

    def forward(self, h):
        return self.mha(h, h, h)[0]

    def __repr__(self):
        return self.description


def _layer_norm(g, D, dtype):
    norm = nn.LayerNorm(D, dtype=dtype)
    with torch.no_grad():  # make the learned scale and shift count (they start at 1 and 0)
        norm.weight.copy_(1 + 0.5 * randn(g, D))
        norm.bias.copy_(0.5 * randn(g, D))
    return norm.requires_grad_(False)  # plain numbers in, plain numbers out


def _sublayer_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    f32 = torch.float32
    cases = []
    for B, L, D, norm_first, dtype in ((2, 3, 4, False, None), (2, 3, 4, True, None),
                                       (1, 5, 6, True, None), (3, 2, 6, False, None),
                                       (2, 4, 8, True, None), (2, 4, 8, False, None),
                                       (2, 3, 8, False, f32), (3, 2, 6, True, f32)):
        dtype = dtype or torch.float64
        if D == 8:  # self-attention as the sublayer: it mixes positions
            with torch.random.fork_rng(devices=[]):  # leave the learner's global RNG alone
                mha = MultiHeadAttention(D, 2).to(dtype)
            with torch.no_grad():
                for p in mha.parameters():
                    p.copy_(randn(g, *p.shape) / D**0.5)
            block = _SelfAttention(mha.requires_grad_(False), D, 2)
        else:  # a position-wise feed-forward network
            block = _FeedForward(randn(g, D, 2 * D, dtype=dtype),
                                 randn(g, 2 * D, D, dtype=dtype) / D)
        kind = "pre-LN" if norm_first else "post-LN"
        note = "float32, " if dtype == f32 else ""
        cases.append(Case(f"{note}{kind}: B={B}, L={L}, D={D}",
                          {"x": 2 * randn(g, B, L, D, dtype=dtype) + 1, "block": block,
                           "norm": _layer_norm(g, D, dtype), "norm_first": norm_first}))
    return cases


def _sublayer_reference(x, block, norm, norm_first):
    if norm_first:
        return x + block(norm(x))  # x + Sublayer(LN(x))
    return norm(x + block(x))  # LN(x + Sublayer(x))


def _post(x, block, norm):
    return norm(x + block(x))


def _pre(x, block, norm):
    return x + block(norm(x))


def _sub_always_post_mutant(x, block, norm, norm_first):
    return _post(x, block, norm)


def _sub_always_pre_mutant(x, block, norm, norm_first):
    return _pre(x, block, norm)


def _sub_swapped_mutant(x, block, norm, norm_first):
    return _post(x, block, norm) if norm_first else _pre(x, block, norm)


def _sub_no_residual_mutant(x, block, norm, norm_first):
    return block(norm(x)) if norm_first else norm(block(x))


def _sub_branch_only_mutant(x, block, norm, norm_first):
    return _pre(x, block, norm) if norm_first else x + norm(block(x))


def _sub_branch_only_both_mutant(x, block, norm, norm_first):
    return x + norm(block(x))


def _sub_normalised_residual_mutant(x, block, norm, norm_first):
    h = norm(x)
    return h + block(h) if norm_first else _post(x, block, norm)


def _sub_normalised_residual_both_mutant(x, block, norm, norm_first):
    h = norm(x)
    return h + block(h)


def _sub_twice_mutant(x, block, norm, norm_first):
    return norm(x + block(norm(x)))


def _sub_twice_after_mutant(x, block, norm, norm_first):
    return norm(norm(x + block(x))) if not norm_first else norm(x + block(norm(x)))


def _sub_norm_of_x_mutant(x, block, norm, norm_first):  # LayerNorm(x) + Sublayer(x)
    return _pre(x, block, norm) if norm_first else norm(x) + block(x)


def _sub_no_norm_mutant(x, block, norm, norm_first):
    return x + block(x)


def _plain_norm(h):
    return nn.functional.layer_norm(h, h.shape[-1:])  # a fresh LayerNorm: scale 1, shift 0


def _sub_fresh_norm_mutant(x, block, norm, norm_first):
    return _sublayer_reference(x, block, _plain_norm, norm_first)


_BOTH_FORMULAS = ("norm_first=False is post-LN, LayerNorm(x + Sublayer(x)); norm_first=True is "
                  "pre-LN, x + Sublayer(LayerNorm(x)).")

_SUBLAYER_MISTAKES = (
    # Two mistakes, not one with two mutants: together they would explain every case of a
    # learner who swapped the formulas, and hide the better diagnosis below.
    Mistake("norm_first is ignored: this is always post-LN",
            f"The post-LN formula comes back for both values of norm_first. {_BOTH_FORMULAS}",
            (_sub_always_post_mutant,)),
    Mistake("norm_first is ignored: this is always pre-LN",
            f"The pre-LN formula comes back for both values of norm_first. {_BOTH_FORMULAS}",
            (_sub_always_pre_mutant,)),
    Mistake("pre-LN and post-LN are swapped",
            "norm_first=True means the norm comes FIRST, inside the branch: "
            "x + Sublayer(LayerNorm(x)) (pre-LN). norm_first=False is the original paper's "
            "post-LN, LayerNorm(x + Sublayer(x)).", (_sub_swapped_mutant,)),
    Mistake("the residual connection is missing",
            "The sublayer's output is ADDED to its input x: without the `x + ...` the layer "
            "must relearn the identity, and gradients lose their direct path through the stack.",
            (_sub_no_residual_mutant,)),
    Mistake("only the sublayer's output is normalised: x + LayerNorm(Sublayer(x))",
            "Post-LN normalises the SUM of the residual and the sublayer: "
            "LayerNorm(x + Sublayer(x)). (Pre-LN normalises the sublayer's INPUT: "
            "x + Sublayer(LayerNorm(x)).)",
            (_sub_branch_only_mutant, _sub_branch_only_both_mutant)),
    Mistake("the residual adds the normalised input",
            "In pre-LN the residual path carries x itself, untouched: "
            "x + Sublayer(LayerNorm(x)). "
            "Overwriting x with LayerNorm(x) first (`x = norm(x); return x + block(x)`) "
            "normalises the residual stream in every layer, which is what pre-LN avoids.",
            (_sub_normalised_residual_mutant, _sub_normalised_residual_both_mutant)),
    Mistake("LayerNorm is applied twice",
            "Each sublayer has exactly one LayerNorm: around the sum for post-LN, "
            "LayerNorm(x + Sublayer(x)), or on the branch's input for pre-LN, "
            "x + Sublayer(LayerNorm(x)); never both.",
            (_sub_twice_mutant, _sub_twice_after_mutant)),
    Mistake("the LayerNorm is never applied",
            f"Your result is x + Sublayer(x), a residual connection without normalisation. "
            f"{_BOTH_FORMULAS}", (_sub_no_norm_mutant,)),
    Mistake("post-LN computes LayerNorm(x) + Sublayer(x)",
            "The parentheses matter: post-LN normalises the SUM, LayerNorm(x + Sublayer(x)), "
            "i.e. `norm(x + block(x))`, not `norm(x) + block(x)`.",
            (_sub_norm_of_x_mutant,)),
    Mistake("the LayerNorm's learned scale and shift are not used",
            "Your result is normalised with weight 1 and bias 0, as a freshly built "
            "nn.LayerNorm(D) or F.layer_norm without weights gives. Use the `norm` you were "
            "given, `norm(h)`: its weight and bias are part of the layer.",
            (_sub_fresh_norm_mutant,)),
)


_SUBLAYER = Checker(
    "sublayer", _sublayer_cases, _sublayer_reference, _SUBLAYER_MISTAKES,
    outputs=("output",), shapes=("(B, L, D)",),
    error_hint="Hint: call the two arguments as functions: block(h) runs the sublayer, "
               "norm(h) the LayerNorm; both map (B, L, D) to (B, L, D).",
)


def check_sublayer(fn) -> None:
    """Check ``fn(x, block, norm, norm_first)`` → ``(B, L, D)``: the residual connection and
    layer normalisation around ``block`` (a callable ``(B, L, D)`` → ``(B, L, D)``, e.g. a
    feed-forward network or self-attention) with the ``nn.LayerNorm`` ``norm``: post-LN
    ``norm(x + block(x))`` when ``norm_first`` is false, pre-LN ``x + block(norm(x))`` when it
    is true (no dropout; float64 and float32). Prints one line on success."""
    _SUBLAYER.check(fn)


# --- the decoder's two masks ------------------------------------------------------------------

def _mask_cases() -> list[Case]:
    shapes = (([5, 3, 2], [4, 2, 3], 5, 4, ""), ([2, 4], [3, 6], 4, 6, ""),
              ([3, 1, 4, 2], [4, 2, 5, 3], 4, 5, ""), ([4], [5], 4, 5, ""),
              ([3, 1], [2, 4], 5, 6, "every sequence padded beyond the longest, "),
              ([2], [3], 4, 7, "one padded pair, more target than source positions, "))
    return [Case(f"{note}source lengths {src}, target lengths {tgt}: B={len(src)}, S={S}, T={T}",
                 {"src_lengths": torch.tensor(src), "tgt_lengths": torch.tensor(tgt),
                  "src_len": S, "tgt_len": T})
            for src, tgt, S, T, note in shapes]


def _real(lengths, length, extra=0):
    return torch.arange(length)[None, :] < lengths[:, None] + extra  # (B, L): True = real token


def _self_mask(tgt_lengths, T, *, diagonal=0, padding="keys", extra=0):
    query, key = torch.arange(T)[:, None], torch.arange(T)[None, :]  # (T, 1), (1, T)
    causal = (key <= query + diagonal)[None]  # (1, T, T)
    real = _real(tgt_lengths, T, extra)  # (B, T)
    if padding == "keys":
        return causal & real[:, None, :]  # (B, T, T)
    if padding == "queries":
        return causal & real[:, :, None]
    return causal.expand(len(tgt_lengths), T, T)  # no padding


def _memory_mask(src_lengths, S, T, extra=0):
    return _real(src_lengths, S, extra)[:, None, :].expand(len(src_lengths), T, S)  # (B, T, S)


def _masks_reference(src_lengths, tgt_lengths, src_len, tgt_len):
    causal = causal_mask(tgt_len)  # (T, T): query t sees keys s <= t
    tgt_real = padding_mask(tgt_lengths, tgt_len)  # (B, T): True at real tokens
    src_real = padding_mask(src_lengths, src_len)  # (B, S)
    self_mask = causal[None, :, :] & tgt_real[:, None, :]  # (B, T, T): keys must be real
    memory_mask = src_real[:, None, :].expand(-1, tgt_len, -1)  # (B, T, S): every query alike
    return self_mask, memory_mask


def _masks_inverted_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    self_mask, memory_mask = _masks_reference(src_lengths, tgt_lengths, src_len, tgt_len)
    return ~self_mask, ~memory_mask


def _masks_inverted_self_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    self_mask, memory_mask = _masks_reference(src_lengths, tgt_lengths, src_len, tgt_len)
    return ~self_mask, memory_mask


def _masks_inverted_memory_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    self_mask, memory_mask = _masks_reference(src_lengths, tgt_lengths, src_len, tgt_len)
    return self_mask, ~memory_mask


def _masks_no_causal_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    T = tgt_len
    self_mask = _real(tgt_lengths, T)[:, None, :].expand(len(tgt_lengths), T, T)
    return self_mask, _memory_mask(src_lengths, src_len, T)


def _masks_diagonal(offset):
    def mutant(src_lengths, tgt_lengths, src_len, tgt_len):
        return (_self_mask(tgt_lengths, tgt_len, diagonal=offset),
                _memory_mask(src_lengths, src_len, tgt_len))
    return mutant


def _masks_queries_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    return (_self_mask(tgt_lengths, tgt_len, padding="queries"),
            _memory_mask(src_lengths, src_len, tgt_len))


def _masks_no_target_padding_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    return (_self_mask(tgt_lengths, tgt_len, padding="none"),
            _memory_mask(src_lengths, src_len, tgt_len))


def _masks_causal_memory(aligned_bottom_right):
    def mutant(src_lengths, tgt_lengths, src_len, tgt_len):
        S, T = src_len, tgt_len
        causal = causal_mask(T, S) if aligned_bottom_right else (
            torch.arange(S)[None, :] <= torch.arange(T)[:, None])  # (T, S)
        return (_self_mask(tgt_lengths, T), _memory_mask(src_lengths, S, T) & causal[None])
    return mutant


def _masks_no_source_padding_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    memory_mask = torch.ones(len(src_lengths), tgt_len, src_len, dtype=torch.bool)
    return _self_mask(tgt_lengths, tgt_len), memory_mask


def _masks_padding_off_by_one_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    return (_self_mask(tgt_lengths, tgt_len, extra=1),
            _memory_mask(src_lengths, src_len, tgt_len, extra=1))


def _masks_or_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    causal = causal_mask(tgt_len)[None]  # (1, T, T)
    self_mask = causal | _real(tgt_lengths, tgt_len)[:, None, :]  # should be &
    return self_mask, _memory_mask(src_lengths, src_len, tgt_len)


def _masks_longest_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    return _masks_reference(src_lengths, tgt_lengths, int(src_lengths.max()),
                            int(tgt_lengths.max()))


def _masks_lengths_swapped(self_from_src: bool, memory_from_tgt: bool):
    def mutant(src_lengths, tgt_lengths, src_len, tgt_len):
        self_lengths = src_lengths if self_from_src else tgt_lengths
        memory_lengths = tgt_lengths if memory_from_tgt else src_lengths
        return (_self_mask(self_lengths, tgt_len),
                _memory_mask(memory_lengths, src_len, tgt_len))
    return mutant


def _masks_memory_transposed_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    memory_mask = _real(src_lengths, src_len)[:, :, None].expand(-1, src_len, tgt_len)
    return _self_mask(tgt_lengths, tgt_len), memory_mask  # (B, S, T)


def _masks_unbatched_causal_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    return causal_mask(tgt_len), _memory_mask(src_lengths, src_len, tgt_len)  # (T, T)


def _masks_swapped_mutant(src_lengths, tgt_lengths, src_len, tgt_len):
    self_mask, memory_mask = _masks_reference(src_lengths, tgt_lengths, src_len, tgt_len)
    return memory_mask, self_mask


_MASK_MISTAKES = (
    Mistake("the polarity is inverted",
            "The course's masks say True = MAY attend (as torch's scaled_dot_product_attention). "
            "Your mask is True where attention is forbidden, which is the convention of "
            "nn.MultiheadAttention and nn.Transformer*; flip it (~mask) only when you hand it to "
            "torch's modules.", (_masks_inverted_mutant, _masks_inverted_self_mutant,
                                 _masks_inverted_memory_mutant)),
    Mistake("the two masks are returned in the wrong order",
            "Return (self_mask, memory_mask): first the (B, T, T) mask of the masked "
            "self-attention, then the (B, T, S) mask of the cross-attention over the source.",
            (_masks_swapped_mutant,)),
    Mistake("the self-attention mask has no causal part",
            "Under teacher forcing the decoder's input holds the whole target, so without the "
            "causal part position t can read the tokens after it, which are exactly what it "
            "must predict. Query t may only attend to keys s <= t.", (_masks_no_causal_mutant,)),
    Mistake("the causal diagonal is off by one",
            "Query t may attend to keys 0, ..., t: itself included, the next one excluded "
            "(key <= query, i.e. torch.tril with diagonal=0).",
            (_masks_diagonal(-1), _masks_diagonal(1))),
    Mistake("the target padding is applied to the queries instead of the keys",
            "A padding mask removes padded KEYS, the columns: real[:, None, :] of shape "
            "(B, 1, T). Masking the rows (real[:, :, None]) leaves the padded queries with no key "
            "at all instead. (With padding on the right, the causal part already keeps every "
            "real query away from the padding, so the two masks differ only in the rows of "
            "padded positions.)", (_masks_queries_mutant,)),
    Mistake("the self-attention mask ignores the target padding",
            "Your self-attention mask is causal only, so the padded positions at the end of a "
            "shorter target attend to each other. With padding on the right no real query can "
            "reach them (the causal part sees to that), which is why the course's Transformer "
            "passes only is_causal=True; but the complete mask combines both parts: key s is "
            "allowed when s <= t and s < tgt_lengths[b].",
            (_masks_no_target_padding_mutant, _masks_unbatched_causal_mutant)),
    Mistake("the cross-attention mask is causal",
            "The causal mask belongs to the decoder's SELF-attention only. The source is known "
            "in full before decoding starts, so every target position may attend to every real "
            "source token: the memory mask hides only the source padding.",
            (_masks_causal_memory(True), _masks_causal_memory(False))),
    Mistake("the cross-attention mask ignores the source padding",
            "The memory mask must hide the padded source positions: key s of sequence b is "
            "allowed when s < src_lengths[b], for every query t.",
            (_masks_no_source_padding_mutant,)),
    Mistake("the padding is off by one",
            "A sequence of length n has real tokens at positions 0, ..., n - 1: key s is real "
            "when s < n, not s <= n.", (_masks_padding_off_by_one_mutant,)),
    Mistake("the causal and padding parts are combined with | instead of &",
            "A key is allowed only when BOTH parts allow it: it is in the past (s <= t) AND it "
            "is a real token. `|` allows it when EITHER does, so queries see the future "
            "whenever it is real. Combine the masks with `&`.", (_masks_or_mutant,)),
    Mistake("the masks are only as long as the longest sequence",
            "The padded lengths are src_len and tgt_len, which can exceed every length in the "
            "batch. Build the positions with torch.arange(src_len) and torch.arange(tgt_len) "
            "(or pass max_len to padding_mask), not from lengths.max().",
            (_masks_longest_mutant,)),
    Mistake("the source and target lengths are mixed up",
            "The self-attention mask runs over the TARGET (keys s < tgt_lengths[b]), the "
            "memory mask over the SOURCE (keys s < src_lengths[b]).",
            (_masks_lengths_swapped(True, True), _masks_lengths_swapped(True, False),
             _masks_lengths_swapped(False, True))),
    Mistake("the memory mask is (B, S, T): source and target axes swapped",
            "Rows are the decoder's queries (target positions t), columns the keys it attends "
            "to (source positions s): memory_mask[b, t, s] has shape (B, T, S), e.g. "
            "`src_real[:, None, :].expand(-1, tgt_len, -1)`.",
            (_masks_memory_transposed_mutant,)),
)


def _expand_memory_mask(result, inputs):
    """A memory mask of shape (B, 1, S) is as good as (B, T, S): expand it."""
    B, S, T = len(inputs["src_lengths"]), inputs["src_len"], inputs["tgt_len"]
    if (isinstance(result, (tuple, list)) and len(result) == 2
            and isinstance(result[1], torch.Tensor) and result[1].shape == (B, 1, S)):
        return result[0], result[1].expand(-1, T, -1)
    return result


_MASKS = Checker(
    "decoder_masks", _mask_cases, _masks_reference, _MASK_MISTAKES,
    outputs=("self_mask", "memory_mask"), shapes=("(B, T, T)", "(B, T, S)"),
    normalise=_expand_memory_mask,
    error_hint="Hint: build the causal part (T, T) and the padding parts (B, T) and (B, S) "
               "separately, then combine them after indexing them to (1, T, T), (B, 1, T) "
               "and (B, 1, S).",
)


def check_decoder_masks(fn) -> None:
    """Check ``fn(src_lengths, tgt_lengths, src_len, tgt_len)`` → ``(self_mask, memory_mask)``,
    the boolean masks of a decoder layer (``True`` = may attend; ``B`` sequences, ``S =
    src_len``, ``T = tgt_len``): ``self_mask[b, t, s]`` ``(B, T, T)`` is True when ``s <= t``
    and ``s < tgt_lengths[b]``; ``memory_mask[b, t, s]`` ``(B, T, S)`` is True when
    ``s < src_lengths[b]`` (a memory mask of shape ``(B, 1, S)`` is accepted too). The padded
    lengths may exceed every sequence's length. Prints one line on success."""

    _MASKS.check(fn)


CHECKERS = (_ENCODING, _SUBLAYER, _MASKS)
