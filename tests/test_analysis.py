"""attention_course.analysis: each measurement on a case whose answer is known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from attention_course.analysis import (
    argmax_alignment,
    attention_entropy,
    dependency_matrix,
    factor_per_step,
    gradient_by_distance,
    graph_depth,
    input_sensitivity,
    layers_needed,
    loglog_slope,
    reach_by_layer,
    stack_weights,
    weight_on_offset,
)
from attention_course.attention import scaled_dot_product_attention
from attention_course.masks import causal_mask, local_mask
from tests.helpers import assert_raises_naming

F64 = torch.float64


def one_hot_rows(keys: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Integer key index per query (..., Lq) -> one-hot weights (..., Lq, Lk) in float64."""
    return torch.nn.functional.one_hot(keys, num_keys).to(F64)


# --- stack_weights ---------------------------------------------------------------------------


def test_stack_weights_puts_layers_first():
    layers = [{"self_attn": torch.full((2, 3, 4, 4), float(n)),
               "cross_attn": torch.full((2, 3, 4, 5), 10.0 + n)} for n in range(3)]
    cross = stack_weights(layers, "cross_attn")
    assert cross.shape == (3, 2, 3, 4, 5)  # (N, B, H, Lq, Lk)
    assert [cross[n].unique().item() for n in range(3)] == [10.0, 11.0, 12.0]
    assert stack_weights(layers, "self_attn").shape == (3, 2, 3, 4, 4)


@pytest.mark.parametrize(
    ("per_layer", "key", "error", "words"),
    [
        ({"self_attn": torch.ones(1, 1, 2, 2)}, "self_attn", TypeError, "per_layer"),
        ([], "self_attn", ValueError, "empty"),
        ([{"self_attn": torch.ones(1, 1, 2, 2)}], "cross_attn", ValueError, "'cross_attn'"),
        ([{"cross_attn": None}], "cross_attn", ValueError, "need_weights=True"),
        ([{"self_attn": torch.ones(1, 2, 2)}], "self_attn", ValueError, "4 dimensions"),
        ([{"self_attn": torch.ones(1, 1, 2, 2)}, {"self_attn": torch.ones(1, 1, 3, 3)}],
         "self_attn", ValueError, "per_layer[1]"),
        ([{"self_attn": torch.ones(1, 1, 2, 2)}], 0, TypeError, "key"),
    ],
)
def test_stack_weights_rejects(per_layer, key, error, words):
    with pytest.raises(error, match=None) as info:
        stack_weights(per_layer, key)
    assert words in str(info.value)


# --- head statistics -------------------------------------------------------------------------


def test_attention_entropy_known_values():
    weights = torch.stack([
        torch.full((5,), 0.2, dtype=F64),  # uniform over 5 keys: log 5
        one_hot_rows(torch.tensor(2), 5),  # one-hot: 0
        torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0], dtype=F64),  # two keys: log 2
        torch.zeros(5, dtype=F64),  # a fully masked query: 0, not NaN
    ])
    expected = torch.tensor([math.log(5), 0.0, math.log(2), 0.0], dtype=F64)
    assert torch.allclose(attention_entropy(weights), expected, atol=1e-12)
    assert attention_entropy(torch.rand(2, 3, 4, 6).softmax(-1)).shape == (2, 3, 4)


def test_attention_entropy_rejects_negative_and_integer_weights():
    with pytest.raises(ValueError, match="non-negative"):
        attention_entropy(torch.tensor([0.5, 0.7, -0.2]))
    with pytest.raises(TypeError, match="floating"):
        attention_entropy(torch.tensor([1, 0]))


def test_weight_on_offset_constructed_heads():
    B, L = 3, 6
    t = torch.arange(L)
    previous = one_hot_rows((t - 1) % L, L)  # head 0: key i - 1 (circular)
    ahead = one_hot_rows((t + 2) % L, L)  # head 1: key i + 2 (circular)
    uniform = torch.full((L, L), 1 / L, dtype=F64)  # head 2: no preference
    weights = torch.stack([previous, ahead, uniform]).expand(B, 3, L, L)  # (B, H, L, L)

    on_previous = weight_on_offset(weights, -1, wrap=True)  # (H,)
    on_ahead = weight_on_offset(weights, 2, wrap=True)
    assert torch.allclose(on_previous, torch.tensor([1.0, 0.0, 1 / L], dtype=F64))
    assert torch.allclose(on_ahead, torch.tensor([0.0, 1.0, 1 / L], dtype=F64))
    # Without wrapping, query 0 has no previous key and does not count: head 0 still scores 1,
    # while head 1's wrapped-around rows (queries 4 and 5) drop out of its mean for +2.
    assert torch.allclose(weight_on_offset(weights, -1), torch.tensor([1.0, 0.0, 1 / L],
                                                                     dtype=F64))
    # Leading dimensions (layers) are kept: (N, B, H, L, L) -> (N, H).
    stacked = torch.stack([weights, weights.flip(1)])  # layer 1 has the heads reversed
    per_layer = weight_on_offset(stacked, -1, wrap=True)
    assert per_layer.shape == (2, 3)
    assert torch.allclose(per_layer[1], on_previous.flip(0))


def test_weight_on_offset_without_wrap_averages_only_valid_queries():
    L = 4
    weights = torch.zeros(1, 1, L, L, dtype=F64)
    weights[0, 0, :, 0] = 1.0  # every query attends to key 0
    # Key i - 1 = 0 only for query 1; valid queries for offset -1 are 1, 2, 3: mean 1/3.
    assert torch.allclose(weight_on_offset(weights, -1), torch.tensor([1 / 3], dtype=F64))
    # With wrap, query 1 (key 0) is one of four queries: 1/4.
    assert torch.allclose(weight_on_offset(weights, -1, wrap=True),
                          torch.tensor([1 / 4], dtype=F64))


@pytest.mark.parametrize(
    ("weights", "offset", "error", "words"),
    [
        (torch.rand(2, 4, 4), 1, ValueError, "at least 4 dimensions"),
        (torch.rand(1, 2, 3, 4), 1, ValueError, "as many queries as keys"),
        (torch.rand(1, 2, 4, 4), 4, ValueError, "|offset| < 4"),
        (torch.rand(1, 2, 4, 4), 1.0, TypeError, "offset"),
    ],
)
def test_weight_on_offset_rejects(weights, offset, error, words):
    with pytest.raises(error) as info:
        weight_on_offset(weights, offset)
    assert words in str(info.value)


def test_argmax_alignment_counts_hits_under_a_mask():
    targets = torch.tensor([[0, 1, 2, 3], [3, 1, 2, 0]])  # (B, Lq): where each query looks
    weights = 0.1 + one_hot_rows(targets, 4)  # (B, Lq, Lk): peaks on the targets
    ideal = torch.arange(4)  # (Lq,): broadcast over the batch
    assert argmax_alignment(weights, ideal).item() == pytest.approx(6 / 8)  # 4 + 2 hits of 8
    assert argmax_alignment(weights, targets).item() == 1.0
    mask = torch.tensor([[True, True, False, False], [True, False, False, True]])
    # counted: example 0 queries 0, 1 (both hit), example 1 queries 0, 3 (neither hits)
    assert argmax_alignment(weights, ideal, mask).item() == pytest.approx(2 / 4)
    assert argmax_alignment(weights, ideal, mask).dtype == F64


@pytest.mark.parametrize(
    ("target", "mask", "error", "words"),
    [
        (torch.arange(3), None, ValueError, "broadcastable to (2, 4)"),
        (torch.arange(4).double(), None, TypeError, "integer"),
        (torch.tensor([0, 1, 2, 4]), None, ValueError, "[0, 3]"),
        (torch.arange(4), torch.ones(2, 4), TypeError, "torch.bool"),
        (torch.arange(4), torch.zeros(2, 4, dtype=torch.bool), ValueError, "no query"),
        (torch.arange(4), torch.ones(3, 4, dtype=torch.bool), ValueError, "mask has shape"),
    ],
)
def test_argmax_alignment_rejects(target, mask, error, words):
    with pytest.raises(error) as info:
        argmax_alignment(torch.rand(2, 4, 4), target, mask)
    assert words in str(info.value)


# --- sensitivity -----------------------------------------------------------------------------


def test_input_sensitivity_of_a_linear_map_is_the_norm_of_its_blocks():
    torch.manual_seed(0)
    B, L, n_in, n_out = 3, 5, 4, 6
    W = torch.randn(L * n_in, n_out, dtype=F64)  # y = flatten(x) @ W: the Jacobian is W

    def fn(x):
        return x.flatten(1) @ W  # (B, O)

    x = torch.randn(B, L, n_in, dtype=F64)
    expected = W.view(L, n_in, n_out).pow(2).sum(dim=(1, 2)).sqrt()  # (L,): ||block of x_t||
    got = input_sensitivity(fn, x)
    assert got.shape == (B, L)
    assert torch.allclose(got, expected.expand(B, L), atol=1e-12)
    assert x.grad is None  # the input is not touched


def test_input_sensitivity_matches_full_jacobians_of_an_rnn():
    torch.manual_seed(1)
    rnn = torch.nn.RNN(3, 5, batch_first=True, dtype=F64)
    x = torch.randn(4, 7, 3, dtype=F64)

    def last_state(h):
        return rnn(h)[0][:, -1]  # (B, H)

    per_example = torch.stack([  # (B, H, L, I): one full Jacobian per example
        torch.autograd.functional.jacobian(lambda h: last_state(h[None])[0], x[b])
        for b in range(len(x))])
    expected = per_example.pow(2).sum(dim=(1, 3)).sqrt()  # (B, L)
    assert torch.allclose(input_sensitivity(last_state, x), expected, atol=1e-12)


def test_input_sensitivity_rejects():
    with pytest.raises(TypeError, match="callable"):
        input_sensitivity("rnn", torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="3 dimensions"):
        input_sensitivity(lambda h: h, torch.ones(2, 3))
    with pytest.raises(ValueError, match="batch of 2"):
        input_sensitivity(lambda h: h.sum(0), torch.ones(2, 3, 4))


def decaying_sum(a: float):
    """y_t = sum_{j <= t} a^(t - j) x_j: a linear recurrence y_t = a y_{t-1} + x_t."""

    def fn(x):  # (B, L, E) -> (B, L, E)
        L = x.shape[1]
        t = torch.arange(L)
        powers = (a ** (t[:, None] - t[None, :]).clamp(min=0).double()) * (t[:, None] >= t)
        return powers.to(x.dtype) @ x  # (L, L) @ (B, L, E)

    return fn


def test_gradient_by_distance_of_a_geometric_recurrence():
    B, L, E = 4, 12, 3
    x = torch.randn(B, L, E, dtype=F64)
    g = gradient_by_distance(decaying_sum(0.6), x)  # d y_{L-1} / d x_i = 0.6^(L-1-i) * 1
    expected = 0.6 ** torch.arange(L, dtype=F64) * math.sqrt(E)  # by distance
    assert g.shape == (L,)
    assert torch.allclose(g, expected, rtol=1e-12)
    assert factor_per_step(g) == pytest.approx(0.6, rel=1e-12)


def test_gradient_by_distance_of_one_attention_layer_reaches_everything():
    torch.manual_seed(2)
    x = torch.randn(8, 16, 4, dtype=F64)
    g = gradient_by_distance(lambda h: scaled_dot_product_attention(h, h, h)[0], x)
    assert (g > 0).all()
    causal = gradient_by_distance(lambda h: scaled_dot_product_attention(h, h, h,
                                                                         is_causal=True)[0], x)
    assert (causal > 0).all()  # the last position sees every earlier one
    with pytest.raises(ValueError, match="like its input"):
        gradient_by_distance(lambda h: h[:, :3], x)


def test_dependency_matrix_of_causal_and_full_layers():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 4, dtype=F64)
    causal = dependency_matrix(
        lambda h: scaled_dot_product_attention(h, h, h, is_causal=True)[0], x)
    assert torch.equal(causal, causal_mask(5))
    assert dependency_matrix(lambda h: scaled_dot_product_attention(h, h, h)[0], x).all()
    assert torch.equal(dependency_matrix(lambda h: 2 * h, x), torch.eye(5, dtype=torch.bool))
    # Outputs may be shorter than inputs: (T, L).
    assert dependency_matrix(lambda h: h[:, :3] + h[:, -1:], x).shape == (3, 5)


def test_reach_and_layers_needed_under_local_masks():
    torch.manual_seed(5)
    n = 12
    x = torch.randn(n, 4, dtype=F64)
    for w in (1, 2, 3, 5):
        assert layers_needed(x, local_mask(n, w)) == math.ceil((n - 1) / w)
        reach = reach_by_layer(x, local_mask(n, w), num_layers=3)  # (3, n, n)
        for k in (1, 2, 3):
            assert torch.equal(reach[k - 1], local_mask(n, k * w))  # k layers: window k*w
    assert layers_needed(x, None) == 1
    assert reach_by_layer(x, None, num_layers=1).all()


def test_layers_needed_rejects_a_disconnected_mask():
    x = torch.randn(4, 2, dtype=F64)
    blocks = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2)).bool()  # {0, 1} and {2, 3}
    with pytest.raises(ValueError, match="does not connect"):
        layers_needed(x, blocks)
    with pytest.raises(ValueError, match=r"expected \(4, 4\)"):
        reach_by_layer(x, causal_mask(3), num_layers=1)
    with pytest.raises(ValueError, match="num_layers"):
        reach_by_layer(x, None, num_layers=0)


# --- factor_per_step -------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.3, 0.9, 1.0, 1.7])
def test_factor_per_step_recovers_a_geometric_factor(factor):
    values = 5.0 * factor ** torch.arange(30, dtype=F64)
    assert factor_per_step(values) == pytest.approx(factor, rel=1e-12)


def test_factor_per_step_skip_ignores_a_transient():
    values = 0.5 ** torch.arange(20, dtype=F64)
    values[:3] = torch.tensor([100.0, 1e-9, 7.0], dtype=F64)  # not geometric at all
    assert factor_per_step(values, skip=3) == pytest.approx(0.5, rel=1e-12)
    assert factor_per_step(values) != pytest.approx(0.5, rel=1e-2)


def test_factor_per_step_is_the_log10_fit_of_chapter_1():
    # Chapter 1 fitted log10 and returned 10 ** slope: the same factor up to rounding.
    torch.manual_seed(0)
    norms = torch.rand(50, dtype=F64) * 0.8 ** torch.arange(50, dtype=F64)
    dist = torch.arange(50, dtype=F64)[5:]
    logs = norms[5:].log10()
    slope = ((dist - dist.mean()) * (logs - logs.mean())).sum() / (dist - dist.mean()).pow(2).sum()
    assert factor_per_step(norms, skip=5) == pytest.approx(10 ** slope.item(), rel=1e-13)


@pytest.mark.parametrize(
    ("values", "skip", "error", "words"),
    [
        (torch.tensor([1.0, 0.5, 0.0, 0.1]), 0, ValueError, "values[2] = 0.0"),
        (torch.tensor([1.0, -0.5, 0.2]), 0, ValueError, "values[1] = -0.5"),
        (torch.tensor([1.0, float("nan"), 0.2]), 0, ValueError, "positive and finite"),
        (torch.tensor([1.0, 0.5, 0.2]), 2, ValueError, "at least two"),
        (torch.tensor([[1.0, 0.5]]), 0, ValueError, "1 dimensions"),
        (torch.tensor([4, 2, 1]), 0, TypeError, "floating"),
        (torch.tensor([1.0, 0.5, 0.2]), -1, ValueError, "skip"),
    ],
)
def test_factor_per_step_rejects(values, skip, error, words):
    with pytest.raises(error) as info:
        factor_per_step(values, skip=skip)
    assert words in str(info.value)


def test_factor_per_step_ignores_bad_values_that_are_skipped():
    values = torch.tensor([0.0, 8.0, 4.0, 2.0], dtype=F64)
    assert factor_per_step(values, skip=1) == pytest.approx(0.5)


# --- log_linear_r2 ---------------------------------------------------------------------------

from attention_course.analysis import log_linear_r2  # noqa: E402 - appended with its tests


@pytest.mark.parametrize("factor", [0.3, 0.9, 1.0, 1.7])
def test_log_linear_r2_is_one_for_an_exact_geometric_trend(factor):
    values = 5.0 * factor ** torch.arange(30, dtype=F64)
    assert log_linear_r2(values) == pytest.approx(1.0, abs=1e-12)


def test_log_linear_r2_falls_when_the_trend_bends():
    d = torch.arange(40, dtype=F64)
    levels_off = 0.5 ** d + 1e-3  # geometric, then flat: not a straight line on a log axis
    assert log_linear_r2(levels_off) < 0.9
    assert log_linear_r2(levels_off[:8]) > 0.99  # the geometric part alone is straight
    noisy = 0.8 ** d * torch.exp(torch.randn(40, generator=torch.Generator().manual_seed(0),
                                             dtype=F64))
    assert 0.5 < log_linear_r2(noisy) < 0.99  # the trend is there, the points scatter


def test_log_linear_r2_is_pearsons_r_squared_and_checks_like_factor_per_step():
    values = torch.tensor([4.0, 1.0, 3.0, 0.5, 0.7, 0.1], dtype=F64)
    d, y = torch.arange(6.0, dtype=F64), values.log()
    r = torch.corrcoef(torch.stack([d[1:], y[1:]]))[0, 1].item()  # Pearson's r
    assert log_linear_r2(values, skip=1) == pytest.approx(r ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        log_linear_r2(torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="skip"):
        log_linear_r2(torch.tensor([1.0, 2.0]), skip=1)
    assert log_linear_r2(torch.full((5,), 3.0)) == 1.0  # a flat line


# --- head statistics for attention patterns (Chapter 6) --------------------------------------

from attention_course.analysis import (  # noqa: E402 - appended with their tests
    induction_score,
    mean_attention_distance,
    previous_token_score,
    same_class_score,
    weight_on_partner,
)
from attention_course.data import bracket_sequences, repeated_sequences  # noqa: E402


def causal_uniform(L: int) -> torch.Tensor:
    """``(L, L)``: each query spreads its weight evenly over keys ``0 … i``."""
    w = torch.ones(L, L, dtype=F64).tril()
    return w / w.sum(-1, keepdim=True)


def constructed_heads(L: int) -> torch.Tensor:
    """``(1, 4, L, L)``: previous token (query 0 on itself), itself, key 0, uniform causal."""
    t = torch.arange(L)
    previous = one_hot_rows((t - 1).clamp_min(0), L)
    return torch.stack([previous, torch.eye(L, dtype=F64), one_hot_rows(torch.zeros_like(t), L),
                        causal_uniform(L)])[None]


def test_mean_attention_distance_of_constructed_heads():
    L = 9
    weights = constructed_heads(L).expand(3, 4, L, L)  # (B, H, L, L)
    expected = torch.tensor([(L - 1) / L, 0.0, (L - 1) / 2, (L - 1) / 4], dtype=F64)
    torch.testing.assert_close(mean_attention_distance(weights), expected)
    stacked = torch.stack([weights, weights.flip(1)])  # (N, B, H, L, L)
    torch.testing.assert_close(mean_attention_distance(stacked)[1], expected.flip(0))


def test_previous_token_score_of_constructed_heads():
    L = 6
    weights = constructed_heads(L)
    torch.testing.assert_close(previous_token_score(weights),
                               torch.tensor([1.0, 0.0, 1 / 5, sum(1 / i for i in range(2, 7)) / 5],
                                            dtype=F64))
    two_back = one_hot_rows((torch.arange(L) - 2).clamp_min(0), L)[None, None]
    assert previous_token_score(two_back, k=2).item() == pytest.approx(1.0)
    # k=1: only query 1 (clamped onto key 0 = its previous token) of the five counts
    assert previous_token_score(two_back, k=1).item() == pytest.approx(1 / 5)


def test_induction_score_of_constructed_heads():
    tokens = torch.tensor([[1, 5, 6, 7, 5, 6, 7]])  # BOS a b c a b c
    L = 7
    target = torch.tensor([0, 0, 0, 0, 2, 3, 4])  # after the earlier copy; others on BOS
    induction = one_hot_rows(target, L)
    previous = one_hot_rows((torch.arange(L) - 1).clamp_min(0), L)
    weights = torch.stack([induction, previous, causal_uniform(L)])[None]  # (1, 3, L, L)
    expected = torch.tensor([1.0, 0.0, (1 / 5 + 1 / 6 + 1 / 7) / 3], dtype=F64)
    torch.testing.assert_close(induction_score(weights, tokens), expected)


def test_induction_score_sums_over_every_earlier_occurrence():
    tokens = torch.tensor([[4, 8, 4, 9, 4]])  # the last 4 occurred at 0 and 2: keys 1 and 3
    weights = torch.zeros(1, 1, 5, 5, dtype=F64)
    weights[0, 0, :, 0] = 1.0
    weights[0, 0, 4] = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0], dtype=F64)
    weights[0, 0, 2] = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=F64)  # 4 at 2: key 1
    assert induction_score(weights, tokens).item() == pytest.approx(1.0)  # queries 2 and 4


def test_induction_score_is_one_for_a_head_that_follows_the_ground_truth_copy():
    b = repeated_sequences(16, (3, 8), 40, generator=torch.Generator().manual_seed(0),
                           distinct=True)
    T = b.tokens.shape[1]
    target = torch.where(b.earlier >= 0, b.earlier + 1, 0)  # (B, T): after the copy, or BOS
    weights = one_hot_rows(target, T)[:, None]  # (B, 1, T, T)
    assert induction_score(weights, b.tokens).item() == pytest.approx(1.0)


def test_weight_on_partner_of_constructed_heads():
    partner = torch.tensor([[-1, -1, 1, -1, 3, 0]])  # (B, T): three queries have a partner
    L = 6
    on_partner = one_hot_rows(partner.clamp_min(0)[0], L)
    weights = torch.stack([on_partner, causal_uniform(L)])[None]  # (1, 2, L, L)
    expected = torch.tensor([1.0, (1 / 3 + 1 / 5 + 1 / 6) / 3], dtype=F64)
    torch.testing.assert_close(weight_on_partner(weights, partner), expected)


def test_weight_on_partner_with_bracket_ground_truth():
    b = bracket_sequences(8, 16, 2, generator=torch.Generator().manual_seed(0))
    T = b.tokens.shape[1]
    weights = one_hot_rows(b.earlier_partner.clamp_min(0), T)[:, None]  # closing -> opening
    weights = torch.cat([weights, weights.roll(1, dims=-1)], dim=1)  # head 1: one key off
    torch.testing.assert_close(weight_on_partner(weights, b.earlier_partner),
                               torch.tensor([1.0, 0.0], dtype=F64))


def test_same_class_score_and_chance():
    classes = torch.tensor([[-1, 0, 0, 1, 1, 0]])
    L = 6
    same = torch.zeros(L, L, dtype=F64)
    same[:, 0] = 1.0  # queries without an earlier token of their class: on BOS
    same[2] = one_hot_rows(torch.tensor(1), L)
    same[4] = one_hot_rows(torch.tensor(3), L)
    same[5] = torch.tensor([0, 0.5, 0.5, 0, 0, 0], dtype=F64)
    previous = one_hot_rows((torch.arange(L) - 1).clamp_min(0), L)
    weights = torch.stack([same, torch.eye(L, dtype=F64), previous, causal_uniform(L)])[None]
    score, chance = same_class_score(weights, classes)  # counted queries: 2, 4, 5
    uniform = (1 / 3 + 1 / 5 + 2 / 6) / 3
    torch.testing.assert_close(score, torch.tensor([1.0, 0.0, 2 / 3, uniform], dtype=F64))
    assert chance.item() == pytest.approx(uniform)  # chance is the uniform head's score
    _, chance_full = same_class_score(weights, classes, causal=False)  # queries 1 ... 5
    assert chance_full.item() == pytest.approx((2 + 2 + 1 + 1 + 2) / 30)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda w, x: mean_attention_distance(w[0]), ValueError, ["weights", "at least 4"]),
        (lambda w, x: mean_attention_distance(w[..., :3]), ValueError, ["as many queries"]),
        (lambda w, x: mean_attention_distance(-w), ValueError, ["non-negative"]),
        (lambda w, x: previous_token_score(w, k=0), ValueError, ["k must be >= 1"]),
        (lambda w, x: previous_token_score(w, k=5), ValueError, ["k=5", "1 <= k < 5"]),
        (lambda w, x: induction_score(w, x[:, :4]), ValueError, ["tokens", "(B, T) = (2, 5)"]),
        (lambda w, x: induction_score(w, x.double()), TypeError, ["tokens", "integer"]),
        (lambda w, x: induction_score(w, torch.arange(10).view(2, 5)), ValueError,
         ["occurs twice"]),
        (lambda w, x: weight_on_partner(w, torch.full((2, 5), 5)), ValueError,
         ["partner", "[0, 4]"]),
        (lambda w, x: weight_on_partner(w, torch.full((2, 5), -1)), ValueError,
         ["partner", "-1 everywhere"]),
        (lambda w, x: weight_on_partner(w, torch.full((5, 2), 0)), ValueError,
         ["partner", "(2, 5)"]),
        (lambda w, x: same_class_score(w, torch.full((2, 5), -2)), ValueError,
         ["classes", ">= 0, or -1"]),
        (lambda w, x: same_class_score(w, torch.arange(10).view(2, 5)), ValueError,
         ["classes", "another visible token"]),
        (lambda w, x: same_class_score(w, x, causal=1), TypeError, ["causal"]),
    ],
)
def test_pattern_statistics_reject(call, error, words):
    weights = torch.rand(2, 3, 5, 5).softmax(-1)  # (B, H, T, T)
    tokens = torch.tensor([[1, 2, 1, 2, 3], [4, 4, 5, 5, 4]])
    with pytest.raises(error) as info:
        call(weights, tokens)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_parameter_gradient_norms_per_module():
    from attention_course.analysis import parameter_gradient_norms

    a, b = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1, bias=False)
    a.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5; b has no gradient: 0
    assert parameter_gradient_norms([a, b]).tolist() == [5.0, 0.0]
    with pytest.raises(TypeError, match="modules"):
        parameter_gradient_norms([])


# --- loglog_slope and graph_depth (Chapter 7) ----------------------------------------------


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0, 3.0])
def test_loglog_slope_recovers_the_exponent_of_a_power_law(power):
    x = torch.tensor([128.0, 256.0, 1024.0, 4096.0])
    assert loglog_slope(x, 3.0 * x ** power) == pytest.approx(power, abs=1e-6)
    assert loglog_slope(x.tolist(), (7 * x ** power).tolist()) == pytest.approx(power, abs=1e-6)


def test_loglog_slope_fits_the_best_line_through_noise():
    x = torch.tensor([1.0, 2.0, 4.0, 8.0])
    y = x ** 2 * torch.tensor([1.0, 1.1, 0.9, 1.0])  # a noisy quadratic
    assert 1.8 < loglog_slope(x, y) < 2.2


@pytest.mark.parametrize("x, y, words", [
    ([1.0], [1.0], ["x", "at least two"]),
    ([1.0, 2.0], [1.0, 0.0], ["y", "positive"]),
    ([1.0, -2.0], [1.0, 2.0], ["x", "positive"]),
    ([1.0, 2.0, 3.0], [1.0, 2.0], ["same length"]),
    ([2.0, 2.0], [1.0, 2.0], ["x", "all equal"]),
])
def test_loglog_slope_rejects_bad_input(x, y, words):
    assert_raises_naming(lambda: loglog_slope(x, y), ValueError, words)


def test_graph_depth_counts_a_chain_of_operations():
    x = torch.randn(3, requires_grad=True)
    y = x
    for _ in range(5):
        y = (y * 2).sin()  # two operations per round
    assert graph_depth(y, x) == 10
    assert graph_depth(x.exp() + (x * 2).sin(), x) == 3  # the longer branch counts


def test_graph_depth_grows_with_length_for_a_recurrence_but_not_for_attention():
    cell = torch.nn.RNNCell(4, 4)
    depths = {}
    for n in (4, 8, 16):
        x = torch.randn(1, n, 4, requires_grad=True)
        h = torch.zeros(1, 4)
        for t in range(n):
            h = cell(x[:, t], h)
        attended, _ = scaled_dot_product_attention(x, x, x)
        depths[n] = (graph_depth(h, x), graph_depth(attended, x))
    steps = [depths[n][0] for n in (4, 8, 16)]
    assert steps[1] - steps[0] == (steps[2] - steps[1]) / 2 > 0  # linear in n
    assert len({depths[n][1] for n in depths}) == 1  # constant


def test_graph_depth_rejects_bad_input():
    x = torch.randn(3, requires_grad=True)
    assert_raises_naming(lambda: graph_depth(x * 2, x * 2), ValueError, ["input", "leaf"])
    assert_raises_naming(lambda: graph_depth(torch.randn(3), x), ValueError,
                         ["output", "no autograd graph"])
    other = torch.randn(3, requires_grad=True)
    assert_raises_naming(lambda: graph_depth(other * 2, x), ValueError, ["does not depend"])
    assert_raises_naming(lambda: graph_depth(x * 2, [1.0]), TypeError, ["input"])
