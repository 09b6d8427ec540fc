"""The naive functions of attention_course.stability fail as documented; the fixes do not."""

import pytest
import torch

from attention_course.attention import masked_softmax, scaled_dot_product_score
from attention_course.stability import (
    fill_masked_softmax,
    naive_scaled_scores,
    naive_softmax,
    qk_norm,
)


def test_naive_softmax_equals_softmax_on_small_inputs_and_overflows_on_large():
    x = torch.randn(4, 7, dtype=torch.float64)
    assert torch.allclose(naive_softmax(x), torch.softmax(x, -1))
    big = torch.tensor([1000.0, 999.0])
    assert naive_softmax(big).isnan().all()
    assert torch.softmax(big, -1).isfinite().all()


def test_fill_masked_softmax_fully_masked_rows():
    scores = torch.randn(2, 3)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    assert fill_masked_softmax(scores, mask, float("-inf"))[1].isnan().all()
    assert torch.allclose(fill_masked_softmax(scores, mask, -1e9)[1], torch.full((3,), 1 / 3))
    assert torch.allclose(fill_masked_softmax(scores, mask, -1e9)[0],
                          masked_softmax(scores, mask)[0])
    half = scores.half()
    assert fill_masked_softmax(half, mask, -1e9)[1].isnan().all()  # -1e9 is -inf in fp16
    assert fill_masked_softmax(half, mask, torch.finfo(torch.float16).min).isfinite().all()


def test_fill_masked_softmax_rejects_a_misshaped_mask():
    with pytest.raises(ValueError):
        fill_masked_softmax(torch.randn(2, 3), torch.ones(2, 4, dtype=torch.bool), -1e9)


def test_naive_scaled_scores_match_scaled_scores_but_overflow_in_float16():
    q, k = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 6, 8, dtype=torch.float64)
    assert torch.allclose(naive_scaled_scores(q, k), scaled_dot_product_score(q, k))
    big = (40 * torch.randn(1, 4, 64)).half()
    assert naive_scaled_scores(big, big).isinf().any()
    assert scaled_dot_product_score(big, big).isfinite().all()


def test_qk_norm_is_scale_invariant_and_bounds_logits():
    q, k = torch.randn(3, 5, 16, dtype=torch.float64), torch.randn(3, 7, 16, dtype=torch.float64)
    nq, nk = qk_norm(q, k, eps=0.0)
    assert nq.shape == q.shape and nk.shape == k.shape
    assert torch.allclose(nq.mean(-1), torch.zeros(3, 5, dtype=torch.float64), atol=1e-12)
    sq, sk = qk_norm(100 * q, 100 * k, eps=0.0)
    assert torch.allclose(sq, nq, atol=1e-6) and torch.allclose(sk, nk, atol=1e-6)
    assert (nq @ nk.transpose(-2, -1)).abs().max() <= 16 + 1e-9  # |q.k| <= E
    with pytest.raises(ValueError, match="feature size"):
        qk_norm(q, torch.randn(3, 7, 8, dtype=torch.float64))
