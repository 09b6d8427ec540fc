"""Chapter 10: learner-style solutions and wrong answers for the shared harness."""

import math

import torch

from tests.exercises.registry import Exercise

# --- mlm_mask ----------------------------------------------------------------------------------

def mlm_mask(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    special = torch.isin(tokens, special_ids)
    selected = (select_u < 0.15) & ~special
    corrupted = tokens.clone()
    corrupted[selected & (replace_u < 0.8)] = mask_id
    swap = selected & (replace_u >= 0.8) & (replace_u < 0.9)
    corrupted[swap] = random_tokens[swap]
    labels = torch.full_like(tokens, -100)
    labels[selected] = tokens[selected]
    return corrupted, labels


def mlm_mask_where(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    special = (tokens[..., None] == special_ids).any(-1)
    selected = (select_u < 0.15) & ~special
    out = torch.where(selected & (replace_u < 0.9) & (replace_u >= 0.8),
                      random_tokens, tokens)
    out = torch.where(selected & (replace_u < 0.8), mask_id, out)
    labels = torch.where(selected, tokens, -100)
    return out, labels


def mlm_mask_loops(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    specials = set(special_ids.tolist())
    corrupted, labels = tokens.clone(), torch.full_like(tokens, -100)
    B, L = tokens.shape
    for b in range(B):
        for i in range(L):
            if int(tokens[b, i]) in specials or select_u[b, i] >= 0.15:
                continue
            labels[b, i] = tokens[b, i]
            if replace_u[b, i] < 0.8:
                corrupted[b, i] = mask_id
            elif replace_u[b, i] < 0.9:
                corrupted[b, i] = random_tokens[b, i]
    return corrupted, labels


def mlm_masks_specials(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = select_u < 0.15
    corrupted = tokens.clone()
    corrupted[selected & (replace_u < 0.8)] = mask_id
    swap = selected & (replace_u >= 0.8) & (replace_u < 0.9)
    corrupted[swap] = random_tokens[swap]
    return corrupted, torch.where(selected, tokens, -100)


def mlm_all_mask(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = tokens.masked_fill(selected, mask_id)
    return corrupted, torch.where(selected, tokens, -100)


def mlm_swapped_bands(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = torch.where(selected & (replace_u >= 0.9), random_tokens, tokens)
    corrupted = torch.where(selected & (replace_u < 0.8), mask_id, corrupted)
    return corrupted, torch.where(selected, tokens, -100)


def mlm_elif(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    specials = set(special_ids.tolist())
    corrupted, labels = tokens.clone(), torch.full_like(tokens, -100)
    for idx in (select_u < 0.15).nonzero().tolist():
        b, i = idx
        if int(tokens[b, i]) in specials:
            continue
        labels[b, i] = tokens[b, i]
        if replace_u[b, i] < 0.8:
            corrupted[b, i] = mask_id
        elif replace_u[b, i] < 0.1:  # 10 % random
            corrupted[b, i] = random_tokens[b, i]
    return corrupted, labels


def mlm_reversed_bands(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = tokens.clone()
    corrupted[selected & (replace_u < 0.1)] = random_tokens[selected & (replace_u < 0.1)]
    corrupted[selected & (replace_u >= 0.2)] = mask_id  # 0.1 <= u < 0.2: unchanged
    return corrupted, torch.where(selected, tokens, -100)


def mlm_replaces_everywhere(tokens, select_u, replace_u, random_tokens, mask_id,
                            special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = torch.where((replace_u >= 0.8) & (replace_u < 0.9), random_tokens, tokens)
    corrupted = torch.where(replace_u < 0.8, mask_id, corrupted)
    return corrupted, torch.where(selected, tokens, -100)


def mlm_selects_above(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u > 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = torch.where(selected & (replace_u >= 0.8) & (replace_u < 0.9),
                            random_tokens, tokens)
    corrupted = torch.where(selected & (replace_u < 0.8), mask_id, corrupted)
    return corrupted, torch.where(selected, tokens, -100)


def mlm_labels_everywhere(tokens, select_u, replace_u, random_tokens, mask_id,
                          special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = torch.where(selected & (replace_u >= 0.8) & (replace_u < 0.9),
                            random_tokens, tokens)
    corrupted = torch.where(selected & (replace_u < 0.8), mask_id, corrupted)
    return corrupted, tokens.clone()


def mlm_in_place_then_labels(tokens, select_u, replace_u, random_tokens, mask_id,
                             special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    swap = selected & (replace_u >= 0.8) & (replace_u < 0.9)
    tokens[selected & (replace_u < 0.8)] = mask_id  # modifies the caller's tensor
    tokens[swap] = random_tokens[swap]
    labels = torch.where(selected, tokens, -100)  # ... so the labels are corrupted too
    return tokens, labels


def mlm_ignore_zero(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
    selected = (select_u < 0.15) & ~torch.isin(tokens, special_ids)
    corrupted = torch.where(selected & (replace_u >= 0.8) & (replace_u < 0.9),
                            random_tokens, tokens)
    corrupted = torch.where(selected & (replace_u < 0.8), mask_id, corrupted)
    return corrupted, tokens * selected  # zeros where not selected


EXERCISES = [
    Exercise("ch10", "mlm_mask", 5, (mlm_mask, mlm_mask_where, mlm_mask_loops), (
        (mlm_masks_specials, "special tokens were selected"),
        (mlm_all_mask, "every selected token became [MASK]"),
        (mlm_swapped_bands, "bands are swapped"),
        (mlm_elif, "no selected token got a random replacement"),
        (mlm_reversed_bands, "the bands of replace_u are wrong"),
        (mlm_replaces_everywhere, "tokens that were not selected were replaced"),
        (mlm_selects_above, "the selection is wrong"),
        (mlm_labels_everywhere, "labels were set at every position"),
        (mlm_in_place_then_labels, "the labels hold the corrupted token"),
        (mlm_ignore_zero, "must be -100"),
    )),
]


# --- top_k_filter ------------------------------------------------------------------------------

def top_k_filter(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1, None]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_filter_sort(logits, k):
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    k = min(k, logits.shape[1])
    threshold = sorted_logits[:, k - 1:k]
    return torch.where(logits >= threshold, logits, torch.full_like(logits, -math.inf))


def top_k_filter_kthvalue(logits, k):
    V = logits.shape[-1]
    if k >= V:
        return logits.clone()
    # the k-th largest is the (V - k + 1)-th smallest
    threshold = torch.kthvalue(logits, V - k + 1, dim=-1, keepdim=True).values
    out = logits.clone()
    out[out < threshold] = float("-inf")
    return out


def top_k_smallest(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1, largest=False).values[:, -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def top_k_global(logits, k):
    values = torch.sort(logits.flatten(), descending=True).values
    threshold = values[min(k, values.numel()) - 1]
    return logits.masked_fill(logits < threshold, float("-inf"))


def top_k_no_keepdim(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[:, -1]
    return torch.where(logits < kth, float("-inf"), logits)


def top_k_plus_one(logits, k):
    sorted_logits = torch.sort(logits, dim=-1, descending=True).values
    threshold = sorted_logits[:, min(k, logits.shape[-1] - 1)].unsqueeze(-1)
    return logits.masked_fill(logits < threshold, float("-inf"))


def top_k_leq(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[:, [-1]]
    return logits.masked_fill(logits <= kth, float("-inf"))


def top_k_zero(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[:, -1:]
    return torch.where(logits >= kth, logits, torch.zeros_like(logits))


def top_k_softmax(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[:, -1:]
    filtered = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(filtered, dim=-1)


def top_k_unclipped(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_scatter(logits, k):
    k = min(k, logits.size(-1))
    idx = torch.topk(logits, k, dim=-1).indices
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, idx, logits.gather(-1, idx))


EXERCISES.append(
    Exercise("ch10", "top_k_sampling", 10, (top_k_filter, top_k_filter_sort,
                                            top_k_filter_kthvalue), (
        (top_k_smallest, "k smallest"),
        (top_k_global, "one threshold for the whole batch"),
        (top_k_no_keepdim, "compared along the columns"),
        (top_k_plus_one, "off by one"),
        (top_k_leq, "off by one"),
        (top_k_zero, "not -inf"),
        (top_k_softmax, "returned probabilities"),
        (top_k_unclipped, "k larger than the vocabulary"),
        (top_k_scatter, "ties at the k-th largest"),
    ))
)


# --- relative_position_bucket -------------------------------------------------------------------

def bucket(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets = num_buckets // 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)).long()
    val_if_large = val_if_large.clamp(max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, val_if_large)


def bucket_float64(relative_position, bidirectional, num_buckets, max_distance):
    half = num_buckets // 2 if bidirectional else num_buckets
    if bidirectional:
        offset = torch.where(relative_position > 0, half, 0)
        n = torch.abs(relative_position)
    else:
        offset = torch.zeros_like(relative_position)
        n = torch.relu(-relative_position)
    exact = half // 2
    ratio = n.double().clamp(min=1) / exact
    log_part = torch.log(ratio) / math.log(max_distance / exact) * (half - exact)
    large = torch.minimum(exact + log_part.long(), torch.tensor(half - 1))
    return offset + torch.where(n < exact, n, large)


def _hf_like_sign_flipped(relative_position, bidirectional, num_buckets, max_distance):
    return bucket(-relative_position, bidirectional, num_buckets, max_distance)


def bucket_query_minus_memory(relative_position, bidirectional, num_buckets, max_distance):
    rp = -relative_position  # query - memory
    ret = torch.zeros_like(rp)
    if bidirectional:
        num_buckets //= 2
        ret += (rp > 0).long() * num_buckets
        n = rp.abs()
    else:
        n = torch.clamp(-rp, min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, large)


def bucket_abs_only(relative_position, bidirectional, num_buckets, max_distance):
    n = relative_position.abs() if bidirectional else (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return torch.where(n < max_exact, n, large)


def bucket_zero_up(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position >= 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    return ret + torch.where(n < max_exact, n, large.clamp(max=num_buckets - 1))


def bucket_linear(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    step = (max_distance - max_exact) / (num_buckets - max_exact)
    large = max_exact + torch.div(n - max_exact, step, rounding_mode="floor").long()
    large = large.clamp(max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, large)


def bucket_no_clamp(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    return ret + torch.where(n < max_exact, n, large)


def bucket_float(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros(relative_position.shape)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).float() * num_buckets
        n = relative_position.abs().float()
    else:
        n = (-relative_position).clamp(min=0).float()
    max_exact = num_buckets // 2
    large = max_exact + torch.floor(torch.log(n / max_exact)
                                    / math.log(max_distance / max_exact)
                                    * (num_buckets - max_exact))
    large = large.clamp(max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, large)


def bucket_leq_exact(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2 - 1
    large = max_exact + (torch.log(n.float() / max_exact)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return ret + torch.where(n <= max_exact, n, large)


def bucket_rounded(relative_position, bidirectional, num_buckets, max_distance):
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + torch.round(torch.log(n.float() / max_exact)
                                    / math.log(max_distance / max_exact)
                                    * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, large)


EXERCISES.append(
    Exercise("ch10", "relative_position_bucket", 8, (bucket, bucket_float64), (
        (bucket_query_minus_memory, "the sign is flipped"),
        (_hf_like_sign_flipped, "the sign is flipped"),
        (bucket_abs_only, "the bidirectional split is missing"),
        (bucket_zero_up, "a relative position of 0"),
        (bucket_linear, "linear spacing"),
        (bucket_no_clamp, "no clamp"),
        (bucket_float, "must be int64"),
        (bucket_leq_exact, "off by one in the exact range"),
        (bucket_rounded, "rounded"),
    ))
)
