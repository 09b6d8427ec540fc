r"""T5's pre-training objective: span corruption (Raffel et al., 2020, section 3.3).

A fraction ``noise_density`` of the tokens is dropped in contiguous spans of mean length
``mean_span_length``. The encoder input keeps the other tokens and puts one *sentinel* token in
the place of each span (the ``i``-th span gets ``sentinel_ids[i]``: T5's ``<extra_id_i>``); the
target lists, for each span in order, its sentinel followed by the tokens it hides::

    tokens   Thank you for inviting me to your party last week .
    inputs   Thank you <X> me to your party <Y> week .
    targets  <X> for inviting <Y> last

The targets are short (about ``noise_density`` of the text plus one sentinel per span), so the
objective is cheaper than predicting the whole text, and it trains the decoder to generate
while the encoder reads a corrupted text bidirectionally.

How the spans are drawn follows T5's ``random_spans_noise_mask``: ``N = round(L *
noise_density)`` noise tokens (at least 1, at most ``L - 1``) in ``S = max(1, round(N /
mean_span_length))`` spans; the ``N`` noise tokens and the ``L - N`` kept tokens are each cut
into ``S`` non-empty pieces uniformly at random, and the pieces alternate, a kept piece first.
So the noise fraction and the mean span length are those asked for up to rounding, and the
text always ends with a span (as in T5). Shape legend: ``L`` tokens of one example.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attention_course._checks import check_float, check_generator, check_tensor

__all__ = ["span_corruption", "random_segmentation", "noise_span_mask"]


def random_segmentation(num_items: int, num_segments: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Lengths of ``num_segments`` non-empty pieces that ``num_items`` items are cut into,
    uniformly over all such cuts → ``(num_segments,)`` int64 summing to ``num_items``."""
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"num_segments must be in [1, num_items={num_items}], "
                         f"got {num_segments}")
    cuts = torch.randperm(num_items - 1, generator=generator)[:num_segments - 1] + 1
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), cuts.sort().values,
                        torch.tensor([num_items])])
    return bounds.diff()  # (num_segments,)


def noise_span_mask(length: int, *, noise_density: float = 0.15, mean_span_length: float = 3.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The noise mask of :func:`span_corruption` → ``(L,)`` bool, ``True`` at dropped tokens
    (see the module docstring for how the spans are drawn); ``length >= 2``."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an int >= 2 (one kept and one noise token), "
                         f"got {length!r}")
    check_float("noise_density", noise_density, minimum=0.0, maximum=1.0,
                include_minimum=False, include_maximum=False)
    check_float("mean_span_length", mean_span_length, minimum=1.0)
    check_generator("generator", generator)
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_span_length), 1)
    num_spans = min(num_spans, length - num_noise)  # each span needs a kept piece before it
    noise_lengths = random_segmentation(num_noise, num_spans, generator)  # (S,)
    kept_lengths = random_segmentation(length - num_noise, num_spans, generator)  # (S,)
    pieces = torch.stack([kept_lengths, noise_lengths], dim=1).flatten()  # kept, noise, …
    is_noise = torch.tensor([False, True]).repeat(num_spans)  # (2S,)
    return is_noise.repeat_interleave(pieces)  # (L,)


def span_corruption(tokens: torch.Tensor, *, noise_density: float = 0.15,
                    mean_span_length: float = 3.0, sentinel_ids: Sequence[int],
                    generator: torch.Generator | None = None):
    """Corrupt one example as T5 does → ``(inputs (L_in,), targets (L_tgt,))`` int64.

    ``tokens`` ``(L,)`` integer ids, ``L >= 2``, none of them a sentinel. Spans are drawn by
    :func:`noise_span_mask`; ``inputs`` are the kept tokens with each span replaced by its
    sentinel, ``targets`` each span's sentinel followed by its tokens, spans in order. No
    end-of-sequence token is added (append one if the model needs it). ``sentinel_ids``: the
    distinct ids of the sentinels, in the order they are used (at least as many as spans;
    ``len(tokens)`` is always enough). The same ``generator`` state gives the same result.
    Replacing each sentinel of ``inputs`` by the tokens after it in ``targets`` gives
    ``tokens`` back.
    """
    check_tensor("tokens", tokens, ndim=1, integer=True)
    sentinels = torch.as_tensor(list(sentinel_ids) if not isinstance(sentinel_ids, torch.Tensor)
                                else sentinel_ids)
    if sentinels.dim() != 1 or not len(sentinels) or sentinels.is_floating_point():
        raise ValueError(f"sentinel_ids must be a non-empty sequence of int token ids, got "
                         f"{sentinel_ids!r}")
    if len(set(sentinels.tolist())) != len(sentinels):
        raise ValueError(f"sentinel_ids must be distinct, got {sentinels.tolist()}")
    if torch.isin(tokens, sentinels).any():
        found = tokens[torch.isin(tokens, sentinels)].unique().tolist()
        raise ValueError(f"tokens contains sentinel ids {found}; expected ordinary tokens only")
    if len(tokens) < 2:
        raise ValueError(f"tokens must have length >= 2, got shape {tuple(tokens.shape)}")
    noise = noise_span_mask(len(tokens), noise_density=noise_density,
                            mean_span_length=mean_span_length, generator=generator)  # (L,)
    starts = noise & ~torch.cat([torch.zeros(1, dtype=torch.bool), noise[:-1]])  # span starts
    num_spans = int(starts.sum())
    if num_spans > len(sentinels):
        raise ValueError(f"sentinel_ids has {len(sentinels)} ids but the example has "
                         f"{num_spans} spans; expected at least {num_spans}")
    span_index = starts.long().cumsum(0) - 1  # (L,): which span a noise token belongs to
    span_sentinel = sentinels.to(tokens)[span_index.clamp(min=0)]  # (L,)
    tokens = tokens.long()
    inputs = torch.where(starts, span_sentinel, tokens)[~noise | starts]  # (L_in,)
    targets = torch.stack([span_sentinel, tokens], dim=1)  # (L, 2): (sentinel, token)
    keep = torch.stack([starts, noise], dim=1)  # a sentinel before each span, then its tokens
    return inputs.long(), targets[keep].long()  # (L_in,), (L_tgt,)
