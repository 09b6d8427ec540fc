"""T5: relative position buckets against Hugging Face's, RMSNorm, exact equality with Hugging
Face's T5ForConditionalGeneration (float64, padding, batch > 1, both feed-forwards), incremental
decoding with the KV cache, the shared position bias, training, and argument checks."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch

from attention_course.models.t5 import (
    T5,
    RMSNorm,
    T5Config,
    biased_dot_product_score,
    huggingface_norms_in_input_precision,
    relative_position_bucket,
    relative_positions,
)
from attention_course.train import train

transformers = pytest.importorskip("transformers")

F64 = torch.float64
TOL = 1e-10  # float64: observed differences ~3e-15


def hf_t5(feed_forward="relu", seed=0, **kwargs):
    options = {"vocab_size": 40, "d_model": 32, "d_kv": 8, "num_heads": 4, "d_ff": 48,
               "num_layers": 2, "num_decoder_layers": 3, "relative_attention_num_buckets": 8,
               "relative_attention_max_distance": 20, "dropout_rate": 0.0,
               "feed_forward_proj": feed_forward, "attn_implementation": "eager"} | kwargs
    torch.manual_seed(seed)
    config = transformers.T5Config(**options)
    return transformers.T5ForConditionalGeneration(config).to(F64).eval()


def batch(B=3, S=13, T=11, V=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, V, (B, S), generator=g)
    tgt = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[1, S * 2 // 3:] = False  # padded rows
    mask[-1, S // 3:] = False
    return src, tgt, mask


def small(seed=0, **kwargs):
    torch.manual_seed(seed)
    options = {"vocab_size": 20, "d_model": 16, "num_heads": 2, "d_ff": 32,
               "num_buckets": 8, "max_distance": 16} | kwargs
    return T5(T5Config(**options)).to(F64).eval()


# --- relative position buckets ---------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (8, 20), (6, 7), (16, 9)])
def test_buckets_equal_huggingface_on_a_grid(bidirectional, num_buckets, max_distance):
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-300, 301)[None, :] + torch.arange(0, 3)[:, None] * 7  # (3, 601)
    ours = relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=num_buckets,
                                    max_distance=max_distance)
    theirs = T5Attention._relative_position_bucket(rel, bidirectional=bidirectional,
                                                   num_buckets=num_buckets,
                                                   max_distance=max_distance)
    assert torch.equal(ours, theirs)
    assert int(ours.min()) >= 0 and int(ours.max()) < num_buckets


def test_bucket_structure_exact_then_logarithmic():
    rel = torch.arange(-200, 201)
    causal = relative_position_bucket(rel, bidirectional=False, num_buckets=32, max_distance=128)
    assert causal[rel >= 0].eq(0).all()  # the future (and j = i) share bucket 0
    assert torch.equal(causal[(rel <= 0) & (rel > -16)], torch.arange(15, -1, -1))  # exact
    assert causal[rel <= -128].eq(31).all()  # everything far shares the last bucket
    past = causal[rel <= 0].flip(0)  # distance 0, 1, 2, …
    assert (past.diff() >= 0).all()  # monotone in distance
    widths = torch.bincount(past)[16:]  # log buckets get wider
    assert widths[0] < widths[-2]
    both = relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    assert torch.equal(both[rel > 0] - 16, both[rel < 0].flip(0))  # mirror halves
    assert int(both[rel == 0]) == 0 and int(both[rel == 1]) == 17


def test_relative_positions_are_key_minus_query():
    assert relative_positions(2, 3).tolist() == [[0, 1, 2], [-1, 0, 1]]


def test_bucket_arguments_are_named():
    with pytest.raises(TypeError, match="relative_position"):
        relative_position_bucket(torch.zeros(3), bidirectional=True, num_buckets=8,
                                 max_distance=20)
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(torch.zeros(3, dtype=torch.long), bidirectional=False,
                                 num_buckets=8, max_distance=4)
    with pytest.raises(TypeError, match="bidirectional"):
        relative_position_bucket(torch.zeros(3, dtype=torch.long), bidirectional=1,
                                 num_buckets=8, max_distance=20)


# --- pieces ----------------------------------------------------------------------------------


def test_rmsnorm_has_no_mean_subtraction():
    norm = RMSNorm(4).double()
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]], dtype=F64)
    assert torch.allclose(norm(x), x / torch.tensor([[1.0], [1.0]], dtype=F64), atol=1e-5)
    y = torch.randn(5, 4, dtype=F64) + 3.0
    expected = y / y.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    assert torch.allclose(norm(y), expected, atol=1e-14, rtol=0)
    assert norm(y).mean(-1).abs().min() > 0.5  # a LayerNorm would centre it


def test_biased_score_is_unscaled_dot_product_plus_bias():
    q, k = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 5, 4, dtype=F64)
    bias = torch.randn(1, 3, 5, dtype=F64)
    assert torch.allclose(biased_dot_product_score(bias)(q, k), q @ k.mT + bias, atol=1e-14)


def test_model_has_no_bias_and_one_bias_table_per_stack():
    model = small()
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith(".bias") for n in names)
    tables = [n for n in names if "position_bias" in n]
    assert tables == ["encoder.position_bias.embedding.weight",
                      "decoder.position_bias.embedding.weight"]


# --- equality with Hugging Face --------------------------------------------------------------


@pytest.mark.parametrize("feed_forward", ["relu", "gated-gelu"])
def test_logits_equal_huggingface_float64_with_padding(feed_forward):
    hf = huggingface_norms_in_input_precision(hf_t5(feed_forward))
    model = T5.from_huggingface(hf)
    src, tgt, mask = batch()
    expected = hf(input_ids=src, attention_mask=mask.long(), decoder_input_ids=tgt).logits
    logits, _ = model(src, tgt, mask)
    assert logits.dtype == F64 and logits.shape == (3, 11, 40)
    assert (logits - expected).abs().max() < TOL
    assert expected.abs().max() > 0.1  # not a comparison of zeros
    unmasked, _ = model(src, tgt)  # the padding mask matters
    assert (unmasked - logits).abs().max() > 1e-3


def test_unscaled_head_of_t5_v1_1_equals_huggingface():
    hf = huggingface_norms_in_input_precision(hf_t5("gated-gelu", tie_word_embeddings=False))
    model = T5.from_huggingface(hf)
    assert model.config.scale_logits is False
    src, tgt, mask = batch(seed=1)
    expected = hf(input_ids=src, attention_mask=mask.long(), decoder_input_ids=tgt).logits
    assert (model(src, tgt, mask)[0] - expected).abs().max() < TOL


def test_huggingface_norm_in_float32_is_the_only_difference():
    hf = hf_t5()
    model = T5.from_huggingface(hf)
    src, tgt, mask = batch()
    before = hf(input_ids=src, attention_mask=mask.long(), decoder_input_ids=tgt).logits
    ours = model(src, tgt, mask)[0]
    assert 1e-12 < (ours - before).abs().max() < 1e-5  # float32 rounding of mean(x^2)
    huggingface_norms_in_input_precision(hf)
    after = hf(input_ids=src, attention_mask=mask.long(), decoder_input_ids=tgt).logits
    assert (ours - after).abs().max() < TOL


def test_from_huggingface_copies_config_mode_and_refuses_other_models():
    hf = hf_t5()
    model = T5.from_huggingface(hf)
    c = model.config
    assert (c.d_model, c.num_heads, c.num_encoder_layers, c.num_decoder_layers, c.d_ff,
            c.num_buckets, c.max_distance, c.bos_id) == (32, 4, 2, 3, 48, 8, 20, 0)
    assert not model.training and model.shared.weight.dtype == F64
    with pytest.raises(TypeError, match="T5ForConditionalGeneration"):
        T5.from_huggingface(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="d_kv"):
        T5.from_huggingface(hf_t5(d_kv=4))


# --- decoding with the cache -----------------------------------------------------------------


def test_incremental_decoding_with_cache_equals_full_forward():
    model = T5.from_huggingface(huggingface_norms_in_input_precision(hf_t5()))
    src, tgt, mask = batch()
    full, _ = model(src, tgt, mask)
    memory, key_mask = model.encode(src, mask)
    past, pieces = None, []
    for start, stop in ((0, 1), (1, 4), (4, 5), (5, 11)):  # one token and several at a time
        logits, past = model.decode_step(tgt[:, start:stop], memory, key_mask, past)
        pieces.append(logits)
    assert (torch.cat(pieces, dim=1) - full).abs().max() < TOL
    assert past[0]["self_attn"][0].shape == (3, 4, 11, 8)
    assert past[0]["cross_attn"][0].shape == (3, 4, 13, 8)


def test_greedy_decode_same_with_and_without_cache():
    model = small()
    src = torch.randint(0, 20, (2, 7), generator=torch.Generator().manual_seed(3))
    a = model.greedy_decode(src, None, 6, use_cache=True)
    b = model.greedy_decode(src, None, 6, use_cache=False)
    assert a.shape == (2, 6) and torch.equal(a, b)


def test_decoder_is_causal_and_position_bias_is_used():
    model = small()
    src, tgt, _ = batch(B=2, S=6, T=5, V=20)
    logits, _ = model(src, tgt)
    changed = tgt.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 20
    logits2, _ = model(src, changed)
    assert torch.allclose(logits[:, :3], logits2[:, :3], atol=1e-12)  # no peeking ahead
    assert (logits[:, 3:] - logits2[:, 3:]).abs().max() > 1e-6
    with torch.no_grad():  # without the bias the model is blind to word order in the encoder
        model.encoder.position_bias.embedding.weight.zero_()
        model.decoder.position_bias.embedding.weight.zero_()
    permuted = src[:, torch.randperm(6, generator=torch.Generator().manual_seed(0))]
    memory = model.encode(src)[0]
    memory_p = model.encode(permuted)[0]
    assert torch.allclose(memory.sort(1).values, memory_p.sort(1).values, atol=1e-12)


def test_weights_on_request_have_the_documented_shapes():
    model = small()
    src, tgt, mask = batch(B=2, S=6, T=5, V=20)
    _, weights = model(src, tgt, mask, need_weights=True)
    assert [w["self_attn"].shape for w in weights["encoder"]] == [(2, 2, 6, 6)] * 2
    dec = weights["decoder"][0]
    assert dec["self_attn"].shape == (2, 2, 5, 5) and dec["cross_attn"].shape == (2, 2, 5, 6)
    assert torch.allclose(dec["self_attn"].sum(-1), torch.ones(2, 2, 5, dtype=F64))
    assert dec["self_attn"].triu(1).abs().max() == 0  # causal
    assert model(src, tgt)[1] is None


def test_training_learns_to_copy():
    torch.manual_seed(0)
    model = T5(T5Config(vocab_size=12, d_model=32, num_heads=4, d_ff=64, num_buckets=8,
                        max_distance=16))

    def sample(g):
        x = torch.randint(3, 12, (32, 6), generator=g)
        return x, torch.cat([torch.ones(32, 1, dtype=torch.long), x], 1)

    def loss_fn(m, b):
        x, y = b
        logits, _ = m(x, y[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 12), y[:, 1:].reshape(-1))

    result = train(model, loss_fn, sample, steps=150, lr=3e-3)
    assert result.losses[-1] < 0.3 * result.losses[0]
    x = torch.randint(3, 12, (64, 6), generator=torch.Generator().manual_seed(99))
    accuracy = (model.greedy_decode(x, None, 6) == x).float().mean().item()
    assert accuracy > 0.2  # chance: 1/9; measured 0.34 after 150 steps


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"vocab_size": 0}, ValueError, "vocab_size"),
    ({"d_model": 10, "num_heads": 4}, ValueError, "d_model=10"),
    ({"feed_forward": "gelu"}, ValueError, "feed_forward"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"bos_id": 20}, ValueError, "bos_id"),
    ({"num_buckets": 8, "max_distance": 2}, ValueError, "max_distance"),
    ({"scale_logits": 1}, TypeError, "scale_logits"),
])
def test_config_errors_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        T5Config(**({"vocab_size": 20} | kwargs))


def test_call_errors_name_the_argument():
    model = small()
    src, tgt, mask = batch(B=2, S=6, T=5, V=20)
    with pytest.raises(ValueError, match="src has token ids"):
        model(src + 100, tgt)
    with pytest.raises(TypeError, match="tgt_in"):
        model(src, tgt.double())
    with pytest.raises(ValueError, match="src_mask"):
        model(src, tgt, mask[:, :3])
    with pytest.raises(TypeError, match="src_mask"):
        model(src, tgt, mask.long())
    with pytest.raises(ValueError, match="batch size"):
        model(src, tgt[:1])
    memory, key_mask = model.encode(src, mask)
    with pytest.raises(ValueError, match="memory"):
        model.decode_step(tgt, memory[..., :3], key_mask)
    with pytest.raises(TypeError, match="past"):
        model.decode_step(tgt, memory, key_mask, past={"self_attn": None})
    with pytest.raises(TypeError, match="config"):
        T5({"vocab_size": 3})
