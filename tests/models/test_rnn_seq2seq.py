"""The RNN encoder–decoders of Chapter 1 (plain and Bahdanau)."""

import pytest
import torch

from attention_course.data import make_batch, vocab_size
from attention_course.models.rnn_seq2seq import BahdanauDecoder, RNNEncoder, RNNSeq2Seq

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


