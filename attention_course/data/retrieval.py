"""A long-range retrieval task with its ground truth (Chapter 7): associative recall.

:func:`associative_recall` writes ``n`` *facts*, each one token that pairs a key with a value,
then a stretch of filler, then asks for the values of some of the keys::

    [BOS] f_1 … f_n   u_1 … u_g   q_1 … q_m          f_j = (k_j, v_j),  q_i = k_j

At the position of each query ``q_i`` the model must name the value ``v_j`` of the fact with
that key, which stands at least ``g + 1`` positions back. The values are drawn independently
of everything else, so the answer can be found only by attending to the fact: a model whose
attention cannot reach it (a sliding window narrower than the distance) is left at chance,
``1 / num_values``. One attention layer suffices (the query's key matches the fact's key, the
fact's value is copied), which keeps training short. This is the associative recall on which
Arora et al. (2023) ("Zoology") compare attention with its efficient approximations, with each
key–value pair written as one token.

**Vocabulary.** The course's (:mod:`attention_course.data.vocab`): ``BOS = 1`` starts every
sequence when ``bos=True``; from ``FIRST_SYMBOL`` on come the ``num_keys · num_values`` fact
tokens (``FIRST_SYMBOL + key · num_values + value``), the ``num_keys`` query tokens, the
``num_values`` value tokens (which appear only as targets) and the ``num_fillers`` filler
tokens. ``PAD = 0`` marks "no target" in ``targets``.

The generator draws from ``generator`` only (``None``: torch's global generator), so a seeded
``torch.Generator`` gives the same batch every time.

Shape legend: ``B`` batch, ``T = bos + num_facts + gap + num_queries``, ``Q`` ``num_queries``.
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

    - ``tokens`` ``(B, T)``: the sequences.
    - ``targets`` ``(B, T)``: ``targets[:, t]`` is the value token to predict at position
      ``t`` (a query's position), ``PAD`` everywhere else.
    - ``query_positions`` ``(B, Q)``: where each query stands; ``sources`` ``(B, Q)``: where
      the fact it asks about stands; ``answers`` ``(B, Q)``: the value token to predict.
    - ``num_keys``, ``num_values``, ``vocab_size`` (the size a model's embedding needs) and
      ``first_value``, the id of value ``0`` (value ``v`` is ``first_value + v``).
    """

    tokens: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    query_positions: torch.Tensor  # (B, Q)
    sources: torch.Tensor  # (B, Q)
    answers: torch.Tensor  # (B, Q)
    num_keys: int
    num_values: int
    first_value: int
    vocab_size: int

    @property
    def distances(self) -> torch.Tensor:
        """``(B, Q)``: how far back each fact is, ``query_positions - sources`` (>= 1)."""
        return self.query_positions - self.sources

    @property
    def chance(self) -> float:
        """The accuracy of a guess that cannot see the facts: ``1 / num_values``."""
        return 1.0 / self.num_values


def associative_recall(batch_size: int, num_facts: int, *, num_keys: int, num_values: int,
                       gap: int = 0, num_queries: int = 1, num_fillers: int = 8,
                       generator: torch.Generator | None = None,
                       bos: bool = True) -> AssociativeRecall:
    """``batch_size`` sequences of ``num_facts`` facts, ``gap`` filler tokens and
    ``num_queries`` queries (see the module docstring).

    Per row the keys of the facts are distinct (drawn without replacement from ``num_keys``),
    their values uniform from ``num_values`` (with replacement), the fillers uniform from
    ``num_fillers``, and the queries distinct keys among the facts, in random order. Every fact
    is at least ``gap + 1`` positions before every query.

    Returns:
        :class:`AssociativeRecall`.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("num_facts", num_facts, minimum=1)
    check_int("num_keys", num_keys, minimum=1)
    check_int("num_values", num_values, minimum=1)
    check_int("gap", gap, minimum=0)
    check_int("num_queries", num_queries, minimum=1)
    check_int("num_fillers", num_fillers, minimum=1)
    check_bool("bos", bos)
    check_generator("generator", generator)
    if num_facts > num_keys:
        raise ValueError(f"num_facts must be <= num_keys (the keys of a row are distinct), got "
                         f"num_facts={num_facts} and num_keys={num_keys}")
    if num_queries > num_facts:
        raise ValueError(f"num_queries must be <= num_facts (the queries of a row ask about "
                         f"distinct facts), got num_queries={num_queries} and "
                         f"num_facts={num_facts}")
    B, n, Q, K, V = batch_size, num_facts, num_queries, num_keys, num_values
    first_query = FIRST_SYMBOL + K * V
    first_value = first_query + K
    first_filler = first_value + V
    keys = torch.rand(B, K, generator=generator).argsort(dim=1)[:, :n]  # (B, n) distinct
    values = torch.randint(V, (B, n), generator=generator)  # (B, n)
    fillers = torch.randint(num_fillers, (B, gap), generator=generator)  # (B, g)
    asked = torch.rand(B, n, generator=generator).argsort(dim=1)[:, :Q]  # (B, Q) fact indices
    parts = [FIRST_SYMBOL + keys * V + values, first_filler + fillers,
             first_query + keys.gather(1, asked)]
    if bos:
        parts.insert(0, torch.full((B, 1), BOS))
    tokens = torch.cat(parts, dim=1)  # (B, T)
    start = int(bos)
    query_positions = (start + n + gap + torch.arange(Q)).expand(B, Q).contiguous()  # (B, Q)
    sources = start + asked  # (B, Q)
    answers = first_value + values.gather(1, asked)  # (B, Q)
    targets = torch.full_like(tokens, PAD).scatter(1, query_positions, answers)  # (B, T)
    return AssociativeRecall(tokens, targets, query_positions, sources, answers, K, V,
                             first_value, first_filler + num_fillers)
