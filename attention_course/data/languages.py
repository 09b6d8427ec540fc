"""Synthetic languages for finding attention patterns (Chapter 6), with their ground truth.

Each generator returns a batch of token sequences ``tokens`` ``(B, T)`` together with what an
analysis needs to score a head against the truth (see :mod:`attention_course.analysis`):

- :func:`repeated_sequences` — ``[BOS] … x_1 … x_n x_1 … x_n …`` (inside random filler when
  ``n`` varies): random symbols, then the same again. The repeat can be predicted only by copying
  from the first occurrence (induction heads).
  Truth: ``earlier``, the position of each token's earlier copy.
- :func:`bracket_sequences` — balanced brackets of several types (a Dyck language): every
  closing bracket must match the innermost bracket still open. Truth: each bracket's
  ``partner``, its ``depth``, and the ``innermost_open`` bracket a next closing one must match.
- :func:`class_sequences` — words from ``K`` meaning classes, in spans of one class (optionally
  with class-less filler words sprinkled in). Truth: each token's ``classes``.

**Vocabulary.** The course's (:mod:`attention_course.data.vocab`): ``PAD = 0`` and ``EOS = 2``
are unused, ``BOS = 1`` starts every sequence when ``bos=True`` (the default; it gives heads a
place to put weight they do not need), content tokens start at ``FIRST_SYMBOL = 3``. Each batch
has a ``vocab_size`` field, the size a model's embedding needs. Ground-truth positions count the
``BOS`` (position 0 when present); ``-1`` means "none".

All generators draw from ``generator`` only (``None``: torch's global generator), so a seeded
``torch.Generator`` gives the same batch every time.

Shape legend: ``B`` batch, ``T`` sequence length (``BOS`` included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attention_course._checks import check_bool, check_float, check_generator, check_int
from attention_course.data.vocab import BOS, FIRST_SYMBOL

__all__ = [
    "RepeatedSequences",
    "repeated_sequences",
    "BracketSequences",
    "bracket_sequences",
    "ClassSequences",
    "class_sequences",
]


def _check_generator(generator) -> None:
    check_generator("generator", generator)


def _with_bos(tokens: torch.Tensor, bos: bool) -> torch.Tensor:
    """Prepend a ``BOS`` column to ``(B, L)`` tokens when ``bos``."""
    if not bos:
        return tokens
    return torch.cat([torch.full((tokens.shape[0], 1), BOS), tokens], dim=1)  # (B, L + 1)


def _shift_positions(index: torch.Tensor, bos: bool) -> torch.Tensor:
    """Positions ``(B, L)`` counted without ``BOS`` (``-1`` = none) → counted with it, and a
    ``-1`` column for the ``BOS`` itself."""
    if not bos:
        return index
    index = torch.where(index >= 0, index + 1, index)
    return torch.cat([torch.full((index.shape[0], 1), -1), index], dim=1)  # (B, L + 1)


# --- repeated random sequences (induction heads) ------------------------------------------


@dataclass(frozen=True)
class RepeatedSequences:
    """A batch of :func:`repeated_sequences`; ``tokens``, ``earlier`` are ``(B, T)``.

    ``earlier``: for each token of the repeat, the position of its copy (``t - n``), ``-1``
    elsewhere (``BOS``, the random filler, the first occurrence); ``lengths`` ``(B,)``: each
    row's ``n``; ``starts`` ``(B,)``: the position of each row's first ``x_1``; ``vocab_size``:
    the vocabulary a model needs.

    The target at position ``t`` (``tokens[:, t]``, predicted from position ``t - 1``) can be
    copied from the first occurrence exactly when ``earlier[:, t - 1] >= 0``: the token before
    it was seen before, and what followed it then follows it now. :attr:`predictable` marks
    those targets, :attr:`first_occurrence` the targets of the first occurrence after its first
    token (the ones with nothing to copy, but the same position in the pattern).
    """

    tokens: torch.Tensor  # (B, T)
    earlier: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,)
    starts: torch.Tensor  # (B,)
    vocab_size: int

    @property
    def predictable(self) -> torch.Tensor:
        """``(B, T)`` bool: targets an induction head can copy (``x_2 … x_n`` of the
        repeat)."""
        out = torch.zeros_like(self.earlier, dtype=torch.bool)
        out[:, 1:] = self.earlier[:, :-1] >= 0
        out &= self.earlier >= 0  # not the filler token after the repeat
        return out

    @property
    def first_occurrence(self) -> torch.Tensor:
        """``(B, T)`` bool: ``x_2 … x_n`` of the first occurrence (as many targets per row as
        :attr:`predictable`, none of them predictable)."""
        t = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        start = self.starts[:, None]  # (B, 1): position of the first x_1
        return (t > start) & (t < start + self.lengths[:, None])


def repeated_sequences(batch_size: int, length: int | tuple[int, int], num_symbols: int, *,
                       generator: torch.Generator | None = None, bos: bool = True,
                       distinct: bool = False) -> RepeatedSequences:
    """``batch_size`` sequences ``[BOS] u_1 … u_p x_1 … x_n x_1 … x_n v_1 … v_q``: random
    symbols ``x``, the same ``n`` symbols again, inside random filler ``u``, ``v``.

    ``length`` is ``n``, or a range ``(min, max)`` from which each row draws its own ``n``
    uniformly. Every row has ``T = 2 * max (+1 with BOS)`` tokens: a row with a shorter ``n``
    has ``p + q = 2 * (max - n)`` filler symbols, split at random. Both kinds of variation
    matter: with one fixed ``n`` a head attending ``n - 1`` positions back copies the repeat
    by position alone, and with the repeat always at the end of the row the absolute
    positions tell where it is (small models trained on such data learn these shortcuts).
    With both varied, only content — an induction head, which finds the previous occurrence
    of the current token and copies the token after it — can predict the repeat.

    Symbols are drawn uniformly from ``num_symbols`` ids ``FIRST_SYMBOL …``. With
    ``distinct=True`` the symbols of a row (filler and ``x``) are all different (needs
    ``2 * max - min <= num_symbols``), so a token's only earlier occurrence is its designed
    copy; otherwise symbols may also repeat by chance (as in Olsson et al., 2022).

    Returns:
        :class:`RepeatedSequences` with ``vocab_size = FIRST_SYMBOL + num_symbols``.
    """
    check_int("batch_size", batch_size, minimum=1)
    if isinstance(length, tuple):
        if len(length) != 2:
            raise ValueError(f"length must be an int n or a range (min, max), got {length!r}")
        low, high = length
        check_int("length[0]", low, minimum=1)
        check_int("length[1]", high)
        if high < low:
            raise ValueError(f"length must be (min, max) with min <= max, got {length}")
    else:
        check_int("length", length, minimum=1)
        low = high = length
    check_int("num_symbols", num_symbols, minimum=1)
    check_bool("bos", bos)
    check_bool("distinct", distinct)
    _check_generator(generator)
    if distinct and 2 * high - low > num_symbols:
        raise ValueError(f"distinct=True needs 2 * max - min <= num_symbols (the symbols of the "
                         f"longest row), got length={length!r} and num_symbols={num_symbols}")
    B, L = batch_size, 2 * high
    lengths = torch.randint(low, high + 1, (B,), generator=generator)  # (B,): each row's n
    n = lengths[:, None]  # (B, 1)
    start = (torch.rand(B, 1, generator=generator) * (L - 2 * n + 1)).long()  # (B, 1): x_1
    if distinct:  # a random permutation per row; a row uses its first L - n symbols
        pool = torch.rand(B, num_symbols, generator=generator).argsort(dim=1)  # (B, K)
    else:
        pool = torch.randint(num_symbols, (B, L), generator=generator)  # (B, L)
    t = torch.arange(L)
    copy = (t >= start + n) & (t < start + 2 * n)  # (B, L): the repeat
    # Filler before takes pool symbol t, the copies start + ((t - start) mod n), filler after
    # t - n (the symbols after the first occurrence's).
    source = torch.where(t < start + 2 * n, torch.where(t < start, t, start + (t - start) % n),
                         t - n)  # (B, L)
    tokens = FIRST_SYMBOL + pool.gather(1, source)  # (B, L)
    earlier = torch.where(copy, t - n, -1)  # (B, L)
    return RepeatedSequences(_with_bos(tokens, bos), _shift_positions(earlier, bos), lengths,
                             start[:, 0] + int(bos), FIRST_SYMBOL + num_symbols)


# --- balanced brackets (syntax) ------------------------------------------------------------


@dataclass(frozen=True)
class BracketSequences:
    """A batch of :func:`bracket_sequences`; every field but the sizes is ``(B, T)``.

    - ``tokens``: opening bracket of type ``i`` is ``FIRST_SYMBOL + i``, closing bracket of
      type ``i`` is ``FIRST_SYMBOL + num_types + i``.
    - ``partner``: the position of the matching bracket (a later closing one for an opening
      bracket, an earlier opening one for a closing bracket); ``-1`` for ``BOS``.
    - ``depth``: how many brackets are open after the token (0 at ``BOS``).
    - ``innermost_open``: the position of the innermost bracket still open after the token
      (the one the next closing bracket must match), ``-1`` when none is open.

    A causal model cannot see an opening bracket's partner; :attr:`earlier_partner` keeps the
    partners a causal head can attend to (closing → its opening bracket).
    """

    tokens: torch.Tensor  # (B, T)
    partner: torch.Tensor  # (B, T)
    depth: torch.Tensor  # (B, T)
    innermost_open: torch.Tensor  # (B, T)
    num_types: int
    vocab_size: int

    @property
    def earlier_partner(self) -> torch.Tensor:
        """``(B, T)``: ``partner`` at closing brackets, ``-1`` elsewhere."""
        t = torch.arange(self.tokens.shape[1])
        return torch.where(self.partner < t, self.partner, -1)

    @property
    def is_closing(self) -> torch.Tensor:
        """``(B, T)`` bool: the closing brackets."""
        return self.tokens >= FIRST_SYMBOL + self.num_types


def bracket_sequences(batch_size: int, length: int, num_types: int = 2, *,
                      generator: torch.Generator | None = None, bos: bool = True,
                      max_depth: int | None = None, p_open: float = 0.5) -> BracketSequences:
    """``batch_size`` balanced strings of ``length`` brackets of ``num_types`` types.

    A random walk on the depth: at each step a bracket opens with probability ``p_open`` (its
    type uniform) or the innermost open one closes; it must open at depth 0 and must close at
    depth ``max_depth`` (default: no limit) or when the brackets left are just enough to close
    every open one. So every string is balanced and every closing bracket matches its opening
    one — an agreement that can span many intervening brackets.

    Args:
        length: brackets per sequence (even, ``>= 2``); ``T = length (+1 with BOS)``.
        num_types: kinds of brackets (``(`` ``[`` ``{`` …), ``>= 1``.
        max_depth: the deepest nesting allowed, ``>= 1``, or ``None``.
        p_open: probability to open when both opening and closing are allowed, in ``(0, 1)``.

    Returns:
        :class:`BracketSequences`, ``vocab_size = FIRST_SYMBOL + 2 * num_types``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("length", length, minimum=2)
    if length % 2:
        raise ValueError(f"length must be even (a balanced string has as many closing as "
                         f"opening brackets), got {length}")
    check_int("num_types", num_types, minimum=1)
    if max_depth is not None:
        check_int("max_depth", max_depth, minimum=1)
    p_open = check_float("p_open", p_open, minimum=0.0, maximum=1.0, include_minimum=False,
                         include_maximum=False)
    check_bool("bos", bos)
    _check_generator(generator)
    B, limit = batch_size, length // 2 if max_depth is None else min(max_depth, length // 2)
    coin = torch.rand(B, length, generator=generator)  # (B, L): open or close
    types = torch.randint(num_types, (B, length), generator=generator)  # (B, L)
    rows = torch.arange(B)
    stack = torch.zeros(B, limit + 1, dtype=torch.long)  # positions of open brackets
    stack_type = torch.zeros(B, limit + 1, dtype=torch.long)
    depth = torch.zeros(B, dtype=torch.long)  # (B,)
    tokens = torch.empty(B, length, dtype=torch.long)
    partner = torch.empty(B, length, dtype=torch.long)
    depths = torch.empty(B, length, dtype=torch.long)
    innermost = torch.empty(B, length, dtype=torch.long)
    for s in range(length):
        left = length - s - 1  # brackets after this one
        can_open = (depth + 1 <= left) & (depth < limit)
        opens = (depth == 0) | (can_open & (coin[:, s] < p_open))  # (B,)
        top = (depth - 1).clamp_min(0)  # (B,): index of the innermost open bracket
        opener, opener_type = stack[rows, top], stack_type[rows, top]  # (B,), (B,)
        tokens[:, s] = torch.where(opens, FIRST_SYMBOL + types[:, s],
                                   FIRST_SYMBOL + num_types + opener_type)
        partner[:, s] = torch.where(opens, -1, opener)
        partner[rows[~opens], opener[~opens]] = s  # the opening bracket's partner: this one
        stack[rows, depth] = torch.where(opens, s, stack[rows, depth])  # push when opening
        stack_type[rows, depth] = torch.where(opens, types[:, s], stack_type[rows, depth])
        depth = depth + torch.where(opens, 1, -1)
        depths[:, s] = depth
        innermost[:, s] = torch.where(depth > 0, stack[rows, (depth - 1).clamp_min(0)], -1)
    depths = torch.cat([torch.zeros(B, 1, dtype=torch.long), depths], 1) if bos else depths
    return BracketSequences(_with_bos(tokens, bos), _shift_positions(partner, bos), depths,
                            _shift_positions(innermost, bos), num_types,
                            FIRST_SYMBOL + 2 * num_types)


# --- meaning classes (semantics) -----------------------------------------------------------


@dataclass(frozen=True)
class ClassSequences:
    """A batch of :func:`class_sequences`.

    ``tokens`` ``(B, T)``; ``classes`` ``(B, T)``: each word's class in ``0 … K-1``, ``-1`` for
    ``BOS`` and filler words; ``vocab_classes`` ``(V,)``: the class of every token id (``-1``
    for special tokens and fillers), so ``vocab_classes[tokens] == classes``.
    """

    tokens: torch.Tensor  # (B, T)
    classes: torch.Tensor  # (B, T)
    vocab_classes: torch.Tensor  # (V,)
    vocab_size: int


def class_sequences(batch_size: int, length: int, num_classes: int, words_per_class: int, *,
                    generator: torch.Generator | None = None, bos: bool = True,
                    span: tuple[int, int] = (2, 6), num_fillers: int = 0,
                    filler_prob: float = 0.0) -> ClassSequences:
    """``batch_size`` sequences of ``length`` words in spans of one meaning class each.

    Word ``w`` of class ``c`` is token ``FIRST_SYMBOL + c * words_per_class + w``; filler ``f``
    (a class-less word, like "the") is ``FIRST_SYMBOL + num_classes * words_per_class + f``. A
    sequence is a run of spans; each span's length is uniform in ``span = (min, max)``
    (the last one is cut at ``length``), its class uniform among the classes other than the
    previous span's, and its words uniform within that class. Then every word is replaced by a
    random filler with probability ``filler_prob`` (needs ``num_fillers >= 1``).

    Returns:
        :class:`ClassSequences`, ``vocab_size = FIRST_SYMBOL + num_classes * words_per_class +
        num_fillers``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("length", length, minimum=1)
    check_int("num_classes", num_classes, minimum=2)
    check_int("words_per_class", words_per_class, minimum=1)
    if not isinstance(span, tuple) or len(span) != 2:
        raise TypeError(f"span must be a tuple (min, max) of span lengths, got "
                        f"{type(span).__name__} {span!r}")
    check_int("span[0]", span[0], minimum=1)
    check_int("span[1]", span[1])
    if span[1] < span[0]:
        raise ValueError(f"span must be (min, max) with min <= max, got {span}")
    check_int("num_fillers", num_fillers, minimum=0)
    filler_prob = check_float("filler_prob", filler_prob, minimum=0.0, maximum=1.0,
                              include_maximum=False)
    if filler_prob > 0 and num_fillers == 0:
        raise ValueError(f"filler_prob={filler_prob} needs num_fillers >= 1 (the filler words "
                         f"to draw), got num_fillers=0")
    check_bool("bos", bos)
    _check_generator(generator)
    B, K, W = batch_size, num_classes, words_per_class
    # Span lengths: enough spans to fill the sequence even if every span is as short as allowed.
    num_spans = -(-length // span[0])
    span_len = torch.randint(span[0], span[1] + 1, (B, num_spans), generator=generator)
    # Classes: the first uniform, each next one a uniform non-zero step away (a different class).
    steps = torch.randint(1, K, (B, num_spans), generator=generator)
    steps[:, 0] = torch.randint(K, (B,), generator=generator)
    span_class = steps.cumsum(dim=1) % K  # (B, num_spans)
    span_end = span_len.cumsum(dim=1)  # (B, num_spans): position after each span
    t = torch.arange(length)
    which_span = (span_end[:, None, :] <= t[None, :, None]).sum(dim=-1)  # (B, L)
    classes = span_class.gather(1, which_span)  # (B, L)
    words = torch.randint(W, (B, length), generator=generator)  # (B, L)
    tokens = FIRST_SYMBOL + classes * W + words  # (B, L)
    if num_fillers:
        filler = torch.rand(B, length, generator=generator) < filler_prob  # (B, L)
        filler_word = torch.randint(num_fillers, (B, length), generator=generator)
        tokens = torch.where(filler, FIRST_SYMBOL + K * W + filler_word, tokens)
        classes = torch.where(filler, -1, classes)
    vocab_size = FIRST_SYMBOL + K * W + num_fillers
    vocab_classes = torch.full((vocab_size,), -1)
    vocab_classes[FIRST_SYMBOL:FIRST_SYMBOL + K * W] = torch.arange(K).repeat_interleave(W)
    if bos:
        tokens = _with_bos(tokens, bos)
        classes = torch.cat([torch.full((B, 1), -1), classes], dim=1)
    return ClassSequences(tokens, classes, vocab_classes, vocab_size)
