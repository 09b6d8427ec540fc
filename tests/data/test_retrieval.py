"""Associative recall: ground truth, determinism, argument checks."""

import pytest
import torch

from attention_course.data import FIRST_SYMBOL, PAD, AssociativeRecall, associative_recall
from tests.helpers import assert_raises_naming


def make(seed=0, **kwargs):
    args = dict(batch_size=16, num_pairs=6, num_keys=10, num_values=5, num_queries=3,
                min_distance=4)
    args.update(kwargs)
    return associative_recall(generator=torch.Generator().manual_seed(seed), **args)


@pytest.mark.parametrize("bos", [True, False])
def test_the_answer_is_the_value_written_with_the_queried_key(bos):
    b = make(bos=bos, batch_size=64)
    n, Q, K = 6, 3, 10
    assert isinstance(b, AssociativeRecall)
    assert b.tokens.shape == (64, int(bos) + 2 * n + 2 * Q)
    assert b.vocab_size == FIRST_SYMBOL + 10 + 5 and b.chance == pytest.approx(0.2)
    start = int(bos)
    keys, values = b.tokens[:, start:start + 2 * n:2], b.tokens[:, start + 1:start + 2 * n:2]
    assert ((keys >= FIRST_SYMBOL) & (keys < FIRST_SYMBOL + K)).all()
    assert ((values >= FIRST_SYMBOL + K) & (values < b.vocab_size)).all()
    for row in keys:  # the keys of a row are distinct: every query has one answer
        assert len(set(row.tolist())) == n
    for r in range(64):
        for i in range(Q):
            q, s = int(b.query_positions[r, i]), int(b.sources[r, i])
            query = int(b.tokens[r, q])
            j = keys[r].tolist().index(query)  # the pair of the queried key, by search
            assert s == start + 2 * j + 1 and b.tokens[r, s - 1] == query
            assert b.answers[r, i] == values[r, j] == b.tokens[r, q + 1] == b.targets[r, q]
    real = b.targets != PAD  # only the query positions have a target
    assert real.sum() == 64 * Q and real.gather(1, b.query_positions).all()
    assert (b.distances >= 4).all() and (b.distances == b.query_positions - b.sources).all()
    assert len(set(b.query_positions.flatten().tolist())) == Q  # the same slots in every row
    for row in b.sources:
        assert len(set(row.tolist())) == Q  # distinct queries


def test_min_distance_is_respected_and_every_far_pair_gets_asked():
    b = make(batch_size=400, num_pairs=8, num_queries=2, min_distance=9)
    assert int(b.distances.min()) >= 9
    first_query = 1 + 2 * 8
    asked = set(((b.sources - 1) // 2).flatten().tolist())  # 0-based pair index
    assert asked == {j for j in range(8) if first_query - (1 + 2 * j + 1) >= 9}
    assert make(min_distance=1, num_queries=6).distances.min() == 1  # every pair allowed


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for name in ("tokens", "targets", "query_positions", "sources", "answers"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.tokens, c.tokens)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    (dict(num_pairs=2.0), TypeError, ["num_pairs", "int", "float"]),
    (dict(num_keys=0), ValueError, ["num_keys"]),
    (dict(num_values=0), ValueError, ["num_values"]),
    (dict(num_queries=0), ValueError, ["num_queries"]),
    (dict(min_distance=0), ValueError, ["min_distance"]),
    (dict(num_pairs=11), ValueError, ["num_pairs=11", "num_keys=10", "distinct"]),
    (dict(num_queries=4, min_distance=6), ValueError, ["num_queries=4", "min_distance=6"]),
    (dict(bos=1), TypeError, ["bos"]),
    (dict(generator=0), TypeError, ["generator", "torch.Generator"]),
])
def test_bad_arguments_are_named(kwargs, error, words):
    args = dict(batch_size=2, num_pairs=6, num_keys=10, num_values=5, num_queries=3,
                min_distance=4)
    args.update(kwargs)
    assert_raises_naming(lambda: associative_recall(**args), error, words)
