"""Chapter 7: learner-style solutions and wrong answers for the shared harness."""

import numpy as np
import torch
import torch.nn.functional as F

from tests.exercises.registry import Exercise

# --- online_softmax_update ---------------------------------------------------------------------

def online(m, l, acc, s, v):  # noqa: E741
    m_new = torch.max(m, s.max(dim=-1).values)
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    p = (s - shift.unsqueeze(-1)).exp()
    scale = (m - shift).exp()
    l_new = scale * l + p.sum(-1)
    acc_new = scale.unsqueeze(-1) * acc + torch.matmul(p, v)
    return m_new, l_new, acc_new


def online_einsum(m, l, acc, s, v):  # noqa: E741
    block_max = s.amax(-1)
    new_max = torch.maximum(m, block_max)
    finite = torch.nan_to_num(new_max, neginf=0.0)  # a row that saw no key yet
    weights = torch.exp(s - finite[..., None])
    correction = torch.exp(m - finite)
    new_l = l * correction + weights.sum(-1)
    new_acc = acc * correction[..., None] + torch.einsum("...qk,...kd->...qd", weights, v)
    return new_max, new_l, new_acc


def online_forgot_l(m, l, acc, s, v):  # noqa: E741
    m_new = torch.max(m, s.max(dim=-1).values)
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(s - shift[..., None])
    correction = torch.exp(m - shift)
    return m_new, l + p.sum(-1), correction[..., None] * acc + p @ v


def online_forgot_acc(m, l, acc, s, v):  # noqa: E741
    m_new = torch.max(m, s.max(dim=-1).values)
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(s - shift[..., None])
    correction = torch.exp(m - shift)
    return m_new, correction * l + p.sum(-1), acc + p @ v


def online_forgot_both(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(-1))
    safe = torch.nan_to_num(m_new, neginf=0.0)
    p = torch.exp(s - safe[..., None])
    return m_new, l + p.sum(-1), acc + p @ v


def online_factor_inverted(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(-1))
    safe = torch.nan_to_num(m_new, neginf=0.0)
    p = torch.exp(s - safe[..., None])
    grow = torch.exp(safe - m)
    return m_new, grow * l + p.sum(-1), grow[..., None] * acc + p @ v


def online_old_max(m, l, acc, s, v):  # noqa: E741
    p = torch.exp(s - m[..., None])  # before the max is updated
    m_new = torch.maximum(m, s.amax(-1))
    safe = torch.nan_to_num(m_new, neginf=0.0)
    c = torch.exp(m - safe)
    return m_new, c * l + p.sum(-1), c[..., None] * acc + p @ v


def online_old_max_plain_sums(m, l, acc, s, v):  # noqa: E741
    p = torch.exp(s - m.unsqueeze(-1))
    return torch.maximum(m, s.amax(-1)), l + p.sum(-1), acc + p @ v


def online_no_max(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(-1))
    safe = torch.nan_to_num(m_new, neginf=0.0)
    c = torch.exp(m - safe)
    e = torch.exp(s)
    return m_new, c * l + e.sum(-1), c[..., None] * acc + e @ v


def online_plain_sums(m, l, acc, s, v):  # noqa: E741
    e = s.exp()  # just accumulate the exponentials
    return torch.maximum(m, s.amax(-1)), l + e.sum(-1), acc + e @ v


def online_nan_rows(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(-1))
    p = torch.exp(s - m_new[..., None])
    c = torch.exp(m - m_new)
    return m_new, c * l + p.sum(-1), c[..., None] * acc + p @ v


def online_returns_safe_max(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(-1))
    m_new = torch.where(m_new == float("-inf"), 0.0, m_new)  # overwrites the state's max
    p = torch.exp(s - m_new[..., None])
    c = torch.exp(m - m_new)
    return m_new, c * l + p.sum(-1), c[..., None] * acc + p @ v


def online_normalised(m, l, acc, s, v):  # noqa: E741
    m_new, l_new, acc_new = online(m, l, acc, s, v)
    return m_new, l_new, acc_new / l_new[..., None]


EXERCISES = [
    Exercise("ch07", "online_softmax_update", 8, (online, online_einsum), (
        (online_forgot_l, "the running sum l was not rescaled"),
        (online_forgot_acc, "the accumulated output acc was not rescaled"),
        (online_forgot_both, "neither l nor acc was rescaled"),
        (online_factor_inverted, "the rescaling factor is upside down"),
        (online_old_max, "with the old max m instead of m_new"),
        (online_old_max_plain_sums, "with the old max m instead of m_new"),
        (online_no_max, "the max was not subtracted before exp"),
        (online_plain_sums, "the max was not subtracted before exp"),
        (online_nan_rows, "a row with no allowed key so far gives NaN"),
        (online_returns_safe_max, "returned the safe max (0) as m"),
        (online_normalised, "acc was divided by l"),
    )),
]


# --- causal_linear_attention -------------------------------------------------------------------

def linear_cumsum(phi_q, phi_k, v, eps):
    kv = torch.einsum("bhld,bhle->bhlde", phi_k, v)
    S = kv.cumsum(dim=2)  # (B, H, L, D, Dv)
    z = phi_k.cumsum(dim=2)  # (B, H, L, D)
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    den = torch.einsum("bhld,bhld->bhl", phi_q, z).unsqueeze(-1) + eps
    return num / den


def linear_loop(phi_q, phi_k, v, eps):
    B, H, L, D = phi_q.shape
    S = torch.zeros(B, H, D, v.shape[-1], dtype=v.dtype)
    z = torch.zeros(B, H, D, dtype=v.dtype)
    out = []
    for i in range(L):
        S = S + phi_k[:, :, i, :, None] * v[:, :, i, None, :]
        z = z + phi_k[:, :, i]
        q = phi_q[:, :, i]
        out.append((q[..., None] * S).sum(-2) / ((q * z).sum(-1, keepdim=True) + eps))
    return torch.stack(out, dim=2)


def linear_all_keys(phi_q, phi_k, v, eps):
    S = phi_k.transpose(-1, -2) @ v  # (B, H, D, Dv): every key
    z = phi_k.sum(dim=2)
    return (phi_q @ S) / ((phi_q @ z.unsqueeze(-1)) + eps)


def linear_exclusive(phi_q, phi_k, v, eps):
    kv = torch.einsum("bhld,bhle->bhlde", phi_k, v)
    S = F.pad(kv.cumsum(2), (0, 0, 0, 0, 1, 0))[:, :, :-1]  # shifted: keys j < i
    z = F.pad(phi_k.cumsum(2), (0, 0, 1, 0))[:, :, :-1]
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    return num / (torch.einsum("bhld,bhld->bhl", phi_q, z)[..., None] + eps)


def linear_unnormalised(phi_q, phi_k, v, eps):
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    return torch.einsum("bhld,bhlde->bhle", phi_q, S)


def linear_full_z(phi_q, phi_k, v, eps):
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    z = phi_k.sum(2, keepdim=True)  # all keys
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    return num / ((phi_q * z).sum(-1, keepdim=True) + eps)


def linear_mean(phi_q, phi_k, v, eps):
    L = phi_q.shape[2]
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    n = torch.arange(1, L + 1, dtype=v.dtype).view(L, 1)
    return num / (n + eps)


def linear_no_eps(phi_q, phi_k, v, eps):
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    z = phi_k.cumsum(2)
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    return num / (phi_q * z).sum(-1, keepdim=True)


def linear_eps_on_z(phi_q, phi_k, v, eps):
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    z = phi_k.cumsum(2) + eps
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    return num / (phi_q * z).sum(-1, keepdim=True)


def linear_eps_clamped(phi_q, phi_k, v, eps):
    S = torch.einsum("bhld,bhle->bhlde", phi_k, v).cumsum(2)
    z = phi_k.cumsum(2)
    num = torch.einsum("bhld,bhlde->bhle", phi_q, S)
    return num / torch.clamp((phi_q * z).sum(-1, keepdim=True), min=eps)


def linear_cumsum_minus_two(phi_q, phi_k, v, eps):
    kv = phi_k.unsqueeze(-1) * v.unsqueeze(-2)  # (B, H, L, D, Dv)
    S = kv.cumsum(dim=-2)  # "the sequence axis"
    z = phi_k.cumsum(dim=-2)
    num = (phi_q.unsqueeze(-1) * S).sum(-2)
    return num / ((phi_q * z).sum(-1, keepdim=True) + eps)


def linear_remapped(phi_q, phi_k, v, eps):
    q, k = F.elu(phi_q) + 1, F.elu(phi_k) + 1
    return linear_cumsum(q, k, v, eps)


EXERCISES.append(
    Exercise("ch07", "causal_linear_attention", 6, (linear_cumsum, linear_loop), (
        (linear_all_keys, "not causal"),
        (linear_exclusive, "off by one"),
        (linear_unnormalised, "the normaliser is missing"),
        (linear_full_z, "the normaliser does not use the same causal prefix"),
        (linear_mean, "the normaliser does not use the same causal prefix"),
        (linear_no_eps, "eps is missing"),
        (linear_eps_on_z, "eps is in the wrong place"),
        (linear_eps_clamped, "eps is in the wrong place"),
        (linear_cumsum_minus_two, "the cumulative sum runs over a feature axis"),
        (linear_remapped, "applied the feature map again"),
    ))
)


# --- attention_flops ---------------------------------------------------------------------------

def flops(n, d_model, num_heads):
    head = d_model // num_heads
    projections = 4 * (2 * n * d_model * d_model)  # Q, K, V and the output
    scores = num_heads * 2 * n * n * head  # Q K^T in every head
    mix = num_heads * 2 * n * head * n  # A V in every head
    return projections + scores + mix


def flops_numpy(n, d_model, num_heads):
    return np.int64(8 * n * d_model**2 + 4 * n**2 * d_model)


def flops_macs(n, d_model, num_heads):
    return 4 * n * d_model * d_model + 2 * n * n * d_model


def flops_scores_only(n, d_model, num_heads):
    return 8 * n * d_model * d_model + 2 * n * n * d_model


def flops_attention_only(n, d_model, num_heads):
    return 4 * n * n * d_model


def flops_qkv_only(n, d_model, num_heads):
    return 3 * 2 * n * d_model**2 + 4 * n**2 * d_model


def flops_linear_in_n(n, d_model, num_heads):
    return 8 * n * d_model**2 + 2 * 2 * n * d_model**2


def flops_per_head_full(n, d_model, num_heads):
    per_head = 2 * n * n * d_model + 2 * n * n * d_model
    return 8 * n * d_model**2 + num_heads * per_head


def flops_single_head(n, d_model, num_heads):
    dh = d_model // num_heads
    return 8 * n * d_model**2 + 2 * (2 * n * n * dh)


def flops_head_sized_qkv(n, d_model, num_heads):
    dh = d_model // num_heads
    return 3 * 2 * n * d_model * dh + 2 * n * d_model**2 + 4 * n**2 * d_model


EXERCISES.append(
    Exercise("ch07", "attention_flops", 6, (flops, flops_numpy), (
        (flops_macs, "counted a multiply-add as 1 FLOP"),
        (flops_scores_only, "one of the two attention products"),
        (flops_attention_only, "the projections W_Q, W_K, W_V, W_O are missing"),
        (flops_qkv_only, "the output projection W_O is missing"),
        (flops_linear_in_n, "counted as n*d^2 instead of n^2*d"),
        (flops_per_head_full, "every head was counted at the full width"),
        (flops_single_head, "only one head's attention products"),
        (flops_head_sized_qkv, "counted for one head only"),
    ))
)
