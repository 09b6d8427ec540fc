"""attention_course.bench: timing against a known duration, peak memory against a known size."""

from __future__ import annotations

import math
import time

import pytest
import torch

from attention_course.bench import fastest_seconds, median_seconds, peak_memory_bytes
from tests.helpers import assert_raises_naming

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


def test_fastest_seconds_keeps_the_fastest_round_of_interleaved_calls():
    b_has_run = []

    def a():  # slow until "b" has had a round: only interleaved rounds see it fast
        time.sleep(0.01 if b_has_run else 0.03)

    def b():
        b_has_run.append(True)
        time.sleep(0.01)

    best = fastest_seconds({"a": (a,), "b": (b,)}, rounds=2, min_run_time=1e-3)
    assert list(best) == ["a", "b"]
    assert 0.01 <= best["a"] < 0.02 and 0.01 <= best["b"] < 0.02


def test_fastest_seconds_rejects_bad_rounds():
    assert_raises_naming(lambda: fastest_seconds({}, rounds=0), ValueError, ["rounds"])


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


# ----------------------------------------------------- the benchmark table (chapter 7)

def test_peak_memory_each_measures_every_call_in_one_process():
    from attention_course.bench import peak_memory_bytes_each

    small, large, nothing = peak_memory_bytes_each(
        [(allocate_and_free, (5_000_000,)), (allocate_and_free, (50_000_000,)),
         (math.floor, (2.5,))])
    assert 15 * MB <= small < 30 * MB  # 20 MB, measured after a 200 MB call would not show it
    assert 180 * MB <= large < 230 * MB
    assert nothing < 5 * MB
    with pytest.raises(TypeError, match="importable"):
        peak_memory_bytes_each([(lambda: None, ())])


def test_attention_flops_of_each_implementation():
    from attention_course.bench import attention_flops

    assert attention_flops("reference", 8, 4, 2) == 4 * 8 * 8 * 4
    assert attention_flops("linear", 8, 4, 2) == 4 * 8 * 4 * 4
    pairs = sum(min(7, i + 2) - max(0, i - 2) + 1 for i in range(8))  # |i - j| <= 2
    assert attention_flops("local", 8, 4, 2) == 4 * pairs * 4
    assert attention_flops("local", 8, 4, 100) == attention_flops("reference", 8, 4, 100)


def test_bench_cli_quick_json_smoke():
    import json
    import os
    import subprocess
    import sys

    from attention_course.bench import IMPLEMENTATIONS, ROW_FIELDS

    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "attention_course.bench", "--quick", "--json"],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    elapsed = time.perf_counter() - start
    assert child.returncode == 0, child.stderr
    assert elapsed < 60
    result = json.loads(child.stdout)
    machine = result["machine"]
    assert machine["threads"] == 1 and machine["torch"] == torch.__version__
    assert machine["blas"] and machine["cpu"]
    assert result["roofline_gflops"] > 0
    rows = result["rows"]
    lengths = sorted({row["length"] for row in rows})
    assert len(lengths) >= 1
    assert {(row["implementation"], row["length"]) for row in rows} == {
        (name, n) for name in IMPLEMENTATIONS for n in lengths}
    for row in rows:
        assert set(row) == set(ROW_FIELDS)
        for field in ("forward_ms", "forward_backward_ms", "forward_ratio_sdpa",
                      "forward_backward_ratio_sdpa", "forward_gflops", "forward_backward_gflops"):
            assert row[field] > 0, (row["implementation"], field)
        assert row["forward_mib"] >= 0 and row["forward_backward_mib"] >= 0
        for field in ("forward_roofline", "forward_backward_roofline"):
            assert 0 < row[field] <= 1.5, (row["implementation"], field, row[field])
        if row["implementation"] == "torch_sdpa":
            assert row["forward_ratio_sdpa"] == row["forward_backward_ratio_sdpa"] == 1.0
    progress = child.stderr.strip().splitlines()
    assert sum("forward+backward" in line for line in progress) == len(rows)  # one per row


def test_bench_skips_quadratic_memory_above_the_limit():
    from attention_course.bench import run_benchmark

    # n = 64, d = 4, float32: the reference's four n × n matrices are 64 KiB, SDPA's 16 KiB
    result = run_benchmark([64], dim=4, window=2, max_memory_gb=32 / 2**20, min_run_time=0.001,
                           roofline_size=16, implementations=("torch_sdpa", "reference"))
    assert [(s["implementation"], s["length"]) for s in result["skipped"]] == [("reference", 64)]
    assert [row["implementation"] for row in result["rows"]] == ["torch_sdpa"]
    nothing = run_benchmark([64], dim=4, max_memory_gb=1e-9, min_run_time=0.001,
                            roofline_size=16)
    assert nothing["rows"] == [] and len(nothing["skipped"]) == 5
    with pytest.raises(ValueError, match="implementations"):
        run_benchmark([8], implementations=("flash",))
