"""The token vocabulary: special ids first, then content symbols."""

import numpy as np
import pytest

from attention_course.data import BOS, EOS, FIRST_SYMBOL, PAD, vocab_size


def test_special_ids_come_first():
    assert (PAD, BOS, EOS, FIRST_SYMBOL) == (0, 1, 2, 3)
    assert vocab_size(1) == 4 and vocab_size(10) == 13
    assert vocab_size(np.int64(6)) == 9


BAD_NUM_SYMBOLS = [
    (0, ValueError, [">= 1", "0"]),
    (-1, ValueError, ["-1"]),
    (2.0, TypeError, ["int", "float"]),
    (True, TypeError, ["bool"]),
    ("10", TypeError, ["str"]),
    (None, TypeError, ["NoneType"]),
]


@pytest.mark.parametrize("num_symbols, error, words", BAD_NUM_SYMBOLS,
                         ids=[repr(row[0]) for row in BAD_NUM_SYMBOLS])
def test_vocab_size_rejects(num_symbols, error, words):
    with pytest.raises(error) as info:
        vocab_size(num_symbols)
    for word in ["num_symbols", *words]:
        assert word in str(info.value)
