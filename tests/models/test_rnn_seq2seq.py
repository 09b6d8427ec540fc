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
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_and_attention_weights(cell, use_attention, bidirectional):
    torch.manual_seed(0)
    H = 12
    model = RNNSeq2Seq(V, 8, H, attention=use_attention, cell=cell,
                       bidirectional=bidirectional)
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
    if bidirectional:  # the decoder consumes 2H-sized memories: scores, cell input, output
        decoder = model.decoder
        assert decoder.memory_size == 2 * H and decoder.score.W_k.in_features == 2 * H
        assert decoder.cell.input_size == 8 + 2 * H and decoder.out.in_features == 3 * H
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


@pytest.mark.parametrize("M", [3, 5], ids=["M=H", "M=5"])
def test_bahdanau_step_equals_the_hand_computed_formula(M):
    torch.manual_seed(0)
    H, E, A = 3, 2, 4
    decoder = BahdanauDecoder(V, E, H, attention_dim=A, memory_size=M).double()
    memory = torch.randn(1, 3, M, dtype=torch.float64)  # (B, S, M), last step is padding
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


# ---------------------------------------------------------------- bidirectional encoder


def manual_backward_rnn(encoder, tokens):
    """The backward direction by hand: a one-directional copy of its weights run over
    ``tokens`` ``(n,)`` reversed; returns its outputs in source order ``(n, H)`` and its
    final state (``(1, 1, H)``, or a pair for an LSTM)."""
    rnn = encoder.rnn
    backward = type(rnn)(rnn.input_size, rnn.hidden_size, batch_first=True)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(backward, f"{name}_l0").data.copy_(getattr(rnn, f"{name}_l0_reverse"))
    out, state = backward(encoder.embedding(tokens.flip(0))[None])
    return out[0].flip(0), state


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bidirectional_encoder_reads_each_sequence_from_its_own_last_token(cell):
    torch.manual_seed(0)
    H = 12
    encoder = RNNEncoder(V, 8, H, cell=cell, bidirectional=True)
    b = batch(min_len=2, max_len=7)
    assert b.src_lengths.min() < b.src.shape[1]  # some sequences are padded
    outputs, state = encoder(b.src, b.src_lengths)
    assert outputs.shape == (*b.src.shape, 2 * H) and encoder.output_size == 2 * H
    h = state[0] if cell == "lstm" else state
    assert h.shape == (1, b.src.shape[0], H)  # what a decoder of hidden size H expects
    for i, n in enumerate(b.src_lengths.tolist()):
        alone, alone_state = encoder(b.src[i:i + 1, :n], b.src_lengths[i:i + 1])
        alone_h = alone_state[0] if cell == "lstm" else alone_state
        assert torch.allclose(outputs[i, :n], alone[0], atol=1e-6)  # padding changes nothing
        assert (outputs[i, n:] == 0).all()
        assert torch.allclose(h[0, i], alone_h[0, 0], atol=1e-6)
        # The backward half is a backward RNN started at token n - 1, not at the padding.
        bwd, bwd_state = manual_backward_rnn(encoder, b.src[i, :n])
        assert torch.allclose(outputs[i, :n, H:], bwd, atol=1e-6)
        # The decoder's initial state: tanh(W_s h_bwd + b_s) of the backward final state.
        bwd_h = bwd_state[0] if cell == "lstm" else bwd_state
        expected = torch.tanh(encoder.bridge(bwd_h[0, 0]))
        assert torch.allclose(h[0, i], expected, atol=1e-6)
        if cell == "lstm":
            assert torch.allclose(state[1][0, i], encoder.bridge_cell(bwd_state[1][0, 0]),
                                  atol=1e-6)


def test_bidirectional_model_trains_end_to_end():
    torch.manual_seed(0)
    model = RNNSeq2Seq(V, 8, 12, attention=True, bidirectional=True)
    b = batch()
    logits, _ = model(b.src, b.src_lengths, b.tgt_in)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), b.tgt_out.flatten()).backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder.") or name.startswith("decoder.score"):
            # Both directions and the bridge receive a gradient (not cut off anywhere).
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("use_attention", [False, True])
def test_default_is_one_directional_and_draws_its_weights_as_before(cell, use_attention):
    # bidirectional=False must create the same parameters, in the same order, from the
    # same random draws as the model had before the option existed.
    torch.manual_seed(0)
    model = RNNSeq2Seq(V, 8, 12, attention=use_attention, cell=cell)
    torch.manual_seed(0)
    rnn, rnn_cell = {"gru": (torch.nn.GRU, torch.nn.GRUCell),
                     "lstm": (torch.nn.LSTM, torch.nn.LSTMCell)}[cell]
    reference = [torch.nn.Embedding(V, 8, padding_idx=0), rnn(8, 12, batch_first=True),
                 torch.nn.Embedding(V, 8, padding_idx=0)]
    if use_attention:
        reference += [torch.nn.Linear(12, 12, bias=False), torch.nn.Linear(12, 12, bias=False),
                      torch.nn.Linear(12, 1, bias=False), rnn_cell(8 + 12, 12),
                      torch.nn.Linear(24, V)]
    else:
        reference += [rnn(8, 12, batch_first=True), torch.nn.Linear(12, V)]
    expected = [p for module in reference for p in module.parameters()]
    ours = list(model.parameters())
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        assert torch.equal(a, b)
    assert not model.encoder.bidirectional and not hasattr(model.encoder, "bridge")
    assert model.encoder.output_size == 12


def test_bidirectional_options_are_checked():
    with pytest.raises(TypeError, match="bidirectional"):
        RNNSeq2Seq(V, bidirectional="yes")
    with pytest.raises(TypeError, match="bidirectional"):
        RNNEncoder(V, 4, 6, bidirectional=1)
    with pytest.raises(ValueError, match="memory_size"):
        BahdanauDecoder(V, 4, 6, memory_size=0)
    # A Bahdanau decoder built for 2H memories rejects H-sized ones, naming memory and M.
    with pytest.raises(ValueError) as info:
        BahdanauDecoder(V, 4, 6, memory_size=12)(TGT, STATE, MEMORY, MEMORY_MASK)
    assert "memory" in str(info.value) and "(3, S, 12)" in str(info.value)
