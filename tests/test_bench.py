"""attention_course.bench: timing against a known duration, peak memory against a known size."""

from __future__ import annotations

import math
import time

import pytest
import torch

from attention_course.bench import median_seconds, peak_memory_bytes

MB = 10**6


def test_median_seconds_measures_a_known_sleep():
    seconds = median_seconds(time.sleep, 0.02, min_run_time=0.1)
    assert 0.02 <= seconds < 0.035  # sleep never returns early; scheduling adds a little


@pytest.mark.parametrize("num_threads", [1, 2])
def test_median_seconds_runs_on_the_requested_threads(num_threads):
    seen = []

    def record():
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    median_seconds(record, num_threads=num_threads, min_run_time=0.01)
    assert seen and set(seen) == {num_threads}
    assert torch.get_num_threads() == before  # the caller's setting is restored


def test_median_seconds_passes_arguments():
    calls = []
    median_seconds(lambda a, b: calls.append((a, b)), 1, "x", min_run_time=0.01)
    assert set(calls) == {(1, "x")}


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"fn": 3}, TypeError, "fn must be callable"),
        ({"num_threads": 0}, ValueError, "num_threads must be >= 1"),
        ({"num_threads": 1.5}, TypeError, "num_threads must be an int"),
        ({"min_run_time": 0.0}, ValueError, "min_run_time"),
    ],
)
def test_median_seconds_rejects(kwargs, error, words):
    fn = kwargs.pop("fn", time.perf_counter)
    with pytest.raises(error) as info:
        median_seconds(fn, **kwargs)
    assert words in str(info.value)


def allocate_and_free(numel: int) -> float:
    """Allocate numel float32 values, reduce them and free them: the caller keeps nothing."""
    return torch.ones(numel).sum().item()


def test_peak_memory_of_a_200_mb_tensor_and_of_nothing():
    # A function of this test module: the child process imports it by name. Its tensor is
    # freed before it returns, and the peak still sees it.
    allocated = peak_memory_bytes(allocate_and_free, 50_000_000)  # float32: 200 MB
    assert 180 * MB <= allocated < 230 * MB
    nothing = peak_memory_bytes(math.floor, 2.5)  # allocates (almost) nothing
    assert nothing < 5 * MB


def test_peak_memory_rejects_what_cannot_run_in_another_process():
    with pytest.raises(TypeError, match="importable"):
        peak_memory_bytes(lambda: torch.ones(10))
    with pytest.raises(TypeError, match="fn must be callable"):
        peak_memory_bytes("torch.ones")
    with pytest.raises(ValueError, match="num_threads"):
        peak_memory_bytes(torch.ones, 1, num_threads=0)


def test_peak_memory_reports_errors_of_the_call():
    with pytest.raises(RuntimeError, match="TypeError"):
        peak_memory_bytes(math.floor, "2.5")  # the child raises; its message is passed on


def test_matmul_flops_counts_projections_and_the_two_attention_products():
    from attention_course.bench import matmul_flops
    from attention_course.multihead import MultiHeadAttention

    B, n, d, h = 2, 7, 12, 3
    x = torch.empty(B, n, d, device="meta")  # no data: counting only
    counts = matmul_flops(MultiHeadAttention(d, h).to("meta"), x, x, x, need_weights=True)
    assert counts["addmm"] == 4 * 2 * B * n * d * d  # W_Q, W_K, W_V, W_O
    assert counts["bmm"] == 2 * 2 * B * n * n * d  # QK^T and AV over all heads
    with pytest.raises(TypeError, match="fn"):
        matmul_flops("not callable")
