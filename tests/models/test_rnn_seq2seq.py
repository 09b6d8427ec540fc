"""The RNN encoder–decoders of Chapter 1 (plain and Bahdanau)."""

import re

import pytest
import torch

from attention_course.data import make_batch, vocab_size
from attention_course.masks import padding_mask
from attention_course.models.rnn_seq2seq import (
    BahdanauDecoder,
    RNNDecoder,
    RNNEncoder,
    RNNSeq2Seq,
)

V = vocab_size(6)


def batch(task="reverse", seed=0, **kwargs):
    kwargs = {"min_len": 2, "max_len": 7, "num_symbols": 6} | kwargs
    return make_batch(task, 5, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("use_attention", [False, True])
def test_shapes_and_attention_weights(cell, use_attention):
    torch.manual_seed(0)
    model = RNNSeq2Seq(V, 8, 12, attention=use_attention, cell=cell)
    b = batch()
    logits, weights = model(b.src, b.src_lengths, b.tgt_in)
    B, T = b.tgt_in.shape
    S = b.src.shape[1]
    assert logits.shape == (B, T, V)
    tokens, decode_weights = model.greedy_decode(b.src, b.src_lengths, max_len=4)
    assert tokens.shape == (B, 4)
    if not use_attention:
        assert weights is None and decode_weights is None
        return
    assert weights.shape == (B, T, S) and decode_weights.shape == (B, 4, S)
    for w in (weights, decode_weights):
        assert torch.allclose(w.sum(-1), torch.ones(w.shape[:2]))  # a distribution per step
        assert (w.masked_select(~b.src_mask[:, None, :]) == 0).all()  # none on padding


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_the_encoding(cell):
    torch.manual_seed(0)
    encoder = RNNEncoder(V, 8, 12, cell=cell)
    b = batch(min_len=2, max_len=7)
    outputs, state = encoder(b.src, b.src_lengths)
    h = state[0] if cell == "lstm" else state  # (1, B, H)
    for i, n in enumerate(b.src_lengths.tolist()):
        alone, alone_state = encoder(b.src[i:i + 1, :n], b.src_lengths[i:i + 1])
        alone_h = alone_state[0] if cell == "lstm" else alone_state
        assert torch.allclose(outputs[i, :n], alone[0], atol=1e-6)
        assert (outputs[i, n:] == 0).all()  # padded steps produce nothing
        assert torch.allclose(h[0, i], alone_h[0, 0], atol=1e-6)  # the state after token n


def test_bahdanau_step_equals_the_hand_computed_formula():
    torch.manual_seed(0)
    H, E, A = 3, 2, 4
    decoder = BahdanauDecoder(V, E, H, attention_dim=A).double()
    memory = torch.randn(1, 3, H, dtype=torch.float64)  # (B, S, H), last step is padding
    mask = torch.tensor([[True, True, False]])
    s0 = torch.randn(1, 1, H, dtype=torch.float64)
    y_prev = torch.tensor([[4]])
    logits, state, weights = decoder(y_prev, s0, memory, mask)

    W_q, W_k = decoder.score.W_q.weight, decoder.score.W_k.weight
    v = decoder.score.v.weight[0]
    s = s0[0, 0]
    e = torch.stack([v @ torch.tanh(W_q @ s + W_k @ memory[0, j]) for j in range(2)])
    alpha = torch.exp(e) / torch.exp(e).sum()  # softmax over the two real steps
    c = alpha[0] * memory[0, 0] + alpha[1] * memory[0, 1]
    x = torch.cat([decoder.embedding.weight[4], c])
    cell = decoder.cell  # GRU equations, PyTorch's gate order (r, z, n)
    gi = cell.weight_ih @ x + cell.bias_ih
    gh = cell.weight_hh @ s + cell.bias_hh
    r = torch.sigmoid(gi[:H] + gh[:H])
    z = torch.sigmoid(gi[H:2 * H] + gh[H:2 * H])
    n = torch.tanh(gi[2 * H:] + r * gh[2 * H:])
    s1 = (1 - z) * n + z * s
    expected_logits = decoder.out.weight @ torch.cat([s1, c]) + decoder.out.bias

    assert torch.allclose(weights[0, 0], torch.cat([alpha, torch.zeros(1, dtype=alpha.dtype)]))
    assert torch.allclose(state[0, 0], s1)
    assert torch.allclose(logits[0, 0], expected_logits)


def test_model_rejects_bad_input():
    model = RNNSeq2Seq(V, 4, 4)
    b = batch()
    with pytest.raises(TypeError, match="src"):
        model(b.src.float(), b.src_lengths, b.tgt_in)
    with pytest.raises(ValueError, match="src_lengths"):
        model(b.src, b.src_lengths[:2], b.tgt_in)
    with pytest.raises(ValueError, match="cell"):
        RNNSeq2Seq(V, cell="transformer")




# ---------------------------------------------------------------- robustness: hostile input

SRC = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0], [3, 3, 3, 3]])  # (B=3, S=4)
LENGTHS = torch.tensor([3, 2, 4])
TGT = torch.tensor([[1, 4, 5], [1, 6, 7], [1, 3, 3]])  # (B=3, T=3)


def parts(cell="gru"):
    torch.manual_seed(0)
    enc = RNNEncoder(V, 4, 6, cell=cell)
    memory, state = enc(SRC, LENGTHS)
    return enc, memory, state, padding_mask(LENGTHS, 4)


def bahdanau(cell="gru"):
    torch.manual_seed(0)
    return BahdanauDecoder(V, 4, 6, cell=cell)


def plain_decoder():
    torch.manual_seed(0)
    return RNNDecoder(V, 4, 6)


def model(**kwargs):
    torch.manual_seed(0)
    return RNNSeq2Seq(V, 4, 6, **kwargs)


_, MEMORY, STATE, MEMORY_MASK = parts()

ROBUSTNESS = [
    # constructors: was torch's "Padding_idx must be within num_embeddings" (AssertionError),
    # "Trying to create tensor with negative dimension", or silently accepted
    pytest.param(lambda: RNNEncoder(V, 4, 6, pad_id=V), ValueError, ["pad_id", str(V)],
                 id="encoder-pad_id-outside"),
    pytest.param(lambda: RNNEncoder(V, 4, 6, pad_id=-1), ValueError, ["pad_id", ">= 0"],
                 id="encoder-pad_id-negative"),  # was: silently the last token (-1)
    pytest.param(lambda: RNNDecoder(V, -1, 6), ValueError, ["embed_dim", ">= 1"],
                 id="decoder-embed_dim-negative"),
    pytest.param(lambda: RNNDecoder(True, 4, 6), TypeError, ["vocab_size", "bool"],
                 id="decoder-vocab_size-bool"),
    pytest.param(lambda: BahdanauDecoder(V, 0, 6), ValueError, ["embed_dim", ">= 1"],
                 id="bahdanau-embed_dim-0"),  # was: silently accepted
    # was: silently hidden_size (0 is falsy)
    pytest.param(lambda: BahdanauDecoder(V, 4, 6, attention_dim=0), ValueError,
                 ["attention_dim", ">= 1"], id="bahdanau-attention_dim-0"),
    pytest.param(lambda: BahdanauDecoder(V, 4, "6"), TypeError, ["hidden_size", "str"],
                 id="bahdanau-hidden_size-str"),  # was: "query_dim must be an int"
    pytest.param(lambda: RNNSeq2Seq(V, attention="False"), TypeError, ["attention", "bool"],
                 id="model-attention-str"),
    # encoder inputs
    pytest.param(lambda: parts()[0](SRC.float(), LENGTHS), TypeError, ["src", "integer"],
                 id="encoder-float-src"),
    pytest.param(lambda: parts()[0](SRC + V, LENGTHS), ValueError, ["src", "token ids"],
                 id="encoder-ids-outside"),  # was: "index out of range in self"
    # was: silent -- a (1,) lengths tensor broadcast over the batch of 3
    pytest.param(lambda: parts()[0](SRC, LENGTHS[:1]), ValueError,
                 ["src_lengths", "one length per sequence", "(3,)"], id="encoder-lengths-(1,)"),
    # was: silent -- float lengths truncated by pack_padded_sequence
    pytest.param(lambda: parts()[0](SRC, LENGTHS.float()), TypeError,
                 ["src_lengths", "integer"], id="encoder-float-lengths"),
    pytest.param(lambda: parts()[0](SRC, LENGTHS + 1), ValueError,
                 ["src_lengths", "padded length is 4"], id="encoder-lengths-too-long"),
    pytest.param(lambda: parts()[0](SRC, LENGTHS * 0), ValueError,
                 ["src_lengths", "[1, 4]"], id="encoder-lengths-zero"),
    pytest.param(lambda: parts()[0](SRC, LENGTHS.to("meta")), ValueError,
                 ["src_lengths", "meta", "src"], id="encoder-lengths-device"),
    pytest.param(lambda: parts()[0](SRC.to("meta"), LENGTHS), ValueError,
                 ["src", "meta", "model"], id="encoder-src-device"),  # was: silent
    pytest.param(lambda: parts()[0](SRC[:0], LENGTHS[:0]), ValueError, ["src", "(0, 4)"],
                 id="encoder-empty-batch"),  # was: "Cannot pack empty tensors."
    # decoders
    pytest.param(lambda: plain_decoder()(TGT, STATE[:, :1]), ValueError,
                 ["state", "(1, 3, 6)", "(1, 1, 6)"], id="plain-state-batch"),
    pytest.param(lambda: plain_decoder()(TGT, None), TypeError, ["state", "NoneType"],
                 id="plain-state-None"),
    pytest.param(lambda: plain_decoder()(TGT, (STATE, STATE)), TypeError, ["state", "tuple"],
                 id="plain-lstm-state-for-gru"),
    pytest.param(lambda: plain_decoder()(TGT, STATE.double()), TypeError,
                 ["state", "float64", "float32"], id="plain-state-dtype"),
    pytest.param(lambda: plain_decoder()(TGT[:, :0], STATE), ValueError, ["tgt_in", "(3, 0)"],
                 id="plain-empty-target"),  # was: "Expected sequence length to be larger..."
    pytest.param(lambda: plain_decoder()(TGT + V, STATE), ValueError, ["tgt_in", "token ids"],
                 id="plain-ids-outside"),
    # was: silent -- a (1, S) mask broadcast over the batch of 3
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY, MEMORY_MASK[:1]), ValueError,
                 ["memory_mask", "(3, 4)", "(1, 4)"], id="bahdanau-mask-(1,S)"),
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY, MEMORY_MASK.float()), TypeError,
                 ["memory_mask", "torch.bool"], id="bahdanau-float-mask"),
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY, MEMORY_MASK[:, None]), ValueError,
                 ["memory_mask", "2 dimensions"], id="bahdanau-mask-3d"),
    # was: "mat1 and mat2 shapes cannot be multiplied (12x5 and 6x6)"
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY[..., :5], MEMORY_MASK), ValueError,
                 ["memory", "(3, S, 6)", "(3, 4, 5)"], id="bahdanau-memory-size"),
    # was: "query (3, 1, 6) and key (2, 4, 6) must share their leading (batch) dimensions"
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY[:2], MEMORY_MASK[:2]), ValueError,
                 ["memory", "(3, S, 6)"], id="bahdanau-memory-batch"),
    pytest.param(lambda: bahdanau()(TGT, STATE, MEMORY.double(), MEMORY_MASK), TypeError,
                 ["memory", "float64"], id="bahdanau-memory-dtype"),
    pytest.param(lambda: bahdanau()(TGT, STATE, None, MEMORY_MASK), TypeError,
                 ["memory", "NoneType"], id="bahdanau-memory-None"),
    pytest.param(lambda: bahdanau("lstm")(TGT, STATE, MEMORY, MEMORY_MASK), TypeError,
                 ["state", "tuple (h, c)"], id="bahdanau-gru-state-for-lstm"),
    pytest.param(lambda: bahdanau()(TGT[:, :0], STATE, MEMORY, MEMORY_MASK), ValueError,
                 ["tgt_in", "(3, 0)"], id="bahdanau-empty-target"),  # was: torch.stack([])
    # the whole model
    pytest.param(lambda: model(attention=True)(SRC, LENGTHS, TGT - 2), ValueError,
                 ["tgt_in", "token ids"], id="model-negative-ids"),
    pytest.param(lambda: model()(SRC, LENGTHS, TGT[None]), ValueError, ["tgt_in", "2"],
                 id="model-tgt_in-3d"),
    pytest.param(lambda: model()(SRC, LENGTHS, TGT[:2]), ValueError, ["tgt_in", "batch size"],
                 id="model-batch-mismatch"),
    pytest.param(lambda: model()(SRC, LENGTHS.to("meta"), TGT), ValueError,
                 ["src_lengths", "meta"], id="model-lengths-device"),
    pytest.param(lambda: model().greedy_decode(SRC, LENGTHS, True), TypeError,
                 ["max_len", "bool"], id="greedy-max_len-bool"),
    pytest.param(lambda: model().greedy_decode(SRC, LENGTHS, 0), ValueError,
                 ["max_len", ">= 1"], id="greedy-max_len-0"),
    pytest.param(lambda: model().greedy_decode(SRC, LENGTHS[:1], 3), ValueError,
                 ["src_lengths", "one length"], id="greedy-lengths-(1,)"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_bahdanau_memory_errors_name_memory_not_query_or_key():
    with pytest.raises(ValueError) as info:
        bahdanau()(TGT, STATE, MEMORY[:2], MEMORY_MASK[:2])
    assert not re.search(r"\b(query|key|W_k)\b", str(info.value)), str(info.value)


def test_bahdanau_without_a_memory_mask_attends_to_every_position():
    decoder = bahdanau()
    everything = torch.ones(3, 4, dtype=torch.bool)
    for a, b in zip(decoder(TGT, STATE, MEMORY, None), decoder(TGT, STATE, MEMORY, everything),
                    strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("attention", [False, True])
def test_non_contiguous_inputs_give_the_same_result(attention):
    m = model(attention=attention, cell="lstm")
    src, tgt = SRC.T.contiguous().T, TGT.T.contiguous().T
    assert not (src.is_contiguous() or tgt.is_contiguous())
    logits, weights = m(src, LENGTHS, tgt)
    ref, ref_weights = m(SRC, LENGTHS, TGT)
    assert torch.equal(logits, ref)
    assert weights is None if not attention else torch.equal(weights, ref_weights)
