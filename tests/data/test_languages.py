"""The synthetic languages of Chapter 6: deterministic per seed, ground truth recomputed here
from the tokens alone, and argument checks that name the argument."""

import pytest
import torch

from attention_course.data import (
    BOS,
    FIRST_SYMBOL,
    bracket_sequences,
    class_sequences,
    repeated_sequences,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- repeated sequences ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [5, (2, 7)])
@pytest.mark.parametrize("distinct", [False, True])
def test_repeated_sequences_repeat_and_point_to_the_copy(length, distinct):
    b = repeated_sequences(64, length, 12, generator=gen(), distinct=distinct)
    high = length if isinstance(length, int) else length[1]
    low = length if isinstance(length, int) else length[0]
    B, T = b.tokens.shape
    assert (B, T) == (64, 2 * high + 1) and b.vocab_size == FIRST_SYMBOL + 12
    assert (b.tokens[:, 0] == BOS).all()
    assert b.tokens[:, 1:].min() >= FIRST_SYMBOL and b.tokens.max() < b.vocab_size
    assert b.lengths.min() >= low and b.lengths.max() <= high
    if isinstance(length, tuple):
        assert len(b.lengths.unique()) > 1  # the lengths do vary
    if isinstance(length, tuple):
        assert len(b.starts.unique()) > 1  # and so does the place of the repeat
    for row in range(B):
        n, s = int(b.lengths[row]), int(b.starts[row])
        assert 1 <= s <= T - 2 * n
        x = b.tokens[row, s:s + n]
        assert torch.equal(b.tokens[row, s + n:s + 2 * n], x)  # n tokens, then them again
        expected = torch.full((T,), -1)
        expected[s + n:s + 2 * n] = torch.arange(s, s + n)
        assert torch.equal(b.earlier[row], expected)
        if distinct:  # the only repeats are the designed ones
            assert len(b.tokens[row, 1:].unique()) == T - n - 1
    # where the copy points, the token is equal
    has = b.earlier >= 0
    copies = b.tokens.gather(1, b.earlier.clamp_min(0))
    assert torch.equal(copies[has], b.tokens[has])


def test_repeated_sequences_masks_of_predictable_and_first_occurrence_targets():
    b = repeated_sequences(16, (3, 6), 20, generator=gen(2))
    T = b.tokens.shape[1]
    for row in range(16):
        n, s = int(b.lengths[row]), int(b.starts[row])
        predictable = torch.zeros(T, dtype=torch.bool)
        predictable[s + n + 1:s + 2 * n] = True  # x_2 ... x_n of the copy
        first = torch.zeros(T, dtype=torch.bool)
        first[s + 1:s + n] = True  # x_2 ... x_n of the first occurrence
        assert torch.equal(b.predictable[row], predictable)
        assert torch.equal(b.first_occurrence[row], first)
    assert (b.starts + 2 * b.lengths < T).any()  # some rows have filler after the repeat
    assert torch.equal(b.predictable.sum(1), b.first_occurrence.sum(1))


def test_repeated_sequences_without_bos():
    b = repeated_sequences(4, 3, 5, generator=gen(), bos=False)
    assert b.tokens.shape == (4, 6)
    assert torch.equal(b.tokens[:, :3], b.tokens[:, 3:])
    assert torch.equal(b.earlier[0], torch.tensor([-1, -1, -1, 0, 1, 2]))


# --- brackets --------------------------------------------------------------------------------


def parse(tokens, num_types):
    """Partner, depth and innermost open bracket of each position, from a stack (reference)."""
    T = len(tokens)
    partner, depth, innermost = [-1] * T, [0] * T, [-1] * T
    stack = []
    for t, token in enumerate(tokens.tolist()):
        if token == BOS:
            pass
        elif token < FIRST_SYMBOL + num_types:
            stack.append((t, token - FIRST_SYMBOL))
        else:
            assert stack, "a closing bracket with nothing open"
            opener, kind = stack.pop()
            assert kind == token - FIRST_SYMBOL - num_types, "a closing bracket of the wrong type"
            partner[t], partner[opener] = opener, t
        depth[t] = len(stack)
        innermost[t] = stack[-1][0] if stack else -1
    assert not stack, "brackets left open"
    return torch.tensor(partner), torch.tensor(depth), torch.tensor(innermost)


@pytest.mark.parametrize("max_depth", [None, 2])
@pytest.mark.parametrize("bos", [True, False])
def test_brackets_are_balanced_and_the_truth_matches_a_parser(max_depth, bos):
    b = bracket_sequences(32, 20, 3, generator=gen(1), max_depth=max_depth, bos=bos)
    assert b.tokens.shape == (32, 20 + bos) and b.vocab_size == FIRST_SYMBOL + 6
    for row in range(32):
        partner, depth, innermost = parse(b.tokens[row], 3)
        assert torch.equal(b.partner[row], partner)
        assert torch.equal(b.depth[row], depth)
        assert torch.equal(b.innermost_open[row], innermost)
    if max_depth is not None:
        assert b.depth.max() == max_depth
    else:
        assert b.depth.max() > 2
    closing = b.is_closing
    assert closing.sum() == 32 * 10  # half of the brackets close
    t = torch.arange(b.tokens.shape[1])
    assert torch.equal(b.earlier_partner >= 0, closing)
    assert (b.earlier_partner[closing] < t.expand_as(closing)[closing]).all()
    assert len(b.tokens[:, bos:].unique()) == 6  # every bracket type opens and closes


def test_brackets_p_open_sets_the_depth():
    shallow = bracket_sequences(64, 40, generator=gen(), p_open=0.2)
    deep = bracket_sequences(64, 40, generator=gen(), p_open=0.8)
    assert shallow.depth.float().mean() < 2 < deep.depth.float().mean()


# --- meaning classes -------------------------------------------------------------------------


def test_class_sequences_spans_and_classes():
    K, W = 4, 5
    b = class_sequences(32, 30, K, W, generator=gen(3), span=(2, 5))
    assert b.tokens.shape == (32, 31) and b.vocab_size == FIRST_SYMBOL + K * W
    assert (b.tokens[:, 0] == BOS).all() and (b.classes[:, 0] == -1).all()
    assert torch.equal(b.vocab_classes[b.tokens], b.classes)
    assert torch.equal((b.tokens[:, 1:] - FIRST_SYMBOL) // W, b.classes[:, 1:])
    for row in range(32):
        c = b.classes[row, 1:]
        change = torch.nonzero(c[1:] != c[:-1]).flatten() + 1  # where a new span starts
        starts = torch.cat([torch.tensor([0]), change, torch.tensor([30])])
        lengths = starts.diff()
        # every span but the last (cut at the end) is 2-5 tokens long
        assert lengths[:-1].min() >= 2 and lengths.max() <= 5
    assert set(b.classes[:, 1:].unique().tolist()) == set(range(K))


def test_class_sequences_fillers_have_no_class():
    b = class_sequences(16, 40, 3, 4, generator=gen(), num_fillers=2, filler_prob=0.3)
    filler = b.tokens >= FIRST_SYMBOL + 12
    assert b.vocab_size == FIRST_SYMBOL + 14
    assert 0.15 < filler.float().mean() < 0.45
    words = ~filler & (b.tokens != BOS)
    assert (b.classes[filler] == -1).all() and (b.classes[words] >= 0).all()
    assert torch.equal(b.vocab_classes[b.tokens], b.classes)


# --- all generators --------------------------------------------------------------------------

GENERATORS = {
    "repeated": lambda g: repeated_sequences(8, (3, 6), 10, generator=g).tokens,
    "brackets": lambda g: bracket_sequences(8, 12, 2, generator=g).tokens,
    "classes": lambda g: class_sequences(8, 12, 3, 4, generator=g, num_fillers=1,
                                         filler_prob=0.2).tokens,
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_are_deterministic_per_seed(name):
    make = GENERATORS[name]
    assert torch.equal(make(gen(5)), make(gen(5)))
    assert not torch.equal(make(gen(5)), make(gen(6)))
    state = torch.random.get_rng_state()
    make(gen(5))
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is untouched


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: repeated_sequences(0, 3, 5), ValueError, ["batch_size", ">= 1"]),
        (lambda: repeated_sequences(2, 0, 5), ValueError, ["length", ">= 1"]),
        (lambda: repeated_sequences(2, (5, 3), 5), ValueError, ["length", "min <= max"]),
        (lambda: repeated_sequences(2, (1, 2, 3), 5), ValueError, ["length", "(min, max)"]),
        (lambda: repeated_sequences(2, 3.0, 5), TypeError, ["length"]),
        (lambda: repeated_sequences(2, (2, 4), 5, distinct=True), ValueError,
         ["distinct", "num_symbols"]),
        (lambda: repeated_sequences(2, 4, 5, generator=0), TypeError, ["generator"]),
        (lambda: repeated_sequences(2, 4, 5, bos=1), TypeError, ["bos"]),
        (lambda: bracket_sequences(2, 7), ValueError, ["length", "even"]),
        (lambda: bracket_sequences(2, 0), ValueError, ["length", ">= 2"]),
        (lambda: bracket_sequences(2, 8, 0), ValueError, ["num_types"]),
        (lambda: bracket_sequences(2, 8, max_depth=0), ValueError, ["max_depth"]),
        (lambda: bracket_sequences(2, 8, p_open=1.0), ValueError, ["p_open"]),
        (lambda: class_sequences(2, 8, 1, 3), ValueError, ["num_classes", ">= 2"]),
        (lambda: class_sequences(2, 8, 3, 0), ValueError, ["words_per_class"]),
        (lambda: class_sequences(2, 8, 3, 3, span=[2, 3]), TypeError, ["span", "tuple"]),
        (lambda: class_sequences(2, 8, 3, 3, span=(4, 3)), ValueError, ["span", "min <= max"]),
        (lambda: class_sequences(2, 8, 3, 3, span=(0, 3)), ValueError, ["span[0]"]),
        (lambda: class_sequences(2, 8, 3, 3, filler_prob=0.2), ValueError,
         ["filler_prob", "num_fillers"]),
        (lambda: class_sequences(2, 8, 3, 3, num_fillers=1, filler_prob=1.0), ValueError,
         ["filler_prob"]),
    ],
)
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
