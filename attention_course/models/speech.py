r"""Listen, Attend and Spell (Chan et al., 2016): attention from spectrogram frames to symbols.

Shape legend: ``B`` batch, ``F`` input frames, ``D`` features per frame (spectrogram bins),
``R = 2 ** pyramid_layers`` the encoder's time reduction, ``U = F // R`` encoder frames,
``H`` hidden size, ``M = 2H`` encoder output size, ``T`` target steps, ``V`` vocabulary.

- :class:`PyramidalEncoder` (the *listener*) runs a bidirectional RNN over the frames; each
  of the ``pyramid_layers`` layers above it first concatenates pairs of neighbouring frames,
  :math:`h^{l}_i = \mathrm{BiRNN}([h^{l-1}_{2i}; h^{l-1}_{2i+1}])`, so the time resolution
  halves at every layer. Speech has far more frames than symbols; the pyramid shortens the
  sequence the decoder attends over (and lets the RNNs summarise neighbouring frames).
- The *speller* is the course's :class:`~attention_course.models.rnn_seq2seq.BahdanauDecoder`
  (Chapter 1): additive attention over the ``U`` encoder frames at every output step. Nothing
  about attention is new here; only what it attends over is.

Padded frames are skipped by the RNNs (packed sequences) and masked out of the attention, so
they get exactly zero weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attention_course._checks import (
    check_bool,
    check_int,
    check_lengths,
    check_like_module,
    check_same_device,
    check_tensor,
)
from attention_course.data.vocab import BOS, PAD
from attention_course.masks import padding_mask
from attention_course.models.rnn_seq2seq import CELLS, BahdanauDecoder, _check_tokens

__all__ = ["PyramidalEncoder", "ListenAttendSpell"]


def _check_cell(cell) -> None:
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")


class PyramidalEncoder(nn.Module):
    """The listener: LayerNorm per frame, a BiRNN, then ``pyramid_layers`` BiRNNs that each
    halve the time resolution by concatenating neighbouring frames (a trailing odd frame is
    dropped, as in LAS).

    ``forward(features (B, F, D), lengths (B,))`` → ``(memory (B, U, 2H), memory_lengths
    (B,), state)``, ``U = F // R``, ``memory_lengths = lengths // R`` (zeros at padding);
    ``state`` ``(1, B, H)`` (a pair for an LSTM) is the decoder's initial state,
    ``tanh(W_s h_bwd + b_s)`` from the top layer's backward direction (as
    :class:`~attention_course.models.rnn_seq2seq.RNNEncoder` does).
    """

    def __init__(self, input_size: int, hidden_size: int, *, pyramid_layers: int = 2,
                 cell: str = "lstm"):
        super().__init__()
        check_int("input_size", input_size, minimum=1)
        check_int("hidden_size", hidden_size, minimum=1)
        check_int("pyramid_layers", pyramid_layers, minimum=0)
        _check_cell(cell)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.pyramid_layers = pyramid_layers
        rnn = CELLS[cell][0]
        self.norm = nn.LayerNorm(input_size)
        sizes = [input_size] + [4 * hidden_size] * pyramid_layers  # 2 frames of 2H each
        self.rnns = nn.ModuleList(rnn(size, hidden_size, batch_first=True, bidirectional=True)
                                  for size in sizes)
        self.bridge = nn.Linear(hidden_size, hidden_size)  # W_s, b_s
        if cell == "lstm":
            self.bridge_cell = nn.Linear(hidden_size, hidden_size)

    @property
    def reduction(self) -> int:
        """``R = 2 ** pyramid_layers``: input frames per encoder frame."""
        return 2 ** self.pyramid_layers

    @property
    def output_size(self) -> int:
        """``M = 2H`` features per encoder frame."""
        return 2 * self.hidden_size

    def check_inputs(self, features, lengths) -> None:
        """``features`` ``(B, F, D)`` floating with the module's dtype and device, ``lengths``
        ``(B,)`` in ``[R, F]`` (every row keeps at least one encoder frame)."""
        check_tensor("features", features, ndim=3, floating=True)
        B, F, D = features.shape
        if D != self.input_size or B == 0:
            raise ValueError(f"features must have shape (B, F, D) with B >= 1 and "
                             f"D = input_size = {self.input_size}, got {tuple(features.shape)}")
        check_like_module("features", features, self.bridge.weight)
        check_tensor("lengths", lengths)
        check_same_device("lengths", lengths, "features", features.device)
        R = self.reduction
        if F < R:
            raise ValueError(f"features must have at least R = {R} frames (pyramid_layers="
                             f"{self.pyramid_layers} halvings), got shape {tuple(features.shape)}")
        check_lengths("lengths", lengths, B, F, minimum=R)

    @staticmethod
    def _run(rnn, x, lengths):
        """``rnn`` over ``x`` ``(B, L, In)`` skipping padding → ``(B, L, 2H)``, final state."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state  # (B, L, 2H)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        self.check_inputs(features, lengths)
        x, state = self._run(self.rnns[0], self.norm(features),
                             lengths)  # (B, F, 2H)
        for rnn in self.rnns[1:]:
            B, L, M = x.shape
            # Pyramid step: frames (2i, 2i+1) -> one frame of 2M features.
            x = x[:, :2 * (L // 2)].reshape(B, L // 2, 2 * M)  # (B, L // 2, 4H)
            lengths = lengths // 2
            x, state = self._run(rnn, x, lengths)  # (B, L // 2, 2H)
        # state (2, B, H): [forward, backward] of the top layer.
        if isinstance(state, tuple):  # LSTM: (h, c)
            h, c = state
            state = (torch.tanh(self.bridge(h[1:])), self.bridge_cell(c[1:]))
        else:
            state = torch.tanh(self.bridge(state[1:]))  # (1, B, H)
        return x, lengths, state  # (B, U, 2H), (B,), (1, B, H)


class ListenAttendSpell(nn.Module):
    """A LAS-style recogniser: :class:`PyramidalEncoder` + the course's Bahdanau decoder.

    ``ListenAttendSpell(vocab_size, input_size, hidden_size=64, *, embed_dim=16,
    pyramid_layers=2, cell="lstm")``; ``pad_id``/``bos_id`` default to the course
    vocabulary's. ``forward(features, lengths, tgt_in, *, need_weights=False)`` (teacher
    forcing) → ``(logits (B, T, V), weights (B, T, U) or None)``; :meth:`greedy_decode`
    spells without the target. The weights are the decoder's attention over encoder frames:
    encoder frame ``u`` summarises input frames ``u R … u R + R - 1``.
    """

    def __init__(
        self,
        vocab_size: int,
        input_size: int,
        hidden_size: int = 64,
        *,
        embed_dim: int = 16,
        pyramid_layers: int = 2,
        cell: str = "lstm",
        pad_id: int = PAD,
        bos_id: int = BOS,
    ):
        super().__init__()
        check_int("vocab_size", vocab_size, minimum=1)
        check_int("embed_dim", embed_dim, minimum=1)
        for name, value in (("pad_id", pad_id), ("bos_id", bos_id)):
            check_int(name, value, minimum=0)
            if value >= vocab_size:
                raise ValueError(f"{name}={value} is not a token of the vocabulary (size "
                                 f"{vocab_size})")
        self.vocab_size, self.pad_id, self.bos_id = vocab_size, pad_id, bos_id
        self.encoder = PyramidalEncoder(input_size, hidden_size,
                                        pyramid_layers=pyramid_layers, cell=cell)
        self.decoder = BahdanauDecoder(vocab_size, embed_dim, hidden_size, cell=cell,
                                       memory_size=self.encoder.output_size, pad_id=pad_id)

    def _encode(self, features, lengths):
        # The encoder checks its arguments.
        memory, memory_lengths, state = self.encoder(features, lengths)  # (B, U, M)
        mask = padding_mask(memory_lengths, memory.shape[1])  # (B, U): True at real frames
        return memory, state, mask

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor, *,
                need_weights: bool = False):
        """Teacher forcing: ``features`` ``(B, F, D)``, ``lengths`` ``(B,)`` frames per row,
        ``tgt_in`` ``(B, T)`` → ``(logits (B, T, V), weights (B, T, U) or None)``."""
        # Every argument is checked before any computation.
        self.encoder.check_inputs(features, lengths)
        _check_tokens("tgt_in", tgt_in, self.decoder.embedding)
        if tgt_in.shape[0] != features.shape[0]:
            raise ValueError(f"tgt_in has batch size {tgt_in.shape[0]} but features has "
                             f"{features.shape[0]}; expected one target per utterance")
        check_bool("need_weights", need_weights)
        memory, state, mask = self._encode(features, lengths)
        logits, _, weights = self.decoder(tgt_in, state, memory, mask)  # weights (B, T, U)
        return logits, (weights if need_weights else None)

    @torch.no_grad()
    def greedy_decode(self, features: torch.Tensor, lengths: torch.Tensor, max_len: int, *,
                      need_weights: bool = False):
        """Feed back the most likely symbol for ``max_len`` steps, starting from ``BOS``.

        Returns tokens ``(B, max_len)`` (everything after a row's first ``EOS`` is whatever
        the model kept emitting: cut it there) and weights ``(B, max_len, U)`` or ``None``.
        """
        check_int("max_len", max_len, minimum=1)
        check_bool("need_weights", need_weights)
        memory, state, mask = self._encode(features, lengths)
        B = features.shape[0]
        token = torch.full((B, 1), self.bos_id, device=features.device)  # (B, 1)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, state, alpha = self.decoder(token, state, memory, mask)  # (B, 1, V)
            token = logits.argmax(-1)  # (B, 1)
            tokens.append(token)
            weights.append(alpha)  # (B, 1, U)
        tokens = torch.cat(tokens, 1)  # (B, max_len)
        return tokens, (torch.cat(weights, 1) if need_weights else None)
