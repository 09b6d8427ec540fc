"""Checkers for Chapter 6 (attention patterns).

- :func:`check_mean_attention_distance` — ``mean_attention_distance(weights)``: how far each head
  looks, ``(B, H, T, T)`` → ``(H,)``
- :func:`check_previous_token_score` — ``previous_token_score(weights, k)``: the mean weight each
  head puts on the token ``k`` positions back, ``(B, H, T, T)`` → ``(H,)``
- :func:`check_weight_on_partner` — ``weight_on_partner(weights, partner)``: the mean weight each
  head puts on each query's partner (``-1``: none), ``(B, H, T, T)`` → ``(H,)``

References: :func:`attention_course.analysis.mean_attention_distance`,
:func:`~attention_course.analysis.previous_token_score` and
:func:`~attention_course.analysis.weight_on_partner`. The ``_mutant`` functions are a
reference with one known mistake each, used only to recognise the mistake and name it. Each
checker returns None.
"""

from __future__ import annotations

import torch

from attention_course import analysis
from attention_course.exercises._framework import Case, Checker, Mistake, randn

__all__ = ["check_mean_attention_distance", "check_previous_token_score",
           "check_weight_on_partner"]


def _weights(g: torch.Generator, B: int, H: int, T: int, *, causal: bool,
             dtype: torch.dtype) -> torch.Tensor:
    """Random attention weights ``(B, H, T, T)``: rows summing to 1 (causal: lower triangle)."""
    scores = 2.0 * randn(g, B, H, T, T)  # float64
    if causal:
        keep = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    return scores.softmax(dim=-1).to(dtype)


def _describe(B, H, T, causal, dtype) -> str:
    note = "float32, " if dtype == torch.float32 else ""
    kind = "causal" if causal else "bidirectional"
    return f"{note}{kind} weights, B={B}, H={H}, T={T}"


# --- mean_attention_distance ------------------------------------------------------------------

def _distance_cases() -> list[Case]:
    g = torch.Generator().manual_seed(6)
    cases = []
    for B, H, T, causal, dtype in ((2, 3, 5, True, torch.float64),
                                   (3, 2, 6, False, torch.float64),
                                   (1, 4, 4, False, torch.float64),
                                   (2, 2, 7, True, torch.float64),
                                   (2, 3, 5, False, torch.float32)):
        cases.append(Case(_describe(B, H, T, causal, dtype),
                          {"weights": _weights(g, B, H, T, causal=causal, dtype=dtype)}))
    return cases


def _positions(weights):
    T = weights.shape[-1]
    return torch.arange(T, dtype=weights.dtype)


def _distance_signed_mutant(weights):
    t = _positions(weights)
    distance = t[:, None] - t[None, :]  # i - j, no absolute value
    return (weights * distance).sum(dim=-1).mean(dim=(0, 2))


def _distance_signed_other_way_mutant(weights):
    t = _positions(weights)
    distance = t[None, :] - t[:, None]  # j - i
    return (weights * distance).sum(dim=-1).mean(dim=(0, 2))


def _distance_mean_over_keys_mutant(weights):
    t = _positions(weights)
    distance = (t[:, None] - t[None, :]).abs()
    return (weights * distance).mean(dim=-1).mean(dim=(0, 2))


def _distance_key_position_mutant(weights):
    t = _positions(weights)
    return (weights * t).sum(dim=-1).mean(dim=(0, 2))  # where the key is, not how far


def _distance_argmax_mutant(weights):
    t = _positions(weights)
    top = weights.argmax(dim=-1).to(weights.dtype)  # (B, H, T)
    return (t - top).abs().mean(dim=(0, 2))


def _distance_over_heads_mutant(weights):
    t = _positions(weights)
    distance = (t[:, None] - t[None, :]).abs()
    return (weights * distance).sum(dim=-1).mean(dim=(1, 2))  # (B,)


_DISTANCE_MISTAKES = (
    Mistake(
        "the distance has a sign: the absolute value |i - j| is missing",
        "A key before the query and a key after it are both some distance away: with `i - j` "
        "(or `j - i`) they cancel out in the sum. Take `(i - j).abs()`; for causal weights the "
        "sign happens not to matter, which is why bidirectional cases catch it.",
        (_distance_signed_mutant, _distance_signed_other_way_mutant),
    ),
    Mistake(
        "averaged the weighted distances over the keys instead of summing them",
        "For one query the expected distance is `sum_j alpha_ij |i - j|`: the weights already "
        "sum to 1, so `.mean(dim=-1)` divides by T once too often. Sum over the keys "
        "(dim=-1), then average over the batch and the queries.",
        (_distance_mean_over_keys_mutant,),
    ),
    Mistake(
        "weighted the key's position j, not its distance |i - j| from the query",
        "`sum_j alpha_ij j` is where the head looks, not how far: a previous-token head at "
        "query 9 gets 8, not 1. Subtract the query's position: weight `(i - j).abs()` with "
        "i the query (rows, dim=-2) and j the key (columns, dim=-1).",
        (_distance_key_position_mutant,),
    ),
    Mistake(
        "used the distance to the largest weight (argmax) instead of the weighted mean",
        "The mean attention distance counts every key by its weight: `sum_j alpha_ij |i - j|`. "
        "The argmax keeps only the strongest key and ignores how the rest of the weight is "
        "spread.",
        (_distance_argmax_mutant,),
    ),
    Mistake(
        "averaged over the heads instead of over the batch",
        "weights is (B, H, T, T): the result needs one number per head, (H,). Average the "
        "per-query distances (B, H, T) over dim 0 (the batch) and dim 2 (the queries), not "
        "over dim 1.",
        (_distance_over_heads_mutant,),
    ),
)


_DISTANCE = Checker(
    "mean_attention_distance", _distance_cases, analysis.mean_attention_distance,
    _DISTANCE_MISTAKES, outputs=("distance",), shapes=("(H,)",),
    error_hint="Hint: build the (T, T) matrix of |i - j| with torch.arange, multiply it with "
               "the weights, sum over the keys, then average over the batch and the queries.",
)


def check_mean_attention_distance(fn) -> None:
    """Check ``fn(weights)`` → ``(H,)``: the mean over the batch and the queries ``i`` of
    ``sum_j weights[b, h, i, j] * |i - j|``, for ``weights`` ``(B, H, T, T)``. Prints one line
    on success."""
    _DISTANCE.check(fn)


# --- previous_token_score ---------------------------------------------------------------------

def _previous_cases() -> list[Case]:
    g = torch.Generator().manual_seed(7)
    cases = []
    for B, H, T, k, causal, dtype in ((2, 3, 6, 1, True, torch.float64),
                                      (2, 2, 7, 2, False, torch.float64),
                                      (1, 4, 5, 3, True, torch.float64),
                                      (3, 2, 6, 2, False, torch.float64),
                                      (2, 3, 8, 1, False, torch.float64),
                                      (2, 2, 6, 2, True, torch.float32)):
        cases.append(Case(f"{_describe(B, H, T, causal, dtype)}, k={k}",
                          {"weights": _weights(g, B, H, T, causal=causal, dtype=dtype),
                           "k": k}))
    return cases


def _on_offset(weights, offset):
    """``(B, H, T')``: weight of query i on key i + offset, for the queries that have one."""
    return weights.diagonal(offset=offset, dim1=-2, dim2=-1)


def _previous_all_queries_mutant(weights, k):
    T = weights.shape[-1]
    return _on_offset(weights, -k).sum(dim=-1).mean(dim=0) / T  # counts queries 0 … k-1 as 0


def _previous_forward_mutant(weights, k):
    return _on_offset(weights, k).mean(dim=(0, 2))  # query i on key i + k


def _previous_off_by_one_mutant(weights, k):
    return _on_offset(weights, -(k - 1)).mean(dim=(0, 2))  # k - 1 back (k = 1: itself)


def _previous_k_is_one_mutant(weights, k):
    return _on_offset(weights, -1).mean(dim=(0, 2))


def _previous_summed_mutant(weights, k):
    return _on_offset(weights, -k).sum(dim=-1).mean(dim=0)  # summed over the queries


_PREVIOUS_MISTAKES = (
    Mistake(
        "counted the first k queries, which have no token k positions back",
        "Queries 0 … k-1 have no key k positions back; counting them as 0 pulls the score "
        "down (a perfect previous-token head would score (T-k)/T, not 1). Average only over "
        "the T - k queries i >= k, e.g. the mean of "
        "`weights.diagonal(offset=-k, dim1=-2, dim2=-1)`.",
        (_previous_all_queries_mutant,),
    ),
    Mistake(
        "looked k positions forward (or read the weights as key x query)",
        "Row i of weights is query i and column j is key j, so the token k back is "
        "`weights[..., i, i - k]`: below the diagonal, `diagonal(offset=-k)`. Your score reads "
        "the entries above it (offset=+k): query i on key i + k, which a causal model never "
        "attends to.",
        (_previous_forward_mutant,),
    ),
    Mistake(
        "off by one: used the key k - 1 positions back",
        "k = 1 means the previous token, key i - 1, not the query itself. Take the entries "
        "`weights[..., i, i - k]` (`diagonal(offset=-k)`), not `i - k + 1`.",
        (_previous_off_by_one_mutant,),
    ),
    Mistake(
        "ignored k: the score is always the previous token's (k = 1)",
        "The function must work for any k: use the argument `k` for the offset "
        "(`diagonal(offset=-k)`), not a hard-coded 1.",
        (_previous_k_is_one_mutant,),
    ),
    Mistake(
        "summed over the queries instead of averaging",
        "The score is a mean weight, between 0 and 1: average the T - k entries of each head "
        "over the batch and the queries (`.mean(dim=(0, 2))`), do not sum them.",
        (_previous_summed_mutant,),
    ),
)


_PREVIOUS = Checker(
    "previous_token_score", _previous_cases, analysis.previous_token_score,
    _PREVIOUS_MISTAKES, outputs=("score",), shapes=("(H,)",),
    error_hint="Hint: `weights.diagonal(offset=-k, dim1=-2, dim2=-1)` is (B, H, T - k): the "
               "weight of each query i >= k on key i - k. Average it over dims 0 and 2.",
)


def check_previous_token_score(fn) -> None:
    """Check ``fn(weights, k)`` → ``(H,)``: the mean over the batch and the queries ``i >= k``
    of ``weights[b, h, i, i - k]``, for ``weights`` ``(B, H, T, T)``. Prints one line on
    success."""
    _PREVIOUS.check(fn)


# --- weight_on_partner ------------------------------------------------------------------------

def _partner_cases() -> list[Case]:
    g = torch.Generator().manual_seed(8)
    cases = []
    for B, H, T, causal, dtype in ((2, 3, 6, True, torch.float64),
                                   (3, 2, 5, False, torch.float64),
                                   (2, 2, 7, True, torch.float64),
                                   (2, 3, 6, False, torch.float32)):
        weights = _weights(g, B, H, T, causal=causal, dtype=dtype)
        t = torch.arange(T)
        limit = t + 1 if causal else torch.full((T,), T)  # keys a query may have as partner
        u = torch.rand(B, T, generator=g)
        partner = (u * limit).long()  # (B, T): a key each query may see
        none = torch.rand(B, T, generator=g) < 0.35
        none[:, 0] = True  # BOS has no partner
        none[0, :T // 2] = True  # rows with different numbers of partners
        partner = torch.where(none, -1, partner)
        partner[:, -1] = (T - 2) if causal else 1  # every row has one
        cases.append(Case(f"{_describe(B, H, T, causal, dtype)}, "
                          f"{int((partner >= 0).sum())} of {B * T} queries with a partner",
                          {"weights": weights, "partner": partner}))
    return cases


def _partner_pick(weights, partner):
    """``(B, H, T)``: the weight of each query on its partner (-1 clamped to key 0)."""
    index = partner.clamp_min(0)[:, None, :, None].expand(*weights.shape[:-1], 1)
    return weights.gather(-1, index).squeeze(-1)


def _partner_zero_mutant(weights, partner):
    on = _partner_pick(weights, partner) * (partner >= 0)[:, None, :]
    return on.mean(dim=(0, 2))  # queries without a partner count as 0


def _partner_first_key_mutant(weights, partner):
    return _partner_pick(weights, partner).mean(dim=(0, 2))  # -1 read as key 0


def _partner_last_key_mutant(weights, partner):
    T = weights.shape[-1]
    return _partner_pick(weights, partner % T).mean(dim=(0, 2))  # -1 read as key T-1


def _partner_transposed_mutant(weights, partner):
    return _partner_reference_like(weights.transpose(-1, -2), partner)


def _partner_reference_like(weights, partner):
    counted = (partner >= 0)[:, None, :].to(weights.dtype)  # (B, 1, T)
    on = _partner_pick(weights, partner)
    return (on * counted).sum(dim=(0, 2)) / counted.sum()


def _partner_per_sequence_mutant(weights, partner):
    counted = (partner >= 0)[:, None, :].to(weights.dtype)  # (B, 1, T)
    on = _partner_pick(weights, partner)
    per_row = (on * counted).sum(dim=2) / counted.sum(dim=2)  # (B, H)
    return per_row.mean(dim=0)


def _partner_summed_mutant(weights, partner):
    counted = (partner >= 0)[:, None, :].to(weights.dtype)
    return (_partner_pick(weights, partner) * counted).sum(dim=(0, 2))


_PARTNER_MISTAKES = (
    Mistake(
        "counted the queries without a partner (partner = -1)",
        "A query whose partner is -1 has no partner: leave it out of the mean. Counting it as "
        "0, or using -1 as an index (Python reads it as the last key; a clamp reads the "
        "first), changes the score. Keep a mask `partner >= 0` and divide by the number of "
        "queries it keeps.",
        (_partner_zero_mutant, _partner_first_key_mutant, _partner_last_key_mutant),
    ),
    Mistake(
        "read the partner as the query, not the key",
        "Row i of weights is query i, column j key j: the weight query i puts on its partner "
        "is `weights[b, h, i, partner[b, i]]`, picked along the LAST axis (e.g. `gather` "
        "with dim=-1), not `weights[b, h, partner[b, i], i]`.",
        (_partner_transposed_mutant,),
    ),
    Mistake(
        "averaged each sequence first, then the sequences",
        "Sequences have different numbers of queries with a partner; a mean of per-sequence "
        "means weights them equally. The score is one mean over every counted query of the "
        "batch: sum the picked weights over the batch and the queries, then divide by the "
        "number of counted queries.",
        (_partner_per_sequence_mutant,),
    ),
    Mistake(
        "summed the weights instead of averaging them",
        "The score is a mean weight in [0, 1]: divide the sum over the counted queries by "
        "how many there are.",
        (_partner_summed_mutant,),
    ),
)


_PARTNER = Checker(
    "weight_on_partner", _partner_cases, analysis.weight_on_partner, _PARTNER_MISTAKES,
    outputs=("score",), shapes=("(H,)",),
    error_hint="Hint: pick `weights[b, h, i, partner[b, i]]` with `gather(-1, ...)` after "
               "replacing -1 by 0, then average over the queries where `partner >= 0`.",
)


def check_weight_on_partner(fn) -> None:
    """Check ``fn(weights, partner)`` → ``(H,)``: the mean over every query ``(b, i)`` with
    ``partner[b, i] >= 0`` of ``weights[b, h, i, partner[b, i]]``, for ``weights``
    ``(B, H, T, T)`` and integer ``partner`` ``(B, T)``. Prints one line on success."""
    _PARTNER.check(fn)


CHECKERS = (_DISTANCE, _PREVIOUS, _PARTNER)
