"""Timing and peak memory of CPU code, for the course's benchmarks.

- :func:`median_seconds` times a call with ``torch.utils.benchmark.Timer`` and
  ``blocked_autorange``: repeated blocks of runs, the median time of one run. The timer runs on
  the number of threads it is given (its own default is **one** thread, whatever
  ``torch.get_num_threads()`` says), so this module always states it.
- :func:`peak_memory_bytes` runs a call in a fresh Python process and reports by how much the
  process's peak resident memory rose above its level just before the call. A subprocess,
  because Python's ``tracemalloc`` does not see the memory behind tensors, and because a
  process's peak can only be measured once it has been reset.

Chapter 7 builds its benchmark table from these two functions.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping

import torch
import torch.utils.benchmark as benchmark

from attention_course._checks import check_bool, check_float, check_int

__all__ = ["median_seconds", "fastest_seconds", "peak_memory_bytes", "matmul_flops",
           "peak_memory_bytes_each", "run_stack_forward_backward", "run_benchmark",
           "format_table"]


def median_seconds(fn: Callable, *args, num_threads: int = 1, min_run_time: float = 0.1) -> float:
    """Median wall-clock time of one call ``fn(*args)``, in seconds.

    Uses ``torch.utils.benchmark.Timer(num_threads=num_threads)`` and ``blocked_autorange``:
    the timer picks a number of runs per block so that each block is long enough to time
    accurately, repeats blocks for at least ``min_run_time`` seconds, and returns the median
    time per run. During the measurement torch uses ``num_threads`` threads; the previous
    setting is restored afterwards. Wrap ``fn`` in ``torch.no_grad()`` yourself when autograd
    should not record.

    Args:
        fn: the callable to time.
        *args: its arguments (created once, outside the timed region).
        num_threads: torch threads during the measurement (``torch.get_num_threads()`` to keep
            the current setting).
        min_run_time: total seconds to spend measuring, at least.

    Returns:
        The median seconds per call.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_int("num_threads", num_threads, minimum=1)
    min_run_time = check_float("min_run_time", min_run_time, minimum=0.0, include_minimum=False)
    timer = benchmark.Timer("fn(*args)", globals={"fn": fn, "args": args},
                            num_threads=num_threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def fastest_seconds(calls: Mapping, *, rounds: int = 3, num_threads: int = 1,
                    min_run_time: float = 0.02) -> dict:
    """:func:`median_seconds` of several calls, measured in interleaved rounds; the fastest
    round of each call is kept.

    ``calls`` maps any key to a tuple ``(fn, *args)``. Each round times every call once, so a
    burst of other work on the machine hits one round of a call, not all of them; since such
    noise only ever adds time, the minimum over the rounds is the steadier estimate (what a
    growth-rate fit on a shared machine needs).

    Returns:
        ``{key: seconds}`` in the order of ``calls``.
    """
    check_int("rounds", rounds, minimum=1)
    best = {}
    for _ in range(rounds):
        for key, (fn, *args) in calls.items():
            t = median_seconds(fn, *args, num_threads=num_threads, min_run_time=min_run_time)
            best[key] = min(best.get(key, t), t)
    return best


# The child process: read the import path, then the call, from stdin; reset the peak; call;
# print the rise of the peak over the level just before the call (in bytes).
_CHILD = r"""
import os, pickle, resource, sys
stream = sys.stdin.buffer
path = pickle.load(stream)
sys.path[:0] = [p for p in path if p not in sys.path]
num_threads, fn, args, kwargs = pickle.load(stream)
if "torch" in sys.modules:  # imported by fn's module or the arguments
    sys.modules["torch"].set_num_threads(num_threads)


def peak():
    # Linux: the peak resident size of this process's memory (VmHWM, KiB), which clear_refs
    # resets. Elsewhere ru_maxrss (bytes on macOS), which also remembers the parent's size.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


try:  # Linux: reset the peak ("high-water mark") to the current resident size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:  # elsewhere: the rise above the earlier peak (a lower bound)
    pass
before = peak()
result = fn(*args, **kwargs)
print(peak() - before)
"""


def _is_importable(fn) -> bool:
    qualname = getattr(fn, "__qualname__", "") or ""
    module = getattr(fn, "__module__", None)
    return module != "__main__" and "<lambda>" not in qualname and "<locals>" not in qualname


def peak_memory_bytes(fn: Callable, *args, num_threads: int = 1, timeout: float = 600.0,
                      **kwargs) -> int:
    """Peak memory of one call ``fn(*args, **kwargs)``, measured in a fresh Python process.

    The child process imports ``fn`` and unpickles the arguments, resets its peak resident set
    size (Linux: ``/proc/self/clear_refs``), calls ``fn`` once, and reports the peak
    (``VmHWM``) after the call minus the level just before it: the extra memory the call
    needed at its peak, including the memory behind tensors it allocated and freed again.
    Where the peak cannot be reset (macOS: ``ru_maxrss``), the result is a lower bound, the
    rise above the earlier peak of the process.

    ``fn`` must be importable by name (a module-level function such as ``torch.ones``, or one
    in your own module); lambdas and functions defined in a notebook cannot be sent to another
    process. The arguments are pickled: their own memory counts towards the level before the
    call, not towards the result. Resident memory is counted in pages, so expect an overhead of
    up to a few MB; measure allocations much larger than that.

    Args:
        fn: an importable callable.
        *args, **kwargs: its (picklable) arguments.
        num_threads: torch threads in the child process (also its ``OMP_NUM_THREADS``).
        timeout: seconds before the child is stopped and an error raised.

    Returns:
        Bytes, an int (``0`` if the call allocated nothing beyond the earlier level).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not _is_importable(fn):
        raise TypeError(f"fn must be importable by name to run in another process (a "
                        f"module-level function), got {fn!r}; move it into a module")
    check_int("num_threads", num_threads, minimum=1)
    timeout = check_float("timeout", timeout, minimum=0.0, include_minimum=False)
    try:
        payload = pickle.dumps([p for p in sys.path if isinstance(p, str)])
        payload += pickle.dumps((num_threads, fn, args, kwargs))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise TypeError(f"fn and its arguments must be picklable to run in another process: "
                        f"{error}") from error
    env = {**os.environ, "OMP_NUM_THREADS": str(num_threads)}
    child = subprocess.run([sys.executable, "-c", _CHILD], input=payload, capture_output=True,
                           env=env, timeout=timeout, check=False)
    if child.returncode != 0:
        message = child.stderr.decode(errors="replace").strip().splitlines()[-20:]
        raise RuntimeError(f"peak_memory_bytes: calling {fn!r} in a subprocess failed "
                           f"(exit code {child.returncode}):\n" + "\n".join(message))
    return max(int(child.stdout.decode().split()[-1]), 0)


def matmul_flops(fn: Callable, *args, **kwargs) -> dict[str, int]:
    """FLOPs of the matrix products ``fn(*args, **kwargs)`` runs, by torch op name.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add), e.g.
    ``{"addmm": …, "bmm": …}``: ``addmm``/``mm`` are the linear maps, ``bmm`` the batched
    products such as ``QKᵀ`` and ``AV``. Runs on meta tensors too (no data, no time).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    counts = counter.get_flop_counts().get("Global", {})
    return {getattr(op, "__name__", str(op)).split(".")[0]: int(n) for op, n in counts.items()}


# The child of peak_memory_bytes_each: the same peak reset as _CHILD, once per call.
_CHILD_EACH = r"""
import gc, pickle, sys
stream = sys.stdin.buffer
path = pickle.load(stream)
sys.path[:0] = [p for p in path if p not in sys.path]
num_threads, warmup, calls = pickle.load(stream)
if "torch" in sys.modules:
    sys.modules["torch"].set_num_threads(num_threads)


def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024


for fn, args in calls:
    if warmup:
        fn(*args)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = peak()
    fn(*args)
    print(peak() - before, flush=True)
"""


def peak_memory_bytes_each(calls, *, num_threads: int = 1, warmup: bool = True,
                           timeout: float = 1800.0) -> list[int]:
    """Peak extra memory of each call ``fn(*args)`` in ``calls``, all in **one** fresh process
    (Linux only).

    Like :func:`peak_memory_bytes`, but the process (and its ``import torch``, a few seconds) is
    shared: before each call the peak resident size is reset (``/proc/self/clear_refs``) and the
    call's rise above the level just before it is recorded. The child's ``malloc`` returns large
    blocks to the system when they are freed (``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB), so
    memory freed by one call is not silently reused by the next. With ``warmup`` each call runs
    once unmeasured first, so one-time costs (lazy initialisation, autograd's worker thread) are
    left out: the steady-state extra memory of the call.

    Returns:
        Bytes per call, in order.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError("peak_memory_bytes_each needs Linux (/proc/self/clear_refs); use "
                           "peak_memory_bytes")
    calls = list(calls)
    for i, (fn, _) in enumerate(calls):
        if not callable(fn) or not _is_importable(fn):
            raise TypeError(f"calls[{i}]: fn must be an importable callable, got {fn!r}")
    check_int("num_threads", num_threads, minimum=1)
    check_bool("warmup", warmup)
    timeout = check_float("timeout", timeout, minimum=0.0, include_minimum=False)
    payload = pickle.dumps([p for p in sys.path if isinstance(p, str)])
    payload += pickle.dumps((num_threads, warmup, [(fn, tuple(args)) for fn, args in calls]))
    env = {**os.environ, "OMP_NUM_THREADS": str(num_threads), "MALLOC_MMAP_THRESHOLD_": "131072"}
    child = subprocess.run([sys.executable, "-c", _CHILD_EACH], input=payload,
                           capture_output=True, env=env, timeout=timeout, check=False)
    if child.returncode != 0:
        message = child.stderr.decode(errors="replace").strip().splitlines()[-20:]
        raise RuntimeError(f"peak_memory_bytes_each: the subprocess failed (exit code "
                           f"{child.returncode}):\n" + "\n".join(message))
    return [max(int(x), 0) for x in child.stdout.decode().split()]


def run_stack_forward_backward(layers, x, checkpoint: bool) -> None:
    """Forward and backward through ``layers`` (applied in order to ``x`` ``(B, L, D)``), with
    or without gradient checkpointing (:func:`attention_course.checkpointing.run_layers`).

    Module level, so :func:`peak_memory_bytes_each` can run it in a subprocess (Chapter 8).
    The parameters' gradients are reset first, so repeated calls do the same work.
    """
    from attention_course.checkpointing import run_layers

    for layer in layers:
        layer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        run_layers(layers, x, checkpoint=checkpoint).sum().backward()


# ------------------------------------------------------------- the benchmark table (chapter 7)
# `python -m attention_course.bench`: implementation × sequence length → time, peak memory,
# ratio to torch's SDPA and fraction of a matmul roofline, forward and forward+backward.

IMPLEMENTATIONS = ("torch_sdpa", "reference", "memory_efficient", "linear", "local")
# Only the reference forms the (n × n) matrices: its memory is estimated before it runs.
_QUADRATIC_MEMORY = ("reference",)
ROW_FIELDS = ("implementation", "length", "dim", "threads", "forward_ms", "forward_backward_ms",
              "forward_mib", "forward_backward_mib", "forward_ratio_sdpa",
              "forward_backward_ratio_sdpa", "forward_gflops", "forward_backward_gflops",
              "forward_roofline", "forward_backward_roofline")


def _attend(name, q, k, v, window):
    """One non-causal self-attention call of the named implementation → output."""
    import torch.nn.functional as F

    from attention_course.attention import scaled_dot_product_attention
    from attention_course.efficient import (
        linear_attention,
        local_attention,
        memory_efficient_attention,
    )

    if name == "torch_sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if name == "reference":
        return scaled_dot_product_attention(q, k, v)[0]
    if name == "memory_efficient":
        return memory_efficient_attention(q, k, v)
    if name == "linear":
        return linear_attention(q, k, v)
    if name == "local":
        return local_attention(q, k, v, window)
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {name!r}")


def run_forward(name: str, q, k, v, window: int) -> None:
    """Forward only, without autograd (module level: :func:`peak_memory_bytes` imports it)."""
    with torch.no_grad():
        _attend(name, q, k, v, window)


def run_forward_backward(name: str, q, k, v, window: int, grad) -> None:
    """Forward and backward to ``query``, ``key`` and ``value`` (module level, as above)."""
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    with torch.enable_grad():
        _attend(name, q, k, v, window).backward(grad)


def attention_flops(name: str, length: int, dim: int, window: int) -> int:
    """Useful forward FLOPs (2 per multiply-add) of one ``(length, dim)`` self-attention:
    ``QKᵀ`` and ``AV`` over the pairs that count (all pairs; the window's for ``local``), or
    ``φ(K)ᵀV`` and ``φ(Q)S`` for ``linear``. Forward+backward is counted as 3× forward (the
    backward's four products against the forward's two). Recomputation is not useful work."""
    if name == "linear":
        return 4 * length * dim * dim
    if name == "local":
        i = torch.arange(length)
        pairs = int(((i + window).clamp(max=length - 1) - (i - window).clamp(min=0) + 1).sum())
        return 4 * pairs * dim
    return 4 * length * length * dim


def _estimated_bytes(name: str, length: int, dim: int, itemsize: int) -> int:
    """Rough peak extra memory of forward+backward: four ``n × n`` matrices for the reference
    (scores, weights and their gradients), a few ``n × d`` ones otherwise."""
    if name in _QUADRATIC_MEMORY:
        return 4 * length * length * itemsize
    return 16 * length * dim * itemsize


def machine_summary(threads: int) -> dict:
    """Threads, torch version, BLAS (from ``torch.__config__.show()``) and CPU model."""
    import platform
    import re

    config = torch.__config__.show()
    info = re.search(r"BLAS_INFO=(\w+)", config)
    library = next((line.strip().lstrip("- ").split(" for ")[0] for line in config.splitlines()
                    if "Math Kernel Library" in line or "OpenBLAS" in line or "BLIS" in line),
                   "")
    blas = ", ".join(x for x in (info.group(1) if info else "", library) if x) or "unknown"
    cpu = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                        if line.startswith("model name")), "")
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown"
    return {"threads": threads, "torch": torch.__version__, "blas": blas,
            "cpu": f"{cpu} ({os.cpu_count()} logical CPUs)", "dtype": "float32"}


def matmul_roofline(size: int, *, num_threads: int, min_run_time: float) -> float:
    """GFLOP/s of ``torch.matmul`` on two ``size × size`` float32 matrices on this machine."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(torch.matmul, a, b, num_threads=num_threads,
                             min_run_time=min_run_time)
    return 2 * size**3 / seconds / 1e9


def run_benchmark(lengths, *, dim: int = 64, threads: int = 1, window: int = 128,
                  max_memory_gb: float = 2.0, min_run_time: float = 0.2,
                  roofline_size: int = 1024, implementations=IMPLEMENTATIONS,
                  progress=None) -> dict:
    """The benchmark as data: ``{"machine", "roofline_gflops", "rows", "skipped"}``.

    Inputs ``(1, 1, n, dim)`` float32 (batch, heads, length, features), non-causal. Times are
    medians of :func:`median_seconds` on ``threads`` threads; memory is
    :func:`peak_memory_bytes_each`, one fresh process per length. Ratios are time over torch
    SDPA's at the same length (``None`` if SDPA was skipped); the roofline fraction is the
    achieved useful GFLOP/s (:func:`attention_flops`) over ``torch.matmul``'s. Implementations
    with quadratic memory (the reference) are skipped where their estimated forward+backward
    memory exceeds ``max_memory_gb``. ``progress(text)`` is called once per row.
    """
    from attention_course import bench  # importable names even when run as __main__

    for name in implementations:
        if name not in IMPLEMENTATIONS:
            raise ValueError(f"implementations: unknown {name!r}, expected {IMPLEMENTATIONS}")
    check_int("dim", dim, minimum=1)
    check_int("threads", threads, minimum=1)
    check_int("window", window, minimum=0)
    max_memory_gb = check_float("max_memory_gb", max_memory_gb, minimum=0.0,
                                include_minimum=False)
    for length in lengths:
        check_int("lengths", length, minimum=1)
    names = ["torch_sdpa", *[n for n in implementations if n != "torch_sdpa"]]
    roofline = matmul_roofline(roofline_size, num_threads=threads, min_run_time=min_run_time)
    rows, skipped, sdpa = [], [], {}
    total = len(lengths) * len(names)
    generator = torch.Generator().manual_seed(0)
    for length in lengths:
        # (batch, heads, n, d): 4-D inputs let torch's SDPA take its fused (flash) CPU kernel
        q, k, v, grad = (torch.randn(1, 1, length, dim, generator=generator) for _ in range(4))
        measured = []
        for name in names:
            estimate = _estimated_bytes(name, length, dim, q.element_size())
            if estimate > max_memory_gb * 2**30:
                skipped.append({"implementation": name, "length": length,
                                "estimated_gib": estimate / 2**30})
                if progress:
                    progress(f"[{len(rows) + len(measured) + len(skipped)}/{total}] {name} "
                             f"n={length}: skipped (estimated {estimate / 2**30:.1f} GiB > "
                             f"{max_memory_gb} GiB)")
                continue
            fwd = median_seconds(bench.run_forward, name, q, k, v, window,
                                 num_threads=threads, min_run_time=min_run_time)
            both = median_seconds(bench.run_forward_backward, name, q, k, v, window, grad,
                                  num_threads=threads, min_run_time=min_run_time)
            if name == "torch_sdpa":
                sdpa[length] = (fwd, both)
            measured.append((name, fwd, both))
            if progress:
                progress(f"[{len(rows) + len(measured) + len(skipped)}/{total}] {name} "
                         f"n={length}: forward {fwd * 1e3:.2f} ms, forward+backward "
                         f"{both * 1e3:.2f} ms")
        calls = []  # every implementation's memory at this length, in one fresh process
        for name, _, _ in measured:
            calls += [(bench.run_forward, (name, q, k, v, window)),
                      (bench.run_forward_backward, (name, q, k, v, window, grad))]
        memory = peak_memory_bytes_each(calls, num_threads=threads) if calls else []
        if calls and progress:
            progress(f"n={length}: peak memory measured in a subprocess")
        for i, (name, fwd, both) in enumerate(measured):
            flops = attention_flops(name, length, dim, window)
            rows.append({
                "implementation": name, "length": length, "dim": dim, "threads": threads,
                "forward_ms": fwd * 1e3, "forward_backward_ms": both * 1e3,
                "forward_mib": memory[2 * i] / 2**20,
                "forward_backward_mib": memory[2 * i + 1] / 2**20,
                "forward_ratio_sdpa": fwd / sdpa[length][0] if length in sdpa else None,
                "forward_backward_ratio_sdpa": (both / sdpa[length][1] if length in sdpa
                                                else None),
                "forward_gflops": flops / fwd / 1e9,
                "forward_backward_gflops": 3 * flops / both / 1e9,
            })
    # The roofline: the better of two measurements, before and after (a busy machine slows
    # one of them down; the fractions should not exceed 1 because of that).
    roofline = max(roofline, matmul_roofline(roofline_size, num_threads=threads,
                                             min_run_time=min_run_time))
    for row in rows:
        row["forward_roofline"] = row["forward_gflops"] / roofline
        row["forward_backward_roofline"] = row["forward_backward_gflops"] / roofline
    return {"machine": machine_summary(threads), "dim": dim, "window": window,
            "roofline_size": roofline_size, "roofline_gflops": roofline, "rows": rows,
            "skipped": skipped}


def format_table(result: dict) -> str:
    """The benchmark as a text table, with the machine in the header."""
    m = result["machine"]
    lines = [f"threads {m['threads']} · torch {m['torch']} · BLAS {m['blas']}",
             f"CPU {m['cpu']} · {m['dtype']} · d={result['dim']} · batch 1, 1 head, non-causal · "
             f"local window {result['window']}",
             f"roofline: torch.matmul {result['roofline_size']}² × {result['roofline_size']}² = "
             f"{result['roofline_gflops']:.1f} GFLOP/s (best of before and after the rows)",
             "",
             f"{'implementation':<17}{'n':>6} | {'fwd ms':>9}{'f+b ms':>10} | {'fwd MiB':>8}"
             f"{'f+b MiB':>9} | {'fwd/SDPA':>8}{'f+b/SDPA':>9} | {'fwd roof':>8}{'f+b roof':>9}"]
    lines.append("-" * len(lines[-1]))
    for r in result["rows"]:
        lines.append(
            f"{r['implementation']:<17}{r['length']:>6} | {r['forward_ms']:>9.2f}"
            f"{r['forward_backward_ms']:>10.2f} | {r['forward_mib']:>8.1f}"
            f"{r['forward_backward_mib']:>9.1f} | {r['forward_ratio_sdpa']:>8.2f}"
            f"{r['forward_backward_ratio_sdpa']:>9.2f} | {r['forward_roofline']:>8.3f}"
            f"{r['forward_backward_roofline']:>9.3f}")
    for s in result["skipped"]:
        lines.append(f"{s['implementation']:<17}{s['length']:>6} | skipped: estimated "
                     f"{s['estimated_gib']:.1f} GiB above --max-memory-gb")
    lines.append("")
    lines.append("Times: median (torch.utils.benchmark, blocked_autorange). Memory: peak extra "
                 "resident memory of one call in a fresh process. roof = useful GFLOP/s / "
                 "matmul GFLOP/s.")
    return "\n".join(lines)


def _main(argv=None) -> None:  # pragma: no cover - exercised by `python -m attention_course.bench`
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m attention_course.bench",
        description="Attention implementations × sequence length: median time, peak memory, "
                    "ratio to torch SDPA, fraction of a matmul roofline.")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="sequence lengths (default 128 256 … 16384)")
    parser.add_argument("--dim", type=int, default=None, help="feature size d (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--window", type=int, default=None,
                        help="local attention's window (default 128)")
    parser.add_argument("--max-memory-gb", type=float, default=2.0,
                        help="skip quadratic-memory implementations whose estimated "
                             "forward+backward memory exceeds this (default 2)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds of timing per measurement (default 0.2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a smoke test, not a measurement)")
    args = parser.parse_args(argv)
    quick = args.quick
    lengths = args.lengths or ([32, 64] if quick else [2**p for p in range(7, 15)])
    dim = args.dim or (16 if quick else 64)
    window = args.window if args.window is not None else (8 if quick else 128)
    min_run_time = args.min_run_time or (0.01 if quick else 0.2)
    torch.set_num_threads(args.threads)
    result = run_benchmark(lengths, dim=dim, threads=args.threads, window=window,
                           max_memory_gb=args.max_memory_gb, min_run_time=min_run_time,
                           roofline_size=128 if quick else 1024,
                           progress=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=1) if args.json else format_table(result))


if __name__ == "__main__":  # pragma: no cover
    _main()
