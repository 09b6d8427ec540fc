"""Tests for attention_course.masks: causal and padding masks, and torch's mask polarity."""

import pytest
import torch
import torch.nn.functional as F

from attention_course.masks import (
    attention_mask,
    causal_mask,
    combine_masks,
    fixed_mask,
    from_torch_mask,
    key_padding_mask,
    local_mask,
    padding_mask,
    strided_mask,
    to_torch_mask,
)
from tests.helpers import assert_raises_naming


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
    assert_raises_naming(call, error, words)


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


# ---------------------------------------------------------------- robustness: hostile input

CM = causal_mask(3)

ROBUSTNESS = [
    # was: silent -- "False" is truthy, so the mask was causal
    pytest.param(lambda: local_mask(4, 1, causal="False"), TypeError, ["causal", "bool"],
                 id="local_mask-causal-str"),
    pytest.param(lambda: local_mask(4, 1, causal=0), TypeError, ["causal", "bool"],
                 id="local_mask-causal-int"),
    pytest.param(lambda: local_mask(4, True), TypeError, ["window", "bool"],
                 id="local_mask-window-bool"),
    # was: "Expected one of cpu, cuda, ... device type at start of device string: nope"
    pytest.param(lambda: causal_mask(3, device="nope"), ValueError, ["device", "'nope'"],
                 id="causal_mask-device-str"),
    pytest.param(lambda: causal_mask(3, device=3.5), TypeError, ["device", "float"],
                 id="causal_mask-device-float"),
    pytest.param(lambda: local_mask(3, 1, device="nope"), ValueError, ["device", "'nope'"],
                 id="local_mask-device-str"),
    # was: silent -- a causal mask for is_causal="False"
    pytest.param(lambda: attention_mask(None, 3, 3, is_causal="False"), TypeError,
                 ["is_causal", "bool"], id="attention_mask-is_causal-str"),
    # was: silent -- None
    pytest.param(lambda: attention_mask(None, -1, 3, is_causal=False), ValueError,
                 ["query_len", ">= 0", "-1"], id="attention_mask-negative-length"),
    # was: "The size of tensor a (3) must match the size of tensor b (4)"
    pytest.param(lambda: attention_mask(CM, 3, 4, is_causal=True), ValueError,
                 ["mask", "(3, 3)", "Lk=4"], id="attention_mask-mask-wrong-Lk"),
    pytest.param(lambda: attention_mask(torch.ones(3, 3), 3, 3, is_causal=False), TypeError,
                 ["mask", "boolean", "float32"], id="attention_mask-float-mask"),
    # was: "The size of tensor a (3) must match the size of tensor b (4)"
    pytest.param(lambda: combine_masks(CM, torch.ones(4, 4, dtype=torch.bool)), ValueError,
                 ["masks[1]", "(4, 4)", "(3, 3)"], id="combine_masks-shapes"),
    pytest.param(lambda: combine_masks(CM, CM.to("meta")), ValueError,
                 ["masks[1]", "meta", "masks[0]"], id="combine_masks-devices"),
    pytest.param(lambda: combine_masks(CM, [[True]]), TypeError,
                 ["masks[1]", "torch.Tensor", "list"], id="combine_masks-list"),
    # was: "Tensor.item() cannot be called on meta tensors"
    pytest.param(lambda: padding_mask(torch.tensor([2, 3]).to("meta")), ValueError,
                 ["lengths", "meta", "max_len"], id="padding_mask-meta-without-max_len"),
    pytest.param(lambda: padding_mask(torch.tensor([2, 3]), True), TypeError,
                 ["max_len", "bool"], id="padding_mask-max_len-bool"),
    pytest.param(lambda: key_padding_mask(torch.tensor([2, 3]).numpy()), TypeError,
                 ["lengths", "torch.Tensor", "ndarray"], id="key_padding_mask-numpy"),
    pytest.param(lambda: from_torch_mask(torch.tensor([0.0, float("nan")])), ValueError,
                 ["torch_mask", "0 and -inf"], id="from_torch_mask-nan"),
    pytest.param(lambda: to_torch_mask(CM.to_sparse()), TypeError, ["mask", "dense"],
                 id="to_torch_mask-sparse"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    assert_raises_naming(call, error, words)


def test_empty_and_shape_only_masks():
    assert local_mask(0, 2).shape == (0, 0)  # an empty sequence, like causal_mask(0)
    meta = padding_mask(torch.tensor([2, 3]).to("meta"), 4)  # shapes without values
    assert meta.shape == (2, 4) and meta.device.type == "meta"
    lengths = torch.tensor([[2, 9], [3, 9]])[:, 0]  # non-contiguous
    assert torch.equal(padding_mask(lengths), padding_mask(lengths.contiguous()))
    assert attention_mask(None, 3, 3, is_causal=False) is None
    assert torch.equal(attention_mask(CM[None], 3, 3, is_causal=True), CM[None])


# ------------------------------------------------- sparse patterns (Child et al., 2019)

def brute_strided(L, stride, causal):
    """Child et al.'s two strided heads, position by position: the previous ``stride`` positions
    (``t = max(0, i - l) … i``) and every ``stride``-th position; their union."""
    rows = []
    for i in range(L):
        local = set(range(max(0, i - stride), i + 1))
        if not causal:
            local |= set(range(i, min(L, i + stride + 1)))
        every = {j for j in range(L) if (i - j) % stride == 0 and (not causal or j <= i)}
        rows.append([j in local | every for j in range(L)])
    return torch.tensor(rows, dtype=torch.bool).reshape(L, L)


def brute_fixed(L, block, causal, summary):
    """Child et al.'s two fixed heads: the query's own block, and the last ``summary`` positions
    of every block; their union."""
    rows = []
    for i in range(L):
        own = {j for j in range(L) if j // block == i // block}
        summaries = {j for j in range(L) if j % block in range(block - summary, block)}
        rows.append([(j in own | summaries) and (not causal or j <= i) for j in range(L)])
    return torch.tensor(rows, dtype=torch.bool).reshape(L, L)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("L", "stride"), [(0, 1), (1, 1), (9, 1), (10, 3), (17, 4), (16, 16),
                                           (5, 9)])
def test_strided_mask_matches_the_definition(L, stride, causal):
    mask = strided_mask(L, stride, causal=causal)
    assert mask.dtype == torch.bool and mask.shape == (L, L)
    assert torch.equal(mask, brute_strided(L, stride, causal))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("L", "block", "summary"), [(0, 1, 1), (9, 1, 1), (10, 3, 1),
                                                     (17, 4, 2), (16, 4, 4), (5, 8, 3)])
def test_fixed_mask_matches_the_definition(L, block, summary, causal):
    mask = fixed_mask(L, block, causal=causal, summary=summary)
    assert mask.dtype == torch.bool and mask.shape == (L, L)
    assert torch.equal(mask, brute_fixed(L, block, causal, summary))


def test_sparse_masks_small_examples_and_defaults():
    # stride 2 over 5 positions (causal): previous two positions plus every even distance.
    assert strided_mask(5, 2)[4].tolist() == [True, False, True, True, True]
    # block 2, one summary (the last of each block): query 3 sees key 1 and its own block.
    assert fixed_mask(4, 2)[3].tolist() == [False, True, True, True]
    assert torch.equal(strided_mask(6, 2), strided_mask(6, 2, causal=True))
    assert torch.equal(fixed_mask(6, 2), fixed_mask(6, 2, causal=True, summary=1))
    assert strided_mask(8, 3).diagonal().all() and fixed_mask(8, 3).diagonal().all()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: strided_mask(-1, 2), ValueError, ["length", "-1"]),
        (lambda: strided_mask(4, 0), ValueError, ["stride", ">= 1"]),
        (lambda: strided_mask(4, 2.0), TypeError, ["stride", "int"]),
        (lambda: strided_mask(4, 2, causal=1), TypeError, ["causal", "bool"]),
        (lambda: fixed_mask(4, 0), ValueError, ["block", ">= 1"]),
        (lambda: fixed_mask(4, 2, summary=0), ValueError, ["summary", ">= 1"]),
        (lambda: fixed_mask(4, 2, summary=3), ValueError, ["summary", "block"]),
        (lambda: fixed_mask(4, 2, causal="yes"), TypeError, ["causal"]),
    ],
)
def test_sparse_masks_reject_bad_arguments(call, error, words):
    assert_raises_naming(call, error, words)
