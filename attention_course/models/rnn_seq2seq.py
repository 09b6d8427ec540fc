r"""RNN encoder–decoders: the plain baseline and Bahdanau's attention decoder.

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``E`` embedding size,
``H`` hidden size, ``V`` vocabulary size.

- :class:`RNNEncoder` reads the source; padded steps are skipped (packed sequences), so the final
  state is the state after each sequence's *own* last token.
- :class:`RNNDecoder` (plain) starts from that final state and sees nothing else of the source:
  one fixed-size vector must carry the whole input.
- :class:`BahdanauDecoder` also starts from it, but at every step scores all encoder outputs
  with the additive score :class:`~attention_course.attention.AdditiveScore`,
  :math:`e_{tj} = v^\top \tanh(W_q s_{t-1} + W_k h_j)`, and feeds the context
  :math:`c_t = \sum_j \alpha_{tj} h_j` to the RNN cell. It returns the weights of every step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attention_course._checks import check_bool, check_int, check_lengths, check_tokens
from attention_course.attention import AdditiveScore, attention
from attention_course.data.vocab import BOS, PAD
from attention_course.masks import padding_mask

__all__ = ["RNNEncoder", "RNNDecoder", "BahdanauDecoder", "RNNSeq2Seq"]

CELLS = {"gru": (nn.GRU, nn.GRUCell), "lstm": (nn.LSTM, nn.LSTMCell)}


def _check_cell(cell: str) -> None:
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")


class RNNEncoder(nn.Module):
    """Embedding + one-layer GRU/LSTM over the source; returns every output and the final state."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, *, cell: str = "gru",
                 pad_id: int = PAD):
        super().__init__()
        _check_cell(cell)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = CELLS[cell][0](embed_dim, hidden_size, batch_first=True)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor):
        """``src`` ``(B, S)``, ``src_lengths`` ``(B,)`` → outputs ``(B, S, H)`` (zeros at padding),
        final state (``(1, B, H)``, or a pair of them for an LSTM)."""
        emb = self.embedding(src)  # (B, S, E)
        packed = pack_padded_sequence(emb, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        outputs, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])
        return outputs, state  # (B, S, H)


class RNNDecoder(nn.Module):
    """Plain decoder: conditioned on the source only through the encoder's final state."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, *, cell: str = "gru",
                 pad_id: int = PAD):
        super().__init__()
        _check_cell(cell)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = CELLS[cell][0](embed_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, tgt_in, state, memory=None, memory_mask=None):
        """``tgt_in`` ``(B, T)`` → logits ``(B, T, V)``, new state, ``None`` (no weights).

        ``memory``/``memory_mask`` (the encoder outputs) are accepted and ignored: that is
        exactly the limitation attention removes.
        """
        outputs, state = self.rnn(self.embedding(tgt_in), state)  # (B, T, H)
        return self.out(outputs), state, None  # (B, T, V)


class BahdanauDecoder(nn.Module):
    """Decoder with additive attention over the encoder outputs (Bahdanau et al., 2015)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        *,
        cell: str = "gru",
        attention_dim: int | None = None,
        pad_id: int = PAD,
    ):
        super().__init__()
        _check_cell(cell)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.score = AdditiveScore(hidden_size, hidden_size, attention_dim or hidden_size)
        self.cell = CELLS[cell][1](embed_dim + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)

    def forward(self, tgt_in, state, memory, memory_mask):
        """``tgt_in`` ``(B, T)``, ``memory`` ``(B, S, H)``, ``memory_mask`` ``(B, S)``
        → logits ``(B, T, V)``, new state, attention weights ``(B, T, S)``."""
        lstm = isinstance(state, tuple)  # LSTM state: (h, c); GRU state: h
        state = tuple(s[-1] for s in state) if lstm else state[-1]  # drop the layer axis: (B, H)
        emb = self.embedding(tgt_in)  # (B, T, E)
        key_mask = memory_mask[:, None, :]  # (B, 1, S)
        score = self.score.with_keys(memory)  # projects the encoder outputs once, not per step
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            s_prev = state[0] if lstm else state  # (B, H): the query
            context, alpha = attention(s_prev[:, None, :], memory, memory,
                                       score=score, mask=key_mask)  # (B, 1, H), (B, 1, S)
            context = context[:, 0]  # (B, H)
            state = self.cell(torch.cat([emb[:, t], context], dim=-1), state)
            s_t = state[0] if lstm else state  # (B, H)
            logits.append(self.out(torch.cat([s_t, context], dim=-1)))  # (B, V)
            weights.append(alpha[:, 0])  # (B, S)
        state = tuple(s[None] for s in state) if lstm else state[None]  # restore (1, B, H)
        return torch.stack(logits, 1), state, torch.stack(weights, 1)  # (B,T,V), _, (B,T,S)


class RNNSeq2Seq(nn.Module):
    """Encoder–decoder with a plain or a Bahdanau decoder.

    ``RNNSeq2Seq(vocab_size, embed_dim, hidden_size, attention=True, cell="gru")``; the token
    ids ``pad_id`` and ``bos_id`` default to the course vocabulary's
    (:mod:`attention_course.data.vocab`).
    ``forward(src, src_lengths, tgt_in)`` (teacher forcing) → ``(logits (B, T, V),
    weights (B, T, S) or None)``; :meth:`greedy_decode` generates without the target.
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
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("hidden_size", hidden_size)):
            check_int(name, value, minimum=1)
        check_bool("attention", attention)
        _check_cell(cell)
        for name, value in (("pad_id", pad_id), ("bos_id", bos_id)):
            check_int(name, value, minimum=0)
            if value >= vocab_size:
                raise ValueError(f"{name}={value} is not a token of the vocabulary "
                                 f"(size {vocab_size})")
        self.vocab_size, self.pad_id, self.bos_id = vocab_size, pad_id, bos_id
        self.encoder = RNNEncoder(vocab_size, embed_dim, hidden_size, cell=cell, pad_id=pad_id)
        decoder = BahdanauDecoder if attention else RNNDecoder
        self.decoder = decoder(vocab_size, embed_dim, hidden_size, cell=cell, pad_id=pad_id)

    def _encode(self, src, src_lengths):
        check_tokens("src", src, self.vocab_size)
        check_lengths("src_lengths", src_lengths, src.shape[0], src.shape[1])
        memory, state = self.encoder(src, src_lengths)  # (B, S, H)
        return memory, state, padding_mask(src_lengths, src.shape[1])  # (B, S)

    def forward(self, src, src_lengths, tgt_in):
        """Teacher forcing: ``src`` ``(B, S)``, ``src_lengths`` ``(B,)``, ``tgt_in`` ``(B, T)`` →
        ``(logits (B, T, V), weights (B, T, S) or None)``."""
        memory, state, mask = self._encode(src, src_lengths)
        check_tokens("tgt_in", tgt_in, self.vocab_size)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in has batch size {tgt_in.shape[0]} but src has "
                             f"{src.shape[0]}")
        logits, _, weights = self.decoder(tgt_in, state, memory, mask)
        return logits, weights

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, max_len: int):
        """Feed back the most likely token for ``max_len`` steps, starting from ``BOS``.

        Returns tokens ``(B, max_len)`` and attention weights ``(B, max_len, S)`` (or ``None``).
        """
        check_int("max_len", max_len, minimum=1)
        memory, state, mask = self._encode(src, src_lengths)
        token = torch.full((src.shape[0], 1), self.bos_id, device=src.device)  # (B, 1)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, state, alpha = self.decoder(token, state, memory, mask)  # (B, 1, V)
            token = logits.argmax(-1)  # (B, 1)
            tokens.append(token)
            if alpha is not None:
                weights.append(alpha)
        return torch.cat(tokens, 1), (torch.cat(weights, 1) if weights else None)
