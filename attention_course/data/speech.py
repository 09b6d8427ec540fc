"""Synthetic "speech" for Chapter 9: sequences of tones and chirps, with their time spans.

Each utterance is a sequence of 3–6 symbols (by default). A symbol is a sound of its own:
a steady tone at one of four frequencies, or a chirp sweeping up or down (see
:data:`SOUNDS`), lasting a random duration, with a random loudness, separated from its
neighbours by short silences, all under white noise. The task is to transcribe the
waveform into its symbols, as a speech recogniser spells out characters
(Listen, Attend and Spell; Chan et al., 2016). Because we made the audio, we know exactly
when each symbol sounds: ``spans`` is the ground truth an attention alignment can be scored
against.

**Vocabulary.** The course's (:mod:`attention_course.data.vocab`): symbol ``k`` (the
``k``-th entry of :data:`SOUNDS`) is token ``FIRST_SYMBOL + k``; targets are
``tgt_in = BOS y_1 … y_n`` and ``tgt_out = y_1 … y_n EOS``, padded with ``PAD``.

:func:`log_spectrogram` turns waveforms into the features a model reads: log magnitudes of a
short-time Fourier transform (``torch.stft``), one row per frame.

The generator draws from ``generator`` only (``None``: torch's global generator), so a
seeded ``torch.Generator`` gives the same batch every time.

Shape legend: ``B`` batch, ``S`` samples (padded), ``N`` symbols (padded, ``max_symbols``),
``T = N + 1`` target steps, ``F`` frames, ``K = n_fft // 2 + 1`` frequency bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attention_course._checks import (
    check_float,
    check_generator,
    check_int,
    check_tensor,
)
from attention_course.data.vocab import BOS, EOS, FIRST_SYMBOL, PAD
from attention_course.masks import padding_mask

__all__ = ["SOUNDS", "NUM_SOUNDS", "SpeechBatch", "speech_batch", "log_spectrogram",
           "frame_lengths"]

#: The symbols' sounds: ``(name, start frequency, end frequency)`` in Hz. Equal frequencies
#: make a steady tone; different ones a linear chirp between them.
SOUNDS: tuple[tuple[str, float, float], ...] = (
    ("tone 500", 500.0, 500.0),
    ("tone 1000", 1000.0, 1000.0),
    ("tone 1700", 1700.0, 1700.0),
    ("tone 2600", 2600.0, 2600.0),
    ("chirp up", 700.0, 2300.0),
    ("chirp down", 2300.0, 700.0),
)
NUM_SOUNDS = len(SOUNDS)


@dataclass(frozen=True)
class SpeechBatch:
    """A batch of :func:`speech_batch`.

    - ``waves`` ``(B, S)`` float32 waveforms, zero after each row's ``lengths`` ``(B,)``;
    - ``symbols`` ``(B, N)`` the symbols' token ids, ``PAD`` after each row's
      ``num_symbols`` ``(B,)``;
    - ``spans`` ``(B, N, 2)`` each symbol's ``[start, end)`` in samples (``-1`` at padding);
    - ``tgt_in``/``tgt_out`` ``(B, T)`` teacher-forcing input and target, ``T = N + 1``;
    - ``sample_rate`` in Hz and ``vocab_size``, the vocabulary a model needs.
    """

    waves: torch.Tensor  # (B, S)
    lengths: torch.Tensor  # (B,)
    symbols: torch.Tensor  # (B, N)
    num_symbols: torch.Tensor  # (B,)
    spans: torch.Tensor  # (B, N, 2)
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    sample_rate: int
    vocab_size: int

    @property
    def symbol_mask(self) -> torch.Tensor:
        """``(B, N)`` bool: ``True`` at real symbols."""
        return padding_mask(self.num_symbols, self.symbols.shape[1])

    def frame_spans(self, hop: int, factor: int = 1) -> torch.Tensor:
        """Each symbol's span in frames of ``hop * factor`` samples: ``(B, N, 2)`` holding the
        first and the last frame (inclusive) that overlap the symbol, ``-1`` at padding.

        Frame ``j`` stands for samples ``[j * hop * factor, (j + 1) * hop * factor)``: for
        :func:`log_spectrogram` (``factor=1``) that is where its window is centred; after an
        encoder that merges ``factor`` frames into one, the samples its inputs are centred on.
        """
        check_int("hop", hop, minimum=1)
        check_int("factor", factor, minimum=1)
        stride = hop * factor
        first = self.spans[..., 0] // stride  # (B, N)
        last = (self.spans[..., 1] - 1) // stride  # (B, N)
        out = torch.stack([first, last], dim=-1)  # (B, N, 2)
        return torch.where(self.symbol_mask[..., None], out, -1)


def _check_range(name: str, value, minimum: float) -> tuple[float, float]:
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (min, max) in seconds, got {value!r}")
    low = check_float(f"{name}[0]", value[0], minimum=minimum)
    high = check_float(f"{name}[1]", value[1], minimum=minimum)
    if high < low:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value}")
    return low, high


def _uniform(generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def speech_batch(
    batch_size: int,
    *,
    min_symbols: int = 3,
    max_symbols: int = 6,
    sample_rate: int = 8000,
    duration: tuple[float, float] = (0.05, 0.1),
    gap: tuple[float, float] = (0.01, 0.03),
    noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> SpeechBatch:
    """``batch_size`` utterances of ``min_symbols … max_symbols`` symbols (uniform per row).

    Each symbol is drawn uniformly from :data:`SOUNDS` and lasts ``duration`` seconds (a range
    ``(min, max)``, uniform per symbol); silences of ``gap`` seconds (a range) come before,
    between and after the symbols. A symbol has a random phase and an amplitude in
    ``[0.5, 1]``, and fades in and out over 2 ms (no clicks); Gaussian noise of standard
    deviation ``noise`` covers each row up to its length. Every frequency must lie below
    the Nyquist frequency ``sample_rate / 2``.

    Returns:
        :class:`SpeechBatch`; ``S`` is the longest row's length, ``N = max_symbols``,
        ``vocab_size = FIRST_SYMBOL + NUM_SOUNDS``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("min_symbols", min_symbols, minimum=1)
    check_int("max_symbols", max_symbols, minimum=1)
    if max_symbols < min_symbols:
        raise ValueError(f"max_symbols must be >= min_symbols={min_symbols}, got {max_symbols}")
    check_int("sample_rate", sample_rate, minimum=1)
    top = max(max(f0, f1) for _, f0, f1 in SOUNDS)
    if sample_rate <= 2 * top:
        raise ValueError(f"sample_rate must exceed {2 * top:g} Hz (twice the highest frequency "
                         f"in SOUNDS, {top:g} Hz), got {sample_rate}")
    dur_lo, dur_hi = _check_range("duration", duration, 0.0)
    if dur_lo * sample_rate < 1:
        raise ValueError(f"duration[0] must last at least one sample (>= {1 / sample_rate:g} "
                         f"s at sample_rate={sample_rate}), got {dur_lo!r}")
    gap_lo, gap_hi = _check_range("gap", gap, 0.0)
    noise = check_float("noise", noise, minimum=0.0)
    check_generator("generator", generator)

    B, N = batch_size, max_symbols
    counts = torch.randint(min_symbols, max_symbols + 1, (B,), generator=generator)  # (B,)
    kinds = torch.randint(NUM_SOUNDS, (B, N), generator=generator)  # (B, N)
    durations = (_uniform(generator, (B, N), dur_lo, dur_hi) * sample_rate).long()  # (B, N)
    gaps = (_uniform(generator, (B, N + 1), gap_lo, gap_hi) * sample_rate).long()  # (B, N+1)
    phases = _uniform(generator, (B, N), 0.0, 2 * math.pi)  # (B, N)
    amplitudes = _uniform(generator, (B, N), 0.5, 1.0)  # (B, N)
    real = padding_mask(counts, N)  # (B, N)
    durations = torch.where(real, durations, 0)
    # Symbol i starts after gaps 0..i and symbols 0..i-1; the row ends after one more gap.
    starts = gaps[:, :N].cumsum(1) + durations.cumsum(1) - durations  # (B, N)
    ends = starts + durations  # (B, N)
    lengths = (ends.gather(1, (counts - 1)[:, None])[:, 0]
               + gaps.gather(1, counts[:, None])[:, 0])  # (B,)
    S = int(lengths.max())

    noise_wave = torch.randn(B, S, generator=generator)  # (B, S)
    t = torch.arange(S, dtype=torch.float64)  # (S,) sample index
    # The symbol each sample may belong to: the last one starting at or before it (count the
    # starts of symbols 1..N-1 passed so far).
    marks = torch.zeros(B, S + 1, dtype=torch.long)  # (B, S + 1)
    marks.scatter_add_(1, starts[:, 1:].clamp(max=S), torch.ones(B, N - 1, dtype=torch.long))
    which = marks[:, :S].cumsum(1)  # (B, S)
    freqs = torch.tensor([[f0, f1] for _, f0, f1 in SOUNDS], dtype=torch.float64)  # (K, 2)
    f0, f1 = freqs[kinds].unbind(-1)  # (B, N) each
    local = t - starts.gather(1, which)  # (B, S): samples since that symbol's start
    dur = durations.gather(1, which).double()  # (B, S)
    inside = (local >= 0) & (local < dur) & real.gather(1, which)  # (B, S)
    # Linear chirp: f(τ) = f0 + (f1 - f0) τ / D, phase 2π ∫ f = 2π (f0 τ + (f1 - f0) τ² / 2D).
    tau = local / sample_rate  # (B, S) seconds
    slope = (f1 - f0) / (2 * durations.clamp(min=1) / sample_rate)  # (B, N): (f1 - f0) / 2D
    phase = 2 * math.pi * tau * (f0.gather(1, which) + slope.gather(1, which) * tau)  # (B, S)
    fade = max(1, int(0.002 * sample_rate))  # samples of fade in / out
    envelope = torch.minimum((local + 1) / fade, (dur - local) / fade).clamp(0, 1)  # (B, S)
    tone = (amplitudes.gather(1, which) * envelope).float() * torch.sin(
        phase + phases.gather(1, which)).float()  # (B, S)
    waves = torch.where(inside, tone, 0.0)  # (B, S)
    waves = waves + noise * noise_wave * (t < lengths[:, None])  # noise up to each length

    symbols = torch.where(real, FIRST_SYMBOL + kinds, PAD)  # (B, N)
    spans = torch.where(real[..., None], torch.stack([starts, ends], -1), -1)  # (B, N, 2)
    tgt_in = torch.full((B, N + 1), PAD)  # (B, T)
    tgt_out = torch.full((B, N + 1), PAD)  # (B, T)
    tgt_in[:, 0] = BOS
    tgt_in[:, 1:] = symbols
    tgt_out[:, :N] = symbols
    tgt_out[torch.arange(B), counts] = EOS
    return SpeechBatch(waves, lengths, symbols, counts, spans, tgt_in, tgt_out,
                       sample_rate, FIRST_SYMBOL + NUM_SOUNDS)


def frame_lengths(lengths: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames of :func:`log_spectrogram` that belong to each row: ``1 + lengths // hop``
    ``(B,)`` (frame ``f`` is centred on sample ``f * hop``)."""
    check_tensor("lengths", lengths, ndim=1, integer=True)
    check_int("hop", hop, minimum=1)
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got minimum {int(lengths.min())}")
    return 1 + lengths // hop


def log_spectrogram(wave: torch.Tensor, n_fft: int = 128, hop: int = 64, *,
                    eps: float = 1e-3) -> torch.Tensor:
    r"""Log-magnitude spectrogram :math:`\log(|\mathrm{STFT}(x)| + \varepsilon)`.

    ``wave`` ``(B, S)`` floating → ``(B, F, K)`` with ``F = 1 + S // hop`` frames and
    ``K = n_fft // 2 + 1`` frequency bins. A Hann window of ``n_fft`` samples moves by
    ``hop``; frame ``f`` is centred on sample ``f * hop`` (the signal is zero-padded by
    ``n_fft // 2`` at both ends, so padding after a row reads as silence). Frames of a padded
    batch that lie past a row's end are padding: see :func:`frame_lengths`.
    """
    check_tensor("wave", wave, ndim=2, floating=True)
    check_int("n_fft", n_fft, minimum=2)
    check_int("hop", hop, minimum=1)
    if hop > n_fft:
        raise ValueError(f"hop must be <= n_fft={n_fft} (frames must not skip samples), "
                         f"got {hop}")
    if wave.shape[1] == 0:
        raise ValueError(f"wave must hold at least one sample, got shape {tuple(wave.shape)}")
    eps = check_float("eps", eps, minimum=0.0, include_minimum=False)
    window = torch.hann_window(n_fft, dtype=wave.dtype, device=wave.device)  # (n_fft,)
    spec = torch.stft(wave, n_fft, hop_length=hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)  # (B, K, F)
    return torch.log(spec.abs() + eps).transpose(1, 2)  # (B, F, K)
