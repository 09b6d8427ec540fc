"""Unit tests and float64 equivalence with torch for attention_course.attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention_course.attention import (
    AdditiveScore,
    additive_score,
    attention,
    dot_product_score,
    masked_softmax,
    scaled_dot_product_attention,
    scaled_dot_product_score,
)
from attention_course.masks import causal_mask, padding_mask

f64 = torch.float64


def rand(*shape, seed=0, dtype=f64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rand_mask(*shape, seed=0, p=0.3):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) > p


# ---------------------------------------------------------------- scores


def test_dot_and_scaled_dot_scores_by_hand():
    q = torch.tensor([[1.0, 2.0, 0.0, 1.0]], dtype=f64)  # (1, 4)
    k = torch.tensor([[1.0, 0.0, 3.0, 1.0], [0.0, 1.0, 1.0, -1.0]], dtype=f64)  # (2, 4)
    assert dot_product_score(q, k).tolist() == [[2.0, 1.0]]
    # / sqrt(4); both sides are scaled by 4**-0.25 first (as torch does): equal up to rounding
    expected = torch.tensor([[1.0, 0.5]], dtype=f64)
    assert torch.allclose(scaled_dot_product_score(q, k), expected, rtol=1e-15, atol=0)
    assert scaled_dot_product_score(q, k, scale=0.1).allclose(torch.tensor([[0.2, 0.1]], dtype=f64))


def test_additive_score_matches_the_formula_per_pair():
    q, k = rand(2, 3, 5, seed=1), rand(2, 4, 6, seed=2)  # (B, Lq, Dq), (B, Lk, Dk)
    W_q, W_k, v = rand(7, 5, seed=3), rand(7, 6, seed=4), rand(7, seed=5)
    scores = additive_score(q, k, W_q, W_k, v)
    assert scores.shape == (2, 3, 4)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                expected = v @ torch.tanh(W_q @ q[b, i] + W_k @ k[b, j])
                assert torch.allclose(scores[b, i, j], expected, rtol=0, atol=1e-12)


def test_additive_score_module_uses_its_linear_weights():
    torch.manual_seed(0)
    module = AdditiveScore(query_dim=5, key_dim=3, hidden_dim=8).double()
    q, k = rand(2, 4, 5), rand(2, 6, 3)
    expected = additive_score(q, k, module.W_q.weight, module.W_k.weight, module.v.weight[0])
    assert torch.equal(module(q, k), expected)
    out, weights = attention(q, k, rand(2, 6, 2), score=module)
    assert out.shape == (2, 4, 2) and weights.shape == (2, 4, 6)


# ---------------------------------------------------------------- masked softmax


def test_masked_softmax_zero_weight_on_masked_keys_and_rows_sum_to_one():
    scores = rand(3, 4, 5)
    mask = rand_mask(3, 4, 5, p=0.4)
    mask[:, :, 0] = True  # every row keeps at least one key
    w = masked_softmax(scores, mask)
    assert torch.all(w[~mask] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4, dtype=f64))
    # Equal to a softmax over the allowed keys only, computed row by row.
    b, i = 1, 2
    allowed = mask[b, i]
    assert torch.allclose(w[b, i, allowed], torch.softmax(scores[b, i, allowed], -1))


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    scores = rand(2, 3, 4).requires_grad_()
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False  # one query sees no key
    w = masked_softmax(scores, mask)
    assert torch.all(w[0, 1] == 0)
    assert torch.allclose(w[1].sum(-1), torch.ones(3, dtype=f64))
    (w * rand(2, 3, 4, seed=9)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[0, 1] == 0)


def test_huge_logits_stay_finite():
    scores = torch.tensor([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]], dtype=torch.float32)
    w = masked_softmax(scores, torch.tensor([True, True, False]))
    assert torch.isfinite(w).all()
    assert w.tolist() == [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]


# ---------------------------------------------------------------- attention vs torch SDPA

SHAPES = [  # (batch dims, Lq, Lk, E, Ev)
    ((), 1, 1, 1, 1),
    ((2,), 5, 5, 8, 8),
    ((3,), 4, 7, 6, 3),  # cross-attention, Lq < Lk
    ((2, 3), 9, 4, 5, 7),  # heads, Lq > Lk
    ((1, 2), 6, 6, 16, 2),
]


def _torch_reference(q, k, v, mask=None, is_causal=False, scale=None):
    if is_causal:  # torch aligns is_causal top-left; the course aligns bottom-right
        causal = causal_mask(q.shape[-2], k.shape[-2])
        mask = causal if mask is None else mask & causal
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


@pytest.mark.parametrize("batch, Lq, Lk, E, Ev", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "full", "key_padding", "causal", "causal+padding"])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_equals_torch_sdpa_in_float64(batch, Lq, Lk, E, Ev, mask_kind, scale):
    q, k, v = rand(*batch, Lq, E, seed=1), rand(*batch, Lk, E, seed=2), rand(*batch, Lk, Ev, seed=3)
    mask, is_causal = None, "causal" in mask_kind
    if mask_kind == "full":
        mask = rand_mask(*batch, Lq, Lk, seed=4)
    elif "padding" in mask_kind:
        lengths = torch.randint(1, Lk + 1, (math.prod(batch) or 1,),
                                generator=torch.Generator().manual_seed(5))
        mask = padding_mask(lengths, Lk).reshape(*batch, 1, Lk)  # (..., 1, Lk)
    out, weights = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, scale=scale)
    expected = _torch_reference(q, k, v, mask, is_causal, scale)
    # Rows with at least one allowed key must agree; torch leaves fully masked rows undefined.
    effective = torch.ones(*batch, Lq, Lk, dtype=torch.bool)
    if mask is not None:
        effective = effective & mask
    if is_causal:
        effective = effective & causal_mask(Lq, Lk)
    live = effective.any(-1)  # (..., Lq)
    assert torch.allclose(out[live], expected[live], rtol=0, atol=1e-12)
    assert torch.all(out[~live] == 0) and torch.all(weights[~live] == 0)
    assert torch.allclose(weights @ v, out, rtol=0, atol=1e-12)


def test_is_causal_equals_torch_when_square():
    q, k, v = rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(2, 6, 3, seed=3)
    out, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    assert torch.all(weights.triu(1) == 0)


def test_causal_is_bottom_right_aligned_for_a_decoding_step():
    q, k, v = rand(1, 1, 4, seed=1), rand(1, 5, 4, seed=2), rand(1, 5, 3, seed=3)
    _, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.all(weights > 0)  # the single (last) query sees all five keys


def test_weights_and_output_by_hand():
    q = torch.tensor([[0.0, 0.0]], dtype=f64)  # equal scores -> uniform weights
    k = rand(3, 2)
    v = torch.tensor([[1.0], [2.0], [6.0]], dtype=f64)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(weights, torch.full((1, 3), 1 / 3, dtype=f64))
    assert torch.allclose(out, torch.tensor([[3.0]], dtype=f64))


def test_dropout_keeps_expectation_and_zeroes_some_weights():
    torch.manual_seed(0)
    q, k, v = rand(1, 64, 8), rand(1, 64, 8, seed=1), rand(1, 64, 8, seed=2)
    _, w0 = scaled_dot_product_attention(q, k, v)
    _, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    kept = w != 0
    assert 0.4 < kept.double().mean() < 0.6
    assert torch.allclose(w[kept], 2 * w0[kept])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: scaled_dot_product_attention(rand(2, 3, 4), rand(2, 5, 6), rand(2, 5, 6)),
         ValueError, ["E=4", "key"]),
        (lambda: scaled_dot_product_attention(rand(2, 3, 4), rand(3, 5, 4), rand(3, 5, 4)),
         ValueError, ["leading", "(2,)"]),
        (lambda: scaled_dot_product_attention(rand(2, 3, 4), rand(2, 5, 4), rand(2, 6, 4)),
         ValueError, ["value", "(2, 6, 4)"]),
        (lambda: scaled_dot_product_attention(rand(3, 4), rand(5, 4, dtype=torch.float32),
                                              rand(5, 4)),
         TypeError, ["key", "float32", "float64"]),
        (lambda: scaled_dot_product_attention(rand(3, 4).long(), rand(5, 4).long(),
                                              rand(5, 4).long()),
         TypeError, ["query", "floating", "int64"]),
        (lambda: scaled_dot_product_attention([[1.0]], rand(5, 4), rand(5, 4)),
         TypeError, ["query", "torch.Tensor", "list"]),
        (lambda: scaled_dot_product_attention(rand(4), rand(5, 4), rand(5, 4)),
         ValueError, ["query", "at least 2", "(4,)"]),
        (lambda: scaled_dot_product_attention(rand(2, 3, 4), rand(2, 5, 4), rand(2, 5, 4),
                                              torch.ones(2, 3, 4, dtype=torch.bool)),
         ValueError, ["mask", "(2, 3, 4)", "Lk=5"]),
        # (B, Lk) key-padding mask against (B, Lq, Lk) scores would silently broadcast as
        # (Lq, Lk); with B != Lq the course refuses it.
        (lambda: scaled_dot_product_attention(rand(2, 3, 4), rand(2, 5, 4), rand(2, 5, 4),
                                              torch.ones(2, 5, dtype=torch.bool)),
         ValueError, ["mask", "(2, 5)", "Lq or 1"]),
        (lambda: scaled_dot_product_attention(rand(3, 4), rand(5, 4), rand(5, 4),
                                              torch.ones(2, 3, 5, dtype=torch.bool)),
         ValueError, ["mask", "(2, 3, 5)"]),
        (lambda: scaled_dot_product_attention(rand(3, 4), rand(5, 4), rand(5, 4),
                                              torch.ones(3, 5)),
         TypeError, ["mask", "boolean", "float32"]),
        (lambda: scaled_dot_product_attention(rand(3, 4), rand(5, 4), rand(5, 4), scale=-1.0),
         ValueError, ["scale", "-1.0"]),
        (lambda: scaled_dot_product_attention(rand(3, 4), rand(5, 4), rand(5, 4), dropout_p=1.0),
         ValueError, ["dropout_p", "1.0"]),
        (lambda: additive_score(rand(3, 4), rand(5, 6), rand(7, 6), rand(7, 6), rand(7)),
         ValueError, ["W_q", "Dq=4", "(7, 6)"]),
        (lambda: additive_score(rand(3, 4), rand(5, 6), rand(7, 4), rand(7, 6), rand(8)),
         ValueError, ["hidden size", "(8,)"]),
        (lambda: attention(rand(3, 4), rand(5, 4), rand(5, 2), score=lambda q, k: q @ q.T),
         ValueError, ["score", "(3, 5)", "(3, 3)"]),
        (lambda: masked_softmax(rand(3, 4), torch.ones(3, 4, dtype=torch.bool), dim=0),
         ValueError, ["dim=0"]),
        (lambda: AdditiveScore(4, 0, 8), ValueError, ["key_dim", "0"]),
    ],
)
def test_bad_input_raises_a_message_naming_the_problem(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_show_source_returns_the_dedented_package_code():
    from attention_course.utils import show_source

    code = show_source(AdditiveScore.forward)
    assert code.data.startswith("def forward(self, query")
    assert "additive_score(query, key" in code.data


def test_additive_with_keys_equals_the_plain_score_and_guards_its_key():
    torch.manual_seed(0)
    module = AdditiveScore(query_dim=5, key_dim=3, hidden_dim=8).double()
    q, k = rand(2, 4, 5), rand(2, 6, 3)
    score = module.with_keys(k)
    assert torch.allclose(score(q, k), module(q, k), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="different key"):
        score(q, k.clone())
