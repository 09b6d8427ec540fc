"""Chapter 7's efficient attention: the memory-efficient kernel is exact (outputs and gradients
equal the float64 reference) and its backward keeps O(n·d), not O(n²); local attention equals
the reference under the local mask; linear attention equals its direct O(n²) form, and its
recurrence equals its parallel form."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_course.attention import reference_attention
from attention_course.efficient import (
    linear_attention,
    linear_attention_recurrent,
    local_attention,
    memory_efficient_attention,
    memory_efficient_kernel,
)
from attention_course.masks import key_padding_mask, local_mask
from attention_course.multihead import MultiHeadAttention
from tests.helpers import assert_raises_naming, rand


def qkv(lead, Lq, Lk, E, Ev, *, grad=False):
    q, k, v = rand(*lead, Lq, E, seed=1), rand(*lead, Lk, E, seed=2), rand(*lead, Lk, Ev, seed=3)
    return tuple(x.requires_grad_(grad) for x in (q, k, v))


def reference(q, k, v, mask=None, *, is_causal=False, scale=None):
    return reference_attention(q, k, v, mask, is_causal=is_causal, scale=scale)[0]


def random_mask(lead, Lq, Lk, seed=7):
    mask = torch.rand(*lead, Lq, Lk, generator=torch.Generator().manual_seed(seed)) > 0.5
    mask[..., 0, :] = False  # a query with no allowed key
    return mask


# ------------------------------------------------------------------ memory-efficient attention

# (leading dims, Lq, Lk, E, Ev, query_chunk_size, key_chunk_size): chunks that do not divide
# the lengths, chunks longer than the sequence, chunks of 1, Lq != Lk both ways
SHAPES = [((2,), 10, 10, 4, 4, 3, 4), ((2, 3), 7, 13, 8, 5, 4, 5), ((1, 2), 13, 6, 4, 6, 5, 4),
          ((3,), 1, 9, 4, 4, 1, 2), ((2,), 5, 5, 3, 2, 64, 64), ((), 6, 4, 2, 3, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("masking", ["none", "padding", "random+empty row", "(Lq,Lk)"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_memory_efficient_equals_the_float64_reference_with_gradients(shape, masking, is_causal):
    lead, Lq, Lk, E, Ev, bq, bk = shape
    q, k, v = qkv(lead, Lq, Lk, E, Ev, grad=True)
    batch = lead[0] if lead else 1
    pad = key_padding_mask(torch.arange(Lk, Lk - batch, -1).clamp(min=1), Lk)  # (B, 1, Lk)
    pad = pad.view(batch, *([1] * (len(lead) - 1)), 1, Lk) if lead else pad[0]
    mask = {"none": None,
            "padding": pad,
            "random+empty row": random_mask(lead, Lq, Lk),
            "(Lq,Lk)": random_mask((), Lq, Lk)}[masking]
    out = memory_efficient_attention(q, k, v, mask, is_causal=is_causal, query_chunk_size=bq,
                                     key_chunk_size=bk)
    expected = reference(q, k, v, mask, is_causal=is_causal)
    assert out.shape == (*lead, Lq, Ev)
    assert out.isfinite().all()
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    g = rand(*out.shape, seed=9)
    grads = torch.autograd.grad(out, (q, k, v), g)
    for got, want in zip(grads, torch.autograd.grad(expected, (q, k, v), g), strict=True):
        assert got.isfinite().all()
        assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_fully_masked_rows_give_zeros_and_zero_gradients():
    q, k, v = qkv((2,), 5, 6, 4, 3, grad=True)
    mask = torch.ones(2, 5, 6, dtype=torch.bool)
    mask[0, 2] = False
    mask[1] = False
    out = memory_efficient_attention(q, k, v, mask, query_chunk_size=2, key_chunk_size=4)
    assert torch.all(out[0, 2] == 0) and torch.all(out[1] == 0)
    out.sum().backward()
    assert torch.all(q.grad[0, 2] == 0) and torch.all(q.grad[1] == 0)
    assert torch.all(k.grad[1] == 0) and torch.all(v.grad[1] == 0)
    # causal with Lq > Lk: the first Lq - Lk queries see no key
    q, k, v = qkv((1,), 7, 3, 4, 3)
    out = memory_efficient_attention(q, k, v, is_causal=True, query_chunk_size=2,
                                     key_chunk_size=2)
    assert torch.all(out[0, :4] == 0)
    assert torch.allclose(out, reference(q, k, v, is_causal=True), rtol=0, atol=1e-12)


def test_scale_and_empty_sequences():
    q, k, v = qkv((2,), 4, 6, 4, 3)
    out = memory_efficient_attention(q, k, v, scale=0.3, query_chunk_size=3, key_chunk_size=4)
    assert torch.allclose(out, reference(q, k, v, scale=0.3), rtol=0, atol=1e-12)
    for Lq, Lk in [(0, 3), (3, 0), (0, 0)]:
        q, k, v = qkv((2,), Lq, Lk, 4, 5, grad=True)
        out = memory_efficient_attention(q, k, v, is_causal=True)
        assert out.shape == (2, Lq, 5) and torch.all(out == 0)
        out.sum().backward()
        assert torch.all(k.grad == 0)


def test_gradcheck_in_float64():
    q, k, v = qkv((2,), 5, 4, 3, 2, grad=True)
    mask = random_mask((2,), 5, 4)

    def f(q, k, v):
        return memory_efficient_attention(q, k, v, mask, is_causal=True, query_chunk_size=2,
                                          key_chunk_size=3)

    assert torch.autograd.gradcheck(f, (q, k, v))
    assert torch.autograd.gradcheck(lambda q, k, v: memory_efficient_attention(
        q, k, v, query_chunk_size=3, key_chunk_size=2), (q, k, v))


def test_only_some_inputs_need_gradients():
    q, k, v = qkv((2,), 5, 4, 3, 2)
    v.requires_grad_()
    out = memory_efficient_attention(q, k, v, query_chunk_size=2, key_chunk_size=3)
    (grad,) = torch.autograd.grad(out.sum(), v)
    (want,) = torch.autograd.grad(reference(q, k, v).sum(), v)
    assert torch.allclose(grad, want, rtol=0, atol=1e-12)


def saved_numel(fn):
    """Total elements of the tensors autograd saves for backward while ``fn()`` runs."""
    total = 0

    def pack(x):
        nonlocal total
        total += x.numel()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = fn()
    return total, out


def test_backward_keeps_o_of_n_d_not_o_of_n_squared():
    n, d = 512, 16
    q, k, v = (rand(1, n, d, seed=s, dtype=torch.float32).requires_grad_() for s in (1, 2, 3))
    ours, out = saved_numel(lambda: memory_efficient_attention(q, k, v, is_causal=True,
                                                              query_chunk_size=64,
                                                              key_chunk_size=64))
    theirs, _ = saved_numel(lambda: reference(q, k, v, is_causal=True))
    assert ours <= 4 * n * d + n  # query, key, value, output and one logsumexp per query
    assert ours < n * n / 4 and theirs >= n * n  # the reference keeps its n x n weights
    out.sum().backward()  # and the saved tensors suffice for backward
    assert q.grad.isfinite().all()


def test_the_kernel_adapter_inside_multihead_attention_equals_the_default_path():
    torch.manual_seed(0)
    plain = MultiHeadAttention(8, 2).double().eval()
    ours = MultiHeadAttention(8, 2, attention_fn=memory_efficient_kernel).double().eval()
    ours.load_state_dict(plain.state_dict())
    x, memory = rand(3, 5, 8, seed=1), rand(3, 7, 8, seed=2)
    mask = key_padding_mask(torch.tensor([7, 3, 1]), 7)
    for is_causal in (False, True):
        out, weights = ours(x, memory, memory, mask, is_causal=is_causal)
        expected, _ = plain(x, memory, memory, mask, is_causal=is_causal)
        assert weights is None
        assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="returns no weights"):
        ours(x, x, x, need_weights=True)


def test_the_kernel_adapter_refuses_dropout():
    q, k, v = qkv((2,), 3, 3, 4, 4)
    assert_raises_naming(lambda: memory_efficient_kernel(q, k, v, dropout_p=0.1), ValueError,
                         ["dropout_p", "0.1"])


def test_float16_is_computed_in_float32():
    q = torch.full((1, 2, 2, 64), 100.0, dtype=torch.float16)
    k = torch.full((1, 2, 3, 64), 100.0, dtype=torch.float16)
    v = rand(1, 2, 3, 5, seed=1).half()
    out = memory_efficient_attention(q, k, v, is_causal=True, query_chunk_size=1,
                                     key_chunk_size=2)
    assert out.dtype == torch.float16 and out.isfinite().all()
    want = reference(q.double(), k.double(), v.double(), is_causal=True)
    assert torch.allclose(out.double(), want, atol=1e-3)


Q, K, V = qkv((2,), 3, 5, 4, 6)

BAD = [
    pytest.param(lambda: memory_efficient_attention(Q, K, V, query_chunk_size=0), ValueError,
                 ["query_chunk_size", ">= 1", "0"], id="query_chunk_size-0"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, key_chunk_size=-2), ValueError,
                 ["key_chunk_size", ">= 1"], id="key_chunk_size-negative"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, key_chunk_size=2.0), TypeError,
                 ["key_chunk_size", "int", "float"], id="key_chunk_size-float"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, query_chunk_size=True), TypeError,
                 ["query_chunk_size", "int", "bool"], id="query_chunk_size-bool"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, is_causal="yes"), TypeError,
                 ["is_causal"], id="is_causal-str"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, scale=0.0), ValueError,
                 ["scale"], id="scale-0"),
    pytest.param(lambda: memory_efficient_attention(Q, K[..., :3], V), ValueError,
                 ["feature size"], id="feature-size"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V, torch.ones(3, 5)), TypeError,
                 ["mask", "boolean"], id="float-mask"),
    pytest.param(lambda: memory_efficient_attention(Q, K, V.half()), TypeError,
                 ["value", "float16"], id="mixed-dtypes"),
    pytest.param(lambda: local_attention(Q, K, V, 2), ValueError, ["Lq=3", "Lk=5"],
                 id="local-Lq!=Lk"),
    pytest.param(lambda: local_attention(K, K, V, -1), ValueError, ["window", ">= 0"],
                 id="local-window-negative"),
    pytest.param(lambda: local_attention(K, K, V, 1.5), TypeError, ["window", "int"],
                 id="local-window-float"),
    pytest.param(lambda: local_attention(K, K, V, 1, block_size=0), ValueError,
                 ["block_size"], id="local-block_size-0"),
    pytest.param(lambda: linear_attention(Q, K, V, is_causal=True), ValueError,
                 ["Lq=3", "Lk=5"], id="linear-causal-Lq!=Lk"),
    pytest.param(lambda: linear_attention(Q, K, V, feature_map="elu"), TypeError,
                 ["feature_map", "str"], id="linear-feature_map-str"),
    pytest.param(lambda: linear_attention(Q, K, V, eps=-1.0), ValueError, ["eps"],
                 id="linear-eps-negative"),
    pytest.param(lambda: linear_attention(K, K, V, is_causal=True, chunk_size=0), ValueError,
                 ["chunk_size"], id="linear-chunk_size-0"),
    pytest.param(lambda: linear_attention_recurrent(Q, K, V), ValueError, ["Lq=3", "Lk=5"],
                 id="recurrent-Lq!=Lk"),
]


@pytest.mark.parametrize("call, error, words", BAD)
def test_bad_arguments_are_rejected_naming_the_argument(call, error, words):
    assert_raises_naming(call, error, words)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(0, 2), Lq=st.integers(0, 12), Lk=st.integers(0, 12),
       E=st.integers(1, 5), bq=st.integers(1, 14), bk=st.integers(1, 14), is_causal=st.booleans(),
       masked=st.booleans(), seed=st.integers(0, 2**16))
def test_property_memory_efficient_equals_the_reference(batch, Lq, Lk, E, bq, bk, is_causal,
                                                         masked, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, L, E, generator=g, dtype=torch.float64).requires_grad_()
               for L in (Lq, Lk, Lk))
    mask = torch.rand(batch, Lq, Lk, generator=g) > 0.3 if masked else None
    out = memory_efficient_attention(q, k, v, mask, is_causal=is_causal, query_chunk_size=bq,
                                     key_chunk_size=bk)
    expected = reference(q, k, v, mask, is_causal=is_causal)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    if out.numel():
        grad = rand(*out.shape, seed=seed)
        got = torch.autograd.grad(out, (q, k, v), grad)
        want = torch.autograd.grad(expected, (q, k, v), grad)
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- local attention

@settings(max_examples=25, deadline=None)
@given(lead=st.sampled_from([(), (2,), (2, 3)]), L=st.integers(0, 20), window=st.integers(0, 22),
       block=st.one_of(st.none(), st.integers(1, 9)), is_causal=st.booleans(),
       seed=st.integers(0, 2**16))
def test_local_attention_equals_the_reference_under_the_local_mask(lead, L, window, block,
                                                                    is_causal, seed):
    q, k, v = (rand(*lead, L, 4, seed=seed + i).requires_grad_() for i in range(3))
    out = local_attention(q, k, v, window, is_causal=is_causal, block_size=block)
    expected = reference(q, k, v, local_mask(L, window, causal=is_causal))
    assert out.shape == (*lead, L, 4)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    if out.numel():
        got = torch.autograd.grad(out.sum(), (q, k, v))
        want = torch.autograd.grad(expected.sum(), (q, k, v))
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_local_attention_scale_and_memory():
    x = rand(2, 30, 4, seed=1)
    out = local_attention(x, x, x, 3, scale=0.2, block_size=4)
    assert torch.allclose(out, reference(x, x, x, local_mask(30, 3, causal=False), scale=0.2),
                          rtol=0, atol=1e-12)
    n, w = 1024, 8
    q = rand(1, n, 4, seed=1, dtype=torch.float32).requires_grad_()
    saved, _ = saved_numel(lambda: local_attention(q, q, q, w, block_size=16))
    assert saved < 4 * n * (16 + 2 * w + 1) + 10 * n * 4  # O(n·(block + w)) scores, not n²
    assert saved < n * n / 8


# ---------------------------------------------------------------------------- linear attention

def direct_linear(q, k, v, *, is_causal=False, feature_map=None, eps=1e-6):
    """The O(n²) form: A = phi(Q) phi(K)^T (lower triangle when causal), out = A V / rowsum."""
    phi = feature_map or (lambda x: torch.nn.functional.elu(x) + 1)
    a = phi(q) @ phi(k).transpose(-2, -1)  # (..., Lq, Lk)
    if is_causal:
        a = torch.tril(a)
    return (a @ v) / (a.sum(dim=-1, keepdim=True) + eps)


@pytest.mark.parametrize("lead, Lq, Lk", [((2,), 7, 11), ((2, 3), 9, 9), ((), 1, 4)])
def test_non_causal_linear_attention_equals_the_direct_form(lead, Lq, Lk):
    q, k, v = qkv(lead, Lq, Lk, 4, 3)
    assert torch.allclose(linear_attention(q, k, v), direct_linear(q, k, v), rtol=0, atol=1e-12)
    relu = torch.relu
    assert torch.allclose(linear_attention(q, k, v, feature_map=relu, eps=1e-3),
                          direct_linear(q, k, v, feature_map=relu, eps=1e-3), rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(lead=st.sampled_from([(), (2,), (2, 3)]), L=st.integers(0, 20), chunk=st.integers(1, 25),
       seed=st.integers(0, 2**16))
def test_causal_linear_attention_chunked_equals_recurrent_equals_direct(lead, L, chunk, seed):
    q, k, v = (rand(*lead, L, 4, seed=seed + i).requires_grad_() for i in range(3))
    chunked = linear_attention(q, k, v, is_causal=True, chunk_size=chunk)
    recurrent = linear_attention_recurrent(q, k, v)
    direct = direct_linear(q, k, v, is_causal=True)
    assert chunked.shape == recurrent.shape == (*lead, L, 4)
    assert torch.allclose(chunked, direct, rtol=0, atol=1e-12)
    assert torch.allclose(recurrent, direct, rtol=0, atol=1e-12)
    if L:
        got = torch.autograd.grad(chunked.sum(), (q, k, v))
        want = torch.autograd.grad(direct.sum(), (q, k, v))
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_linear_attention_with_a_single_key_returns_that_value():
    q, k, v = qkv((2,), 5, 1, 4, 3)
    out = linear_attention(q, k, v, eps=0.0)
    assert torch.allclose(out, v.expand(2, 5, 3), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ block-sparse attention

def sparse_masks(L):
    from attention_course.masks import causal_mask, fixed_mask, strided_mask

    return {
        "strided": strided_mask(L, 5),
        "strided-bidirectional": strided_mask(L, 4, causal=False),
        "fixed": fixed_mask(L, 8, summary=2),
        "fixed-bidirectional": fixed_mask(L, 6, causal=False),
        "local": local_mask(L, 3),
        "causal": causal_mask(L),
    }


@pytest.mark.parametrize("name", list(sparse_masks(4)))
@pytest.mark.parametrize("block_size", [1, 7, 16, 64])
def test_block_sparse_equals_the_reference_with_gradients(name, block_size):
    from attention_course.efficient import block_sparse_attention

    L = 37
    mask = sparse_masks(L)[name].clone()
    mask[5] = False  # a query with no allowed key: output 0 in both
    q, k, v = qkv((2, 3), L, L, 8, 5, grad=True)
    got = block_sparse_attention(q, k, v, mask, block_size=block_size)
    want = reference(q, k, v, mask)
    assert got.shape == want.shape == (2, 3, L, 5)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert torch.all(got[..., 5, :] == 0)
    grad = rand(2, 3, L, 5, seed=11)
    got_grads = torch.autograd.grad(got, (q, k, v), grad)
    want_grads = torch.autograd.grad(want, (q, k, v), grad)
    for a, b in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(Lq=st.integers(0, 20), Lk=st.integers(0, 20), block=st.integers(1, 9),
       scale=st.sampled_from([None, 0.3]), seed=st.integers(0, 2**16))
def test_block_sparse_equals_the_reference_on_random_masks(Lq, Lk, block, scale, seed):
    from attention_course.efficient import block_sparse_attention

    q, k = rand(2, Lq, 4, seed=seed), rand(2, Lk, 4, seed=seed + 1)
    v = rand(2, Lk, 3, seed=seed + 2)
    mask = torch.rand(2, Lq, Lk, generator=torch.Generator().manual_seed(seed)) > 0.7
    got = block_sparse_attention(q, k, v, mask, block_size=block, scale=scale)
    want = reference(q, k, v, mask, scale=scale)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_block_sparse_gradcheck():
    from attention_course.efficient import block_sparse_attention
    from attention_course.masks import fixed_mask

    q, k, v = qkv((2,), 10, 10, 3, 2, grad=True)
    mask = fixed_mask(10, 4, causal=False)
    assert torch.autograd.gradcheck(
        lambda a, b, c: block_sparse_attention(a, b, c, mask, block_size=4), (q, k, v))


def bmm_flops(fn):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_block_sparse_really_skips_empty_blocks():
    from attention_course.efficient import block_sparse_attention

    L, E, b = 256, 8, 16
    q, k, v = qkv((1,), L, L, E, E)
    dense = bmm_flops(lambda: block_sparse_attention(q, k, v, torch.ones(L, L, dtype=torch.bool),
                                                     block_size=b))
    assert dense == 2 * 2 * L * L * E  # QK^T and AV over every block
    local = local_mask(L, 8)  # each query block meets at most two key blocks
    sparse = bmm_flops(lambda: block_sparse_attention(q, k, v, local, block_size=b))
    assert sparse == 2 * 2 * E * b * b * (2 * (L // b) - 1)
    assert sparse < dense / 7
    causal = bmm_flops(lambda: block_sparse_attention(
        q, k, v, torch.ones(L, L, dtype=torch.bool).tril(), block_size=b))
    n = L // b
    assert causal == 2 * 2 * E * b * b * n * (n + 1) // 2  # the upper triangle is skipped


def test_block_sparse_rejects_bad_arguments():
    from attention_course.efficient import block_sparse_attention

    q, k, v = qkv((), 4, 4, 2, 2)
    mask = torch.ones(4, 4, dtype=torch.bool)
    assert_raises_naming(lambda: block_sparse_attention(q, k, v, None), TypeError, ["mask"])
    assert_raises_naming(lambda: block_sparse_attention(q, k, v, mask, block_size=0), ValueError,
                         ["block_size", ">= 1"])
    assert_raises_naming(lambda: block_sparse_attention(q, k, v, mask.float()), TypeError,
                         ["mask"])
    assert_raises_naming(lambda: block_sparse_attention(q, k, v, mask, scale=-1.0), ValueError,
                         ["scale"])
