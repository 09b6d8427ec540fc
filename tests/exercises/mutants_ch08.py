"""Chapter 8: learner-style solutions and wrong answers for the shared harness."""

import math

import torch

from tests.exercises.registry import Exercise

# --- logsumexp ---------------------------------------------------------------------------------

def lse(x):
    m = x.amax(dim=-1, keepdim=True)
    m = m.masked_fill(torch.isinf(m), 0.0)  # a row of -inf: shift by 0
    return torch.log(torch.exp(x - m).sum(dim=-1)) + m.squeeze(-1)


def lse_where(x):
    m, _ = torch.max(x, dim=-1)  # (...)
    safe = torch.where(m == float("-inf"), torch.zeros_like(m), m)
    total = torch.sum(torch.exp(x - safe.unsqueeze(-1)), dim=-1)
    return safe + total.log()


def lse_naive(x):
    return x.exp().sum(-1).log()


def lse_clamped(x):
    return torch.log(torch.sum(torch.exp(torch.clamp(x, max=80)), dim=-1))


def lse_clamped_both_sides(x):
    return torch.exp(x.clamp(-88, 88)).sum(-1).log()


def lse_forgot_max(x):
    m = x.amax(-1, keepdim=True)
    m = torch.nan_to_num(m, neginf=0.0)
    return torch.log(torch.exp(x - m).sum(-1))


def lse_minus_max(x):
    m = x.amax(-1, keepdim=True)
    m = torch.nan_to_num(m, neginf=0.0)
    return torch.log(torch.exp(x - m).sum(-1)) - m.squeeze(-1)


def lse_global_max(x):
    m = x.max()
    return m + torch.log(torch.exp(x - m).sum(dim=-1))


def lse_column_max(x):
    m = x.max(dim=0).values
    m = torch.where(torch.isinf(m), 0.0, m)
    return torch.log(torch.exp(x - m).sum(dim=-1)) + m


def lse_no_keepdim(x):
    m = torch.amax(x, dim=-1)
    m = torch.where(m == float("-inf"), 0.0, m)
    return torch.log(torch.sum(torch.exp(x - m), dim=-1)) + m


def lse_keepdim_out(x):
    m = x.amax(dim=-1, keepdim=True)
    m = m.masked_fill(m == float("-inf"), 0)
    return torch.log(torch.exp(x - m).sum(dim=-1, keepdim=True)) + m


def lse_first_axis(x):
    m = x.amax(dim=0, keepdim=True)
    m = m.masked_fill(m == float("-inf"), 0)
    return torch.log(torch.exp(x - m).sum(dim=0)) + m.squeeze(0)


def lse_mean(x):
    m = x.amax(dim=-1, keepdim=True)
    m = m.masked_fill(m == float("-inf"), 0)
    return torch.log(torch.exp(x - m).mean(dim=-1)) + m.squeeze(-1)


def lse_nan_rows(x):
    m = x.max(dim=-1, keepdim=True).values
    return (x - m).exp().sum(-1).log() + m[..., 0]


def lse_nan_patched(x):
    m = x.max(dim=-1, keepdim=True).values
    out = (x - m).exp().sum(-1).log() + m[..., 0]
    return torch.where(torch.isnan(out), torch.zeros_like(out), out)


def lse_eps(x):
    m = x.amax(-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    return torch.log(torch.exp(x - m).sum(-1) + 1e-12) + m.squeeze(-1)


EXERCISES = [
    Exercise("ch08", "logsumexp", 9, (lse, lse_where), (
        (lse_naive, "the max was not subtracted before exp"),
        (lse_clamped, "clamped x before exp"),
        (lse_clamped_both_sides, "clamped x before exp"),
        (lse_forgot_max, "the max was not added back"),
        (lse_minus_max, "the max was not added back"),
        (lse_global_max, "the max was not taken per row"),
        (lse_column_max, "the max was not taken per row"),
        (lse_no_keepdim, "the max lost its last axis"),
        (lse_keepdim_out, "the result kept the reduced axis"),
        (lse_first_axis, "reduced over the wrong axis"),
        (lse_mean, "averaged the exponentials"),
        (lse_nan_rows, "a row that is all -inf did not give -inf"),
        (lse_nan_patched, "a row that is all -inf did not give -inf"),
        (lse_eps, "a row that is all -inf did not give -inf"),
    )),
]


# --- append_to_cache ---------------------------------------------------------------------------

def cache(cache_k, cache_v, k, v):
    past = cache_k.shape[2]
    new_k = torch.cat((cache_k, k), dim=2)
    new_v = torch.cat((cache_v, v), dim=2)
    return new_k, new_v, torch.arange(past, past + k.shape[2])


def cache_preallocated(cache_k, cache_v, k, v):
    B, H, T_past, Dh = cache_k.shape
    T_new = k.size(-2)
    new_k = cache_k.new_zeros(B, H, T_past + T_new, Dh)
    new_v = torch.zeros_like(new_k)
    new_k[:, :, :T_past], new_k[:, :, T_past:] = cache_k, k
    new_v[:, :, :T_past], new_v[:, :, T_past:] = cache_v, v
    positions = torch.arange(T_new, dtype=torch.int32) + T_past
    return new_k, new_v, positions


def cache_heads_axis(cache_k, cache_v, k, v):
    past = cache_k.shape[2]
    return (torch.cat([cache_k, k], dim=1), torch.cat([cache_v, v], dim=1),
            torch.arange(past, past + k.shape[2]))


def cache_feature_axis(cache_k, cache_v, k, v):
    past = cache_k.shape[-2]
    return (torch.cat([cache_k, k], -1), torch.cat([cache_v, v], -1),
            torch.arange(past, past + k.shape[-2]))


def cache_batch_axis(cache_k, cache_v, k, v):
    past = cache_k.shape[-2]
    return (torch.cat([cache_k, k]), torch.cat([cache_v, v]),
            torch.arange(past, past + k.shape[-2]))


def cache_new_first(cache_k, cache_v, k, v):
    past = cache_k.shape[2]
    return (torch.cat([k, cache_k], dim=2), torch.cat([v, cache_v], dim=2),
            torch.arange(past, past + k.shape[2]))


def cache_only_new(cache_k, cache_v, k, v):
    past = cache_k.shape[2]
    return k, v, torch.arange(past, past + k.shape[2])


def cache_swapped(cache_k, cache_v, k, v):
    new_k, new_v, positions = cache(cache_k, cache_v, k, v)
    return new_v, new_k, positions


def cache_from_zero(cache_k, cache_v, k, v):
    new_k, new_v, _ = cache(cache_k, cache_v, k, v)
    return new_k, new_v, torch.arange(k.shape[2])


def cache_plus_one(cache_k, cache_v, k, v):
    new_k, new_v, _ = cache(cache_k, cache_v, k, v)
    past = cache_k.shape[2]
    return new_k, new_v, torch.arange(past + 1, past + k.shape[2] + 1)


def cache_every_position(cache_k, cache_v, k, v):
    new_k, new_v, _ = cache(cache_k, cache_v, k, v)
    return new_k, new_v, torch.arange(new_k.shape[2])


def cache_one_position(cache_k, cache_v, k, v):
    new_k, new_v, _ = cache(cache_k, cache_v, k, v)
    return new_k, new_v, torch.tensor([cache_k.shape[2]])


def cache_length_from_dim1(cache_k, cache_v, k, v):
    new_k, new_v, _ = cache(cache_k, cache_v, k, v)
    past = cache_k.size(1)  # thinking of (B, T, H, Dh)
    return new_k, new_v, torch.arange(past, past + k.size(2))


EXERCISES.append(
    Exercise("ch08", "append_to_cache", 6, (cache, cache_preallocated), (
        (cache_heads_axis, "concatenated along the wrong axis"),
        (cache_feature_axis, "concatenated along the wrong axis"),
        (cache_batch_axis, "concatenated along the wrong axis"),
        (cache_new_first, "the new tokens were put before the cached ones"),
        (cache_only_new, "the cached keys and values were dropped"),
        (cache_swapped, "keys and values are mixed up"),
        (cache_from_zero, "the positions restart at 0"),
        (cache_plus_one, "the positions are off by one"),
        (cache_every_position, "the positions of every token"),
        (cache_one_position, "returned a single position"),
        (cache_length_from_dim1, "T_past was read from the wrong axis"),
    ))
)


# --- checkpoint_plan ---------------------------------------------------------------------------

def plan(num_layers):
    s = math.ceil(math.sqrt(num_layers))
    return list(range(0, num_layers, s))


def plan_loop(num_layers):
    s = 1
    while s * s < num_layers:
        s += 1
    kept, layer = [], 0
    while layer < num_layers:
        kept.append(layer)
        layer += s
    return torch.tensor(kept)


def plan_int(num_layers):
    s = int(math.sqrt(num_layers))
    return list(range(0, num_layers, s))


def plan_round(num_layers):
    s = round(num_layers ** 0.5)
    return torch.arange(0, num_layers, s)


def plan_everything(num_layers):
    return list(range(num_layers))


def plan_input_only(num_layers):
    return [0]


def plan_empty(num_layers):
    return []


def plan_without_zero(num_layers):
    s = math.ceil(math.sqrt(num_layers))
    return list(range(s, num_layers, s))


def plan_segment_outputs(num_layers):
    s = math.ceil(math.sqrt(num_layers))
    return [i for i in range(num_layers) if (i + 1) % s == 0]


def plan_with_output(num_layers):
    s = math.ceil(math.sqrt(num_layers))
    return list(range(0, num_layers, s)) + [num_layers]


def plan_segment_count(num_layers):
    segments = math.ceil(math.sqrt(num_layers))
    size = num_layers // segments
    return list(range(0, num_layers, size))


EXERCISES.append(
    Exercise("ch08", "checkpoint_plan", 8, (plan, plan_loop), (
        (plan_int, "rounded sqrt(N) down or to the nearest integer"),
        (plan_round, "rounded sqrt(N) down or to the nearest integer"),
        (plan_everything, "kept every layer's input"),
        (plan_input_only, "kept no checkpoint inside the network"),
        (plan_empty, "kept no checkpoint inside the network"),
        (plan_without_zero, "layer 0 is missing"),
        (plan_segment_outputs, "the last layer of each segment"),
        (plan_with_output, "included N"),
        (plan_segment_count, "segments of N // ceil(sqrt(N)) layers"),
    ))
)
