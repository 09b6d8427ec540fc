"""Chapter 5: learner-style solutions and wrong answers for the shared harness."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from tests.exercises.registry import Exercise

# --- sinusoidal encoding -----------------------------------------------------------------------

def sinusoidal_encoding(max_len, d_model):
    pe = torch.zeros(max_len, d_model)  # float32, torch's default: accepted
    position = torch.arange(max_len).unsqueeze(1).float()  # (N, 1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def sinusoidal_encoding_loops(max_len, d_model):
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            pe[pos, 2 * i], pe[pos, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


def encoding_with(max_len, d_model, *, freq, start=0, layout="interleaved", first=torch.sin,
                  second=None):
    """A learner's encoding; ``freq(i, j)`` gives the frequency of column j (pair index i)."""
    if second is None:
        second = torch.cos if first is torch.sin else torch.sin
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        p = pos + start
        for j in range(d_model):
            if layout == "interleaved":
                i, use_first = j // 2, j % 2 == 0
            else:
                i, use_first = j % (d_model // 2), j < d_model // 2
            angle = torch.tensor(p * freq(i, j), dtype=torch.float64)  # float32: too coarse
            pe[pos, j] = (first if use_first else second)(angle)  # for angles of ~1e4 rad
    return pe


def correct_freq(d):
    return lambda i, j: 10000 ** (-2 * i / d)


def enc_swapped(n, d):
    return encoding_with(n, d, freq=correct_freq(d), first=torch.cos)


def enc_pair_index(n, d):
    return encoding_with(n, d, freq=lambda i, j: 10000 ** (-i / d))


def enc_column_index(n, d):
    return encoding_with(n, d, freq=lambda i, j: 1 / 10000 ** (j / d))


def enc_multiplied(n, d):
    return encoding_with(n, d, freq=lambda i, j: 10000 ** (2 * i / d))


def enc_halves(n, d):
    return encoding_with(n, d, freq=correct_freq(d), layout="halves")


def enc_from_one(n, d):
    return encoding_with(n, d, freq=correct_freq(d), start=1)


def enc_transposed(n, d):
    return sinusoidal_encoding(n, d).T


def enc_sin_twice(max_len, d_model):
    pe = sinusoidal_encoding(max_len, d_model)
    pe[:, 1::2] = pe[:, 0::2]  # copy-paste: sin in the odd columns too
    return pe


def enc_integer_division(max_len, d_model):
    two_i = torch.arange(0, d_model, 2)
    freq = 10000.0 ** (-(two_i // d_model))  # integer division: always 0
    angles = torch.arange(max_len)[:, None] * freq
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = angles.sin(), angles.cos()
    return pe


def enc_max_len_exponent(n, d):
    return encoding_with(n, d, freq=lambda i, j: 10000 ** (-2 * i / n))


# --- sublayer ----------------------------------------------------------------------------------

def sublayer(x, block, norm, norm_first):
    if norm_first:
        return x + block(norm(x))
    return norm(x + block(x))


def sub_always_post(x, block, norm, norm_first):
    return norm(x + block(x))


def sub_always_pre(x, block, norm, norm_first):
    h = norm(x)
    return x + block(h)


def sub_swapped(x, block, norm, norm_first):
    return norm(x + block(x)) if norm_first else x + block(norm(x))


def sub_no_residual(x, block, norm, norm_first):
    return block(norm(x)) if norm_first else norm(block(x))


def sub_branch_only(x, block, norm, norm_first):
    if norm_first:
        return x + block(norm(x))
    return x + norm(block(x))


def sub_normalised_residual(x, block, norm, norm_first):
    if norm_first:
        x = norm(x)
        return x + block(x)
    return norm(x + block(x))


def sub_twice(x, block, norm, norm_first):
    y = x + block(norm(x)) if norm_first else x + block(x)
    return norm(y) if not norm_first else norm(y)


def sub_functional_norm(x, block, norm, norm_first):  # a LayerNorm without weight and bias
    ln = lambda h: F.layer_norm(h, h.shape[-1:])  # noqa: E731
    return x + block(ln(x)) if norm_first else ln(x + block(x))


def sub_fresh_layer_norm(x, block, norm, norm_first):
    ln = nn.LayerNorm(x.shape[-1], dtype=x.dtype)  # a new module, not the given one
    return x + block(ln(x)) if norm_first else ln(x + block(x))


def sub_no_norm(x, block, norm, norm_first):
    return x + block(x)


def sub_parenthesis(x, block, norm, norm_first):
    if norm_first:
        return x + block(norm(x))
    return norm(x) + block(x)


# --- decoder masks -----------------------------------------------------------------------------

def decoder_masks(src_lengths, tgt_lengths, src_len, tgt_len):
    B = tgt_lengths.shape[0]
    causal = torch.ones(tgt_len, tgt_len, dtype=torch.bool).tril()  # (T, T)
    tgt_real = torch.arange(tgt_len)[None, :] < tgt_lengths[:, None]  # (B, T)
    src_real = torch.arange(src_len).expand(B, src_len) < src_lengths.unsqueeze(1)  # (B, S)
    self_mask = causal.expand(B, tgt_len, tgt_len) & tgt_real[:, None, :]
    memory_mask = src_real.unsqueeze(1).repeat(1, tgt_len, 1)
    return self_mask, memory_mask


def decoder_masks_compact(src_lengths, tgt_lengths, src_len, tgt_len):
    self_mask, memory_mask = decoder_masks(src_lengths, tgt_lengths, src_len, tgt_len)
    return self_mask, memory_mask[:, :1, :]  # (B, 1, S): accepted


def causal_part(T, diagonal=0):
    return torch.ones(T, T, dtype=torch.bool).tril(diagonal)  # (T, T)


def real(lengths, L, extra=0):
    return torch.stack([torch.arange(L) < n + extra for n in lengths.tolist()])  # (B, L)


def memory_part(src_lengths, S, T, extra=0):
    return real(src_lengths, S, extra)[:, None, :].repeat(1, T, 1)  # (B, T, S)


def masks_with(src_lengths, tgt_lengths, S, T, *, self_mask=None, memory_mask=None):
    if self_mask is None:
        self_mask = causal_part(T) & real(tgt_lengths, T)[:, None, :]
    if memory_mask is None:
        memory_mask = memory_part(src_lengths, S, T)
    return self_mask, memory_mask


def mask_inverted(src, tgt, S, T):
    a, b = decoder_masks(src, tgt, S, T)
    return a.logical_not(), b.logical_not()


def mask_memory_inverted(src, tgt, S, T):
    return masks_with(src, tgt, S, T, memory_mask=~memory_part(src, S, T))


def mask_swapped(src, tgt, S, T):
    return tuple(reversed(decoder_masks(src, tgt, S, T)))


def mask_no_causal(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=real(tgt, T)[:, None, :].repeat(1, T, 1))


def mask_diag_strict(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T, -1) & real(tgt, T)[:, None, :])


def mask_diag_future(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T, 1) & real(tgt, T)[:, None, :])


def mask_queries(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T) & real(tgt, T)[:, :, None])


def mask_queries_and_keys(src, tgt, S, T):  # the same as queries only, under a causal mask
    r = real(tgt, T)
    return masks_with(src, tgt, S, T, self_mask=causal_part(T) & r[:, :, None] & r[:, None, :])


def mask_causal_only(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T).repeat(len(tgt), 1, 1))


def mask_causal_memory(src, tgt, S, T):
    causal = torch.ones(T, S, dtype=torch.bool).tril()  # top-left aligned
    return masks_with(src, tgt, S, T, memory_mask=memory_part(src, S, T) & causal)


def mask_no_source_padding(src, tgt, S, T):
    return masks_with(src, tgt, S, T, memory_mask=torch.ones(len(src), T, S, dtype=torch.bool))


def mask_off_by_one(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T) & real(tgt, T, 1)[:, None, :],
                      memory_mask=memory_part(src, S, T, 1))


def mask_or(src, tgt, S, T):
    return masks_with(src, tgt, S, T, self_mask=causal_part(T) | real(tgt, T)[:, None, :])


def mask_longest(src, tgt, S, T):
    S, T = int(src.max()), int(tgt.max())  # "the padded length is the longest sequence"
    return decoder_masks(src, tgt, S, T)


def mask_lengths_swapped(src, tgt, S, T):
    return masks_with(src, tgt, S, T, memory_mask=memory_part(tgt, S, T))


def mask_memory_transposed(src, tgt, S, T):
    return masks_with(src, tgt, S, T, memory_mask=real(src, S)[:, :, None].repeat(1, 1, T))


EXERCISES = [
    Exercise("ch05", "sinusoidal_encoding", 5, (sinusoidal_encoding, sinusoidal_encoding_loops), (
        (enc_swapped, "sin and cos are swapped"),
        (enc_pair_index, "wrong exponent"),
        (enc_column_index, "wrong exponent"),
        (enc_multiplied, "multiplied by 10000^(2i/d) instead of divided"),
        (enc_halves, "fill two halves instead of alternating"),
        (enc_from_one, "positions start at 1"),
        (enc_transposed, "the encoding is transposed"),
        (enc_sin_twice, "the same function fills the even and the odd columns"),
        (enc_integer_division, "the exponent became 0"),
        (enc_max_len_exponent, "max_len used instead of d_model"),
    )),
    Exercise("ch05", "sublayer", 8, (sublayer,), (
        (sub_always_post, "norm_first is ignored: this is always post-LN"),
        (sub_always_pre, "norm_first is ignored: this is always pre-LN"),
        (sub_swapped, "pre-LN and post-LN are swapped"),
        (sub_no_residual, "the residual connection is missing"),
        (sub_branch_only, "only the sublayer's output is normalised"),
        (sub_normalised_residual, "the residual adds the normalised input"),
        (sub_twice, "LayerNorm is applied twice"),
        (sub_functional_norm, "learned scale and shift are not used"),
        (sub_fresh_layer_norm, "learned scale and shift are not used"),
        (sub_no_norm, "the LayerNorm is never applied"),
        (sub_parenthesis, "post-LN computes LayerNorm(x) + Sublayer(x)"),
    )),
    Exercise("ch05", "decoder_masks", 6, (decoder_masks, decoder_masks_compact), (
        (mask_inverted, "the polarity is inverted"),
        (mask_memory_inverted, "the polarity is inverted"),
        (mask_swapped, "the two masks are returned in the wrong order"),
        (mask_no_causal, "the self-attention mask has no causal part"),
        (mask_diag_strict, "the causal diagonal is off by one"),
        (mask_diag_future, "the causal diagonal is off by one"),
        (mask_queries, "the target padding is applied to the queries instead of the keys"),
        (mask_queries_and_keys, "the target padding is applied to the queries instead of the keys"),
        (mask_causal_only, "the self-attention mask ignores the target padding"),
        (mask_causal_memory, "the cross-attention mask is causal"),
        (mask_no_source_padding, "the cross-attention mask ignores the source padding"),
        (mask_off_by_one, "the padding is off by one"),
        (mask_or, "combined with | instead of &"),
        (mask_longest, "only as long as the longest sequence"),
        (mask_lengths_swapped, "the source and target lengths are mixed up"),
        (mask_memory_transposed, "the memory mask is (B, S, T)"),
    )),
]
