"""MultiHeadAttention: float64 equivalence with torch.nn.MultiheadAttention (outputs, averaged and
per-head weights, gradients), fast path = reference path, masks, and bad input."""

import pytest
import torch
from torch import nn

from attention_course.masks import causal_mask, padding_mask, to_torch_mask
from attention_course.multihead import (
    MultiHeadAttention,
    check_head_mask,
    merge_heads,
    split_heads,
)
from tests.helpers import assert_raises_naming, f64, rand


def make_pair(D=8, H=2, kdim=None, vdim=None, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(D, H, batch_first=True, kdim=kdim, vdim=vdim,
                                   bias=bias, dtype=f64)
    with torch.no_grad():  # torch initialises biases to 0; make them count
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return MultiHeadAttention.from_torch(theirs), theirs


def assert_close(ours, theirs, atol=1e-12):
    diff = (ours - theirs).abs().max().item()
    assert diff <= atol, f"max |ours - torch| = {diff:.3e}"


CASES = [  # (B, Lq, Lk, D, H, kdim, vdim)
    (1, 1, 1, 4, 1, None, None),
    (1, 7, 7, 8, 2, None, None),  # batch size 1, odd length
    (3, 5, 5, 12, 3, None, None),
    (2, 3, 9, 8, 4, None, None),  # cross-attention, Lq < Lk
    (2, 6, 4, 8, 2, 5, 3),  # cross-attention with other key/value sizes
]


@pytest.mark.parametrize("B, Lq, Lk, D, H, kdim, vdim", CASES)
@pytest.mark.parametrize("masking", ["none", "key_padding", "bool_attn", "causal", "both"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_multihead_attention(B, Lq, Lk, D, H, kdim, vdim, masking, bias):
    ours, theirs = make_pair(D, H, kdim, vdim, bias)
    query = rand(B, Lq, D, seed=1).requires_grad_()
    key = rand(B, Lk, kdim or D, seed=2).requires_grad_()
    value = rand(B, Lk, vdim or D, seed=3).requires_grad_()
    lengths = torch.randint(1, Lk + 1, (B,), generator=torch.Generator().manual_seed(4))
    lengths[0] = Lk
    key_pad = padding_mask(lengths, Lk)  # (B, Lk), True = real
    attn = torch.rand(Lq, Lk, generator=torch.Generator().manual_seed(5)) > 0.3  # (Lq, Lk)
    attn[:, -1] = True
    course_mask, torch_kwargs, is_causal = None, {}, False
    if masking in ("key_padding", "both"):
        course_mask = key_pad[:, None, :]  # (B, 1, Lk)
        torch_kwargs["key_padding_mask"] = to_torch_mask(key_pad)  # polarity flipped
    if masking == "bool_attn":
        course_mask = attn
        torch_kwargs["attn_mask"] = to_torch_mask(attn)
    if masking in ("causal", "both"):
        causal = causal_mask(Lq, Lk)  # bottom-right aligned: torch gets it explicitly
        is_causal = True
        torch_kwargs["attn_mask"] = to_torch_mask(causal)

    out_t, w_avg = theirs(query, key, value, average_attn_weights=True, **torch_kwargs)
    _, w_heads = theirs(query, key, value, average_attn_weights=False, **torch_kwargs)
    out_ref, w_ours = ours(query, key, value, course_mask, is_causal=is_causal,
                           need_weights=True)
    out_fast, none = ours(query, key, value, course_mask, is_causal=is_causal)
    assert none is None and w_ours.shape == (B, H, Lq, Lk)

    live = torch.isfinite(out_t).all(-1)  # torch gives NaN for queries with no allowed key
    assert_close(out_ref[live], out_t[live])
    assert_close(out_fast, out_ref)
    assert_close(w_ours.mean(1)[live], w_avg[live])
    assert_close(w_ours.transpose(1, 2)[live], w_heads.transpose(1, 2)[live])

    if not live.all():
        return  # torch's NaN rows poison its gradients; only the outputs can be compared
    # Gradients with respect to every input and every parameter.
    grad_out = rand(B, Lq, D, seed=6)
    g_t = torch.autograd.grad(out_t, [query, key, value, *theirs.parameters()], grad_out)
    for path in (out_ref, out_fast):
        g_o = torch.autograd.grad(path, [query, key, value, *ours.parameters()], grad_out,
                                  retain_graph=True)
        for mine, reference in zip(g_o[:3], g_t[:3], strict=True):
            assert_close(mine, reference)
        assert_close(torch.cat([p.flatten() for p in g_o[3:]]),
                     torch.cat([p.flatten() for p in _torch_param_grads_in_our_order(
                         theirs, g_t[3:])]))


def _torch_param_grads_in_our_order(m, grads):
    """Torch's parameter gradients rearranged as ours: W_Q, W_K, W_V (weight, bias), W_O."""
    named = dict(zip([n for n, _ in m.named_parameters()], grads, strict=True))
    if "in_proj_weight" in named:
        w = named["in_proj_weight"].chunk(3)
    else:
        w = [named[f"{x}_proj_weight"] for x in "qkv"]
    b = named["in_proj_bias"].chunk(3) if "in_proj_bias" in named else [None] * 3
    out = []
    for wi, bi in zip(w, b, strict=True):
        out += [wi] + ([bi] if bi is not None else [])
    out.append(named["out_proj.weight"])
    if "out_proj.bias" in named:
        out.append(named["out_proj.bias"])
    return out


def test_split_and_merge_heads_are_inverse_and_slice_features():
    x = rand(2, 5, 12)
    heads = split_heads(x, 3)  # (B, H, L, Dh)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[:, 1], x[..., 4:8])  # head 1 owns features 4..7
    assert torch.equal(merge_heads(heads), x)


def test_per_head_output_is_attention_on_that_heads_slice():
    from attention_course.attention import scaled_dot_product_attention

    ours, _ = make_pair(D=8, H=2)
    x = rand(1, 4, 8)
    out, _ = ours(x, x, x)
    q, k, v = ours.W_Q(x), ours.W_K(x), ours.W_V(x)
    heads = [scaled_dot_product_attention(q[..., s], k[..., s], v[..., s])[0]
             for s in (slice(0, 4), slice(4, 8))]
    assert_close(out, ours.W_O(torch.cat(heads, -1)))


def test_fully_masked_query_gives_bias_only_and_no_nan():
    ours, _ = make_pair(D=8, H=2)
    x = rand(1, 3, 8)
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    mask[0, 1] = False  # query 1 sees nothing
    for need_weights in (False, True):
        out, _ = ours(x, x, x, mask, need_weights=need_weights)
        assert torch.isfinite(out).all()
        assert_close(out[0, 1], ours.W_O.bias)


def test_dropout_only_in_training():
    ours, _ = make_pair(D=8, H=2)
    ours.dropout = 0.5
    x = rand(2, 6, 8)
    ours.eval()
    assert torch.equal(ours(x, x, x)[0], ours(x, x, x)[0])
    ours.train()
    torch.manual_seed(0)
    _, w = ours(x, x, x, need_weights=True)
    assert (w == 0).any()


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda m: m(rand(2, 3, 6), rand(2, 3, 8), rand(2, 3, 8)), ValueError,
         ["query", "(B, L, 8)", "(2, 3, 6)"]),
        (lambda m: m(rand(2, 3, 8), rand(2, 4, 8), rand(2, 5, 8)), ValueError, ["share"]),
        (lambda m: m(rand(3, 8), rand(3, 8), rand(3, 8)), ValueError, ["query", "3 dimensions"]),
        (lambda m: m(rand(2, 3, 8), rand(2, 4, 8), rand(2, 4, 8),
                     torch.ones(2, 4, dtype=torch.bool)), ValueError, ["mask", "(2, 4)"]),
        (lambda m: m(rand(2, 3, 8), rand(2, 4, 8), rand(2, 4, 8), torch.ones(3, 4)),
         TypeError, ["mask", "boolean"]),
        (lambda m: MultiHeadAttention(10, 3), ValueError, ["d_model=10", "num_heads=3"]),
        (lambda m: MultiHeadAttention.from_torch(nn.Linear(2, 2)), TypeError, ["Linear"]),
        (lambda m: MultiHeadAttention.from_torch(nn.MultiheadAttention(4, 2, add_bias_kv=True)),
         ValueError, ["add_bias_kv"]),
    ],
)
def test_bad_input(call, error, words):
    ours, _ = make_pair(D=8, H=2)
    assert_raises_naming(lambda: call(ours), error, words)


# ---------------------------------------------------------------- robustness: hostile input

X = rand(2, 3, 8, seed=1)


def per_head(m):
    return m.project(X, X, X)  # (B, H, L, Dh) x 3


ROBUSTNESS = [
    # was: "Tensor on device cpu is not on the expected device meta!" from inside torch
    pytest.param(lambda m: m(X, X, X, torch.ones(2, 3, 3, dtype=torch.bool, device="meta")),
                 ValueError, ["mask", "meta"], id="mask-other-device"),
    pytest.param(lambda m: m(X, X[:1], X[:1]), ValueError,
                 ["key", "batch size 1", "query", "2"], id="batch-mismatch"),
    pytest.param(lambda m: m(X, X, X.float()), TypeError, ["value", "float32", "float64"],
                 id="value-dtype-vs-module"),
    pytest.param(lambda m: m(X, X, X.to("meta")), TypeError, ["value", "meta"],
                 id="value-device-vs-module"),
    pytest.param(lambda m: m(X, X, X, is_causal=None), TypeError, ["is_causal", "bool"],
                 id="is_causal-None"),
    pytest.param(lambda m: m(X, X, X, need_weights="yes"), TypeError, ["need_weights", "bool"],
                 id="need_weights-str"),
    pytest.param(lambda m: m(X, X, X, torch.ones(1, 2, 2, 3, 3, dtype=torch.bool)), ValueError,
                 ["mask", "2, 3 or 4 dimensions"], id="mask-5d"),
    pytest.param(lambda m: m(X, X, X, torch.ones(2, 3, 3, 3, dtype=torch.bool)), ValueError,
                 ["mask", "(2, 3, 3, 3)"], id="mask-wrong-heads"),
    # was: "mat1 and mat2 shapes cannot be multiplied (6x6 and 8x8)"
    pytest.param(lambda m: m.project(rand(2, 3, 6), X, X), ValueError,
                 ["query", "(B, L, 8)", "(2, 3, 6)"], id="project-query-size"),
    pytest.param(lambda m: m.project(X.float(), X, X), TypeError, ["query", "float32"],
                 id="project-query-dtype"),
    pytest.param(lambda m: m.project(X, X.tolist(), X), TypeError,
                 ["key", "torch.Tensor", "list"], id="project-key-list"),
    # was: silent -- one query head broadcast against two key heads
    pytest.param(lambda m: m.attend(per_head(m)[0][:, :1], *per_head(m)[1:]), ValueError,
                 ["q", "H=2", "(2, 1, 3, 4)"], id="attend-wrong-heads"),
    pytest.param(lambda m: m.attend(X, X, X), ValueError, ["q", "4 dimensions"],
                 id="attend-3d"),
    # only checked=True (a caller that ran check_inputs) skips the checks
    pytest.param(lambda m: m.attend(per_head(m)[0][:, :1], *per_head(m)[1:], checked="yes"),
                 ValueError, ["q", "H=2"], id="attend-checked-not-True"),
    pytest.param(lambda m: m.project(X[0], X, X, checked=1), ValueError,
                 ["query", "3 dimensions"], id="project-checked-not-True"),
    # was: silent -- "False" read as True
    pytest.param(lambda m: m.attend(*per_head(m), is_causal="False"), TypeError,
                 ["is_causal", "bool"], id="attend-is_causal-str"),
    pytest.param(lambda m: m.attend(*per_head(m), need_weights=1), TypeError,
                 ["need_weights", "bool"], id="attend-need_weights-int"),
    # was: "The size of tensor a (3) must match the size of tensor b (2)"
    pytest.param(lambda m: m.attend(*per_head(m), torch.ones(2, 3, dtype=torch.bool)),
                 ValueError, ["mask", "(2, 3)"], id="attend-(B,Lk)-mask"),
    # was: silent -- None
    pytest.param(lambda m: check_head_mask("m", None, True, 2, 3, 3), TypeError, ["B", "bool"],
                 id="check_head_mask-bool-size"),
    pytest.param(lambda m: MultiHeadAttention(8, 2, bias="False"), TypeError, ["bias", "bool"],
                 id="init-bias-str"),
    pytest.param(lambda m: MultiHeadAttention(8, 2, dropout=float("nan")), ValueError,
                 ["dropout", "finite"], id="init-dropout-nan"),
    pytest.param(lambda m: MultiHeadAttention(8, 2, kdim=0), ValueError, ["kdim", ">= 1"],
                 id="init-kdim-0"),
    pytest.param(lambda m: MultiHeadAttention(8, 2, attention_fn="reference"), TypeError,
                 ["attention_fn", "str"], id="init-attention_fn-str"),
    pytest.param(lambda m: MultiHeadAttention.from_torch(None), TypeError, ["m", "NoneType"],
                 id="from_torch-None"),
    pytest.param(lambda m: split_heads(X, True), TypeError, ["num_heads", "bool"],
                 id="split_heads-bool"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    ours, _ = make_pair(D=8, H=2)
    assert_raises_naming(lambda: call(ours), error, words)


def test_non_contiguous_inputs_give_the_same_result():
    ours, _ = make_pair(D=8, H=2)
    mask = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(0)) > 0.3
    q = X.transpose(0, 1).contiguous().transpose(0, 1)
    k = X.transpose(1, 2).contiguous().transpose(1, 2)
    odd_mask = mask.transpose(1, 2).contiguous().transpose(1, 2)
    assert not (q.is_contiguous() or k.is_contiguous() or odd_mask.is_contiguous())
    for need_weights in (False, True):
        out, _ = ours(q, k, X, odd_mask, is_causal=True, need_weights=need_weights)
        ref, _ = ours(X, X, X, mask, is_causal=True, need_weights=need_weights)
        assert_close(out, ref)
    assert torch.equal(split_heads(q, 2), split_heads(X, 2))


@pytest.mark.parametrize("B, L", [(0, 3), (2, 0)])
def test_empty_inputs_give_the_same_with_and_without_is_causal(B, L):
    ours, _ = make_pair(D=8, H=2)
    x = rand(B, L, 8)
    plain, _ = ours(x, x, x)
    for need_weights in (False, True):
        causal, w = ours(x, x, x, is_causal=True, need_weights=need_weights)
        assert causal.shape == plain.shape == (B, L, 8)
        assert torch.equal(causal, plain)
    assert w.shape == (B, 2, L, L)
