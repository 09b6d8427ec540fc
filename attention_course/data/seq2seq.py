"""Deterministic synthetic sequence-to-sequence tasks with variable lengths, padding and masks.

Tokens come from :mod:`attention_course.data.vocab`: ``PAD``, ``BOS``, ``EOS``, then
``num_symbols`` content symbols. A batch pads every sequence to the longest one and carries its
lengths; masks come from :func:`attention_course.masks.padding_mask` (``True`` = real token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attention_course._checks import check_generator, check_int, check_lengths, check_tensor
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

    Checked on construction: integer token ids ``>= 0``; one length per sequence, ``1 <= n <=``
    the padded length; ``tgt_in`` and ``tgt_out`` of the same shape; and every row holds exactly
    its length of non-``PAD`` tokens followed by ``PAD`` only (so masks from the lengths and
    ``tokens != PAD`` agree).
    """

    src: torch.Tensor  # (B, S) int64
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    tgt_lengths: torch.Tensor  # (B,) = number of tokens to predict, EOS included

    def __post_init__(self) -> None:
        check_tensor("src", self.src, ndim=2, integer=True)
        B, S = self.src.shape
        for name in ("tgt_in", "tgt_out"):
            check_tensor(name, getattr(self, name), ndim=2, integer=True)
        if self.tgt_in.shape != self.tgt_out.shape:
            raise ValueError(f"tgt_in has shape {tuple(self.tgt_in.shape)} but tgt_out has "
                             f"{tuple(self.tgt_out.shape)}; expected the same (B, T)")
        if self.tgt_out.shape[0] != B:
            raise ValueError(f"tgt_out has shape {tuple(self.tgt_out.shape)} but src has "
                             f"{tuple(self.src.shape)}; expected the same batch size B={B}")
        T = self.tgt_out.shape[1]
        check_lengths("src_lengths", self.src_lengths, B, S)  # 1 <= n <= S, one per row
        check_lengths("tgt_lengths", self.tgt_lengths, B, T)
        for name, lengths in (("src", self.src_lengths), ("tgt_in", self.tgt_lengths),
                              ("tgt_out", self.tgt_lengths)):
            tokens = getattr(self, name)
            if tokens.numel() and int(tokens.min()) < 0:
                raise ValueError(f"{name} must hold token ids >= 0, got {int(tokens.min())}")
            real = padding_mask(lengths, tokens.shape[1])  # (B, L)
            wrong = ((tokens != PAD) != real).any(dim=1)  # (B,)
            if bool(wrong.any()):
                b = int(wrong.nonzero()[0, 0])
                lengths_name = "src_lengths" if name == "src" else "tgt_lengths"
                raise ValueError(
                    f"{lengths_name}[{b}] = {int(lengths[b])} disagrees with {name}[{b}], which "
                    f"has {int((tokens[b] != PAD).sum())} non-PAD tokens; expected exactly "
                    f"{lengths_name}[{b}] real tokens followed by PAD ({PAD}) only")

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

    The same ``generator`` state gives the same batch (``None``: torch's global generator).
    ``task`` is one of :data:`TASKS`; ``1 <= min_len <= max_len``; ``batch_size`` and
    ``num_symbols`` are ``>= 1``.
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, one of {sorted(TASKS)}, got "
                        f"{type(task).__name__} {task!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    check_int("batch_size", batch_size, minimum=1)
    check_int("min_len", min_len, minimum=1)
    check_int("max_len", max_len)
    if max_len < min_len:
        raise ValueError(f"max_len must be >= min_len ({min_len}), got {max_len}")
    check_int("num_symbols", num_symbols, minimum=1)
    check_generator("generator", generator)
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
