"""Chapter 4: learner-style solutions and wrong answers for the shared harness."""

import numpy as np
import torch
from torch import nn

from tests.exercises.registry import Exercise

# --- split_heads -------------------------------------------------------------------------------

def split_heads(x, num_heads):
    B, L, D = x.shape
    return x.reshape(B, L, num_heads, D // num_heads).permute(0, 2, 1, 3)


def split_heads_chunks(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)  # (B, H, L, Dh)


def sizes(x, H):
    B, L, D = x.shape
    return B, L, H, D // H


def split_view_only(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, H, L, Dh)


def split_no_transpose(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, L, H, Dh)


def split_transpose_1_3(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, L, H, Dh).transpose(1, 3)


def split_transpose_last_two(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, L, H, Dh).transpose(-1, -2)


def split_batch_second(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, L, H, Dh).permute(1, 0, 2, 3)


def split_heads_transposed(x, H):
    B, L, H, Dh = sizes(x, H)
    return x.view(B, L, H, Dh).permute(0, 2, 3, 1)


def split_sizes_swapped(x, H):
    B, L, D = x.shape
    return x.view(B, L, -1, H).transpose(1, 2)  # -1 = Dh groups of H


def split_strided(x, H):
    return torch.stack([x[..., h::H] for h in range(H)], dim=1)  # features h, h+H, ...


def split_folded(x, H):
    B, L, D = x.shape
    return x.view(B, L, H, D // H).transpose(1, 2).contiguous().view(B * H, L, D // H)


def split_transpose_first(x, H):
    B, L, D = x.shape
    return x.transpose(1, 2).contiguous().view(B, H, L, D // H)


def split_stack_default(x, H):
    return torch.stack(torch.split(x, x.shape[-1] // H, dim=2))


def split_chunk_positions(x, H):
    return torch.stack(torch.chunk(x, H, dim=1), dim=1)


# --- merge_heads -------------------------------------------------------------------------------

def merge_heads(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)


def merge_heads_einops_style(x):
    B, H, L, Dh = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(B, L, H * Dh)


def merge_reshape_only(x):
    B, H, L, Dh = x.shape
    return x.reshape(B, L, -1)


def merge_interleaved(x):
    return torch.stack(x.unbind(1), dim=-1).flatten(-2)  # (B, L, Dh, H) -> (B, L, Dh*H)


def merge_transpose_2_3(x):
    B, H, L, Dh = x.shape
    return x.transpose(2, 3).reshape(B, L, H * Dh)


def merge_transpose_batch(x):
    B, H, L, Dh = x.shape
    return x.transpose(0, 1).reshape(B, L, H * Dh)


def merge_cat_positions(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=1)


def merge_cat_batch(x):
    return torch.cat(list(x.unbind(1)))


def merge_not_flattened(x):
    return x.permute(0, 2, 1, 3)


def merge_summed(x):
    return x.sum(dim=1)


def merge_averaged(x):
    return torch.stack(x.unbind(1)).mean(0)


def merge_view_after_transpose(x):
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).view(B, L, H * Dh)


def merge_flatten_1(x):
    return x.permute(0, 2, 1, 3).flatten(start_dim=1)


def merge_sequence_first(x):
    B, H, L, Dh = x.shape
    return x.permute(2, 0, 1, 3).reshape(L, B, -1)


# --- parameter_count ---------------------------------------------------------------------------

def parameter_count(d_model, num_heads, bias):
    head_dim = d_model // num_heads
    per_head = 3 * (d_model * head_dim + (head_dim if bias else 0))  # W_i^Q, W_i^K, W_i^V
    output = d_model * d_model + (d_model if bias else 0)  # W_O
    return num_heads * per_head + output


def parameter_count_torch(d_model, num_heads, bias):
    m = nn.MultiheadAttention(d_model, num_heads, bias=bias, device="meta")
    return torch.tensor(sum(p.numel() for p in m.parameters()))  # a 0-d int tensor is fine


def parameter_count_numpy(d_model, num_heads, bias):
    return np.int64(4 * d_model * d_model + 4 * d_model * int(bias))


def count_without_output(d_model, num_heads, bias):
    return 3 * (d_model * d_model + (d_model if bias else 0))


def count_without_biases(d_model, num_heads, bias):
    return 4 * d_model * d_model


def count_bias_always(d_model, num_heads, bias):
    return 4 * (d_model * d_model + d_model)


def count_full_heads(d_model, num_heads, bias):
    one_head = 4 * d_model * d_model + (4 * d_model if bias else 0)
    return num_heads * one_head


def count_full_qkv_shared_output(d_model, num_heads, bias):
    qkv = num_heads * 3 * (d_model * d_model + (d_model if bias else 0))
    return qkv + d_model * d_model + (d_model if bias else 0)


def count_bias_per_head(d_model, num_heads, bias):
    weights = 4 * d_model**2
    return weights + (num_heads * 4 * d_model if bias else 0)


def count_one_head(d_model, num_heads, bias):
    Dh = d_model // num_heads
    b = 1 if bias else 0
    return 3 * (d_model * Dh + b * Dh) + d_model * d_model + b * d_model


def count_head_sized(d_model, num_heads, bias):
    Dh = d_model // num_heads
    per_head = 3 * (Dh * Dh + (Dh if bias else 0))
    return num_heads * per_head + d_model * d_model + (d_model if bias else 0)


def count_output_without_bias(d_model, num_heads, bias):
    qkv = 3 * (d_model * d_model + (d_model if bias else 0))
    return qkv + d_model * d_model


EXERCISES = [
    Exercise("ch04", "split_heads", 6, (split_heads, split_heads_chunks), (
        (split_view_only, "reshaped straight to (B, H, L, Dh) without a transpose"),
        (split_no_transpose, "the transpose is missing: the result is (B, L, H, Dh)"),
        (split_transpose_1_3, "transposed the wrong axes"),
        (split_transpose_last_two, "transposed the wrong axes"),
        (split_batch_second, "transposed the wrong axes"),
        (split_heads_transposed, "each head's matrix is transposed: the result is (B, H, Dh, L)"),
        (split_sizes_swapped, "the number of heads and the head size are swapped in the view"),
        (split_strided, "the number of heads and the head size are swapped in the view"),
        (split_folded, "the heads were folded into the batch"),
        (split_transpose_first, "transposed before splitting the features"),
        (split_stack_default, "stacked in front of the batch"),
        (split_chunk_positions, "the positions were split instead of the features"),
    )),
    Exercise("ch04", "merge_heads", 5, (merge_heads, merge_heads_einops_style), (
        (merge_reshape_only, "reshaped without transposing first"),
        (merge_interleaved, "the heads' features are interleaved"),
        (merge_transpose_2_3, "transposed the wrong axes"),
        (merge_transpose_batch, "transposed the wrong axes"),
        (merge_cat_positions, "concatenated along the wrong axis"),
        (merge_cat_batch, "concatenated along the wrong axis"),
        (merge_not_flattened, "the head axis was never flattened"),
        (merge_summed, "the heads were summed or averaged instead of concatenated"),
        (merge_averaged, "the heads were summed or averaged instead of concatenated"),
        (merge_view_after_transpose, "used .view on a transposed tensor"),
        (merge_flatten_1, "flattened the wrong axes"),
        (merge_sequence_first, "the result is sequence-first"),
    )),
    Exercise("ch04", "parameter_count", 6,
             (parameter_count, parameter_count_torch, parameter_count_numpy), (
        (count_without_output, "the output projection W_O is missing"),
        (count_without_biases, "the biases are missing"),
        (count_bias_always, "biases counted although bias=False"),
        (count_full_heads, "every head was given full (D, D) matrices"),
        (count_full_qkv_shared_output, "every head was given full (D, D) matrices"),
        (count_bias_per_head, "a bias of size d_model was counted for every head"),
        (count_one_head, "only one head's projections were counted"),
        (count_head_sized, "each head's projections were counted as (Dh, Dh)"),
        (count_output_without_bias, "the output projection's bias is missing"),
    )),
]
