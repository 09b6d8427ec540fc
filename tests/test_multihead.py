"""MultiHeadAttention: float64 equivalence with torch.nn.MultiheadAttention (outputs, averaged and
per-head weights, gradients), fast path = reference path, masks, and bad input; grouped-query and
multi-query attention against torch's ``enable_gqa=True`` and against multi-head attention with
repeated key/value weights; the KV-cache size."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attention_course.kernels import EXACT_KERNELS
from attention_course.masks import causal_mask, padding_mask, to_torch_mask
from attention_course.multihead import (
    MultiHeadAttention,
    check_head_mask,
    expand_kv_heads,
    kv_cache_bytes,
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


# ---------------------------------------------------------------- grouped-query attention (ch. 8)


def make_gqa(D=12, H=6, Hkv=2, kdim=None, vdim=None, seed=0):
    """A float64 GQA module with non-zero biases."""
    torch.manual_seed(seed)
    m = MultiHeadAttention(D, H, kdim=kdim, vdim=vdim, num_kv_heads=Hkv).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def gqa_masks(B, H, Lq, Lk, masking):
    """``(course mask or None, is_causal, torch's boolean attn_mask or None)``; torch's
    ``is_causal`` is top-left aligned, so the bottom-right causal mask is given explicitly."""
    given = torch.rand(B, H, Lq, Lk, generator=torch.Generator().manual_seed(7)) > 0.3
    given[..., -1] = True  # every query keeps a key
    course = given if masking in ("mask", "both") else None
    is_causal = masking in ("causal", "both")
    theirs = course
    if is_causal:
        causal = causal_mask(Lq, Lk)  # (Lq, Lk), bottom-right
        theirs = causal if theirs is None else theirs & causal
    return course, is_causal, theirs


GQA_HEADS = [(6, 2), (6, 3), (4, 2), (4, 1), (6, 1)]  # (H, Hkv); Hkv = 1 is multi-query
LENGTHS = [(5, 5), (3, 7), (6, 4)]  # (Lq, Lk): self, Lq < Lk, Lq > Lk


@pytest.mark.parametrize("H, Hkv", GQA_HEADS)
@pytest.mark.parametrize("Lq, Lk", LENGTHS)
@pytest.mark.parametrize("masking", ["none", "causal", "mask", "both"])
def test_gqa_attend_matches_torch_sdpa_enable_gqa(H, Hkv, Lq, Lk, masking):
    B, D = 2, 2 * H
    m = make_gqa(D, H, Hkv, kdim=5, vdim=3)
    query, key, value = rand(B, Lq, D, seed=1), rand(B, Lk, 5, seed=2), rand(B, Lk, 3, seed=3)
    q, k, v = m.project(query, key, value)
    assert q.shape == (B, H, Lq, 2) and k.shape == v.shape == (B, Hkv, Lk, 2)  # small k, v
    course, is_causal, attn_mask = gqa_masks(B, H, Lq, Lk, masking)
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           enable_gqa=True)  # (B, H, Lq, Dh)
    live = torch.isfinite(heads).all(-1).all(1)  # (B, Lq): torch gives NaN with no key
    assert live.any()
    expected = m.W_O(merge_heads(heads))  # (B, Lq, D)
    for need_weights in (False, True):
        out, w = m.attend(q, k, v, course, is_causal=is_causal, need_weights=need_weights)
        assert_close(out[live], expected[live])
        whole, _ = m(query, key, value, course, is_causal=is_causal, need_weights=need_weights)
        assert_close(whole, out, atol=0)
    assert w.shape == (B, H, Lq, Lk)  # one pattern per query head


def repeated_mha(gqa):
    """The multi-head module that GQA is: W_K, W_V rows of kv head j copied to query heads
    j*r … (j+1)*r - 1; W_Q and W_O shared."""
    H, Hkv, Dh = gqa.num_heads, gqa.num_kv_heads, gqa.head_dim
    mha = MultiHeadAttention(gqa.d_model, H, kdim=gqa.kdim, vdim=gqa.vdim).double().eval()
    with torch.no_grad():
        for name in ("W_Q", "W_O"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("W_K", "W_V"):
            small, big = getattr(gqa, name), getattr(mha, name)
            w = small.weight.view(Hkv, Dh, -1).repeat_interleave(H // Hkv, dim=0)  # (H, Dh, in)
            big.weight.copy_(w.reshape(H * Dh, -1))
            big.bias.copy_(small.bias.view(Hkv, Dh).repeat_interleave(H // Hkv, 0).flatten())
    return mha


@pytest.mark.parametrize("H, Hkv", GQA_HEADS)
@pytest.mark.parametrize("masking", ["none", "causal", "both"])
def test_gqa_equals_mha_with_key_value_weights_repeated_per_group(H, Hkv, masking):
    B, D, Lq, Lk = 2, 2 * H, 4, 6
    gqa = make_gqa(D, H, Hkv, kdim=5, vdim=3)
    mha = repeated_mha(gqa)
    assert sum(p.numel() for p in gqa.parameters()) < sum(p.numel() for p in mha.parameters())
    query = rand(B, Lq, D, seed=1).requires_grad_()
    key, value = rand(B, Lk, 5, seed=2).requires_grad_(), rand(B, Lk, 3, seed=3).requires_grad_()
    course, is_causal, _ = gqa_masks(B, H, Lq, Lk, masking)
    out, w = gqa(query, key, value, course, is_causal=is_causal, need_weights=True)
    out_mha, w_mha = mha(query, key, value, course, is_causal=is_causal, need_weights=True)
    assert_close(out, out_mha)
    assert_close(w, w_mha)  # (B, H, Lq, Lk): the same pattern per query head
    grads = torch.autograd.grad(out.sum(), (query, key, value))
    grads_mha = torch.autograd.grad(out_mha.sum(), (query, key, value))
    for mine, theirs in zip(grads, grads_mha, strict=True):
        assert_close(mine, theirs)


def test_gqa_head_layout_is_grouped_not_tiled():
    """Query heads 0, 1 share kv head 0 (repeat_interleave); tiling (``repeat``: heads 0, 2
    share) is a different model, and the tests above would see it."""
    gqa = make_gqa(8, 4, 2)
    x = rand(2, 5, 8, seed=1)
    q, k, v = gqa.project(x, x, x)
    expanded = expand_kv_heads(k, 4)  # (B, H, L, Dh)
    for h in range(4):
        assert torch.equal(expanded[:, h], k[:, h // 2])
    tiled = gqa.W_O(merge_heads(F.scaled_dot_product_attention(q, k.repeat(1, 2, 1, 1),
                                                               v.repeat(1, 2, 1, 1))))
    out, _ = gqa(x, x, x)
    assert (out - tiled).abs().max() > 1e-3
    assert expand_kv_heads(k, 2) is k  # nothing to expand


@pytest.mark.parametrize("H, Hkv", GQA_HEADS)
def test_gqa_kernels_reference_and_fused_give_the_same_numbers(H, Hkv):
    B, D, Lq, Lk = 2, 2 * H, 5, 7
    x, memory = rand(B, Lq, D, seed=1), rand(B, Lk, D, seed=2)
    pad = padding_mask(torch.tensor([Lk, 3]), Lk)[:, None, :]  # (B, 1, Lk)
    outputs = {}
    for name, kernel in EXACT_KERNELS.items():
        m = make_gqa(D, H, Hkv)
        m.attention_fn = kernel
        for is_causal in (False, True):
            outputs[name, is_causal] = m(x, memory, memory, pad, is_causal=is_causal)[0]
    for is_causal in (False, True):
        assert_close(outputs["reference", is_causal], outputs["torch_fused", is_causal])
    assert not torch.allclose(outputs["reference", False], outputs["reference", True])


def test_gqa_parameters_and_projection_shapes():
    D, H, kdim, vdim = 12, 6, 5, 3
    mha = MultiHeadAttention(D, H, kdim=kdim, vdim=vdim)
    assert mha.num_kv_heads == H and mha.W_K.weight.shape == (D, kdim)
    for Hkv in (3, 2, 1):
        gqa = MultiHeadAttention(D, H, kdim=kdim, vdim=vdim, num_kv_heads=Hkv)
        assert gqa.W_K.weight.shape == (Hkv * 2, kdim) and gqa.W_V.weight.shape == (Hkv * 2, vdim)
        assert gqa.W_Q.weight.shape == gqa.W_O.weight.shape == (D, D)  # unchanged
        fewer = (D - Hkv * 2) * (kdim + 1) + (D - Hkv * 2) * (vdim + 1)  # W_K, W_V with biases
        count = sum(p.numel() for p in gqa.parameters())
        assert sum(p.numel() for p in mha.parameters()) - count == fewer


def test_from_torch_is_multi_head():
    _, theirs = make_pair(D=8, H=2)
    assert MultiHeadAttention.from_torch(theirs).num_kv_heads == 2


GQA_ERRORS = [
    pytest.param(lambda: MultiHeadAttention(8, 4, num_kv_heads=0), ValueError,
                 ["num_kv_heads", ">= 1", "got 0"], id="zero"),
    pytest.param(lambda: MultiHeadAttention(12, 4, num_kv_heads=3), ValueError,
                 ["num_kv_heads=3", "must divide", "num_heads=4"], id="non-divisor"),
    pytest.param(lambda: MultiHeadAttention(8, 4, num_kv_heads=8), ValueError,
                 ["num_kv_heads=8", "must divide", "num_heads=4"], id="more-than-heads"),
    pytest.param(lambda: MultiHeadAttention(8, 4, num_kv_heads=2.0), TypeError,
                 ["num_kv_heads", "int", "float"], id="float"),
    pytest.param(lambda: MultiHeadAttention(8, 4, num_kv_heads=True), TypeError,
                 ["num_kv_heads", "int", "bool"], id="bool"),
    pytest.param(lambda: MultiHeadAttention(8, 4, num_kv_heads="2"), TypeError,
                 ["num_kv_heads", "int", "str"], id="str"),
    # k, v with neither Hkv nor H heads
    pytest.param(lambda: make_gqa(12, 6, 2).attend(rand(2, 6, 3, 2), rand(2, 3, 3, 2),
                                                   rand(2, 3, 3, 2)), ValueError,
                 ["k", "Hkv=2", "H=6", "(2, 3, 3, 2)"], id="attend-kv-heads"),
    # was possible: a GQA query with kv heads for the queries' slots
    pytest.param(lambda: make_gqa(12, 6, 2).attend(rand(2, 2, 3, 2), rand(2, 2, 3, 2),
                                                   rand(2, 2, 3, 2)), ValueError,
                 ["q", "H=6", "(2, 2, 3, 2)"], id="attend-q-with-kv-heads"),
    pytest.param(lambda: make_gqa(12, 6, 2).attend(rand(2, 6, 3, 2), rand(2, 2, 3, 2),
                                                   rand(2, 6, 3, 2)), ValueError,
                 ["share their heads"], id="attend-k-v-heads-differ"),
    pytest.param(lambda: expand_kv_heads(rand(2, 4, 3, 2), 6), ValueError,
                 ["4 key/value heads", "num_heads=6"], id="expand-non-divisor"),
    pytest.param(lambda: kv_cache_bytes(2, 0, 64, 10), ValueError, ["num_kv_heads", ">= 1"],
                 id="cache-zero-heads"),
    pytest.param(lambda: kv_cache_bytes(2, 4, 64, 10.5), TypeError, ["length", "float"],
                 id="cache-float-length"),
    pytest.param(lambda: kv_cache_bytes(2, 4, 64, 10, dtype="float16"), TypeError,
                 ["dtype", "torch.dtype", "str"], id="cache-dtype-str"),
]


@pytest.mark.parametrize("call, error, words", GQA_ERRORS)
def test_gqa_bad_arguments_are_named(call, error, words):
    assert_raises_naming(call, error, words)


def test_attend_accepts_already_expanded_keys_and_values():
    m = make_gqa(12, 6, 2)
    x = rand(2, 4, 12, seed=1)
    q, k, v = m.project(x, x, x)
    small, _ = m.attend(q, k, v, is_causal=True)
    full, _ = m.attend(q, expand_kv_heads(k, 6), expand_kv_heads(v, 6), is_causal=True)
    assert torch.equal(small, full)


def test_kv_cache_bytes_counts_keys_and_values_of_every_layer():
    # GPT-2 small (12 layers, 12 heads of 64) at 1024 tokens in float32: 72 MiB.
    mha = kv_cache_bytes(12, 12, 64, 1024)
    assert mha == 2 * 12 * 12 * 64 * 1024 * 4 == 72 * 2**20
    gqa, mqa = kv_cache_bytes(12, 4, 64, 1024), kv_cache_bytes(12, 1, 64, 1024)
    assert (mha // gqa, mha % gqa) == (3, 0) and (mha // mqa, mha % mqa) == (12, 0)
    assert kv_cache_bytes(12, 4, 64, 1024, dtype=torch.float16) * 2 == gqa
    assert kv_cache_bytes(12, 4, 64, 1024, batch_size=8) == 8 * gqa
    assert kv_cache_bytes(12, 4, 64, 0) == 0
    assert isinstance(mha, int)
    # It is the size of what project returns for keys and values, summed over layers.
    m = make_gqa(12, 6, 2)
    x = rand(3, 7, 12)
    _, k, v = m.project(x, x, x)
    stored = 5 * (k.numel() * k.element_size() + v.numel() * v.element_size())
    assert kv_cache_bytes(5, 2, 2, 7, batch_size=3, dtype=torch.float64) == stored
