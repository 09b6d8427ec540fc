"""The token vocabulary of the course's synthetic sequence tasks: special ids, then symbols.

``PAD = 0`` (padding, never predicted), ``BOS = 1`` (begin of a target), ``EOS = 2`` (end), then
content symbols ``FIRST_SYMBOL = 3, 4, …``. Models take these ids from their configuration, whose
defaults are these values; nothing else defines them.
"""

from __future__ import annotations

from attention_course._checks import check_int

__all__ = ["PAD", "BOS", "EOS", "FIRST_SYMBOL", "vocab_size"]

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 3


def vocab_size(num_symbols: int) -> int:
    """Size of the vocabulary: the three special tokens plus ``num_symbols`` content symbols."""
    check_int("num_symbols", num_symbols, minimum=1)
    return FIRST_SYMBOL + num_symbols
