"""Chapter 5 exercise checkers: correct solutions pass, a stub gets a notice, each known mistake
(written here independently of the checker's mutants) is rejected with its own diagnosis, and
garbage always gives an AssertionError."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention_course.exercises.ch05 import (
    check_decoder_masks,
    check_sinusoidal_encoding,
    check_sublayer,
)
from tests.checker_helpers import assert_diagnosis, stub

# --- correct solutions, written the way a learner would ---------------------------------------

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


def sublayer(x, block, norm, norm_first):
    if norm_first:
        return x + block(norm(x))
    return norm(x + block(x))


def decoder_masks(src_lengths, tgt_lengths, src_len, tgt_len):
    B = tgt_lengths.shape[0]
    causal = torch.ones(tgt_len, tgt_len, dtype=torch.bool).tril()  # (T, T)
    tgt_real = torch.arange(tgt_len)[None, :] < tgt_lengths[:, None]  # (B, T)
    src_real = torch.arange(src_len).expand(B, src_len) < src_lengths.unsqueeze(1)  # (B, S)
    self_mask = causal.expand(B, tgt_len, tgt_len) & tgt_real[:, None, :]
    memory_mask = src_real.unsqueeze(1).repeat(1, tgt_len, 1)
    return self_mask, memory_mask


CHECKS = [
    (check_sinusoidal_encoding, sinusoidal_encoding, "sinusoidal_encoding", 5),
    (check_sinusoidal_encoding, sinusoidal_encoding_loops, "sinusoidal_encoding", 5),
    (check_sublayer, sublayer, "sublayer", 6),
    (check_decoder_masks, decoder_masks, "decoder_masks", 4),
]


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_correct_solution_passes_with_one_success_line(check, solution, name, n, capsys):
    check(solution)
    assert capsys.readouterr().out == f"✅ {name}: all {n} checks passed.\n"


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_stub_prints_notice_and_does_not_raise(check, solution, name, n, capsys):
    assert check(stub) is None
    assert capsys.readouterr().out.startswith(f"⏳ {name}: not attempted yet")


def test_checkers_leave_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    check_sublayer(sublayer)
    assert torch.equal(torch.random.get_rng_state(), state)


# --- sinusoidal encoding mistakes ---------------------------------------------------------------

def encoding_with(max_len, d_model, *, freq, start=0, layout="interleaved", first=torch.sin):
    """A learner's encoding; ``freq(i, j)`` gives the frequency of column j (pair index i)."""
    second = torch.cos if first is torch.sin else torch.sin
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        p = pos + start
        for j in range(d_model):
            if layout == "interleaved":
                i, use_first = j // 2, j % 2 == 0
            else:
                i, use_first = j % (d_model // 2), j < d_model // 2
            pe[pos, j] = (first if use_first else second)(torch.tensor(p * freq(i, j) * 1.0))
    return pe


def correct_freq(d):
    return lambda i, j: 10000 ** (-2 * i / d)


ENCODING_MUTANTS = [
    (lambda n, d: encoding_with(n, d, freq=correct_freq(d), first=torch.cos),
     "sin and cos are swapped"),
    (lambda n, d: encoding_with(n, d, freq=lambda i, j: 10000 ** (-i / d)), "wrong exponent"),
    (lambda n, d: encoding_with(n, d, freq=lambda i, j: 1 / 10000 ** (j / d)), "wrong exponent"),
    (lambda n, d: encoding_with(n, d, freq=lambda i, j: 10000 ** (2 * i / d)),
     "multiplied by 10000^(2i/d) instead of divided"),
    (lambda n, d: encoding_with(n, d, freq=correct_freq(d), layout="halves"),
     "fill two halves instead of alternating"),
    (lambda n, d: encoding_with(n, d, freq=correct_freq(d), start=1), "positions start at 1"),
]
ENCODING_PHRASES = sorted({p for _, p in ENCODING_MUTANTS})


@pytest.mark.parametrize("mutant, phrase", ENCODING_MUTANTS)
def test_encoding_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_sinusoidal_encoding, mutant, phrase, ENCODING_PHRASES)


def test_encoding_accepts_float32_but_not_a_transposed_result(capsys):
    check_sinusoidal_encoding(lambda n, d: sinusoidal_encoding_loops(n, d).float())
    assert capsys.readouterr().out.startswith("✅")
    with pytest.raises(AssertionError, match=r"shape \(8, 6\); expected \(6, 8\)"):
        check_sinusoidal_encoding(lambda n, d: sinusoidal_encoding_loops(n, d).T)


# --- sublayer mistakes ----------------------------------------------------------------------------

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


SUBLAYER_MUTANTS = [
    (sub_always_post, "norm_first is ignored: this is always post-LN"),
    (sub_always_pre, "norm_first is ignored: this is always pre-LN"),
    (sub_swapped, "pre-LN and post-LN are swapped"),
    (sub_no_residual, "the residual connection is missing"),
    (sub_branch_only, "only the sublayer's output is normalised"),
    (sub_normalised_residual, "the residual adds the normalised input"),
    (sub_twice, "LayerNorm is applied twice"),
]


@pytest.mark.parametrize("mutant, phrase", SUBLAYER_MUTANTS)
def test_sublayer_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_sublayer, mutant, phrase, [p for _, p in SUBLAYER_MUTANTS])


def test_sublayer_without_the_norms_parameters_gets_a_generic_diagnosis():
    with pytest.raises(AssertionError, match=r"`output` is wrong: max abs difference"):
        check_sublayer(sub_functional_norm)


def test_sublayer_in_place_update_is_reported():
    def in_place(x, block, norm, norm_first):
        if norm_first:
            return x.add_(block(norm(x)))
        return norm(x.add_(block(x)))

    with pytest.raises(AssertionError, match="modified its input `x` in place"):
        check_sublayer(in_place)


# --- decoder mask mistakes --------------------------------------------------------------------

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


def mask_diag(offset):
    def fn(src, tgt, S, T):
        return masks_with(src, tgt, S, T,
                          self_mask=causal_part(T, offset) & real(tgt, T)[:, None, :])
    return fn


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


MASK_MUTANTS = [
    (mask_inverted, "the polarity is inverted"),
    (mask_memory_inverted, "the polarity is inverted"),
    (mask_swapped, "the two masks are returned in the wrong order"),
    (mask_no_causal, "the self-attention mask has no causal part"),
    (mask_diag(-1), "the causal diagonal is off by one"),
    (mask_diag(1), "the causal diagonal is off by one"),
    (mask_queries, "the target padding is applied to the queries instead of the keys"),
    (mask_queries_and_keys, "the target padding is applied to the queries instead of the keys"),
    (mask_causal_only, "the self-attention mask ignores the target padding"),
    (mask_causal_memory, "the cross-attention mask is causal"),
    (mask_no_source_padding, "the cross-attention mask ignores the source padding"),
    (mask_off_by_one, "the padding is off by one"),
]
MASK_PHRASES = sorted({p for _, p in MASK_MUTANTS})


@pytest.mark.parametrize("mutant, phrase", MASK_MUTANTS)
def test_decoder_mask_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_decoder_masks, mutant, phrase, MASK_PHRASES)


def test_decoder_masks_accept_a_b1s_memory_mask_and_explain_integers(capsys):
    def compact(src, tgt, S, T):
        return decoder_masks(src, tgt, S, T)[0], real(src, S)[:, None, :]  # (B, 1, S)

    check_decoder_masks(compact)
    assert capsys.readouterr().out.startswith("✅")
    with pytest.raises(AssertionError, match="dtype torch.int64; expected torch.bool"):
        check_decoder_masks(lambda *a: tuple(m.long() for m in decoder_masks(*a)))


# --- garbage -----------------------------------------------------------------------------------

@pytest.mark.parametrize("check, solution, name, n", CHECKS[1:])
@pytest.mark.parametrize("garbage", [
    lambda *a: None,
    lambda *a: [1.0, 2.0],
    lambda *a: "a string",
    lambda *a: torch.full((2, 2), float("nan"), dtype=torch.float64),
    lambda *a: (_ for _ in ()).throw(ValueError("learner bug")),
])
def test_garbage_always_gives_an_assertion_error(check, solution, name, n, garbage):
    with pytest.raises(AssertionError, match=f"❌ {name}"):
        check(garbage)
