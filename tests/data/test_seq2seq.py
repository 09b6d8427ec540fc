"""Synthetic sequence-to-sequence tasks: padded, framed, deterministic batches, and a
:class:`Seq2SeqBatch` that refuses inconsistent tensors."""

import dataclasses
import re

import numpy as np
import pytest
import torch

from attention_course.data import BOS, EOS, FIRST_SYMBOL, PAD, Seq2SeqBatch, make_batch


def batch(task="reverse", seed=0, **kwargs):
    kwargs = {"min_len": 2, "max_len": 7, "num_symbols": 6} | kwargs
    return make_batch(task, 5, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("task", ["copy", "reverse", "sort"])
def test_batches_are_padded_and_framed(task):
    b = batch(task)
    B, S = b.src.shape
    assert b.tgt_in.shape == b.tgt_out.shape == (B, S + 1)
    assert S == int(b.src_lengths.max())
    for i, n in enumerate(b.src_lengths.tolist()):
        x = b.src[i, :n]
        expected = {"copy": x, "reverse": x.flip(0), "sort": x.sort().values}[task]
        assert (x >= 3).all() and (b.src[i, n:] == PAD).all()
        assert b.tgt_in[i, 0] == BOS and torch.equal(b.tgt_in[i, 1:n + 1], expected)
        assert torch.equal(b.tgt_out[i, :n], expected) and b.tgt_out[i, n] == EOS
        assert (b.tgt_out[i, n + 1:] == PAD).all() and (b.tgt_in[i, n + 1:] == PAD).all()
    assert torch.equal(b.src_mask, b.src != PAD)
    assert torch.equal(b.tgt_mask, b.tgt_out != PAD)


def test_batches_are_deterministic_per_seed():
    assert torch.equal(batch(seed=3).src, batch(seed=3).src)
    assert not torch.equal(batch(seed=3).src, batch(seed=4).src)


def test_random_draws_come_in_a_fixed_order():
    """Lengths first, then a (B, S) block of symbols: the notebooks' numbers depend on it."""
    g = torch.Generator().manual_seed(11)
    lengths = torch.randint(3, 9, (4,), generator=g)
    symbols = torch.randint(FIRST_SYMBOL, FIRST_SYMBOL + 5, (4, int(lengths.max())), generator=g)
    b = make_batch("copy", 4, min_len=3, max_len=8, num_symbols=5,
                   generator=torch.Generator().manual_seed(11))
    assert torch.equal(b.src_lengths, lengths)
    assert torch.equal(b.src, symbols.masked_fill(~b.src_mask, PAD))
    # NumPy integers are accepted and give the same batch.
    same = make_batch("copy", np.int64(4), min_len=np.int64(3), max_len=np.int64(8),
                      num_symbols=np.int64(5), generator=torch.Generator().manual_seed(11))
    assert torch.equal(same.src, b.src)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"task": "rotate"}, ValueError, "task"),
        ({"min_len": 0}, ValueError, "min_len"),
        ({"min_len": 5, "max_len": 4}, ValueError, "max_len"),
        ({"num_symbols": 2.0}, TypeError, "num_symbols"),
    ],
)
def test_bad_batch_arguments(kwargs, error, word):
    task = kwargs.pop("task", "copy")
    with pytest.raises(error, match=word):
        batch(task, **kwargs)


BAD_MAKE_BATCH = [
    ({"task": "rotate"}, ValueError, ["task", "'rotate'", "copy"]),
    ({"task": ""}, ValueError, ["task", "''"]),
    ({"task": "COPY"}, ValueError, ["task", "'COPY'"]),
    ({"task": None}, TypeError, ["task", "str", "NoneType"]),
    ({"task": 1}, TypeError, ["task", "int"]),
    ({"task": ["copy"]}, TypeError, ["task", "list"]),
    ({"batch_size": 0}, ValueError, ["batch_size", ">= 1"]),
    ({"batch_size": -1}, ValueError, ["batch_size"]),
    ({"batch_size": 2.0}, TypeError, ["batch_size", "float"]),
    ({"batch_size": True}, TypeError, ["batch_size", "bool"]),
    ({"batch_size": "2"}, TypeError, ["batch_size", "str"]),
    ({"min_len": 0}, ValueError, ["min_len", ">= 1"]),
    ({"min_len": -1}, ValueError, ["min_len"]),
    ({"min_len": 2.0}, TypeError, ["min_len", "float"]),
    ({"min_len": True}, TypeError, ["min_len", "bool"]),
    ({"min_len": None}, TypeError, ["min_len", "NoneType"]),
    ({"max_len": 1}, ValueError, ["max_len", "min_len (2)", "got 1"]),
    ({"max_len": 0}, ValueError, ["max_len", "min_len"]),
    ({"max_len": 2.5}, TypeError, ["max_len", "float"]),
    ({"max_len": True}, TypeError, ["max_len", "bool"]),
    ({"max_len": None}, TypeError, ["max_len", "NoneType"]),
    ({"num_symbols": 0}, ValueError, ["num_symbols", ">= 1"]),
    ({"num_symbols": -2}, ValueError, ["num_symbols"]),
    ({"num_symbols": 3.0}, TypeError, ["num_symbols", "float"]),
    ({"num_symbols": True}, TypeError, ["num_symbols", "bool"]),
    ({"num_symbols": "10"}, TypeError, ["num_symbols", "str"]),
    ({"generator": 0}, TypeError, ["generator", "torch.Generator", "int"]),
    ({"generator": "seed"}, TypeError, ["generator", "str"]),
    ({"generator": np.random.default_rng(0)}, TypeError, ["generator", "Generator"]),
    ({"generator": 1.5}, TypeError, ["generator", "float"]),
]


@pytest.mark.parametrize("kwargs, error, words", BAD_MAKE_BATCH,
                         ids=[re.sub(r" at 0x[0-9A-Fa-f]+", "", repr(row[0]))
                              for row in BAD_MAKE_BATCH])
def test_make_batch_rejects(kwargs, error, words):
    kwargs = {"task": "copy", "batch_size": 2, "min_len": 2, "max_len": 4} | kwargs
    task, batch_size = kwargs.pop("task"), kwargs.pop("batch_size")
    with pytest.raises(error) as info:
        make_batch(task, batch_size, **kwargs)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------- Seq2SeqBatch

GOOD = {
    "src": torch.tensor([[3, 4, PAD], [5, PAD, PAD]]),
    "src_lengths": torch.tensor([2, 1]),
    "tgt_in": torch.tensor([[BOS, 3, 4, PAD], [BOS, 5, PAD, PAD]]),
    "tgt_out": torch.tensor([[3, 4, EOS, PAD], [5, EOS, PAD, PAD]]),
    "tgt_lengths": torch.tensor([3, 2]),
}


def test_a_consistent_batch_is_accepted_and_make_batch_builds_one():
    b = Seq2SeqBatch(**GOOD)
    assert b.src_mask.tolist() == [[True, True, False], [True, False, False]]
    assert b.tgt_mask.tolist() == [[True, True, True, False], [True, True, False, False]]
    made = batch()
    assert Seq2SeqBatch(**{f.name: getattr(made, f.name) for f in dataclasses.fields(made)})


BAD_BATCH = [
    ("(1,) src_lengths for a batch of 2", {"src_lengths": torch.tensor([2])}, ValueError,
     ["src_lengths", "one length per sequence", "(2,)"]),
    ("3 src_lengths for 2 rows", {"src_lengths": torch.tensor([2, 1, 1])}, ValueError,
     ["src_lengths", "3 entries"]),
    ("src_lengths > S", {"src_lengths": torch.tensor([4, 1])}, ValueError,
     ["src_lengths", "[1, 3]", "4"]),
    ("src_lengths 0", {"src_lengths": torch.tensor([0, 1])}, ValueError, ["src_lengths", "0"]),
    ("negative src_lengths", {"src_lengths": torch.tensor([-1, 1])}, ValueError,
     ["src_lengths", "-1"]),
    ("float src_lengths", {"src_lengths": torch.tensor([2.0, 1.0])}, TypeError,
     ["src_lengths", "integer", "float32"]),
    ("2-D src_lengths", {"src_lengths": torch.tensor([[2], [1]])}, ValueError,
     ["src_lengths", "1 dimensions", "(2, 1)"]),
    ("list src_lengths", {"src_lengths": [2, 1]}, TypeError, ["src_lengths", "list"]),
    ("src_lengths disagree with the padding", {"src_lengths": torch.tensor([1, 1])}, ValueError,
     ["src_lengths[0] = 1", "src[0]", "2 non-PAD"]),
    ("PAD inside a sequence", {"src": torch.tensor([[3, PAD, 4], [5, PAD, PAD]]),
                               "src_lengths": torch.tensor([3, 1])}, ValueError,
     ["src_lengths[0] = 3", "src[0]"]),
    ("float src", {"src": GOOD["src"].float()}, TypeError, ["src", "integer", "float32"]),
    ("bool src", {"src": GOOD["src"].bool()}, TypeError, ["src", "integer", "bool"]),
    ("1-D src", {"src": GOOD["src"][0]}, ValueError, ["src", "2 dimensions", "(3,)"]),
    ("list src", {"src": GOOD["src"].tolist()}, TypeError, ["src", "list"]),
    ("negative ids in src", {"src": torch.tensor([[3, -4, PAD], [5, PAD, PAD]])}, ValueError,
     ["src", ">= 0", "-4"]),
    ("tgt_in shape != tgt_out", {"tgt_in": GOOD["tgt_in"][:, :3]}, ValueError,
     ["tgt_in", "(2, 3)", "tgt_out", "(2, 4)"]),
    ("tgt batch != src batch", {k: GOOD[k][:1] for k in ("tgt_in", "tgt_out", "tgt_lengths")},
     ValueError, ["tgt_out", "(1, 4)", "src", "B=2"]),
    ("(1,) tgt_lengths", {"tgt_lengths": torch.tensor([3])}, ValueError,
     ["tgt_lengths", "(2,)"]),
    ("tgt_lengths > T", {"tgt_lengths": torch.tensor([5, 2])}, ValueError,
     ["tgt_lengths", "[1, 4]", "5"]),
    ("tgt_lengths disagree with tgt_out", {"tgt_lengths": torch.tensor([2, 2])}, ValueError,
     ["tgt_lengths[0] = 2", "tgt_in[0]"]),
    ("float tgt_out", {"tgt_out": GOOD["tgt_out"].float()}, TypeError, ["tgt_out", "float32"]),
    ("sparse tgt_in", {"tgt_in": GOOD["tgt_in"].to_sparse()}, TypeError, ["tgt_in", "dense"]),
]


@pytest.mark.parametrize("case, change, error, words", BAD_BATCH,
                         ids=[row[0] for row in BAD_BATCH])
def test_seq2seq_batch_rejects(case, change, error, words):
    with pytest.raises(error) as info:
        Seq2SeqBatch(**(GOOD | change))
    for word in words:
        assert word in str(info.value)
