"""Chapter 3 exercise checkers: correct solutions (written here independently of the package)
pass with one success line, a stub gets a notice, every known mistake (written here the way a
learner would write it, independently of the checker's own mutants) is rejected with its own
diagnosis, and garbage always gives an AssertionError."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention_course.exercises.ch03 import (
    check_causal_mask,
    check_path_length,
    check_self_attention,
)
from tests.checker_helpers import assert_diagnosis, stub

# --- correct solutions, written the way a learner would ---------------------------------------


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


def causal(query_len, key_len):
    return torch.ones(query_len, key_len, dtype=torch.bool).tril(diagonal=key_len - query_len)


def causal_arange(query_len, key_len):
    offset = key_len - query_len  # the queries are the last query_len positions
    return torch.arange(key_len)[None, :] <= torch.arange(query_len)[:, None] + offset


def causal_from_square(query_len, key_len):
    return torch.tril(torch.ones(key_len, key_len)).bool()[key_len - query_len:]


def path_length(n, window):
    return -(-torch.arange(n) // window)  # ceil(j / window) with integers


def path_length_float(n, window):
    return torch.ceil(torch.arange(n) / window)  # float, whole numbers: accepted


def path_length_loop(n, window):
    return torch.tensor([math.ceil(j / window) for j in range(n)], dtype=torch.int32)


CHECKS = [
    (check_self_attention, self_attention, "self_attention", 3),
    (check_causal_mask, causal, "causal_mask", 6),
    (check_path_length, path_length, "path_length", 6),
]


@pytest.mark.parametrize("check, solution, name, n", CHECKS, ids=lambda x: getattr(x, "__name__",
                                                                                  None))
def test_correct_solution_passes_with_one_success_line(check, solution, name, n, capsys):
    assert check(solution) is None
    assert capsys.readouterr().out == f"✅ {name}: all {n} checks passed.\n"


@pytest.mark.parametrize("check, solution", [
    (check_self_attention, self_attention_einsum),
    (check_self_attention, self_attention_torch),
    (check_causal_mask, causal_arange),
    (check_causal_mask, causal_from_square),
    (check_path_length, path_length_float),
    (check_path_length, path_length_loop),
], ids=lambda x: getattr(x, "__name__", None))
def test_correct_solutions_written_differently_pass(check, solution, capsys):
    check(solution)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("check, solution, name, n", CHECKS, ids=lambda x: getattr(x, "__name__",
                                                                                  None))
def test_stub_prints_notice_and_does_not_raise(check, solution, name, n, capsys):
    assert check(stub) is None
    assert capsys.readouterr().out == (
        f"⏳ {name}: not attempted yet — replace `raise NotImplementedError` with your code, "
        f"then re-run this cell.\n"
    )


# --- self-attention mistakes -------------------------------------------------------------------

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


SA_MUTANTS = [
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
]
SA_PHRASES = [phrase for _, phrase in SA_MUTANTS]


@pytest.mark.parametrize("mutant, phrase", SA_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
def test_self_attention_mistakes_are_named(mutant, phrase, capsys):
    assert_diagnosis(check_self_attention, mutant, phrase, SA_PHRASES)
    assert capsys.readouterr().out == ""


def test_linear_layout_message_shows_the_learners_error():
    with pytest.raises(AssertionError, match=r"W_Q is \(D, d_k\)") as info:
        check_self_attention(sa_linear_layout)
    assert "RuntimeError" in str(info.value)


def test_self_attention_cases_use_d_k_different_from_model_size():
    seen = []

    def spy(X, W_Q, W_K, W_V):
        seen.append((X.shape[-1], W_Q.shape[-1], W_V.shape[-1], X.dtype))
        return self_attention(X, W_Q, W_K, W_V)

    check_self_attention(spy)
    assert all(D != d_k and dtype == torch.float64 for D, d_k, _, dtype in seen)
    assert any(d_k != d_v for _, d_k, d_v, _ in seen)


# --- causal-mask mistakes ----------------------------------------------------------------------

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


CM_MUTANTS = [
    (cm_torch_polarity, "mask polarity is inverted"),
    (cm_generate_square_subsequent_bool, "mask polarity is inverted"),
    (cm_strict, "a token cannot see itself"),
    (cm_one_future, "one step of the future is visible"),
    (cm_top_left, "aligned top-left"),
    (cm_float, "a 0/1 number mask instead of a boolean one"),
    (cm_long, "a 0/1 number mask instead of a boolean one"),
    (cm_additive, "an additive float mask (0 / -inf)"),
    (cm_additive_double, "an additive float mask (0 / -inf)"),
]
CM_PHRASES = [phrase for _, phrase in CM_MUTANTS]


@pytest.mark.parametrize("mutant, phrase", CM_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
def test_causal_mask_mistakes_are_named(mutant, phrase, capsys):
    assert_diagnosis(check_causal_mask, mutant, phrase, CM_PHRASES)
    assert capsys.readouterr().out == ""


def test_top_left_is_diagnosed_on_the_first_rectangular_case():
    with pytest.raises(AssertionError, match=r"Failing case 2 of 6: fewer queries than keys"):
        check_causal_mask(cm_top_left)


def test_causal_cases_cover_square_and_fewer_queries_than_keys():
    seen = []

    def spy(query_len, key_len):
        seen.append((query_len, key_len))
        return causal(query_len, key_len)

    check_causal_mask(spy)
    assert any(q == k > 1 for q, k in seen) and any(q < k for q, k in seen)


def test_partial_fix_says_how_much_remains():
    def strict_top_left(query_len, key_len):  # two mistakes at once
        return torch.ones(query_len, key_len, dtype=torch.bool).tril(-1)

    with pytest.raises(AssertionError, match=r"a token cannot see itself[\s\S]*explains 3 of the "
                                             r"6 failing cases"):
        check_causal_mask(strict_top_left)


# --- path-length mistakes ----------------------------------------------------------------------

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


PL_MUTANTS = [
    (pl_floor, "rounded down instead of up"),
    (pl_fraction, "j / window was never rounded"),
    (pl_one_too_many, "one layer too many"),
    (pl_positions, "one layer too many"),
    (pl_position_zero, "position 0 needs no layer"),
    (pl_full_attention, "the window is ignored"),
    (pl_rnn, "one position per layer, as in an RNN"),
    (pl_window_counts_itself, "the window was counted as including the query itself"),
]
PL_PHRASES = [phrase for _, phrase in PL_MUTANTS]


@pytest.mark.parametrize("mutant, phrase", PL_MUTANTS, ids=lambda x: getattr(x, "__name__", ""))
def test_path_length_mistakes_are_named(mutant, phrase, capsys):
    assert_diagnosis(check_path_length, mutant, phrase, PL_PHRASES)
    assert capsys.readouterr().out == ""


def test_path_length_only_the_last_position_gets_a_shape_message():
    def last_only(n, window):
        return torch.tensor(math.ceil((n - 1) / window))

    with pytest.raises(AssertionError, match=r"has shape \(\); expected \(10,\) = \(n,\)"):
        check_path_length(last_only)


def test_path_length_bool_answer_names_the_dtype():
    with pytest.raises(AssertionError, match="dtype torch.bool; expected torch.int64"):
        check_path_length(lambda n, window: torch.arange(n) > 0)


# --- garbage -----------------------------------------------------------------------------------

def raises_value_error(*args, **kwargs):
    raise ValueError("learner bug")


GARBAGE = {
    "None": lambda *a: None,
    "list": lambda *a: [1.0, 2.0],
    "string": lambda *a: "a string",
    "NaN tensor": lambda *a: torch.full((2, 2), float("nan"), dtype=torch.float64),
    "NaN pair": lambda *a: (torch.full((2, 2), float("nan")),) * 2,
    "int": lambda *a: 3,
    "ValueError": raises_value_error,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("check", [c for c, *_ in CHECKS], ids=lambda c: c.__name__)
def test_garbage_always_gives_an_assertion_error(check, garbage, capsys):
    with pytest.raises(AssertionError, match=r"^❌ \w+: [\s\S]*Failing case \d of \d: "):
        check(garbage)
    assert capsys.readouterr().out == ""


def test_value_error_is_reported_with_the_inputs():
    with pytest.raises(AssertionError) as info:
        check_self_attention(raises_value_error)
    message = str(info.value)
    assert "raised ValueError: learner bug" in message
    assert "X=(1, 4, 6) float64, W_Q=(6, 3) float64" in message
    assert "Hint: X (B, L, D) @ W_Q (D, d_k)" in message
