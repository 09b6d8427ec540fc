"""The Listen-Attend-Spell model of Chapter 9: the pyramid halves time, padding is invisible,
the attention (the course's Bahdanau decoder) never weighs padded frames, training learns,
greedy decoding has the promised shapes, and bad inputs are named."""

import pytest
import torch
from torch.nn.utils.rnn import pad_packed_sequence

from attention_course.data.speech import frame_lengths, log_spectrogram, speech_batch
from attention_course.data.vocab import BOS
from attention_course.metrics import sequence_cross_entropy
from attention_course.models.rnn_seq2seq import BahdanauDecoder
from attention_course.models.speech import ListenAttendSpell, PyramidalEncoder
from attention_course.train import train

N_FFT, HOP = 128, 64
D = N_FFT // 2 + 1


def features(batch_size=4, seed=0):
    b = speech_batch(batch_size, generator=torch.Generator().manual_seed(seed))
    return b, log_spectrogram(b.waves, N_FFT, HOP), frame_lengths(b.lengths, HOP)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [0, 1, 2, 3])
def test_each_pyramid_layer_halves_time(cell, layers):
    torch.manual_seed(0)
    encoder = PyramidalEncoder(D, 8, pyramid_layers=layers, cell=cell)
    _, x, n = features()
    memory, memory_lengths, state = encoder(x, n)
    R = 2 ** layers
    assert encoder.reduction == R
    assert memory.shape == (4, x.shape[1] // R, 16)
    assert torch.equal(memory_lengths, n // R)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (1, 4, 8)
    padded = memory.masked_select(
        (torch.arange(memory.shape[1]) >= memory_lengths[:, None])[..., None])
    assert (padded == 0).all()  # nothing computed at padded encoder frames


def test_pyramid_concatenates_neighbouring_frames():
    """The second layer's input frame j is [h_2j; h_2j+1] of the first layer's outputs (a
    trailing odd frame dropped)."""
    torch.manual_seed(0)
    encoder = PyramidalEncoder(D, 4, pyramid_layers=1, cell="gru")
    _, x, n = features(2)
    seen = {}

    def keep_input(module, args, output):
        seen["packed"] = args[0]

    encoder.rnns[1].register_forward_hook(keep_input)
    first, _ = encoder._run(encoder.rnns[0], encoder.norm(x), n)  # (B, F, 8)
    encoder(x, n)
    pyramid_in, lengths = pad_packed_sequence(seen["packed"], batch_first=True)
    for i in range(2):
        m = int(n[i]) // 2
        assert int(lengths[i]) == m
        expected = first[i, :2 * m].reshape(m, 16)  # frames (2j, 2j+1) side by side
        assert torch.allclose(pyramid_in[i, :m], expected)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_frames_do_not_change_the_encoding(cell):
    torch.manual_seed(0)
    encoder = PyramidalEncoder(D, 8, pyramid_layers=2, cell=cell)
    _, x, n = features()
    memory, memory_lengths, _ = encoder(x, n)
    noisy = x.clone()
    noisy[torch.arange(x.shape[1]) >= n[:, None]] = 123.0  # garbage in the padding
    longer = torch.cat([noisy, torch.randn(4, 8, D)], dim=1)  # and more of it
    memory2, _, _ = encoder(longer, n)
    for i, u in enumerate(memory_lengths.tolist()):
        assert torch.allclose(memory[i, :u], memory2[i, :u], atol=1e-6)


def test_the_speller_is_the_course_bahdanau_decoder_and_ignores_padded_frames():
    torch.manual_seed(0)
    b, x, n = features(5)
    model = ListenAttendSpell(b.vocab_size, D, 16, pyramid_layers=2, cell="gru")
    assert type(model.decoder) is BahdanauDecoder
    logits, weights = model(x, n, b.tgt_in, need_weights=True)
    B, T = b.tgt_in.shape
    U = x.shape[1] // 4
    assert logits.shape == (B, T, b.vocab_size) and weights.shape == (B, T, U)
    assert torch.allclose(weights.sum(-1), torch.ones(B, T))
    padded = torch.arange(U) >= (n // 4)[:, None]  # (B, U)
    assert padded.any()  # the batch has padding to ignore
    assert (weights.masked_select(padded[:, None, :]) == 0).all()
    assert model(x, n, b.tgt_in)[1] is None  # weights only on request
    # Logits do not depend on what the padding holds.
    garbage = x.masked_fill((torch.arange(x.shape[1]) >= n[:, None])[..., None], 50.0)
    assert torch.allclose(model(garbage, n, b.tgt_in)[0], logits, atol=1e-5)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    b, x, n = features(16)
    model = ListenAttendSpell(b.vocab_size, D, 16, pyramid_layers=1, cell="gru")

    def loss_fn(m, _):
        return sequence_cross_entropy(m(x, n, b.tgt_in)[0], b.tgt_out)

    with torch.no_grad():
        before = loss_fn(model, None).item()
    result = train(model, loss_fn, lambda g: None, steps=30, lr=1e-2, seed=0, progress=False)
    with torch.no_grad():
        after = loss_fn(model, None).item()
    assert result.losses[0] == pytest.approx(before, rel=1e-5)
    assert after < 0.7 * before


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_greedy_decode_shapes_and_agreement_with_teacher_forcing(cell):
    torch.manual_seed(0)
    b, x, n = features(3)
    model = ListenAttendSpell(b.vocab_size, D, 16, cell=cell)
    tokens, weights = model.greedy_decode(x, n, 5, need_weights=True)
    U = x.shape[1] // 4
    assert tokens.shape == (3, 5) and tokens.dtype == torch.long
    assert weights.shape == (3, 5, U)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 5))
    assert model.greedy_decode(x, n, 5)[1] is None
    # Feeding the greedy tokens back with teacher forcing reproduces them and their weights.
    tgt_in = torch.cat([torch.full((3, 1), BOS), tokens[:, :-1]], dim=1)
    logits, forced = model(x, n, tgt_in, need_weights=True)
    assert torch.equal(logits.argmax(-1), tokens)
    assert torch.allclose(forced, weights, atol=1e-6)


def test_bad_inputs_are_named():
    torch.manual_seed(0)
    b, x, n = features(2)
    model = ListenAttendSpell(b.vocab_size, D, 8)
    with pytest.raises(ValueError, match=r"features must have shape \(B, F, D\) .* D = "
                                         r"input_size = 65, got \(2, \d+, 64\)"):
        model(x[..., :64], n, b.tgt_in)
    with pytest.raises(ValueError, match="features must have 3 dimensions"):
        model(x[0], n, b.tgt_in)
    with pytest.raises(TypeError, match="features has dtype torch.float64"):
        model(x.double(), n, b.tgt_in)
    with pytest.raises(ValueError, match=r"lengths must lie in \[4, \d+\]"):
        model(x, torch.tensor([3, 10]), b.tgt_in)
    with pytest.raises(ValueError, match="lengths has 1 entries"):
        model(x, n[:1], b.tgt_in)
    with pytest.raises(ValueError, match="features must have at least R = 4 frames"):
        model(x[:, :3], torch.tensor([3, 3]), b.tgt_in)
    with pytest.raises(ValueError, match="tgt_in has batch size 1 but features has 2"):
        model(x, n, b.tgt_in[:1])
    with pytest.raises(ValueError, match="tgt_in has token ids"):
        model(x, n, b.tgt_in + 100)
    with pytest.raises(TypeError, match="need_weights must be"):
        model(x, n, b.tgt_in, need_weights=1)
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(x, n, 0)
    with pytest.raises(ValueError, match="cell must be one of"):
        ListenAttendSpell(9, D, 8, cell="rnn")
    with pytest.raises(ValueError, match="pyramid_layers"):
        PyramidalEncoder(D, 8, pyramid_layers=-1)
    with pytest.raises(ValueError, match="bos_id=9 is not a token"):
        ListenAttendSpell(9, D, 8, bos_id=9)
