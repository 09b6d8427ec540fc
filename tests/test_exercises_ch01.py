"""Chapter 1 exercise checkers: the reference passes, a stub gets a notice, each known mistake
(written here independently of the checker's mutants) is rejected with its own diagnosis, and
garbage always gives an AssertionError."""

import pytest
import torch
import torch.nn.functional as F

from attention_course.exercises.ch01 import (
    check_bahdanau_context,
    check_gru_step,
    check_reversal_alignment,
)
from tests.checker_helpers import assert_diagnosis, stub

# --- correct solutions, written the way a learner would ---------------------------------------

def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[-1]
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def bahdanau_context(s_prev, memory, memory_mask, W_q, W_k, v):
    hidden = torch.tanh((s_prev @ W_q.T)[:, None, :] + memory @ W_k.T)  # (B, S, A)
    e = hidden @ v  # (B, S)
    e = e.masked_fill(~memory_mask, float("-inf"))
    alpha = torch.softmax(e, dim=-1)
    context = torch.einsum("bs,bsh->bh", alpha, memory)
    return context, alpha


def reversal_alignment(n):
    a = torch.zeros(n, n, dtype=torch.float64)
    for t in range(n):
        a[t, n - 1 - t] = 1.0
    return a


CHECKS = [
    (check_gru_step, gru_step, "gru_step", 3),
    (check_bahdanau_context, bahdanau_context, "bahdanau_context", 3),
    (check_reversal_alignment, reversal_alignment, "reversal_alignment", 4),
]


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_correct_solution_passes_with_one_success_line(check, solution, name, n, capsys):
    check(solution)
    assert capsys.readouterr().out == f"✅ {name}: all {n} checks passed.\n"


@pytest.mark.parametrize("check, solution, name, n", CHECKS)
def test_stub_prints_notice_and_does_not_raise(check, solution, name, n, capsys):
    assert check(stub) is None
    assert capsys.readouterr().out.startswith(f"⏳ {name}: not attempted yet")


# --- GRU mistakes ------------------------------------------------------------------------------

def gru_parts(x, h, W_ih, W_hh, b_ih, b_hh):
    gi = F.linear(x, W_ih, b_ih)
    gh = F.linear(h, W_hh, b_hh)
    H = h.shape[-1]
    return gi.split(H, dim=-1), gh.split(H, dim=-1)


def gru_swapped(x, h, *w):
    (i_z, i_r, i_n), (h_z, h_r, h_n) = gru_parts(x, h, *w)  # wrong order: z first
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def gru_z_on_new(x, h, *w):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gru_parts(x, h, *w)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return z * torch.tanh(i_n + r * h_n) + (1 - z) * h


def gru_reset_first(x, h, W_ih, W_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, _) = gru_parts(x, h, W_ih, W_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    H = h.shape[-1]
    n = torch.tanh(i_n + F.linear(r * h, W_hh[2 * H:], b_hh[2 * H:]))
    return (1 - z) * n + z * h


def gru_no_reset(x, h, *w):
    (_, i_z, i_n), (_, h_z, h_n) = gru_parts(x, h, *w)
    z = torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + h_n) + z * h


def gru_sigmoid_n(x, h, *w):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gru_parts(x, h, *w)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.sigmoid(i_n + r * h_n) + z * h


GRU_MUTANTS = [
    (gru_swapped, "the reset and update gates are swapped"),
    (gru_z_on_new, "z and 1 - z are exchanged"),
    (gru_reset_first, "the reset gate multiplies h before the matrix product"),
    (gru_no_reset, "the reset gate is never applied"),
    (gru_sigmoid_n, "the candidate uses a sigmoid"),
]


@pytest.mark.parametrize("mutant, phrase", GRU_MUTANTS)
def test_gru_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_gru_step, mutant, phrase, [p for _, p in GRU_MUTANTS])


def test_gru_forgotten_transpose_gets_the_shape_hint():
    def no_transpose(x, h, W_ih, W_hh, b_ih, b_hh):
        return (x @ W_ih + b_ih)[:, : h.shape[1]]

    with pytest.raises(AssertionError, match=r"raised RuntimeError(.|\n)*chunk\(3, dim=-1\)"):
        check_gru_step(no_transpose)


# --- context mistakes --------------------------------------------------------------------------

def scores_of(s_prev, memory, W_q, W_k, v):
    return torch.tanh(F.linear(s_prev, W_q)[:, None] + F.linear(memory, W_k)) @ v  # (B, S)


def ctx_no_mask(s_prev, memory, mask, W_q, W_k, v):
    a = F.softmax(scores_of(s_prev, memory, W_q, W_k, v), dim=1)
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_mask_after(s_prev, memory, mask, W_q, W_k, v):
    a = F.softmax(scores_of(s_prev, memory, W_q, W_k, v), dim=-1) * mask.double()
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_wrong_axis(s_prev, memory, mask, W_q, W_k, v):
    e = torch.where(mask, scores_of(s_prev, memory, W_q, W_k, v), -torch.inf)
    a = torch.nan_to_num(F.softmax(e, dim=0))
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_raw_scores(s_prev, memory, mask, W_q, W_k, v):
    e = scores_of(s_prev, memory, W_q, W_k, v) * mask
    return torch.einsum("bs,bsh->bh", e, memory), e


def ctx_mean(s_prev, memory, mask, W_q, W_k, v):
    a = mask.double() / mask.sum(1, keepdim=True)
    return (a[..., None] * memory).sum(1), a


def ctx_projected(s_prev, memory, mask, W_q, W_k, v):
    e = torch.where(mask, scores_of(s_prev, memory, W_q, W_k, v), -torch.inf)
    a = F.softmax(e, dim=-1)
    return torch.einsum("bs,bsa->ba", a, F.linear(memory, W_k)), a


CONTEXT_MUTANTS = [
    (ctx_no_mask, "the padding mask is ignored"),
    (ctx_mask_after, "the mask is applied after the softmax"),
    (ctx_wrong_axis, "softmax over the wrong axis"),
    (ctx_raw_scores, "returned the raw scores e instead of the weights alpha"),
    (ctx_mean, "the context is a plain average of the encoder outputs"),
    (ctx_projected, "the context averages the projected keys W_k h_j"),
]


@pytest.mark.parametrize("mutant, phrase", CONTEXT_MUTANTS)
def test_context_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_bahdanau_context, mutant, phrase, [p for _, p in CONTEXT_MUTANTS])


# --- alignment mistakes ------------------------------------------------------------------------

ALIGNMENT_MUTANTS = [
    (lambda n: torch.eye(n, dtype=torch.float64), "this is the copy task's alignment"),
    (lambda n: torch.stack([F.one_hot(torch.tensor((n - t) % n), n) for t in range(n)]).double(),
     "the anti-diagonal is off by one"),
    (lambda n: torch.ones(n, n, dtype=torch.float64) / n, "uniform weights"),
]


@pytest.mark.parametrize("mutant, phrase", ALIGNMENT_MUTANTS)
def test_alignment_mistakes_are_named(mutant, phrase):
    assert_diagnosis(check_reversal_alignment, mutant, phrase,
                     [p for _, p in ALIGNMENT_MUTANTS])


def test_alignment_accepts_float32_and_explains_bool(capsys):
    check_reversal_alignment(lambda n: torch.eye(n).flip(1))  # float32, torch's default
    assert capsys.readouterr().out.startswith("✅")
    with pytest.raises(AssertionError, match="dtype torch.bool; expected torch.float64"):
        check_reversal_alignment(lambda n: torch.eye(n, dtype=torch.bool).flip(1))


# --- garbage -----------------------------------------------------------------------------------

@pytest.mark.parametrize("check, solution, name, n", CHECKS)
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
