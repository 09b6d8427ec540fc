"""Chapter 1 checkers, beyond the shared harness: hints and what the cases cover."""

import pytest
import torch

from attention_course.exercises.ch01 import check_bahdanau_context, check_gru_step
from tests.exercises.mutants_ch01 import bahdanau_context


def test_gru_forgotten_transpose_gets_the_shape_hint(failure):
    def no_transpose(x, h, W_ih, W_hh, b_ih, b_hh):
        return (x @ W_ih + b_ih)[:, : h.shape[1]]

    message = failure(check_gru_step, no_transpose)
    assert "raised RuntimeError" in message
    assert "chunk(3, dim=-1)" in message


def test_context_cases_cover_padding_beyond_the_longest_source_and_float32():
    seen = []

    def spy(s_prev, memory, memory_mask, W_q, W_k, v):
        seen.append((memory.dtype, memory_mask.sum(-1).max().item(), memory_mask.shape[-1]))
        return bahdanau_context(s_prev, memory, memory_mask, W_q, W_k, v)

    check_bahdanau_context(spy)
    assert {dtype for dtype, _, _ in seen} == {torch.float32, torch.float64}
    assert any(longest < S for _, longest, S in seen), "no case pads every sequence"
    assert any(longest == S for _, longest, S in seen)


@pytest.mark.parametrize("wrong_dtype", [torch.float64, torch.float32])
def test_a_float64_result_for_float32_inputs_is_a_dtype_error(wrong_dtype, failure):
    def fixed_dtype(x, h, W_ih, W_hh, b_ih, b_hh):
        return torch.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh).to(wrong_dtype)

    message = failure(check_gru_step, fixed_dtype)
    other = torch.float32 if wrong_dtype == torch.float64 else torch.float64
    assert f"has dtype {wrong_dtype}; expected {other}" in message
