r"""Attention across devices: sequence-parallel ring attention (Liu et al., 2023).

The sequence is cut into ``P`` contiguous shards, one per process ("rank"). Rank ``r`` keeps
its query shard ``Q_r`` and starts with its own key/value shard ``(K_r, V_r)``. In each of
``P - 1`` steps every rank sends the K/V block it holds to rank ``r + 1`` and receives one
from rank ``r - 1`` (mod ``P``), so after the last step every query shard has met every
key/value shard, while no rank ever held more than a few shards of K/V at once.

Each visiting block gives a *partial* attention: the output ``O_b`` normalised over that
block's keys only, and the per-query log-sum-exp ``lse_b`` of its scores. Two partials over
disjoint keys combine exactly (the online softmax of :mod:`attention_course.efficient`, one
block at a time)::

    lse = logaddexp(lse_a, lse_b)
    O   = exp(lse_a - lse) · O_a + exp(lse_b - lse) · O_b

- :func:`ring_attention` / :func:`ring_attention_with_stats` — run *inside* an initialised
  ``torch.distributed`` process group, one call per rank; they return the rank's output shard
  (and a :class:`RingStats` of what was communicated).
- :func:`run_ring_attention` — the launcher for a notebook or a test: splits full tensors into
  shards, runs :func:`ring_attention` in ``world_size`` local CPU processes (gloo backend) and
  gathers the output, with a :class:`RingRun` of per-rank measurements.
- :func:`run_distributed` — the generic launcher under it: call an importable function in
  ``P`` fresh processes joined in one gloo process group, and return what each returned.

Forward only: the backward pass of ring attention (which sends dK/dV around the ring too) is
not implemented.
"""

from __future__ import annotations

import dataclasses
import datetime
import pickle
import queue as queue_module
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from attention_course._checks import check_float, check_int
from attention_course.attention import _resolve_scale, check_attention_inputs
from attention_course.efficient import _forward as _block_attention

__all__ = ["RingStats", "RingRun", "ring_attention", "ring_attention_with_stats",
           "run_ring_attention", "run_distributed"]


@dataclasses.dataclass(frozen=True)
class RingStats:
    """What one rank's :func:`ring_attention_with_stats` call did (counted, not estimated).

    - ``steps``: communication steps, ``P - 1``.
    - ``bytes_sent`` / ``bytes_received``: payload bytes of the K/V tensors this rank handed to
      ``isend`` / ``irecv`` (``numel × element_size``; no protocol overhead).
    - ``blocks_computed`` / ``blocks_skipped``: K/V blocks this rank's queries were (not)
      attended against; causal attention skips the blocks entirely in the future.
    - ``kv_block_bytes``: bytes of one K/V shard (key + value).
    - ``kv_bytes_held_max``: most K/V bytes alive in this rank at once: its own shard (the
      caller keeps it), the block being attended to and the block being received.
    """

    rank: int
    world_size: int
    steps: int
    bytes_sent: int
    bytes_received: int
    blocks_computed: int
    blocks_skipped: int
    kv_block_bytes: int
    kv_bytes_held_max: int


@dataclasses.dataclass(frozen=True)
class RingRun:
    """What :func:`run_ring_attention` measured, per rank (index = rank).

    - ``ranks``: each rank's :class:`RingStats`.
    - ``peak_memory_bytes``: by how much each process's peak resident memory rose during its
      :func:`ring_attention` call (Linux: ``VmHWM`` reset just before the call; elsewhere the
      rise of ``ru_maxrss``, a lower bound). It counts every allocation that became resident
      (score blocks, receive buffers, gloo's buffers, the output), but memory the process's
      allocator had already made resident and reuses is not a rise: for small inputs it is
      page-level noise, not a measurement.
    - ``attention_seconds``: wall time of each rank's call (communication included).
    - ``wall_seconds``: the whole launch, process startup (each imports torch) included.
    """

    world_size: int
    ranks: tuple[RingStats, ...]
    peak_memory_bytes: tuple[int, ...]
    attention_seconds: tuple[float, ...]
    wall_seconds: float

    @property
    def bytes_sent(self) -> tuple[int, ...]:
        """Bytes of K/V each rank sent."""
        return tuple(s.bytes_sent for s in self.ranks)

    @property
    def kv_bytes_held_max(self) -> tuple[int, ...]:
        """Most K/V bytes each rank held at once."""
        return tuple(s.kv_bytes_held_max for s in self.ranks)


# ------------------------------------------------------------------------------ ring attention

def _merge(out, lse, block_out, block_lse):
    """Combine two partial attentions over disjoint keys: ``out``/``block_out`` ``(..., Lq,
    Ev)`` each normalised over its own keys, ``lse``/``block_lse`` ``(..., Lq, 1)``."""
    new = torch.logaddexp(lse, block_lse)  # (..., Lq, 1)
    return out * torch.exp(lse - new) + block_out * torch.exp(block_lse - new), new


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _group_info(group):
    """``(rank, world_size, global rank of a group rank)`` of this process in ``group``."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("ring_attention must run inside an initialised torch.distributed "
                           "process group (dist.init_process_group(...)); run_ring_attention "
                           "starts one for you")
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("group: this process is not a member of the given process group")
    world_size = dist.get_world_size(group)
    if group is None:
        return rank, world_size, lambda r: r
    return rank, world_size, lambda r: dist.get_global_rank(group, r)


def ring_attention_with_stats(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, RingStats]:
    """:func:`ring_attention` → ``(output shard (..., Lq_shard, Ev), RingStats)``."""
    check_attention_inputs(query, key, value, is_causal=is_causal, scale=scale)
    Lq, Lk = query.shape[-2], key.shape[-2]  # this rank's shard lengths
    if is_causal and Lq != Lk:
        raise ValueError(f"causal ring attention is self-attention with equal shards: the "
                         f"query shard (Lq_shard={Lq}) and key shard (Lk_shard={Lk}) must "
                         f"have the same length")
    if torch.is_grad_enabled() and any(x.requires_grad for x in (query, key, value)):
        raise ValueError("ring_attention is forward-only (no gradient flows through the "
                         "ring): call it under torch.no_grad() or pass detached tensors")
    rank, P, peer = _group_info(group)
    scale = _resolve_scale(scale, query)
    chunk = max(1, min(128, Lq)), max(1, min(128, Lk))  # efficient._forward's tiles

    k, v = key.contiguous(), value.contiguous()  # (..., Lk, E), (..., Lk, Ev): sent as is
    block_bytes = _nbytes(k, v)
    out = lse = None
    sent = received = computed = skipped = held_max = 0
    for step in range(P):
        # Post the transfer of the block we hold before computing on it (they overlap).
        pending, incoming = [], None
        if step < P - 1:
            incoming = torch.empty_like(k), torch.empty_like(v)
            ops = [dist.P2POp(dist.isend, t, peer((rank + 1) % P), group) for t in (k, v)]
            ops += [dist.P2POp(dist.irecv, t, peer((rank - 1) % P), group) for t in incoming]
            pending = dist.batch_isend_irecv(ops)
            sent += block_bytes
            received += block_bytes
        held = (1 + (step > 0) + (incoming is not None)) * block_bytes  # own, current, incoming
        held_max = max(held_max, held)

        source = (rank - step) % P  # whose keys are visiting: global keys source·Lk + [0, Lk)
        if is_causal and source > rank:  # every key lies after every query of this rank
            skipped += 1
        else:
            diagonal = is_causal and source == rank  # Lq == Lk: bottom-right = top-left
            block_out, block_lse = _block_attention(query, k, v, None, diagonal, scale, *chunk)
            out, lse = ((block_out, block_lse) if out is None
                        else _merge(out, lse, block_out, block_lse))
            computed += 1

        for work in pending:
            work.wait()
        if incoming is not None:
            k, v = incoming  # the block we sent is no longer needed here

    stats = RingStats(rank=rank, world_size=P, steps=P - 1, bytes_sent=sent,
                      bytes_received=received, blocks_computed=computed, blocks_skipped=skipped,
                      kv_block_bytes=block_bytes, kv_bytes_held_max=held_max)
    return out.to(query.dtype), stats  # (..., Lq, Ev)


def ring_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    r"""Exact softmax attention over a sequence sharded across the ranks of a process group.

    Call it on every rank of ``group`` (default: the whole world) with that rank's shard:
    ``query`` ``(..., Lq_shard, E)``, ``key`` ``(..., Lk_shard, E)``, ``value``
    ``(..., Lk_shard, Ev)``. Rank ``r`` holds global positions ``r·L_shard … (r+1)·L_shard - 1``
    (contiguous shards, in rank order). Returns this rank's rows of
    ``softmax(Q Kᵀ · scale) V``: output ``(..., Lq_shard, Ev)``, equal to
    :func:`~attention_course.attention.scaled_dot_product_attention` on the full tensors.

    K/V blocks travel around the ring (``isend`` to ``r + 1``, ``irecv`` from ``r - 1``,
    ``P - 1`` steps, the transfer of the next block overlapping the work on the current one);
    the partial results are merged with the log-sum-exp rule of the module docstring. Each
    block is computed by the memory-efficient kernel of :mod:`attention_course.efficient`.

    - Every rank must pass shards of the same shape (the ring does not check this: unequal
      shards fail inside gloo or hang until its timeout).
    - ``is_causal``: global causal attention (``Lq_shard == Lk_shard`` required): blocks from
      later ranks are skipped, the rank's own block gets the causal mask, earlier blocks are
      attended in full. The ring still forwards every block.
    - ``scale`` defaults to ``1/sqrt(E)``. No ``mask`` and no gradient (forward only: inputs
      that require grad are refused while autograd is on).
    """
    return ring_attention_with_stats(query, key, value, is_causal=is_causal, scale=scale,
                                     group=group)[0]


# --------------------------------------------------------------------------------- launchers

def _free_port() -> int:
    """A TCP port free on localhost right now (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_importable(fn) -> bool:
    qualname = getattr(fn, "__qualname__", "") or ""
    module = getattr(fn, "__module__", None)
    return module not in (None, "__main__") and "<" not in qualname


def _worker(rank, world_size, port, fn, payload, results, timeout, num_threads):
    """One spawned rank: join the gloo group, call ``fn``, report ``(rank, ok, bytes)`` once."""
    reported = False
    try:
        torch.set_num_threads(num_threads)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        try:
            result = fn(*pickle.loads(payload))
            dist.barrier()  # no rank leaves while a peer may still be receiving from it
            report = (rank, True, pickle.dumps(result))
        except BaseException:
            report = (rank, False, traceback.format_exc())
        results.put(report)  # before the teardown, which a failed peer can slow down
        reported = True
        dist.destroy_process_group()
    except BaseException:  # report anything, the parent raises it
        if not reported:
            results.put((rank, False, traceback.format_exc()))


_PEER_FAILED = ("DistBackendError", "gloo/transport", "Connection closed by peer",
                "Connection reset by peer")


def _failure_report(P, failures, results, wait=2.0):
    """The message for failed ranks: collect the other ranks' reports for ``wait`` seconds, and
    list the errors of the communication itself (usually the consequence of a peer's failure)
    last."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            rank, ok, data = results.get(timeout=0.1)
        except queue_module.Empty:
            continue
        if not ok:
            failures[rank] = data

    def consequence(rank):
        text = failures[rank]
        return (any(sign in text for sign in _PEER_FAILED), rank)

    ranks = sorted(failures, key=consequence)
    head = ", ".join(map(str, ranks))
    body = "\n".join(f"--- rank {r} ---\n{failures[r]}" for r in ranks)
    plural = "s" if len(ranks) > 1 else ""
    return f"run_distributed: rank{plural} {head} of {P} failed:\n{body}"


def run_distributed(
    fn: Callable,
    args_per_rank: Sequence[tuple],
    *,
    num_threads: int = 1,
    timeout: float = 120.0,
) -> list:
    """Call ``fn(*args_per_rank[r])`` in ``P = len(args_per_rank)`` fresh processes, rank ``r``
    in a gloo process group on localhost, and return ``[result of rank 0, …, rank P-1]``.

    ``fn`` must be importable (defined at module level in an importable module, not in a
    notebook or ``__main__``): processes are started with the ``spawn`` method, which imports
    it. Arguments and results are pickled (a tensor that is a view carries its whole storage:
    pass copies). Each process uses ``num_threads`` torch threads. A rank that raises makes
    this call raise ``RuntimeError`` with its traceback (and those of peers that failed
    because of it, listed after it); the other processes are terminated.
    ``timeout`` (seconds) bounds the group's operations and the whole wait. The port is
    found by binding port 0 and released before the processes start; another program could
    take it in between (then the launch fails; run it again).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not _is_importable(fn):
        raise TypeError(f"fn must be a module-level function of an importable module (spawned "
                        f"processes import it), got {getattr(fn, '__module__', None)}."
                        f"{getattr(fn, '__qualname__', fn)!r}; move it into a .py module")
    if not isinstance(args_per_rank, Sequence) or isinstance(args_per_rank, (str, bytes)):
        raise TypeError(f"args_per_rank must be a list with one tuple of arguments per rank, "
                        f"got {type(args_per_rank).__name__}")
    if len(args_per_rank) < 1:
        raise ValueError("args_per_rank must hold at least one rank's arguments, got none")
    for r, args in enumerate(args_per_rank):
        if not isinstance(args, tuple):
            raise TypeError(f"args_per_rank[{r}] must be a tuple of arguments, got "
                            f"{type(args).__name__}")
    check_int("num_threads", num_threads, minimum=1)
    timeout = check_float("timeout", timeout, minimum=0.0, include_minimum=False)

    P = len(args_per_rank)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(r, P, port, fn, pickle.dumps(args_per_rank[r]), results,
                               timeout, num_threads))
             for r in range(P)]
    outputs, failed = [None] * P, True
    try:
        for p in procs:
            p.start()
        deadline, done = time.monotonic() + timeout, 0
        while done < P:
            try:
                rank, ok, data = results.get(timeout=0.1)
            except queue_module.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run_distributed: {P - done} of {P} ranks did not "
                                       f"finish within timeout={timeout} s") from None
                dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if dead and results.empty():
                    raise RuntimeError(f"run_distributed: rank {dead[0]} exited with code "
                                       f"{procs[dead[0]].exitcode} without a result") from None
                continue
            if not ok:
                raise RuntimeError(_failure_report(P, {rank: data}, results))
            outputs[rank], done = pickle.loads(data), done + 1
        failed = False
    finally:
        for p in procs:
            if failed and p.is_alive():
                p.terminate()  # a peer of a failed rank would wait for it until the timeout
            p.join(timeout=None if not failed else 10)
        results.close()
    return outputs


def _peak_resident_bytes() -> int:
    """This process's peak resident memory (Linux ``VmHWM``; elsewhere ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def _reset_peak() -> None:
    try:  # Linux: reset the high-water mark to the current resident size
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # elsewhere: the rise above the process's earlier peak
        pass


def _ring_rank(query, key, value, is_causal, scale):
    """One rank of :func:`run_ring_attention` → ``(output shard, stats, peak bytes, seconds)``."""
    _reset_peak()
    before, start = _peak_resident_bytes(), time.perf_counter()
    with torch.no_grad():
        out, stats = ring_attention_with_stats(query, key, value, is_causal=is_causal,
                                               scale=scale)
    seconds = time.perf_counter() - start
    return out, stats, max(0, _peak_resident_bytes() - before), seconds


def run_ring_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    world_size: int,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    num_threads: int = 1,
    timeout: float = 120.0,
) -> tuple[torch.Tensor, RingRun]:
    """Ring attention in ``world_size`` local CPU processes → ``(output (..., Lq, Ev), RingRun)``.

    ``query`` ``(..., Lq, E)``, ``key`` ``(..., Lk, E)``, ``value`` ``(..., Lk, Ev)`` are the
    *full* tensors; ``Lq`` and ``Lk`` must be divisible by ``world_size`` (equal shards;
    ``Lq == Lk`` when ``is_causal``). Rank ``r`` gets rows ``r·Lq/P …`` of the query and
    ``r·Lk/P …`` of key and value, runs :func:`ring_attention`, and the output shards are
    concatenated in rank order. The output equals
    :func:`~attention_course.attention.scaled_dot_product_attention` ``(...)[0]`` and carries
    no autograd history. Processes are spawned by :func:`run_distributed` (``num_threads``
    torch threads each; each imports torch, about 1–2 s); see :class:`RingRun` for what is
    measured.
    """
    check_attention_inputs(query, key, value, is_causal=is_causal, scale=scale)
    check_int("world_size", world_size, minimum=1)
    Lq, Lk = query.shape[-2], key.shape[-2]
    for name, length in (("query", Lq), ("key", Lk)):
        if length % world_size:
            raise ValueError(f"{name} length {length} (dimension -2 of shape "
                             f"{tuple(query.shape if name == 'query' else key.shape)}) must "
                             f"be divisible by world_size={world_size}: ring attention uses "
                             f"equal shards")
    if is_causal and Lq != Lk:
        raise ValueError(f"is_causal=True needs self-attention lengths, got Lq={Lq} and "
                         f"Lk={Lk}")
    nq, nk = Lq // world_size, Lk // world_size

    def shard(x, n, r):  # a compact copy: pickling a view would ship the whole storage
        return x[..., r * n:(r + 1) * n, :].detach().clone()

    args = [(shard(query, nq, r), shard(key, nk, r), shard(value, nk, r), is_causal, scale)
            for r in range(world_size)]
    start = time.perf_counter()
    results = run_distributed(_ring_rank, args, num_threads=num_threads, timeout=timeout)
    wall = time.perf_counter() - start
    output = torch.cat([out for out, _, _, _ in results], dim=-2)  # (..., Lq, Ev)
    run = RingRun(world_size=world_size, ranks=tuple(r[1] for r in results),
                  peak_memory_bytes=tuple(r[2] for r in results),
                  attention_seconds=tuple(r[3] for r in results), wall_seconds=wall)
    return output, run

