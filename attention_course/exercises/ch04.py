"""Checkers for Chapter 4 (multi-head attention).

- :func:`check_split_heads` — ``split_heads(x, num_heads)``: ``(B, L, D)`` → ``(B, H, L, Dh)``
- :func:`check_merge_heads` — ``merge_heads(x)``: ``(B, H, L, Dh)`` → ``(B, L, H*Dh)``
- :func:`check_parameter_count` — ``parameter_count(d_model, num_heads, bias)``: the number of
  parameters of a self-attention :class:`~attention_course.multihead.MultiHeadAttention`

References: :func:`attention_course.multihead.split_heads` / :func:`~attention_course.multihead.
merge_heads`, and the parameters of an actual ``MultiHeadAttention``. The ``_mutant`` functions
are a reference with one known mistake each, used only to recognise the mistake and name it.
Each checker returns None.
"""

from __future__ import annotations

import torch

from attention_course import multihead
from attention_course.exercises._framework import (
    Case,
    Checker,
    Mistake,
    randn,
    whole_number,
)

__all__ = ["check_split_heads", "check_merge_heads", "check_parameter_count"]


# --- split_heads ------------------------------------------------------------------------------

def _split_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    cases = []
    for B, L, D, H, dtype in ((2, 3, 8, 2, torch.float64), (1, 5, 12, 3, torch.float64),
                              (2, 4, 6, 3, torch.float64), (2, 3, 4, 1, torch.float64),
                              (1, 2, 3, 3, torch.float64), (3, 4, 10, 2, torch.float32)):
        note = "float32, " if dtype == torch.float32 else ""
        cases.append(Case(f"{note}B={B}, L={L}, D={D}, H={H} (so Dh={D // H})",
                          {"x": randn(g, B, L, D, dtype=dtype), "num_heads": H}))
    return cases


def _sizes(x, num_heads):
    B, L, D = x.shape
    return B, L, num_heads, D // num_heads


def _split_no_transpose_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, H, L, Dh)


def _split_forgot_transpose_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, L, H, Dh)


def _split_axes(*axes):
    def mutant(x, num_heads):
        B, L, H, Dh = _sizes(x, num_heads)
        return x.reshape(B, L, H, Dh).transpose(*axes)

    return mutant


def _split_heads_last_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, L, H, Dh).permute(0, 2, 3, 1)  # (B, H, Dh, L)


def _split_swapped_sizes_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, L, Dh, H).transpose(1, 2)  # Dh "heads" of size H: (B, Dh, L, H)


def _split_strided_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, L, Dh, H).permute(0, 3, 1, 2)  # head h gets features h, h+H, h+2H, ...


def _split_folded_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.reshape(B, L, H, Dh).transpose(1, 2).reshape(B * H, L, Dh)


def _split_transpose_first_mutant(x, num_heads):
    B, L, H, Dh = _sizes(x, num_heads)
    return x.transpose(1, 2).reshape(B, H, L, Dh)


def _split_stacked_first_mutant(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=-1))  # torch.stack's default dim=0: (H, B, L, Dh)


def _split_positions_mutant(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=1), dim=1)  # chunks of positions, not features


_HEAD_BLOCK = "head i must own the contiguous block of features i*Dh ... (i+1)*Dh - 1"

_SPLIT_MISTAKES = (
    Mistake(
        "reshaped straight to (B, H, L, Dh) without a transpose",
        "The shape is right but the grouping is not: `x.view(B, H, L, Dh)` reads the numbers of "
        "each sequence in memory order (position by position) and cuts them into H chunks, so "
        "'head' 0 gets every feature of the first positions instead of features 0 ... Dh-1 of "
        f"every position. Split the feature axis where it is, then move the heads forward: "
        f"`x.view(B, L, H, Dh).transpose(1, 2)`; {_HEAD_BLOCK}.",
        (_split_no_transpose_mutant,),
    ),
    Mistake(
        "the transpose is missing: the result is (B, L, H, Dh)",
        "`x.view(B, L, H, Dh)` splits the features correctly, but attention needs the heads "
        "before the positions, (B, H, L, Dh), so that every head is a batch of (L, Dh) matrices. "
        "Add `.transpose(1, 2)`.",
        (_split_forgot_transpose_mutant,),
    ),
    Mistake(
        "transposed the wrong axes",
        "After `x.view(B, L, H, Dh)` the axes are (B, L, H, Dh) = (0, 1, 2, 3). To reach "
        "(B, H, L, Dh) swap exactly L and H: `.transpose(1, 2)` (or `.permute(0, 2, 1, 3)`).",
        (_split_axes(1, 3), _split_axes(2, 3), _split_axes(0, 1), _split_axes(0, 2)),
    ),
    Mistake(
        "each head's matrix is transposed: the result is (B, H, Dh, L)",
        "split_heads returns (B, H, L, Dh): one row per position, as for the input. The "
        "transpose of the keys (K^T) happens later, inside the attention scores. Use "
        "`.transpose(1, 2)` (or `.permute(0, 2, 1, 3)`) after `x.view(B, L, H, Dh)`.",
        (_split_heads_last_mutant,),
    ),
    Mistake(
        "the number of heads and the head size are swapped in the view",
        f"`x.view(B, L, Dh, H)` cuts the features into Dh groups of H, so your heads get "
        f"strided or wrongly sized slices. The view must list H first, then Dh: "
        f"`x.view(B, L, H, Dh)`; {_HEAD_BLOCK}.",
        (_split_swapped_sizes_mutant, _split_strided_mutant),
    ),
    Mistake(
        "the heads were folded into the batch: (B*H, L, Dh)",
        "Some implementations merge B and H into one batch axis, but this exercise keeps them "
        "apart: return (B, H, L, Dh), i.e. stop after `x.view(B, L, H, Dh).transpose(1, 2)`.",
        (_split_folded_mutant,),
    ),
    Mistake(
        "transposed before splitting the features",
        "`x.transpose(1, 2)` gives (B, D, L); reshaping that to (B, H, L, Dh) cuts the "
        "feature-major numbers into blocks that mix features and positions. Split the "
        f"feature axis first, while it is last: `x.view(B, L, H, Dh).transpose(1, 2)`; "
        f"{_HEAD_BLOCK}.",
        (_split_transpose_first_mutant,),
    ),
    Mistake(
        "the heads were stacked in front of the batch: (H, B, L, Dh)",
        "torch.stack puts the new axis first by default (dim=0). The heads go after the "
        "batch: `torch.stack(x.chunk(H, dim=-1), dim=1)` → (B, H, L, Dh).",
        (_split_stacked_first_mutant,),
    ),
    Mistake(
        "the positions were split instead of the features",
        "x is (B, L, D): dim=1 holds the positions and the features are the LAST axis. Each "
        f"head gets a slice of every position's features: chunk along dim=-1; {_HEAD_BLOCK}.",
        (_split_positions_mutant,),
    ),
)


_SPLIT = Checker(
    "split_heads", _split_cases, multihead.split_heads, _SPLIT_MISTAKES,
    outputs=("heads",), shapes=("(B, H, L, Dh)",),
    error_hint="Hint: x is (B, L, D) and Dh = D // num_heads (integer division). View it as "
               "(B, L, H, Dh), then swap the L and H axes with `.transpose(1, 2)`.",
)


def check_split_heads(fn) -> None:
    """Check ``fn(x, num_heads)`` → ``(B, H, L, Dh)`` for ``x`` ``(B, L, D)``, ``Dh = D // H``,
    where head ``i`` holds features ``i*Dh … (i+1)*Dh - 1``. Prints one line on success."""
    _SPLIT.check(fn)


# --- merge_heads ------------------------------------------------------------------------------

def _merge_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    cases = []
    for B, H, L, Dh, dtype in ((2, 2, 3, 4, torch.float64), (3, 4, 2, 3, torch.float64),
                               (1, 3, 5, 2, torch.float64), (2, 1, 3, 5, torch.float64),
                               (2, 3, 4, 2, torch.float32)):
        note = "float32, " if dtype == torch.float32 else ""
        cases.append(Case(f"{note}B={B}, H={H}, L={L}, Dh={Dh}",
                          {"x": randn(g, B, H, L, Dh, dtype=dtype)}))
    return cases


def _merge_no_transpose_mutant(x):
    B, H, L, Dh = x.shape
    return x.reshape(B, L, H * Dh)


def _merge_interleaved_mutant(x):
    B, H, L, Dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, L, H * Dh)  # feature j*H + h = head h, feature j


def _merge_axes(*axes):
    def mutant(x):
        B, H, L, Dh = x.shape
        return x.transpose(*axes).reshape(B, L, H * Dh)

    return mutant


def _merge_view_mutant(x):
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).view(B, L, H * Dh)


def _merge_sequence_first_mutant(x):
    B, H, L, Dh = x.shape
    return x.permute(2, 0, 1, 3).reshape(L, B, H * Dh)


def _merge_flatten_from_1_mutant(x):
    return x.transpose(1, 2).flatten(1)  # (B, L*H*Dh)


def _merge_flatten_before_mutant(x):
    return x.flatten(2)  # (B, H, L*Dh)


def _merge_cat_positions_mutant(x):
    return torch.cat(x.unbind(1), dim=1)  # (B, H*L, Dh)


def _merge_cat_batch_mutant(x):
    return torch.cat(x.unbind(1), dim=0)  # (H*B, L, Dh)


def _merge_not_flattened_mutant(x):
    return x.transpose(1, 2)  # (B, L, H, Dh)


def _merge_sum_mutant(x):
    return x.sum(1)  # (B, L, Dh)


def _merge_mean_mutant(x):
    return x.mean(1)


_MERGE_MISTAKES = (
    Mistake(
        "reshaped without transposing first",
        "The input is (B, H, L, Dh): in memory all positions of head 0 come first, then all of "
        "head 1, and so on. Reshaping that straight to (B, L, H*Dh) cuts it into rows that mix "
        "positions. Bring the heads back next to their features first: "
        "`x.transpose(1, 2).reshape(B, L, H * Dh)`.",
        (_merge_no_transpose_mutant,),
    ),
    Mistake(
        "the heads' features are interleaved",
        "Your feature j*H + h holds feature j of head h. The concatenation puts the whole output "
        "of head h in one block, features h*Dh ... (h+1)*Dh - 1 (the inverse of split_heads). "
        "Transpose to (B, L, H, Dh) with `.transpose(1, 2)`, not to (B, L, Dh, H).",
        (_merge_interleaved_mutant,),
    ),
    Mistake(
        "transposed the wrong axes",
        "The input axes are (B, H, L, Dh) = (0, 1, 2, 3); the merge needs (B, L, H, Dh), i.e. "
        "swap exactly H and L with `.transpose(1, 2)`, then `.reshape(B, L, H * Dh)`.",
        (_merge_axes(2, 3), _merge_axes(1, 3), _merge_axes(0, 1), _merge_axes(0, 2)),
    ),
    Mistake(
        "concatenated along the wrong axis",
        "Concat joins the heads along the feature axis, so every position keeps its own row: "
        "`torch.cat([x[:, h] for h in range(H)], dim=-1)` → (B, L, H*Dh).",
        (_merge_cat_positions_mutant, _merge_cat_batch_mutant),
    ),
    Mistake(
        "the head axis was never flattened: the result is (B, L, H, Dh)",
        "The transpose is right; now join the last two axes into one feature axis of size "
        "H*Dh: `.reshape(B, L, H * Dh)` (a transposed tensor needs `reshape`, not `view`).",
        (_merge_not_flattened_mutant,),
    ),
    Mistake(
        "the heads were summed or averaged instead of concatenated",
        "Multi-head attention keeps every head's output side by side (Concat), so the result has "
        "H*Dh features; the output projection W_O mixes them afterwards with a separate block of "
        "weights for each head.",
        (_merge_sum_mutant, _merge_mean_mutant),
    ),
    Mistake(
        "used .view on a transposed tensor",
        "After `.transpose(1, 2)` the numbers are no longer laid out in memory in the new "
        "order, so `.view` cannot flatten the last two axes. Use `.reshape(B, L, H * Dh)`, "
        "which copies when it must (or `.contiguous().view(...)`).",
        (_merge_view_mutant,),
    ),
    Mistake(
        "flattened the wrong axes",
        "Only the last two axes of the transposed tensor (B, L, H, Dh) are joined: "
        "`.flatten(2)` or `.reshape(B, L, H * Dh)`. `.flatten(1)` also swallows the "
        "positions, and flattening before the transpose joins positions with features.",
        (_merge_flatten_from_1_mutant, _merge_flatten_before_mutant),
    ),
    Mistake(
        "the result is sequence-first: (L, B, H*Dh)",
        "That is the default layout of torch.nn.MultiheadAttention (batch_first=False). The "
        "course is batch-first: return (B, L, H*Dh), i.e. `x.transpose(1, 2).reshape(B, L, "
        "H * Dh)`.",
        (_merge_sequence_first_mutant,),
    ),
)


_MERGE = Checker(
    "merge_heads", _merge_cases, multihead.merge_heads, _MERGE_MISTAKES,
    outputs=("merged",), shapes=("(B, L, H*Dh)",),
    error_hint="Hint: x is (B, H, L, Dh). `.transpose(1, 2)` gives (B, L, H, Dh); a "
               "transposed tensor is not contiguous, so flatten it with `.reshape`, not "
               "`.view`.",
)


def check_merge_heads(fn) -> None:
    """Check ``fn(x)`` → ``(B, L, H*Dh)`` for ``x`` ``(B, H, L, Dh)``: the concatenation of the
    heads along the features, the inverse of ``split_heads``. Prints one line on success."""
    _MERGE.check(fn)


# --- parameter_count --------------------------------------------------------------------------

def _count_cases() -> list[Case]:
    sizes = ((8, 2, True), (12, 3, True), (8, 2, False), (16, 4, True), (6, 1, True),
             (10, 5, False))
    return [Case(f"{H} head{'s' * (H > 1)} of size {D // H}, {'with' if b else 'without'} biases",
                 {"d_model": D, "num_heads": H, "bias": b}) for D, H, b in sizes]


def _count_reference(d_model, num_heads, bias):
    with torch.device("meta"):  # no memory, no initialisation, no use of the random generator
        module = multihead.MultiHeadAttention(d_model, num_heads, bias=bias)
    return torch.tensor(sum(p.numel() for p in module.parameters()))


def _count(value) -> torch.Tensor:
    return torch.tensor(int(value))


def _count_no_output_mutant(d_model, num_heads, bias):
    return _count(3 * d_model**2 + 3 * d_model * bias)


def _count_no_bias_mutant(d_model, num_heads, bias):
    return _count(4 * d_model**2)


def _count_bias_ignored_mutant(d_model, num_heads, bias):
    return _count(4 * d_model**2 + 4 * d_model)


def _count_full_heads_mutant(d_model, num_heads, bias):
    return _count(num_heads * (4 * d_model**2 + 4 * d_model * bias))


def _count_full_heads_one_output_mutant(d_model, num_heads, bias):
    D, H = d_model, num_heads
    return _count(3 * H * (D * D + D * bias) + D * D + D * bias)


def _count_full_heads_wide_output_mutant(d_model, num_heads, bias):
    D, H = d_model, num_heads
    return _count(3 * H * (D * D + D * bias) + H * D * D + D * bias)


def _count_bias_per_head_mutant(d_model, num_heads, bias):
    return _count(4 * d_model**2 + 4 * num_heads * d_model * bias)


def _count_bias_per_head_qkv_mutant(d_model, num_heads, bias):
    return _count(4 * d_model**2 + (3 * num_heads + 1) * d_model * bias)


def _count_head_sized_mutant(d_model, num_heads, bias):
    D, Dh = d_model, d_model // num_heads
    return _count(3 * num_heads * (Dh * Dh + Dh * bias) + D * D + D * bias)


def _count_no_output_bias_mutant(d_model, num_heads, bias):
    return _count(4 * d_model**2 + 3 * d_model * bias)


def _count_one_head_mutant(d_model, num_heads, bias):
    D, Dh = d_model, d_model // num_heads
    return _count(3 * (D * Dh + Dh * bias) + D * D + D * bias)


_COUNT_MISTAKES = (
    Mistake(
        "the output projection W_O is missing",
        "Besides W_Q, W_K and W_V the module has a fourth (D, D) matrix: W_O maps the "
        "concatenated heads back to d_model features (plus its bias of size D when bias=True).",
        (_count_no_output_mutant,),
    ),
    Mistake(
        "the biases are missing",
        "With bias=True each of the four projections also has a bias vector of size d_model: "
        "4 * d_model more parameters.",
        (_count_no_bias_mutant,),
    ),
    Mistake(
        "biases counted although bias=False",
        "With bias=False the four projections have weights only: 4 * d_model**2 parameters.",
        (_count_bias_ignored_mutant,),
    ),
    Mistake(
        "every head was given full (D, D) matrices",
        "The heads share the model width: head i has W_i^Q, W_i^K, W_i^V of shape (D, Dh) with "
        "Dh = D / H, and the H of them together make up one (D, D) matrix per projection. The "
        "count does not grow with num_heads.",
        (_count_full_heads_mutant, _count_full_heads_one_output_mutant,
         _count_full_heads_wide_output_mutant),
    ),
    Mistake(
        "a bias of size d_model was counted for every head",
        "A head's slice of the Q, K or V projection has Dh = D / H outputs, so its bias has Dh "
        "entries, and the H slices together have D. Each of the four projections has one bias "
        "of size d_model, whatever num_heads is.",
        (_count_bias_per_head_mutant, _count_bias_per_head_qkv_mutant),
    ),
    Mistake(
        "only one head's projections were counted",
        "W_Q, W_K and W_V hold the projections of all H heads: (D, Dh) per head, (D, D) in "
        "total for each of them.",
        (_count_one_head_mutant,),
    ),
    Mistake(
        "each head's projections were counted as (Dh, Dh)",
        "A head reads the WHOLE token vector: its W_i^Q, W_i^K and W_i^V map d_model inputs to "
        "Dh outputs, so each is (D, Dh), not (Dh, Dh). Only the outputs are split among heads.",
        (_count_head_sized_mutant,),
    ),
    Mistake(
        "the output projection's bias is missing",
        "W_O is an nn.Linear like the other three: with bias=True it has a bias of size "
        "d_model too, so there are 4 * d_model biases in all.",
        (_count_no_output_bias_mutant,),
    ),
)


_COUNT = Checker(
    "parameter_count", _count_cases, _count_reference, _COUNT_MISTAKES,
    outputs=("count",), shapes=("()",), normalise=whole_number("parameters"),
    error_hint="Hint: count the weights and biases of the four projections W_Q, W_K, W_V "
               "and W_O.",
)


def check_parameter_count(fn) -> None:
    """Check ``fn(d_model, num_heads, bias)`` → the number of parameters (an int) of
    ``MultiHeadAttention(d_model, num_heads, bias=bias)`` used for self-attention
    (``kdim = vdim = d_model``). Prints one line on success."""
    _COUNT.check(fn)


CHECKERS = (_SPLIT, _MERGE, _COUNT)
