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
from collections.abc import Callable

import torch
import torch.utils.benchmark as benchmark

from attention_course._checks import check_float, check_int

__all__ = ["median_seconds", "peak_memory_bytes", "matmul_flops"]


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


def _main() -> None:  # pragma: no cover - exercised by `python -m attention_course.bench`
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    x = torch.randn(8, 512, 64)
    seconds = median_seconds(torch.matmul, x, x.mT, num_threads=1)
    print(f"(8, 512, 64) @ (8, 64, 512) on 1 thread: {seconds * 1e3:.3f} ms (median)")
    print(f"peak memory of torch.ones(50_000_000): "
          f"{peak_memory_bytes(torch.ones, 50_000_000) / 2**20:.0f} MiB")


if __name__ == "__main__":  # pragma: no cover
    _main()
