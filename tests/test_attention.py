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
    zero_fully_masked_rows,
)
from attention_course.masks import causal_mask, padding_mask
from tests.helpers import assert_raises_naming, f64, rand


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
    assert_raises_naming(call, error, words)


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


# ---------------------------------------------------------------- robustness: hostile input
# Each entry: the call, the exception, and phrases the message must contain (the argument's
# name as the caller wrote it, and what was expected). "was: ..." notes what happened before
# the argument was checked.

Q, K, V = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 6, seed=3)
SCORES = rand(2, 3, 5, seed=4)
META_MASK = torch.ones(2, 3, 5, dtype=torch.bool, device="meta")


def additive_module():
    torch.manual_seed(0)
    return AdditiveScore(4, 4, 8).double()


def with_keys_wrong_query():
    key = K.clone()
    return additive_module().with_keys(key)(rand(2, 3, 5), key)


ROBUSTNESS = [
    # was: a meta "result" (silent)
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V.to("meta")), ValueError,
                 ["value", "meta", "key"], id="sdpa-value-other-device"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, is_causal="False"), TypeError,
                 ["is_causal", "bool", "'False'"], id="sdpa-is_causal-str"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, is_causal=1), TypeError,
                 ["is_causal", "bool"], id="sdpa-is_causal-int"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, scale=float("nan")), ValueError,
                 ["scale", "finite"], id="sdpa-scale-nan"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, scale=0.0), ValueError,
                 ["scale", "> 0"], id="sdpa-scale-zero"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, scale=True), TypeError,
                 ["scale", "number", "bool"], id="sdpa-scale-bool"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, dropout_p="0.1"), TypeError,
                 ["dropout_p", "number", "str"], id="sdpa-dropout-str"),
    pytest.param(lambda: scaled_dot_product_attention(Q.to(torch.complex128), K, V), TypeError,
                 ["query", "floating", "complex128"], id="sdpa-complex-query"),
    pytest.param(lambda: scaled_dot_product_attention(Q.to_sparse(), K, V), TypeError,
                 ["query", "dense"], id="sdpa-sparse-query"),
    pytest.param(lambda: scaled_dot_product_attention(Q.numpy(), K, V), TypeError,
                 ["query", "torch.Tensor", "ndarray"], id="sdpa-numpy-query"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K.half(), V), TypeError,
                 ["key", "float16", "float64"], id="sdpa-mixed-dtypes"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, META_MASK), ValueError,
                 ["mask", "meta", "query"], id="sdpa-mask-other-device"),
    pytest.param(lambda: scaled_dot_product_attention(
        Q, K, V, torch.ones(2, 3, 5, dtype=torch.uint8)), TypeError,
        ["mask", "boolean", "uint8"], id="sdpa-uint8-mask"),
    pytest.param(lambda: scaled_dot_product_attention(Q, K, V, torch.tensor(True)), ValueError,
                 ["mask", "()"], id="sdpa-0d-mask"),
    pytest.param(lambda: scaled_dot_product_attention(
        Q, K, V, torch.ones(4, 3, 5, dtype=torch.bool)), ValueError,
        ["mask", "(4, 3, 5)"], id="sdpa-mask-bigger-batch"),
    # was: "Tensor on device cpu is not on the expected device meta!"
    pytest.param(lambda: masked_softmax(SCORES.to("meta"), torch.ones(2, 3, 5, dtype=torch.bool)),
                 ValueError, ["mask", "scores", "meta"], id="masked_softmax-devices"),
    pytest.param(lambda: masked_softmax(SCORES, dim=True), TypeError, ["dim", "bool"],
                 id="masked_softmax-dim-bool"),
    # was: a float mask silently used as ~mask (bitwise not of floats fails later or not at all)
    pytest.param(lambda: zero_fully_masked_rows(SCORES, torch.ones(2, 3, 5)), TypeError,
                 ["mask", "boolean", "float32"], id="zero_rows-float-mask"),
    # was: "The size of tensor a (4) must match the size of tensor b (3)"
    pytest.param(lambda: zero_fully_masked_rows(SCORES, torch.zeros(2, 4, 5, dtype=torch.bool)),
                 ValueError, ["mask", "(2, 4, 5)"], id="zero_rows-mask-rows"),
    pytest.param(lambda: zero_fully_masked_rows(SCORES.tolist(), None), TypeError,
                 ["x", "torch.Tensor", "list"], id="zero_rows-list"),
    pytest.param(lambda: attention(Q, K, V, score="dot"), TypeError,
                 ["score", "function", "str"], id="attention-score-str"),
    # was: "expected scalar type Float but found Double" from the matmul
    pytest.param(lambda: attention(Q, K, V, score=lambda q, k: (q @ k.transpose(-2, -1)).float()),
                 TypeError, ["score", "float32", "float64"], id="attention-score-dtype"),
    pytest.param(lambda: attention(Q, K, V.to("meta")), ValueError, ["value", "meta"],
                 id="attention-value-other-device"),
    pytest.param(lambda: attention(Q, K, V, mask=META_MASK), ValueError, ["mask", "meta"],
                 id="attention-mask-other-device"),
    # was: silent (meta weight with cpu inputs)
    pytest.param(lambda: additive_score(Q, K, rand(7, 4), rand(7, 4).to("meta"), rand(7)),
                 ValueError, ["W_k", "meta", "query"], id="additive-weight-other-device"),
    # was: "W_q must have shape (A, Dq=5)": the caller passed no W_q
    pytest.param(lambda: additive_module()(rand(2, 3, 5), K), ValueError,
                 ["query", "query_dim=4", "(2, 3, 5)"], id="AdditiveScore-query-size"),
    pytest.param(lambda: additive_module()(Q.float(), K.float()), TypeError,
                 ["query", "float32", "float64"], id="AdditiveScore-dtype"),
    # was: "mat1 and mat2 shapes cannot be multiplied (10x3 and 4x8)"
    pytest.param(lambda: additive_module().with_keys(rand(2, 5, 3)), ValueError,
                 ["key", "key_dim=4", "(2, 5, 3)"], id="with_keys-key-size"),
    pytest.param(lambda: additive_module().with_keys(K.tolist()), TypeError,
                 ["key", "torch.Tensor", "list"], id="with_keys-list"),
    pytest.param(lambda: additive_module().with_keys(K.float()), TypeError,
                 ["key", "float32", "float64"], id="with_keys-dtype"),
    pytest.param(with_keys_wrong_query, ValueError, ["query", "query_dim=4"],
                 id="with_keys-score-query-size"),
    pytest.param(lambda: AdditiveScore(True, 4, 8), TypeError, ["query_dim", "bool"],
                 id="AdditiveScore-bool-size"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    assert_raises_naming(call, error, words)


def test_additive_score_module_errors_name_the_callers_arguments_not_weights():
    for call in (lambda: additive_module()(rand(2, 3, 5), K),
                 lambda: additive_module()(Q.float(), K.float())):
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        assert "W_q" not in str(info.value) and "W_k" not in str(info.value)


def test_non_contiguous_inputs_give_the_same_result():
    q = Q.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    k = K.transpose(-2, -1).contiguous().transpose(-2, -1)
    v = V.transpose(-2, -1).contiguous().transpose(-2, -1)
    mask = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0)) > 0.3
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    assert not mask.transpose(-2, -1).is_contiguous()
    out, w = scaled_dot_product_attention(q, k, v, mask.transpose(-2, -1), is_causal=True)
    ref, w_ref = scaled_dot_product_attention(Q, K, V, mask.transpose(-2, -1).contiguous(),
                                              is_causal=True)
    assert torch.equal(out, ref) and torch.equal(w, w_ref)
    assert torch.equal(masked_softmax(SCORES.transpose(0, 1)),
                       masked_softmax(SCORES.transpose(0, 1).contiguous()))


def test_float16_scores_beyond_its_range_stay_finite_as_in_torch():
    # Scaled by 64**-0.25 on both sides, 100 * 100 * 64 / 8 = 80000 still exceeds float16's
    # 65504: the reference computes half-precision scores in float32, as torch's kernels do.
    q = torch.full((1, 2, 64), 100.0, dtype=torch.float16)
    k = torch.full((1, 3, 64), 100.0, dtype=torch.float16)
    k[0, 1] = -100.0
    v = rand(1, 3, 2, seed=1).half()
    theirs = F.scaled_dot_product_attention(q, k, v)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert theirs.isfinite().all() and out.isfinite().all()
    assert out.dtype == weights.dtype == torch.float16
    assert torch.allclose(out.float(), theirs.float(), atol=1e-3)
    assert weights[0, :, 1].eq(0).all()  # the opposite key gets no weight
    bf = scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())[0]
    assert bf.isfinite().all()
