"""Chapter 8's ring attention: in 2 and 3 local gloo processes its output equals the float64
reference (causal and not, with batch/head dimensions, cross-attention lengths), each rank sends
exactly ``P - 1`` K/V shards, causal ranks skip the future blocks, and bad arguments are refused
by name. Process launches are slow (each process imports torch), so one launch checks many
cases."""

import pytest
import torch
import torch.distributed as dist

from attention_course.attention import reference_attention
from attention_course.distributed import (
    RingRun,
    RingStats,
    ring_attention,
    ring_attention_with_stats,
    run_distributed,
    run_ring_attention,
)
from tests.helpers import assert_raises_naming, rand

TOL = dict(atol=1e-12, rtol=1e-12)


def qkv(lead, Lq, Lk, E, Ev, seed=0):
    return (rand(*lead, Lq, E, seed=seed + 1), rand(*lead, Lk, E, seed=seed + 2),
            rand(*lead, Lk, Ev, seed=seed + 3))


def reference(q, k, v, *, is_causal=False, scale=None):
    return reference_attention(q, k, v, is_causal=is_causal, scale=scale)[0]


# Run in the spawned processes (importable from this module): every case on this rank's shard.
def _ring_cases(cases):
    rank, P = dist.get_rank(), dist.get_world_size()
    results = []
    for q, k, v, is_causal, scale in cases:
        nq, nk = q.shape[-2] // P, k.shape[-2] // P
        shard = (q[..., rank * nq:(rank + 1) * nq, :], k[..., rank * nk:(rank + 1) * nk, :],
                 v[..., rank * nk:(rank + 1) * nk, :])
        results.append(ring_attention_with_stats(*shard, is_causal=is_causal, scale=scale))
    errors = []  # refused on every rank before any communication
    q, k, v = cases[0][:3]
    for call in (lambda: ring_attention(q[..., :2, :], k[..., :3, :], v[..., :3, :],
                                        is_causal=True),
                 lambda: ring_attention(q.requires_grad_(), k, v)):
        try:
            call()
            errors.append(None)
        except ValueError as error:
            errors.append(str(error))
    return results, errors


def _fail_on_rank_one():
    if dist.get_rank() == 1:
        raise ArithmeticError("rank one gives up")
    dist.barrier()  # rank 0 would wait here for ever: the launcher must end it


CASES = [  # (q, k, v, is_causal, scale); lengths divisible by 2 and 3
    (*qkv((2, 3), 12, 12, 8, 5), False, None),
    (*qkv((2, 3), 12, 12, 8, 5, seed=10), True, None),
    (*qkv((4,), 6, 18, 4, 4, seed=20), False, 0.3),  # cross-attention, Lq != Lk
    (*qkv((), 24, 24, 6, 7, seed=30), True, 0.5),  # no leading dimensions
]


@pytest.fixture(scope="module", params=[2, 3])
def ring_cases(request):
    P = request.param
    return P, run_distributed(_ring_cases, [(CASES,)] * P)


def test_ring_attention_equals_the_reference_on_every_rank(ring_cases):
    P, per_rank = ring_cases
    for i, (q, k, v, is_causal, scale) in enumerate(CASES):
        output = torch.cat([results[i][0] for results, _ in per_rank], dim=-2)
        assert output.dtype == torch.float64 and output.shape == (*q.shape[:-1], v.shape[-1])
        torch.testing.assert_close(output, reference(q, k, v, is_causal=is_causal, scale=scale),
                                   **TOL, msg=f"case {i} (is_causal={is_causal}), P={P}")


def test_each_rank_sends_p_minus_one_kv_shards_and_skips_the_future(ring_cases):
    P, per_rank = ring_cases
    for i, (_, k, v, is_causal, _) in enumerate(CASES):
        shard_bytes = (k.numel() + v.numel()) * 8 // P  # float64, one rank's K and V
        for rank, (results, _) in enumerate(per_rank):
            stats = results[i][1]
            assert isinstance(stats, RingStats)
            assert (stats.rank, stats.world_size, stats.steps) == (rank, P, P - 1)
            assert stats.kv_block_bytes == shard_bytes
            assert stats.bytes_sent == stats.bytes_received == (P - 1) * shard_bytes
            # own shard + the block in use + the block arriving (2 shards when P == 2)
            assert stats.kv_bytes_held_max == min(P, 3) * shard_bytes
            computed = rank + 1 if is_causal else P  # causal: blocks of ranks <= this one
            assert (stats.blocks_computed, stats.blocks_skipped) == (computed, P - computed)


def test_ring_attention_refuses_bad_shards_inside_the_group(ring_cases):
    _, per_rank = ring_cases
    for _, (causal_lengths, grad) in per_rank:
        assert "Lq_shard=2" in causal_lengths and "Lk_shard=3" in causal_lengths
        assert "forward-only" in grad and "no_grad" in grad


def test_run_ring_attention_gathers_the_output_and_its_stats():
    q, k, v = qkv((2, 2), 8, 8, 4, 6, seed=40)
    output, run = run_ring_attention(q, k, v, 2, is_causal=True)
    torch.testing.assert_close(output, reference(q, k, v, is_causal=True), **TOL)
    assert isinstance(run, RingRun) and run.world_size == 2 and len(run.ranks) == 2
    shard_bytes = (k.numel() + v.numel()) * 8 // 2
    assert run.bytes_sent == (shard_bytes, shard_bytes)
    assert run.kv_bytes_held_max == (2 * shard_bytes, 2 * shard_bytes)
    assert [s.blocks_skipped for s in run.ranks] == [1, 0]  # rank 0 never needs rank 1's keys
    assert all(b >= 0 for b in run.peak_memory_bytes) and len(run.peak_memory_bytes) == 2
    assert all(0 < s < run.wall_seconds for s in run.attention_seconds)


def test_a_failing_rank_raises_in_the_parent_and_ends_its_peers():
    with pytest.raises(RuntimeError) as info:
        run_distributed(_fail_on_rank_one, [(), ()], timeout=60.0)
    message = str(info.value)
    assert message.startswith("run_distributed: rank") and "of 2 failed" in message
    assert message.split("--- rank ")[1].startswith("1 ---")  # the cause first, then rank 0
    assert "ArithmeticError: rank one gives up" in message


# ------------------------------------------------------------- arguments (no process started)

def test_run_ring_attention_rejects_bad_arguments():
    q, k, v = qkv((2,), 6, 6, 4, 4)
    assert_raises_naming(lambda: run_ring_attention(q, k, v, 0), ValueError,
                         ["world_size", ">= 1", "0"])
    assert_raises_naming(lambda: run_ring_attention(q, k, v, 2.0), TypeError,
                         ["world_size", "int", "float"])
    assert_raises_naming(lambda: run_ring_attention(q, k, v, 4), ValueError,
                         ["query length 6", "divisible", "world_size=4"])
    k5, v5 = k[..., :5, :], v[..., :5, :]
    assert_raises_naming(lambda: run_ring_attention(q, k5, v5, 3), ValueError,
                         ["key length 5", "divisible", "world_size=3"])
    k3, v3 = k[..., :3, :], v[..., :3, :]
    assert_raises_naming(lambda: run_ring_attention(q, k3, v3, 3, is_causal=True),
                         ValueError, ["is_causal", "Lq=6", "Lk=3"])
    assert_raises_naming(lambda: run_ring_attention(q, k[..., :3], v, 2), ValueError,
                         ["feature size", "E=4", "3"])
    assert_raises_naming(lambda: run_ring_attention(q, k, v, 2, is_causal=1), TypeError,
                         ["is_causal", "bool"])
    assert_raises_naming(lambda: run_ring_attention(q.float(), k, v, 2), TypeError,
                         ["dtype", "torch.float64", "torch.float32"])


def test_run_distributed_rejects_bad_arguments():
    assert_raises_naming(lambda: run_distributed(lambda: None, [()]), TypeError,
                         ["fn", "module-level", "<lambda>"])
    assert_raises_naming(lambda: run_distributed(_fail_on_rank_one, []), ValueError,
                         ["args_per_rank", "at least one"])
    assert_raises_naming(lambda: run_distributed(_fail_on_rank_one, [[1]]), TypeError,
                         ["args_per_rank[0]", "tuple", "list"])
    assert_raises_naming(lambda: run_distributed(_fail_on_rank_one, [()], num_threads=0),
                         ValueError, ["num_threads", ">= 1"])
    assert_raises_naming(lambda: run_distributed(_fail_on_rank_one, [()], timeout=0),
                         ValueError, ["timeout", "> 0"])


def test_ring_attention_needs_a_process_group():
    assert not dist.is_initialized()
    q, k, v = qkv((), 4, 4, 2, 2)
    assert_raises_naming(lambda: ring_attention(q, k, v), RuntimeError,
                         ["process group", "init_process_group", "run_ring_attention"])
