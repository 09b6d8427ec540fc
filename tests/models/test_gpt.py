"""The decoder-only language model: shapes, causality, weights and head masks against a hand-run,
tied weights, attention-only mode, GPT-2's initialisation, training, determinism, and argument
checks in the caller's words; grouped-query and multi-query attention (``num_kv_heads``)."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention_course.analysis import stack_weights
from attention_course.kernels import reference_attention
from attention_course.models.gpt import GPT, GPTConfig
from attention_course.multihead import kv_cache_bytes, merge_heads, split_heads
from attention_course.train import train

F64 = torch.float64
V, T = 11, 7


def small_model(dtype=F64, attention_fn=None, **kwargs):
    options = {"max_len": 16, "d_model": 16, "num_heads": 4, "num_layers": 2} | kwargs
    torch.manual_seed(0)
    return GPT(GPTConfig(V, **options), attention_fn=attention_fn).to(dtype).eval()


def tokens(B=3, length=T, seed=0):
    return torch.randint(V, (B, length), generator=torch.Generator().manual_seed(seed))


def hand_run(model, x, ablate=()):
    """The model's forward pass written out: ``ablate`` holds ``(layer, head)`` pairs whose slice
    of the concatenated heads is zeroed before ``W_O``. Returns logits and per-layer weights."""
    c = model.config
    L = x.shape[1]
    h = model.wte.weight[x] + model.wpe.weight[:L]  # (B, L, D)
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    all_weights = []
    group = c.num_heads // c.num_kv_heads  # query heads per key/value head
    for n, block in enumerate(model.blocks):
        a = block.ln_1(h)
        q = split_heads(block.attn.W_Q(a), c.num_heads)  # (B, H, L, Dh)
        k, v = (split_heads(W(a), c.num_kv_heads).repeat_interleave(group, dim=1)
                for W in (block.attn.W_K, block.attn.W_V))  # (B, H, L, Dh): head h uses h // group
        scores = q @ k.transpose(-2, -1) / math.sqrt(c.head_dim)  # (B, H, L, L)
        weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        concat = merge_heads(weights @ v)  # (B, L, D): head i in features i*Dh ... (i+1)*Dh - 1
        for layer, head in ablate:
            if layer == n:
                concat[..., head * c.head_dim:(head + 1) * c.head_dim] = 0.0
        h = h + block.attn.W_O(concat)
        if not c.attention_only:
            m = block.ln_2(h)
            h = h + block.mlp.c_proj(F.gelu(block.mlp.c_fc(m)))
        all_weights.append(weights)
    return model.ln_f(h) @ model.wte.weight.T, all_weights  # (B, L, V)


def test_shapes_and_weights_convention():
    model = small_model()
    x = tokens()
    logits, weights = model(x)
    assert logits.shape == (3, T, V) and weights is None
    logits_w, weights = model(x, need_weights=True)
    assert len(weights) == 2 and all(set(w) == {"self_attn"} for w in weights)
    assert stack_weights(weights, "self_attn").shape == (2, 3, 4, T, T)  # (N, B, H, T, T)
    # The fused kernel (no weights) and the reference kernel (weights) agree.
    torch.testing.assert_close(logits_w, logits, rtol=0, atol=1e-12)


def test_changing_a_future_token_changes_no_earlier_logit():
    model = small_model()
    x = tokens()
    for t in range(T):
        changed = x.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        before, _ = model(x)
        after, _ = model(changed)
        assert torch.equal(before[:, :t], after[:, :t])  # exactly: no path from the future
        assert not torch.allclose(before[:, t], after[:, t])  # the token itself matters


@pytest.mark.parametrize("num_kv_heads", [None, 2, 1])
@pytest.mark.parametrize("attention_only", [False, True])
def test_forward_and_weights_equal_a_hand_run(attention_only, num_kv_heads):
    model = small_model(attention_only=attention_only, num_kv_heads=num_kv_heads)
    x = tokens()
    logits, weights = model(x, need_weights=True)
    expected_logits, expected_weights = hand_run(model, x)
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-12)
    for n in range(2):
        torch.testing.assert_close(weights[n]["self_attn"], expected_weights[n], rtol=0,
                                   atol=1e-12)
    assert torch.equal(weights[0]["self_attn"].triu(1), torch.zeros(3, 4, T, T, dtype=F64))


def test_tied_weights_are_one_tensor_and_untied_are_two():
    tied = small_model()
    assert tied.lm_head.weight is tied.wte.weight
    assert tied.lm_head.bias is None
    with torch.no_grad():
        tied.wte.weight[3, 0] += 1.0
    assert tied.lm_head.weight[3, 0] == tied.wte.weight[3, 0]
    names = [name for name, _ in tied.named_parameters()]
    assert "wte.weight" in names and "lm_head.weight" not in names  # counted once
    untied = small_model(tie_weights=False)
    assert untied.lm_head.weight is not untied.wte.weight
    extra = sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters())
    assert extra == V * 16


def test_attention_only_has_no_mlp_parameters():
    full, attention_only = small_model(), small_model(attention_only=True)
    assert not any("mlp" in name or "ln_2" in name for name, _ in
                   attention_only.named_parameters())
    assert any("mlp.c_fc" in name for name, _ in full.named_parameters())
    D, F_ = 16, 64  # dim_feedforward defaults to 4 * d_model
    per_block = (D * F_ + F_) + (F_ * D + D) + 2 * D  # c_fc, c_proj, ln_2
    difference = (sum(p.numel() for p in full.parameters())
                  - sum(p.numel() for p in attention_only.parameters()))
    assert difference == 2 * per_block


def test_gpt2_initialisation():
    torch.manual_seed(0)
    model = GPT(GPTConfig(500, max_len=256, d_model=256, num_heads=4, num_layers=8))
    R = 2 * 8  # residual branches
    block = model.blocks[0]
    assert block.attn.W_Q.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.wpe.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.03)
    for out in (block.attn.W_O, block.mlp.c_proj):
        assert out.weight.std().item() == pytest.approx(0.02 / math.sqrt(R), rel=0.03)
    assert torch.equal(block.attn.W_Q.bias, torch.zeros(256))
    assert torch.equal(block.ln_1.weight, torch.ones(256))
    assert model.config.dim_feedforward == 1024
    torch.manual_seed(0)
    only = GPT(GPTConfig(50, d_model=256, num_layers=8, attention_only=True, init_std=0.05))
    assert only.blocks[0].attn.W_O.weight.std().item() == pytest.approx(0.05 / math.sqrt(8),
                                                                          rel=0.03)


@pytest.mark.parametrize("num_kv_heads", [None, 2, 1])
def test_head_mask_of_ones_is_no_mask_and_a_zero_removes_the_head(num_kv_heads):
    model = small_model(num_kv_heads=num_kv_heads)
    x = tokens()
    logits, weights = model(x, need_weights=True)
    ones, _ = model(x, head_mask=torch.ones(2, 4, dtype=F64))
    assert torch.equal(ones, model(x)[0])
    mask = torch.ones(2, 4, dtype=F64)
    mask[0, 2] = mask[1, 0] = 0.0
    masked, masked_weights = model(x, need_weights=True, head_mask=mask)
    expected, _ = hand_run(model, x, ablate=[(0, 2), (1, 0)])
    torch.testing.assert_close(masked, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(masked, logits)
    # The weights are the heads' patterns: the first layer's do not change with the mask.
    torch.testing.assert_close(masked_weights[0]["self_attn"], weights[0]["self_attn"])
    # A float mask works too (the mask is on the values, so the kernel does not matter).
    half, _ = model(x, head_mask=torch.full((2, 4), 0.5, dtype=torch.float32))
    assert not torch.allclose(half, logits)


def test_head_mask_works_with_any_kernel_and_has_gradients():
    model = small_model(attention_fn=reference_attention)
    x = tokens()
    mask = torch.ones(2, 4, dtype=F64, requires_grad=True)
    logits, _ = model(x, head_mask=mask)
    logits.logsumexp(-1).sum().backward()
    assert mask.grad is not None and mask.grad.abs().min() > 0  # every head matters a bit


def copy_period_3(generator, B=32, length=12):
    start = torch.randint(V, (B, 3), generator=generator)  # (B, 3)
    return start.repeat(1, length // 3)  # x_{t+3} = x_t


def lm_loss(model, x):
    logits, _ = model(x)
    return F.cross_entropy(logits[:, 2:-1].flatten(0, 1), x[:, 3:].flatten())


def test_a_tiny_model_learns_a_copy_task_and_training_is_deterministic():
    def run():
        torch.manual_seed(0)
        model = GPT(GPTConfig(V, max_len=12, d_model=32, num_heads=2, num_layers=1))
        return model, train(model, lm_loss, copy_period_3, steps=150, lr=3e-3, seed=0,
                            progress=False).losses

    model, first = run()
    _, second = run()
    assert first == second  # same seed, same history, bit for bit
    start, end = sum(first[:10]) / 10, sum(first[-10:]) / 10
    assert end * 3 <= start, (start, end)  # ln 11 = 2.4 -> about 0.02
    x = copy_period_3(torch.Generator().manual_seed(1))
    logits, _ = model(x)
    assert (logits[:, 2:-1].argmax(-1) == x[:, 3:]).float().mean() > 0.95


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size must be >= 1"),
        ({"vocab_size": 10.0}, TypeError, "vocab_size"),
        ({"d_model": 30, "num_heads": 4}, ValueError, "divisible"),
        ({"max_len": 0}, ValueError, "max_len"),
        ({"num_layers": True}, TypeError, "num_layers"),
        ({"dim_feedforward": 0}, ValueError, "dim_feedforward"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"layer_norm_eps": 0.0}, ValueError, "layer_norm_eps"),
        ({"activation": "swish"}, ValueError, "'gelu_tanh'"),
        ({"bias": 1}, TypeError, "bias"),
        ({"attention_only": "yes"}, TypeError, "attention_only"),
        ({"tie_weights": None}, TypeError, "tie_weights"),
        ({"init_std": -0.1}, ValueError, "init_std"),
        ({"num_kv_heads": 0}, ValueError, "num_kv_heads must be >= 1, got 0"),
        ({"num_kv_heads": 3}, ValueError, "num_kv_heads=3 must divide num_heads=4"),
        ({"num_kv_heads": 8}, ValueError, "num_kv_heads=8 must divide num_heads=4"),
        ({"num_kv_heads": 2.0}, TypeError, "num_kv_heads must be an int, got float"),
        ({"num_kv_heads": True}, TypeError, "num_kv_heads must be an int, got bool"),
    ],
)
def test_config_is_validated(kwargs, error, words):
    with pytest.raises(error) as info:
        GPTConfig(**({"vocab_size": 10} | kwargs))
    assert words in str(info.value)


def test_config_is_frozen_and_model_checks_its_arguments():
    with pytest.raises(AttributeError):
        GPTConfig(10).d_model = 3
    with pytest.raises(TypeError, match="config must be a GPTConfig"):
        GPT({"vocab_size": 10})
    with pytest.raises(TypeError, match="attention_fn"):
        GPT(GPTConfig(10), attention_fn="reference")


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda m: m(tokens().double()), TypeError, ["tokens", "integer"]),
        (lambda m: m(tokens()[0]), ValueError, ["tokens", "2 dimensions"]),
        (lambda m: m(tokens() + V), ValueError, ["tokens", f"[0, {V - 1}]"]),
        (lambda m: m(-tokens() - 1), ValueError, ["tokens", "ids in"]),
        (lambda m: m(tokens(length=17)), ValueError, ["tokens", "max_len = 16"]),
        (lambda m: m(tokens(length=0)), ValueError, ["tokens", "1 <= T"]),
        (lambda m: m(tokens(), need_weights=1), TypeError, ["need_weights"]),
        (lambda m: m(tokens(), head_mask=torch.ones(4, 2)), ValueError,
         ["head_mask", "(2, 4)"]),
        (lambda m: m(tokens(), head_mask=torch.ones(2, 4, dtype=torch.long)), TypeError,
         ["head_mask", "floating"]),
        (lambda m: m(tokens(), head_mask=torch.full((2, 4), float("nan"))), ValueError,
         ["head_mask", "finite"]),
        (lambda m: m([[1, 2]]), TypeError, ["tokens", "torch.Tensor"]),
    ],
)
def test_bad_inputs_are_named(call, error, words):
    model = small_model()
    with pytest.raises(error) as info:
        call(model)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


# ---------------------------------------------------------------- grouped-query attention (ch. 8)


def test_num_kv_heads_is_stored_as_the_number_and_reaches_every_block():
    assert GPTConfig(10).num_kv_heads == 4  # None -> num_heads: multi-head attention
    assert GPTConfig(10, num_kv_heads=2).num_kv_heads == 2
    model = small_model(num_kv_heads=1)
    for block in model.blocks:
        assert block.attn.num_kv_heads == 1 and block.attn.num_heads == 4
        assert block.attn.W_K.weight.shape == block.attn.W_V.weight.shape == (4, 16)  # (Dh, D)


@pytest.mark.parametrize("num_kv_heads", [2, 1])
def test_gqa_model_has_fewer_parameters_by_the_key_value_rows(num_kv_heads):
    full, grouped = small_model(), small_model(num_kv_heads=num_kv_heads)
    D, Dh, N = 16, 4, 2
    rows_gone = D - num_kv_heads * Dh  # per projection: H*Dh - Hkv*Dh rows
    per_block = 2 * rows_gone * (D + 1)  # W_K and W_V, weight and bias
    difference = (sum(p.numel() for p in full.parameters())
                  - sum(p.numel() for p in grouped.parameters()))
    assert difference == N * per_block
    no_bias = small_model(num_kv_heads=num_kv_heads, bias=False)
    difference = (sum(p.numel() for p in small_model(bias=False).parameters())
                  - sum(p.numel() for p in no_bias.parameters()))
    assert difference == N * 2 * rows_gone * D


def test_gqa_initialisation_is_gpt2s():
    torch.manual_seed(0)
    model = GPT(GPTConfig(50, d_model=256, num_heads=8, num_layers=8, num_kv_heads=2))
    attn = model.blocks[0].attn
    for linear in (attn.W_K, attn.W_V):
        assert linear.weight.shape == (64, 256)  # Hkv * Dh = 2 * 32 rows
        assert linear.weight.std().item() == pytest.approx(0.02, rel=0.03)
        assert torch.equal(linear.bias, torch.zeros(64))
    assert attn.W_O.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.03)


@pytest.mark.parametrize("num_kv_heads", [2, 1])
def test_gqa_model_trains_and_is_causal(num_kv_heads):
    torch.manual_seed(0)
    model = GPT(GPTConfig(V, max_len=12, d_model=32, num_heads=4, num_layers=1,
                          num_kv_heads=num_kv_heads))
    x = copy_period_3(torch.Generator().manual_seed(0))
    loss = lm_loss(model, x)
    loss.backward()
    W_K = model.blocks[0].attn.W_K
    assert W_K.weight.grad.shape == (8 * num_kv_heads, 32) and W_K.weight.grad.abs().sum() > 0
    losses = train(model, lm_loss, copy_period_3, steps=40, lr=3e-3, seed=0,
                   progress=False).losses
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    model.eval()
    changed = x.clone()
    changed[:, 6] = (changed[:, 6] + 1) % V
    assert torch.equal(model(x)[0][:, :6], model(changed)[0][:, :6])


def test_gqa_kernels_agree_and_the_cache_size_matches_the_projections():
    model = small_model(num_kv_heads=2)
    x = tokens()
    fused, _ = model(x)
    reference = small_model(attention_fn=reference_attention, num_kv_heads=2)
    torch.testing.assert_close(reference(x)[0], fused, rtol=0, atol=1e-12)
    c = model.config
    stored = 0
    for block in model.blocks:  # what a KV cache holds: each block's projected keys and values
        _, k, v = block.attn.project(*(3 * (block.ln_1(model._embed(x)),)))
        assert k.shape == (3, 2, T, c.head_dim)
        stored += k.numel() * k.element_size() + v.numel() * v.element_size()
    assert kv_cache_bytes(c.num_layers, c.num_kv_heads, c.head_dim, T, batch_size=3,
                          dtype=F64) == stored
    assert kv_cache_bytes(c.num_layers, c.num_heads, c.head_dim, T, batch_size=3,
                          dtype=F64) == 2 * stored  # multi-head: twice as big


# --- the residual stream on request (Chapter 8) ---------------------------------------------


@pytest.mark.parametrize("attention_only", [False, True])
def test_residual_stream_is_each_blocks_input_and_the_last_output(attention_only):
    model = small_model(num_layers=3, attention_only=attention_only)
    x = tokens()
    with torch.no_grad():
        stream = model.residual_stream(x)
        logits, _ = model(x)
    assert stream.shape == (4, 3, T, 16)  # N + 1 states
    positions = torch.arange(T)
    torch.testing.assert_close(stream[0], model.wte(x) + model.wpe(positions),
                               rtol=0, atol=0)
    for n, block in enumerate(model.blocks):  # each state is the previous one through a block
        h = stream[n] + block.attn(block.ln_1(stream[n]), block.ln_1(stream[n]),
                                   block.ln_1(stream[n]), is_causal=True)[0]
        if not attention_only:
            h = h + block.mlp(block.ln_2(h))
        torch.testing.assert_close(stream[n + 1], h, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.lm_head(model.ln_f(stream[-1])), logits, rtol=0, atol=0)


def test_residual_stream_checks_its_tokens():
    with pytest.raises(ValueError, match="tokens"):
        small_model().residual_stream(torch.zeros(1, 40, dtype=torch.long))
