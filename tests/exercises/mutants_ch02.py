"""Chapter 2: learner-style solutions and wrong answers for the shared harness."""

import math

import torch
import torch.nn.functional as F

from attention_course import attention
from tests.exercises.registry import Exercise

NEG_INF = float("-inf")

# --- masked_softmax ----------------------------------------------------------------------------

def masked_softmax(scores, mask):
    """The notebook's solution."""
    scores = scores.masked_fill(~mask, NEG_INF)
    any_allowed = mask.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~any_allowed, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~any_allowed, 0.0)


def ms_learner_solution(scores, mask):
    """A correct solution written differently from the reference."""
    allowed = mask.expand_as(scores)
    weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values) * allowed
    total = weights.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp_min(1e-300), 0.0)


def ms_dim_minus2(scores, mask):
    filled = torch.where(mask, scores, torch.tensor(NEG_INF, dtype=scores.dtype))
    return torch.nan_to_num(F.softmax(filled, dim=-2))


def ms_dim_minus2_finite(scores, mask):
    return F.softmax(scores.masked_fill(~mask, -1e9), dim=-2)


def ms_mask_after(scores, mask):
    return F.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


def ms_inverted(scores, mask):
    blocked = mask  # wrong: True means "may attend"
    empty = blocked.all(dim=-1, keepdim=True)
    filled = scores.masked_fill(blocked, NEG_INF).masked_fill(empty, 0.0)
    return F.softmax(filled, dim=-1).masked_fill(empty, 0.0)


def ms_inverted_finite(scores, mask):
    return F.softmax(scores.masked_fill(mask, -1e4), dim=-1)


def ms_nan_rows(scores, mask):
    bias = torch.zeros_like(scores).masked_fill(~mask, NEG_INF)  # additive mask
    return F.softmax(scores + bias, dim=-1)


def ms_renormalised_nan_rows(scores, mask):
    weights = F.softmax(scores, dim=-1) * mask
    return weights / weights.sum(dim=-1, keepdim=True)  # 0/0 in fully masked rows


def ms_uniform_rows(scores, mask):
    return F.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)


def ms_ignored(scores, mask):
    return scores.softmax(dim=-1)


def ms_zero_fill(scores, mask):
    return torch.where(mask, scores, 0.0).softmax(dim=-1)


def ms_multiplied_by_mask(scores, mask):
    return torch.softmax(scores * mask, dim=-1)


def ms_dim_1(scores, mask):
    any_allowed = mask.any(-1, keepdim=True)
    filled = scores.masked_fill(mask.logical_not(), NEG_INF).masked_fill(~any_allowed, 0)
    return F.softmax(filled, dim=1).masked_fill(~any_allowed, 0)


def ms_any_over_queries(scores, mask):
    has_key = mask.any(dim=-2, keepdim=True)
    filled = torch.where(mask, scores, NEG_INF)
    filled = torch.where(has_key, filled, 0.0)
    return torch.where(has_key, F.softmax(filled, dim=-1), 0.0)


def ms_no_keepdim(scores, mask):
    any_allowed = mask.any(dim=-1)
    scores = scores.masked_fill(~mask, NEG_INF)
    scores = scores.masked_fill(~any_allowed, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~any_allowed, 0.0)


# --- scaled_dot_product_attention --------------------------------------------------------------

def sdpa(query, key, value, mask=None):
    """The notebook's solution."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    weights = attention.masked_softmax(scores, mask)
    return weights @ value, weights


def sdpa_learner_solution(query, key, value, mask=None):
    """A correct solution written differently from the reference."""
    scores = torch.einsum("...qe,...ke->...qk", query, key) * query.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, NEG_INF)
    weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
    return weights @ value, weights


def _finish(scores, value, mask):
    weights = attention.masked_softmax(scores, mask)
    return weights @ value, weights


def sdpa_unscaled(query, key, value, mask=None):
    return _finish(torch.einsum("...qe,...ke->...qk", query, key), value, mask)


def sdpa_by_dk(query, key, value, mask=None):
    return _finish(query @ key.transpose(-2, -1) / query.size(-1), value, mask)


def sdpa_by_lk(query, key, value, mask=None):
    return _finish(query @ key.transpose(-2, -1) / math.sqrt(key.size(-2)), value, mask)


def sdpa_by_ev(query, key, value, mask=None):
    return _finish(query @ key.transpose(-2, -1) / math.sqrt(value.size(-1)), value, mask)


def sdpa_fixed_axis(query, key, value, mask=None):
    return _finish(query @ key.transpose(-2, -1) / math.sqrt(query.size(1)), value, mask)


def _scores(query, key):
    return torch.matmul(query, key.mT) / math.sqrt(query.shape[-1])


def sdpa_dim_minus2(query, key, value, mask=None):
    scores = _scores(query, key)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-2)
    return weights @ value, weights


def sdpa_key_untransposed(query, key, value, mask=None):
    return _finish(torch.matmul(query, key) / math.sqrt(query.shape[-1]), value, mask)


def sdpa_key_dot_t(query, key, value, mask=None):
    return _finish(query @ key.T / math.sqrt(query.shape[-1]), value, mask)


def sdpa_weights_at_key(query, key, value, mask=None):
    weights = attention.masked_softmax(_scores(query, key), mask)
    return weights @ key, weights


def sdpa_mask_ignored(query, key, value, mask=None):
    weights = torch.softmax(_scores(query, key), dim=-1)
    return weights @ value, weights


def sdpa_inverted(query, key, value, mask=None):
    return _finish(_scores(query, key), value, None if mask is None else mask.logical_not())


def sdpa_nan_rows(query, key, value, mask=None):
    scores = _scores(query, key)
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), NEG_INF)
    weights = scores.softmax(-1)
    return weights @ value, weights


def sdpa_uniform_rows(query, key, value, mask=None):
    scores = _scores(query, key)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(-1)
    return weights @ value, weights


def sdpa_swapped_outputs(query, key, value, mask=None):
    weights = attention.masked_softmax(_scores(query, key), mask)
    return weights, weights @ value


def sdpa_scaled_after(query, key, value, mask=None):
    weights = attention.masked_softmax(query @ key.mT, mask) / math.sqrt(key.shape[-1])
    return torch.matmul(weights, value), weights


def sdpa_times_sqrt(query, key, value, mask=None):
    return _finish(query @ key.mT * math.sqrt(query.shape[-1]), value, mask)


def sdpa_by_lq(query, key, value, mask=None):
    Lq = query.shape[-2]
    return _finish(query @ key.mT / Lq**0.5, value, mask)


def sdpa_mask_after(query, key, value, mask=None):
    weights = _scores(query, key).softmax(dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ value, weights


def sdpa_zero_fill(query, key, value, mask=None):
    scores = _scores(query, key)
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    weights = scores.softmax(-1)
    return weights @ value, weights


def sdpa_dim_1(query, key, value, mask=None):
    scores = _scores(query, key)
    if mask is not None:
        scores = scores.masked_fill(~mask, NEG_INF)
    weights = torch.nan_to_num(F.softmax(scores, dim=1))
    return weights @ value, weights


# --- additive_score ----------------------------------------------------------------------------

def additive_score(query, key, W_q, W_k, v):
    """The notebook's solution."""
    q, k = query @ W_q.T, key @ W_k.T
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


def add_learner_solution(query, key, W_q, W_k, v):
    q = F.linear(query, W_q)  # (..., Lq, A)
    k = F.linear(key, W_k)  # (..., Lk, A)
    return torch.einsum("...qka,a->...qk", torch.tanh(q[..., :, None, :] + k[..., None, :, :]), v)


def add_tanh_outside(query, key, W_q, W_k, v):
    hidden = (query @ W_q.T).unsqueeze(-2) + (key @ W_k.T).unsqueeze(-3)
    return torch.tanh(torch.einsum("...qka,a->...qk", hidden, v))


def add_no_tanh(query, key, W_q, W_k, v):
    hidden = (query @ W_q.T)[..., :, None, :] + (key @ W_k.T)[..., None, :, :]
    return hidden @ v


def add_swapped(query, key, W_q, W_k, v):
    q, k = query @ W_k.T, key @ W_q.T
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


def add_swapped_linear(query, key, W_q, W_k, v):
    q, k = F.linear(query, W_k), F.linear(key, W_q)  # raises unless Dq == Dk
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


def add_wrong_layout(query, key, W_q, W_k, v):
    q, k = torch.matmul(query, W_q), torch.matmul(key, W_k)
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


def add_column_vector(query, key, W_q, W_k, v):
    q, k = W_q @ query, W_k @ key
    return torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


def add_no_v(query, key, W_q, W_k, v):
    return torch.tanh((query @ W_q.T).unsqueeze(-2) + (key @ W_k.T).unsqueeze(-3))


def add_sum(query, key, W_q, W_k, v):
    return torch.tanh((query @ W_q.T).unsqueeze(-2) + (key @ W_k.T).unsqueeze(-3)).sum(dim=-1)


def add_position_wise(query, key, W_q, W_k, v):
    return torch.tanh(query @ W_q.T + key @ W_k.T) @ v


def add_transposed(query, key, W_q, W_k, v):
    hidden = torch.tanh((key @ W_k.T).unsqueeze(-2) + (query @ W_q.T).unsqueeze(-3))
    return hidden @ v  # (..., Lk, Lq)


def add_relu(query, key, W_q, W_k, v):
    return F.relu(F.linear(query, W_q)[..., :, None, :] + F.linear(key, W_k)[..., None, :, :]) @ v


def add_one_matrix(query, key, W_q, W_k, v):
    proj = lambda t: torch.einsum("...d,ad->...a", t, W_q)  # noqa: E731 (the slip: W_q twice)
    return torch.tanh(proj(query).unsqueeze(-2) + proj(key).unsqueeze(-3)) @ v


def add_scaled(query, key, W_q, W_k, v):
    A = W_q.shape[0]
    return additive_score(query, key, W_q, W_k, v) / math.sqrt(A)


def add_separate_tanh(query, key, W_q, W_k, v):
    q, k = torch.tanh(query @ W_q.T), torch.tanh(key @ W_k.T)
    return (q.unsqueeze(-2) + k.unsqueeze(-3)) @ v


EXERCISES = [
    Exercise("ch02", "masked_softmax", 8, (masked_softmax, ms_learner_solution), (
        (ms_dim_minus2, "softmax over the wrong axis"),
        (ms_dim_minus2_finite, "softmax over the wrong axis"),
        (ms_mask_after, "mask applied after the softmax"),
        (ms_inverted, "mask polarity is inverted"),
        (ms_inverted_finite, "mask polarity is inverted"),
        (ms_nan_rows, "NaN in fully masked rows"),
        (ms_renormalised_nan_rows, "NaN in fully masked rows"),
        (ms_uniform_rows, "uniform weights 1/Lk instead of zeros"),
        (ms_ignored, "the mask is ignored"),
        (ms_zero_fill, "masked scores were set to 0 rather than -inf"),
        (ms_multiplied_by_mask, "masked scores were set to 0 rather than -inf"),
        (ms_dim_1, "softmax over a fixed axis (dim=1)"),
        (ms_any_over_queries, "the fully masked rows were found along the wrong axis"),
        (ms_no_keepdim, "keepdim=True is missing"),
    )),
    Exercise("ch02", "scaled_dot_product_attention", 8, (sdpa, sdpa_learner_solution), (
        (sdpa_unscaled, "missing the 1/sqrt(d_k) scaling"),
        (sdpa_by_dk, "divided by d_k instead of sqrt(d_k)"),
        (sdpa_by_lk, "scaled by the number of keys Lk"),
        (sdpa_by_ev, "scaled by the value size Ev"),
        (sdpa_fixed_axis, "d_k read from a fixed axis"),
        (sdpa_dim_minus2, "softmax over the wrong axis"),
        (sdpa_key_untransposed, "key not transposed"),
        (sdpa_key_dot_t, "key.T reverses every dimension"),
        (sdpa_weights_at_key, "output computed as weights @ key"),
        (sdpa_mask_ignored, "the mask is ignored"),
        (sdpa_inverted, "mask polarity is inverted"),
        (sdpa_nan_rows, "NaN in fully masked rows"),
        (sdpa_uniform_rows, "uniform weights 1/Lk instead of zeros"),
        (sdpa_swapped_outputs, "outputs returned in the wrong order"),
        (sdpa_scaled_after, "scaled after the softmax"),
        (sdpa_times_sqrt, "multiplied by sqrt(d_k) instead of dividing"),
        (sdpa_by_lq, "scaled by the number of queries Lq"),
        (sdpa_mask_after, "mask applied after the softmax"),
        (sdpa_zero_fill, "masked scores were set to 0 rather than -inf"),
        (sdpa_dim_1, "softmax over a fixed axis (dim=1)"),
    )),
    Exercise("ch02", "additive_score", 5, (additive_score, add_learner_solution), (
        (add_tanh_outside, "tanh applied after the product with v"),
        (add_no_tanh, "tanh is missing"),
        (add_swapped, "W_q and W_k are swapped"),
        (add_swapped_linear, "W_q and W_k are swapped"),
        (add_wrong_layout, "used W_q instead of W_q.T"),
        (add_column_vector, "column-vector formula"),
        (add_no_v, "v is never applied"),
        (add_sum, "summed the hidden units instead of weighting them with v"),
        (add_position_wise, "queries and keys added position by position"),
        (add_transposed, "transposed scores (..., Lk, Lq)"),
        (add_relu, "a different non-linearity instead of tanh"),
        (add_one_matrix, "the same matrix projects queries and keys"),
        (add_scaled, "scaled by 1/sqrt(A) like a dot product"),
        (add_separate_tanh, "tanh applied to each projection separately"),
    )),
]
