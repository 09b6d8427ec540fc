r"""RNN encoder–decoders: the plain baseline and Bahdanau's attention decoder.

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``E``
embedding size, ``H`` hidden size, ``M`` encoder output (memory) size (``H``,
or ``2H`` if bidirectional), ``V`` vocabulary size.

- :class:`RNNEncoder` reads the source; padded steps are skipped (packed
  sequences), so the final state is the state after each sequence's *own* last
  token. With ``bidirectional=True`` a second RNN reads each sequence
  backwards, from its own last token to its first; the outputs are the
  annotations :math:`h_j = [\overrightarrow{h}_j; \overleftarrow{h}_j]`
  ``(B, S, 2H)``, and the state handed to the decoder is, as in Bahdanau et al.
  (appendix A.2.2), :math:`s_0 = \tanh(W_s \overleftarrow{h}_1 + b_s)`
  ``(1, B, H)``: the backward direction's final state (it has read the whole
  source, ending at the first token) through a learned projection. An LSTM's
  cell state goes through a second learned projection (no tanh).
- :class:`RNNDecoder` (plain) starts from that final state and sees nothing
  else of the source: one fixed-size vector must carry the whole input.
- :class:`BahdanauDecoder` also starts from it, but at every step scores all
  encoder outputs (``memory_size`` ``M`` features each) with the additive score
  :class:`~attention_course.attention.AdditiveScore`,
  :math:`e_{tj} = v^\top \tanh(W_q s_{t-1} + W_k h_j)`, and feeds the context
  :math:`c_t = \sum_j \alpha_{tj} h_j` to the RNN cell. It returns the weights
  of every step.
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
    check_tokens,
)
from attention_course.attention import AdditiveScore, attention
from attention_course.data.vocab import BOS, PAD
from attention_course.masks import padding_mask

__all__ = ["RNNEncoder", "RNNDecoder", "BahdanauDecoder", "RNNSeq2Seq"]

CELLS = {"gru": (nn.GRU, nn.GRUCell), "lstm": (nn.LSTM, nn.LSTMCell)}


def _check_cell(cell: str) -> None:
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")


def _check_options(vocab_size, embed_dim, hidden_size, cell,
                   **token_ids) -> None:
    """Constructor arguments: sizes >= 1, a known cell, token ids inside the
    vocabulary."""
    for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim),
                        ("hidden_size", hidden_size)):
        check_int(name, value, minimum=1)
    _check_cell(cell)
    for name, value in token_ids.items():
        check_int(name, value, minimum=0)
        if value >= vocab_size:
            raise ValueError(f"{name}={value} is not a token of the "
                             f"vocabulary (size {vocab_size})")


def _check_tokens(name, tokens, embedding: nn.Embedding) -> None:
    """``tokens`` ``(B, L)`` with ``B, L >= 1``, ids in the vocabulary, on the
    model's device."""
    check_tensor(name, tokens, ndim=2, integer=True)
    check_same_device(name, tokens, "the model", embedding.weight.device)
    if 0 in tokens.shape:
        raise ValueError(f"{name} must hold at least one sequence of at least "
                         f"one token (B, L >= 1), got shape "
                         f"{tuple(tokens.shape)}")
    check_tokens(name, tokens, embedding.num_embeddings)


def _check_state(state, rnn_type, batch_size: int, hidden_size: int,
                 param) -> None:
    """A recurrent state as the encoder returns it: ``(1, B, H)`` (GRU) or a
    pair of them (LSTM), with the model's dtype and device."""
    if rnn_type in (nn.LSTM, nn.LSTMCell):
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"state must be an LSTM state, a tuple (h, c) of "
                            f"two (1, B, H) tensors, got "
                            f"{type(state).__name__}")
        parts = (("state[0]", state[0]), ("state[1]", state[1]))
    else:
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"state must be a GRU state, one (1, B, H) tensor, "
                            f"got {type(state).__name__}")
        parts = (("state", state),)
    for name, s in parts:
        check_tensor(name, s, floating=True)
        if tuple(s.shape) != (1, batch_size, hidden_size):
            raise ValueError(f"{name} must have shape (1, B, H) = "
                             f"(1, {batch_size}, {hidden_size}) (the "
                             f"encoder's final state), got {tuple(s.shape)}")
        check_like_module(name, s, param)


class RNNEncoder(nn.Module):
    """Embedding + one-layer GRU/LSTM over the source; returns every output
    and the final state.

    ``bidirectional=True`` adds a backward RNN: outputs ``(B, S, 2H)``
    (forward half first), and the returned state is the decoder's initial
    state ``tanh(W_s h_bwd + b_s)`` ``(1, B, H)``, computed from the backward
    direction's final state (Bahdanau et al.).
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, *,
                 cell: str = "gru", pad_id: int = PAD,
                 bidirectional: bool = False):
        super().__init__()
        _check_options(vocab_size, embed_dim, hidden_size, cell,
                       pad_id=pad_id)
        check_bool("bidirectional", bidirectional)
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_dim,
                                      padding_idx=pad_id)
        self.rnn = CELLS[cell][0](embed_dim, hidden_size, batch_first=True,
                                  bidirectional=bidirectional)
        if bidirectional:  # created last: one direction draws as before
            self.bridge = nn.Linear(hidden_size, hidden_size)  # W_s, b_s
            if cell == "lstm":
                self.bridge_cell = nn.Linear(hidden_size, hidden_size)

    @property
    def output_size(self) -> int:
        """Features per source position in the outputs: ``H``, or ``2H`` if
        bidirectional."""
        return self.rnn.hidden_size * (2 if self.bidirectional else 1)

    def check_inputs(self, src, src_lengths) -> None:
        """``src`` ``(B, S)`` token ids, ``src_lengths`` ``(B,)`` in
        ``[1, S]``."""
        _check_tokens("src", src, self.embedding)
        check_tensor("src_lengths", src_lengths)
        check_same_device("src_lengths", src_lengths, "src", src.device)
        check_lengths("src_lengths", src_lengths, src.shape[0], src.shape[1])

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor):
        """``src`` ``(B, S)``, ``src_lengths`` ``(B,)`` → outputs
        ``(B, S, M)`` (zeros at padding) and the state for the decoder
        ``(1, B, H)`` (a pair of them for an LSTM)."""
        self.check_inputs(src, src_lengths)
        emb = self.embedding(src)  # (B, S, E)
        # Packing skips the padding: the forward RNN stops, and the
        # backward RNN starts, at each sequence's own last token.
        packed = pack_padded_sequence(emb, src_lengths.cpu(),
                                      batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True,
                                         total_length=src.shape[1])
        if self.bidirectional:  # state (2, B, H): [forward, backward]
            if isinstance(state, tuple):  # LSTM: (h, c)
                h, c = state
                state = (torch.tanh(self.bridge(h[1:])),
                         self.bridge_cell(c[1:]))
            else:
                state = torch.tanh(self.bridge(state[1:]))  # (1, B, H)
        return outputs, state  # (B, S, M): M = H, or 2H if bidirectional


class RNNDecoder(nn.Module):
    """Plain decoder: conditioned on the source only through the encoder's
    final state."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, *,
                 cell: str = "gru", pad_id: int = PAD):
        super().__init__()
        _check_options(vocab_size, embed_dim, hidden_size, cell,
                       pad_id=pad_id)
        self.embedding = nn.Embedding(vocab_size, embed_dim,
                                      padding_idx=pad_id)
        self.rnn = CELLS[cell][0](embed_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)

    def check_inputs(self, tgt_in, state) -> None:
        """``tgt_in`` ``(B, T)`` token ids; ``state`` the encoder's final
        state for ``B``."""
        _check_tokens("tgt_in", tgt_in, self.embedding)
        _check_state(state, type(self.rnn), tgt_in.shape[0],
                     self.rnn.hidden_size, self.out.weight)

    def forward(self, tgt_in, state, memory=None, memory_mask=None):
        """``tgt_in`` ``(B, T)`` → logits ``(B, T, V)``, new state, ``None``
        (no weights).

        ``memory``/``memory_mask`` (the encoder outputs) are accepted and
        ignored: that is exactly the limitation attention removes.
        """
        self.check_inputs(tgt_in, state)
        emb = self.embedding(tgt_in)  # (B, T, E)
        outputs, state = self.rnn(emb, state)  # (B, T, H)
        return self.out(outputs), state, None  # (B, T, V)


class BahdanauDecoder(nn.Module):
    """Decoder with additive attention over the encoder outputs (Bahdanau et
    al., 2015); ``memory_size`` is the encoder's output size (default
    ``hidden_size``; ``2 * hidden_size`` after a bidirectional encoder)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        *,
        cell: str = "gru",
        attention_dim: int | None = None,
        memory_size: int | None = None,
        pad_id: int = PAD,
    ):
        super().__init__()
        _check_options(vocab_size, embed_dim, hidden_size, cell,
                       pad_id=pad_id)
        if attention_dim is None:
            attention_dim = hidden_size
        check_int("attention_dim", attention_dim, minimum=1)
        if memory_size is None:
            memory_size = hidden_size
        check_int("memory_size", memory_size, minimum=1)
        self.memory_size = memory_size  # M
        self.embedding = nn.Embedding(vocab_size, embed_dim,
                                      padding_idx=pad_id)
        self.score = AdditiveScore(hidden_size, memory_size, attention_dim)
        self.cell = CELLS[cell][1](embed_dim + memory_size, hidden_size)
        self.out = nn.Linear(hidden_size + memory_size, vocab_size)

    def check_inputs(self, tgt_in, state, memory, memory_mask) -> None:
        """``tgt_in`` ``(B, T)`` token ids, ``state`` the encoder's final
        state, ``memory`` ``(B, S, M)`` the encoder outputs, ``memory_mask``
        boolean ``(B, S)`` or ``None``."""
        _check_tokens("tgt_in", tgt_in, self.embedding)
        B, H, M = tgt_in.shape[0], self.cell.hidden_size, self.memory_size
        check_tensor("memory", memory, ndim=3, floating=True)
        if memory.shape[0] != B or memory.shape[2] != M:
            raise ValueError(f"memory must have shape (B, S, M) = ({B}, S, "
                             f"{M}) (the encoder outputs; B from tgt_in, "
                             f"M = memory_size), got {tuple(memory.shape)}")
        check_like_module("memory", memory, self.out.weight)
        _check_state(state, type(self.cell), B, H, self.out.weight)
        if memory_mask is not None:
            check_tensor("memory_mask", memory_mask, ndim=2,
                         dtype=torch.bool)
            if memory_mask.shape != memory.shape[:2]:
                raise ValueError(f"memory_mask must have shape (B, S) = "
                                 f"{tuple(memory.shape[:2])}, one row per "
                                 f"sequence (True at real source tokens), "
                                 f"got {tuple(memory_mask.shape)}")
            check_same_device("memory_mask", memory_mask, "memory",
                              memory.device)

    def forward(self, tgt_in, state, memory, memory_mask):
        """``tgt_in`` ``(B, T)``, ``memory`` ``(B, S, M)``, ``memory_mask``
        ``(B, S)`` (``None``: every source position is real) → logits
        ``(B, T, V)``, new state, attention weights ``(B, T, S)``."""
        self.check_inputs(tgt_in, state, memory, memory_mask)
        lstm = isinstance(state, tuple)  # LSTM state: (h, c); GRU state: h
        # Drop the layer axis: (1, B, H) -> (B, H).
        state = tuple(s[-1] for s in state) if lstm else state[-1]
        emb = self.embedding(tgt_in)  # (B, T, E)
        key_mask = None
        if memory_mask is not None:
            key_mask = memory_mask[:, None, :]  # (B, 1, S)
        # Projects the encoder outputs once, not at every step.
        score = self.score.with_keys(memory)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            s_prev = state[0] if lstm else state  # (B, H): the query
            context, alpha = attention(
                s_prev[:, None, :], memory, memory,
                score=score, mask=key_mask)  # (B, 1, M), (B, 1, S)
            context = context[:, 0]  # (B, M)
            x = torch.cat([emb[:, t], context], dim=-1)  # (B, E + M)
            state = self.cell(x, state)
            s_t = state[0] if lstm else state  # (B, H)
            out = self.out(torch.cat([s_t, context], dim=-1))  # (B, V)
            logits.append(out)
            weights.append(alpha[:, 0])  # (B, S)
        # Restore the layer axis: (1, B, H).
        state = tuple(s[None] for s in state) if lstm else state[None]
        logits = torch.stack(logits, 1)  # (B, T, V)
        return logits, state, torch.stack(weights, 1)  # weights (B, T, S)


class RNNSeq2Seq(nn.Module):
    """Encoder–decoder with a plain or a Bahdanau decoder.

    ``RNNSeq2Seq(vocab_size, embed_dim, hidden_size, attention=True,
    cell="gru", bidirectional=False)``; the token ids ``pad_id`` and
    ``bos_id`` default to the course vocabulary's
    (:mod:`attention_course.data.vocab`). ``bidirectional=True`` gives the
    encoder a backward RNN (see :class:`RNNEncoder`): the Bahdanau decoder then
    attends over ``2H`` features per source position, and either decoder
    starts from ``tanh(W_s h_bwd + b_s)``. ``forward(src, src_lengths,
    tgt_in)`` (teacher forcing) → ``(logits (B, T, V), weights (B, T, S) or
    None)``; :meth:`greedy_decode` generates without the target.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 64,
        *,
        attention: bool = False,
        cell: str = "gru",
        pad_id: int = PAD,
        bos_id: int = BOS,
        bidirectional: bool = False,
    ):
        super().__init__()
        _check_options(vocab_size, embed_dim, hidden_size, cell,
                       pad_id=pad_id, bos_id=bos_id)
        check_bool("attention", attention)
        check_bool("bidirectional", bidirectional)
        self.vocab_size, self.pad_id, self.bos_id = vocab_size, pad_id, bos_id
        self.encoder = RNNEncoder(vocab_size, embed_dim, hidden_size,
                                  cell=cell, pad_id=pad_id,
                                  bidirectional=bidirectional)
        if attention:
            self.decoder = BahdanauDecoder(
                vocab_size, embed_dim, hidden_size, cell=cell, pad_id=pad_id,
                memory_size=self.encoder.output_size)
        else:
            self.decoder = RNNDecoder(vocab_size, embed_dim, hidden_size,
                                      cell=cell, pad_id=pad_id)

    def _encode(self, src, src_lengths):
        # The encoder checks its arguments.
        memory, state = self.encoder(src, src_lengths)  # (B, S, M)
        mask = padding_mask(src_lengths, src.shape[1])  # (B, S)
        return memory, state, mask

    def forward(self, src, src_lengths, tgt_in):
        """Teacher forcing: ``src`` ``(B, S)``, ``src_lengths`` ``(B,)``,
        ``tgt_in`` ``(B, T)`` → ``(logits (B, T, V), weights (B, T, S) or
        None)``."""
        # Every argument is checked before any computation.
        self.encoder.check_inputs(src, src_lengths)
        _check_tokens("tgt_in", tgt_in, self.decoder.embedding)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in has batch size {tgt_in.shape[0]} but "
                             f"src has {src.shape[0]}")
        memory, state, mask = self._encode(src, src_lengths)
        logits, _, weights = self.decoder(tgt_in, state, memory, mask)
        return logits, weights

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, max_len: int):
        """Feed back the most likely token for ``max_len`` steps, starting
        from ``BOS``.

        Returns tokens ``(B, max_len)`` and attention weights
        ``(B, max_len, S)`` (or ``None``).
        """
        check_int("max_len", max_len, minimum=1)
        memory, state, mask = self._encode(src, src_lengths)
        B = src.shape[0]
        token = torch.full((B, 1), self.bos_id, device=src.device)  # (B, 1)
        tokens, weights = [], []
        for _ in range(max_len):
            # logits (B, 1, V), alpha (B, 1, S) or None
            logits, state, alpha = self.decoder(token, state, memory, mask)
            token = logits.argmax(-1)  # (B, 1)
            tokens.append(token)
            if alpha is not None:
                weights.append(alpha)
        weights = torch.cat(weights, 1) if weights else None
        return torch.cat(tokens, 1), weights
