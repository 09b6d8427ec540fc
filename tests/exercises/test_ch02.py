"""Chapter 2 checkers, beyond the shared harness: messages for the common generic failures, and
what the cases cover."""

import torch
import torch.nn.functional as F

from attention_course import attention
from attention_course.exercises.ch02 import (
    check_additive_score,
    check_masked_softmax,
    check_scaled_dot_product_attention,
)
from tests.exercises.mutants_ch02 import add_swapped, masked_softmax, sdpa


def flat(message: str) -> str:
    return " ".join(message.split())


def test_additive_swapped_weights_shows_the_learners_error_and_the_layout(failure):
    message = flat(failure(check_additive_score, add_swapped))
    assert "W_q and W_k are swapped" in message
    assert "W_q has shape (A, Dq)" in message
    assert "RuntimeError" in message  # the learner's own error is shown too


def test_all_nan_says_the_mistake_explains_only_part(failure):
    message = flat(failure(check_masked_softmax, lambda s, m: torch.full_like(s, float("nan"))))
    assert "explains 1 of the 8 failing cases" in message


def test_nan_in_one_case_is_reported_as_nan(failure):
    def nan_with_heads(scores, mask):
        weights = attention.masked_softmax(scores, mask)
        return weights if scores.dim() < 4 else weights * float("nan")

    message = flat(failure(check_masked_softmax, nan_with_heads))
    assert "`weights` contains NaN at 36 of 36 positions" in message


def test_exception_message_names_type_message_and_input_shapes(failure):
    def raises(*args):
        raise ValueError("learner bug")

    message = flat(failure(check_scaled_dot_product_attention, raises))
    assert "raised ValueError: learner bug" in message
    assert "query=(2, 3) float64, key=(5, 3) float64, value=(5, 4) float64" in message


def test_shape_errors_in_additive_score_get_a_layout_hint(failure):
    def twice_wrong(query, key, W_q, W_k, v):
        return torch.tanh((query @ W_k).unsqueeze(-2) + (key @ W_q).unsqueeze(-3)) @ v

    message = flat(failure(check_additive_score, twice_wrong))
    assert "RuntimeError" in message and "Project with `query @ W_q.T`" in message


def test_wrong_shape_message_names_the_expected_shape(failure):
    def first_query_only(query, key, W_q, W_k, v):
        return attention.additive_score(query, key, W_q, W_k, v)[..., :1, :]

    message = flat(failure(check_additive_score, first_query_only))
    assert "has shape (1, 3); expected (2, 3) = (..., Lq, Lk)" in message


def test_sdpa_single_tensor_return_asks_for_the_pair(failure):
    def output_only(query, key, value, mask=None):
        return sdpa(query, key, value, mask)[0]

    assert "expected a tuple (output, weights)" in flat(
        failure(check_scaled_dot_product_attention, output_only))


def test_modifying_inputs_in_place_is_rejected(failure):
    def in_place(scores, mask):
        any_allowed = mask.any(-1, keepdim=True)
        scores.masked_fill_(~mask, float("-inf")).masked_fill_(~any_allowed, 0.0)
        return F.softmax(scores, dim=-1) * any_allowed

    assert "modified its input `scores` in place" in flat(failure(check_masked_softmax, in_place))


def _spy(check, solution):
    seen = []

    def spy(*args):
        seen.append(args)
        return solution(*args)

    check(spy)
    return seen


def test_masked_softmax_cases_cover_what_the_statement_promises():
    seen = _spy(check_masked_softmax, masked_softmax)
    assert {s.dtype for s, _ in seen} == {torch.float32, torch.float64}
    assert all(m.dtype == torch.bool for _, m in seen)
    assert any(s.shape[-2] > s.shape[-1] for s, _ in seen)  # Lq > Lk
    assert any(s.shape[-2] < s.shape[-1] for s, _ in seen)  # Lq < Lk
    assert any(s.dim() == 4 for s, _ in seen)  # batch and heads
    assert any(m.dim() < s.dim() for s, m in seen)  # a broadcast mask
    assert any(not m.any(-1).all() for _, m in seen)  # a fully masked row
    assert any(not m.any(-2).all() for _, m in seen if m.dim() >= 3 and m.shape[-2] == 1)


def test_sdpa_cases_cover_what_the_statement_promises():
    seen = _spy(check_scaled_dot_product_attention, sdpa)
    assert {q.dtype for q, *_ in seen} == {torch.float32, torch.float64}
    assert any(len(a) == 3 for a in seen) and any(len(a) == 4 for a in seen)  # mask or not
    assert any(q.shape[-2] > k.shape[-2] for q, k, *_ in seen)
    assert any(q.shape[-2] < k.shape[-2] for q, k, *_ in seen)
    assert any(q.dim() == 4 for q, *_ in seen)
    assert any(k.shape[-2] == q.shape[-1] for q, k, *_ in seen)  # Lk == E: key.T goes unnoticed
    masks = [a[3] for a in seen if len(a) == 4]
    assert any(not m.any(-1).all() for m in masks)  # a query with no allowed key


def test_inputs_are_deterministic(capsys):
    first, second = _spy(check_masked_softmax, masked_softmax), _spy(check_masked_softmax,
                                                                     masked_softmax)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(first, second, strict=True))
