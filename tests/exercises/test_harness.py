"""The shared harness, run for every checker of every chapter from one registry: correct
solutions pass with one success line, a stub gets a notice, every independent wrong answer gets
its own diagnosis and no other, garbage always gives an AssertionError, and the checkers' own
mistakes are all covered, distinguishable and readable."""

import itertools

import pytest
import torch

from attention_course.exercises import (
    ch01,
    ch02,
    ch03,
    ch04,
    ch05,
    ch06,
    ch07,
    ch08,
    ch09,
    ch10,
)
from attention_course.exercises._framework import wrap
from tests.exercises.conftest import MAX_LINE
from tests.exercises.registry import exercises, stub

MODULES = (ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10)


def test_every_checker_is_registered():
    public = {f"{m.__name__.rsplit('.', 1)[1]}.{n}" for m in MODULES for n in m.__all__}
    registered = {f"{ex.chapter}.check_{ex.name}" for ex in exercises()}
    assert registered == public
    assert all(ex.check.__module__ == ex.module.__name__ for ex in exercises())
    specs = {(m.__name__, c.name) for m in MODULES for c in m.CHECKERS}
    assert specs == {(ex.module.__name__, ex.name) for ex in exercises()}


def test_solution_passes_with_one_success_line(exercise, solution, capsys):
    assert exercise.check(solution) is None
    out = capsys.readouterr().out
    assert out == f"✅ {exercise.name}: all {exercise.n_cases} checks passed.\n"


def test_the_checkers_own_reference_passes(exercise, capsys):
    exercise.check(exercise.checker.reference)
    assert capsys.readouterr().out == f"✅ {exercise.name}: all {exercise.n_cases} checks passed.\n"


def test_stub_prints_the_notice_and_does_not_raise(exercise, capsys):
    assert exercise.check(stub) is None
    out = capsys.readouterr().out
    assert out == (
        f"⏳ {exercise.name}: not attempted yet.\nReplace `raise NotImplementedError` with your "
        f"code, then re-run this cell.\n"
    )
    assert max(len(line) for line in out.splitlines()) <= 80


def _named(exercise, message: str):
    """The mistakes of ``exercise`` that the first line of ``message`` names."""
    flat = " ".join(message.split())  # long names are wrapped over two lines
    return [m for m in exercise.checker.mistakes
            if flat.startswith(f"❌ {exercise.name}: {' '.join(m.name.split())}. ")]


@pytest.mark.filterwarnings("ignore:The use of `x.T`")  # some learners write key.T on purpose
def test_wrong_answer_gets_its_own_diagnosis_and_no_other(exercise, mutant, phrase, failure):
    message = failure(exercise.check, mutant)
    named = _named(exercise, message)
    assert len(named) == 1, f"no single known mistake named:\n{message}"
    assert phrase in named[0].name, message
    assert "This explains" not in message, f"the mistake explains only part:\n{message}"


def test_every_mistake_has_an_independent_wrong_answer(exercise):
    mistakes = exercise.checker.mistakes
    for _, phrase in exercise.mutants:
        assert sum(phrase in m.name for m in mistakes) == 1, f"{phrase!r} is ambiguous or unknown"
    covered = {m.name for m in mistakes for _, phrase in exercise.mutants if phrase in m.name}
    missing = [m.name for m in mistakes if m.name not in covered]
    assert not missing, f"mistakes without an independent wrong answer: {missing}"


def test_mistakes_are_distinguishable_on_the_cases(exercise):
    """No mutant equals the reference, and no two mistakes give the same results everywhere."""
    checker = exercise.checker
    cases = list(checker.cases())
    refs = checker.results(checker.reference, cases)
    outcomes = {(m.name, i): checker.results(f, cases)
                for m in checker.mistakes for i, f in enumerate(m.fns)}

    def same_everywhere(a, b):
        return all(checker.same(x, y, r) for x, y, r in zip(a, b, refs, strict=True))

    for key, results in outcomes.items():
        assert not same_everywhere(results, refs), f"{key} is the reference on every case"
    for (a, ra), (b, rb) in itertools.combinations(outcomes.items(), 2):
        if a[0] != b[0]:
            assert not same_everywhere(ra, rb), f"{a[0]!r} and {b[0]!r} cannot be told apart"


def test_messages_fit_the_page(exercise):
    checker = exercise.checker
    texts = [checker.error_hint] + [wrap(f"❌ {checker.name}: {m.name}.") + f"\n{m.message}"
                                    for m in checker.mistakes]
    for text in texts:
        long = [line for line in text.splitlines() if len(line) > MAX_LINE]
        assert not long, long


def test_cases_cover_float32_and_float64_where_inputs_are_floats(exercise):
    dtypes = {v.dtype for case in exercise.checker.cases() for v in case.inputs.values()
              if isinstance(v, torch.Tensor) and v.is_floating_point()}
    assert dtypes in (set(), {torch.float32, torch.float64}), dtypes


# --- robustness: garbage, and inputs the learner changes -------------------------------------

def _tensors(result) -> tuple:
    """A correct result as a tuple of tensors (numbers become 0-d tensors)."""
    items = result if isinstance(result, tuple) else (result,)
    return tuple(torch.as_tensor(x) for x in items)


def _each(transform):
    """Garbage made by applying ``transform`` to every tensor of a correct result."""
    def make(result):
        out = tuple(transform(t) for t in _tensors(result))
        return out if len(out) > 1 else out[0]
    return make


class Hostile:
    """A return value that breaks everything one might do with it."""

    def _fail(self, *args, **kwargs):
        raise RuntimeError("hostile object")

    __eq__ = __ne__ = __bool__ = __len__ = __iter__ = __repr__ = __str__ = __hash__ = _fail
    __getattr__ = __array__ = __float__ = __int__ = __index__ = _fail


class EvilTensor(torch.Tensor):
    """A tensor subclass on which every torch operation raises."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("evil tensor")


class BrokenError(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def _raise(error):
    def make(result):
        raise error
    return make


def _nested(t):
    return torch.nested.nested_tensor([t.double() if t.dtype == torch.bool else t])


GARBAGE = {
    "None": lambda r: None,
    "sparse": _each(lambda t: t.to_sparse()),
    "meta": _each(lambda t: torch.empty_like(t, device="meta")),
    "complex": _each(lambda t: t.to(torch.complex128)),
    "float16": _each(lambda t: t.to(torch.float16)),
    "numpy": _each(lambda t: t.numpy()),
    "list": _each(lambda t: t.tolist()),
    "string": lambda r: "weights",
    "wrong shape": _each(lambda t: t.unsqueeze(0)),
    "0-d": _each(lambda t: t.double().sum()),
    "NaN": _each(lambda t: torch.full(t.shape, float("nan"), dtype=torch.float64)),
    "nested": _each(_nested),
    "hostile object": lambda r: Hostile(),
    "tuple of hostile objects": lambda r: (Hostile(), Hostile()),
    "evil tensor subclass": _each(lambda t: t.as_subclass(EvilTensor)),
    "generator": lambda r: (t for t in _tensors(r)),
    "one output too many": lambda r: _tensors(r) + _tensors(r)[:1],
    "raises ValueError": _raise(ValueError("learner bug")),
    "raises an unprintable error": _raise(BrokenError()),
}


if torch.cuda.is_available():  # a tensor on another device (only where one exists)
    GARBAGE["other device"] = _each(lambda t: t.to("cuda"))

# Not garbage there: path_length accepts whole numbers in any float dtype; a count may be any
# integer (a Python int, or a one-element integer tensor); a plan of layer indices may be a list.
ACCEPTED = {("path_length", "float16"), ("parameter_count", "list"),
            ("parameter_count", "wrong shape"), ("attention_flops", "list"),
            ("attention_flops", "wrong shape"), ("checkpoint_plan", "list")}


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_garbage_gives_an_assertion_error(exercise, kind, failure, capsys):
    solution = exercise.solutions[0]

    def garbage(*args):
        return GARBAGE[kind](solution(*args))

    if (exercise.name, kind) in ACCEPTED:
        exercise.check(garbage)
        assert capsys.readouterr().out.startswith("✅")
        return
    message = failure(exercise.check, garbage)
    assert message.startswith(f"❌ {exercise.name}: "), message
    assert "Failing case 1 of " in message, message


def test_results_that_require_grad_are_fine(exercise, capsys):
    solution = exercise.solutions[0]

    def with_grad(*args):
        out = tuple(t.detach().clone().requires_grad_(t.is_floating_point())
                    for t in _tensors(solution(*args)))
        return out if len(out) > 1 else out[0]

    exercise.check(with_grad)
    assert capsys.readouterr().out.startswith(f"✅ {exercise.name}")


def _mutable_inputs(exercise):
    return [k for k, v in exercise.checker.cases()[0].inputs.items()
            if isinstance(v, (torch.Tensor, torch.nn.Module))]


def _spoil(value):
    with torch.no_grad():
        for t in (value.state_dict().values() if isinstance(value, torch.nn.Module) else (value,)):
            t.zero_()


@pytest.mark.mutable_inputs
def test_changing_inputs_after_a_right_answer_is_reported(exercise, failure):
    names = _mutable_inputs(exercise)
    solution = exercise.solutions[0]

    def spoiler(*args):
        result = _tensors(solution(*args))
        result = tuple(t.clone() for t in result)
        for arg in args:
            if isinstance(arg, (torch.Tensor, torch.nn.Module)):
                _spoil(arg)
        return result if len(result) > 1 else result[0]

    message = " ".join(failure(exercise.check, spoiler).split())
    assert "the result is right, but your function modified its input" in message
    assert all(f"`{name}`" in message for name in names), message


@pytest.mark.mutable_inputs
def test_the_reference_never_sees_what_the_learner_changed(exercise, failure):
    solution = exercise.solutions[0]

    def spoil_first(*args):
        for arg in args:
            if isinstance(arg, (torch.Tensor, torch.nn.Module)):
                _spoil(arg)
        return solution(*args)

    message = failure(exercise.check, spoil_first)
    assert "the result is right" not in message, message
