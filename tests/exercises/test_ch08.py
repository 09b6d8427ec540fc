"""Chapter 8 checkers, beyond the shared harness: the cases contain what the diagnoses rely on,
the references are right, and the results a learner may legitimately return are accepted."""

import math

import pytest
import torch

from attention_course.exercises import ch08
from attention_course.exercises.ch08 import (
    check_append_to_cache,
    check_checkpoint_plan,
    check_logsumexp,
)
from tests.exercises.mutants_ch08 import cache, lse, plan

LSE, CACHE, PLAN = ch08.CHECKERS


def flat(message: str) -> str:
    return " ".join(message.split())


# --- logsumexp ---------------------------------------------------------------------------------

def test_lse_cases_overflow_underflow_and_hold_empty_rows():
    xs = [c.inputs["x"] for c in LSE.cases()]
    finite = [x[torch.isfinite(x)] for x in xs]
    assert any(x.dtype == torch.float64 and f.max() > 709 for x, f in zip(xs, finite, strict=True))
    assert any(x.dtype == torch.float32 and f.max() > 89 for x, f in zip(xs, finite, strict=True))
    assert any(f.max() < -746 for f in finite)  # exp underflows to 0 in float64
    empty = [x for x in xs if (x == -math.inf).all(-1).any()]
    assert {x.dtype for x in empty} == {torch.float32, torch.float64}
    # rows whose scales differ by more than exp can bridge, in one tensor
    spread = [x.amax(-1)[torch.isfinite(x.amax(-1))] for x in xs]
    assert any(s.max() - s.min() > 1e3 for s in spread if s.numel() > 1)
    assert any(x.dim() == 1 for x in xs) and any(x.dim() == 3 for x in xs)


def test_lse_reference_is_exact_in_extended_precision():
    """torch.logsumexp agrees with the sum computed exactly by Python's math.fsum on shifted
    values, and gives -inf (not NaN) for a row of -inf."""
    for case in LSE.cases():
        x = case.inputs["x"].double().reshape(-1, case.inputs["x"].shape[-1])
        got = LSE.reference(case.inputs["x"]).double().reshape(-1)
        for row, value in zip(x.tolist(), got.tolist(), strict=True):
            m = max(row)
            if m == -math.inf:
                assert value == -math.inf
                continue
            exact = m + math.log(math.fsum(math.exp(v - m) for v in row))
            assert value == pytest.approx(exact, rel=1e-6, abs=1e-4)


def test_lse_hint_for_max_returning_a_tuple(failure):
    def forgot_values(x):
        m = x.max(dim=-1, keepdim=True)
        return (x - m).exp().sum(-1).log() + m

    message = flat(failure(check_logsumexp, forgot_values))
    assert "returns (values, indices)" in message


def test_lse_float64_result_for_float32_input_is_a_dtype_error(failure):
    message = flat(failure(check_logsumexp, lambda x: lse(x.double())))
    assert "has dtype torch.float64; expected torch.float32" in message


# --- append_to_cache ---------------------------------------------------------------------------

def test_cache_reference_grown_step_by_step_is_the_whole_sequence():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)
    values = torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)
    k_cache, v_cache = keys[:, :, :0], values[:, :, :0]
    seen = []
    for start, stop in ((0, 3), (3, 4), (4, 6), (6, 7)):  # a prompt, then decoding steps
        k_cache, v_cache, positions = CACHE.reference(k_cache, v_cache, keys[:, :, start:stop],
                                                      values[:, :, start:stop])
        seen.append(positions)
    assert torch.equal(k_cache, keys) and torch.equal(v_cache, values)
    assert torch.equal(torch.cat(seen), torch.arange(7))


def test_cache_cases_separate_the_axes_and_hold_empty_caches():
    cases = CACHE.cases()
    shapes = [tuple(c.inputs["cache_k"].shape) + (c.inputs["k"].shape[2],) for c in cases]
    assert any(T == 0 for _, _, T, _, _ in shapes) and any(n > 1 for *_, n in shapes)
    assert any(T == n and len({B, H, T, D}) == 4 for B, H, T, D, n in shapes)
    assert all(len({B, H, T, D}) == 4 for B, H, T, D, n in shapes if T > 0)


def test_cache_growing_the_callers_tensor_in_place_is_reported(failure):
    def grow_in_place(cache_k, cache_v, k, v):
        past = cache_k.shape[2]
        cache_k.set_(torch.cat([cache_k, k], dim=2))
        cache_v.set_(torch.cat([cache_v, v], dim=2))
        return cache_k, cache_v, torch.arange(past, past + k.shape[2])

    message = flat(failure(check_append_to_cache, grow_in_place))
    assert "the result is right, but your function modified its input" in message
    assert "`cache_k`, `cache_v`" in message


def test_cache_positions_of_any_integer_dtype_are_accepted(capsys):
    def int32_positions(*args):
        new_k, new_v, positions = cache(*args)
        return new_k, new_v, positions.int()

    check_append_to_cache(int32_positions)
    assert capsys.readouterr().out.startswith("✅ append_to_cache")


@pytest.mark.parametrize("positions, phrase", [
    (lambda T, n: torch.arange(T, T + n, dtype=torch.float32), "they are integers"),
    (lambda T, n: range(T, T + n), "not a tensor"),
])
def test_cache_positions_that_cannot_index_an_embedding_are_rejected(positions, phrase,
                                                                     failure):
    def answer(cache_k, cache_v, k, v):
        new_k, new_v, _ = cache(cache_k, cache_v, k, v)
        return new_k, new_v, positions(cache_k.shape[2], k.shape[2])

    message = flat(failure(check_append_to_cache, answer))
    assert phrase in message and "Failing case 1 of 6" in message


# --- checkpoint_plan ---------------------------------------------------------------------------

def test_plan_segment_length_minimises_the_stored_activations():
    """s = ceil(sqrt(N)) minimises ceil(N / s) + s (checkpoints + one recomputed segment)."""
    for n in range(1, 401):
        kept = PLAN.reference(n)
        s = math.ceil(math.sqrt(n))
        assert kept.tolist() == list(range(0, n, s)), n
        assert len(kept) + s == min(-(-n // t) + t for t in range(1, n + 1)), n
        assert len(kept) + s <= 2 * math.sqrt(n) + 1, n


def test_plan_cases_tell_the_roundings_apart():
    ns = [c.inputs["num_layers"] for c in PLAN.cases()]
    ceil, floor = [math.ceil(math.sqrt(n)) for n in ns], [math.isqrt(n) for n in ns]
    rnd = [round(math.sqrt(n)) for n in ns]
    assert any(c != r for c, r in zip(ceil, rnd, strict=True))
    assert any(f != r for f, r in zip(floor, rnd, strict=True))
    assert 1 in ns and any(math.isqrt(n) ** 2 == n > 1 for n in ns)


@pytest.mark.parametrize("answer", [
    plan,  # a list
    lambda n: tuple(plan(n)),
    lambda n: range(0, n, math.ceil(math.sqrt(n))),
    lambda n: torch.tensor(plan(n), dtype=torch.int32),
])
def test_plan_accepts_integer_sequences(answer, capsys):
    check_checkpoint_plan(answer)
    assert capsys.readouterr().out == "✅ checkpoint_plan: all 8 checks passed.\n"


@pytest.mark.parametrize("answer", [
    lambda n: torch.arange(0, n, math.sqrt(n)),
    lambda n: [i * math.sqrt(n) for i in range(math.ceil(math.sqrt(n)))],
])
def test_plan_rejects_float_indices_clearly(answer, failure):
    message = flat(failure(check_checkpoint_plan, answer))
    assert "layer indices are integers" in message and "Failing case 1 of 8" in message
