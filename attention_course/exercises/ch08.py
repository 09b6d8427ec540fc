"""Checkers for Chapter 8 (implementation considerations).

- :func:`check_logsumexp` — ``logsumexp(x)``: a numerically stable log-sum-exp over the last
  axis, ``(..., N)`` → ``(...)``, equal to ``torch.logsumexp(x, dim=-1)`` on huge, very
  negative and all ``-inf`` rows
- :func:`check_append_to_cache` — ``append_to_cache(cache_k, cache_v, k, v)``: one decoding step
  with a KV cache, ``(B, H, T_past, Dh)`` and ``(B, H, T_new, Dh)`` → the grown cache
  ``(B, H, T_past + T_new, Dh)`` twice and the new tokens' absolute positions ``(T_new,)``
- :func:`check_checkpoint_plan` — ``checkpoint_plan(num_layers)``: the √N rule of gradient
  checkpointing (Chen et al., 2016), the indices of the layers whose input is stored, ``(K,)``

References: ``torch.logsumexp``, ``torch.cat`` with ``torch.arange`` (what the cache of
:mod:`attention_course.inference` does in one step), and segments of ``s = ceil(sqrt(N))``
layers. The ``_mutant`` functions are a reference with one known mistake each, used only to
recognise the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import math
import numbers

import torch

from attention_course.exercises._framework import Case, Checker, Mistake, Reject, randn

__all__ = ["check_logsumexp", "check_append_to_cache", "check_checkpoint_plan"]

_INF = float("inf")


def _note(dtype: torch.dtype) -> str:
    return "float32, " if dtype == torch.float32 else ""


# --- logsumexp --------------------------------------------------------------------------------

def _lse_reference(x):
    return torch.logsumexp(x, dim=-1)  # (...)


def _rows(g, shape, offsets=None, *, spread=2.0, hidden=0.0, empty_rows=()):
    """``spread`` * normal values ``shape`` (float64), row r shifted by ``offsets[r]`` (rows
    counted over every axis but the last); a fraction ``hidden`` of entries and every row of
    ``empty_rows`` set to -inf."""
    x = spread * randn(g, *shape)
    flat = x.reshape(-1, shape[-1])  # a view: (rows, N)
    if offsets is not None:
        flat += torch.tensor(offsets, dtype=torch.float64)[:, None]
    if hidden:
        flat.masked_fill_(torch.rand(flat.shape, generator=g) < hidden, -_INF)
    for r in empty_rows:
        flat[r] = -_INF
    return x


def _lse_case(description, x, dtype=torch.float64):
    return Case(f"{_note(dtype)}{description}", {"x": x.to(dtype)})


def _lse_cases() -> list[Case]:
    g = torch.Generator().manual_seed(81)
    big, small = 1e4, -1e4
    return [
        _lse_case("ordinary values", _rows(g, (2, 3, 5))),
        _lse_case("some entries -inf (masked)", _rows(g, (4, 7), hidden=0.3)),
        _lse_case("large values, about 1e4: exp overflows", _rows(g, (2, 6), [big, big + 3])),
        _lse_case("very negative values, about -1e4: exp underflows to 0",
                  _rows(g, (3, 4), [small, small - 5, small + 2])),
        _lse_case("rows of very different scale (about 0, 1e4, -1e4, 30)",
                  _rows(g, (4, 4), [0.0, big, small, 30.0])),
        _lse_case("rows 0 and 4 are all -inf", _rows(g, (2, 3, 5), hidden=0.2,
                                                     empty_rows=(0, 4))),
        _lse_case("a single row, no batch axis", _rows(g, (6,), spread=3.0)),
        _lse_case("rows of very different scale, row 2 all -inf",
                  _rows(g, (4, 5), [big, 0.0, 0.0, small], empty_rows=(2,)),
                  dtype=torch.float32),
        _lse_case("large values, about 1e4", _rows(g, (3, 6), [big, big - 2, big + 1]),
                  dtype=torch.float32),
    ]


def _lse(x, *, max_of=None, sum_dim=-1, add_back=1.0, mean=False, guard=True, eps=0.0,
         clamp=None, symmetric=False, out_keepdim=False):
    """The max-shifted log-sum-exp with knobs for each mistake.

    ``max_of(x)`` gives the shift (default: the row max, keepdim); ``guard`` replaces a -inf
    shift by 0; ``clamp`` (no shift at all) clamps x at ``clamp`` from above (and at
    ``-clamp`` from below if ``symmetric``) before exp.
    """
    if clamp is not None:
        x = x.clamp(min=-clamp if symmetric else None, max=clamp)
        return torch.log(torch.exp(x).sum(dim=sum_dim))
    m = x.amax(dim=-1, keepdim=True) if max_of is None else max_of(x)
    if guard:
        m = m.masked_fill(m == -_INF, 0.0)
    e = torch.exp(x - m)
    s = e.mean(dim=sum_dim) if mean else e.sum(dim=sum_dim)
    out = torch.log(s + eps) + add_back * (m.squeeze(-1) if max_of is None else m)
    return out.unsqueeze(-1) if out_keepdim else out


def _lse_no_max_mutant(x):
    return torch.log(torch.exp(x).sum(dim=-1))


def _lse_no_add_back_mutant(x):
    return _lse(x, add_back=0.0)


def _lse_subtract_twice_mutant(x):
    return _lse(x, add_back=-1.0)


def _lse_global_max_mutant(x):
    return _lse(x, max_of=lambda t: t.max())


def _lse_column_max_mutant(x):
    return _lse(x, max_of=lambda t: t.max(dim=0).values)


def _lse_no_keepdim_mutant(x):
    return _lse(x, max_of=lambda t: t.amax(dim=-1))


def _lse_out_keepdim_mutant(x):
    return _lse_reference(x).unsqueeze(-1)


def _lse_dim0_mutant(x):
    return torch.logsumexp(x, dim=0)


def _lse_dim_minus2_mutant(x):
    return torch.logsumexp(x, dim=-2)


def _lse_mean_mutant(x):
    return _lse(x, mean=True)


def _lse_unguarded_mutant(x):
    return _lse(x, guard=False)


def _lse_nan_to_zero_mutant(x):
    return torch.nan_to_num(_lse(x, guard=False), nan=0.0, neginf=-_INF)


def _lse_eps_mutant(eps):
    def mutant(x):
        return _lse(x, eps=eps)
    return mutant


def _lse_clamp_mutant(limit, symmetric):
    def mutant(x):
        return _lse(x, clamp=limit, symmetric=symmetric)
    return mutant


_EPSILONS = (1e-6, 1e-8, 1e-9, 1e-10, 1e-12, 1e-15, 1e-20, 1e-30)  # eps people write
_CLAMPS = (50.0, 80.0, 88.0, 100.0, 500.0, 700.0)  # "exp stays finite below this"

_SHIFT = ("Subtract each row's max before exp and add it back after the log: with "
          "`m = x.amax(dim=-1, keepdim=True)`, logsumexp(x) = m + log(sum(exp(x - m)))")

_LSE_MISTAKES = (
    Mistake(
        "the max was not subtracted before exp",
        f"`exp(x)` overflows to inf for values above about 709 in float64 (88 in float32), "
        f"and underflows to 0 below about -745, so `log(sum(exp(x)))` gives inf or -inf "
        f"where the answer is an ordinary number. {_SHIFT}: every exp is then at most 1 "
        f"and the largest is exactly 1.",
        (_lse_no_max_mutant,),
    ),
    Mistake(
        "clamped x before exp instead of subtracting the max",
        f"A clamp keeps exp finite but changes the numbers: a row around 1e4 comes out near "
        f"the clamp value instead of near 1e4. The max shift changes nothing mathematically. "
        f"{_SHIFT}.",
        tuple(_lse_clamp_mutant(c, s) for c in _CLAMPS for s in (False, True)),
    ),
    Mistake(
        "the max was not added back after the log",
        f"log(sum(exp(x - m))) is logsumexp(x) - m: add m back (with a + sign), squeezed "
        f"to the result's shape (...). {_SHIFT}.",
        (_lse_no_add_back_mutant, _lse_subtract_twice_mutant),
    ),
    Mistake(
        "the max was not taken per row over the last axis",
        "Each row needs its own shift, its max over the last axis: "
        "`m = x.amax(dim=-1, keepdim=True)`. A single max of the whole tensor (or a max "
        "over another axis) lets a row of values around 0 underflow to -inf next to a row "
        "around 1e4, and a per-column max adds back the wrong number.",
        (_lse_global_max_mutant, _lse_column_max_mutant),
    ),
    Mistake(
        "the max lost its last axis (keepdim=False), so x - m broadcast wrongly",
        "`x.amax(dim=-1)` has shape (...): in `x - m` it lines up with the LAST axis of x "
        "(an error, or a silently wrong result when the sizes happen to agree). Keep the "
        "axis, `m = x.amax(dim=-1, keepdim=True)` (..., 1), and squeeze it only when you "
        "add it back: `+ m.squeeze(-1)`.",
        (_lse_no_keepdim_mutant,),
    ),
    Mistake(
        "the result kept the reduced axis: shape (..., 1) instead of (...)",
        "logsumexp reduces the last axis away, like `torch.logsumexp(x, dim=-1)`: sum "
        "without keepdim, and add `m.squeeze(-1)` rather than m (..., 1).",
        (_lse_out_keepdim_mutant,),
    ),
    Mistake(
        "reduced over the wrong axis: the sum runs over the last axis",
        "x is (..., N): the N values of each row are summed, `dim=-1`, for the max and the "
        "sum alike. Any leading axes are batch axes and stay in the result.",
        (_lse_dim0_mutant, _lse_dim_minus2_mutant),
    ),
    Mistake(
        "averaged the exponentials instead of summing them",
        "`.mean(dim=-1)` divides by N, so the result is log N too small: log-sum-exp sums, "
        "`.sum(dim=-1)`.",
        (_lse_mean_mutant,),
    ),
    Mistake(
        "a row that is all -inf did not give -inf",
        "A row of -inf is the log of a sum of zeros: log(0) = -inf, as torch.logsumexp "
        "says. Its max is -inf and `x - m` is `-inf - (-inf) = nan`; replacing the NaN "
        "afterwards (by 0) or adding an eps inside the log gives a finite number instead. "
        "Shift by a safe max, `m = m.masked_fill(m == -inf, 0.0)`: the row then gives "
        "log(0) + 0 = -inf by itself.",
        (_lse_unguarded_mutant, _lse_nan_to_zero_mutant,
         *(_lse_eps_mutant(e) for e in _EPSILONS)),
    ),
)


_LSE = Checker(
    "logsumexp", _lse_cases, _lse_reference, _LSE_MISTAKES,
    outputs=("lse",), shapes=("(...)",),
    error_hint="Hint: `x.max(dim=-1)` returns (values, indices); `x.amax(dim=-1, "
               "keepdim=True)` is just the values, shape (..., 1), ready for `x - m`.",
)


def check_logsumexp(fn) -> None:
    """Check ``fn(x)`` → ``(...)``: ``log(sum_j exp(x[..., j]))`` over the last axis of ``x``
    ``(..., N)``, computed stably: equal to ``torch.logsumexp(x, dim=-1)`` on rows around
    ``1e4`` (``exp`` overflows), around ``-1e4`` (``exp`` underflows), rows of very different
    scale, and rows that are all ``-inf`` (result ``-inf``, not NaN), in float64 and float32.
    Prints one line on success."""
    _LSE.check(fn)


# --- append_to_cache --------------------------------------------------------------------------

def _cache_reference(cache_k, cache_v, k, v):
    T_past, T_new = cache_k.shape[-2], k.shape[-2]
    new_k = torch.cat([cache_k, k], dim=-2)  # (B, H, T_past + T_new, Dh)
    new_v = torch.cat([cache_v, v], dim=-2)  # (B, H, T_past + T_new, Dh)
    return new_k, new_v, torch.arange(T_past, T_past + T_new)  # (T_new,)


def _cache_cases() -> list[Case]:
    g = torch.Generator().manual_seed(82)
    cases = []
    for what, B, H, T_past, T_new, Dh, dtype in (
            ("a decoding step, one new token", 2, 3, 4, 1, 5, torch.float64),
            ("the prompt into an empty cache", 2, 3, 0, 3, 4, torch.float64),
            ("as many new tokens as cached ones", 3, 4, 2, 2, 5, torch.float64),
            ("a decoding step, batch of one", 1, 2, 6, 1, 3, torch.float64),
            ("two new tokens", 2, 4, 3, 2, 6, torch.float32),
            ("one token into an empty cache", 2, 1, 0, 1, 3, torch.float32)):
        tensors = {"cache_k": randn(g, B, H, T_past, Dh, dtype=dtype),
                   "cache_v": randn(g, B, H, T_past, Dh, dtype=dtype),
                   "k": randn(g, B, H, T_new, Dh, dtype=dtype),
                   "v": randn(g, B, H, T_new, Dh, dtype=dtype)}
        sizes = f"B={B}, H={H}, T_past={T_past}, T_new={T_new}, Dh={Dh}"
        cases.append(Case(f"{_note(dtype)}{what}: {sizes}", tensors))
    return cases


def _cat(a, b, dim=-2):
    return torch.cat([a, b], dim=dim)


def _positions(cache_k, k):
    T_past, T_new = cache_k.shape[-2], k.shape[-2]
    return torch.arange(T_past, T_past + T_new)


def _cache_axis_mutant(dim):
    def mutant(cache_k, cache_v, k, v):
        return _cat(cache_k, k, dim), _cat(cache_v, v, dim), _positions(cache_k, k)
    return mutant


def _cache_reversed_mutant(cache_k, cache_v, k, v):
    return _cat(k, cache_k), _cat(v, cache_v), _positions(cache_k, k)


def _cache_dropped_mutant(cache_k, cache_v, k, v):
    return k, v, _positions(cache_k, k)


def _cache_swapped_mutant(cache_k, cache_v, k, v):
    return _cat(cache_v, v), _cat(cache_k, k), _positions(cache_k, k)


def _cache_crossed_mutant(cache_k, cache_v, k, v):
    return _cat(cache_k, v), _cat(cache_v, k), _positions(cache_k, k)


def _with_positions(positions_of):
    def mutant(cache_k, cache_v, k, v):
        T_past, T_new = cache_k.shape[-2], k.shape[-2]
        return _cat(cache_k, k), _cat(cache_v, v), positions_of(T_past, T_new, cache_k)
    return mutant


_cache_from_zero_mutant = _with_positions(lambda T, n, c: torch.arange(n))
_cache_plus_one_mutant = _with_positions(lambda T, n, c: torch.arange(T + 1, T + n + 1))
_cache_minus_one_mutant = _with_positions(lambda T, n, c: torch.arange(T - 1, T + n - 1))
_cache_all_positions_mutant = _with_positions(lambda T, n, c: torch.arange(T + n))
_cache_one_position_mutant = _with_positions(lambda T, n, c: torch.tensor([T]))
_cache_last_position_mutant = _with_positions(lambda T, n, c: torch.tensor([T + n - 1]))


def _cache_length_axis_mutant(axis):
    def positions(T, n, cache_k):
        start = cache_k.shape[axis]
        return torch.arange(start, start + n)
    return _with_positions(positions)


_CACHE_MISTAKES = (
    Mistake(
        "concatenated along the wrong axis: time is axis 2 (dim=-2)",
        "The cache grows along the sequence: (B, H, T_past, Dh) and (B, H, T_new, Dh) give "
        "(B, H, T_past + T_new, Dh) with `torch.cat([cache_k, k], dim=2)` (or dim=-2). "
        "dim=0 stacks batches, dim=1 heads, dim=-1 features.",
        tuple(_cache_axis_mutant(d) for d in (0, 1, 3)),
    ),
    Mistake(
        "the new tokens were put before the cached ones",
        "Position t of the cache must hold token t: the past first, then the new tokens, "
        "`torch.cat([cache_k, k], dim=2)`. With the order reversed, the positions you "
        "return no longer match the rows of the cache.",
        (_cache_reversed_mutant,),
    ),
    Mistake(
        "the cached keys and values were dropped",
        "Return the whole history, old and new: the next step's queries must attend to "
        "every earlier token, so the new cache is (B, H, T_past + T_new, Dh), not just "
        "k and v.",
        (_cache_dropped_mutant,),
    ),
    Mistake(
        "keys and values are mixed up",
        "new_k is built from cache_k and k, new_v from cache_v and v, and they are "
        "returned in the order (new_k, new_v, positions).",
        (_cache_swapped_mutant, _cache_crossed_mutant),
    ),
    Mistake(
        "the positions restart at 0: the offset T_past is missing",
        "The new tokens come after the T_past cached ones: their absolute positions are "
        "T_past, ..., T_past + T_new - 1, `torch.arange(T_past, T_past + T_new)` with "
        "`T_past = cache_k.shape[2]`. A learned position embedding indexed from 0 would "
        "give every generated token the embedding of position 0.",
        (_cache_from_zero_mutant,),
    ),
    Mistake(
        "the positions are off by one",
        "Positions count from 0: the first new token sits at index T_past (there are "
        "T_past tokens before it, at 0 ... T_past - 1). Use "
        "`torch.arange(T_past, T_past + T_new)`.",
        (_cache_plus_one_mutant, _cache_minus_one_mutant),
    ),
    Mistake(
        "returned the positions of every token, not only the new ones",
        "positions is (T_new,): the positions of the tokens in k and v only, "
        "`torch.arange(T_past, T_past + T_new)`. The cached tokens already had theirs.",
        (_cache_all_positions_mutant,),
    ),
    Mistake(
        "returned a single position: T_new can be more than 1",
        "A step may add several tokens at once (the whole prompt into an empty cache): "
        "return one position per new token, `torch.arange(T_past, T_past + T_new)` with "
        "`T_new = k.shape[2]`.",
        (_cache_one_position_mutant, _cache_last_position_mutant),
    ),
    Mistake(
        "T_past was read from the wrong axis of the cache",
        "The cache is (B, H, T_past, Dh): the number of cached tokens is "
        "`cache_k.shape[2]` (or shape[-2]), not the batch, head or feature size.",
        tuple(_cache_length_axis_mutant(a) for a in (0, 1, 3)),
    ),
)


def _as_positions(result, inputs):
    """Integer positions of any integer dtype become int64; float positions are rejected."""
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        return result
    new_k, new_v, positions = result
    if not isinstance(positions, torch.Tensor):
        if isinstance(new_k, torch.Tensor) and isinstance(new_v, torch.Tensor):
            raise Reject(f"`positions` is {type(positions).__name__}, not a tensor; a position "
                         f"embedding is indexed with an integer tensor: return "
                         f"`torch.arange(T_past, T_past + T_new)`")
        return result
    if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise Reject(f"`positions` has dtype {positions.dtype}; positions index an embedding "
                     f"table, so they are integers: `torch.arange(T_past, T_past + T_new)` "
                     f"(int64, without a float dtype)")
    if positions.dtype != torch.int64 and positions.layout == torch.strided \
            and not positions.is_meta:
        positions = positions.long()
    return type(result)((new_k, new_v, positions))


_CACHE = Checker(
    "append_to_cache", _cache_cases, _cache_reference, _CACHE_MISTAKES,
    outputs=("new_k", "new_v", "positions"),
    shapes=("(B, H, T_past + T_new, Dh)", "(B, H, T_past + T_new, Dh)", "(T_new,)"),
    normalise=_as_positions,
    error_hint="Hint: cache_k is (B, H, T_past, Dh) and k is (B, H, T_new, Dh): they agree on "
               "every axis but 2, the one to concatenate along.",
)


def check_append_to_cache(fn) -> None:
    """Check ``fn(cache_k, cache_v, k, v)`` → ``(new_k, new_v, positions)``: one step of a KV
    cache. ``cache_k``, ``cache_v`` ``(B, H, T_past, Dh)`` (``T_past`` may be 0) and the new
    ``k``, ``v`` ``(B, H, T_new, Dh)`` are concatenated along the time axis (old first) into
    ``(B, H, T_past + T_new, Dh)``; ``positions`` ``(T_new,)`` (any integer dtype) holds the
    new tokens' absolute positions ``T_past … T_past + T_new - 1``. The inputs must not change.
    Prints one line on success."""
    _CACHE.check(fn)


# --- checkpoint_plan --------------------------------------------------------------------------

def _segment_length(n: int) -> int:
    """The smallest integer s with s * s >= n: ceil(sqrt(n)), in exact integer arithmetic."""
    return math.isqrt(n - 1) + 1 if n > 1 else 1


def _plan_reference(num_layers):
    s = _segment_length(num_layers)
    return torch.arange(0, num_layers, s)  # (K,): the first layer of every segment


def _plan_cases() -> list[Case]:
    return [Case(f"N={n} layer{'s' * (n != 1)} (sqrt(N) = {math.sqrt(n):.2f})",
                 {"num_layers": n}) for n in (16, 10, 7, 13, 2, 1, 24, 50)]


def _plan(n, s):
    return torch.arange(0, n, s)


def _plan_floor_mutant(num_layers):
    return _plan(num_layers, max(1, math.isqrt(num_layers)))


def _plan_round_mutant(num_layers):
    return _plan(num_layers, max(1, round(math.sqrt(num_layers))))


def _plan_every_layer_mutant(num_layers):
    return torch.arange(num_layers)


def _plan_input_only_mutant(num_layers):
    return torch.tensor([0])


def _plan_nothing_mutant(num_layers):
    return torch.tensor([], dtype=torch.int64)


def _plan_no_zero_mutant(num_layers):
    s = _segment_length(num_layers)
    return torch.arange(s, num_layers, s)


def _plan_segment_ends_mutant(num_layers):
    s = _segment_length(num_layers)
    return torch.arange(s - 1, num_layers, s)


def _plan_with_end_mutant(num_layers):
    s = _segment_length(num_layers)
    return torch.cat([torch.arange(0, num_layers, s), torch.tensor([num_layers])])


def _plan_inclusive_range_mutant(num_layers):
    s = _segment_length(num_layers)
    return torch.arange(0, num_layers + 1, s)


def _plan_segment_count_mutant(num_layers):
    k = _segment_length(num_layers)  # ceil(sqrt(N)) segments ...
    return torch.arange(0, num_layers, max(1, num_layers // k))  # ... of N // k layers


_PLAN_MISTAKES = (
    Mistake(
        "rounded sqrt(N) down or to the nearest integer instead of up",
        "The segment length is s = ceil(sqrt(N)), the smallest integer with s * s >= N: "
        "`math.ceil(math.sqrt(num_layers))` (or `math.isqrt(num_layers - 1) + 1`). With 10 "
        "layers, s = 4 and the plan is [0, 4, 8]; int() and round() give 3.",
        (_plan_floor_mutant, _plan_round_mutant),
    ),
    Mistake(
        "kept every layer's input: that is no checkpointing at all",
        "Storing all N layer inputs is what plain backpropagation does (memory grows like "
        "N). Keep only the first layer of each segment of s = ceil(sqrt(N)) layers: "
        "`range(0, N, s)`.",
        (_plan_every_layer_mutant,),
    ),
    Mistake(
        "kept no checkpoint inside the network",
        "With only the model's input stored (or nothing), the backward pass must recompute "
        "all N layers and hold their activations at once: memory grows like N again. Keep "
        "the first layer of every segment, `range(0, N, s)` with s = ceil(sqrt(N)).",
        (_plan_input_only_mutant, _plan_nothing_mutant),
    ),
    Mistake(
        "layer 0 is missing: the first segment needs its input too",
        "Each segment is recomputed from the stored input of its first layer, and the first "
        "segment starts at layer 0: the plan is `range(0, N, s)`, starting at 0.",
        (_plan_no_zero_mutant,),
    ),
    Mistake(
        "returned the last layer of each segment instead of the first (off by one)",
        "A checkpoint is the INPUT of a segment, stored so the segment can be recomputed: "
        "the indices 0, s, 2s, ... of the first layer of each segment, not s - 1, 2s - 1, "
        "... (whose outputs are those inputs).",
        (_plan_segment_ends_mutant,),
    ),
    Mistake(
        "included N, which is past the last layer",
        "Layers are numbered 0 ... N - 1, and the network's output is not a segment's "
        "input: stop before N, `range(0, N, s)`.",
        (_plan_with_end_mutant, _plan_inclusive_range_mutant),
    ),
    Mistake(
        "made ceil(sqrt(N)) segments of N // ceil(sqrt(N)) layers",
        "The rule fixes the segment LENGTH, s = ceil(sqrt(N)); the number of segments "
        "follows, ceil(N / s). Rounding N / k down makes short segments and one too many "
        "checkpoints (N = 10: k = 4 gives length 2 and [0, 2, 4, 6, 8], not [0, 4, 8]).",
        (_plan_segment_count_mutant,),
    ),
)


def _as_indices(result, inputs):
    """Layer indices as a 1-d int64 tensor: an integer tensor, or a list, tuple or range of
    ints; floats are rejected with a message."""
    if isinstance(result, torch.Tensor):
        if result.numel() == 0 and result.layout == torch.strided and not result.is_meta:
            return result.to(torch.int64)  # torch.tensor([]) is float32
        if result.is_floating_point() or result.is_complex() or result.dtype == torch.bool:
            raise Reject(_float_indices(f"a tensor of dtype {result.dtype}"))
        if result.layout == torch.strided and not result.is_meta:
            return result.to(torch.int64)
        return result
    if isinstance(result, (list, tuple, range)) and not isinstance(result, str):
        items = list(result)
        if all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in items):
            return torch.tensor([int(i) for i in items], dtype=torch.int64)
        if items and all(isinstance(i, numbers.Real) and not isinstance(i, bool)
                         for i in items):
            raise Reject(_float_indices(f"a {type(result).__name__} of floats"))
    return result


def _float_indices(got: str) -> str:
    return (f"it returned {got}; layer indices are integers. Round the segment length to an "
            f"int first, `s = math.ceil(math.sqrt(num_layers))`, then `range(0, num_layers, "
            f"s)`")


_PLAN = Checker(
    "checkpoint_plan", _plan_cases, _plan_reference, _PLAN_MISTAKES,
    outputs=("kept",), shapes=("(K,)",), normalise=_as_indices,
    error_hint="Hint: `s = math.ceil(math.sqrt(num_layers))`, then the layers 0, s, 2s, ... "
               "below num_layers: `list(range(0, num_layers, s))`.",
)


def check_checkpoint_plan(fn) -> None:
    """Check ``fn(num_layers)`` → the indices of the layers whose input is stored by gradient
    checkpointing with the √N rule: the ``N = num_layers`` layers are split into consecutive
    segments of ``s = ceil(sqrt(N))`` layers (the last may be shorter) and the input of the
    first layer of every segment is kept, ``0, s, 2s, … < N``. Accepts a 1-d integer tensor
    or a list, tuple or range of ints. Prints one line on success."""
    _PLAN.check(fn)


CHECKERS = (_LSE, _CACHE, _PLAN)
