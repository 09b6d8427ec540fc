"""Shared machinery of the exercise checkers.

A :class:`Checker` calls your function and the course's reference implementation on the same
small test cases (:class:`Case`, float64 and float32). If they disagree, it also runs *mutants*,
the reference with one known mistake (:class:`Mistake`): when your result matches a mutant (same
values, or the same exception), the error message names that mistake and how to fix it.
Otherwise it says what came back, what was expected, and on which inputs.

Every call gets fresh copies of the inputs (tensors cloned, modules deep-copied), so nothing your
function does to them can change what the reference sees. A checker never lets an exception other
than ``AssertionError`` escape, whatever your function returns.
"""

from __future__ import annotations

import copy
import numbers
import re
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Case", "Checker", "Mistake", "Reject", "float32_as_float64", "randn", "run_checks",
           "whole_number", "wrap"]

WIDTH = 80  # messages are shown in the book: wrap them to this many columns


def wrap(text: str, width: int = WIDTH) -> str:
    """Wrap each line of ``text`` to ``width`` columns, never inside a `code span` or a short
    parenthesised group."""
    lines = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        # Keep `code spans` and short parenthesised groups such as shapes "(B, L, D)" whole.
        glued = re.sub(r"`[^`\n]*`|\([^()\n]{0,24}\)",
                       lambda m: m.group(0).replace(" ", "\0"), line)
        pieces = textwrap.wrap(glued, width, break_long_words=False, break_on_hyphens=False)
        lines.extend(piece.replace("\0", " ") for piece in pieces)
    return "\n".join(lines)


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
    and how to fix it (wrapped to 80 columns).
    """

    name: str
    message: str
    fns: tuple[Callable, ...]

    def __post_init__(self):
        object.__setattr__(self, "message", wrap(self.message))


class Reject(Exception):
    """Raised by a ``normalise`` hook: the result is unusable, and the message says why."""


def randn(generator: torch.Generator, *shape: int, dtype: torch.dtype = torch.float64):
    """Standard-normal tensor drawn from ``generator`` (deterministic test data).

    Always drawn in float64 and then converted, so a case's values do not depend on ``dtype``.
    """
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)


def float32_as_float64(result, inputs):
    """A ``normalise`` hook for results built from scratch: float32 (torch's default dtype) is
    as good an answer as float64."""
    if isinstance(result, torch.Tensor) and result.dtype == torch.float32:
        return result.double()
    return result


def whole_number(noun: str) -> Callable:
    """A ``normalise`` hook for answers that are counts (parameters, FLOPs): an integer —
    Python, NumPy, or a one-element integer tensor — becomes a 0-d int64 tensor; anything else
    is :class:`Reject`-ed with what it was and a tip. ``noun``: what is counted, e.g.
    ``"parameters"``."""

    def normalise(result, inputs) -> torch.Tensor:
        if isinstance(result, torch.Tensor):
            if (result.numel() == 1 and not result.is_floating_point()
                    and not result.is_complex() and result.dtype != torch.bool
                    and result.layout == torch.strided and not result.is_meta):
                return torch.tensor(int(result.item()))
        elif isinstance(result, numbers.Integral) and not isinstance(result, bool):
            return torch.tensor(int(result))
        raise Reject(_not_a_whole_number(result, noun))

    return normalise


def _not_a_whole_number(result, noun: str) -> str:
    if isinstance(result, torch.Tensor):
        got = f"a tensor of shape {tuple(result.shape)} and dtype {result.dtype}"
        if result.layout != torch.strided or result.is_meta:
            got += f" ({'meta' if result.is_meta else result.layout})"
    else:
        try:
            got = f"{type(result).__name__} {result!r}"[:60]
        except Exception:
            got = f"an object of type {type(result).__name__}"
    if isinstance(result, float) or (isinstance(result, torch.Tensor)
                                     and result.is_floating_point()):
        tip = (f"A number of {noun} is a whole number: return an int. In Python `/` always "
               f"gives a float; use `//` for the head size, or wrap the total in int(...).")
    elif result is None:
        tip = "Did you forget `return`?"
    else:
        tip = f"Return the number of {noun} as a Python int."
    return f"it returned {got}; expected an int.\n{tip}"


# --- outcomes of one call ---------------------------------------------------------------------

class _Raised:
    """Outcome of a call that raised ``error``."""

    def __init__(self, error: Exception):
        self.error = error


class _Bad:
    """Outcome that is not the expected tensor(s); ``text`` says why (None: wrong structure)."""

    def __init__(self, raw, text: str | None = None):
        self.raw, self.text = raw, text


def _text(error: BaseException) -> str:
    """``str(error)``, even for an exception whose ``__str__`` raises."""
    try:
        return str(error)
    except Exception:
        return "<message could not be read>"


def _raised(error: Exception) -> str:
    return f"{type(error).__name__}: {_text(error)}"


def _copy(value):
    """A copy that the callee may change freely: tensors cloned, anything else deep-copied."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return copy.deepcopy(value)


def _state(value) -> tuple:
    """The tensors a call could change in place: a tensor itself, or a module's state."""
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, nn.Module):
        return tuple(value.state_dict().values())
    return ()


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return (a.shape == b.shape and a.dtype == b.dtype and a.layout == b.layout
                and a.device == b.device and bool(torch.equal(a, b)))
    except Exception:  # the callee turned the copy into something exotic
        return False


def _changed(original, callee_copy) -> bool:
    try:
        before, after = _state(original), _state(callee_copy)
    except Exception:
        return True
    return len(before) != len(after) or not all(map(_identical, before, after))


def _call(fn: Callable, case: Case):
    """Call ``fn`` on fresh copies of the inputs → (result or _Raised, names of changed inputs)."""
    args = {k: _copy(v) for k, v in case.inputs.items()}
    try:
        result = fn(*args.values())
    except Exception as error:  # anything the learner's code raises becomes a diagnosis
        result = _Raised(error)
    changed = [k for k, v in case.inputs.items() if _changed(v, args[k])]
    return result, changed


def _unusable(x: torch.Tensor) -> str | None:
    """Why ``x`` cannot be compared as an ordinary CPU tensor (None if it can)."""
    if x.is_nested:
        return ("a nested tensor; expected an ordinary (dense) tensor: build the result with "
                "torch.stack or torch.cat")
    if x.layout != torch.strided:
        kind = "sparse" if "sparse" in str(x.layout) else "non-strided"
        return (f"a {kind} tensor (layout {x.layout}); expected a dense (strided) tensor: "
                f"call .to_dense() on it, or build it without sparse operations")
    if x.is_meta:
        return ("a meta tensor (it has a shape but no values); expected a tensor with values. "
                "Do not create tensors with device='meta'")
    if x.device.type != "cpu":
        return (f"a tensor on device {x.device}; expected a CPU tensor, like the inputs. "
                f"Create new tensors with device=x.device, or call .cpu()")
    if x.is_quantized:
        return "a quantized tensor; expected an ordinary tensor: call .dequantize()"
    return None


# --- describing values --------------------------------------------------------------------------

def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _fmt(x, depth: int = 0) -> str:
    """Short description of any value (tensors by shape and dtype); never raises."""
    try:
        if isinstance(x, torch.Tensor):
            layout = "" if x.layout == torch.strided else f" {x.layout}"
            device = "" if x.device.type == "cpu" else f" on {x.device}"
            return f"tensor {tuple(x.shape)} {_dtype(x)}{layout}{device}"
        if x is None:
            return "None"
        if isinstance(x, (bool, int, float)):
            return f"{type(x).__name__} {x!r}" if depth == 0 else f"a {type(x).__name__}"
        if isinstance(x, str):
            return f"the string {x[:30]!r}" + ("..." if len(x) > 30 else "")
        if isinstance(x, (tuple, list)):
            size = f"a {type(x).__name__} of {len(x)} item{'s' * (len(x) != 1)}"
            if depth > 0:
                return size
            items = ", ".join(_fmt(v, depth + 1) for v in x[:4]) + (", ..." if len(x) > 4 else "")
            return f"{size} ({items})"
        kind = type(x)
        module = "" if kind.__module__ == "builtins" else kind.__module__.split(".")[0] + "."
        shape = getattr(x, "shape", None)
        shape = tuple(shape) if isinstance(shape, (tuple, torch.Size)) else None
        return f"a {module}{kind.__qualname__}" + (f" of shape {shape}" if shape else "")
    except Exception:
        return f"an object of type {type(x).__name__}"


def _describe_value(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"{tuple(v.shape)} {_dtype(v)}"
    if isinstance(v, nn.Module):
        text = getattr(v, "description", None) or repr(v)
        return text if "\n" not in text else type(v).__name__
    return repr(v)


def _describe_call(case: Case) -> str:
    args = ", ".join(f"{k}={_describe_value(v)}" for k, v in case.inputs.items())
    return f"{case.description}; called with {args}"


def _tip(raw) -> str:
    """A hint for a result that is not (a tuple of) tensors; never raises."""
    try:
        return _tip_for(raw)
    except Exception:
        return ""


def _tip_for(raw) -> str:
    if raw is None:
        return " (did you forget `return`?)"
    items = [raw] + (list(raw[:4]) if isinstance(raw, (tuple, list)) else [])
    if any(type(x).__module__.split(".")[0] == "numpy" for x in items):
        return " (stay with torch operations, or convert with torch.from_numpy)"
    if type(raw).__name__ == "generator":
        return " (a generator expression: collect it with torch.stack([...]) or tuple(...))"
    if isinstance(raw, list) or any(isinstance(x, list) for x in items[1:]):
        return " (build tensors with torch operations, or convert with torch.tensor)"
    return ""


# --- the checker ----------------------------------------------------------------------------------

_LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16, torch.complex64)


@dataclass(frozen=True)
class Checker:
    """Everything one ``check_<name>(fn)`` needs; :meth:`check` runs it.

    - ``cases()`` builds the test cases (fresh tensors each time).
    - ``outputs`` names the returned tensors: one name means ``fn`` returns a tensor, several
      mean it returns a tuple (e.g. ``("output", "weights")``); ``shapes`` gives their shapes in
      letters (e.g. ``("(..., Lq, Ev)", "(..., Lq, Lk)")``) for wrong-shape messages.
    - ``normalise(result, inputs)`` (optional) is applied to every result, yours, the
      reference's and the mutants', before they are compared: e.g. accept float32 as float64,
      or an int as a 0-d tensor. It may raise :class:`Reject` to turn a result down with a
      message of its own.
    - ``rtol``/``atol`` are for float64 results; float32 results are compared with at least
      ``rtol=1e-4, atol=1e-5``.
    - ``error_hint`` is appended when ``fn`` raised an exception that matches no known mistake.
    """

    name: str
    cases: Callable[[], Sequence[Case]]
    reference: Callable
    mistakes: Sequence[Mistake] = ()
    outputs: Sequence[str] = ("output",)
    shapes: Sequence[str] = ()
    error_hint: str = ""
    rtol: float = 1e-6
    atol: float = 1e-8
    normalise: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "error_hint", wrap(self.error_hint))

    # -- outcomes --

    def outcome(self, raw, case: Case):
        """A call's result as a tuple of plain CPU tensors, or a _Raised or _Bad outcome."""
        if isinstance(raw, _Raised):
            return raw
        try:
            if self.normalise is not None:
                try:
                    raw = self.normalise(raw, case.inputs)
                except Reject as reject:
                    return _Bad(raw, _text(reject))
                except Exception:  # odd results are described below, unnormalised
                    pass
            return self._plain(raw)
        except Exception as error:  # an object that breaks when looked at
            return _Bad(raw, f"it returned {_fmt(raw)}, which could not be inspected "
                             f"({_raised(error)}); expected {self._want(None)}")

    def _plain(self, raw):
        n = len(self.outputs)
        if n == 1:
            items = (raw,)
        elif isinstance(raw, (tuple, list)) and len(raw) == n:
            items = tuple(raw)
        else:
            return _Bad(raw)
        plain = []
        for name, x in zip(self.outputs, items, strict=True):
            if not isinstance(x, torch.Tensor):
                return _Bad(raw)
            problem = _unusable(x)
            if problem:
                return _Bad(raw, f"{'it returned' if n == 1 else f'`{name}` is'} {problem}")
            x = x.detach()
            if type(x) is not torch.Tensor:  # a subclass, e.g. nn.Parameter
                x = x.as_subclass(torch.Tensor)
            plain.append(x)
        return tuple(plain)

    def results(self, fn: Callable, cases: Sequence[Case]) -> list:
        """The outcome of ``fn`` on every case (for tests and the diagnosis)."""
        with warnings.catch_warnings():  # mutants may trigger deprecation warnings
            warnings.simplefilter("ignore")
            return [self.outcome(_call(fn, case)[0], case) for case in cases]

    def tolerance(self, expected) -> tuple[float, float]:
        """(rtol, atol) for comparing with the reference outcome ``expected``."""
        if any(t.dtype in _LOW_PRECISION for t in expected):
            return max(self.rtol, 1e-4), max(self.atol, 1e-5)
        return self.rtol, self.atol

    def same(self, a, b, expected) -> bool:
        """Same exception (type and message), or the same tensors within tolerance."""
        if isinstance(a, _Raised) or isinstance(b, _Raised):
            return (isinstance(a, _Raised) and isinstance(b, _Raised)
                    and type(a.error) is type(b.error) and _text(a.error) == _text(b.error))
        if not isinstance(a, tuple) or not isinstance(b, tuple) or len(a) != len(b):
            return False
        rtol, atol = self.tolerance(expected)
        return all(_close(x, y, rtol, atol) for x, y in zip(a, b, strict=True))

    # -- messages --

    def _want(self, expected) -> str:
        if len(self.outputs) == 1:
            shape = f" of shape {tuple(expected[0].shape)}" if expected else ""
            return f"a torch.Tensor{shape}"
        sizes = (" with shapes " + " and ".join(str(tuple(e.shape)) for e in expected)
                 if expected else "")
        return f"a tuple ({', '.join(self.outputs)}) of tensors{sizes}"

    def problem(self, got, expected) -> str:
        """Generic diagnosis of an outcome that matches no known mistake."""
        if isinstance(got, _Raised):
            return f"your function raised {_raised(got.error)}"
        if isinstance(got, _Bad):
            if got.text is not None:
                return got.text
            return f"it returned {_fmt(got.raw)}; expected {self._want(expected)}{_tip(got.raw)}"
        rtol, atol = self.tolerance(expected)
        for k, (name, g, e) in enumerate(zip(self.outputs, got, expected, strict=True)):
            message = _tensor_problem(name, g, e, self.shapes[k] if k < len(self.shapes) else "",
                                      rtol, atol)
            if message:
                return message
        return "the result differs from the reference"  # unreachable in practice

    # -- the check --

    def check(self, fn: Callable) -> None:
        """Check ``fn`` on every case; print one line of success or raise ``AssertionError``.

        - ``fn`` raises ``NotImplementedError`` on the first case (a stub): print a "not
          attempted yet" notice and return.
        - Any other wrong result: raise ``AssertionError``. If the result matches a mistake's
          mutant on the first failing case (or, when ``fn`` raised there, on every failing case
          where it returned something), the message is that mistake's (the one matching on the
          most failing cases wins); otherwise it describes the problem.
        - Right values, but an input changed in place: raise ``AssertionError`` saying so.
        """
        name = self.name
        if not callable(fn):
            raise AssertionError(wrap(f"❌ {name}: expected your function, got {_fmt(fn)}."))
        cases = list(self.cases())
        learner, changed = [], []
        for i, case in enumerate(cases):
            raw, moved = _call(fn, case)
            if i == 0 and isinstance(raw, _Raised) and isinstance(raw.error, NotImplementedError):
                print(f"⏳ {name}: not attempted yet.\nReplace `raise NotImplementedError` with "
                      f"your code, then re-run this cell.")
                return None
            learner.append(self.outcome(raw, case))
            changed.append(moved)
        refs = self.results(self.reference, cases)
        for ref in refs:
            if not isinstance(ref, tuple):
                raise RuntimeError(f"checker bug: the reference gave {self.problem(ref, None)}")
        failing = [i for i in range(len(cases)) if not self.same(learner[i], refs[i], refs[i])]
        if failing:
            try:
                message = self._diagnosis(learner, refs, cases, failing)
            except Exception as error:  # never let a checker crash on a learner's result
                message = (f"❌ {name}: the result differs from the reference on case "
                           f"{failing[0] + 1} of {len(cases)}: {_describe_call(cases[failing[0]])}"
                           f". (The checker could not say more: {_raised(error)}.)")
            raise AssertionError(wrap(message))
        for case, moved in zip(cases, changed, strict=True):
            if moved:
                raise AssertionError(wrap(
                    f"❌ {name}: the result is right, but your function modified its input "
                    f"{', '.join(f'`{c}`' for c in moved)} in place. The caller's inputs must "
                    f"not change: use out-of-place operations (`masked_fill`, not "
                    f"`masked_fill_`; `x = x + y`, not `x += y`).\nCase: {_describe_call(case)}."
                ))
        print(f"✅ {name}: all {len(cases)} checks passed.")
        return None

    def _diagnosis(self, learner, refs, cases, failing) -> str:
        first = failing[0]
        got = learner[first]
        memo: dict[tuple[int, int], object] = {}

        def mutant(f: Callable, i: int):
            key = (id(f), i)
            if key not in memo:
                memo[key] = self.results(f, [cases[i]])[0]
            return memo[key]

        def matches(m: Mistake, i: int) -> bool:
            return not isinstance(learner[i], _Bad) and any(
                self.same(learner[i], mutant(f, i), refs[i]) for f in m.fns)

        candidates = [m for m in self.mistakes if matches(m, first)]
        if not candidates and isinstance(got, _Raised):
            # An exception only some mutants reproduce word for word: judge the mistake on the
            # cases where the function did return something.
            returned = [i for i in failing if not isinstance(learner[i], (_Raised, _Bad))]
            if returned:
                candidates = [m for m in self.mistakes
                              if all(matches(m, i) for i in returned)]
        where = f"Failing case {first + 1} of {len(cases)}: {_describe_call(cases[first])}."
        raised = ""
        if isinstance(got, _Raised):
            raised = f"(Your function raised {_raised(got.error)})\n"
        if candidates:
            counts = [sum(matches(m, i) for i in failing) for m in candidates]
            best_count = max(counts)
            best = candidates[counts.index(best_count)]
            if not matches(best, first):  # explained through the cases that returned
                best_count += sum(isinstance(learner[i], _Raised) for i in failing)
            more = ""
            if best_count < len(failing):
                more = (f"\nThis explains {best_count} of the {len(failing)} failing cases; "
                        f"fix it and re-run to see what remains.")
            return f"❌ {self.name}: {best.name}.\n{best.message}\n{raised}{where}{more}"
        hint = f"\n{self.error_hint}" if self.error_hint and isinstance(got, _Raised) else ""
        problem = self.problem(got, refs[first]).rstrip(".")
        return f"❌ {self.name}: {problem}.\n{where}{hint}"


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    try:
        if not (a.is_floating_point() or a.is_complex()):
            return bool(torch.equal(a, b))
        return bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    except Exception:  # anything exotic simply does not match
        return False


def _tensor_problem(name, g, e, symbolic, rtol, atol) -> str | None:
    """What is wrong with tensor ``g`` where ``e`` was expected (None if nothing)."""
    if g.shape != e.shape:
        tip = ""
        if g.dim() == 0 and e.dim() > 0:
            tip = " (a single number: did you reduce it with .sum(), .item() or an index?)"
        elif sorted(g.shape) == sorted(e.shape):
            tip = " (the right sizes in another order: check your transpose/permute)"
        shape = f" = {symbolic}" if symbolic else ""
        return f"`{name}` has shape {tuple(g.shape)}; expected {tuple(e.shape)}{shape}{tip}"
    if g.dtype != e.dtype:
        tip = ""
        if g.is_complex():
            tip = " (complex numbers: keep to real operations)"
        elif g.is_floating_point() and e.is_floating_point():
            tip = (" (pass dtype= when you create a tensor, e.g. torch.zeros(..., "
                   "dtype=x.dtype) to match an input x)")
        return f"`{name}` has dtype {g.dtype}; expected {e.dtype}{tip}"
    if g.is_floating_point() or g.is_complex():
        for test, what in ((torch.isnan, "NaN"), (torch.isinf, "inf")):
            bad = test(g) & ~test(e)
            if bad.any():
                first = tuple(int(i) for i in bad.nonzero()[0])
                return (f"`{name}` contains {what} at {int(bad.sum())} of {g.numel()} positions "
                        f"(first at index {first}); expected finite values")
    if _close(g, e, rtol, atol):
        return None
    if g.dim() == 0:
        spec = ".6g" if g.is_floating_point() else ""
        return f"`{name}` is {g.item():{spec}}; expected {e.item():{spec}}"
    if not (g.is_floating_point() or g.is_complex()):
        wrong = g != e
        idx = tuple(int(i) for i in wrong.nonzero()[0])
        return (f"`{name}` is wrong at {int(wrong.sum())} of {g.numel()} positions (first at "
                f"index {idx}: got {g[idx].item()}, expected {e[idx].item()})")
    diff = (g.double() - e.double()).abs()
    diff = torch.where(torch.isnan(diff), torch.inf, diff)
    idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    return (f"`{name}` is wrong: max abs difference {float(diff.max()):.3g} at index {idx} "
            f"(got {float(g[idx]):.6g}, expected {float(e[idx]):.6g})")


def run_checks(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    reference: Callable,
    mistakes: Sequence[Mistake] = (),
    **options,
) -> None:
    """Check ``fn`` against ``reference`` on ``cases``: ``Checker(...).check(fn)`` in one call.

    ``options`` are the other fields of :class:`Checker` (``outputs``, ``shapes``,
    ``error_hint``, ``rtol``, ``atol``, ``normalise``). Returns None.
    """
    return Checker(name, lambda: cases, reference, mistakes, **options).check(fn)
