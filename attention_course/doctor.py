"""``python -m attention_course doctor``: is this machine ready for the course?

Prints one ``OK``/``FAIL`` line per check and returns a non-zero exit code if any check fails.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from collections.abc import Callable

__all__ = ["main", "run_checks"]

Check = Callable[[], str]  # returns a detail string, raises on failure


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in ("torch", "numpy", "matplotlib"):
        parts.append(f"{name} {importlib.import_module(name).__version__}")
    return ", ".join(parts)


def _threads() -> str:
    import os

    import torch

    return f"torch uses {torch.get_num_threads()} threads on {os.cpu_count()} logical CPUs"


def _kernel_sees_package(timeout: float = 60.0) -> str:
    """Start the ``python3`` Jupyter kernel (the one notebooks ask for) and import the package."""
    import subprocess

    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(
        kernel_name="python3", startup_timeout=timeout, stderr=subprocess.DEVNULL
    )
    try:
        code = "import attention_course, sys; print(attention_course.__file__, sys.executable)"
        outputs: list[str] = []

        def collect(msg):
            content = msg["content"]
            if msg["msg_type"] == "stream":
                outputs.append(content["text"])
            elif msg["msg_type"] == "error":
                outputs.append(f"{content['ename']}: {content['evalue']}")

        reply = client.execute_interactive(code, timeout=timeout, output_hook=collect)
        text = "".join(outputs).strip()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(
                f"the 'python3' kernel cannot import attention_course ({text}); register a kernel "
                f"for this environment: {sys.executable} -m ipykernel install --user"
            )
        return f"kernel 'python3' imports {text.split()[0]}"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _self_test() -> str:
    """Our scaled dot-product attention against torch's, in float64, with masks."""
    import torch
    import torch.nn.functional as F

    from attention_course.attention import scaled_dot_product_attention
    from attention_course.masks import causal_mask

    start = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for Lq, Lk in ((1, 1), (7, 7), (5, 11), (16, 9)):
        q = torch.randn(2, 4, Lq, 8, generator=g, dtype=torch.float64)
        k = torch.randn(2, 4, Lk, 8, generator=g, dtype=torch.float64)
        v = torch.randn(2, 4, Lk, 5, generator=g, dtype=torch.float64)
        mask = causal_mask(Lq, Lk) | (torch.arange(Lk) == Lk - 1)  # every row keeps a key
        ours, _ = scaled_dot_product_attention(q, k, v, mask)
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        worst = max(worst, (ours - theirs).abs().max().item())
    if not worst < 1e-12:
        raise AssertionError(f"max |ours - torch| = {worst:.2e} (expected < 1e-12)")
    return f"matches torch SDPA, max difference {worst:.1e} ({time.perf_counter() - start:.2f} s)"


CHECKS: dict[str, Check] = {
    "versions": _versions,
    "threads": _threads,
    "jupyter kernel": _kernel_sees_package,
    "numerical self-test": _self_test,
}


def run_checks(checks: dict[str, Check], out=sys.stdout) -> bool:
    """Run each check, print ``OK``/``FAIL`` lines, return ``True`` when all pass."""
    ok = True
    for name, check in checks.items():
        try:
            detail = check()
        except Exception as error:  # noqa: BLE001 - a doctor reports every failure
            ok = False
            print(f"FAIL  {name}: {type(error).__name__}: {error}", file=out)
        else:
            print(f"OK    {name}: {detail}", file=out)
    print("All checks passed." if ok else "Some checks failed (see FAIL lines).", file=out)
    return ok


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m attention_course")
    parser.add_argument("command", choices=["doctor"], help="doctor: check this installation")
    parser.parse_args(argv)
    return 0 if run_checks(CHECKS) else 1
