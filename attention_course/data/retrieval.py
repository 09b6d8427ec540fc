"""A long-range retrieval task with its ground truth (Chapter 7): associative recall.

:func:`associative_recall` writes ``n`` key–value pairs, then asks for the values of some of the
keys again::

    [BOS] k_1 v_1 k_2 v_2 … k_n v_n   q_1 a_1 q_2 a_2 … q_m a_m

Each query ``q_i`` is one of the keys ``k_j`` and its answer ``a_i`` is the value ``v_j`` written
with it, ``min_distance`` or more positions earlier. The values are drawn independently of
everything else, so the answer can be found only by attending (directly or through intermediate
positions) to the pair far back: a model whose attention cannot reach it — a sliding window
narrower than the distance — is left at chance, ``1 / num_values``. This is the multi-query
associative recall of Arora et al. (2023) ("Zoology"), the task on which they compare
attention with its efficient approximations.

**Vocabulary.** The course's (:mod:`attention_course.data.vocab`): ``BOS = 1`` starts every
sequence when ``bos=True``, keys are ``FIRST_SYMBOL + 0 … num_keys - 1``, values follow them:
``FIRST_SYMBOL + num_keys + 0 … num_values - 1``. ``PAD = 0`` marks "no target" in
``targets`` (so :func:`~attention_course.metrics.sequence_cross_entropy` and
:func:`~attention_course.metrics.token_accuracy` score only the answers).

The generator draws from ``generator`` only (``None``: torch's global generator), so a seeded
``torch.Generator`` gives the same batch every time.

Shape legend: ``B`` batch, ``T = bos + 2·num_pairs + 2·num_queries`` sequence length, ``Q``
``num_queries``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attention_course._checks import check_bool, check_generator, check_int
from attention_course.data.vocab import BOS, FIRST_SYMBOL, PAD

__all__ = ["AssociativeRecall", "associative_recall"]


@dataclass(frozen=True)
class AssociativeRecall:
    """A batch of :func:`associative_recall`.

    - ``tokens`` ``(B, T)``: the sequences, answers included (for teacher forcing).
    - ``targets`` ``(B, T)``: ``targets[:, t]`` is the answer to predict *from* position ``t``
      (the query's position), ``PAD`` everywhere else; feed it with the logits to
      :func:`~attention_course.metrics.sequence_cross_entropy` / ``token_accuracy``.
    - ``query_positions`` ``(B, Q)``: where each query key stands.
    - ``sources`` ``(B, Q)``: where the value it asks for stands (its key is at
      ``sources - 1``); ``answers`` ``(B, Q)``: that value, ``tokens[b, sources[b, i]]``.
    - ``num_keys``, ``num_values``, ``vocab_size`` (the vocabulary a model's embedding needs).
    """

    tokens: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    query_positions: torch.Tensor  # (B, Q)
    sources: torch.Tensor  # (B, Q)
    answers: torch.Tensor  # (B, Q)
    num_keys: int
    num_values: int
    vocab_size: int

    @property
    def distances(self) -> torch.Tensor:
        """``(B, Q)``: how far back each answer is, ``query_positions - sources`` (>= 1)."""
        return self.query_positions - self.sources

    @property
    def chance(self) -> float:
        """The accuracy of a guess that cannot see the pairs: ``1 / num_values``."""
        return 1.0 / self.num_values


def associative_recall(batch_size: int, num_pairs: int, *, num_keys: int, num_values: int,
                       num_queries: int = 1, min_distance: int = 1,
                       generator: torch.Generator | None = None,
                       bos: bool = True) -> AssociativeRecall:
    """``batch_size`` sequences of ``num_pairs`` key–value pairs followed by ``num_queries``
    queries with their answers (see the module docstring).

    Per row the keys of the pairs are distinct (drawn without replacement from ``num_keys``
    symbols), the values uniform from ``num_values`` symbols (with replacement), and the
    queries distinct keys drawn among the pairs whose value stands at least ``min_distance``
    positions before the *first* query (hence before every query): the pairs ``j`` (0-based)
    with ``2·num_pairs - 1 - 2j >= min_distance``. ``min_distance = 1`` allows every pair.

    Returns:
        :class:`AssociativeRecall` with ``vocab_size = FIRST_SYMBOL + num_keys + num_values``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("num_pairs", num_pairs, minimum=1)
    check_int("num_keys", num_keys, minimum=1)
    check_int("num_values", num_values, minimum=1)
    check_int("num_queries", num_queries, minimum=1)
    check_int("min_distance", min_distance, minimum=1)
    check_bool("bos", bos)
    check_generator("generator", generator)
    if num_pairs > num_keys:
        raise ValueError(f"num_pairs must be <= num_keys (the keys of a row are distinct), got "
                         f"num_pairs={num_pairs} and num_keys={num_keys}")
    eligible = max(0, (2 * num_pairs - 1 - min_distance) // 2 + 1)  # pairs far enough back
    if num_queries > eligible:
        raise ValueError(f"num_queries={num_queries} distinct queries need as many pairs at "
                         f"distance >= min_distance={min_distance} from the first query, but "
                         f"num_pairs={num_pairs} leaves {eligible}; lower min_distance or "
                         f"num_queries, or raise num_pairs")
    B, n, Q, start = batch_size, num_pairs, num_queries, int(bos)
    keys = torch.rand(B, num_keys, generator=generator).argsort(dim=1)[:, :n]  # (B, n) distinct
    values = torch.randint(num_values, (B, n), generator=generator)  # (B, n)
    asked = torch.rand(B, eligible, generator=generator).argsort(dim=1)[:, :Q]  # (B, Q) pairs
    pairs = torch.stack([FIRST_SYMBOL + keys, FIRST_SYMBOL + num_keys + values], dim=2)
    queries = torch.stack([pairs[:, :, 0].gather(1, asked), pairs[:, :, 1].gather(1, asked)],
                          dim=2)  # (B, Q, 2): the key again, then its value
    tokens = torch.cat([pairs.flatten(1), queries.flatten(1)], dim=1)  # (B, 2n + 2Q)
    if bos:
        tokens = torch.cat([torch.full((B, 1), BOS), tokens], dim=1)  # (B, T)
    query_positions = start + 2 * n + 2 * torch.arange(Q).expand(B, Q)  # (B, Q)
    sources = start + 2 * asked + 1  # (B, Q): the value's position
    answers = queries[:, :, 1]  # (B, Q)
    targets = torch.full_like(tokens, PAD).scatter(1, query_positions, answers)  # (B, T)
    return AssociativeRecall(tokens, targets, query_positions.contiguous(), sources, answers,
                             num_keys, num_values, FIRST_SYMBOL + num_keys + num_values)
