"""Chapter 6: learner-style solutions and wrong answers for the shared harness."""

import torch

from tests.exercises.registry import Exercise

# --- mean_attention_distance -------------------------------------------------------------------

def distance(weights):
    T = weights.shape[-1]
    pos = torch.arange(T, dtype=weights.dtype)
    dist = (pos.view(T, 1) - pos.view(1, T)).abs()  # (T, T)
    return (weights * dist).sum(-1).mean(dim=(0, 2))


def distance_loops(weights):
    B, H, T, _ = weights.shape
    out = torch.zeros(H, dtype=weights.dtype)
    for i in range(T):
        for j in range(T):
            out = out + weights[:, :, i, j].mean(0) * abs(i - j)
    return out / T


def distance_signed(weights):
    T = weights.shape[-1]
    pos = torch.arange(T, dtype=weights.dtype)
    return (weights * (pos[:, None] - pos)).sum(-1).mean(dim=(0, 2))


def distance_signed_keys_minus_queries(weights):
    T = weights.shape[-1]
    i = torch.arange(T, dtype=weights.dtype).unsqueeze(1)
    j = torch.arange(T, dtype=weights.dtype).unsqueeze(0)
    return (weights * (j - i)).sum(-1).mean(dim=(0, 2))


def distance_mean_keys(weights):
    T = weights.shape[-1]
    pos = torch.arange(T, dtype=weights.dtype)
    return (weights * (pos[:, None] - pos).abs()).mean(dim=(0, 2, 3))


def distance_key_index(weights):
    T = weights.shape[-1]
    return (weights @ torch.arange(T, dtype=weights.dtype)).mean(dim=(0, 2))


def distance_argmax(weights):
    T = weights.shape[-1]
    looked_at = weights.argmax(-1)  # (B, H, T)
    return (torch.arange(T) - looked_at).abs().to(weights.dtype).mean(dim=(0, 2))


def distance_mean_heads(weights):
    T = weights.shape[-1]
    pos = torch.arange(T, dtype=weights.dtype)
    return (weights * (pos[:, None] - pos).abs()).sum(-1).mean(dim=(1, 2))


# --- previous_token_score ----------------------------------------------------------------------

def previous(weights, k):
    T = weights.shape[-1]
    i = torch.arange(k, T)
    return weights[:, :, i, i - k].mean(dim=(0, 2))


def previous_diagonal(weights, k):
    return torch.diagonal(weights, -k, 2, 3).mean(dim=(0, 2))


def previous_all_queries(weights, k):
    B, H, T, _ = weights.shape
    score = torch.zeros(B, H, T, dtype=weights.dtype)
    for i in range(k, T):
        score[:, :, i] = weights[:, :, i, i - k]
    return score.mean(dim=(0, 2))


def previous_forward(weights, k):
    T = weights.shape[-1]
    i = torch.arange(k, T)
    return weights[:, :, i - k, i].mean(dim=(0, 2))  # key and query swapped


def previous_off_by_one(weights, k):
    T = weights.shape[-1]
    i = torch.arange(k - 1, T)
    return weights[:, :, i, i - k + 1].mean(dim=(0, 2))


def previous_always_one(weights, k):
    T = weights.shape[-1]
    i = torch.arange(1, T)
    return weights[:, :, i, i - 1].mean(dim=(0, 2))


def previous_summed(weights, k):
    return torch.diagonal(weights, -k, 2, 3).sum(-1).mean(0)


EXERCISES = [
    Exercise("ch06", "mean_attention_distance", 5, (distance, distance_loops), (
        (distance_signed, "the absolute value |i - j| is missing"),
        (distance_signed_keys_minus_queries, "the absolute value |i - j| is missing"),
        (distance_mean_keys, "averaged the weighted distances over the keys"),
        (distance_key_index, "weighted the key's position j"),
        (distance_argmax, "distance to the largest weight (argmax)"),
        (distance_mean_heads, "averaged over the heads instead of over the batch"),
    )),
    Exercise("ch06", "previous_token_score", 6, (previous, previous_diagonal), (
        (previous_all_queries, "counted the first k queries"),
        (previous_forward, "looked k positions forward"),
        (previous_off_by_one, "off by one"),
        (previous_always_one, "ignored k"),
        (previous_summed, "summed over the queries instead of averaging"),
    )),
]


# --- weight_on_partner -------------------------------------------------------------------------

def partner_loops(weights, partner):
    B, H, T, _ = weights.shape
    total, count = torch.zeros(H, dtype=weights.dtype), 0
    for b in range(B):
        for i in range(T):
            j = int(partner[b, i])
            if j >= 0:
                total = total + weights[b, :, i, j]
                count += 1
    return total / count


def partner_masked(weights, partner):
    has = partner >= 0
    idx = torch.where(has, partner, torch.zeros_like(partner))
    picked = torch.gather(weights, 3, idx[:, None, :, None].expand(-1, weights.shape[1], -1, 1))
    picked = picked[..., 0] * has[:, None]
    return picked.sum(dim=(0, 2)) / has.sum()


def partner_count_all(weights, partner):
    B, H, T, _ = weights.shape
    total = torch.zeros(H, dtype=weights.dtype)
    for b in range(B):
        for i in range(T):
            if partner[b, i] >= 0:
                total = total + weights[b, :, i, partner[b, i]]
    return total / (B * T)


def partner_python_index(weights, partner):
    B, H, T, _ = weights.shape
    b = torch.arange(B)[:, None]
    i = torch.arange(T)[None, :]
    picked = weights.permute(0, 2, 1, 3)[b, i, :, partner]  # (B, T, H); -1 = last key
    return picked.mean(dim=(0, 1))


def partner_wrong_axis(weights, partner):
    has = partner >= 0
    idx = partner.clamp(min=0)
    picked = torch.gather(weights, 2, idx[:, None, None, :].expand(-1, weights.shape[1], 1, -1))
    picked = picked[:, :, 0] * has[:, None]
    return picked.sum(dim=(0, 2)) / has.sum()


def partner_per_row(weights, partner):
    rows = []
    for b in range(weights.shape[0]):
        keep = (partner[b] >= 0).nonzero().flatten()
        rows.append(weights[b, :, keep, partner[b, keep]].mean(-1))
    return torch.stack(rows).mean(0)


def partner_sum(weights, partner):
    has = partner >= 0
    idx = torch.where(has, partner, 0)
    picked = torch.gather(weights, 3, idx[:, None, :, None].expand(-1, weights.shape[1], -1, 1))
    return (picked[..., 0] * has[:, None]).sum(dim=(0, 2))


EXERCISES.append(
    Exercise("ch06", "weight_on_partner", 4, (partner_loops, partner_masked), (
        (partner_count_all, "counted the queries without a partner"),
        (partner_python_index, "counted the queries without a partner"),
        (partner_wrong_axis, "read the partner as the query"),
        (partner_per_row, "averaged each sequence first"),
        (partner_sum, "summed the weights instead of averaging"),
    ))
)
