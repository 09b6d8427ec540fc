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
from attention_course.exercises._framework import Case, Mistake, randn, run_checks
from attention_course.masks import padding_mask

__all__ = ["check_gru_step", "check_bahdanau_context", "check_reversal_alignment"]


# --- one GRU step -----------------------------------------------------------------------------

def _gru_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for B, D, H in ((1, 3, 2), (4, 5, 3), (2, 2, 6)):  # D = input size I
        cases.append(Case(
            f"B={B}, input size I={D}, hidden size H={H}",
            {"x": randn(g, B, D), "h": randn(g, B, H), "W_ih": randn(g, 3 * H, D),
             "W_hh": randn(g, 3 * H, H), "b_ih": randn(g, 3 * H), "b_hh": randn(g, 3 * H)},
        ))
    return cases


def _gates(x, h, W_ih, W_hh, b_ih, b_hh):
    gi = (x @ W_ih.T + b_ih).chunk(3, dim=-1)  # input parts of r, z, n: (B, H) each
    gh = (h @ W_hh.T + b_hh).chunk(3, dim=-1)  # hidden parts
    return gi, gh


def _gru_from(gi, gh, h, order=(0, 1, 2), z_on_new=False):
    r_i, z_i, n_i = order
    r = torch.sigmoid(gi[r_i] + gh[r_i])
    z = torch.sigmoid(gi[z_i] + gh[z_i])
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
)


def check_gru_step(fn) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh)`` → ``h'`` ``(B, H)`` against ``torch.gru_cell``
    (``nn.GRUCell``'s layout: gate order r, z, n; weights ``(3H, I)`` and ``(3H, H)``)."""
    run_checks("gru_step", fn, _gru_cases(), torch.gru_cell, _GRU_MISTAKES,
               outputs=("h_new",), shapes=("(B, H)",),
               error_hint="Shapes: x (B, I) @ W_ih.T (I, 3H) -> (B, 3H); split it into three "
                          "(B, H) chunks with .chunk(3, dim=-1).")


# --- Bahdanau context vector ------------------------------------------------------------------

def _context_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    cases = []
    for B, S, H, A, lengths in ((1, 4, 3, 5, [4]), (3, 6, 4, 2, [6, 3, 1]), (2, 5, 2, 7, [2, 5])):
        cases.append(Case(
            f"B={B}, S={S}, H={H}, A={A}, source lengths {lengths}",
            {"s_prev": randn(g, B, H), "memory": randn(g, B, S, H),
             "memory_mask": padding_mask(torch.tensor(lengths), S),
             "W_q": randn(g, A, H), "W_k": randn(g, A, H), "v": randn(g, A)},
        ))
    return cases


def _scores(s_prev, memory, W_q, W_k, v):
    return attention.additive_score(s_prev[:, None, :], memory, W_q, W_k, v)[:, 0]  # (B, S)


def _context_reference(s_prev, memory, memory_mask, W_q, W_k, v):
    weights = attention.masked_softmax(_scores(s_prev, memory, W_q, W_k, v), memory_mask)
    return (weights[:, None, :] @ memory)[:, 0], weights  # (B, H), (B, S)


def _context_from(weights, memory):
    return (weights[:, None, :] @ memory)[:, 0], weights


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
)


def check_bahdanau_context(fn) -> None:
    """Check ``fn(s_prev, memory, memory_mask, W_q, W_k, v)`` → ``(context (B, H), weights
    (B, S))``: additive scores, a masked softmax over source positions, a weighted sum."""
    run_checks("bahdanau_context", fn, _context_cases(), _context_reference, _CONTEXT_MISTAKES,
               outputs=("context", "weights"), shapes=("(B, H)", "(B, S)"),
               error_hint="Shapes: s_prev (B, H) @ W_q.T -> (B, A); memory (B, S, H) @ W_k.T -> "
                          "(B, S, A); add them with s_prev's projection unsqueezed to (B, 1, A).")


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
)


def _alignment_cases() -> list[Case]:
    return [Case(f"source length n={n}", {"n": n}) for n in (1, 2, 5, 8)]


def check_reversal_alignment(fn) -> None:
    """Check ``fn(n)`` → a float ``(n, n)`` tensor: row ``t`` is the one-hot ideal attention of
    output step ``t`` over the ``n`` source positions when the task is to reverse the source."""

    def as_float64(n):  # float32 (torch's default) is as good an answer as float64
        result = fn(n)
        floating = isinstance(result, torch.Tensor) and result.is_floating_point()
        return result.double() if floating else result

    cases = _alignment_cases()
    # Case n=1 cannot tell most mistakes apart; diagnose on the informative cases first.
    run_checks("reversal_alignment", as_float64, cases[1:] + cases[:1], _alignment_reference,
               _ALIGNMENT_MISTAKES, outputs=("alignment",), shapes=("(n, n)",))
