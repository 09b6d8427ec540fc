"""Checkers for Chapter 2 (attention as a soft lookup).

- :func:`check_masked_softmax` — ``masked_softmax(scores, mask)``
- :func:`check_scaled_dot_product_attention` — ``scaled_dot_product_attention(query, key, value,
  mask=None)`` returning ``(output, weights)``
- :func:`check_additive_score` — ``additive_score(query, key, W_q, W_k, v)``

Each compares your function with the course's reference in :mod:`attention_course.attention` on a
few float64 and float32 cases; the small ``_mutant`` functions below are that reference with one
known mistake each, used only to recognise the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import torch

from attention_course import attention
from attention_course.exercises._framework import Case, Checker, Mistake, randn
from attention_course.masks import causal_mask, padding_mask

__all__ = ["check_masked_softmax", "check_scaled_dot_product_attention", "check_additive_score"]

_NEG_INF = float("-inf")


# --- masked_softmax ---------------------------------------------------------------------------

def _masked_softmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    some = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]],
                        dtype=torch.bool)
    one_row_empty = torch.rand(4, 7, generator=g) > 0.4
    one_row_empty[:, 0] = True
    one_row_empty[1] = False
    square = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]],
                          dtype=torch.bool)
    return [
        Case("unbatched, nothing masked: Lq=3, Lk=5",
             {"scores": randn(g, 3, 5), "mask": torch.ones(3, 5, dtype=torch.bool)}),
        Case("unbatched, some keys masked in every row: Lq=4, Lk=5",
             {"scores": randn(g, 4, 5), "mask": some}),
        Case("unbatched, square scores (Lq = Lk), query 2 has every key masked: Lq=4, Lk=4",
             {"scores": randn(g, 4, 4), "mask": square}),
        Case("batched, padding mask (B, 1, Lk) for lengths 5 and 2: B=2, Lq=3, Lk=5",
             {"scores": randn(g, 2, 3, 5), "mask": padding_mask(torch.tensor([5, 2]))[:, None]}),
        Case("unbatched, query 1 has every key masked: Lq=4, Lk=7",
             {"scores": randn(g, 4, 7), "mask": one_row_empty}),
        Case("batch and heads, causal mask (Lq, Lk) aligned bottom-right, so query 0 sees no key:"
             " B=2, H=3, Lq=3, Lk=2",
             {"scores": randn(g, 2, 3, 3, 2), "mask": causal_mask(3, 2)}),
        Case("batch and heads, padding mask (B, 1, 1, Lk), every sequence padded (lengths 4 and "
             "2, Lk=6): B=2, H=2, Lq=3, Lk=6",
             {"scores": randn(g, 2, 2, 3, 6),
              "mask": padding_mask(torch.tensor([4, 2]), 6)[:, None, None]}),
        Case("float32, batched, more queries than keys, causal and padding mask (B, Lq, Lk) for "
             "lengths 3 and 1, so query 0 sees no key: B=2, Lq=4, Lk=3",
             {"scores": randn(g, 2, 4, 3, dtype=torch.float32),
              "mask": causal_mask(4, 3)[None] & padding_mask(torch.tensor([3, 1]), 3)[:, None]}),
    ]


def _all_allowed(scores, mask):
    return torch.ones_like(scores, dtype=torch.bool) if mask is None else mask


def _softmax_dim_minus2_mutant(scores, mask=None):
    weights = torch.softmax(scores.masked_fill(~_all_allowed(scores, mask), _NEG_INF), dim=-2)
    return weights.nan_to_num(0.0)


def _softmax_dim_minus2_finite_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(~_all_allowed(scores, mask), -1e9), dim=-2)


def _mask_after_softmax_mutant(scores, mask=None):
    return torch.softmax(scores, dim=-1) * _all_allowed(scores, mask)


def _inverted_mask_mutant(scores, mask=None):
    return attention.masked_softmax(scores, ~_all_allowed(scores, mask))


def _inverted_mask_nan_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(_all_allowed(scores, mask), _NEG_INF), dim=-1)


def _inverted_mask_finite_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(_all_allowed(scores, mask), -1e9), dim=-1)


def _nan_rows_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(~_all_allowed(scores, mask), _NEG_INF), dim=-1)


def _uniform_rows_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(~_all_allowed(scores, mask), -1e9), dim=-1)


def _fixed_axis_softmax(nan_to_num: bool):
    def mutant(scores, mask=None):  # dim=1 is the key axis only for unbatched (Lq, Lk) scores
        mask = _all_allowed(scores, mask)
        if nan_to_num:
            return torch.softmax(scores.masked_fill(~mask, _NEG_INF), dim=1).nan_to_num(0.0)
        any_allowed = mask.any(dim=-1, keepdim=True)
        scores = scores.masked_fill(~mask, _NEG_INF).masked_fill(~any_allowed, 0.0)
        return torch.softmax(scores, dim=1).masked_fill(~any_allowed, 0.0)
    return mutant


def _any_wrong_axis_mutant(scores, mask=None):
    mask = _all_allowed(scores, mask)
    any_allowed = mask.any(dim=-2, keepdim=True)  # should be dim=-1
    scores = scores.masked_fill(~mask, _NEG_INF).masked_fill(~any_allowed, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~any_allowed, 0.0)


def _no_keepdim_mutant(scores, mask=None):
    mask = _all_allowed(scores, mask)
    any_allowed = mask.any(dim=-1)  # (..., Lq): lines up with the KEY axis when broadcast
    scores = scores.masked_fill(~mask, _NEG_INF).masked_fill(~any_allowed, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~any_allowed, 0.0)


def _mask_ignored_mutant(scores, mask=None):
    return torch.softmax(scores, dim=-1)


def _zero_fill_mutant(scores, mask=None):
    return torch.softmax(scores.masked_fill(~_all_allowed(scores, mask), 0.0), dim=-1)


_SOFTMAX_AXIS = Mistake(
    "softmax over the wrong axis",
    "Your weights sum to 1 down each column (over the queries, dim=-2) instead of along each row. "
    "Every query needs a probability distribution over the keys: normalise over the last "
    "dimension, `torch.softmax(scores, dim=-1)`.",
    (_softmax_dim_minus2_mutant, _softmax_dim_minus2_finite_mutant),
)
_NAN_ROWS = Mistake(
    "NaN in fully masked rows",
    "When every key of a query is masked, all its scores are -inf and softmax computes 0/0 = NaN; "
    "the NaN then spreads to everything computed from it (outputs, gradients). Detect those rows "
    "first (`any_allowed = mask.any(dim=-1, keepdim=True)`), give them finite scores before the "
    "softmax, and set their weights to 0 afterwards (`weights.masked_fill(~any_allowed, 0.0)`).",
    (_nan_rows_mutant,),
)
_UNIFORM_ROWS = Mistake(
    "fully masked row gives uniform weights 1/Lk instead of zeros",
    "Filling masked scores with a large finite negative (like -1e9) works for rows with at least "
    "one allowed key, but when every key is masked all scores are equal and the softmax spreads "
    "1/Lk over keys the query must not see. Such a row must get zero weights: set them with "
    "`weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)`.",
    (_uniform_rows_mutant,),
)

_ZERO_FILL = Mistake(
    "masked scores were set to 0 rather than -inf",
    "A score of 0 is not 'forbidden': exp(0) = 1, so masked keys still get weight (multiplying "
    "the scores by the mask does the same). Fill masked scores with float('-inf') so that exp "
    "gives exactly 0.",
    (_zero_fill_mutant,),
)
_FIXED_AXIS = Mistake(
    "softmax over a fixed axis (dim=1)",
    "dim=1 is the key axis only for unbatched (Lq, Lk) scores: with a batch, (B, Lq, Lk), it "
    "is the query axis, and with heads, (B, H, Lq, Lk), the head axis. Count from the end so "
    "every shape works: `torch.softmax(scores, dim=-1)`.",
    (_fixed_axis_softmax(False), _fixed_axis_softmax(True)),
)

_MASKED_SOFTMAX_MISTAKES = (
    _SOFTMAX_AXIS,
    Mistake(
        "mask applied after the softmax",
        "Zeroing the masked weights after the softmax leaves each row summing to less than 1: the "
        "masked keys still took their share of the normalisation. Mask the *scores* before the "
        "softmax: `scores.masked_fill(~mask, float('-inf'))`.",
        (_mask_after_softmax_mutant,),
    ),
    Mistake(
        "mask polarity is inverted",
        "Your weights are zero exactly where the mask is True. In this course True means 'may "
        "attend' (as in torch.nn.functional.scaled_dot_product_attention), so block the keys "
        "where the mask is False: `scores.masked_fill(~mask, float('-inf'))`.",
        (_inverted_mask_mutant, _inverted_mask_nan_mutant, _inverted_mask_finite_mutant),
    ),
    _NAN_ROWS,
    _UNIFORM_ROWS,
    Mistake(
        "the mask is ignored",
        "Your weights equal a plain softmax of the scores, so blocked keys still get weight. Use "
        "the mask: `scores.masked_fill(~mask, float('-inf'))` before the softmax.",
        (_mask_ignored_mutant,),
    ),
    _ZERO_FILL,
    _FIXED_AXIS,
    Mistake(
        "the fully masked rows were found along the wrong axis",
        "`mask.any(dim=-1, keepdim=True)` asks, for each query (row), whether it may attend to "
        "at least one key. Along dim=-2 the question is about each key (column) instead, so "
        "the wrong scores are refilled and the wrong weights zeroed.",
        (_any_wrong_axis_mutant,),
    ),
    Mistake(
        "keepdim=True is missing in mask.any",
        "`mask.any(dim=-1)` has shape (..., Lq); broadcast against the scores (..., Lq, Lk) it "
        "lines up with the KEY axis (or fails when Lq != Lk). Keep the reduced axis, "
        "`mask.any(dim=-1, keepdim=True)` → (..., Lq, 1), so that it marks whole rows.",
        (_no_keepdim_mutant,),
    ),
)


_MASKED_SOFTMAX = Checker(
    "masked_softmax", _masked_softmax_cases, attention.masked_softmax, _MASKED_SOFTMAX_MISTAKES,
    outputs=("weights",), shapes=("(..., Lq, Lk)",),
    error_hint="Hint: mask is boolean (True = may attend) and broadcasts against scores "
               "(..., Lq, Lk): `scores.masked_fill(~mask, float('-inf'))` works for every "
               "case here.",
)


def check_masked_softmax(fn) -> None:
    """Check ``fn(scores, mask)`` → weights ``(..., Lq, Lk)``: a softmax over the keys where
    ``mask`` (boolean, True = may attend, broadcastable to ``scores``) is True, and all-zero
    weights for a query whose keys are all masked (float64 and float32). Prints one line on
    success."""
    _MASKED_SOFTMAX.check(fn)


# --- scaled_dot_product_attention -------------------------------------------------------------

def _sdpa_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    return [
        Case("unbatched, no mask: Lq=2, Lk=5, E=3, Ev=4",
             {"query": randn(g, 2, 3), "key": randn(g, 5, 3), "value": randn(g, 5, 4)}),
        Case("batched, no mask: B=2, Lq=3, Lk=6, E=4, Ev=2",
             {"query": randn(g, 2, 3, 4), "key": randn(g, 2, 6, 4), "value": randn(g, 2, 6, 2)}),
        Case("unbatched, as many keys as features (Lk = E), no mask: Lq=3, Lk=4, E=4, Ev=2",
             {"query": randn(g, 3, 4), "key": randn(g, 4, 4), "value": randn(g, 4, 2)}),
        Case("batched, padding mask (B, 1, Lk) for lengths 5 and 2: B=2, Lq=3, Lk=5, E=4, Ev=6",
             {"query": randn(g, 2, 3, 4), "key": randn(g, 2, 5, 4), "value": randn(g, 2, 5, 6),
              "mask": padding_mask(torch.tensor([5, 2]))[:, None]}),
        Case("batch and heads, causal mask (Lq, Lk) aligned bottom-right, so query 0 sees no key:"
             " B=1, H=2, Lq=4, Lk=3, E=3, Ev=5",
             {"query": randn(g, 1, 2, 4, 3), "key": randn(g, 1, 2, 3, 3),
              "value": randn(g, 1, 2, 3, 5), "mask": causal_mask(4, 3)}),
        Case("batch and heads, padding mask (B, 1, 1, Lk), every sequence padded (lengths 3 and "
             "1, Lk=5): B=2, H=2, Lq=3, Lk=5, E=4, Ev=3",
             {"query": randn(g, 2, 2, 3, 4), "key": randn(g, 2, 2, 5, 4),
              "value": randn(g, 2, 2, 5, 3),
              "mask": padding_mask(torch.tensor([3, 1]), 5)[:, None, None]}),
        Case("float32, batched, more queries than keys, causal and padding mask (B, Lq, Lk) for "
             "lengths 3 and 2, so queries 0 and 1 see no key: B=2, Lq=5, Lk=3, E=6, Ev=2",
             {"query": randn(g, 2, 5, 6, dtype=torch.float32),
              "key": randn(g, 2, 3, 6, dtype=torch.float32),
              "value": randn(g, 2, 3, 2, dtype=torch.float32),
              "mask": causal_mask(5, 3)[None] & padding_mask(torch.tensor([3, 2]), 3)[:, None]}),
        Case("float32, unbatched, more queries than keys, no mask: Lq=4, Lk=2, E=3, Ev=5",
             {"query": randn(g, 4, 3, dtype=torch.float32),
              "key": randn(g, 2, 3, dtype=torch.float32),
              "value": randn(g, 2, 5, dtype=torch.float32)}),
    ]


def _attend(scores, value, mask, softmax=attention.masked_softmax):
    weights = softmax(scores, mask)  # (..., Lq, Lk)
    return weights @ value, weights


def _qk(query, key):
    return query @ key.transpose(-2, -1)  # (..., Lq, Lk)


def _unscaled_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key), value, mask)


def _divided_by_dk_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) / query.shape[-1], value, mask)


def _sqrt_lk_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) / key.shape[-2] ** 0.5, value, mask)


def _sqrt_ev_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) / value.shape[-1] ** 0.5, value, mask)


def _fixed_axis_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) / query.shape[1] ** 0.5, value, mask)


def _scaled(query, key):
    return _qk(query, key) / query.shape[-1] ** 0.5


def _sdpa_wrong_axis_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, mask, _softmax_dim_minus2_mutant)


def _sdpa_wrong_axis_finite_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, mask, _softmax_dim_minus2_finite_mutant)


def _key_not_transposed_mutant(query, key, value, mask=None):
    return _attend(query @ key / query.shape[-1] ** 0.5, value, mask)


def _key_dot_t_mutant(query, key, value, mask=None):
    return _attend(query @ key.T / query.shape[-1] ** 0.5, value, mask)


def _weights_at_key_mutant(query, key, value, mask=None):
    weights = attention.masked_softmax(_scaled(query, key), mask)
    return weights @ key, weights


def _sdpa_mask_ignored_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, None)


def _sdpa_inverted_mask_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, None if mask is None else ~mask)


def _sdpa_nan_rows_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, mask, _nan_rows_mutant)


def _sdpa_uniform_rows_mutant(query, key, value, mask=None):
    return _attend(_scaled(query, key), value, mask, _uniform_rows_mutant)


def _scaled_after_softmax_mutant(query, key, value, mask=None):
    weights = attention.masked_softmax(_qk(query, key), mask) / query.shape[-1] ** 0.5
    return weights @ value, weights


def _times_sqrt_dk_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) * query.shape[-1] ** 0.5, value, mask)


def _sqrt_lq_mutant(query, key, value, mask=None):
    return _attend(_qk(query, key) / query.shape[-2] ** 0.5, value, mask)


def _sdpa_with(softmax):
    def mutant(query, key, value, mask=None):
        return _attend(_scaled(query, key), value, mask, softmax)
    return mutant


def _swapped_outputs_mutant(query, key, value, mask=None):
    output, weights = attention.scaled_dot_product_attention(query, key, value, mask)
    return weights, output


_DK = "d_k is the query/key feature size E = query.shape[-1]"

_SDPA_MISTAKES = (
    Mistake(
        "missing the 1/sqrt(d_k) scaling",
        f"Your weights match softmax(Q K^T) without scaling. Dot products of E-dimensional "
        f"vectors grow like sqrt(E), which pushes the softmax into saturation; divide the scores "
        f"by sqrt(d_k), where {_DK}: `scores = query @ key.transpose(-2, -1) / "
        f"math.sqrt(query.shape[-1])`.",
        (_unscaled_mutant,),
    ),
    Mistake(
        "divided by d_k instead of sqrt(d_k)",
        f"The scores should be divided by the *square root* of d_k ({_DK}): dividing by d_k "
        f"itself over-flattens the weights.",
        (_divided_by_dk_mutant,),
    ),
    Mistake(
        "scaled by the number of keys Lk",
        f"You divided by sqrt(key.shape[-2]), the number of keys. The scale comes from the "
        f"feature size the dot product sums over: {_DK}.",
        (_sqrt_lk_mutant,),
    ),
    Mistake(
        "scaled by the value size Ev",
        f"You divided by sqrt(value.shape[-1]). The values never enter the scores; {_DK}.",
        (_sqrt_ev_mutant,),
    ),
    Mistake(
        "d_k read from a fixed axis (query.shape[1])",
        f"query.shape[1] is E only for unbatched input; with a batch it is Lq, with heads it is H. "
        f"Index from the end so every leading dimension works: {_DK}.",
        (_fixed_axis_mutant,),
    ),
    Mistake(
        "softmax over the wrong axis",
        "Your weights sum to 1 over the queries (dim=-2). Each query's weights must be a "
        "distribution over the keys: softmax over the last dimension (dim=-1).",
        (_sdpa_wrong_axis_mutant, _sdpa_wrong_axis_finite_mutant),
    ),
    Mistake(
        "key not transposed",
        "The scores need query (..., Lq, E) times key^T (..., E, Lk); `query @ key` multiplies "
        "(..., Lq, E) by (..., Lk, E), which fails unless Lk == E and is wrong even then. Use "
        "`query @ key.transpose(-2, -1)`.",
        (_key_not_transposed_mutant,),
    ),
    Mistake(
        "key.T reverses every dimension",
        "On a batched tensor `key.T` reverses all dimensions ((B, Lk, E) → (E, Lk, B)), not just "
        "the last two. Use `key.transpose(-2, -1)` (or `key.mT`).",
        (_key_dot_t_mutant,),
    ),
    Mistake(
        "output computed as weights @ key",
        "The weights are right, but the output must mix the *values*: `output = weights @ value` "
        "(..., Lq, Ev), not `weights @ key`.",
        (_weights_at_key_mutant,),
    ),
    Mistake(
        "the mask is ignored",
        "Blocked keys (mask False) still get weight. Mask the scores before the softmax, e.g. "
        "with your `masked_softmax(scores, mask)` (mask=None means nothing is masked).",
        (_sdpa_mask_ignored_mutant,),
    ),
    Mistake(
        "mask polarity is inverted",
        "Your weights are zero exactly where the mask is True. In this course True means 'may "
        "attend': block the keys where the mask is False.",
        (_sdpa_inverted_mask_mutant,),
    ),
    Mistake(
        "scaled after the softmax",
        f"You divided the weights by sqrt(d_k), so they no longer sum to 1. The scaling belongs "
        f"to the scores, before the softmax: `softmax(query @ key.transpose(-2, -1) / "
        f"math.sqrt(d_k))`, where {_DK}.",
        (_scaled_after_softmax_mutant,),
    ),
    Mistake(
        "multiplied by sqrt(d_k) instead of dividing",
        f"The scores are divided by sqrt(d_k) ({_DK}), to keep their spread near 1; multiplying "
        f"makes the softmax even sharper.",
        (_times_sqrt_dk_mutant,),
    ),
    Mistake(
        "scaled by the number of queries Lq",
        f"You divided by sqrt(query.shape[-2]), the number of queries. The scale comes from the "
        f"feature size the dot product sums over: {_DK}, the LAST axis.",
        (_sqrt_lq_mutant,),
    ),
    Mistake(
        "mask applied after the softmax",
        "Zeroing the masked weights after the softmax leaves each row summing to less than 1. "
        "Mask the *scores* before the softmax (your masked_softmax does it).",
        (_sdpa_with(_mask_after_softmax_mutant),),
    ),
    Mistake(_ZERO_FILL.name, _ZERO_FILL.message, (_sdpa_with(_zero_fill_mutant),)),
    Mistake(_FIXED_AXIS.name, _FIXED_AXIS.message,
            tuple(_sdpa_with(f) for f in _FIXED_AXIS.fns)),
    Mistake(_NAN_ROWS.name, _NAN_ROWS.message, (_sdpa_nan_rows_mutant,)),
    Mistake(_UNIFORM_ROWS.name, _UNIFORM_ROWS.message, (_sdpa_uniform_rows_mutant,)),
    Mistake(
        "outputs returned in the wrong order",
        "Return the pair as `(output, weights)`: output (..., Lq, Ev) first, then weights "
        "(..., Lq, Lk).",
        (_swapped_outputs_mutant,),
    ),
)


_SDPA = Checker(
    "scaled_dot_product_attention", _sdpa_cases, attention.scaled_dot_product_attention,
    _SDPA_MISTAKES, outputs=("output", "weights"), shapes=("(..., Lq, Ev)", "(..., Lq, Lk)"),
    error_hint="Hint: query (..., Lq, E), key (..., Lk, E), value (..., Lk, Ev); the scores "
               "are query @ key.transpose(-2, -1) → (..., Lq, Lk), and `mask` may be None.",
)


def check_scaled_dot_product_attention(fn) -> None:
    """Check ``fn(query, key, value, mask=None)`` → ``(output (..., Lq, Ev), weights (..., Lq,
    Lk))`` with weights ``softmax(Q K^T / sqrt(E))`` over allowed keys (mask True = may attend;
    a query with no allowed key gets zero weights), in float64 and float32, with Lq < Lk and
    Lq > Lk. Prints one line on success."""
    _SDPA.check(fn)


# --- additive_score ---------------------------------------------------------------------------

def _additive_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)

    def case(description, batch, Lq, Lk, Dq, Dk, A, dtype=torch.float64):
        return Case(description, {
            "query": randn(g, *batch, Lq, Dq, dtype=dtype),
            "key": randn(g, *batch, Lk, Dk, dtype=dtype), "W_q": randn(g, A, Dq, dtype=dtype),
            "W_k": randn(g, A, Dk, dtype=dtype), "v": randn(g, A, dtype=dtype),
        })

    return [
        case("unbatched: Lq=2, Lk=3, Dq=4, Dk=5, A=6", (), 2, 3, 4, 5, 6),
        case("batched: B=2, Lq=3, Lk=4, Dq=5, Dk=2, A=7", (2,), 3, 4, 5, 2, 7),
        case("batched, queries and keys of the same size (Dq = Dk): B=2, Lq=4, Lk=2, Dq=3, "
             "Dk=3, A=5", (2,), 4, 2, 3, 3, 5),
        case("batch and heads, as many queries as keys (Lq = Lk): B=2, H=2, Lq=3, Lk=3, Dq=4, "
             "Dk=2, A=5", (2, 2), 3, 3, 4, 2, 5),
        case("float32, batched, more queries than keys: B=2, Lq=5, Lk=3, Dq=2, Dk=4, A=3",
             (2,), 5, 3, 2, 4, 3, torch.float32),
    ]


def _pairs(q, k):
    return q.unsqueeze(-2) + k.unsqueeze(-3)  # (..., Lq, 1, A) + (..., 1, Lk, A)


def _tanh_outside_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(query @ W_q.T, key @ W_k.T) @ v)


def _no_tanh_mutant(query, key, W_q, W_k, v):
    return _pairs(query @ W_q.T, key @ W_k.T) @ v


def _swapped_weights_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(query @ W_k.T, key @ W_q.T)) @ v


def _untransposed_weights_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(query @ W_q, key @ W_k)) @ v


def _column_vector_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(W_q @ query, W_k @ key)) @ v


def _no_v_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(query @ W_q.T, key @ W_k.T))


def _sum_instead_of_v_mutant(query, key, W_q, W_k, v):
    return torch.tanh(_pairs(query @ W_q.T, key @ W_k.T)).sum(-1)


def _position_wise_mutant(query, key, W_q, W_k, v):
    return torch.tanh(query @ W_q.T + key @ W_k.T) @ v


def _nonlinearity(f):
    def mutant(query, key, W_q, W_k, v):
        return f(_pairs(query @ W_q.T, key @ W_k.T)) @ v
    return mutant


def _one_matrix(use_q: bool):
    def mutant(query, key, W_q, W_k, v):
        W = W_q if use_q else W_k
        return torch.tanh(_pairs(query @ W.T, key @ W.T)) @ v
    return mutant


def _dot_product_scaled_mutant(query, key, W_q, W_k, v):
    return attention.additive_score(query, key, W_q, W_k, v) / v.shape[0] ** 0.5


def _separate_tanh_mutant(query, key, W_q, W_k, v):
    return _pairs(torch.tanh(query @ W_q.T), torch.tanh(key @ W_k.T)) @ v


def _transposed_scores_mutant(query, key, W_q, W_k, v):
    return attention.additive_score(query, key, W_q, W_k, v).transpose(-2, -1)


_PAIRING = ("pair every query with every key by broadcasting: "
            "`q.unsqueeze(-2) + k.unsqueeze(-3)` → (..., Lq, Lk, A)")

_ADDITIVE_MISTAKES = (
    Mistake(
        "tanh applied after the product with v",
        "You computed tanh(v^T (W_q q + W_k k)). The non-linearity belongs inside, on the hidden "
        "vector: `torch.tanh(q_proj + k_proj) @ v`. Without it inside, the score is just a "
        "linear function of q plus one of k (squashed), and cannot model their interaction.",
        (_tanh_outside_mutant,),
    ),
    Mistake(
        "tanh is missing",
        "Your scores are v^T (W_q q + W_k k): without the non-linearity the score splits into a "
        "query part plus a key part, so it cannot express how well a query and a key match. "
        "Apply `torch.tanh` to the hidden vector before the product with v.",
        (_no_tanh_mutant,),
    ),
    Mistake(
        "W_q and W_k are swapped",
        "Check which matrix multiplies the query: W_q has shape (A, Dq) and projects the query "
        "(`query @ W_q.T` → (..., Lq, A)); W_k has shape (A, Dk) and projects the key "
        "(`key @ W_k.T` → (..., Lk, A)).",
        (_swapped_weights_mutant,),
    ),
    Mistake(
        "used W_q instead of W_q.T",
        "The weights are stored in nn.Linear layout (out, in): W_q is (A, Dq), W_k is (A, Dk). "
        "A row-stacked query (..., Lq, Dq) is projected with `query @ W_q.T` → (..., Lq, A), "
        "and likewise `key @ W_k.T`.",
        (_untransposed_weights_mutant,),
    ),
    Mistake(
        "wrote W_q @ query as in the column-vector formula",
        "The formula's W_q q is for a single column vector q. Here queries are stacked as rows "
        "(..., Lq, Dq), so the same product is `query @ W_q.T` → (..., Lq, A) (likewise for keys).",
        (_column_vector_mutant,),
    ),
    Mistake(
        "v is never applied",
        "Your result has shape (..., Lq, Lk, A): the hidden vectors tanh(W_q q + W_k k) for every "
        "pair. Reduce each to one number with v: `hidden @ v` → (..., Lq, Lk).",
        (_no_v_mutant,),
    ),
    Mistake(
        "summed the hidden units instead of weighting them with v",
        "`.sum(-1)` is v^T h with v = all ones. Use the learned vector: `hidden @ v` → "
        "(..., Lq, Lk).",
        (_sum_instead_of_v_mutant,),
    ),
    Mistake(
        "queries and keys added position by position",
        f"`q_proj + k_proj` adds query i to key i (and only works when Lq == Lk), giving one score "
        f"per position instead of one per (query, key) pair. Expected shape (..., Lq, Lk): "
        f"{_PAIRING}.",
        (_position_wise_mutant,),
    ),
    Mistake(
        "a different non-linearity instead of tanh",
        "The additive score uses tanh: v^T tanh(W_q q + W_k k). relu or the sigmoid give other "
        "(one-sided) hidden values, so other scores: use `torch.tanh`.",
        (_nonlinearity(torch.relu), _nonlinearity(torch.sigmoid)),
    ),
    Mistake(
        "the same matrix projects queries and keys",
        "Queries and keys have their own projections: `query @ W_q.T` and `key @ W_k.T`. (With "
        "Dq != Dk, using one matrix for both cannot even multiply.)",
        (_one_matrix(True), _one_matrix(False)),
    ),
    Mistake(
        "scaled by 1/sqrt(A) like a dot product",
        "The 1/sqrt(d_k) factor belongs to dot-product scores, whose spread grows with the "
        "vector size. The additive score has no scale: tanh already bounds the hidden units, "
        "and v learns the size of the scores. Return `hidden @ v` as it is.",
        (_dot_product_scaled_mutant,),
    ),
    Mistake(
        "tanh applied to each projection separately",
        "tanh(W_q q) + tanh(W_k k) is a query part plus a key part, so every query ranks the "
        "keys in the same order. Add the projections FIRST, then apply tanh to the sum: "
        "`torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))`.",
        (_separate_tanh_mutant,),
    ),
    Mistake(
        "transposed scores (..., Lk, Lq)",
        "Your values are right but laid out as (..., Lk, Lq). Rows are queries, columns are keys: "
        "broadcast as `q.unsqueeze(-2) + k.unsqueeze(-3)` to get (..., Lq, Lk).",
        (_transposed_scores_mutant,),
    ),
)


_ADDITIVE = Checker(
    "additive_score", _additive_cases, attention.additive_score, _ADDITIVE_MISTAKES,
    outputs=("scores",), shapes=("(..., Lq, Lk)",),
    error_hint="Hint: query (..., Lq, Dq), key (..., Lk, Dk), W_q (A, Dq), W_k (A, Dk), "
               "v (A,). Project with `query @ W_q.T` → (..., Lq, A) and `key @ W_k.T` → "
               f"(..., Lk, A), then {_PAIRING}.",
)


def check_additive_score(fn) -> None:
    """Check ``fn(query, key, W_q, W_k, v)`` → scores ``(..., Lq, Lk)`` with
    ``f(q, k) = v^T tanh(W_q q + W_k k)``; ``W_q`` ``(A, Dq)`` and ``W_k`` ``(A, Dk)`` in
    ``nn.Linear`` layout, ``v`` ``(A,)`` (float64 and float32). Prints one line on success."""
    _ADDITIVE.check(fn)


CHECKERS = (_MASKED_SOFTMAX, _SDPA, _ADDITIVE)
