"""KV-cached generation: the cache changes the cost, never the tokens or the logits."""

from __future__ import annotations

import pytest
import torch

from attention_course.inference import KVCache, generate, next_token
from attention_course.models.gpt import GPT, GPTConfig
from attention_course.models.transformer_seq2seq import TransformerConfig, TransformerSeq2Seq
from tests.helpers import assert_raises_naming

F64 = torch.float64


def gpt(seed=0, dtype=F64, **kwargs):
    torch.manual_seed(seed)
    config = dict(vocab_size=13, max_len=24, d_model=16, num_heads=4, num_layers=2)
    return GPT(GPTConfig(**{**config, **kwargs})).to(dtype).eval()


def prompts(B=3, T=5, seed=1):
    return torch.randint(3, 13, (B, T), generator=torch.Generator().manual_seed(seed))


# --- forward_with_cache ------------------------------------------------------------------


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("splits", [(7,), (3, 1, 3), (1, 1, 1, 1, 1, 1, 1), (2, 5)])
def test_a_sequence_fed_in_pieces_gives_the_logits_of_the_whole(num_kv_heads, splits):
    model = gpt(num_kv_heads=num_kv_heads)
    tokens = prompts(T=7)
    whole, _ = model(tokens)
    pieces, past, start = [], None, 0
    for size in splits:
        logits, past = model.forward_with_cache(tokens[:, start:start + size], past)
        start += size
        pieces.append(logits)
        for k, v in past:  # the cache grows by the new positions, with Hkv heads
            assert k.shape == v.shape == (3, num_kv_heads, start, 4)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-12)


def test_the_cache_is_a_value_the_model_keeps_nothing():
    model = gpt()
    tokens = prompts(T=4)
    _, past = model.forward_with_cache(tokens[:, :3])
    a, _ = model.forward_with_cache(tokens[:, 3:], past)
    b, _ = model.forward_with_cache(tokens[:, 3:], past)  # the same past again: same result
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    fresh, _ = model.forward_with_cache(tokens[:, 3:])  # no past: position 0, no context
    assert not torch.allclose(a, fresh)


# --- generate ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, atol", [(F64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("num_kv_heads", [4, 1])
def test_cached_and_uncached_greedy_generation_agree(dtype, atol, num_kv_heads):
    model = gpt(dtype=dtype, num_kv_heads=num_kv_heads)
    tokens = prompts()
    fast, fast_logits = generate(model, tokens, 12, return_logits=True)
    slow, slow_logits = generate(model, tokens, 12, use_cache=False, return_logits=True)
    assert fast.shape == (3, 17) and torch.equal(fast[:, :5], tokens)
    assert torch.equal(fast, slow)
    torch.testing.assert_close(fast_logits, slow_logits, rtol=0, atol=atol)
    assert torch.equal(fast[:, 5:], fast_logits.argmax(-1))  # greedy: the argmax each step


def test_cached_and_uncached_sampling_agree_with_the_same_generator():
    model = gpt()
    tokens = prompts()
    runs = [generate(model, tokens, 10, use_cache=cache, temperature=1.5, top_k=5,
                     generator=torch.Generator().manual_seed(7)) for cache in (True, False)]
    assert torch.equal(*runs)
    other = generate(model, tokens, 10, temperature=1.5, top_k=5,
                     generator=torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)  # sampling does depend on the draws


def test_left_padded_prompts_continue_as_they_would_alone():
    model = gpt()
    lengths = [5, 2, 3]
    alone = [prompts(B=1, T=n, seed=10 + i) for i, n in enumerate(lengths)]
    padded = torch.zeros(3, 5, dtype=torch.long)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    for i, p in enumerate(alone):
        padded[i, 5 - p.shape[1]:], mask[i, 5 - p.shape[1]:] = p[0], True
    for use_cache in (True, False):
        out, logits = generate(model, padded, 6, attention_mask=mask, use_cache=use_cache,
                               return_logits=True)
        for i, p in enumerate(alone):
            ref, ref_logits = generate(model, p, 6, return_logits=True)
            assert torch.equal(out[i, 5:], ref[0, p.shape[1]:])
            torch.testing.assert_close(logits[i], ref_logits[0], rtol=0, atol=1e-12)


def test_kv_cache_size_counts_keys_and_values_of_every_block():
    for num_kv_heads in (4, 2, 1):
        model = gpt(num_kv_heads=num_kv_heads, dtype=torch.float32)
        _, layers = model.forward_with_cache(prompts(T=6))
        cache = KVCache(tuple(layers))
        assert cache.length == 6
        assert cache.nbytes == 2 * 2 * 3 * num_kv_heads * 6 * 4 * 4  # 2 tensors, N, B, Hkv, P, Dh


# --- next_token ---------------------------------------------------------------------------


def test_next_token_greedy_and_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 4.0]])
    assert next_token(logits).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    assert next_token(logits, temperature=2.0, top_k=1, generator=g).tolist() == [1, 0]
    seen = {int(next_token(logits[:1], temperature=5.0, top_k=2, generator=g))
            for _ in range(200)}
    assert seen == {1, 3}  # only the two most likely, both drawn
    everything = {int(next_token(logits[:1], temperature=5.0, generator=g)) for _ in range(400)}
    assert everything == {0, 1, 2, 3}


# --- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, words", [
    (lambda m, t: generate(torch.nn.Linear(2, 2), t, 2), TypeError, ["model", "GPT"]),
    (lambda m, t: generate(m, t, 0), ValueError, ["max_new_tokens", ">= 1"]),
    (lambda m, t: generate(m, t, 20), ValueError, ["max_new_tokens=20", "max_len = 24"]),
    (lambda m, t: generate(m, t, 2, temperature=-1.0), ValueError, ["temperature"]),
    (lambda m, t: generate(m, t, 2, top_k=0), ValueError, ["top_k", ">= 1"]),
    (lambda m, t: generate(m, t, 2, generator=3), TypeError, ["generator"]),
    (lambda m, t: generate(m, t, 2, attention_mask=torch.ones(3, 4, dtype=torch.bool)),
     ValueError, ["attention_mask", "(3, 5)"]),
    (lambda m, t: generate(m, t, 2, attention_mask=torch.ones(3, 5)), TypeError,
     ["attention_mask", "bool"]),
    (lambda m, t: generate(m, t, 2, attention_mask=torch.tensor([[True] * 4 + [False]] * 3)),
     ValueError, ["attention_mask", "left"]),
    (lambda m, t: generate(m, t, 2, attention_mask=torch.zeros(3, 5, dtype=torch.bool)),
     ValueError, ["attention_mask", "real token"]),
    (lambda m, t: m.forward_with_cache(t, [(torch.zeros(3, 4, 2, 4),) * 2]), ValueError,
     ["past", "2 blocks"]),
    (lambda m, t: m.forward_with_cache(t, "cache"), TypeError, ["past"]),
])
def test_bad_arguments_are_named(call, error, words):
    assert_raises_naming(lambda: call(gpt(), prompts()), error, words)


# --- the Transformer decoder ----------------------------------------------------------------


def seq2seq():
    torch.manual_seed(0)
    config = TransformerConfig(src_vocab_size=11, tgt_vocab_size=13, d_model=16, num_heads=2,
                               num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
                               max_len=20)
    return TransformerSeq2Seq(config).to(F64).eval()


def test_decoder_steps_give_the_logits_of_the_whole_target():
    model = seq2seq()
    src = torch.randint(3, 11, (3, 7), generator=torch.Generator().manual_seed(0))
    memory, key_mask = model.encode(src, torch.tensor([7, 5, 2]))
    tgt = torch.randint(3, 13, (3, 6), generator=torch.Generator().manual_seed(1))
    whole = model.decode(tgt, memory, key_mask)
    pieces, past = [], None
    for a, b in ((0, 2), (2, 3), (3, 6)):
        logits, past = model.decode_step(tgt[:, a:b], memory, key_mask, past)
        pieces.append(logits)
        assert past[0]["self_attn"][0].shape == (3, 2, b, 8)  # grows with the target
        assert past[0]["cross_attn"][0].shape == (3, 2, 7, 8)  # the memory, projected once
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-12)


def test_decoder_greedy_decoding_is_the_same_with_and_without_the_cache():
    model = seq2seq()
    src = torch.randint(3, 11, (4, 6), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([6, 3, 1, 4])
    cached, _ = model.greedy_decode(src, lengths, 12)
    uncached, _ = model.greedy_decode(src, lengths, 12, use_cache=False)
    assert cached.shape == (4, 12) and torch.equal(cached, uncached)


def test_decoder_step_rejects_a_foreign_past():
    model = seq2seq()
    memory, key_mask = model.encode(torch.randint(3, 11, (2, 4)), torch.tensor([4, 4]))
    tgt = torch.randint(3, 13, (2, 1))
    assert_raises_naming(lambda: model.decode_step(tgt, memory, key_mask, past=("k", "v")),
                         TypeError, ["past", "2 per-layer caches"])
    _, past = model.decode_step(torch.randint(3, 13, (2, 19)), memory, key_mask)
    assert_raises_naming(lambda: model.decode_step(torch.randint(3, 13, (2, 2)), memory,
                                                   key_mask, past),
                         ValueError, ["past holds 19 positions", "max_len = 20"])
