"""Associative recall: ground truth, determinism, argument checks."""

import pytest
import torch

from attention_course.data import FIRST_SYMBOL, PAD, AssociativeRecall, associative_recall
from tests.helpers import assert_raises_naming

ARGS = dict(batch_size=16, num_facts=6, num_keys=10, num_values=5, gap=4, num_queries=3,
            num_fillers=7)


def make(seed=0, **kwargs):
    return associative_recall(generator=torch.Generator().manual_seed(seed),
                              **{**ARGS, **kwargs})


@pytest.mark.parametrize("bos", [True, False])
def test_the_answer_is_the_value_of_the_fact_with_the_queried_key(bos):
    b = make(bos=bos, batch_size=64)
    n, g, Q, K, V = 6, 4, 3, 10, 5
    assert isinstance(b, AssociativeRecall)
    start = int(bos)
    assert b.tokens.shape == (64, start + n + g + Q)
    assert b.vocab_size == FIRST_SYMBOL + K * V + K + V + 7 and b.chance == pytest.approx(0.2)
    facts = b.tokens[:, start:start + n] - FIRST_SYMBOL  # (B, n): key * V + value
    assert ((facts >= 0) & (facts < K * V)).all()
    fillers = b.tokens[:, start + n:start + n + g]
    assert ((fillers >= b.first_value + V) & (fillers < b.vocab_size)).all()
    if bos:
        assert (b.tokens[:, 0] == 1).all()
    for r in range(64):
        keys = (facts[r] // V).tolist()
        assert len(set(keys)) == n  # distinct keys: every query has one answer
        for i in range(Q):
            q, s = int(b.query_positions[r, i]), int(b.sources[r, i])
            key = int(b.tokens[r, q]) - (FIRST_SYMBOL + K * V)
            j = keys.index(key)  # the fact with the queried key, by search
            assert s == start + j
            assert b.answers[r, i] == b.first_value + facts[r, j] % V == b.targets[r, q]
        assert len(set(b.sources[r].tolist())) == Q  # distinct queries
    real = b.targets != PAD  # only the query positions have a target
    assert real.sum() == 64 * Q and real.gather(1, b.query_positions).all()
    assert (b.distances >= g + 1).all()
    assert torch.equal(b.distances, b.query_positions - b.sources)


def test_every_fact_gets_asked_and_every_value_used():
    b = make(batch_size=400)
    assert set((b.sources - 1).flatten().tolist()) == set(range(6))
    assert set((b.answers - b.first_value).flatten().tolist()) == set(range(5))


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for name in ("tokens", "targets", "query_positions", "sources", "answers"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.tokens, c.tokens)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    (dict(num_facts=2.0), TypeError, ["num_facts", "int", "float"]),
    (dict(num_keys=0), ValueError, ["num_keys"]),
    (dict(num_values=0), ValueError, ["num_values"]),
    (dict(gap=-1), ValueError, ["gap"]),
    (dict(num_queries=0), ValueError, ["num_queries"]),
    (dict(num_fillers=0), ValueError, ["num_fillers"]),
    (dict(num_facts=11), ValueError, ["num_facts=11", "num_keys=10", "distinct"]),
    (dict(num_queries=7), ValueError, ["num_queries=7", "num_facts=6"]),
    (dict(bos=1), TypeError, ["bos"]),
    (dict(generator=0), TypeError, ["generator", "torch.Generator"]),
])
def test_bad_arguments_are_named(kwargs, error, words):
    assert_raises_naming(lambda: associative_recall(**{**ARGS, "batch_size": 2, **kwargs}),
                         error, words)
