"""Chapter 4 exercise checkers: correct solutions pass with one success line, a stub gets a
notice, every known mistake (written here independently of the checker's own mutants, in the
ways learners write them) is rejected with its own diagnosis and no other, and garbage always
gives an AssertionError."""

import numpy as np
import pytest
import torch
from torch import nn

from attention_course.exercises.ch04 import (
    check_merge_heads,
    check_parameter_count,
    check_split_heads,
)
from tests.checker_helpers import assert_diagnosis, stub

# --- correct solutions, written the way a learner would ---------------------------------------

def split_heads(x, num_heads):
    B, L, D = x.shape
    return x.reshape(B, L, num_heads, D // num_heads).permute(0, 2, 1, 3)


def split_heads_chunks(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)  # (B, H, L, Dh)


def merge_heads(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)


def merge_heads_einops_style(x):
    B, H, L, Dh = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(B, L, H * Dh)


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


CHECKS = [
    (check_split_heads, split_heads, "split_heads", 5),
    (check_split_heads, split_heads_chunks, "split_heads", 5),
    (check_merge_heads, merge_heads, "merge_heads", 4),
    (check_merge_heads, merge_heads_einops_style, "merge_heads", 4),
    (check_parameter_count, parameter_count, "parameter_count", 6),
    (check_parameter_count, parameter_count_torch, "parameter_count", 6),
    (check_parameter_count, parameter_count_numpy, "parameter_count", 6),
]


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_correct_solution_passes_with_one_success_line(check, solution, name, n, capsys):
    assert check(solution) is None
    assert capsys.readouterr().out == f"✅ {name}: all {n} checks passed.\n"


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_stub_prints_notice_and_does_not_raise(check, solution, name, n, capsys):
    assert check(stub) is None
    assert capsys.readouterr().out.startswith(f"⏳ {name}: not attempted yet")


def test_the_reference_count_does_not_touch_the_global_random_generator():
    state = torch.random.get_rng_state()
    check_parameter_count(parameter_count)
    assert torch.equal(state, torch.random.get_rng_state())


# --- split_heads mistakes ----------------------------------------------------------------------

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


SPLIT_MUTANTS = [
    (split_view_only, "reshaped straight to (B, H, L, Dh) without a transpose"),
    (split_no_transpose, "the transpose is missing: the result is (B, L, H, Dh)"),
    (split_transpose_1_3, "transposed the wrong axes"),
    (split_transpose_last_two, "transposed the wrong axes"),
    (split_batch_second, "transposed the wrong axes"),
    (split_heads_transposed, "each head's matrix is transposed: the result is (B, H, Dh, L)"),
    (split_sizes_swapped, "the number of heads and the head size are swapped in the view"),
    (split_strided, "the number of heads and the head size are swapped in the view"),
]


@pytest.mark.parametrize("mutant, phrase", SPLIT_MUTANTS)
def test_split_heads_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_split_heads, mutant, phrase, [p for _, p in SPLIT_MUTANTS])


def test_split_heads_float_head_size_gets_the_integer_division_hint():
    def float_head_size(x, H):
        B, L, D = x.shape
        return x.view(B, L, H, D / H).transpose(1, 2)

    with pytest.raises(AssertionError, match=r"raised TypeError(.|\n)*D // num_heads"):
        check_split_heads(float_head_size)


# --- merge_heads mistakes ----------------------------------------------------------------------

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


MERGE_MUTANTS = [
    (merge_reshape_only, "reshaped without transposing first"),
    (merge_interleaved, "the heads' features are interleaved"),
    (merge_transpose_2_3, "transposed the wrong axes"),
    (merge_transpose_batch, "transposed the wrong axes"),
    (merge_cat_positions, "concatenated along the wrong axis"),
    (merge_cat_batch, "concatenated along the wrong axis"),
    (merge_not_flattened, "the head axis was never flattened"),
    (merge_summed, "the heads were summed or averaged instead of concatenated"),
    (merge_averaged, "the heads were summed or averaged instead of concatenated"),
]


@pytest.mark.parametrize("mutant, phrase", MERGE_MUTANTS)
def test_merge_heads_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_merge_heads, mutant, phrase, [p for _, p in MERGE_MUTANTS])


def test_merge_heads_view_of_transposed_gets_the_reshape_hint():
    def view_after_transpose(x):
        B, H, L, Dh = x.shape
        return x.transpose(1, 2).view(B, L, H * Dh)

    with pytest.raises(AssertionError, match=r"raised RuntimeError(.|\n)*not `.view`"):
        check_merge_heads(view_after_transpose)


# --- parameter_count mistakes ------------------------------------------------------------------

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


COUNT_MUTANTS = [
    (count_without_output, "the output projection W_O is missing"),
    (count_without_biases, "the biases are missing"),
    (count_bias_always, "biases counted although bias=False"),
    (count_full_heads, "every head was given full (D, D) matrices"),
    (count_full_qkv_shared_output, "every head was given full (D, D) matrices"),
    (count_bias_per_head, "a bias of size d_model was counted for every head"),
    (count_one_head, "only one head's projections were counted"),
]


@pytest.mark.parametrize("mutant, phrase", COUNT_MUTANTS)
def test_parameter_count_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_parameter_count, mutant, phrase, [p for _, p in COUNT_MUTANTS])


@pytest.mark.parametrize("answer, phrase", [
    (lambda d, h, b: float(4 * d * d + 4 * d * b), "use `//` for the head size"),
    (lambda d, h, b: 4 * d * d + 4 * d * b + 0.5, "use `//` for the head size"),
    (lambda d, h, b: torch.tensor(4.0 * d * d), "use `//` for the head size"),
    (lambda d, h, b: None, "forget `return`"),
    (lambda d, h, b: "288", "as a Python int"),
    (lambda d, h, b: True, "as a Python int"),
    (lambda d, h, b: torch.tensor([4 * d * d, 4 * d * b]), "as a Python int"),
])
def test_parameter_count_rejects_non_integers_clearly(answer, phrase):
    with pytest.raises(AssertionError, match="expected an int") as info:
        check_parameter_count(answer)
    assert phrase in str(info.value)
    assert "d_model=8, num_heads=2, bias=True" in str(info.value)


def test_parameter_count_wrong_number_says_what_came_back():
    with pytest.raises(AssertionError, match=r"got 7, expected 288"):
        check_parameter_count(lambda d, h, b: 7)


# --- garbage -----------------------------------------------------------------------------------

@pytest.mark.parametrize("check, name", [
    (check_split_heads, "split_heads"),
    (check_merge_heads, "merge_heads"),
    (check_parameter_count, "parameter_count"),
])
@pytest.mark.parametrize("garbage", [
    lambda *a: None,
    lambda *a: [1.0, 2.0],
    lambda *a: "a string",
    lambda *a: torch.full((2, 2), float("nan"), dtype=torch.float64),
    lambda *a: torch.zeros(2, 2, dtype=torch.float64),
    lambda *a: (_ for _ in ()).throw(ValueError("learner bug")),
    lambda *a: a[0],  # the input itself
])
def test_garbage_always_gives_an_assertion_error(check, name, garbage):
    with pytest.raises(AssertionError, match=f"❌ {name}"):
        check(garbage)
