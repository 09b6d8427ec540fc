"""Hypothesis property tests of the attention core, over random shapes, masks and values."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_course.attention import masked_softmax, scaled_dot_product_attention

f64 = torch.float64


@st.composite
def attention_inputs(draw, with_mask=True):
    """Random (query, key, value, mask) in float64 with small shapes."""
    B, Lq, Lk = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    E, Ev = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))  # includes large, saturating scores
    q = torch.randn(B, Lq, E, generator=g, dtype=f64) * scale
    k = torch.randn(B, Lk, E, generator=g, dtype=f64)
    v = torch.randn(B, Lk, Ev, generator=g, dtype=f64)
    mask = torch.rand(B, Lq, Lk, generator=g) > draw(st.floats(0.0, 0.9)) if with_mask else None
    return q, k, v, mask


@settings(max_examples=60, deadline=None)
@given(attention_inputs())
def test_weights_are_a_distribution_over_allowed_keys(inputs):
    q, k, v, mask = inputs
    _, w = scaled_dot_product_attention(q, k, v, mask)
    live = mask.any(-1)  # (B, Lq) rows with at least one allowed key
    assert torch.all(w >= 0)
    assert torch.all(w[~mask] == 0)
    assert torch.allclose(w.sum(-1)[live], torch.ones_like(w.sum(-1)[live]))
    assert torch.all(w.sum(-1)[~live] == 0)


@settings(max_examples=60, deadline=None)
@given(attention_inputs())
def test_output_is_a_convex_combination_of_allowed_values(inputs):
    q, k, v, mask = inputs
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    for b, i in mask.any(-1).nonzero().tolist():
        allowed = v[b][mask[b, i]]  # (n_allowed, Ev)
        assert torch.all(out[b, i] >= allowed.min(0).values - 1e-12)
        assert torch.all(out[b, i] <= allowed.max(0).values + 1e-12)
    assert torch.all(out[~mask.any(-1)] == 0)  # a query that sees no key outputs zeros


@settings(max_examples=60, deadline=None)
@given(attention_inputs(), st.randoms(use_true_random=False))
def test_permuting_keys_and_values_together_changes_nothing(inputs, rnd):
    q, k, v, mask = inputs
    perm = list(range(k.shape[1]))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    out_p, w_p = scaled_dot_product_attention(q, k[:, perm], v[:, perm], mask[..., perm])
    assert torch.allclose(out, out_p, rtol=0, atol=1e-12)
    assert torch.allclose(w[..., perm], w_p, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(attention_inputs())
def test_masked_keys_cannot_influence_the_output(inputs):
    q, k, v, mask = inputs
    out, w = scaled_dot_product_attention(q, k, v, mask)
    # Replace every key/value by garbage where *every* query masks it.
    unseen = (~mask).all(1)  # (B, Lk)
    k2 = torch.where(unseen[..., None], torch.full_like(k, 1e6), k)
    v2 = torch.where(unseen[..., None], torch.full_like(v, -1e6), v)
    out2, w2 = scaled_dot_product_attention(q, k2, v2, mask)
    assert torch.allclose(out, out2, rtol=0, atol=1e-12)
    assert torch.equal(w == 0, w2 == 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 8), st.sampled_from([1e2, 1e4, 1e8]))
def test_huge_logits_stay_finite_in_float32(rows, cols, magnitude):
    g = torch.Generator().manual_seed(rows * 100 + cols)
    scores = (torch.randn(rows, cols, generator=g) * magnitude).float()
    mask = torch.rand(rows, cols, generator=g) > 0.5
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w).all()
    sums = w.sum(-1)
    assert torch.allclose(sums[mask.any(-1)], torch.ones(1))
