"""Checkers for Chapter 10 (recent developments: BERT, GPT and T5 from one Transformer).

- :func:`check_mlm_mask` — ``mlm_mask(tokens, select_u, replace_u, random_tokens, mask_id,
  special_ids)``: BERT's masked-language-model corruption, made deterministic by handing in the
  uniform random draws. Returns ``(corrupted, labels)``, both ``(B, L)`` like ``tokens``.
- :func:`check_top_k_sampling` — ``top_k_filter(logits, k)``: ``(B, V)`` → ``(B, V)``, every
  logit below the k-th largest of its row set to ``-inf`` (the filter in front of GPT's top-k
  sampling).
- :func:`check_relative_position_bucket` — ``relative_position_bucket(relative_position,
  bidirectional, num_buckets, max_distance)``: T5's bucket of a relative position
  (``memory_position - query_position``), exactly as Hugging Face's
  ``T5Attention._relative_position_bucket``.

References: plain tensor code written out below (self-contained: no model of the package is
imported). The ``_mutant`` functions are a reference with one known mistake each, used only to
recognise the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import math

import torch

from attention_course.exercises._framework import Case, Checker, Mistake

__all__ = ["check_mlm_mask", "check_top_k_sampling", "check_relative_position_bucket"]

IGNORE_INDEX = -100  # the label of an unselected position (cross_entropy's ignore_index)
SELECT_RATE, MASK_RATE, RANDOM_RATE = 0.15, 0.8, 0.1


# --- mlm_mask -----------------------------------------------------------------------------------

def _mlm(tokens, select_u, replace_u, random_tokens, mask_id, special_ids, *,
         skip_special=True, mask_band=(0.0, MASK_RATE),
         random_band=(MASK_RATE, MASK_RATE + RANDOM_RATE), outside=False,
         labels_from="original", ignore=IGNORE_INDEX, select=None):
    """The reference with knobs: a selected token becomes mask_id when replace_u is in
    ``mask_band``, else random_tokens when it is in ``random_band``, else stays unchanged."""
    chosen = select_u < SELECT_RATE if select is None else select(select_u)  # (B, L)
    if skip_special:
        chosen = chosen & ~torch.isin(tokens, special_ids)
    to_mask = (replace_u >= mask_band[0]) & (replace_u < mask_band[1])
    to_random = (replace_u >= random_band[0]) & (replace_u < random_band[1])
    if not outside:
        to_mask, to_random = to_mask & chosen, to_random & chosen
    corrupted = torch.where(to_random, random_tokens, tokens)
    corrupted = torch.where(to_mask, torch.full_like(tokens, mask_id), corrupted)
    if labels_from == "everywhere":
        return corrupted, tokens.clone()
    source = corrupted if labels_from == "corrupted" else tokens
    return corrupted, torch.where(chosen, source, torch.full_like(tokens, ignore))


def _mlm_reference(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u < SELECT_RATE) & ~torch.isin(tokens, special_ids)  # (B, L)
    to_mask = selected & (replace_u < MASK_RATE)  # 80 % of the selected
    to_random = selected & (replace_u >= MASK_RATE) & (replace_u < MASK_RATE + RANDOM_RATE)
    corrupted = torch.where(to_random, random_tokens, tokens)  # 10 %; the last 10 % unchanged
    corrupted = torch.where(to_mask, torch.full_like(tokens, mask_id), corrupted)
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return corrupted, labels


def _mlm_case(g, what, B, L, n_pad, dtype, *, specials=(0, 1, 2, 3), mask_id=3, vocab=30):
    """Sequences [CLS] words [SEP] [PAD]...; draws adjusted so that every rule is exercised."""
    pad, cls, sep = specials[0], specials[1], specials[2]
    first_word = max(specials) + 1 if max(specials) < 10 else 4
    words = torch.randint(first_word, vocab, (B, L), generator=g)
    words = torch.where(torch.isin(words, torch.tensor(specials)), first_word, words)
    tokens = words.clone()
    tokens[:, 0] = cls
    for b in range(B):
        end = L - 1 - (n_pad if b % 2 == 0 else 0)  # every other row is padded
        tokens[b, end] = sep
        tokens[b, end + 1:] = pad
    select_u = torch.rand(B, L, generator=g, dtype=torch.float64)
    replace_u = torch.rand(B, L, generator=g, dtype=torch.float64)
    random_tokens = torch.randint(first_word, vocab, (B, L), generator=g)
    random_tokens = torch.where(random_tokens == tokens, (random_tokens + 1 - first_word)
                                % (vocab - first_word) + first_word, random_tokens)
    # Every rule gets a position: [CLS] and a [PAD] drawn for selection, and selected words
    # in each band of replace_u (mask, random, keep).
    select_u[0, 0] = 0.03
    select_u[0, -1] = 0.07 if n_pad else select_u[0, -1]
    for col, r in zip((1, 2, 3, 4), (0.2, 0.85, 0.95, 0.6), strict=True):
        select_u[-1, col], replace_u[-1, col] = 0.1, r
    special_ids = torch.tensor(specials, dtype=torch.int64)
    sizes = f"B={B}, L={L}, mask_id={mask_id}, special_ids={list(specials)}"
    note = "float32 draws, " if dtype == torch.float32 else ""
    return Case(f"{note}{what}: {sizes}",
                {"tokens": tokens, "select_u": select_u.to(dtype),
                 "replace_u": replace_u.to(dtype), "random_tokens": random_tokens,
                 "mask_id": mask_id, "special_ids": special_ids})


def _mlm_cases() -> list[Case]:
    g = torch.Generator().manual_seed(101)
    return [
        _mlm_case(g, "a batch with padding", 4, 16, 3, torch.float64),
        _mlm_case(g, "one long sequence without padding", 1, 48, 0, torch.float64),
        _mlm_case(g, "a batch with padding", 3, 24, 5, torch.float32),
        _mlm_case(g, "BERT's ids ([PAD]=0, [CLS]=101, [SEP]=102, [MASK]=103)", 2, 32, 4,
                  torch.float64, specials=(0, 101, 102, 103), mask_id=103, vocab=200),
        _mlm_case(g, "a larger batch", 6, 20, 2, torch.float32),
    ]


def _mlm_special_mutant(*args):
    return _mlm(*args, skip_special=False)


def _mlm_all_masked_mutant(*args):
    return _mlm(*args, mask_band=(0.0, 2.0), random_band=(2.0, 2.0))


def _mlm_swapped_mutant(*args):
    return _mlm(*args, random_band=(MASK_RATE + RANDOM_RATE, 2.0))


def _mlm_no_random_mutant(*args):
    return _mlm(*args, random_band=(2.0, 2.0))


def _mlm_band_mutant(mask_band, random_band):
    def mutant(*args):
        return _mlm(*args, mask_band=mask_band, random_band=random_band)
    return mutant


def _mlm_outside_mutant(*args):
    return _mlm(*args, outside=True)


def _mlm_inverted_mutant(*args):
    return _mlm(*args, select=lambda u: u >= SELECT_RATE)


def _mlm_rate_mutant(rate):
    def mutant(*args):
        return _mlm(*args, select=lambda u: u < rate)
    return mutant


def _mlm_labels_everywhere_mutant(*args):
    return _mlm(*args, labels_from="everywhere")


def _mlm_labels_everywhere_corrupted_mutant(*args):
    corrupted, _ = _mlm(*args)
    return corrupted, corrupted.clone()


def _mlm_labels_corrupted_mutant(*args):
    return _mlm(*args, labels_from="corrupted")


def _mlm_ignore_mutant(ignore):
    def mutant(*args):
        return _mlm(*args, ignore=ignore)
    return mutant


_MLM_RULE = ("selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids); of those, "
             "replace_u < 0.8 → mask_id, 0.8 ≤ replace_u < 0.9 → random_tokens, otherwise "
             "unchanged")

_MLM_MISTAKES = (
    Mistake(
        "special tokens were selected: [CLS], [SEP] and [PAD] are never masked",
        "A position holding one of `special_ids` is never selected, whatever its draw: "
        "the model must not learn to predict [CLS] or padding, and a masked [SEP] would "
        "blur the sentence boundary. Combine the draw with "
        "`~torch.isin(tokens, special_ids)` before anything else.",
        (_mlm_special_mutant,),
    ),
    Mistake(
        "every selected token became [MASK]: the rule is 80 % / 10 % / 10 %",
        f"BERT replaces only 80 % of the selected tokens with [MASK]; 10 % get a random "
        f"token and 10 % stay unchanged, so the model cannot rely on seeing [MASK] (which "
        f"never occurs at fine-tuning time). Rule: {_MLM_RULE}.",
        (_mlm_all_masked_mutant,),
    ),
    Mistake(
        "the random-token and unchanged bands are swapped",
        f"0.8 ≤ replace_u < 0.9 gets the random token, replace_u ≥ 0.9 stays unchanged. "
        f"Both are 10 %, but with the draws given the answer is unique. Rule: {_MLM_RULE}.",
        (_mlm_swapped_mutant,),
    ),
    Mistake(
        "no selected token got a random replacement",
        f"The 10 % band 0.8 ≤ replace_u < 0.9 must take its token from `random_tokens`. "
        f"A test such as `elif replace_u < 0.1` after `replace_u < 0.8` can never be true: "
        f"the bands are cumulative. Rule: {_MLM_RULE}.",
        (_mlm_no_random_mutant,),
    ),
    Mistake(
        "the bands of replace_u are wrong: [MASK] below 0.8, random below 0.9",
        f"The thresholds are cumulative: [0, 0.8) → mask_id, [0.8, 0.9) → random token, "
        f"[0.9, 1) → unchanged. Rule: {_MLM_RULE}.",
        (_mlm_band_mutant((0.2, 2.0), (0.0, 0.1)), _mlm_band_mutant((0.1, 0.9), (0.0, 0.1)),
         _mlm_band_mutant((0.2, 2.0), (0.1, 0.2))),
    ),
    Mistake(
        "tokens that were not selected were replaced",
        f"replace_u decides only for the selected positions: every other token stays as it "
        f"is. AND the replacement conditions with `selected`. Rule: {_MLM_RULE}.",
        (_mlm_outside_mutant,),
    ),
    Mistake(
        "the selection is wrong: select positions where select_u < 0.15",
        f"About 15 % of the (non-special) tokens are selected: those whose draw is below "
        f"0.15, not above it, and not at another rate. Rule: {_MLM_RULE}.",
        (_mlm_inverted_mutant, _mlm_rate_mutant(0.8), _mlm_rate_mutant(0.1),
         _mlm_rate_mutant(0.85)),
    ),
    Mistake(
        "labels were set at every position: only the selected ones count",
        "The loss is computed only where the input was selected, so `labels` holds the "
        "original token there and -100 (cross_entropy's ignore_index) everywhere else: "
        "`torch.where(selected, tokens, -100)`.",
        (_mlm_labels_everywhere_mutant, _mlm_labels_everywhere_corrupted_mutant),
    ),
    Mistake(
        "the labels hold the corrupted token instead of the original",
        "The model must predict what was there before the corruption: the label of a "
        "selected position is the ORIGINAL token, never [MASK] or the random token. Take "
        "it from `tokens` (and if you changed `tokens` in place before reading the "
        "labels, work on `tokens.clone()` instead).",
        (_mlm_labels_corrupted_mutant,),
    ),
    Mistake(
        "unselected labels must be -100, not another value",
        "Position without a prediction get the label -100, the default `ignore_index` of "
        "`F.cross_entropy`. 0 is a real token id ([PAD] here), so a 0 label would train "
        "the model to predict padding everywhere: use `torch.full_like(tokens, -100)`.",
        (_mlm_ignore_mutant(0), _mlm_ignore_mutant(-1), _mlm_ignore_mutant(100)),
    ),
)

_MLM = Checker(
    "mlm_mask", _mlm_cases, _mlm_reference, _MLM_MISTAKES,
    outputs=("corrupted", "labels"), shapes=("(B, L)", "(B, L)"),
    error_hint=f"Hint: {_MLM_RULE}; labels = torch.where(selected, tokens, -100).",
)


def check_mlm_mask(fn) -> None:
    """Check ``fn(tokens, select_u, replace_u, random_tokens, mask_id, special_ids)`` →
    ``(corrupted, labels)``, both int64 ``(B, L)``: BERT's masking with the random draws
    handed in. ``tokens`` ``(B, L)`` int64; ``select_u`` and ``replace_u`` ``(B, L)`` uniform
    draws in [0, 1) (float32 or float64); ``random_tokens`` ``(B, L)`` int64; ``mask_id`` an
    int; ``special_ids`` a 1-D int64 tensor. A position is selected when ``select_u < 0.15``
    and its token is not special. A selected token becomes ``mask_id`` when ``replace_u <
    0.8``, ``random_tokens`` when ``0.8 ≤ replace_u < 0.9``, and stays unchanged otherwise;
    every other token is unchanged. ``labels`` is the original token at selected positions and
    -100 elsewhere. No input may change. Prints one line on success."""
    _MLM.check(fn)


# --- top_k_filter -------------------------------------------------------------------------------

def _kth_largest(logits, k):
    """(B, 1): the k-th largest logit of each row (k clipped to V)."""
    k = min(k, logits.shape[-1])
    return torch.topk(logits, k, dim=-1).values[:, -1:]


def _top_k_reference(logits, k):
    threshold = _kth_largest(logits, k)  # (B, 1)
    return logits.masked_fill(logits < threshold, float("-inf"))  # (B, V): ties kept


def _top_k_cases() -> list[Case]:
    g = torch.Generator().manual_seed(102)
    cases = []
    for what, B, V, k, dtype in (
            ("a batch of rows", 3, 10, 3, torch.float64),
            ("k = 1: greedy", 4, 8, 1, torch.float64),
            ("a larger vocabulary", 2, 50, 5, torch.float32),
            ("k = V - 1", 2, 6, 5, torch.float64),
            ("k = V: nothing filtered", 3, 7, 7, torch.float32),
            ("k > V: nothing filtered", 2, 5, 8, torch.float64),
            ("B = V (a square batch)", 4, 4, 2, torch.float64),
            ("one row", 1, 12, 4, torch.float32)):
        logits = torch.randn(B, V, generator=g, dtype=torch.float64)
        logits = logits + torch.arange(B, dtype=torch.float64)[:, None] * 2.0  # rows differ
        cases.append(Case(f"{'float32, ' if dtype == torch.float32 else ''}{what}: B={B}, "
                          f"V={V}, k={k}", {"logits": logits.to(dtype), "k": k}))
    ties = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0, -1.0],
                         [0.5, 0.5, 2.0, 0.5, -3.0, 1.0]], dtype=torch.float64)
    cases.append(Case("ties at the k-th largest value (all kept): B=2, V=6, k=3",
                      {"logits": ties, "k": 3}))
    cases.append(Case("ties at the k-th largest value (all kept): B=2, V=6, k=1",
                      {"logits": ties.float(), "k": 1}))
    return cases


def _top_k_smallest_mutant(logits, k):
    threshold = torch.topk(logits, min(k, logits.shape[-1]), dim=-1, largest=False).values
    return logits.masked_fill(logits > threshold[:, -1:], float("-inf"))


def _top_k_global_mutant(logits, k):
    flat = logits.flatten()
    threshold = torch.topk(flat, min(k, flat.numel())).values[-1]
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_global_min_mutant(logits, k):
    threshold = _kth_largest(logits, k).min()
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_global_max_mutant(logits, k):
    threshold = _kth_largest(logits, k).max()
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_row_broadcast_mutant(logits, k):
    threshold = _kth_largest(logits, k)[:, 0]  # (B,): compared along the columns
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_shift_mutant(shift):
    def mutant(logits, k):
        kk = max(1, min(k + shift, logits.shape[-1]))
        threshold = torch.topk(logits, kk, dim=-1).values[:, -1:]
        return logits.masked_fill(logits < threshold, float("-inf"))
    return mutant


def _top_k_strict_mutant(logits, k):
    return logits.masked_fill(logits <= _kth_largest(logits, k), float("-inf"))


def _top_k_fill_mutant(value):
    def mutant(logits, k):
        return logits.masked_fill(logits < _kth_largest(logits, k), value)
    return mutant


def _top_k_fill_min_mutant(logits, k):
    fill = torch.finfo(logits.dtype).min
    return logits.masked_fill(logits < _kth_largest(logits, k), fill)


def _top_k_softmax_mutant(logits, k):
    return torch.softmax(_top_k_reference(logits, k), dim=-1)


def _top_k_log_softmax_mutant(logits, k):
    return torch.log_softmax(_top_k_reference(logits, k), dim=-1)


def _top_k_softmax_first_mutant(logits, k):
    probs = torch.softmax(logits, dim=-1)
    return probs.masked_fill(probs < _kth_largest(probs, k), 0.0)


def _top_k_unclipped_mutant(logits, k):
    threshold = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_exactly_k_mutant(logits, k):
    k = min(k, logits.shape[-1])
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep = keep.scatter(-1, torch.topk(logits, k, dim=-1).indices, True)
    return logits.masked_fill(~keep, float("-inf"))


def _top_k_exactly_k_sorted_mutant(stable_order):
    def mutant(logits, k):
        k = min(k, logits.shape[-1])
        order = torch.argsort(logits, dim=-1, descending=True, stable=True)
        if stable_order == "last":
            order = torch.argsort(logits.flip(-1), dim=-1, descending=True, stable=True)
            order = logits.shape[-1] - 1 - order
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order[:, :k], True)
        return logits.masked_fill(~keep, float("-inf"))
    return mutant


_TOP_K_RECIPE = ("`threshold = torch.topk(logits, min(k, V), dim=-1).values[:, -1:]` (B, 1), "
                 "then `logits.masked_fill(logits < threshold, float('-inf'))`")

_TOP_K_MISTAKES = (
    Mistake(
        "kept the k smallest logits instead of the k largest",
        f"Top-k sampling keeps the k MOST likely tokens: the largest logits. "
        f"`torch.topk` returns the largest by default (`largest=True`), sorted in "
        f"descending order, so the k-th largest is `.values[:, -1:]`. {_TOP_K_RECIPE}.",
        (_top_k_smallest_mutant,),
    ),
    Mistake(
        "one threshold for the whole batch: each row needs its own",
        f"Every row is a separate next-token distribution: its k-th largest logit is "
        f"its own threshold. A threshold from the flattened batch (or its min or max) "
        f"keeps too many tokens in one row and too few in another. {_TOP_K_RECIPE}.",
        (_top_k_global_mutant, _top_k_global_min_mutant, _top_k_global_max_mutant),
    ),
    Mistake(
        "the per-row thresholds were compared along the columns",
        f"`topk(...).values[:, -1]` has shape (B,), and `logits < threshold` broadcasts it "
        f"along the LAST axis: row b's threshold meets column b (or the shapes clash). "
        f"Keep the row axis as a column: `.values[:, -1:]` or `.values[:, -1, None]`, "
        f"shape (B, 1). {_TOP_K_RECIPE}.",
        (_top_k_row_broadcast_mutant,),
    ),
    Mistake(
        "off by one: k - 1 or k + 1 logits kept",
        f"Keep exactly the logits >= the k-th largest: index k - 1 of the descending "
        f"values (`.values[:, k - 1]`, the last of `topk(k)`), compared with `<` (not "
        f"`<=`) for removal. {_TOP_K_RECIPE}.",
        (_top_k_shift_mutant(-1), _top_k_shift_mutant(1), _top_k_strict_mutant),
    ),
    Mistake(
        "the removed logits are not -inf",
        f"A removed token must get probability exactly 0 after the softmax, so its logit "
        f"is `float('-inf')`. A logit of 0 is an ordinary value (e^0 = 1, often larger "
        f"than the kept ones), and a large finite negative number is only nearly "
        f"zero. {_TOP_K_RECIPE}.",
        (_top_k_fill_mutant(0.0), _top_k_fill_mutant(-1e9), _top_k_fill_mutant(-1e4),
         _top_k_fill_min_mutant),
    ),
    Mistake(
        "returned probabilities: top_k_filter returns filtered logits",
        f"The filter works on logits and returns logits (B, V), the kept ones unchanged; "
        f"the softmax (with a temperature) comes afterwards, in the sampler. "
        f"{_TOP_K_RECIPE}.",
        (_top_k_softmax_mutant, _top_k_log_softmax_mutant, _top_k_softmax_first_mutant),
    ),
    Mistake(
        "k larger than the vocabulary must keep every logit",
        f"`torch.topk(logits, k)` fails when k > V: clip it with `min(k, V)`, so that "
        f"k >= V filters nothing. {_TOP_K_RECIPE}.",
        (_top_k_unclipped_mutant,),
    ),
    Mistake(
        "ties at the k-th largest value must all be kept",
        f"The rule is by value: keep every logit >= the k-th largest of its row, so a "
        f"tie at the threshold keeps more than k tokens (as Hugging Face's top-k does). "
        f"Scattering `topk(...).indices` keeps exactly k and drops some of the tied ones "
        f"arbitrarily. {_TOP_K_RECIPE}.",
        (_top_k_exactly_k_mutant, _top_k_exactly_k_sorted_mutant("first"),
         _top_k_exactly_k_sorted_mutant("last")),
    ),
)

_TOP_K = Checker(
    "top_k_sampling", _top_k_cases, _top_k_reference, _TOP_K_MISTAKES,
    outputs=("filtered",), shapes=("(B, V)",),
    error_hint=f"Hint: {_TOP_K_RECIPE}.",
)


def check_top_k_sampling(fn) -> None:
    """Check ``fn(logits, k)`` → ``filtered`` ``(B, V)``, the dtype of ``logits`` ``(B, V)``:
    every logit smaller than the k-th largest logit of its row becomes ``-inf``, the others
    are unchanged. Ties at the k-th largest value are all kept (so a row may keep more than
    k); ``k >= V`` keeps everything (``k >= 1``). ``logits`` must not change. Prints one line
    on success."""
    _TOP_K.check(fn)


# --- relative_position_bucket -------------------------------------------------------------------

def _bucket(relative_position, bidirectional, num_buckets, max_distance, *, sign=1,
            split="halves", spacing="log", clamp=True, dtype=torch.int64, exact_shift=0,
            zero_up=False, rounding="trunc"):
    """The reference with knobs (defaults: Hugging Face's T5 rule)."""
    rp = sign * relative_position
    buckets = torch.zeros_like(rp)
    if bidirectional and split == "halves":  # the reference
        num_buckets //= 2
        positive = rp >= 0 if zero_up else rp > 0
        buckets = buckets + positive.to(torch.int64) * num_buckets  # the upper half
        n = rp.abs()
    elif bidirectional and split in ("abs", "abs halved"):  # no upper half
        num_buckets //= 2 if split == "abs halved" else 1
        n = rp.abs()
    else:  # split == "none": bidirectional ignored
        n = -torch.clamp(rp, max=0)  # only the past: n = query - memory >= 0
    max_exact = num_buckets // 2 + exact_shift
    is_small = n < max_exact
    if spacing == "log":
        scaled = (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                  * (num_buckets - max_exact))
        scaled = scaled.round() if rounding == "round" else scaled
        large = max_exact + scaled.to(torch.int64)
    else:
        large = max_exact + (n - max_exact) * (num_buckets - max_exact) // (
            max_distance - max_exact)
    if clamp:
        large = torch.clamp(large, max=num_buckets - 1)
    return (buckets + torch.where(is_small, n, large)).to(dtype)


def _bucket_reference(relative_position, bidirectional, num_buckets, max_distance):
    rp = relative_position  # memory_position - query_position, int64
    buckets = torch.zeros_like(rp)
    if bidirectional:
        num_buckets //= 2  # half for keys before the query, half for keys after it
        buckets = buckets + (rp > 0).to(torch.int64) * num_buckets
        n = rp.abs()
    else:
        n = -torch.clamp(rp, max=0)  # a causal decoder only looks back: n >= 0
    max_exact = num_buckets // 2  # distances 0 … max_exact - 1 get a bucket each
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float() / max_exact)  # log-spaced up to max_distance
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.int64)
    large = torch.clamp(large, max=num_buckets - 1)  # everything further: the last bucket
    return buckets + torch.where(is_small, n, large)


def _grid(lq, lk):
    """(Lq, Lk): memory_position - query_position."""
    return torch.arange(lk)[None, :] - torch.arange(lq)[:, None]


def _bucket_cases() -> list[Case]:
    span = torch.arange(-300, 301)
    cases = []
    for what, rp, bd, nb, md in (
            ("T5's encoder: a 12 x 12 grid", _grid(12, 12), True, 32, 128),
            ("T5's decoder: a 12 x 12 grid", _grid(12, 12), False, 32, 128),
            ("encoder, distances -300 … 300", span, True, 32, 128),
            ("decoder, distances -300 … 300", span, False, 32, 128),
            ("encoder, 5 queries x 40 keys", _grid(5, 40), True, 16, 32),
            ("decoder, distances -300 … 300", span, False, 8, 20),
            ("encoder, distances -300 … 300", span, True, 64, 256),
            ("cross-shaped grid, 40 queries x 6 keys", _grid(40, 6), True, 32, 64)):
        cases.append(Case(f"{what}: bidirectional={bd}, num_buckets={nb}, max_distance={md}",
                          {"relative_position": rp, "bidirectional": bd, "num_buckets": nb,
                           "max_distance": md}))
    return cases


def _bucket_mutant(**knobs):
    def mutant(relative_position, bidirectional, num_buckets, max_distance):
        return _bucket(relative_position, bidirectional, num_buckets, max_distance, **knobs)
    return mutant


_BUCKET_RECIPE = ("bidirectional: `num_buckets //= 2`, offset `(rp > 0) * num_buckets`, "
                  "`n = rp.abs()`; otherwise `n = -torch.clamp(rp, max=0)`. Then "
                  "`max_exact = num_buckets // 2`; n < max_exact is its own bucket, larger n "
                  "gets max_exact + `(log(n / max_exact) / log(max_distance / max_exact)` "
                  "`* (num_buckets - max_exact)).long()`, clamped to num_buckets - 1")

_BUCKET_MISTAKES = (
    Mistake(
        "the sign is flipped: relative_position = memory - query",
        f"A key AFTER the query has a positive relative position; a causal decoder sees "
        f"only keys before it (relative_position <= 0), so its distance is "
        f"`n = -torch.clamp(relative_position, max=0)`, and in the bidirectional case the "
        f"upper half of the buckets is for rp > 0. {_BUCKET_RECIPE}.",
        (_bucket_mutant(sign=-1),),
    ),
    Mistake(
        "the bidirectional split is missing",
        f"With bidirectional=True, keys before and after the query get separate buckets: "
        f"halve num_buckets, put rp > 0 in the upper half (offset num_buckets // 2) and "
        f"bucket the distance |rp| in each half. {_BUCKET_RECIPE}.",
        (_bucket_mutant(split="none"), _bucket_mutant(split="abs"),
         _bucket_mutant(split="abs halved")),
    ),
    Mistake(
        "a relative position of 0 belongs to the lower half",
        f"Only keys strictly after the query (rp > 0) go to the upper half: the query's "
        f"own position is bucket 0, as in T5. {_BUCKET_RECIPE}.",
        (_bucket_mutant(zero_up=True),),
    ),
    Mistake(
        "linear spacing beyond max_exact: T5's buckets grow logarithmically",
        f"Beyond the exact range the buckets are log-spaced, so that far-away positions "
        f"share wide buckets: max_exact + `log(n / max_exact) / log(max_distance / "
        f"max_exact)` * `(num_buckets - max_exact)`, truncated. {_BUCKET_RECIPE}.",
        (_bucket_mutant(spacing="linear"),),
    ),
    Mistake(
        "no clamp at num_buckets - 1: distances beyond max_distance overflow",
        f"The log formula keeps growing past max_distance; every distance from there on "
        f"shares the last bucket: `torch.clamp(large, max=num_buckets - 1)` (with "
        f"num_buckets already halved when bidirectional). {_BUCKET_RECIPE}.",
        (_bucket_mutant(clamp=False),),
    ),
    Mistake(
        "the buckets must be int64 (torch.long)",
        "Bucket ids index an embedding table, `nn.Embedding(num_buckets, H)`, which needs "
        "int64 indices. Convert the log-spaced part with `.long()` (`.to(torch.long)`) "
        "before combining it with the exact part, and keep the result integer.",
        (_bucket_mutant(dtype=torch.float32), _bucket_mutant(dtype=torch.float64),
         _bucket_mutant(dtype=torch.int32)),
    ),
    Mistake(
        "off by one in the exact range: distances 0 … max_exact - 1 are exact",
        f"`max_exact = num_buckets // 2` (after halving when bidirectional), and the "
        f"exact buckets are the distances n < max_exact (strictly): n = max_exact is the "
        f"first log-spaced one, and its formula gives bucket max_exact too. "
        f"{_BUCKET_RECIPE}.",
        (_bucket_mutant(exact_shift=-1), _bucket_mutant(exact_shift=1)),
    ),
    Mistake(
        "the log-spaced bucket was rounded: truncate it",
        f"T5 converts the scaled logarithm with `.long()` (`.to(torch.long)`), which "
        f"truncates towards 0; `round` moves about half the distances to the next "
        f"bucket. {_BUCKET_RECIPE}.",
        (_bucket_mutant(rounding="round"),),
    ),
)

_BUCKET = Checker(
    "relative_position_bucket", _bucket_cases, _bucket_reference, _BUCKET_MISTAKES,
    outputs=("buckets",), shapes=("(same as relative_position)",),
    error_hint=f"Hint: {_BUCKET_RECIPE}.",
)


def check_relative_position_bucket(fn) -> None:
    """Check ``fn(relative_position, bidirectional, num_buckets, max_distance)`` →
    ``buckets``, int64, the shape of ``relative_position`` (int64, ``memory_position -
    query_position``): T5's bucket of each relative position, exactly as Hugging Face's
    ``T5Attention._relative_position_bucket``. Bidirectional: half the buckets for rp ≤ 0, the
    upper half for rp > 0, each on the distance ``|rp|``; otherwise only ``rp ≤ 0`` counts,
    ``n = max(-rp, 0)``. With ``max_exact = num_buckets // 2`` (of the halved count), ``n <
    max_exact`` is its own bucket; larger ``n`` gets ``max_exact + ⌊log(n / max_exact) /
    log(max_distance / max_exact) · (num_buckets - max_exact)⌋`` (computed in float32),
    clamped to ``num_buckets - 1``. Prints one line on success."""
    _BUCKET.check(fn)


CHECKERS = (_MLM, _TOP_K, _BUCKET)
