"""Checkers for Chapter 7 (computational complexity and efficient attention).

- :func:`check_online_softmax_update` — ``online_softmax_update(m, l, acc, s, v)``: one step of
  the online softmax of memory-efficient (flash) attention, the running state ``(m, l, acc)``
  ``(..., Lq)``, ``(..., Lq)``, ``(..., Lq, Dv)`` updated with a block of scores ``s``
  ``(..., Lq, Bk)`` and values ``v`` ``(..., Bk, Dv)``
- :func:`check_causal_linear_attention` — ``causal_linear_attention(phi_q, phi_k, v, eps)``:
  causal linear attention with cumulative sums, ``(B, H, L, D)`` features → ``(B, H, L, Dv)``
- :func:`check_attention_flops` — ``attention_flops(n, d_model, num_heads)``: the matrix-product
  FLOPs of one self-attention layer on a sequence of ``n`` tokens (an int)

References: the inner loop of :func:`attention_course.efficient.memory_efficient_attention`
(written out below as one step), :func:`attention_course.efficient.linear_attention` with
``is_causal=True`` and an identity feature map, and the FLOPs that
:func:`attention_course.bench.matmul_flops` counts in a forward pass of
:class:`~attention_course.multihead.MultiHeadAttention` on meta tensors. The ``_mutant``
functions are a reference with one known mistake each, used only to recognise the mistake and
name it. Each checker returns None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_course import bench, efficient, multihead
from attention_course.exercises._framework import (
    Case,
    Checker,
    Mistake,
    randn,
    whole_number,
)

__all__ = ["check_online_softmax_update", "check_causal_linear_attention",
           "check_attention_flops"]

_INF = float("inf")


def _note(dtype: torch.dtype) -> str:
    return "float32, " if dtype == torch.float32 else ""


# --- online_softmax_update --------------------------------------------------------------------

def _online_reference(m, l, acc, s, v):  # noqa: E741 — the paper's name for the running sum
    """One online-softmax step, as in ``efficient._forward`` (there with a trailing 1 on m, l)."""
    m_new = torch.maximum(m, s.amax(dim=-1))  # (..., Lq)
    m_safe = m_new.masked_fill(m_new == -_INF, 0.0)  # a row with no key yet: any finite shift
    p = torch.exp(s - m_safe[..., None])  # (..., Lq, Bk); masked scores give 0
    alpha = torch.exp(m - m_safe)  # (..., Lq): rescales what was summed under the old max
    l_new = alpha * l + p.sum(dim=-1)  # (..., Lq)
    acc_new = alpha[..., None] * acc + p @ v  # (..., Lq, Dv)
    return m_new, l_new, acc_new


def _initial(s, v):
    """The state before any key: ``m = -inf``, ``l = 0``, ``acc = 0``."""
    m = torch.full(s.shape[:-1], -_INF, dtype=s.dtype)  # (..., Lq)
    return m, torch.zeros_like(m), torch.zeros(*s.shape[:-1], v.shape[-1], dtype=s.dtype)


def _online_case(description, g, batch, Lq, Bk, Dv, *, dtype=torch.float64, first=False,
                 offset=0.0, spread=2.0, masked_rows=(), masked_now=(), masked_before=()):
    """A consistent state (after one earlier block, unless ``first``) and a new block.

    ``offset`` is added to every score (1000: overflow without the max); ``masked_rows`` have
    no allowed key in either block, ``masked_before`` none in the earlier block only,
    ``masked_now`` none in the new block only; a random quarter of the other scores is masked
    in masked cases.
    """
    masking = bool(masked_rows or masked_now or masked_before)

    def block(rows_masked):
        s = spread * randn(g, *batch, Lq, Bk) + offset  # float64
        # Some rows' scores are shifted up: there the running max grows.
        s = s + 3.0 * (torch.rand(*batch, Lq, 1, generator=g, dtype=torch.float64) < 0.5)
        if masking:
            hidden = torch.rand(*batch, Lq, Bk, generator=g) < 0.25
            hidden[..., list(rows_masked), :] = True
            s = s.masked_fill(hidden, -_INF)
        return s

    v_old = randn(g, *batch, Bk, Dv)
    s_old = block((*masked_rows, *masked_before))
    s, v = block((*masked_rows, *masked_now)), randn(g, *batch, Bk, Dv)
    state = _initial(s, v) if first else _online_reference(*_initial(s_old, v_old), s_old, v_old)
    inputs = dict(zip(("m", "l", "acc"), state, strict=True)) | {"s": s, "v": v}
    sizes = f"batch {tuple(batch)}, Lq={Lq}, Bk={Bk}, Dv={Dv}"
    return Case(f"{_note(dtype)}{description}: {sizes}",
                {k: x.to(dtype) for k, x in inputs.items()})


def _online_cases() -> list[Case]:
    g = torch.Generator().manual_seed(71)
    return [
        _online_case("state after one block, the max grows in some rows", g, (2, 1), 4, 3, 2),
        _online_case("first block (m = -inf, l = 0, acc = 0)", g, (2, 2), 3, 4, 5, first=True),
        _online_case("state after one block, one batch axis", g, (3,), 5, 2, 3, spread=3.0),
        _online_case("first block, large scores (about 1000)", g, (2, 2), 3, 4, 2, first=True,
                     offset=1000.0),
        _online_case("state after one block, large scores (about 1000)", g, (2,), 4, 5, 3,
                     offset=1000.0),
        _online_case("first block, rows 0 and 2 fully masked (-inf)", g, (2, 1), 4, 3, 2,
                     first=True, masked_rows=(0, 2)),
        _online_case("state after one block; row 1 masked in the first block, row 3 in the new "
                     "one", g, (2,), 4, 5, 3, masked_before=(1,), masked_now=(3,)),
        _online_case("state after one block", g, (2, 2), 3, 4, 5, dtype=torch.float32),
    ]


def _online_parts(m, s):
    m_new = torch.maximum(m, s.amax(dim=-1))
    m_safe = m_new.masked_fill(m_new == -_INF, 0.0)
    return m_new, m_safe, torch.exp(s - m_safe[..., None]), torch.exp(m - m_safe)


def _online_l_not_rescaled_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, p, alpha = _online_parts(m, s)
    return m_new, l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_acc_not_rescaled_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, p, alpha = _online_parts(m, s)
    return m_new, alpha * l + p.sum(dim=-1), acc + p @ v


def _online_nothing_rescaled_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, p, _ = _online_parts(m, s)
    return m_new, l + p.sum(dim=-1), acc + p @ v


def _online_inverted_factor_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, m_safe, p, _ = _online_parts(m, s)
    alpha = torch.exp(m_safe - m)  # exp(m_new - m_old)
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_old_max_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, _, alpha = _online_parts(m, s)
    p = torch.exp(s - m[..., None])  # the max before this block
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_old_max_no_rescale_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, _, _ = _online_parts(m, s)
    p = torch.exp(s - m[..., None])
    return m_new, l + p.sum(dim=-1), acc + p @ v


def _online_no_max_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, _, alpha = _online_parts(m, s)
    p = torch.exp(s)  # no max subtracted
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_no_max_no_rescale_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, _, _, _ = _online_parts(m, s)
    p = torch.exp(s)
    return m_new, l + p.sum(dim=-1), acc + p @ v


def _online_unguarded_mutant(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    p = torch.exp(s - m_new[..., None])  # -inf - (-inf) = NaN in a row with no key yet
    alpha = torch.exp(m - m_new)
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_safe_max_returned_mutant(m, l, acc, s, v):  # noqa: E741
    _, m_safe, p, alpha = _online_parts(m, s)
    return m_safe, alpha * l + p.sum(dim=-1), alpha[..., None] * acc + p @ v


def _online_normalised_mutant(m, l, acc, s, v):  # noqa: E741
    m_new, l_new, acc_new = _online_reference(m, l, acc, s, v)
    return m_new, l_new, acc_new / l_new[..., None]


_RESCALE = ("When the running max grows from m to m_new, everything summed so far was "
            "computed as exp(s - m); multiply it by `alpha = exp(m - m_new)` to put it under "
            "the new max")

_ONLINE_MISTAKES = (
    Mistake(
        "the running sum l was not rescaled",
        f"{_RESCALE}: `l_new = alpha * l + p.sum(-1)`. You rescaled acc but not l, so the "
        f"final acc / l is wrong in every row whose max grew.",
        (_online_l_not_rescaled_mutant,),
    ),
    Mistake(
        "the accumulated output acc was not rescaled",
        f"{_RESCALE}: `acc_new = alpha[..., None] * acc + p @ v`. You rescaled l but not acc, "
        f"so earlier blocks keep too much weight in the output.",
        (_online_acc_not_rescaled_mutant,),
    ),
    Mistake(
        "neither l nor acc was rescaled when the max changed",
        f"{_RESCALE}: `l_new = alpha * l + p.sum(-1)` and `acc_new = alpha[..., None] * acc "
        f"+ p @ v`. Without it the state mixes terms computed under different maxima.",
        (_online_nothing_rescaled_mutant,),
    ),
    Mistake(
        "the rescaling factor is upside down: exp(m_new - m) instead of exp(m - m_new)",
        "The old terms exp(s - m) must become exp(s - m_new) = exp(s - m) * exp(m - m_new). "
        "Since m_new >= m, the factor is at most 1: it shrinks the old sums, never grows "
        "them.",
        (_online_inverted_factor_mutant,),
    ),
    Mistake(
        "exponentiated the new scores with the old max m instead of m_new",
        "Compute m_new = max(m, s.amax(-1)) FIRST, then `p = exp(s - m_new[..., None])`. With "
        "the old max, p can overflow (in the first block m = -inf, so s - m = +inf) and the "
        "state no longer matches the max it stores.",
        (_online_old_max_mutant, _online_old_max_no_rescale_mutant),
    ),
    Mistake(
        "the max was not subtracted before exp",
        "`exp(s)` overflows to inf for scores around 1000 (float64 stops near exp(709)). The "
        "state stores sums relative to the running max: `p = exp(s - m_new[..., None])`, with "
        "every value of p at most 1.",
        (_online_no_max_mutant, _online_no_max_no_rescale_mutant),
    ),
    Mistake(
        "a row with no allowed key so far gives NaN",
        "When every score of a row so far is -inf, m_new = -inf and `s - m_new` is "
        "`-inf - (-inf) = nan`. Subtract a safe max instead, "
        "`m_safe = m_new.masked_fill(m_new == -inf, 0.0)`, in both `exp(s - m_safe)` and "
        "`exp(m - m_safe)`: the row then keeps l = 0 and acc = 0.",
        (_online_unguarded_mutant,),
    ),
    Mistake(
        "returned the safe max (0) as m for a row with no allowed key",
        "Use the guarded max only inside the exponentials; the state's m stays m_new, which "
        "is -inf for a row that has not seen an allowed key yet (the next block then starts "
        "from scratch for it).",
        (_online_safe_max_returned_mutant,),
    ),
    Mistake(
        "acc was divided by l: the state must stay unnormalised",
        "acc is the running sum of exp(s - m) * v, not an average: dividing by l happens once, "
        "after the last block (`output = acc / l`). Return `alpha[..., None] * acc + p @ v`.",
        (_online_normalised_mutant,),
    ),
)


_ONLINE = Checker(
    "online_softmax_update", _online_cases, _online_reference, _ONLINE_MISTAKES,
    outputs=("m", "l", "acc"), shapes=("(..., Lq)", "(..., Lq)", "(..., Lq, Dv)"),
    error_hint="Hint: m and l are (..., Lq) and acc is (..., Lq, Dv): give the per-row "
               "factors a last axis with `[..., None]` before combining them with acc or s.",
)


def check_online_softmax_update(fn) -> None:
    """Check ``fn(m, l, acc, s, v)`` → ``(m_new, l_new, acc_new)``: one online-softmax step.

    ``m`` ``(..., Lq)`` is the running max of the scores seen so far (``-inf`` before any
    allowed key), ``l`` ``(..., Lq)`` the running sum of ``exp(score - m)`` and ``acc``
    ``(..., Lq, Dv)`` the running sum of ``exp(score - m) * value``; ``s`` ``(..., Lq, Bk)``
    holds the next block's scores (``-inf`` = masked key) and ``v`` ``(..., Bk, Dv)`` its
    values. With ``m_new = max(m, s.amax(-1))``: ``l_new = exp(m - m_new) * l + sum_j exp(s_j
    - m_new)`` and ``acc_new = exp(m - m_new) * acc + exp(s - m_new) @ v``; a row with
    ``m_new = -inf`` keeps ``m_new = -inf, l = 0, acc = 0`` (no NaN). Prints one line on
    success.
    """
    _ONLINE.check(fn)


# --- causal_linear_attention ------------------------------------------------------------------

def _identity(x):
    return x


def _linear_reference(phi_q, phi_k, v, eps):
    """The course's causal linear attention on features that are already mapped."""
    return efficient.linear_attention(phi_q, phi_k, v, is_causal=True, feature_map=_identity,
                                      eps=eps)


def _linear_cases() -> list[Case]:
    g = torch.Generator().manual_seed(72)
    cases = []
    for B, H, L, D, Dv, eps, zeros, dtype in ((2, 2, 5, 3, 4, 1e-6, False, torch.float64),
                                              (1, 3, 6, 4, 2, 0.5, False, torch.float64),
                                              (2, 1, 7, 2, 3, 1.0, False, torch.float64),
                                              (2, 2, 4, 5, 3, 0.1, True, torch.float64),
                                              (2, 2, 6, 3, 2, 1e-6, True, torch.float64),
                                              (2, 2, 5, 4, 3, 0.5, False, torch.float32)):
        phi_q = efficient.elu_feature_map(randn(g, B, H, L, D))  # positive features
        phi_k = efficient.elu_feature_map(randn(g, B, H, L, D))
        note = ""
        if zeros:  # relu-like features: the first key (and query) carry nothing
            phi_q, phi_k = F.relu(phi_q - 1.0), F.relu(phi_k - 1.0)
            phi_q[..., 0, :], phi_k[..., 0, :] = 0.0, 0.0
            note = ", relu features with zero rows (the first denominator is 0 without eps)"
        cases.append(Case(f"{_note(dtype)}B={B}, H={H}, L={L}, D={D}, Dv={Dv}, eps={eps:g}{note}",
                          {"phi_q": phi_q.to(dtype), "phi_k": phi_k.to(dtype),
                           "v": randn(g, B, H, L, Dv, dtype=dtype), "eps": eps}))
    return cases


def _prefix_sums(phi_k, v):
    """``S_i = sum_{j<=i} phi(k_j) v_j^T`` ``(B, H, L, D, Dv)`` and ``z_i`` ``(B, H, L, D)``."""
    kv = phi_k[..., :, None] * v[..., None, :]  # (B, H, L, D, Dv)
    return kv.cumsum(dim=2), phi_k.cumsum(dim=2)


def _linear_combine(phi_q, S, z, eps):
    numerator = (phi_q[..., None] * S).sum(dim=-2)  # (B, H, L, Dv)
    denominator = (phi_q * z).sum(dim=-1, keepdim=True)  # (B, H, L, 1)
    return numerator / (denominator + eps)


def _linear_non_causal_mutant(phi_q, phi_k, v, eps):
    return efficient.linear_attention(phi_q, phi_k, v, feature_map=_identity, eps=eps)


def _linear_exclusive_mutant(phi_q, phi_k, v, eps):
    S, z = _prefix_sums(phi_k, v)
    kv = phi_k[..., :, None] * v[..., None, :]
    return _linear_combine(phi_q, S - kv, z - phi_k, eps)  # j < i


def _linear_no_normaliser_mutant(phi_q, phi_k, v, eps):
    S, _ = _prefix_sums(phi_k, v)
    return (phi_q[..., None] * S).sum(dim=-2)


def _linear_full_normaliser_mutant(phi_q, phi_k, v, eps):
    S, _ = _prefix_sums(phi_k, v)
    z = phi_k.sum(dim=2, keepdim=True).expand_as(phi_k)  # every key, not the prefix
    return _linear_combine(phi_q, S, z, eps)


def _linear_count_normaliser_mutant(phi_q, phi_k, v, eps):
    S, _ = _prefix_sums(phi_k, v)
    L = phi_q.shape[-2]
    count = torch.arange(1, L + 1, dtype=phi_q.dtype)[:, None]  # (L, 1): i + 1 keys
    return (phi_q[..., None] * S).sum(dim=-2) / (count + eps)


def _linear_no_eps_mutant(phi_q, phi_k, v, eps):
    return _linear_reference(phi_q, phi_k, v, 0.0)


def _linear_eps_in_z_mutant(phi_q, phi_k, v, eps):
    S, z = _prefix_sums(phi_k, v)
    return _linear_combine(phi_q, S, z + eps, 0.0)  # phi(q)^T (z + eps)


def _linear_eps_after_mutant(phi_q, phi_k, v, eps):
    return _linear_reference(phi_q, phi_k, v, 0.0) + eps


def _linear_eps_clamp_mutant(phi_q, phi_k, v, eps):
    S, z = _prefix_sums(phi_k, v)
    numerator = (phi_q[..., None] * S).sum(dim=-2)
    return numerator / (phi_q * z).sum(dim=-1, keepdim=True).clamp_min(eps)


def _linear_cumsum_features_mutant(phi_q, phi_k, v, eps):
    kv = phi_k[..., :, None] * v[..., None, :]  # (B, H, L, D, Dv)
    return _linear_combine(phi_q, kv.cumsum(dim=-2), phi_k.cumsum(dim=2), eps)  # over D


def _linear_cumsum_values_mutant(phi_q, phi_k, v, eps):
    kv = phi_k[..., :, None] * v[..., None, :]
    return _linear_combine(phi_q, kv.cumsum(dim=-1), phi_k.cumsum(dim=2), eps)  # over Dv


def _linear_z_features_mutant(phi_q, phi_k, v, eps):
    S, _ = _prefix_sums(phi_k, v)
    return _linear_combine(phi_q, S, phi_k.cumsum(dim=-1), eps)  # z over D


def _linear_mapped_twice_mutant(phi_q, phi_k, v, eps):
    phi = efficient.elu_feature_map
    return _linear_reference(phi(phi_q), phi(phi_k), v, eps)


_LINEAR_MISTAKES = (
    Mistake(
        "not causal: every query summed over all the keys",
        "Query i may only see keys j <= i. Replace the sums over the whole sequence by "
        "running sums along the sequence axis: `torch.cumsum(..., dim=2)` of the outer "
        "products phi(k_j) v_j^T (B, H, L, D, Dv) and of phi(k_j) (B, H, L, D).",
        (_linear_non_causal_mutant,),
    ),
    Mistake(
        "off by one: the prefix leaves out the query's own key (j < i)",
        "The causal sums run over j <= i: position i attends to itself too. torch.cumsum is "
        "inclusive already; do not subtract the current term or shift the sums by one.",
        (_linear_exclusive_mutant,),
    ),
    Mistake(
        "the normaliser is missing",
        "Linear attention divides by phi(q_i)^T z_i + eps, where z_i = sum_{j<=i} phi(k_j): "
        "it plays the part of softmax's denominator, so that the weights of each query sum "
        "to 1.",
        (_linear_no_normaliser_mutant,),
    ),
    Mistake(
        "the normaliser does not use the same causal prefix as the numerator",
        "Numerator and denominator must sum over the same keys j <= i: z_i = "
        "`phi_k.cumsum(dim=2)`, then `(phi_q * z).sum(-1, keepdim=True) + eps`. Summing every "
        "key (or dividing by the number of keys i + 1) does not give weights that sum to 1.",
        (_linear_full_normaliser_mutant, _linear_count_normaliser_mutant),
    ),
    Mistake(
        "eps is missing from the denominator",
        "Divide by phi(q_i)^T z_i + eps: when the features can be 0 (e.g. relu) the "
        "denominator can be 0, and 0 / 0 is NaN. The checker passes eps as an argument: "
        "use it.",
        (_linear_no_eps_mutant,),
    ),
    Mistake(
        "eps is in the wrong place",
        "Add eps once, to the scalar denominator after the dot product: "
        "`(phi_q * z).sum(-1, keepdim=True) + eps`, as `efficient.linear_attention` does. "
        "Not to z before the dot product, not to the output, and not as a clamp.",
        (_linear_eps_in_z_mutant, _linear_eps_after_mutant, _linear_eps_clamp_mutant),
    ),
    Mistake(
        "the cumulative sum runs over a feature axis, not the sequence",
        "The prefix is over positions, axis 2 of both (B, H, L, D, Dv) and (B, H, L, D). In "
        "the 5-d tensor of outer products dim=-2 is D, not L: write `dim=2`.",
        (_linear_cumsum_features_mutant, _linear_cumsum_values_mutant,
         _linear_z_features_mutant),
    ),
    Mistake(
        "applied the feature map again: phi_q and phi_k are already features",
        "The inputs are phi(Q) and phi(K), positive already; use them as they are (no "
        "`elu(x) + 1` inside the function).",
        (_linear_mapped_twice_mutant,),
    ),
)


_LINEAR = Checker(
    "causal_linear_attention", _linear_cases, _linear_reference, _LINEAR_MISTAKES,
    outputs=("output",), shapes=("(B, H, L, Dv)",), rtol=1e-6, atol=1e-8,
    error_hint="Hint: `phi_k[..., :, None] * v[..., None, :]` is (B, H, L, D, Dv); its "
               "`cumsum(dim=2)` is S_i. Contract it with phi_q over D (e.g. "
               "`torch.einsum('bhld,bhlde->bhle', phi_q, S)`).",
)


def check_causal_linear_attention(fn) -> None:
    """Check ``fn(phi_q, phi_k, v, eps)`` → ``(B, H, L, Dv)``: causal linear attention
    ``o_i = phi_q_i^T S_i / (phi_q_i^T z_i + eps)`` with the prefix sums
    ``S_i = sum_{j<=i} phi_k_j v_j^T`` and ``z_i = sum_{j<=i} phi_k_j``, for features
    ``phi_q``, ``phi_k`` ``(B, H, L, D)`` (already mapped), values ``v`` ``(B, H, L, Dv)`` and
    a float ``eps``; equal to ``efficient.linear_attention(..., is_causal=True)``. Prints one
    line on success."""
    _LINEAR.check(fn)


# --- attention_flops --------------------------------------------------------------------------

def _flops_cases() -> list[Case]:
    sizes = ((16, 8, 2), (10, 12, 3), (64, 16, 4), (7, 6, 1), (96, 32, 8), (20, 64, 4))
    return [Case(f"n={n} tokens, d_model={D}, {H} head{'s' * (H > 1)} of size {D // H}",
                 {"n": n, "d_model": D, "num_heads": H}) for n, D, H in sizes]


def _flops_reference(n, d_model, num_heads):
    """The FLOPs torch's counter sees in one forward pass (meta tensors: no data, no time)."""
    with torch.device("meta"):  # no memory, no initialisation, no use of the random generator
        module = multihead.MultiHeadAttention(d_model, num_heads)
        x = torch.empty(1, n, d_model)
    return torch.tensor(sum(bench.matmul_flops(module, x, x, x).values()))


def _flops(value) -> torch.Tensor:
    return torch.tensor(int(value))


def _flops_multiply_adds_mutant(n, d_model, num_heads):
    return _flops(4 * n * d_model**2 + 2 * n * n * d_model)


def _flops_one_product_mutant(n, d_model, num_heads):
    return _flops(8 * n * d_model**2 + 2 * n * n * d_model)


def _flops_no_projections_mutant(n, d_model, num_heads):
    return _flops(4 * n * n * d_model)


def _flops_no_output_mutant(n, d_model, num_heads):
    return _flops(6 * n * d_model**2 + 4 * n * n * d_model)


def _flops_d_squared_mutant(n, d_model, num_heads):
    return _flops(8 * n * d_model**2 + 4 * n * d_model**2)  # n d^2 for the scores too


def _flops_full_heads_mutant(n, d_model, num_heads):
    return _flops(8 * n * d_model**2 + 4 * num_heads * n * n * d_model)


def _flops_one_head_mutant(n, d_model, num_heads):
    return _flops(8 * n * d_model**2 + 4 * n * n * (d_model // num_heads))


def _flops_head_projections_mutant(n, d_model, num_heads):
    Dh = d_model // num_heads
    return _flops(6 * n * d_model * Dh + 2 * n * d_model**2 + 4 * n * n * d_model)


_FLOPS_MISTAKES = (
    Mistake(
        "counted a multiply-add as 1 FLOP instead of 2",
        "An (a, b) @ (b, c) product does a*b*c multiply-adds: 2*a*b*c FLOPs, one multiply "
        "and one add each, as torch's FlopCounterMode counts them. Your total is half.",
        (_flops_multiply_adds_mutant,),
    ),
    Mistake(
        "one of the two attention products (QK^T or AV) is missing",
        "Attention multiplies twice: the scores Q K^T ((n, Dh) @ (Dh, n) per head) and the "
        "output A V ((n, n) @ (n, Dh)), 2*n*n*Dh FLOPs each, per head.",
        (_flops_one_product_mutant,),
    ),
    Mistake(
        "the projections W_Q, W_K, W_V, W_O are missing",
        "The layer also projects the n tokens four times, (n, D) @ (D, D) each: "
        "4 * 2*n*D*D FLOPs on top of the attention products.",
        (_flops_no_projections_mutant,),
    ),
    Mistake(
        "the output projection W_O is missing",
        "Besides W_Q, W_K and W_V, the concatenated heads go through W_O, one more "
        "(n, D) @ (D, D) product: 2*n*D*D FLOPs.",
        (_flops_no_output_mutant,),
    ),
    Mistake(
        "the attention products were counted as n*d^2 instead of n^2*d",
        "Q K^T compares every query with every key: (n, Dh) @ (Dh, n) costs n*n*Dh "
        "multiply-adds, quadratic in the length. It is the projections that cost n*D*D.",
        (_flops_d_squared_mutant,),
    ),
    Mistake(
        "every head was counted at the full width d_model",
        "Each head works on Dh = d_model / num_heads features: its two products cost "
        "`2 * 2*n*n*Dh`, and the H heads together `4*n*n*D`, whatever num_heads is.",
        (_flops_full_heads_mutant,),
    ),
    Mistake(
        "only one head's attention products were counted",
        "There are num_heads heads, each with its own Q K^T and A V of 2*n*n*Dh FLOPs: "
        "multiply by num_heads (the total, 4*n*n*D, does not depend on num_heads).",
        (_flops_one_head_mutant,),
    ),
    Mistake(
        "W_Q, W_K and W_V were counted for one head only",
        "W_Q, W_K and W_V produce the queries, keys and values of all the heads at once: "
        "each is (D, D), 2*n*D*D FLOPs, not (D, Dh).",
        (_flops_head_projections_mutant,),
    ),
)


_FLOPS = Checker(
    "attention_flops", _flops_cases, _flops_reference, _FLOPS_MISTAKES,
    outputs=("flops",), shapes=("()",), normalise=whole_number("FLOPs"),
    error_hint="Hint: list the matrix products of the layer with their shapes (four "
               "projections, then Q K^T and A V in every head) and add 2*a*b*c for each "
               "(a, b) @ (b, c).",
)


def check_attention_flops(fn) -> None:
    """Check ``fn(n, d_model, num_heads)`` → an int: the FLOPs of the matrix products in one
    forward pass of ``MultiHeadAttention(d_model, num_heads)`` used for self-attention on one
    sequence of ``n`` tokens — the projections W_Q, W_K, W_V, W_O and, in every head, ``QKᵀ``
    and ``AV`` — counting 2 FLOPs per multiply-add and nothing else (no softmax, scaling or
    biases), as :func:`attention_course.bench.matmul_flops` does. Prints one line on success.
    """
    _FLOPS.check(fn)


CHECKERS = (_ONLINE, _LINEAR, _FLOPS)
