"""Chapter 2 exercise checkers: the reference passes, a stub gets a notice, every known mistake
(written here independently of the checker's own mutants, in the ways learners write them) is
rejected with its own diagnosis, and garbage always gives an AssertionError."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attention_course import attention
from attention_course.exercises.ch02 import (
    check_additive_score,
    check_masked_softmax,
    check_scaled_dot_product_attention,
)
from tests.checker_helpers import assert_diagnosis, stub

NEG_INF = float("-inf")


def raises_value_error(*args, **kwargs):
    raise ValueError("learner bug")


# --- masked_softmax -----------------------------------------------------------------------------

def ms_dim_minus2(scores, mask):
    filled = torch.where(mask, scores, torch.tensor(NEG_INF, dtype=scores.dtype))
    return torch.nan_to_num(F.softmax(filled, dim=-2))


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


MS_MUTANTS = [
    (ms_dim_minus2, "softmax over the wrong axis"),
    (ms_mask_after, "mask applied after the softmax"),
    (ms_inverted, "mask polarity is inverted"),
    (ms_inverted_finite, "mask polarity is inverted"),
    (ms_nan_rows, "NaN in fully masked rows"),
    (ms_renormalised_nan_rows, "NaN in fully masked rows"),
    (ms_uniform_rows, "uniform weights 1/Lk instead of zeros"),
    (ms_ignored, "the mask is ignored"),
    (ms_zero_fill, "masked scores were set to 0 rather than -inf"),
]
MS_PHRASES = [phrase for _, phrase in MS_MUTANTS]


def ms_learner_solution(scores, mask):
    """A correct solution written differently from the reference."""
    allowed = mask.expand_as(scores)
    weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values) * allowed
    total = weights.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp_min(1e-300), 0.0)


# --- scaled_dot_product_attention ---------------------------------------------------------------

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


SDPA_MUTANTS = [
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
]
SDPA_PHRASES = [phrase for _, phrase in SDPA_MUTANTS]


def sdpa_learner_solution(query, key, value, mask=None):
    """A correct solution written differently from the reference."""
    scores = torch.einsum("...qe,...ke->...qk", query, key) * query.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, NEG_INF)
    weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
    return weights @ value, weights


# --- additive_score -----------------------------------------------------------------------------

def add_tanh_outside(query, key, W_q, W_k, v):
    hidden = (query @ W_q.T).unsqueeze(-2) + (key @ W_k.T).unsqueeze(-3)
    return torch.tanh(torch.einsum("...qka,a->...qk", hidden, v))


def add_no_tanh(query, key, W_q, W_k, v):
    hidden = (query @ W_q.T)[..., :, None, :] + (key @ W_k.T)[..., None, :, :]
    return hidden @ v


def add_swapped(query, key, W_q, W_k, v):
    q, k = query @ W_k.T, key @ W_q.T
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


ADD_MUTANTS = [
    (add_tanh_outside, "tanh applied after the product with v"),
    (add_no_tanh, "tanh is missing"),
    (add_swapped, "W_q and W_k are swapped"),
    (add_wrong_layout, "used W_q instead of W_q.T"),
    (add_column_vector, "column-vector formula"),
    (add_no_v, "v is never applied"),
    (add_sum, "summed the hidden units instead of weighting them with v"),
    (add_position_wise, "queries and keys added position by position"),
    (add_transposed, "transposed scores (..., Lk, Lq)"),
]
ADD_PHRASES = [phrase for _, phrase in ADD_MUTANTS]


def add_learner_solution(query, key, W_q, W_k, v):
    q = F.linear(query, W_q)  # (..., Lq, A)
    k = F.linear(key, W_k)  # (..., Lk, A)
    return torch.einsum("...qka,a->...qk", torch.tanh(q[..., :, None, :] + k[..., None, :, :]), v)


# --- tests --------------------------------------------------------------------------------------

CHECKS = [
    (check_masked_softmax, attention.masked_softmax, "masked_softmax", 5),
    (check_scaled_dot_product_attention, attention.scaled_dot_product_attention,
     "scaled_dot_product_attention", 5),
    (check_additive_score, attention.additive_score, "additive_score", 4),
]


@pytest.mark.parametrize("check, reference, name, n", CHECKS)
def test_reference_passes_with_one_success_line(check, reference, name, n, capsys):
    assert check(reference) is None
    assert capsys.readouterr().out == f"✅ {name}: all {n} checks passed.\n"


@pytest.mark.parametrize("check, solution", [
    (check_masked_softmax, ms_learner_solution),
    (check_scaled_dot_product_attention, sdpa_learner_solution),
    (check_additive_score, add_learner_solution),
])
def test_correct_solutions_written_differently_pass(check, solution, capsys):
    check(solution)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("check, reference, name, n", CHECKS)
def test_stub_prints_notice_and_does_not_raise(check, reference, name, n, capsys):
    assert check(stub) is None
    assert capsys.readouterr().out == (
        f"⏳ {name}: not attempted yet — replace `raise NotImplementedError` with your code, "
        f"then re-run this cell.\n"
    )


@pytest.mark.parametrize("mutant, phrase", MS_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
def test_masked_softmax_mistakes_are_named(mutant, phrase, capsys):
    assert_diagnosis(check_masked_softmax, mutant, phrase, MS_PHRASES)
    assert capsys.readouterr().out == ""  # no success line printed


@pytest.mark.parametrize("mutant, phrase", SDPA_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.filterwarnings("ignore:The use of `x.T`")  # the key.T mutant, on purpose
def test_sdpa_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_scaled_dot_product_attention, mutant, phrase, SDPA_PHRASES)


@pytest.mark.parametrize("mutant, phrase", ADD_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
def test_additive_score_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_additive_score, mutant, phrase, ADD_PHRASES)


def test_additive_swapped_weights_message_says_which_matrix_multiplies_the_query():
    with pytest.raises(AssertionError, match=r"W_q has shape \(A, Dq\)") as info:
        check_additive_score(add_swapped)
    assert "RuntimeError" in str(info.value)  # the learner's own error is shown too


def first_arg(*args):
    return args[0]


GARBAGE = {
    "None": lambda *a: None,
    "list": lambda *a: [first_arg(*a)],
    "numpy": lambda *a: first_arg(*a).numpy(),
    "string": lambda *a: "weights",
    "float32": lambda *a: first_arg(*a).float(),
    "all NaN": lambda *a: torch.full_like(first_arg(*a), float("nan")),
    "wrong shape": lambda *a: first_arg(*a)[..., :1],
    "ValueError": raises_value_error,
    "tuple of None": lambda *a: (None, None),
    "tuple of 3": lambda *a: (first_arg(*a),) * 3,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("check", [c for c, *_ in CHECKS], ids=lambda c: c.__name__)
def test_garbage_always_gives_an_assertion_error(check, garbage, capsys):
    with pytest.raises(AssertionError, match=r"^❌ \w+: [\s\S]*Failing case \d of \d: "):
        check(garbage)
    assert capsys.readouterr().out == ""


def test_nan_output_is_reported_as_nan():
    def nan_weights(scores, mask):
        return torch.full_like(scores, float("nan"))

    # All-NaN first matches "inverted polarity with -inf" on the first case only; the message
    # must say that the mistake explains just part of the failures.
    with pytest.raises(AssertionError, match="explains 1 of the 5 failing cases"):
        check_masked_softmax(nan_weights)

    def nan_in_last_case(scores, mask):
        weights = attention.masked_softmax(scores, mask)
        return weights if scores.dim() < 4 else weights * float("nan")

    with pytest.raises(AssertionError, match=r"`weights` contains NaN at \d+ of 36 positions"):
        check_masked_softmax(nan_in_last_case)


def test_exception_message_names_type_message_and_input_shapes():
    with pytest.raises(AssertionError) as info:
        check_scaled_dot_product_attention(raises_value_error)
    message = str(info.value)
    assert "raised ValueError: learner bug" in message
    assert "query=(2, 3) float64, key=(5, 3) float64, value=(5, 4) float64" in message


def test_shape_errors_in_additive_score_get_a_layout_hint():
    def twice_wrong(query, key, W_q, W_k, v):
        return torch.tanh((query @ W_k).unsqueeze(-2) + (key @ W_q).unsqueeze(-3)) @ v

    with pytest.raises(AssertionError, match=r"Project with `query @ W_q.T`") as info:
        check_additive_score(twice_wrong)
    assert "RuntimeError" in str(info.value)


def test_wrong_shape_message_names_the_expected_shape():
    def no_batch(query, key, W_q, W_k, v):
        return attention.additive_score(query, key, W_q, W_k, v)[..., :1, :]

    with pytest.raises(AssertionError, match=r"has shape \(1, 3\); expected \(2, 3\) = "
                                             r"\(\.\.\., Lq, Lk\)"):
        check_additive_score(no_batch)


def test_sdpa_single_tensor_return_asks_for_the_pair():
    def output_only(query, key, value, mask=None):
        return attention.scaled_dot_product_attention(query, key, value, mask)[0]

    with pytest.raises(AssertionError, match=r"expected a tuple \(output, weights\)"):
        check_scaled_dot_product_attention(output_only)


def test_modifying_inputs_in_place_is_rejected():
    def in_place(scores, mask):
        return F.softmax(scores.masked_fill_(~mask, NEG_INF).nan_to_num_(0.0), dim=-1) * (
            mask.any(-1, keepdim=True))

    with pytest.raises(AssertionError, match="modified its input `scores` in place"):
        check_masked_softmax(in_place)


def test_inputs_are_float64_and_deterministic(capsys):
    seen = []

    def spy(scores, mask):
        seen.append((scores.dtype, scores.clone(), mask.dtype))
        return attention.masked_softmax(scores, mask)

    check_masked_softmax(spy)
    check_masked_softmax(spy)
    first, second = seen[:5], seen[5:]
    assert all(dtype == torch.float64 and mdtype == torch.bool for dtype, _, mdtype in first)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    assert not np.isnan(np.array([s.sum().item() for _, s, _ in first])).any()
