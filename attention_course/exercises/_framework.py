"""Shared machinery of the exercise checkers.

A checker calls your function and the course's reference implementation on the same small
float64 test cases (:class:`Case`). If they disagree, it also runs *mutants* — the reference with
one known mistake (:class:`Mistake`) — on the failing case: when your result matches a mutant
(same values, or the same exception), the error message names that mistake and how to fix it.
Otherwise it says what came back, what was expected, and on which inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Case", "Mistake", "randn", "run_checks"]


@dataclass(frozen=True)
class Case:
    """One test input: the checker calls ``fn(*inputs.values())``.

    ``description`` says in words what the case exercises and its sizes (e.g. ``"batched, padding
    mask: B=2, Lq=3, Lk=5"``).
    """

    description: str
    inputs: dict[str, object]


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer, recognised by the output it produces.

    ``fns`` are mutants: the reference with this one mistake (several when the mistake is often
    written in different ways). ``name`` is a short label; ``message`` explains why it is wrong
    and how to fix it.
    """

    name: str
    message: str
    fns: tuple[Callable, ...]


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard-normal float64 tensor drawn from ``generator`` (deterministic test data)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


class _Raised:
    """Outcome of a call that raised ``error``."""

    def __init__(self, error: Exception):
        self.error = error


def _call(fn: Callable, case: Case):
    """Call ``fn`` on fresh copies of the inputs → (result or _Raised, names of changed inputs)."""
    originals = case.inputs
    args = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in originals.items()}
    try:
        result = fn(*args.values())
    except Exception as error:  # anything the learner's code raises becomes a diagnosis
        result = _Raised(error)
    changed = [k for k, v in originals.items()
               if isinstance(v, torch.Tensor) and not _identical(args[k], v)]
    return result, changed


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))


def _as_tensors(result, n: int) -> tuple[torch.Tensor, ...] | None:
    """``result`` as a tuple of ``n`` tensors, or None if it does not have that structure."""
    if n == 1:
        return (result,) if isinstance(result, torch.Tensor) else None
    if isinstance(result, (tuple, list)) and len(result) == n:
        if all(isinstance(x, torch.Tensor) for x in result):
            return tuple(result)
    return None


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    try:
        return bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    except Exception:  # exotic tensors (other device, layout, ...) simply don't match
        return False


def _same(a, b, n: int, rtol: float, atol: float) -> bool:
    """Same exception (type and message), or the same ``n`` tensors within tolerance."""
    if isinstance(a, _Raised) or isinstance(b, _Raised):
        return (isinstance(a, _Raised) and isinstance(b, _Raised)
                and type(a.error) is type(b.error) and str(a.error) == str(b.error))
    ta, tb = _as_tensors(a, n), _as_tensors(b, n)
    return ta is not None and tb is not None and all(
        _close(x, y, rtol, atol) for x, y in zip(ta, tb, strict=True)
    )


def _fmt(x) -> str:
    """Short description of any value: tensors by shape and dtype."""
    if isinstance(x, torch.Tensor):
        return f"tensor {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
    if x is None:
        return "None"
    if isinstance(x, (tuple, list)):
        items = ", ".join(_fmt(v) for v in x[:4]) + (", ..." if len(x) > 4 else "")
        return f"a {type(x).__name__} of {len(x)} item{'s' * (len(x) != 1)} ({items})"
    if isinstance(x, (int, float, bool)):
        return f"{type(x).__name__} {x!r}"
    kind = type(x)
    module = "" if kind.__module__ == "builtins" else kind.__module__.split(".")[0] + "."
    shape = getattr(x, "shape", None)
    return f"a {module}{kind.__qualname__}" + (f" of shape {tuple(shape)}" if shape else "")


def _describe_call(case: Case) -> str:
    args = ", ".join(
        f"{k}={tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
        if isinstance(v, torch.Tensor) else f"{k}={v!r}"
        for k, v in case.inputs.items()
    )
    return f"{case.description}; called with {args}"


def _problem(result, expected, names, shapes, rtol, atol) -> str:
    """Generic diagnosis of a result that matches no known mistake."""
    if isinstance(result, _Raised):
        return f"your function raised {type(result.error).__name__}: {result.error}"
    got = _as_tensors(result, len(names))
    if got is None:
        if len(names) == 1:
            want = f"a torch.Tensor of shape {tuple(expected[0].shape)}"
        else:
            sizes = " and ".join(str(tuple(e.shape)) for e in expected)
            want = f"a tuple ({', '.join(names)}) of tensors with shapes {sizes}"
        tip = " (did you forget `return`?)" if result is None else ""
        return f"it returned {_fmt(result)}; expected {want}{tip}"
    for k, (name, g, e) in enumerate(zip(names, got, expected, strict=True)):
        g, e = g.detach(), e.detach()  # learners' results may carry autograd history
        if g.shape != e.shape:
            symbolic = f" = {shapes[k]}" if k < len(shapes) else ""
            return f"`{name}` has shape {tuple(g.shape)}; expected {tuple(e.shape)}{symbolic}"
        if g.dtype != e.dtype:
            tip = (" (create new tensors with the inputs' dtype, e.g. torch.zeros(..., "
                   "dtype=x.dtype))" if g.is_floating_point() and e.is_floating_point() else "")
            return f"`{name}` has dtype {g.dtype}; expected {e.dtype}{tip}"
        bad = torch.isnan(g) if g.is_floating_point() else torch.zeros_like(g, dtype=torch.bool)
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            return (f"`{name}` contains NaN at {int(bad.sum())} of {g.numel()} positions "
                    f"(first at index {first}); expected finite values")
        if not _close(g, e, rtol, atol):
            diff = (g.double() - e.double()).abs()
            diff = torch.where(torch.isnan(diff), torch.inf, diff)
            idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
            return (f"`{name}` is wrong: max abs difference {float(diff.max()):.3g} at index "
                    f"{idx} (got {float(g[idx]):.6g}, expected {float(e[idx]):.6g})")
    return "the result differs from the reference"  # unreachable in practice


def run_checks(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    reference: Callable,
    mistakes: Sequence[Mistake] = (),
    *,
    outputs: Sequence[str] = ("output",),
    shapes: Sequence[str] = (),
    error_hint: str = "",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """Check ``fn`` against ``reference`` on every case; print one line of success or raise.

    - ``fn`` raises ``NotImplementedError`` on the first case (a stub): print a "not attempted
      yet" notice and return.
    - Any other wrong result (an exception, a non-tensor, wrong shape/dtype, NaN, wrong values):
      raise ``AssertionError``. If the result matches a mistake's mutant on the first failing
      case, the message is that mistake's (the mistake matching on the most failing cases wins);
      otherwise it describes the problem. ``error_hint`` is appended when ``fn`` raised an
      exception that matches no known mistake.
    - ``outputs`` names the returned tensors: one name means ``fn`` returns a tensor, several
      mean it returns a tuple (e.g. ``("output", "weights")``); ``shapes`` gives their shapes in
      letters (e.g. ``("(..., Lq, Ev)", "(..., Lq, Lk)")``) for wrong-shape messages.
    - Returns None (so a notebook cell shows only the printed line).
    """
    n = len(outputs)
    results = []
    for i, case in enumerate(cases):
        result, changed = _call(fn, case)
        if i == 0 and isinstance(result, _Raised) and isinstance(result.error,
                                                                  NotImplementedError):
            print(f"⏳ {name}: not attempted yet — replace `raise NotImplementedError` with your "
                  f"code, then re-run this cell.")
            return None
        results.append((result, changed))
    refs = []
    for case in cases:
        ref = _call(reference, case)[0]
        if _as_tensors(ref, n) is None:
            raise RuntimeError(f"checker bug: the reference returned {_fmt(ref)}")
        refs.append(ref)

    failing = [i for i, (res, _) in enumerate(results) if not _same(res, refs[i], n, rtol, atol)]
    if failing:
        first = failing[0]
        learner = results[first][0]
        where = f"Failing case {first + 1} of {len(cases)}: {_describe_call(cases[first])}."

        def matches(mistake: Mistake, i: int) -> bool:
            with warnings.catch_warnings():  # mutants may trigger deprecation warnings
                warnings.simplefilter("ignore")
                return any(_same(results[i][0], _call(f, cases[i])[0], n, rtol, atol)
                           for f in mistake.fns)

        # Mistakes that explain the first failing case; the one explaining most cases wins.
        candidates = [m for m in mistakes if matches(m, first)]
        counts = [sum(matches(m, i) for i in failing) for m in candidates]
        if candidates:
            best_count = max(counts)
            best = candidates[counts.index(best_count)]
            raised = ""
            if isinstance(learner, _Raised):
                raised = f"\n(Your function raised {type(learner.error).__name__}: {learner.error})"
            more = ""
            if best_count < len(failing):
                more = (f"\nThis explains {best_count} of the {len(failing)} failing cases; fix it "
                        f"and re-run to see what remains.")
            raise AssertionError(
                f"❌ {name}: {best.name}.\n{best.message}{raised}\n{where}{more}"
            )
        hint = f"\n{error_hint}" if error_hint and isinstance(learner, _Raised) else ""
        problem = _problem(learner, _as_tensors(refs[first], n), outputs, shapes, rtol, atol)
        raise AssertionError(f"❌ {name}: {problem}.\n{where}{hint}")
    for case, (_, changed) in zip(cases, results, strict=True):
        if changed:
            raise AssertionError(
                f"❌ {name}: the result is right, but your function modified its input "
                f"{', '.join(f'`{c}`' for c in changed)} in place. The caller's tensors must not "
                f"change: use out-of-place operations (`masked_fill`, not `masked_fill_`).\n"
                f"Case: {_describe_call(case)}."
            )
    print(f"✅ {name}: all {len(cases)} checks passed.")
    return None
