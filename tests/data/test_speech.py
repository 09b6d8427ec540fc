"""The synthetic speech of Chapter 9: deterministic per seed, the ground truth checked against
the waveform itself, spectrogram shapes, and argument checks that name the argument."""

import math

import pytest
import torch

from attention_course.data.speech import (
    NUM_SOUNDS,
    SOUNDS,
    frame_lengths,
    log_spectrogram,
    speech_batch,
)
from attention_course.data.vocab import BOS, EOS, FIRST_SYMBOL, PAD


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_batch_other_seed_other_batch():
    a, b, c = (speech_batch(8, generator=gen(s)) for s in (0, 0, 1))
    for name in ("waves", "lengths", "symbols", "spans", "tgt_in", "tgt_out"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.symbols, c.symbols)


def test_targets_follow_the_course_vocabulary():
    b = speech_batch(64, min_symbols=3, max_symbols=6, generator=gen())
    B, N = b.symbols.shape
    assert N == 6 and b.tgt_in.shape == b.tgt_out.shape == (B, N + 1)
    assert b.vocab_size == FIRST_SYMBOL + NUM_SOUNDS
    assert set(b.num_symbols.tolist()) == {3, 4, 5, 6}  # every count occurs in 64 rows
    for i in range(B):
        n = int(b.num_symbols[i])
        y = b.symbols[i, :n]
        assert ((y >= FIRST_SYMBOL) & (y < b.vocab_size)).all()
        assert (b.symbols[i, n:] == PAD).all()
        assert b.tgt_in[i].tolist() == [BOS, *y.tolist()] + [PAD] * (N - n)
        assert b.tgt_out[i].tolist() == [*y.tolist(), EOS] + [PAD] * (N - n)


def test_spans_are_ordered_separated_and_inside_the_row():
    b = speech_batch(32, duration=(0.05, 0.1), gap=(0.01, 0.03), generator=gen(2))
    rate = b.sample_rate
    for i in range(32):
        n = int(b.num_symbols[i])
        spans = b.spans[i, :n]  # (n, 2)
        lengths = (spans[:, 1] - spans[:, 0]).double() / rate
        assert ((lengths >= 0.05 - 1 / rate) & (lengths <= 0.1)).all()
        gaps = torch.cat([spans[:1, 0], spans[1:, 0] - spans[:-1, 1],
                          b.lengths[i:i + 1] - spans[-1:, 1]]).double() / rate
        assert ((gaps >= 0.01 - 1 / rate) & (gaps <= 0.03)).all()
        assert (b.spans[i, n:] == -1).all()
        assert (b.waves[i, int(b.lengths[i]):] == 0).all()  # padding is silent


def dominant_hz(x, rate):
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x)), n=8192).abs()
    return spectrum.argmax().item() * rate / 8192


def test_each_span_sounds_its_symbol_and_silence_between():
    b = speech_batch(6, noise=0.0, generator=gen(3))
    rate = b.sample_rate
    for i in range(6):
        n = int(b.num_symbols[i])
        silent = torch.ones(int(b.lengths[i]), dtype=torch.bool)
        for j in range(n):
            start, end = b.spans[i, j].tolist()
            silent[start:end] = False
            _, f0, f1 = SOUNDS[int(b.symbols[i, j]) - FIRST_SYMBOL]
            seg = b.waves[i, start:end].double()
            q = len(seg) // 4  # first and last quarter: a chirp's start and end
            f_start, f_end = dominant_hz(seg[:q], rate), dominant_hz(seg[-q:], rate)
            sweep = abs(f1 - f0) / 4  # a quarter's frequency spread
            assert abs(f_start - (f0 + (f1 - f0) / 8)) <= sweep + 40, (f_start, f0, f1)
            assert abs(f_end - (f1 - (f1 - f0) / 8)) <= sweep + 40, (f_end, f0, f1)
            assert seg.abs().max() >= 0.45
        assert (b.waves[i, :int(b.lengths[i])][silent] == 0).all()


def test_noise_covers_the_row_only():
    b = speech_batch(4, noise=0.1, generator=gen())
    for i in range(4):
        start = int(b.spans[i, 0, 0])  # the leading silence is noise only
        assert 0.05 < b.waves[i, :start].std() < 0.2


def test_frame_spans_cover_the_symbol_samples():
    b = speech_batch(8, generator=gen(4))
    for factor in (1, 2, 4):
        stride = 128 * factor
        frames = b.frame_spans(128, factor)
        real = b.symbol_mask
        assert (frames[~real] == -1).all()
        first, last = frames[real].unbind(-1)
        start, end = b.spans[real].unbind(-1)
        assert torch.equal(first, start // stride)
        assert (first * stride <= start).all() and ((last + 1) * stride >= end).all()
        assert (last * stride < end).all()  # the last frame still overlaps the symbol


@pytest.mark.parametrize(("n_fft", "hop"), [(128, 64), (256, 128), (64, 64)])
def test_log_spectrogram_shapes_and_a_tone_in_its_bin(n_fft, hop):
    rate, hz = 8000, 1000.0
    t = torch.arange(4000) / rate
    wave = torch.stack([torch.sin(2 * math.pi * hz * t), torch.zeros_like(t)])  # (2, S)
    spec = log_spectrogram(wave, n_fft, hop)
    assert spec.shape == (2, 1 + 4000 // hop, n_fft // 2 + 1)
    middle = spec[0, spec.shape[1] // 2]
    assert middle.argmax().item() == round(hz / rate * n_fft)
    assert torch.allclose(spec[1], torch.full_like(spec[1], math.log(1e-3)))  # log(0 + eps)


def test_frame_lengths_match_an_unpadded_spectrogram():
    b = speech_batch(4, generator=gen())
    n = frame_lengths(b.lengths, 128)
    for i in range(4):
        alone = log_spectrogram(b.waves[i:i + 1, :int(b.lengths[i])], 256, 128)
        assert alone.shape[1] == int(n[i])


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"batch_size": 0}, "batch_size"),
    ({"min_symbols": 4, "max_symbols": 3}, "max_symbols"),
    ({"sample_rate": 4000}, "sample_rate must exceed 5200"),
    ({"duration": (0.1, 0.05)}, "duration"),
    ({"duration": 0.1}, "duration must be a pair"),
    ({"gap": (-0.1, 0.1)}, r"gap\[0\]"),
    ({"noise": -1.0}, "noise"),
    ({"generator": 3}, "generator"),
])
def test_bad_generator_arguments_are_named(kwargs, pattern):
    kwargs = {"batch_size": 2} | kwargs
    with pytest.raises((TypeError, ValueError), match=pattern):
        speech_batch(**kwargs)


def test_bad_spectrogram_arguments_are_named():
    wave = torch.zeros(2, 100)
    with pytest.raises(ValueError, match=r"wave must have 2 dimensions, got shape \(100,\)"):
        log_spectrogram(wave[0])
    with pytest.raises(TypeError, match="wave must be a floating-point tensor"):
        log_spectrogram(wave.long())
    with pytest.raises(ValueError, match="hop must be <= n_fft=64"):
        log_spectrogram(wave, 64, 65)
    with pytest.raises(ValueError, match="eps"):
        log_spectrogram(wave, eps=0.0)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        frame_lengths(torch.tensor([-1]), 64)
