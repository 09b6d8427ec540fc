"""Chapter 3 checkers, beyond the shared harness."""

import torch

from attention_course.exercises.ch03 import (
    check_causal_mask,
    check_path_length,
    check_self_attention,
)
from tests.exercises.mutants_ch03 import causal, cm_top_left, sa_linear_layout, self_attention


def flat(message: str) -> str:
    return " ".join(message.split())


def test_linear_layout_message_shows_the_learners_error(failure):
    message = flat(failure(check_self_attention, sa_linear_layout))
    assert "W_Q is (D, d_k)" in message and "RuntimeError" in message


def test_self_attention_cases_separate_the_sizes():
    seen = []

    def spy(X, W_Q, W_K, W_V):
        seen.append((X.shape[-1], W_Q.shape[-1], W_V.shape[-1], X.dtype))
        return self_attention(X, W_Q, W_K, W_V)

    check_self_attention(spy)
    assert all(D != d_k for D, d_k, _, _ in seen)
    assert any(d_k != d_v for _, d_k, d_v, _ in seen) and any(d_k == d_v for _, d_k, d_v, _ in seen)
    assert {dtype for *_, dtype in seen} == {torch.float32, torch.float64}


def test_top_left_is_diagnosed_on_the_first_rectangular_case(failure):
    assert "Failing case 2 of 6: fewer queries than keys" in flat(
        failure(check_causal_mask, cm_top_left))


def test_causal_cases_cover_square_and_fewer_queries_than_keys():
    seen = []

    def spy(query_len, key_len):
        seen.append((query_len, key_len))
        return causal(query_len, key_len)

    check_causal_mask(spy)
    assert any(q == k > 1 for q, k in seen) and any(q < k for q, k in seen)


def test_partial_fix_says_how_much_remains(failure):
    def strict_top_left(query_len, key_len):  # two mistakes at once
        return torch.ones(query_len, key_len, dtype=torch.bool).tril(-1)

    message = flat(failure(check_causal_mask, strict_top_left))
    assert "a token cannot see itself" in message
    assert "explains 3 of the 6 failing cases" in message


def test_path_length_bool_answer_names_the_dtype(failure):
    message = failure(check_path_length, lambda n, window: torch.arange(n) > 0)
    assert "dtype torch.bool; expected torch.int64" in message


def test_value_error_is_reported_with_the_inputs(failure):
    def raises(*args):
        raise ValueError("learner bug")

    message = flat(failure(check_self_attention, raises))
    assert "raised ValueError: learner bug" in message
    assert "X=(1, 4, 6) float64, W_Q=(6, 3) float64" in message
    assert "Hint: X (B, L, D) @ W_Q (D, d_k)" in message
