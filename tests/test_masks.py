"""Tests for attention_course.masks: causal and padding masks, and torch's mask polarity."""

import pytest
import torch
import torch.nn.functional as F

from attention_course.masks import (
    causal_mask,
    from_torch_mask,
    local_mask,
    padding_mask,
    to_torch_mask,
)


def test_square_causal_mask_is_lower_triangular():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)


def test_rectangular_causal_mask_is_bottom_right_aligned():
    # Two new queries after three cached keys: query 0 sees keys 0..3, query 1 sees all five.
    assert causal_mask(2, 5).tolist() == [[True, True, True, True, False], [True] * 5]
    # More queries than keys: the first rows see nothing.
    assert causal_mask(3, 2).tolist() == [[False, False], [True, False], [True, True]]


def test_rectangular_causal_mask_differs_from_torch_is_causal_on_purpose():
    # torch's is_causal aligns top-left (query 0 sees key 0 only); documented difference.
    q, k = torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(1, 5, 4, dtype=torch.float64)
    top_left = F.scaled_dot_product_attention(q, k, k, is_causal=True)
    bottom_right = F.scaled_dot_product_attention(q, k, k, attn_mask=causal_mask(2, 5))
    assert not torch.allclose(top_left, bottom_right)


def test_padding_mask():
    mask = padding_mask(torch.tensor([2, 0, 3]), max_len=4)
    assert mask.tolist() == [
        [True, True, False, False],
        [False, False, False, False],
        [True, True, True, False],
    ]
    assert padding_mask(torch.tensor([1, 3])).shape == (2, 3)


def test_torch_polarity_round_trip_and_float_masks():
    mask = torch.tensor([[True, False], [True, True]])
    assert torch.equal(to_torch_mask(mask), ~mask)
    assert torch.equal(from_torch_mask(to_torch_mask(mask)), mask)
    additive = torch.tensor([[0.0, float("-inf")], [0.0, 0.0]])
    assert torch.equal(from_torch_mask(additive), mask)
    with pytest.raises(ValueError, match="0 and -inf"):
        from_torch_mask(torch.tensor([[0.0, -2.0]]))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: causal_mask(-1), ValueError, ["query_len", ">= 0", "-1"]),
        (lambda: causal_mask(3, 2.5), TypeError, ["key_len", "float"]),
        (lambda: causal_mask(True), TypeError, ["query_len", "bool"]),
        (lambda: padding_mask(torch.tensor([1.0, 2.0])), TypeError, ["lengths", "integer"]),
        (lambda: padding_mask(torch.tensor([[1, 2]])), ValueError, ["lengths", "1 dimensions"]),
        (lambda: padding_mask(torch.tensor([1, -1])), ValueError, ["lengths", "-1"]),
        (lambda: padding_mask(torch.tensor([1, 5]), max_len=3), ValueError, ["max_len=3", "5"]),
        (lambda: to_torch_mask(torch.ones(2, 2)), TypeError, ["mask", "torch.bool"]),
        (lambda: from_torch_mask(torch.ones(2, 2, dtype=torch.long)), TypeError, ["torch_mask"]),
    ],
)
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_local_mask():
    assert local_mask(4, 1).tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [False, True, True, False],
        [False, False, True, True],
    ]
    assert torch.equal(local_mask(5, 1, causal=False), local_mask(5, 1) | local_mask(5, 1).T)
    assert torch.equal(local_mask(6, 5), causal_mask(6))  # a window this wide is full attention
    with pytest.raises(ValueError, match="window"):
        local_mask(4, -1)
