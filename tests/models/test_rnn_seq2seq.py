"""The RNN encoder–decoders of Chapter 1 (plain and Bahdanau)."""

import pytest
import torch

from attention_course.data import BOS, EOS, PAD, make_batch, vocab_size
from attention_course.metrics import seq2seq_loss
from attention_course.models.rnn_seq2seq import BahdanauDecoder, RNNEncoder, RNNSeq2Seq
from attention_course.train import train

V = vocab_size(6)


def batch(task="reverse", seed=0, **kwargs):
    kwargs = {"min_len": 2, "max_len": 7, "num_symbols": 6} | kwargs
    return make_batch(task, 5, generator=torch.Generator().manual_seed(seed), **kwargs)


# ---------------------------------------------------------------- data


@pytest.mark.parametrize("task", ["copy", "reverse", "sort"])
def test_batches_are_padded_and_framed(task):
    b = batch(task)
    B, S = b.src.shape
    assert b.tgt_in.shape == b.tgt_out.shape == (B, S + 1)
    assert S == int(b.src_lengths.max())
    for i, n in enumerate(b.src_lengths.tolist()):
        x = b.src[i, :n]
        expected = {"copy": x, "reverse": x.flip(0), "sort": x.sort().values}[task]
        assert (x >= 3).all() and (b.src[i, n:] == PAD).all()
        assert b.tgt_in[i, 0] == BOS and torch.equal(b.tgt_in[i, 1:n + 1], expected)
        assert torch.equal(b.tgt_out[i, :n], expected) and b.tgt_out[i, n] == EOS
        assert (b.tgt_out[i, n + 1:] == PAD).all() and (b.tgt_in[i, n + 1:] == PAD).all()
    assert torch.equal(b.src_mask, b.src != PAD)
    assert torch.equal(b.tgt_mask, b.tgt_out != PAD)


def test_batches_are_deterministic_per_seed():
    assert torch.equal(batch(seed=3).src, batch(seed=3).src)
    assert not torch.equal(batch(seed=3).src, batch(seed=4).src)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"task": "rotate"}, ValueError, "task"),
        ({"min_len": 0}, ValueError, "min_len"),
        ({"min_len": 5, "max_len": 4}, ValueError, "max_len"),
        ({"num_symbols": 2.0}, TypeError, "num_symbols"),
    ],
)
def test_bad_batch_arguments(kwargs, error, word):
    task = kwargs.pop("task", "copy")
    with pytest.raises(error, match=word):
        batch(task, **kwargs)


# ---------------------------------------------------------------- model


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


def test_training_is_deterministic_and_learns():
    def run():
        torch.manual_seed(0)
        model = RNNSeq2Seq(V, 8, 16, attention=True)

        def sample(g):
            return make_batch("reverse", 16, min_len=2, max_len=4, num_symbols=6, generator=g)

        return train(model, seq2seq_loss, sample, steps=40, lr=1e-2, seed=1, progress=False)

    first, second = run(), run()
    assert first.losses == second.losses  # same seed, same history, bit for bit
    assert len(first.losses) == 40
    assert sum(first.losses[-5:]) / 5 < 0.7 * sum(first.losses[:5]) / 5


def test_train_rejects_bad_arguments_and_nan_losses():
    model = RNNSeq2Seq(V, 4, 4)
    with pytest.raises(ValueError, match="steps"):
        train(model, seq2seq_loss, lambda g: batch(), steps=0)
    with pytest.raises(ValueError, match="lr"):
        train(model, seq2seq_loss, lambda g: batch(), steps=1, lr=0.0)
    with pytest.raises(FloatingPointError, match="step 0"):
        train(model, lambda m, b: seq2seq_loss(m, b) * float("nan"), lambda g: batch(), steps=1)


def test_model_rejects_bad_input():
    model = RNNSeq2Seq(V, 4, 4)
    b = batch()
    with pytest.raises(TypeError, match="src"):
        model(b.src.float(), b.src_lengths, b.tgt_in)
    with pytest.raises(ValueError, match="src_lengths"):
        model(b.src, b.src_lengths[:2], b.tgt_in)
    with pytest.raises(ValueError, match="cell"):
        RNNSeq2Seq(V, cell="transformer")


def test_metrics_ignore_padding():
    from attention_course.metrics import exact_match, sequence_cross_entropy, token_accuracy

    targets = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    tokens = torch.tensor([[5, 6, EOS, 9], [7, 8, PAD, PAD]])  # row 0 right, row 1 misses EOS
    assert exact_match(tokens, targets).tolist() == [True, False]
    assert token_accuracy(tokens, targets) == 4 / 5
    logits = torch.zeros(2, 4, V, dtype=torch.float64)
    logits[..., 5] = 100.0  # always predicts 5: right once out of five real tokens
    assert torch.isclose(sequence_cross_entropy(logits, targets),
                         torch.tensor(4 * 100.0 / 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="logits"):
        sequence_cross_entropy(logits[:, :3], targets)


def test_progress_bar_stays_quiet_under_tests_and_builds(monkeypatch):
    from attention_course.train import quiet

    assert quiet()  # pytest sets PYTEST_CURRENT_TEST
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.delenv("ATTENTION_COURSE_QUIET", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)  # as in a terminal
    assert not quiet()
    monkeypatch.setenv("ATTENTION_COURSE_QUIET", "1")  # as in `make book`
    assert quiet()
