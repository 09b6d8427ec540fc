"""Deterministic synthetic sequence-to-sequence tasks with variable lengths, padding and masks.

Tokens come from :mod:`attention_course.data.vocab`: ``PAD``, ``BOS``, ``EOS``, then
``num_symbols`` content symbols. A batch pads every sequence to the longest one and carries its lengths;
masks come from :func:`attention_course.masks.padding_mask` (``True`` = real token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attention_course._checks import check_int
from attention_course.data.vocab import BOS, EOS, FIRST_SYMBOL, PAD
from attention_course.masks import padding_mask

__all__ = ["TASKS", "Seq2SeqBatch", "make_batch"]

TASKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "copy": lambda x: x,  # y = x
    "reverse": lambda x: x.flip(0),  # y_i = x_{n-1-i}
    "sort": lambda x: x.sort().values,  # y = sorted(x)
}


@dataclass(frozen=True)
class Seq2SeqBatch:
    """A padded batch. Shapes: ``src`` ``(B, S)``; ``tgt_in``/``tgt_out`` ``(B, T)``, ``T = S + 1``.

    ``tgt_in`` is the decoder's input under teacher forcing (``BOS y_1 … y_n``), ``tgt_out`` what
    it must predict (``y_1 … y_n EOS``); both are padded with ``PAD``.
    """

    src: torch.Tensor  # (B, S) int64
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    tgt_lengths: torch.Tensor  # (B,) = number of tokens to predict, EOS included

    @property
    def src_mask(self) -> torch.Tensor:
        """``(B, S)``, ``True`` at real source tokens."""
        return padding_mask(self.src_lengths, self.src.shape[1])

    @property
    def tgt_mask(self) -> torch.Tensor:
        """``(B, T)``, ``True`` at target positions that count in the loss."""
        return padding_mask(self.tgt_lengths, self.tgt_out.shape[1])


def make_batch(
    task: str,
    batch_size: int,
    *,
    min_len: int,
    max_len: int,
    num_symbols: int = 10,
    generator: torch.Generator | None = None,
) -> Seq2SeqBatch:
    """Sample ``batch_size`` examples of ``task`` with lengths uniform in ``[min_len, max_len]``.

    The same ``generator`` state gives the same batch. ``task`` is one of :data:`TASKS`.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    check_int("batch_size", batch_size, minimum=1)
    check_int("min_len", min_len, minimum=1)
    check_int("max_len", max_len, minimum=min_len)
    check_int("num_symbols", num_symbols, minimum=1)
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=generator)  # (B,)
    S = int(lengths.max())
    symbols = torch.randint(FIRST_SYMBOL, FIRST_SYMBOL + num_symbols, (batch_size, S),
                            generator=generator)  # (B, S)
    src = torch.full((batch_size, S), PAD)
    tgt_in = torch.full((batch_size, S + 1), PAD)
    tgt_out = torch.full((batch_size, S + 1), PAD)
    for b, n in enumerate(lengths.tolist()):
        x = symbols[b, :n]
        y = TASKS[task](x)
        src[b, :n] = x
        tgt_in[b, 0], tgt_in[b, 1:n + 1] = BOS, y
        tgt_out[b, :n], tgt_out[b, n] = y, EOS
    return Seq2SeqBatch(src, lengths, tgt_in, tgt_out, lengths + 1)
