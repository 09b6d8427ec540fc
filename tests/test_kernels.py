"""Kernel conformance: every exact kernel (``kernels.EXACT_KERNELS`` and Chapter 7's
``efficient.memory_efficient_kernel``) computes the float64
reference's output (masks, causal with Lq != Lk, zero rows, gradients), and the seam in
MultiHeadAttention runs whatever kernel it is handed."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from attention_course.attention import scaled_dot_product_attention
from attention_course.efficient import memory_efficient_kernel
from attention_course.kernels import EXACT_KERNELS, fused_attention, select_kernel
from attention_course.masks import causal_mask, key_padding_mask
from attention_course.multihead import MultiHeadAttention
from tests.helpers import assert_raises_naming, rand

# Every exact kernel under test. Chapter 7's kernel joins here, not in kernels.EXACT_KERNELS:
# kernels (and multihead) never import efficient (an import-linter contract).
KERNELS = {**EXACT_KERNELS, "memory_efficient": memory_efficient_kernel}


def reference(q, k, v, mask=None, *, is_causal=False, scale=None):
    """The float64 reference, written out here independently of the package."""
    Lq, Lk = q.shape[-2], k.shape[-2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    allowed = torch.ones(scores.shape, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & mask
    if is_causal:
        i, j = torch.arange(Lq)[:, None], torch.arange(Lk)[None, :]
        allowed = allowed & (j - i <= Lk - Lq)  # bottom-right
    weights = torch.softmax(scores.masked_fill(~allowed, -torch.inf), -1).nan_to_num(0.0)
    return weights @ v


# (shape of leading dims, Lq, Lk, E, Ev)
SHAPES = [((2,), 4, 4, 8, 8), ((2, 3), 5, 7, 4, 6), ((1, 2), 6, 3, 8, 5), ((3,), 1, 9, 4, 4)]


def masks_for(lead, Lq, Lk):
    g = torch.Generator().manual_seed(7)
    lengths = torch.randint(1, Lk + 1, (lead[0],), generator=g)
    pad = key_padding_mask(lengths, Lk)  # (B, 1, Lk)
    pad = pad.view(lead[0], *([1] * (len(lead) - 1)), 1, Lk)
    random = torch.rand(*lead, Lq, Lk, generator=g) > 0.4
    random[..., 0, :] = False  # a query with no allowed key
    return {"none": None, "padding": pad, "random+empty row": random}


CASES = [(name, shape, masking, causal) for name in KERNELS for shape in SHAPES
         for masking in ("none", "padding", "random+empty row") for causal in (False, True)]


@pytest.mark.parametrize("name, shape, masking, is_causal", CASES)
def test_every_exact_kernel_matches_the_float64_reference(name, shape, masking, is_causal):
    kernel = KERNELS[name]
    lead, Lq, Lk, E, Ev = shape
    q = rand(*lead, Lq, E, seed=1).requires_grad_()
    k = rand(*lead, Lk, E, seed=2).requires_grad_()
    v = rand(*lead, Lk, Ev, seed=3).requires_grad_()
    mask = masks_for(lead, Lq, Lk)[masking]
    out, weights = kernel(q, k, v, mask, is_causal=is_causal)
    expected = reference(q, k, v, mask, is_causal=is_causal)
    assert out.shape == (*lead, Lq, Ev)
    assert not out.isnan().any()
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    if weights is not None:
        assert weights.shape == (*lead, Lq, Lk)
    g = rand(*out.shape, seed=9)
    grads = torch.autograd.grad(out, (q, k, v), g)
    expected_grads = torch.autograd.grad(expected, (q, k, v), g)
    for got, want in zip(grads, expected_grads, strict=True):
        assert not got.isnan().any()
        assert torch.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_every_exact_kernel_honours_scale(name):
    q, k, v = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 4, seed=3)
    out, _ = KERNELS[name](q, k, v, scale=0.3)
    assert torch.allclose(out, reference(q, k, v, scale=0.3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("Lq, Lk", [(0, 3), (3, 0), (0, 0)])
def test_empty_sequences_give_the_same_with_and_without_is_causal(name, Lq, Lk):
    q, k, v = rand(2, Lq, 4, seed=1), rand(2, Lk, 4, seed=2), rand(2, Lk, 5, seed=3)
    plain, _ = KERNELS[name](q, k, v)
    causal, _ = KERNELS[name](q, k, v, is_causal=True)
    assert plain.shape == causal.shape == (2, Lq, 5)
    assert torch.equal(plain, causal) and not plain.isnan().any()
    assert torch.all(plain == 0)  # no key at all (or no query): zeros


@pytest.mark.parametrize("name", KERNELS)
def test_empty_batch(name):
    q, k, v = rand(0, 2, 3, 4), rand(0, 2, 5, 4), rand(0, 2, 5, 4)
    for is_causal in (False, True):
        out, _ = KERNELS[name](q, k, v, is_causal=is_causal)
        assert out.shape == (0, 2, 3, 4)


@pytest.mark.filterwarnings("ignore:Lower right causal bias")
def test_is_causal_is_torchs_causal_lower_right():
    for Lq, Lk in [(4, 4), (3, 7), (6, 2), (1, 5)]:
        assert torch.equal(causal_mask(Lq, Lk), causal_lower_right(Lq, Lk)._materialize())
        q, k, v = rand(2, Lq, 4, seed=1), rand(2, Lk, 4, seed=2), rand(2, Lk, 3, seed=3)
        ours, _ = scaled_dot_product_attention(q, k, v, is_causal=True)
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(Lq, Lk))
        live = causal_mask(Lq, Lk).any(-1)  # torch's rows without keys are undefined (NaN)
        assert torch.allclose(ours[:, live], theirs[:, live], rtol=0, atol=1e-12)


def test_float16_scores_do_not_overflow_where_torch_does_not():
    # Raw dot products of 4 * 200 * 200 = 160000 overflow float16 (max 65504); / sqrt(4) = 80000
    # still would. Scaling both sides by 4**-0.25 first, as torch does, keeps every
    # intermediate finite.
    q = torch.full((1, 2, 4), 200.0, dtype=torch.float16)
    k = torch.full((1, 3, 4), 90.0, dtype=torch.float16)
    v = rand(1, 3, 2, seed=1).half()
    theirs = F.scaled_dot_product_attention(q, k, v)
    assert theirs.isfinite().all()
    for name, kernel in KERNELS.items():
        out, _ = kernel(q, k, v)
        assert out.isfinite().all(), name
        assert torch.allclose(out.float(), theirs.float(), atol=1e-3), name


def test_select_kernel_is_the_one_place_that_chooses():
    assert select_kernel(None, need_weights=True) is EXACT_KERNELS["reference"]
    assert select_kernel(None, need_weights=False) is EXACT_KERNELS["torch_fused"]
    custom = EXACT_KERNELS["reference"]
    assert select_kernel(custom, need_weights=False) is custom


def test_multihead_runs_the_kernel_it_is_handed():
    calls = []

    def spy(query, key, value, mask=None, *, is_causal=False, scale=None, dropout_p=0.0):
        calls.append((tuple(query.shape), tuple(key.shape), is_causal))
        return EXACT_KERNELS["reference"](query, key, value, mask, is_causal=is_causal,
                                          scale=scale, dropout_p=dropout_p)

    torch.manual_seed(0)
    plain = MultiHeadAttention(8, 2).double()
    spied = MultiHeadAttention(8, 2, attention_fn=spy).double()
    spied.load_state_dict(plain.state_dict())
    x, memory = rand(3, 4, 8, seed=1), rand(3, 6, 8, seed=2)
    out, w = spied(x, memory, memory, is_causal=True, need_weights=True)
    assert calls == [((3, 2, 4, 4), (3, 2, 6, 4), True)]  # per-head tensors
    expected, expected_w = plain(x, memory, memory, is_causal=True, need_weights=True)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    assert torch.allclose(w, expected_w, rtol=0, atol=1e-12)


def test_a_kernel_without_weights_cannot_serve_need_weights():
    m = MultiHeadAttention(8, 2, attention_fn=EXACT_KERNELS["torch_fused"]).double()
    x = rand(1, 3, 8)
    assert m(x, x, x)[1] is None
    with pytest.raises(ValueError, match="returns no weights"):
        m(x, x, x, need_weights=True)


def test_project_then_attend_is_forward_and_leaves_room_for_a_cache():
    torch.manual_seed(0)
    m = MultiHeadAttention(8, 2).double()
    x = rand(2, 5, 8)
    full, _ = m(x, x, x, is_causal=True)
    q, k, v = m.project(x, x, x)
    # A decoding step: the last query against all keys seen so far; bottom-right causal
    # alignment gives the last row of the full causal attention.
    last, _ = m.attend(q[:, :, -1:], k, v, is_causal=True)
    assert torch.allclose(last, full[:, -1:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("call, error, words", [
    (lambda q, k, v: fused_attention(q, k, v, is_causal="False"), TypeError, ["is_causal"]),
    (lambda q, k, v: fused_attention(q, k, v, scale=0.0), ValueError, ["scale", "> 0"]),
    (lambda q, k, v: fused_attention(q, k, v, scale=float("inf")), ValueError, ["scale"]),
    (lambda q, k, v: fused_attention(q, k, v, dropout_p=1.0), ValueError, ["dropout_p"]),
    (lambda q, k, v: fused_attention(q, k[..., :3], v), ValueError, ["feature size"]),
    (lambda q, k, v: fused_attention(q, k, v, torch.ones(4, 5)), TypeError, ["mask", "boolean"]),
])
def test_the_checked_fused_entry_point_names_the_argument(call, error, words):
    q, k, v = rand(2, 4, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 4, seed=3)
    assert_raises_naming(lambda: call(q, k, v), error, words)


# ---------------------------------------------------------------- robustness: hostile input

Q, K, V = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 6, seed=3)

ROBUSTNESS = [
    # was: "Expected query, key, and value to have the same device type" from inside torch
    pytest.param(lambda: fused_attention(Q, K, V.to("meta")), ValueError,
                 ["value", "meta", "key"], id="fused-value-other-device"),
    pytest.param(lambda: fused_attention(Q, K, V, torch.ones(2, 3, 5, dtype=torch.bool,
                                                             device="meta")),
                 ValueError, ["mask", "meta"], id="fused-mask-other-device"),
    pytest.param(lambda: fused_attention(Q, K, V, is_causal=None), TypeError,
                 ["is_causal", "bool", "None"], id="fused-is_causal-None"),
    pytest.param(lambda: fused_attention(Q, K, V, torch.ones(2, 5, dtype=torch.bool)),
                 ValueError, ["mask", "(2, 5)", "Lq or 1"], id="fused-(B,Lk)-mask"),
    pytest.param(lambda: fused_attention(Q, K.half(), V), TypeError, ["key", "float16"],
                 id="fused-mixed-dtypes"),
    pytest.param(lambda: fused_attention(Q.long(), K.long(), V.long()), TypeError,
                 ["query", "floating", "int64"], id="fused-int-inputs"),
    # was: "False" is truthy, so select_kernel silently read it as need_weights=True
    pytest.param(lambda: select_kernel(None, "False"), TypeError, ["need_weights", "bool"],
                 id="select_kernel-need_weights-str"),
    pytest.param(lambda: select_kernel("reference", True), TypeError,
                 ["attention_fn", "function", "str"], id="select_kernel-attention_fn-str"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    assert_raises_naming(call, error, words)


@pytest.mark.parametrize("name", KERNELS)
def test_non_contiguous_inputs_give_the_same_result(name):
    q = Q.transpose(0, 1).contiguous().transpose(0, 1)
    k = K.transpose(-2, -1).contiguous().transpose(-2, -1)
    v = V.transpose(-2, -1).contiguous().transpose(-2, -1)
    mask = key_padding_mask(torch.tensor([5, 2]), 5).transpose(-2, -1).contiguous()
    mask = mask.transpose(-2, -1)  # (B, 1, Lk) with other strides
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    for is_causal in (False, True):
        out, _ = KERNELS[name](q, k, v, mask, is_causal=is_causal)
        ref, _ = KERNELS[name](Q, K, V, mask.contiguous(), is_causal=is_causal)
        assert torch.allclose(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_float16_scores_beyond_float16s_range_match_torch(name):
    # 100 * 100 * 64 / sqrt(64) = 80000 > 65504 even after scaling both sides by 64**-0.25
    q = torch.full((1, 2, 2, 64), 100.0, dtype=torch.float16)
    k = torch.full((1, 2, 3, 64), 100.0, dtype=torch.float16)
    v = rand(1, 2, 3, 5, seed=1).half()
    theirs = F.scaled_dot_product_attention(q, k, v)
    out, _ = KERNELS[name](q, k, v, is_causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(2, 3))
    assert theirs.isfinite().all() and out.isfinite().all()
    assert torch.allclose(out.float(), ref.float(), atol=1e-3)
