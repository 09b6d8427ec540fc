"""The kernel adapters of attention_course.efficient: each equals the function under it, runs
inside MultiHeadAttention and GPT, and refuses what it cannot honour."""

import functools

import pytest
import torch

from attention_course.attention import reference_attention
from attention_course.efficient import (
    block_sparse_attention,
    block_sparse_kernel,
    linear_attention,
    linear_kernel,
    local_attention,
    local_kernel,
)
from attention_course.masks import (
    causal_mask,
    fixed_mask,
    key_padding_mask,
    local_mask,
    strided_mask,
)
from attention_course.models.gpt import GPT, GPTConfig
from attention_course.multihead import MultiHeadAttention
from tests.helpers import assert_raises_naming, rand


def qkv(L=9, Lk=None, seed=0):
    Lk = L if Lk is None else Lk
    return rand(2, 3, L, 4, seed=seed), rand(2, 3, Lk, 4, seed=seed + 1), \
        rand(2, 3, Lk, 5, seed=seed + 2)


@pytest.mark.parametrize("is_causal", [False, True])
def test_each_adapter_equals_its_function(is_causal):
    q, k, v = qkv()
    out, w = local_kernel(2)(q, k, v, is_causal=is_causal)
    assert w is None and torch.equal(out, local_attention(q, k, v, 2, is_causal=is_causal))
    out, w = linear_kernel()(q, k, v, is_causal=is_causal)
    assert w is None and torch.equal(out, linear_attention(q, k, v, is_causal=is_causal))
    square = torch.square
    out, _ = linear_kernel(square, eps=1e-3)(q, k, v, is_causal=is_causal)
    expected = linear_attention(q, k, v, is_causal=is_causal, feature_map=square, eps=1e-3)
    assert torch.equal(out, expected)
    pattern = functools.partial(strided_mask, stride=3, causal=False)
    out, w = block_sparse_kernel(pattern, block_size=4)(q, k, v, is_causal=is_causal)
    allowed = pattern(9) & causal_mask(9) if is_causal else pattern(9)
    assert w is None
    assert torch.allclose(out, block_sparse_attention(q, k, v, allowed, block_size=4),
                          rtol=0, atol=1e-12)
    assert torch.allclose(out, reference_attention(q, k, v, allowed)[0], rtol=0, atol=1e-12)


def test_block_sparse_kernel_combines_pattern_mask_and_causal_bottom_right():
    q, k, v = qkv(L=3, Lk=8)
    mask = key_padding_mask(torch.tensor([8, 5]), 8)[:, None]  # (2, 1, 1, 8)
    pattern = functools.partial(fixed_mask, block=4, causal=False)
    out, _ = block_sparse_kernel(pattern, block_size=2)(q, k, v, mask, is_causal=True)
    allowed = pattern(8)[-3:] & mask & causal_mask(3, 8)  # (2, 1, 3, 8)
    expected, _ = reference_attention(q, k, v, allowed)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)


def test_local_kernel_inside_multihead_attention_equals_the_reference_under_a_local_mask():
    torch.manual_seed(0)
    ours = MultiHeadAttention(8, 2, attention_fn=local_kernel(2)).double().eval()
    plain = MultiHeadAttention(8, 2).double().eval()
    plain.load_state_dict(ours.state_dict())
    x = rand(3, 7, 8, seed=4)

    for is_causal in (False, True):
        out, _ = ours(x, x, x, is_causal=is_causal)
        expected, _ = plain(x, x, x, local_mask(7, 2, causal=is_causal))
        assert torch.allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, reference", [
    (lambda: local_kernel(3), lambda L: causal_mask(L) & ~causal_mask(L, L).tril(-4)),
    (lambda: block_sparse_kernel(functools.partial(strided_mask, stride=3), block_size=4),
     lambda L: strided_mask(L, 3)),
    (lambda: linear_kernel(), None),
])
def test_a_gpt_runs_and_trains_with_each_adapter(make, reference):
    config = GPTConfig(vocab_size=11, max_len=10, d_model=8, num_heads=2, num_layers=2)
    torch.manual_seed(0)
    model = GPT(config, attention_fn=make()).double()
    tokens = torch.randint(11, (2, 10), generator=torch.Generator().manual_seed(0))
    logits, _ = model(tokens)
    assert logits.shape == (2, 10, 11) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    if reference is None:
        return
    # The same weights with the reference kernel under the explicit mask give the same logits.
    mask = reference(10)

    def masked(q, k, v, m=None, *, is_causal=False, scale=None, dropout_p=0.0):
        return reference_attention(q, k, v, mask)

    twin = GPT(config, attention_fn=masked).double()
    twin.load_state_dict(model.state_dict())
    assert torch.allclose(twin(tokens)[0], logits, rtol=0, atol=1e-10)


def test_a_gpt_with_linear_attention_is_causal():
    # Causal: a token's logits do not depend on later tokens.
    config = GPTConfig(vocab_size=11, max_len=10, d_model=8, num_heads=2, num_layers=2)
    torch.manual_seed(0)
    model = GPT(config, attention_fn=linear_kernel()).double()
    tokens = torch.randint(11, (2, 10), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 11
    assert torch.allclose(model(tokens)[0][:, :6], model(changed)[0][:, :6], atol=1e-12)
    assert not torch.allclose(model(tokens)[0][:, 6:], model(changed)[0][:, 6:])


def test_adapters_refuse_what_they_cannot_honour():
    q, k, v = qkv()
    mask = torch.ones(9, 9, dtype=torch.bool)
    assert_raises_naming(lambda: local_kernel(2)(q, k, v, mask), ValueError,
                         ["local_kernel(window=2)", "mask", "(9, 9)"])
    assert_raises_naming(lambda: linear_kernel()(q, k, v, mask), ValueError,
                         ["linear_kernel", "mask"])
    assert_raises_naming(lambda: linear_kernel()(q, k, v, scale=0.5), ValueError,
                         ["scale", "0.5"])
    pattern = functools.partial(strided_mask, stride=3)
    for kernel in (local_kernel(2), linear_kernel(), block_sparse_kernel(pattern)):
        assert_raises_naming(lambda kernel=kernel: kernel(q, k, v, dropout_p=0.1), ValueError,
                             ["dropout_p", "0.1"])
    assert_raises_naming(lambda: block_sparse_kernel(lambda L: torch.ones(L, L))(q, k, v),
                         ValueError, ["pattern(9)", "boolean", "torch.float32"])
    assert_raises_naming(lambda: block_sparse_kernel(lambda L: torch.ones(3, 3, dtype=bool))(
        q, k, v), ValueError, ["pattern(9)", "(9, 9)", "(3, 3)"])
    assert_raises_naming(lambda: local_kernel(-1), ValueError, ["window", "-1"])
    assert_raises_naming(lambda: local_kernel(2.0), TypeError, ["window", "float"])
    assert_raises_naming(lambda: linear_kernel("elu"), TypeError, ["feature_map", "str"])
    assert_raises_naming(lambda: linear_kernel(eps=-1.0), ValueError, ["eps"])
    assert_raises_naming(lambda: block_sparse_kernel("strided"), TypeError, ["pattern", "str"])
    assert_raises_naming(lambda: block_sparse_kernel(pattern, block_size=0), ValueError,
                         ["block_size", "0"])
    layer = MultiHeadAttention(8, 2, dropout=0.1, attention_fn=local_kernel(1))  # training mode
    x = rand(1, 4, 8, dtype=torch.float32)
    assert_raises_naming(lambda: layer(x, x, x, is_causal=True), ValueError, ["dropout_p"])
    assert_raises_naming(lambda: MultiHeadAttention(8, 2, attention_fn=local_kernel(1))(
        x, x, x, need_weights=True), ValueError, ["local_kernel(window=1)", "no weights"])
