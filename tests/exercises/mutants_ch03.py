"""Chapter 3: learner-style solutions and wrong answers for the shared harness."""

import math

import torch
import torch.nn.functional as F

from tests.exercises.registry import Exercise

# --- self-attention ----------------------------------------------------------------------------

def self_attention(X, W_Q, W_K, W_V):
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V  # (B, L, d_k), (B, L, d_k), (B, L, d_v)
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])  # (B, L, L)
    weights = torch.softmax(scores, dim=-1)
    return weights @ V, weights


def self_attention_einsum(X, W_Q, W_K, W_V):
    Q = torch.einsum("bld,dk->blk", X, W_Q)
    K = torch.einsum("bld,dk->blk", X, W_K)
    V = torch.einsum("bld,dv->blv", X, W_V)
    weights = F.softmax(torch.einsum("bqk,bmk->bqm", Q, K) * W_Q.shape[1] ** -0.5, dim=2)
    return torch.einsum("bqm,bmv->bqv", weights, V), weights


def self_attention_torch(X, W_Q, W_K, W_V):
    Q, K, V = F.linear(X, W_Q.T), F.linear(X, W_K.T), F.linear(X, W_V.T)
    output = F.scaled_dot_product_attention(Q, K, V)
    weights = (Q @ K.mT / math.sqrt(W_K.shape[-1])).softmax(-1)
    return output, weights


def _attend(scores, V, dim=-1):
    weights = scores.softmax(dim=dim)
    return weights @ V, weights


def sa_unscaled(X, W_Q, W_K, W_V):
    return _attend((X @ W_Q) @ (X @ W_K).mT, X @ W_V)


def sa_sqrt_model_size(X, W_Q, W_K, W_V):
    d_model = X.size(-1)
    return _attend((X @ W_Q) @ (X @ W_K).mT / math.sqrt(d_model), X @ W_V)


def sa_sqrt_value_size(X, W_Q, W_K, W_V):
    V = X @ W_V
    return _attend((X @ W_Q) @ (X @ W_K).mT / math.sqrt(V.shape[-1]), V)


def sa_values_are_x(X, W_Q, W_K, W_V):
    Q, K = X @ W_Q, X @ W_K
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), X)


def sa_softmax_over_queries(X, W_Q, W_K, W_V):
    Q, K = X @ W_Q, X @ W_K
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), X @ W_V, dim=1)


def sa_weights_at_keys(X, W_Q, W_K, W_V):
    Q, K = X @ W_Q, X @ W_K
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), K)


def sa_queries_keys_swapped(X, W_Q, W_K, W_V):
    Q, K = X @ W_Q, X @ W_K
    return _attend(torch.bmm(K, Q.transpose(1, 2)) / math.sqrt(Q.shape[-1]), X @ W_V)


def sa_keys_from_w_q(X, W_Q, W_K, W_V):
    Q = K = X @ W_Q  # copy-paste slip
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), X @ W_V)


def sa_queries_from_w_k(X, W_Q, W_K, W_V):
    Q = K = torch.matmul(X, W_K)
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), X @ W_V)


def sa_linear_layout(X, W_Q, W_K, W_V):
    Q, K, V = F.linear(X, W_Q), F.linear(X, W_K), F.linear(X, W_V)
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), V)


def sa_swapped_outputs(X, W_Q, W_K, W_V):
    output, weights = self_attention(X, W_Q, W_K, W_V)
    return weights, output


def sa_scaled_after(X, W_Q, W_K, W_V):
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    weights = F.softmax(Q @ K.transpose(1, 2), dim=-1) / math.sqrt(K.shape[-1])
    return weights @ V, weights


def sa_times_sqrt(X, W_Q, W_K, W_V):
    Q, K = X @ W_Q, X @ W_K
    return _attend(Q @ K.mT * math.sqrt(Q.shape[-1]), X @ W_V)


def sa_by_dk(X, W_Q, W_K, W_V):
    d_k = W_Q.shape[1]
    return _attend((X @ W_Q) @ (X @ W_K).mT / d_k, X @ W_V)


def sa_keys_values_swapped(X, W_Q, W_K, W_V):
    Q, K, V = torch.matmul(X, W_Q), torch.matmul(X, W_V), torch.matmul(X, W_K)
    return _attend(Q @ K.mT / math.sqrt(Q.shape[-1]), V)


# --- causal mask -------------------------------------------------------------------------------

def causal(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril(diagonal=key_len - query_len)


def causal_arange(query_len, key_len):
    offset = key_len - query_len  # the queries are the last query_len positions
    return torch.arange(key_len)[None, :] <= torch.arange(query_len)[:, None] + offset


def causal_from_square(query_len, key_len):
    return torch.tril(torch.ones(key_len, key_len)).bool()[key_len - query_len:]


def cm_torch_polarity(query_len, key_len):
    return torch.triu(torch.ones(query_len, key_len, dtype=torch.bool),
                      diagonal=key_len - query_len + 1)  # True = blocked


def cm_generate_square_subsequent_bool(query_len, key_len):
    return torch.ones(query_len, key_len).triu(1) == 1


def cm_strict(query_len, key_len):
    j, i = torch.arange(key_len), torch.arange(query_len)[:, None]
    return j < i + (key_len - query_len)


def cm_one_future(query_len, key_len):
    j, i = torch.arange(key_len), torch.arange(query_len)[:, None]
    return j <= i + (key_len - query_len) + 1


def cm_top_left(query_len, key_len):
    return torch.tril(torch.ones(query_len, key_len, dtype=torch.bool))


def cm_first_rows_of_square(query_len, key_len):
    return torch.tril(torch.ones(key_len, key_len)).bool()[:query_len]


def cm_float(query_len, key_len):
    return torch.tril(torch.ones(query_len, key_len), diagonal=key_len - query_len)


def cm_long(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.long).tril(key_len - query_len)


def cm_additive(query_len, key_len):
    allowed = torch.ones(query_len, key_len).tril(key_len - query_len)
    return torch.where(allowed == 1, 0.0, float("-inf"))


def cm_additive_double(query_len, key_len):
    blocked = torch.ones(query_len, key_len, dtype=torch.float64).triu(key_len - query_len + 1)
    return blocked.masked_fill(blocked == 1, -math.inf)


def cm_keys_as_rows(query_len, key_len):
    q = torch.arange(query_len)[None, :] + (key_len - query_len)  # (1, Lq)
    k = torch.arange(key_len)[:, None]  # (Lk, 1): the axes are the wrong way round
    return k <= q


def cm_offset_sign(query_len, key_len):
    i, j = torch.arange(query_len)[:, None], torch.arange(key_len)[None, :]
    return j <= i + (query_len - key_len)


def cm_reversed(query_len, key_len):
    i, j = torch.arange(query_len)[:, None], torch.arange(key_len)[None, :]
    return j >= i + key_len - query_len


# --- path length -------------------------------------------------------------------------------

def path_length(n, window):
    return -(-torch.arange(n) // window)  # ceil(j / window) with integers


def path_length_float(n, window):
    return torch.ceil(torch.arange(n) / window)  # float, whole numbers: accepted


def path_length_loop(n, window):
    return torch.tensor([math.ceil(j / window) for j in range(n)], dtype=torch.int32)


def pl_floor(n, window):
    return torch.div(torch.arange(n), window, rounding_mode="floor")


def pl_fraction(n, window):
    return torch.arange(n, dtype=torch.float64) / window


def pl_one_too_many(n, window):
    return torch.tensor([j // window + 1 for j in range(n)])


def pl_positions(n, window):
    return torch.ceil((torch.arange(n) + 1) / window).long()


def pl_position_zero(n, window):
    return torch.tensor([max(1, math.ceil(j / window)) for j in range(n)])


def pl_full_attention(n, window):
    layers = torch.ones(n, dtype=torch.long)
    layers[0] = 0
    return layers


def pl_rnn(n, window):
    return torch.arange(n)


def pl_window_counts_itself(n, window):
    return torch.ceil(torch.arange(n) / (window - 1))


def pl_window_plus_one(n, window):
    keys_seen = window + 1  # i - window, ..., i
    return torch.ceil(torch.arange(n) / keys_seen).int()


def pl_last_only(n, window):
    return math.ceil((n - 1) / window)  # a Python int


def pl_last_only_tensor(n, window):
    return torch.tensor(math.ceil((n - 1) / window))


def pl_from_the_end(n, window):
    return torch.ceil(torch.arange(n - 1, -1, -1) / window)


EXERCISES = [
    Exercise("ch03", "self_attention", 5,
             (self_attention, self_attention_einsum, self_attention_torch), (
        (sa_unscaled, "missing the 1/sqrt(d_k) scaling"),
        (sa_sqrt_model_size, "scaled by sqrt(D), the model size"),
        (sa_sqrt_value_size, "scaled by sqrt(d_v), the value size"),
        (sa_values_are_x, "W_V was never applied"),
        (sa_softmax_over_queries, "softmax over the query axis"),
        (sa_weights_at_keys, "output computed as weights @ K"),
        (sa_queries_keys_swapped, "queries and keys swapped"),
        (sa_keys_from_w_q, "the same projection used for queries and keys"),
        (sa_queries_from_w_k, "the same projection used for queries and keys"),
        (sa_linear_layout, "as if the weights were in nn.Linear layout"),
        (sa_swapped_outputs, "outputs returned in the wrong order"),
        (sa_scaled_after, "scaled after the softmax"),
        (sa_times_sqrt, "multiplied by sqrt(d_k) instead of dividing"),
        (sa_by_dk, "divided by d_k instead of sqrt(d_k)"),
        (sa_keys_values_swapped, "W_K and W_V are swapped"),
    )),
    Exercise("ch03", "causal_mask", 6, (causal, causal_arange, causal_from_square), (
        (cm_torch_polarity, "mask polarity is inverted"),
        (cm_generate_square_subsequent_bool, "mask polarity is inverted"),
        (cm_strict, "a token cannot see itself"),
        (cm_one_future, "one step of the future is visible"),
        (cm_top_left, "aligned top-left"),
        (cm_first_rows_of_square, "aligned top-left"),
        (cm_float, "a 0/1 number mask instead of a boolean one"),
        (cm_long, "a 0/1 number mask instead of a boolean one"),
        (cm_additive, "an additive float mask (0 / -inf)"),
        (cm_additive_double, "an additive float mask (0 / -inf)"),
        (cm_keys_as_rows, "the mask is transposed"),
        (cm_offset_sign, "the offset has the wrong sign"),
        (cm_reversed, "the comparison is reversed"),
    )),
    Exercise("ch03", "path_length", 6, (path_length, path_length_float, path_length_loop), (
        (pl_floor, "rounded down instead of up"),
        (pl_fraction, "j / window was never rounded"),
        (pl_one_too_many, "one layer too many"),
        (pl_positions, "one layer too many"),
        (pl_position_zero, "position 0 needs no layer"),
        (pl_full_attention, "the window is ignored"),
        (pl_rnn, "one position per layer, as in an RNN"),
        (pl_window_counts_itself, "the window was counted as including the query itself"),
        (pl_window_plus_one, "a layer was taken to move window + 1 steps"),
        (pl_last_only, "only the last position's count was returned"),
        (pl_last_only_tensor, "only the last position's count was returned"),
        (pl_from_the_end, "the distances were counted from the last position"),
    )),
]
