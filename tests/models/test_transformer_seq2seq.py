"""The encoder–decoder Transformer model: config, causality, determinism, greedy decoding,
attention weights on request, and argument checks in the caller's words."""

import re

import pytest
import torch

from attention_course.data import BOS, make_batch, vocab_size
from attention_course.masks import padding_mask
from attention_course.metrics import seq2seq_loss
from attention_course.models.transformer_seq2seq import TransformerConfig, TransformerSeq2Seq
from attention_course.train import train

V = vocab_size(6)


def small_model(**kwargs):
    torch.manual_seed(0)
    config = TransformerConfig(V, V, d_model=16, num_heads=2, **kwargs)
    return TransformerSeq2Seq(config).eval()


def batch(seed=0, n=2, min_len=4, max_len=4, task="reverse"):
    return make_batch(task, n, min_len=min_len, max_len=max_len, num_symbols=6,
                      generator=torch.Generator().manual_seed(seed))


def test_config_is_validated():
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(10, 10, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="activation"):
        TransformerConfig(10, 10, activation="swish")
    with pytest.raises(TypeError, match="num_heads"):
        TransformerConfig(10, 10, num_heads=2.0)
    with pytest.raises(AttributeError):
        TransformerConfig(10, 10).d_model = 3  # frozen


def test_decoder_cannot_see_the_future():
    model = small_model()
    b = batch()
    logits, _ = model(b.src, b.src_lengths, b.tgt_in)
    changed = b.tgt_in.clone()
    changed[:, 3:] = 5  # change the future of position 2
    logits2, _ = model(b.src, b.src_lengths, changed)
    assert torch.allclose(logits[:, :3], logits2[:, :3])
    assert not torch.allclose(logits[:, 3:], logits2[:, 3:])


def test_training_is_deterministic_and_greedy_decoding_is_consistent():
    def run():
        torch.manual_seed(0)
        model = TransformerSeq2Seq(TransformerConfig(
            V, V, d_model=16, num_heads=2, norm_first=True, num_encoder_layers=1,
            num_decoder_layers=1, dim_feedforward=32))
        result = train(model, seq2seq_loss, lambda g: make_batch(
            "copy", 16, min_len=2, max_len=5, num_symbols=6, generator=g),
            steps=60, lr=3e-3, seed=0, progress=False)
        return model, result.losses

    model, first = run()
    _, second = run()
    assert first == second  # same seed, same history, bit for bit
    assert sum(first[-10:]) < 0.85 * sum(first[:10])  # it learns (2.2 -> 1.7 in 60 steps)
    b = make_batch("copy", 8, min_len=2, max_len=5, num_symbols=6,
                   generator=torch.Generator().manual_seed(1))
    tokens, _ = model.greedy_decode(b.src, b.src_lengths, 6)  # (B, 6)
    fed = torch.cat([torch.full((8, 1), BOS), tokens[:, :-1]], dim=1)  # its own outputs
    logits, _ = model(b.src, b.src_lengths, fed)
    assert torch.equal(logits.argmax(-1), tokens)  # decoding = teacher forcing on its outputs


def test_model_layers_start_different():
    model = small_model()
    first, second = model.encoder.layers
    assert not torch.equal(first.linear1.weight, second.linear1.weight)
    assert not torch.equal(first.self_attn.W_Q.weight, second.self_attn.W_Q.weight)


def test_weights_on_request_are_every_layers_and_heads_and_change_nothing():
    model = small_model(num_encoder_layers=2, num_decoder_layers=3)
    b = batch(n=3, min_len=2, max_len=5, seed=3)
    S, T = b.src.shape[1], b.tgt_in.shape[1]
    plain, none = model(b.src, b.src_lengths, b.tgt_in)
    logits, weights = model(b.src, b.src_lengths, b.tgt_in, need_weights=True)
    assert none is None
    assert torch.allclose(logits, plain, atol=1e-6)  # reference kernel = fused kernel
    assert [sorted(w) for w in weights["encoder"]] == [["self_attn"]] * 2
    assert [sorted(w) for w in weights["decoder"]] == [["cross_attn", "self_attn"]] * 3
    for w in weights["encoder"]:
        assert w["self_attn"].shape == (3, 2, S, S)
    for w in weights["decoder"]:
        assert w["self_attn"].shape == (3, 2, T, T)
        assert w["cross_attn"].shape == (3, 2, T, S)
        assert torch.all(w["self_attn"].triu(1) == 0)  # causal
        pad = torch.arange(S)[None, :] >= b.src_lengths[:, None]  # (B, S) padding keys
        assert torch.all(w["cross_attn"].masked_select(pad[:, None, None, :]) == 0)
        assert torch.allclose(w["cross_attn"].sum(-1), torch.ones(3, 2, T))


def test_cross_attention_weights_equal_a_hand_run_of_the_last_layer():
    model = small_model()
    b = batch(n=2, seed=4)
    _, weights = model(b.src, b.src_lengths, b.tgt_in, need_weights=True)
    memory, key_mask = model.encode(b.src, b.src_lengths)
    h = model._embed(model.tgt_embedding, b.tgt_in)
    for layer in model.decoder.layers:  # run the decoder layer by layer, by hand
        h, w = layer(h, memory, memory_mask=key_mask, is_causal=True, need_weights=True)
    assert torch.allclose(w["cross_attn"], weights["decoder"][-1]["cross_attn"])


@pytest.mark.parametrize("change, error, words", [
    (lambda b: {"src": b.src.float()}, TypeError, ["src", "integer"]),
    (lambda b: {"src": b.src + 100}, ValueError, ["src", "token ids", str(V - 1)]),
    (lambda b: {"src": b.src - 100}, ValueError, ["src", "token ids"]),
    (lambda b: {"tgt_in": b.tgt_in + 100}, ValueError, ["tgt_in", "token ids"]),
    (lambda b: {"tgt_in": b.tgt_in[:1]}, ValueError, ["tgt_in", "batch size"]),
    (lambda b: {"src_lengths": b.src_lengths[:1]}, ValueError, ["src_lengths", "one length"]),
    (lambda b: {"src_lengths": b.src_lengths + 10}, ValueError, ["src_lengths", "padded"]),
    (lambda b: {"src_lengths": b.src_lengths * 0}, ValueError, ["src_lengths", "[1,"]),
    (lambda b: {"src_lengths": b.src_lengths.float()}, TypeError, ["src_lengths", "integer"]),
])
def test_bad_input_is_named_in_the_callers_words(change, error, words):
    model = small_model()
    b = batch()
    args = {"src": b.src, "src_lengths": b.src_lengths, "tgt_in": b.tgt_in} | change(b)
    with pytest.raises(error) as info:
        model(**args)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_need_weights_and_greedy_arguments_are_checked():
    model = small_model(max_len=8)
    b = batch()
    with pytest.raises(TypeError, match="need_weights"):
        model(b.src, b.src_lengths, b.tgt_in, need_weights="yes")
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(b.src, b.src_lengths, 9)
    with pytest.raises(TypeError, match="max_len"):
        model.greedy_decode(b.src, b.src_lengths, 2.0)


@pytest.mark.parametrize("kwargs, error, word", [
    ({"pad_id": 99}, ValueError, "pad_id"),
    ({"bos_id": -1}, ValueError, "bos_id"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"dropout": float("nan")}, ValueError, "dropout"),
    ({"norm_first": "False"}, TypeError, "norm_first"),
    ({"max_len": 0}, ValueError, "max_len"),
])
def test_more_config_errors(kwargs, error, word):
    with pytest.raises(error, match=word):
        TransformerConfig(V, V, **kwargs)


def test_token_ids_come_from_the_config():
    model = small_model(pad_id=3, bos_id=4)
    assert model.src_embedding.padding_idx == 3
    b = batch()
    tokens, _ = model.greedy_decode(b.src, b.src_lengths, 3)
    fed = torch.cat([torch.full((2, 1), 4), tokens[:, :-1]], dim=1)  # starts from bos_id = 4
    logits, _ = model(b.src, b.src_lengths, fed)
    assert torch.equal(logits.argmax(-1), tokens)


# ---------------------------------------------------------------- robustness: hostile input

SRC = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0], [3, 3, 3, 3]])  # (B=3, S=4)
LENGTHS = torch.tensor([3, 2, 4])
TGT = torch.tensor([[1, 4, 5], [1, 6, 7], [1, 3, 3]])  # (B=3, T=3)
INTERNAL_NAMES = re.compile(r"\b(query|key|value|x)\b")


ROBUSTNESS = [  # each call: model -> result
    pytest.param(lambda m: m(SRC.bool(), LENGTHS, TGT), TypeError, ["src", "integer", "bool"],
                 id="src-bool"),
    pytest.param(lambda m: m(SRC[0], LENGTHS, TGT), ValueError, ["src", "2 dimensions"],
                 id="src-1d"),
    pytest.param(lambda m: m(SRC.tolist(), LENGTHS, TGT), TypeError,
                 ["src", "torch.Tensor", "list"], id="src-list"),
    pytest.param(lambda m: m(torch.ones(3, 7, dtype=torch.long), LENGTHS, TGT), ValueError,
                 ["src", "max_len is 6"], id="src-too-long"),
    # was: "Tensor.item() cannot be called on meta tensors"
    pytest.param(lambda m: m(SRC.to("meta"), LENGTHS, TGT), ValueError,
                 ["src", "meta", "model"], id="src-device"),
    pytest.param(lambda m: m(SRC, LENGTHS.to("meta"), TGT), ValueError,
                 ["src_lengths", "meta", "src"], id="src_lengths-device"),
    pytest.param(lambda m: m(SRC, LENGTHS, TGT.to("meta")), ValueError,
                 ["tgt_in", "meta", "model"], id="tgt_in-device"),
    pytest.param(lambda m: m(SRC, LENGTHS.numpy(), TGT), TypeError,
                 ["src_lengths", "torch.Tensor", "ndarray"], id="src_lengths-numpy"),
    pytest.param(lambda m: m(SRC, LENGTHS[:, None], TGT), ValueError,
                 ["src_lengths", "1 dimensions"], id="src_lengths-2d"),
    pytest.param(lambda m: m(SRC, LENGTHS, None), TypeError, ["tgt_in", "NoneType"],
                 id="tgt_in-None"),
    pytest.param(lambda m: m(SRC, LENGTHS, torch.ones(3, 7, dtype=torch.long)), ValueError,
                 ["tgt_in", "max_len is 6"], id="tgt_in-too-long"),
    pytest.param(lambda m: m(SRC, LENGTHS, TGT, need_weights=None), TypeError,
                 ["need_weights", "bool"], id="need_weights-None"),
    pytest.param(lambda m: m.greedy_decode(SRC, LENGTHS, 0), ValueError, ["max_len", ">= 1"],
                 id="greedy-max_len-0"),
    pytest.param(lambda m: m.greedy_decode(SRC, LENGTHS, "3"), TypeError, ["max_len", "int"],
                 id="greedy-max_len-str"),
    pytest.param(lambda m: m.greedy_decode(SRC, LENGTHS[:1], 3), ValueError,
                 ["src_lengths", "one length per sequence"], id="greedy-lengths-(1,)"),
    pytest.param(lambda m: m.encode(SRC.float(), LENGTHS), TypeError, ["src", "integer"],
                 id="encode-float-src"),
    # decode: was "'NoneType' object has no attribute 'shape'", "mat1 and mat2 shapes cannot be
    # multiplied", "tgt_in has batch size 3 but src has 2" (decode has no src)
    pytest.param(lambda m: m.decode(TGT, None, None), TypeError, ["memory", "NoneType"],
                 id="decode-memory-None"),
    pytest.param(lambda m: m.decode(TGT, torch.zeros(3, 4, 6), None), ValueError,
                 ["memory", "d_model = 16", "(3, 4, 6)"], id="decode-memory-size"),
    pytest.param(lambda m: m.decode(TGT, torch.zeros(3, 4, 16, dtype=torch.float64), None),
                 TypeError, ["memory", "float64", "float32"], id="decode-memory-dtype"),
    pytest.param(lambda m: m.decode(TGT, torch.zeros(2, 4, 16), None), ValueError,
                 ["tgt_in", "batch size 3", "memory has 2"], id="decode-batch-mismatch"),
    # was: silent -- a (B, S) key mask is read as (T, S) when B == T
    pytest.param(lambda m: m.decode(TGT, *m.encode(SRC, LENGTHS)[:1],
                                    padding_mask(LENGTHS, 4)), ValueError,
                 ["key_mask", "(B, 1, 1, S)", "(3, 4)"], id="decode-key_mask-2d"),
    pytest.param(lambda m: m.decode(TGT, *m.encode(SRC, LENGTHS)[:1],
                                    torch.ones(3, 1, 1, 4)), TypeError,
                 ["key_mask", "boolean"], id="decode-key_mask-float"),
    # was: "The size of tensor a (4) must match the size of tensor b (3)"
    pytest.param(lambda m: m.decode(TGT, *m.encode(SRC, LENGTHS)[:1],
                                    torch.ones(3, 1, 1, 3, dtype=torch.bool)), ValueError,
                 ["key_mask", "Lk=4"], id="decode-key_mask-wrong-S"),
    pytest.param(lambda m: m.decode(TGT + 50, *m.encode(SRC, LENGTHS)), ValueError,
                 ["tgt_in", "token ids"], id="decode-ids-outside"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    model = small_model(max_len=6)
    with pytest.raises(error) as info:
        call(model)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message}"
    assert not INTERNAL_NAMES.search(message), f"an internal name leaked: {message}"


def test_non_contiguous_inputs_give_the_same_result():
    model = small_model()
    src, tgt = SRC.T.contiguous().T, TGT.T.contiguous().T
    assert not (src.is_contiguous() or tgt.is_contiguous())
    assert torch.equal(model(src, LENGTHS, tgt)[0], model(SRC, LENGTHS, TGT)[0])
    assert torch.equal(model.greedy_decode(src, LENGTHS, 3)[0],
                       model.greedy_decode(SRC, LENGTHS, 3)[0])


def test_empty_batches_and_targets_give_empty_results():
    model = small_model()
    logits, weights = model(SRC[:0], LENGTHS[:0], TGT[:0], need_weights=True)
    assert logits.shape == (0, 3, V) and weights["decoder"][0]["cross_attn"].shape == (0, 2, 3, 4)
    assert model(SRC, LENGTHS, TGT[:, :0])[0].shape == (3, 0, V)
    assert model.greedy_decode(SRC[:0], LENGTHS[:0], 2)[0].shape == (0, 2)
    memory, key_mask = model.encode(SRC, LENGTHS)
    assert torch.equal(model.decode(TGT, memory, key_mask[:, 0]),  # (B, 1, S) works too
                       model.decode(TGT, memory, key_mask))


# ---------------------------------------------------------------- embeddings and weight tying


def test_embeddings_start_at_the_scale_the_sqrt_d_factor_assumes():
    torch.manual_seed(0)
    d = 64
    model = TransformerSeq2Seq(TransformerConfig(200, 200, d_model=d, num_heads=2))
    for embedding in (model.src_embedding, model.tgt_embedding):
        weight = embedding.weight.detach()
        assert torch.equal(weight[model.config.pad_id], torch.zeros(d))  # PAD stays zero
        std = weight[1:].std().item()  # N(0, 1/d): sqrt(d) * embedding has unit variance
        assert abs(std * d**0.5 - 1) < 0.05, std
    # Token part and positional part of the input are of comparable size (sqrt(2) apart),
    # not sqrt(d) times apart as nn.Embedding's N(0, 1) init would make them.
    tokens = torch.arange(1, 200)[None]  # (1, 199)
    scaled = model.src_embedding(tokens) * d**0.5  # (1, L, D)
    positions = model._embed(model.src_embedding, tokens) - scaled
    ratio = (scaled.norm(dim=-1).mean() / positions.norm(dim=-1).mean()).item()
    assert 1.3 < ratio < 1.5, ratio


def test_tied_weights_share_one_matrix_and_train_it_from_both_ends():
    untied, tied = small_model(), small_model(tie_weights=True)
    assert untied.generator.weight is not untied.tgt_embedding.weight
    assert tied.generator.weight is tied.tgt_embedding.weight
    assert tied.src_embedding.weight is not tied.tgt_embedding.weight  # only target and output
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == V * 16
    # Gradients from the output layer and from the embedding lookup land in the same tensor.
    b = batch()
    tied.train()
    seq2seq_loss(tied, b).backward()
    grad = tied.tgt_embedding.weight.grad
    assert grad is tied.generator.weight.grad and grad is not None
    unused = sorted(set(range(V)) - set(b.tgt_in.unique().tolist()))  # never fed to the decoder
    assert grad[unused].abs().sum() > 0  # ... yet scored by the generator


def test_tied_model_round_trips_through_its_state_dict_and_stays_tied():
    model = small_model(tie_weights=True)
    copy = small_model(tie_weights=True)
    with torch.no_grad():
        model.tgt_embedding.weight.add_(1.0)
    copy.load_state_dict(model.state_dict())
    assert copy.generator.weight is copy.tgt_embedding.weight
    assert torch.equal(copy.generator.weight, model.generator.weight)
    b = batch()
    assert torch.equal(copy(b.src, b.src_lengths, b.tgt_in)[0],
                       model(b.src, b.src_lengths, b.tgt_in)[0])


def test_tie_weights_default_is_false_and_must_be_a_bool():
    assert TransformerConfig(10, 10).tie_weights is False
    with pytest.raises(TypeError, match="tie_weights"):
        TransformerConfig(10, 10, tie_weights=1)
