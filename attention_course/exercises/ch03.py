"""Checkers for Chapter 3 (self-attention).

- :func:`check_self_attention` — ``self_attention(X, W_Q, W_K, W_V)`` returning
  ``(output, weights)``, with the projections in the math layout ``Q = X @ W_Q``
- :func:`check_causal_mask` — ``causal_mask(query_len, key_len)``, a boolean ``(Lq, Lk)`` mask in
  the course convention (``True`` = may attend), aligned bottom-right
- :func:`check_path_length` — ``path_length(n, window)``, for every position the number of
  stacked local (sliding-window) self-attention layers that information from position 0 needs
  to reach it

References: :func:`attention_course.attention.scaled_dot_product_attention` and
:func:`attention_course.masks.causal_mask`. The ``_mutant`` functions are a reference with one
known mistake each, used only to recognise the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import math
import numbers

import torch

from attention_course.attention import scaled_dot_product_attention, scaled_dot_product_score
from attention_course.exercises._framework import Case, Checker, Mistake, randn
from attention_course.masks import causal_mask, local_mask

__all__ = ["check_self_attention", "check_causal_mask", "check_path_length"]


# --- self-attention from projections ----------------------------------------------------------

def _self_attention_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)

    def case(B, L, D, d_k, d_v, note="", dtype=torch.float64):
        scale = 1 / math.sqrt(D)  # keeps Q, K, V entries of unit size: the softmax stays soft
        return Case(
            f"{note}B={B}, L={L}, D={D}, d_k={d_k}, d_v={d_v}",
            {"X": randn(g, B, L, D, dtype=dtype), "W_Q": randn(g, D, d_k, dtype=dtype) * scale,
             "W_K": randn(g, D, d_k, dtype=dtype) * scale,
             "W_V": randn(g, D, d_v, dtype=dtype) * scale},
        )

    return [
        case(1, 4, 6, 3, 5, "one sequence, all sizes different: "),
        case(2, 5, 8, 2, 4, "batched: "),
        case(3, 6, 4, 8, 3, "batched, projections larger than the model size (d_k > D): "),
        case(2, 4, 5, 3, 3, "batched, keys and values of the same size (d_k = d_v): "),
        case(2, 3, 6, 4, 2, "float32, batched: ", torch.float32),
    ]


def _projections(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_K, X @ W_V  # (B, L, d_k), (B, L, d_k), (B, L, d_v)


def _self_attention_reference(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V))


def _unscaled_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V), scale=1.0)


def _sqrt_model_size_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V),
                                        scale=1 / math.sqrt(X.shape[-1]))


def _sqrt_value_size_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V),
                                        scale=1 / math.sqrt(W_V.shape[-1]))


def _values_are_x_mutant(X, W_Q, W_K, W_V):
    Q, K, _ = _projections(X, W_Q, W_K, W_V)
    return scaled_dot_product_attention(Q, K, X)


def _softmax_over_queries_mutant(X, W_Q, W_K, W_V):
    Q, K, V = _projections(X, W_Q, W_K, W_V)
    weights = torch.softmax(scaled_dot_product_score(Q, K), dim=-2)  # (B, L, L)
    return weights @ V, weights


def _weights_at_keys_mutant(X, W_Q, W_K, W_V):
    Q, K, _ = _projections(X, W_Q, W_K, W_V)
    return scaled_dot_product_attention(Q, K, K)


def _queries_keys_swapped_mutant(X, W_Q, W_K, W_V):
    Q, K, V = _projections(X, W_Q, W_K, W_V)
    return scaled_dot_product_attention(K, Q, V)


def _keys_from_w_q_mutant(X, W_Q, W_K, W_V):
    Q, _, V = _projections(X, W_Q, W_K, W_V)
    return scaled_dot_product_attention(Q, Q, V)


def _queries_from_w_k_mutant(X, W_Q, W_K, W_V):
    _, K, V = _projections(X, W_Q, W_K, W_V)
    return scaled_dot_product_attention(K, K, V)


def _linear_layout_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(X @ W_Q.T, X @ W_K.T, X @ W_V.T)


def _scaled_after_softmax_mutant(X, W_Q, W_K, W_V):
    Q, K, V = _projections(X, W_Q, W_K, W_V)
    weights = torch.softmax(Q @ K.transpose(-2, -1), dim=-1) / math.sqrt(W_Q.shape[-1])
    return weights @ V, weights


def _times_sqrt_dk_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V),
                                        scale=math.sqrt(W_Q.shape[-1]))


def _divided_by_dk_mutant(X, W_Q, W_K, W_V):
    return scaled_dot_product_attention(*_projections(X, W_Q, W_K, W_V),
                                        scale=1 / W_Q.shape[-1])


def _keys_values_swapped_mutant(X, W_Q, W_K, W_V):
    Q, K, V = _projections(X, W_Q, W_K, W_V)
    return _sdpa_any(Q, V, K)


def _sdpa_any(Q, K, V):
    """Attention without the reference's argument checks (mutants may mix up the sizes)."""
    weights = torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), dim=-1)
    return weights @ V, weights


def _swapped_outputs_mutant(X, W_Q, W_K, W_V):
    output, weights = _self_attention_reference(X, W_Q, W_K, W_V)
    return weights, output


_DK = "d_k = W_Q.shape[-1] (= Q.shape[-1]), the size of the query and key vectors"

_SELF_ATTENTION_MISTAKES = (
    Mistake(
        "missing the 1/sqrt(d_k) scaling",
        f"Your weights are softmax(Q K^T) without scaling. Divide the scores by sqrt(d_k), where "
        f"{_DK}; otherwise the softmax saturates as d_k grows (Chapter 2).",
        (_unscaled_mutant,),
    ),
    Mistake(
        "scaled by sqrt(D), the model size, instead of sqrt(d_k)",
        f"You divided by sqrt(X.shape[-1]). The dot product q . k sums d_k products, so its "
        f"spread grows with d_k, not with the size D of the input vectors: {_DK}.",
        (_sqrt_model_size_mutant,),
    ),
    Mistake(
        "scaled by sqrt(d_v), the value size",
        f"You divided by sqrt(W_V.shape[-1]). The values never enter the scores; {_DK}.",
        (_sqrt_value_size_mutant,),
    ),
    Mistake(
        "the values are X itself: W_V was never applied",
        "Your output mixes the input vectors X. Self-attention mixes the *values* V = X @ W_V "
        "(B, L, d_v); the weights stay the same.",
        (_values_are_x_mutant,),
    ),
    Mistake(
        "softmax over the query axis",
        "Your weights sum to 1 down each column (over the queries, dim=-2). In self-attention "
        "queries and keys come from the same sequence, so the score matrix is square (L, L) and "
        "both axes have the same length: make sure you normalise over the *keys*, the last axis "
        "(dim=-1).",
        (_softmax_over_queries_mutant,),
    ),
    Mistake(
        "output computed as weights @ K",
        "The weights are right, but the output must mix the values: `weights @ V` with "
        "V = X @ W_V, not the keys.",
        (_weights_at_keys_mutant,),
    ),
    Mistake(
        "queries and keys swapped",
        "Your scores are K Q^T, the transpose of Q K^T: row i then holds how well *key* i matches "
        "every query. Queries come from W_Q and index the rows: scores = (X @ W_Q) @ "
        "(X @ W_K).transpose(-2, -1).",
        (_queries_keys_swapped_mutant,),
    ),
    Mistake(
        "the same projection used for queries and keys",
        "Your scores are symmetric: Q and K were both computed with W_Q (or both with W_K). "
        "Queries use W_Q and keys use W_K; two different matrices let token i look for something "
        "other than what it offers itself.",
        (_keys_from_w_q_mutant, _queries_from_w_k_mutant),
    ),
    Mistake(
        "multiplied by W.T as if the weights were in nn.Linear layout",
        "Here the weights are in the math layout: W_Q is (D, d_k) and Q = X @ W_Q maps "
        "(B, L, D) to (B, L, d_k) without a transpose. (nn.Linear stores its weight as "
        "(out, in) = W_Q.T, which is why `linear(X)` is `X @ linear.weight.T`.)",
        (_linear_layout_mutant,),
    ),
    Mistake(
        "outputs returned in the wrong order",
        "Return the pair as `(output, weights)`: output (B, L, d_v) first, then weights (B, L, L).",
        (_swapped_outputs_mutant,),
    ),
    Mistake(
        "scaled after the softmax",
        f"You divided the weights by sqrt(d_k), so they no longer sum to 1. Scale the scores "
        f"before the softmax: softmax(Q K^T / sqrt(d_k)), where {_DK}.",
        (_scaled_after_softmax_mutant,),
    ),
    Mistake(
        "multiplied by sqrt(d_k) instead of dividing",
        f"The scores are divided by sqrt(d_k) ({_DK}) to keep their spread near 1; multiplying "
        f"makes the softmax even sharper.",
        (_times_sqrt_dk_mutant,),
    ),
    Mistake(
        "divided by d_k instead of sqrt(d_k)",
        f"The scores should be divided by the *square root* of d_k ({_DK}): dividing by d_k "
        f"itself over-flattens the weights.",
        (_divided_by_dk_mutant,),
    ),
    Mistake(
        "W_K and W_V are swapped",
        "The keys are K = X @ W_K (they enter the scores) and the values V = X @ W_V (they are "
        "mixed into the output). With d_k != d_v exchanging them cannot even multiply; with "
        "d_k == d_v it silently computes the wrong thing.",
        (_keys_values_swapped_mutant,),
    ),
)


_SELF_ATTENTION = Checker(
    "self_attention", _self_attention_cases, _self_attention_reference,
    _SELF_ATTENTION_MISTAKES, outputs=("output", "weights"), shapes=("(B, L, d_v)", "(B, L, L)"),
    error_hint="Hint: X (B, L, D) @ W_Q (D, d_k) -> Q (B, L, d_k); likewise K, and V with "
               "W_V (D, d_v). Then scores = Q @ K.transpose(-2, -1) / sqrt(d_k) -> (B, L, L).",
)


def check_self_attention(fn) -> None:
    """Check ``fn(X, W_Q, W_K, W_V)`` → ``(output (B, L, d_v), weights (B, L, L))``: scaled
    dot-product self-attention with ``Q = X @ W_Q``, ``K = X @ W_K``, ``V = X @ W_V``
    (``X`` ``(B, L, D)``, ``W_Q``/``W_K`` ``(D, d_k)``, ``W_V`` ``(D, d_v)``; no mask; float64
    and float32). Prints one line on success."""
    _SELF_ATTENTION.check(fn)


# --- the causal mask ------------------------------------------------------------------------

def _causal_cases() -> list[Case]:
    sizes = [(5, 5, "square"), (3, 7, "fewer queries than keys"),
             (1, 4, "one new query attending to four keys (a decoding step)"),
             (6, 6, "square"), (2, 3, "fewer queries than keys"), (1, 1, "a single token")]
    return [Case(f"{what}: Lq={q}, Lk={k}", {"query_len": q, "key_len": k})
            for q, k, what in sizes]


def _causal_reference(query_len, key_len):
    return causal_mask(query_len, key_len)  # (Lq, Lk) bool, bottom-right aligned


def _inverted_mutant(query_len, key_len):
    return ~causal_mask(query_len, key_len)


def _inverted_top_left_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).triu(diagonal=1)


def _strict_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril(key_len - query_len - 1)


def _one_future_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril(key_len - query_len + 1)


def _top_left_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril()


def _transposed_mutants():
    def right_comparison(query_len, key_len):  # keys as rows: (Lk, Lq)
        return causal_mask(query_len, key_len).T

    def tril_of_wrong_shape(query_len, key_len):
        return torch.ones(key_len, query_len, dtype=torch.bool).tril(key_len - query_len)

    return right_comparison, tril_of_wrong_shape


def _offset_sign_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril(query_len - key_len)


def _reversed_comparison_mutant(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).triu(key_len - query_len)


def _number_mask_mutants():
    def make(dtype):
        def mutant(query_len, key_len):
            return causal_mask(query_len, key_len).to(dtype)
        return mutant
    return tuple(make(dtype) for dtype in (torch.float32, torch.float64, torch.int64,
                                           torch.int32, torch.uint8))


def _additive_mask_mutants():
    def make(dtype):
        def mutant(query_len, key_len):
            allowed = causal_mask(query_len, key_len)
            return torch.zeros(query_len, key_len, dtype=dtype).masked_fill(~allowed, -math.inf)
        return mutant
    return tuple(make(dtype) for dtype in (torch.float32, torch.float64))


_CAUSAL_MISTAKES = (
    Mistake(
        "mask polarity is inverted (True = blocked, as in nn.MultiheadAttention)",
        "Your mask is True exactly where attention is forbidden. In this course (and in "
        "torch.nn.functional.scaled_dot_product_attention) True means 'may attend': query i may "
        "see key j when j <= i + (Lk - Lq). torch.nn.MultiheadAttention uses the opposite "
        "polarity; convert with attention_course.masks.to_torch_mask only when calling it.",
        (_inverted_mutant, _inverted_top_left_mutant),
    ),
    Mistake(
        "the diagonal is blocked: a token cannot see itself",
        "A causal mask forbids the *future*, not the present: query i may attend to key i "
        "(with Lq == Lk, the diagonal is True). `tril(diagonal=-1)`-style masks also leave the "
        "first query with no key at all.",
        (_strict_mutant,),
    ),
    Mistake(
        "one step of the future is visible",
        "Your mask lets query i see one key beyond its own position. With Lq == Lk the mask is "
        "the lower triangle *including* the diagonal and nothing above it: `tril(diagonal=0)`.",
        (_one_future_mutant,),
    ),
    Mistake(
        "aligned top-left (torch's is_causal convention) instead of bottom-right",
        "With fewer queries than keys the queries are the *last* Lq positions (e.g. new tokens "
        "after a cache of earlier ones), so the last query must see every key: query i may see "
        "key j when j <= i + (Lk - Lq). `tril()` on an (Lq, Lk) matrix aligns the top-left "
        "corner instead; use `tril(diagonal=Lk - Lq)`.",
        (_top_left_mutant,),
    ),
    Mistake(
        "the mask is transposed: (Lk, Lq) with the keys as rows",
        "Rows are queries and columns are keys: the mask has shape (query_len, key_len), and "
        "entry [i, j] says whether query i may attend to key j. Build the query positions as a "
        "column, `torch.arange(query_len)[:, None]`, and the key positions as a row, "
        "`torch.arange(key_len)[None, :]`.",
        _transposed_mutants(),
    ),
    Mistake(
        "the offset has the wrong sign",
        "The queries are the LAST query_len positions, so query i sits at position "
        "i + (Lk - Lq), and it may see key j when j <= i + (Lk - Lq): "
        "`tril(diagonal=key_len - query_len)`. With Lq - Lk the last query no longer sees "
        "every key.",
        (_offset_sign_mutant,),
    ),
    Mistake(
        "the comparison is reversed: queries see the future",
        "Your mask is True for keys at or AFTER each query's position (j >= i, an upper "
        "triangle). Causal attention looks back: key j is allowed when j <= i + (Lk - Lq), "
        "the lower triangle (`tril`, not `triu`).",
        (_reversed_comparison_mutant,),
    ),
    Mistake(
        "a 0/1 number mask instead of a boolean one",
        "Your values are right but stored as numbers. Return dtype torch.bool: the course's "
        "functions (like torch's scaled_dot_product_attention) read a float mask as an additive "
        "bias, so 1.0 would *add* 1 to a score instead of allowing it. Build the mask with "
        "`dtype=torch.bool` or convert with `.bool()`.",
        _number_mask_mutants(),
    ),
    Mistake(
        "an additive float mask (0 / -inf) instead of a boolean one",
        "That is the additive form that nn.Transformer.generate_square_subsequent_mask returns "
        "(0 = allowed, -inf = blocked). The course's masks are boolean, True = may attend; "
        "`attention_course.masks.from_torch_mask` converts an additive mask if you have one.",
        _additive_mask_mutants(),
    ),
)


_CAUSAL = Checker(
    "causal_mask", _causal_cases, _causal_reference, _CAUSAL_MISTAKES,
    outputs=("mask",), shapes=("(Lq, Lk)",),
    error_hint="Hint: torch.ones(query_len, key_len, dtype=torch.bool).tril(diagonal=...) "
               "builds a lower triangle; or compare torch.arange(key_len)[None, :] with "
               "torch.arange(query_len)[:, None].",
)


def check_causal_mask(fn) -> None:
    """Check ``fn(query_len, key_len)`` → a boolean ``(Lq, Lk)`` mask, ``True`` where query ``i``
    may attend to key ``j``, i.e. ``j <= i + (Lk - Lq)`` (aligned bottom-right, as
    :func:`attention_course.masks.causal_mask`), for square masks and fewer queries than keys.
    Prints one line on success."""
    _CAUSAL.check(fn)


# --- path length through stacked local attention ---------------------------------------------

def _path_length_reference(n, window):
    """Follow the attention pattern layer by layer (a breadth-first search from position 0)."""
    local = local_mask(n, window)  # (n, n): keys i - window ... i
    reached = torch.arange(n) == 0  # (n,): after 0 layers, only position 0 holds its information
    layers = torch.where(reached, 0, -1)  # (n,) int64, -1 = not reached yet
    depth = 0
    while not reached.all():
        depth += 1
        reached = (local & reached[None, :]).any(dim=-1)  # i sees some reached key
        layers = torch.where(reached & (layers < 0), depth, layers)
    return layers


def _as_layer_counts(result, inputs=None):
    """A result in a comparable form: integer answers (any integer dtype, or integral floats
    such as ``torch.ceil`` returns) as int64; other floats as float64; a Python or NumPy number
    as a 0-d tensor; anything else unchanged."""
    if isinstance(result, numbers.Number) and not isinstance(result, bool):
        result = torch.tensor(result)
    if not isinstance(result, torch.Tensor) or result.dtype == torch.bool:
        return result
    if result.is_floating_point():
        integral = bool(torch.isfinite(result).all()) and bool((result == result.round()).all())
        return result.long() if integral else result.double()
    return result.long() if not result.is_complex() else result


def _distances(n):
    return torch.arange(n)  # (n,): position j is j steps away from position 0


def _floor_mutant(n, window):
    return _distances(n) // window


def _fraction_mutant(n, window):
    return _distances(n) / window


def _one_too_many_mutant(n, window):
    return _distances(n) // window + 1


def _position_zero_mutant(n, window):
    return torch.ceil(_distances(n) / window).clamp(min=1)


def _full_attention_mutant(n, window):
    return (_distances(n) > 0).long()


def _rnn_mutant(n, window):
    return _distances(n)


def _window_counts_itself_mutant(n, window):
    return torch.ceil(_distances(n) / (window - 1))


def _window_plus_one_mutant(n, window):
    return -(-_distances(n) // (window + 1))


def _last_only_mutant(n, window):
    return torch.tensor(-(-(n - 1) // window))


def _from_the_end_mutant(n, window):
    return -(-_distances(n).flip(0) // window)


_PATH_MISTAKES = (
    Mistake(
        "rounded down instead of up",
        "A layer moves information at most `window` positions, so a distance of j positions "
        "needs at least j / window layers, and since layers come whole, you must round *up*: "
        "`-(-j // window)` or `torch.ceil(j / window)`. Rounding down leaves the last stretch "
        "uncovered.",
        (_floor_mutant,),
    ),
    Mistake(
        "fractional layers: j / window was never rounded",
        "You cannot stack 2.5 layers. The number of layers is the smallest whole number L with "
        "L * window >= j, i.e. j / window rounded up.",
        (_fraction_mutant,),
    ),
    Mistake(
        "one layer too many (counted positions instead of steps)",
        "`j // window + 1` (equivalently ceil((j + 1) / window)) counts the positions on the path, "
        "not the steps between them: it says position 0 needs one layer, and it is one too many "
        "whenever `window` divides j. The distance from position 0 to position j is j steps.",
        (_one_too_many_mutant,),
    ),
    Mistake(
        "position 0 needs no layer",
        "Position 0's own information is already at position 0 before any layer runs, so its "
        "entry is 0; every other entry is ceil(j / window).",
        (_position_zero_mutant,),
    ),
    Mistake(
        "the window is ignored: one layer reaches everything only with full attention",
        "With full self-attention every position sees every other one, so one layer suffices. A "
        "local layer only sees the `window` previous positions: reaching position j takes "
        "ceil(j / window) layers.",
        (_full_attention_mutant,),
    ),
    Mistake(
        "one position per layer, as in an RNN",
        "That is the answer for window = 1 (an RNN also moves information one step at a time). "
        "With a wider window each layer moves information up to `window` positions.",
        (_rnn_mutant,),
    ),
    Mistake(
        "the window was counted as including the query itself",
        "Query i sees keys i - window, ..., i: `window` positions *before* it plus itself, so one "
        "layer moves information `window` steps, not window - 1.",
        (_window_counts_itself_mutant,),
    ),
    Mistake(
        "a layer was taken to move window + 1 steps",
        "Query i sees keys i - window, ..., i: window + 1 positions counting itself, but the "
        "farthest of them is only `window` steps back. So one layer carries information "
        "`window` positions forward: ceil(j / window), not ceil(j / (window + 1)).",
        (_window_plus_one_mutant,),
    ),
    Mistake(
        "only the last position's count was returned",
        "The text derived the last entry, ceil((n - 1) / window); the exercise asks for every "
        "position j at once: a tensor of shape (n,). Apply the same formula to "
        "`torch.arange(n)`.",
        (_last_only_mutant,),
    ),
    Mistake(
        "the distances were counted from the last position",
        "Entry j is about information travelling FROM position 0 TO position j: the distance "
        "is j, so entry 0 is 0 and the counts grow along the tensor. You measured from the "
        "last position (n - 1 - j) instead.",
        (_from_the_end_mutant,),
    ),
)


def _path_length_cases() -> list[Case]:
    sizes = [(10, 3), (9, 2), (13, 4), (7, 1), (6, 10), (1, 2)]
    notes = {(7, 1): " (one step per layer)", (6, 10): " (the window covers the sequence)",
             (1, 2): " (a single position)"}
    return [Case(f"n={n}, window={w}{notes.get((n, w), '')}", {"n": n, "window": w})
            for n, w in sizes]


_PATH = Checker(
    "path_length", _path_length_cases, _path_length_reference, _PATH_MISTAKES,
    outputs=("layers",), shapes=("(n,)",), normalise=_as_layer_counts,
    error_hint="Hint: torch.arange(n) gives every position's distance j from position 0; "
               "work with the whole tensor at once.",
)


def check_path_length(fn) -> None:
    """Check ``fn(n, window)`` → an integer tensor ``(n,)`` whose entry ``j`` is the smallest
    number of stacked causal local self-attention layers (query ``i`` sees keys
    ``i - window, ..., i``) after which the output at position ``j`` depends on the input at
    position 0. Any integer dtype, or whole numbers in a float tensor, is accepted.
    Prints one line on success."""

    _PATH.check(fn)


CHECKERS = (_SELF_ATTENTION, _CAUSAL, _PATH)
