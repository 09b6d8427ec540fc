"""Checkers for Chapter 1 (why attention: the limits of recurrent encoder–decoders).

- :func:`check_gru_step` — one GRU step ``gru_step(x, h, W_ih, W_hh, b_ih, b_hh)``
- :func:`check_bahdanau_context` — ``bahdanau_context(s_prev, memory, memory_mask, W_q, W_k, v)``
  returning ``(context, weights)``
- :func:`check_reversal_alignment` — ``reversal_alignment(n)``, the ideal alignment of reversal

References: ``torch.gru_cell`` (the kernel behind ``nn.GRUCell``) and the course's
:mod:`attention_course.attention`. The ``_mutant`` functions are a reference with one known
mistake each, used only to recognise and name the mistake.
"""

from __future__ import annotations

import torch

from attention_course import attention
from attention_course.exercises._framework import (
    Case,
    Checker,
    Mistake,
    float32_as_float64,
    randn,
)
from attention_course.masks import padding_mask

__all__ = ["check_gru_step", "check_bahdanau_context", "check_reversal_alignment"]


# --- one GRU step -----------------------------------------------------------------------------

def _gru_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for B, D, H, dtype in ((1, 3, 2, torch.float64), (4, 5, 3, torch.float64),
                           (2, 2, 6, torch.float64), (3, 4, 5, torch.float32)):
        note = "float32, " if dtype == torch.float32 else ""
        cases.append(Case(
            f"{note}B={B}, input size I={D}, hidden size H={H}",
            {"x": randn(g, B, D, dtype=dtype), "h": randn(g, B, H, dtype=dtype),
             "W_ih": randn(g, 3 * H, D, dtype=dtype), "W_hh": randn(g, 3 * H, H, dtype=dtype),
             "b_ih": randn(g, 3 * H, dtype=dtype), "b_hh": randn(g, 3 * H, dtype=dtype)},
        ))
    return cases


def _gates(x, h, W_ih, W_hh, b_ih, b_hh):
    gi = (x @ W_ih.T + b_ih).chunk(3, dim=-1)  # input parts of r, z, n: (B, H) each
    gh = (h @ W_hh.T + b_hh).chunk(3, dim=-1)  # hidden parts
    return gi, gh


def _gru_from(gi, gh, h, order=(0, 1, 2), z_on_new=False, gate=torch.sigmoid):
    r_i, z_i, n_i = order
    r = gate(gi[r_i] + gh[r_i])
    z = gate(gi[z_i] + gh[z_i])
    n = torch.tanh(gi[n_i] + r * gh[n_i])
    return z * n + (1 - z) * h if z_on_new else (1 - z) * n + z * h


def _gru_swapped_rz_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    return _gru_from(*_gates(x, h, W_ih, W_hh, b_ih, b_hh), h, order=(1, 0, 2))


def _gru_z_on_new_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    return _gru_from(*_gates(x, h, W_ih, W_hh, b_ih, b_hh), h, z_on_new=True)


def _gru_reset_before_matmul_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    r = torch.sigmoid(gi[0] + gh[0])
    z = torch.sigmoid(gi[1] + gh[1])
    W_hn, b_hn = W_hh.chunk(3)[2], b_hh.chunk(3)[2]
    n = torch.tanh(gi[2] + (r * h) @ W_hn.T + b_hn)  # the original GRU paper's variant
    return (1 - z) * n + z * h


def _gru_no_reset_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    z = torch.sigmoid(gi[1] + gh[1])
    n = torch.tanh(gi[2] + gh[2])
    return (1 - z) * n + z * h


def _gru_sigmoid_candidate_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    r = torch.sigmoid(gi[0] + gh[0])
    z = torch.sigmoid(gi[1] + gh[1])
    n = torch.sigmoid(gi[2] + r * gh[2])
    return (1 - z) * n + z * h


def _gru_tanh_gates_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    return _gru_from(*_gates(x, h, W_ih, W_hh, b_ih, b_hh), h, gate=torch.tanh)


def _gru_without(drop_ih: bool, drop_hh: bool):
    def mutant(x, h, W_ih, W_hh, b_ih, b_hh):
        return torch.gru_cell(x, h, W_ih, W_hh, b_ih * (not drop_ih), b_hh * (not drop_hh))
    return mutant


def _gru_b_hn_outside_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    gi = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    W_hr, W_hz, W_hn = W_hh.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(gi[0] + h @ W_hr.T + b_hr)
    z = torch.sigmoid(gi[1] + h @ W_hz.T + b_hz)
    n = torch.tanh(gi[2] + r * (h @ W_hn.T) + b_hn)
    return (1 - z) * n + z * h


def _gru_candidate_mutant(x, h, W_ih, W_hh, b_ih, b_hh):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh)
    r = torch.sigmoid(gi[0] + gh[0])
    return torch.tanh(gi[2] + r * gh[2])


_GRU_MISTAKES = (
    Mistake("the reset and update gates are swapped",
            "PyTorch stores the three gates in the order (r, z, n): rows 0:H of W_ih/W_hh belong "
            "to the reset gate r, rows H:2H to the update gate z, rows 2H:3H to the candidate n.",
            (_gru_swapped_rz_mutant,)),
    Mistake("z and 1 - z are exchanged",
            "In PyTorch's convention h' = (1 - z) * n + z * h: z is the fraction of the OLD state "
            "that is kept, so z close to 1 copies h forward (that is what lets gradients survive "
            "long distances).", (_gru_z_on_new_mutant,)),
    Mistake("the reset gate multiplies h before the matrix product",
            "That is the variant of the original GRU paper. PyTorch (and this exercise) applies r "
            "after the product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).",
            (_gru_reset_before_matmul_mutant,)),
    Mistake("the reset gate is never applied",
            "The candidate must see the old state through the reset gate: "
            "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).", (_gru_no_reset_mutant,)),
    Mistake("the candidate uses a sigmoid",
            "Gates r and z use the sigmoid (values in (0, 1)); the candidate n uses tanh, so the "
            "state can move in both directions (values in (-1, 1)).",
            (_gru_sigmoid_candidate_mutant,)),
    Mistake("the gates use tanh instead of the sigmoid",
            "r and z are gates: fractions between 0 and 1, so they use the logistic sigmoid "
            "(torch.sigmoid). tanh ranges over (-1, 1) and belongs to the candidate n only.",
            (_gru_tanh_gates_mutant,)),
    Mistake("a bias is missing",
            "Both products carry their own bias: x @ W_ih.T + b_ih and h @ W_hh.T + b_hh, each "
            "of size 3H, split into the (r, z, n) blocks like the weights.",
            (_gru_without(True, True), _gru_without(True, False), _gru_without(False, True))),
    Mistake("b_hn is added outside the reset gate",
            "In PyTorch's GRU the hidden bias of the candidate is part of the product that r "
            "scales: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). Add b_hh to h @ W_hh.T "
            "before splitting, and multiply the whole third chunk by r.",
            (_gru_b_hn_outside_mutant,)),
    Mistake("returned the candidate n instead of the new state",
            "n is only the proposal. The new state interpolates between it and the old state "
            "with the update gate: h' = (1 - z) * n + z * h.", (_gru_candidate_mutant,)),
)

_GRU = Checker(
    "gru_step", _gru_cases, torch.gru_cell, _GRU_MISTAKES,
    outputs=("h_new",), shapes=("(B, H)",),
    error_hint="Shapes: x (B, I) @ W_ih.T (I, 3H) -> (B, 3H); split it into three (B, H) "
               "chunks with .chunk(3, dim=-1).",
)


def check_gru_step(fn) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh)`` → ``h'`` ``(B, H)`` against ``torch.gru_cell``
    (``nn.GRUCell``'s layout: gate order r, z, n; weights ``(3H, I)`` and ``(3H, H)``), in
    float64 and float32. Prints one line on success."""
    _GRU.check(fn)


# --- Bahdanau context vector ------------------------------------------------------------------

def _context_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    cases = []
    for B, S, H, A, lengths, dtype, note in (
        (1, 4, 3, 5, [4], torch.float64, ""),
        (3, 6, 4, 2, [6, 3, 1], torch.float64, ""),
        (2, 5, 2, 7, [2, 5], torch.float64, ""),
        (2, 7, 3, 4, [5, 2], torch.float64, "every source padded (S beyond the longest), "),
        (3, 5, 4, 3, [3, 5, 1], torch.float32, "float32, "),
    ):
        cases.append(Case(
            f"{note}B={B}, S={S}, H={H}, A={A}, source lengths {lengths}",
            {"s_prev": randn(g, B, H, dtype=dtype), "memory": randn(g, B, S, H, dtype=dtype),
             "memory_mask": padding_mask(torch.tensor(lengths), S),
             "W_q": randn(g, A, H, dtype=dtype), "W_k": randn(g, A, H, dtype=dtype),
             "v": randn(g, A, dtype=dtype)},
        ))
    return cases


def _scores(s_prev, memory, W_q, W_k, v, hidden=torch.tanh):
    return hidden(s_prev[:, None, :] @ W_q.T + memory @ W_k.T) @ v  # (B, S)


def _context_from(weights, memory):
    return (weights[:, None, :] @ memory)[:, 0], weights  # (B, H), (B, S)


def _context_reference(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = attention.additive_score(s_prev[:, None, :], memory, W_q, W_k, v)[:, 0]  # (B, S)
    return _context_from(attention.masked_softmax(scores, memory_mask), memory)


def _ctx_mask_ignored_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    return _context_from(torch.softmax(_scores(s_prev, memory, W_q, W_k, v), -1), memory)


def _ctx_mask_after_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    weights = torch.softmax(_scores(s_prev, memory, W_q, W_k, v), -1) * memory_mask
    return _context_from(weights, memory)


def _ctx_wrong_axis_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_q, W_k, v).masked_fill(~memory_mask, float("-inf"))
    return _context_from(torch.softmax(scores, 0).nan_to_num(0.0), memory)


def _ctx_scores_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_q, W_k, v).masked_fill(~memory_mask, 0.0)
    return _context_from(scores, memory)


def _ctx_mean_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    weights = memory_mask / memory_mask.sum(-1, keepdim=True)
    return _context_from(weights.to(memory.dtype), memory)


def _ctx_projected_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    weights = attention.masked_softmax(_scores(s_prev, memory, W_q, W_k, v), memory_mask)
    return (weights[:, None, :] @ (memory @ W_k.T))[:, 0], weights


def _ctx_swapped_weights_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_k, W_q, v)
    return _context_from(attention.masked_softmax(scores, memory_mask), memory)


def _ctx_no_tanh_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_q, W_k, v, hidden=lambda a: a)
    return _context_from(attention.masked_softmax(scores, memory_mask), memory)


def _ctx_inverted_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_q, W_k, v)
    return _context_from(attention.masked_softmax(scores, ~memory_mask), memory)


def _ctx_zero_fill_mutant(s_prev, memory, memory_mask, W_q, W_k, v):
    scores = _scores(s_prev, memory, W_q, W_k, v).masked_fill(~memory_mask, 0.0)
    return _context_from(torch.softmax(scores, -1), memory)


def _ctx_singleton(weights_too: bool):
    def mutant(s_prev, memory, memory_mask, W_q, W_k, v):
        context, weights = _context_reference(s_prev, memory, memory_mask, W_q, W_k, v)
        return context[:, None, :], weights[:, None, :] if weights_too else weights
    return mutant


_CONTEXT_MISTAKES = (
    Mistake("the padding mask is ignored",
            "Padded source positions are not tokens: their scores must be -inf before the softmax "
            "so they get zero weight (memory_mask is True at real tokens).",
            (_ctx_mask_ignored_mutant,)),
    Mistake("the mask is applied after the softmax",
            "Zeroing padded weights after the softmax leaves the real weights summing to less "
            "than one. Mask the scores (-inf) before the softmax, e.g. with masked_softmax.",
            (_ctx_mask_after_mutant,)),
    Mistake("softmax over the wrong axis",
            "The weights of one decoder step are a distribution over the S source positions: "
            "normalise along the last axis (dim=-1), not over the batch.",
            (_ctx_wrong_axis_mutant,)),
    Mistake("returned the raw scores e instead of the weights alpha",
            "The scores v . tanh(W_q s + W_k h_j) must go through the (masked) softmax; the "
            "weights are positive and sum to one.", (_ctx_scores_mutant,)),
    Mistake("the context is a plain average of the encoder outputs",
            "Every real position got the same weight 1/length: the scores were never used. "
            "Weight each h_j by its softmax weight alpha_j.", (_ctx_mean_mutant,)),
    Mistake("the context averages the projected keys W_k h_j",
            "The projections only serve to compute the scores; the context averages the encoder "
            "outputs h_j themselves (memory), so it has size H, not A.",
            (_ctx_projected_mutant,)),
    Mistake("W_q and W_k are swapped",
            "W_q projects the decoder state (the query: `s_prev @ W_q.T`) and W_k the encoder "
            "outputs (the keys: `memory @ W_k.T`). Both are (A, H) here, so nothing fails when "
            "they are exchanged; only the scores are wrong.", (_ctx_swapped_weights_mutant,)),
    Mistake("tanh is missing",
            "The score is v . tanh(W_q s + W_k h_j). Without tanh it splits into a part of s "
            "plus a part of h_j, and the part of s is the same for every position, so the "
            "softmax ignores the decoder state altogether.", (_ctx_no_tanh_mutant,)),
    Mistake("mask polarity is inverted",
            "memory_mask is True at REAL tokens (True = may attend). Your weights sit on the "
            "padding instead: block the positions where the mask is False, "
            "`scores.masked_fill(~memory_mask, float('-inf'))`.", (_ctx_inverted_mutant,)),
    Mistake("masked scores were set to 0 rather than -inf",
            "A score of 0 is not 'forbidden': exp(0) = 1, so padded positions still get weight. "
            "Fill them with float('-inf') so that exp gives exactly 0.",
            (_ctx_zero_fill_mutant,)),
    Mistake("a singleton axis was left in",
            "`weights[:, None, :] @ memory` is (B, 1, H): drop the middle axis with [:, 0] or "
            ".squeeze(1) so that context is (B, H) and weights (B, S).",
            (_ctx_singleton(False), _ctx_singleton(True))),
)

_CONTEXT = Checker(
    "bahdanau_context", _context_cases, _context_reference, _CONTEXT_MISTAKES,
    outputs=("context", "weights"), shapes=("(B, H)", "(B, S)"),
    error_hint="Shapes: s_prev (B, H) @ W_q.T -> (B, A); memory (B, S, H) @ W_k.T -> "
               "(B, S, A); add them with s_prev's projection unsqueezed to (B, 1, A).",
)


def check_bahdanau_context(fn) -> None:
    """Check ``fn(s_prev, memory, memory_mask, W_q, W_k, v)`` → ``(context (B, H), weights
    (B, S))``: additive scores, a masked softmax over source positions, a weighted sum (float64
    and float32; padding up to and beyond the longest source). Prints one line on success."""
    _CONTEXT.check(fn)


# --- the alignment of reversal ----------------------------------------------------------------

def _alignment_reference(n):
    return torch.eye(n, dtype=torch.float64).flip(1)  # output t attends to source n - 1 - t


def _alignment_copy_mutant(n):
    return torch.eye(n, dtype=torch.float64)


def _alignment_shifted_mutant(n):
    return _alignment_reference(n).roll(1, dims=1)


def _alignment_shifted_back_mutant(n):
    return _alignment_reference(n).roll(-1, dims=1)


def _alignment_uniform_mutant(n):
    return torch.full((n, n), 1.0 / n, dtype=torch.float64)


def _alignment_of(dtype):
    def mutant(n):
        return _alignment_reference(n).to(dtype)
    return mutant


def _alignment_positions(dtype):
    def mutant(n):
        return torch.arange(n - 1, -1, -1).to(dtype)  # (n,): the source position of each step
    return mutant


_ALIGNMENT_MISTAKES = (
    Mistake("this is the copy task's alignment (a diagonal)",
            "For reversal the first output token is the LAST source token: output step t reads "
            "source position n - 1 - t, an anti-diagonal.", (_alignment_copy_mutant,)),
    Mistake("the anti-diagonal is off by one",
            "With positions counted from 0, output step t reads source position n - 1 - t (so "
            "step 0 reads position n - 1, the last one).",
            (_alignment_shifted_mutant, _alignment_shifted_back_mutant)),
    Mistake("uniform weights",
            "That is what an untrained model does. The ideal alignment puts all the weight of "
            "each output step on the one source token it copies.", (_alignment_uniform_mutant,)),
    Mistake("the alignment is not a float tensor",
            "The pattern is right, but attention weights are real numbers (probabilities), so "
            "return floats: build it with dtype=torch.float64, or convert with .double().",
            tuple(_alignment_of(d) for d in (torch.bool, torch.int64, torch.int32, torch.uint8))),
    Mistake("returned the source positions instead of the weight matrix",
            "You returned, for each output step, the index of the source token it copies. The "
            "exercise asks for the attention weights themselves: an (n, n) matrix whose row t "
            "is one-hot at that index, e.g. torch.eye(n).flip(1).",
            (_alignment_positions(torch.int64), _alignment_positions(torch.float64))),
)


def _alignment_cases() -> list[Case]:
    # n=1 cannot tell most mistakes apart; it comes last so diagnoses use informative cases.
    return [Case(f"source length n={n}", {"n": n}) for n in (2, 5, 8, 1)]


_ALIGNMENT = Checker(
    "reversal_alignment", _alignment_cases, _alignment_reference, _ALIGNMENT_MISTAKES,
    outputs=("alignment",), shapes=("(n, n)",), normalise=float32_as_float64,
)


def check_reversal_alignment(fn) -> None:
    """Check ``fn(n)`` → a float ``(n, n)`` tensor (float64 or float32): row ``t`` is the one-hot
    ideal attention of output step ``t`` over the ``n`` source positions when the task is to
    reverse the source. Prints one line on success."""
    _ALIGNMENT.check(fn)


CHECKERS = (_GRU, _CONTEXT, _ALIGNMENT)
