"""The checkers' shared machinery, on toy checkers: wrapping, the normalisation hook, copies of
the inputs, tolerances, and the diagnosis rules."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from attention_course.exercises import _framework
from attention_course.exercises._framework import (
    WIDTH,
    Case,
    Checker,
    Mistake,
    Reject,
    run_checks,
    wrap,
)


def flat(message: str) -> str:
    return " ".join(message.split())


def test_wrap_keeps_lines_code_spans_and_short_groups_whole():
    text = ("word " * 30 + "`scores.masked_fill(~mask, float('-inf'))` and a shape (B, L, H, Dh)"
            " " + "more " * 20 + "\nsecond paragraph")
    wrapped = wrap(text)
    assert all(len(line) <= WIDTH for line in wrapped.splitlines())
    assert "`scores.masked_fill(~mask, float('-inf'))`" in wrapped
    assert "(B, L, H, Dh)" in wrapped
    assert wrapped.splitlines()[-1] == "second paragraph"
    assert flat(wrapped) == flat(text) and wrap(wrapped) == wrapped


def test_mistake_messages_are_wrapped():
    mistake = Mistake("m", "x " * 100, ())
    assert all(len(line) <= WIDTH for line in mistake.message.splitlines())


def _cases(*values, dtype=torch.float64):
    return [Case(f"x={v}", {"x": torch.tensor([v, -v], dtype=dtype)}) for v in values]


def _negate_twice(x):
    return -2 * x


TWICE = Mistake("negated twice as much", "Negate once.", (_negate_twice,))


def test_run_checks_keeps_its_old_signature(capsys):
    run_checks("neg", torch.neg, _cases(1.0, 2.0), torch.neg, (TWICE,))
    assert capsys.readouterr().out == "✅ neg: all 2 checks passed.\n"
    with pytest.raises(AssertionError, match="negated twice as much"):
        run_checks("neg", lambda x: -2 * x, _cases(1.0, 2.0), torch.neg, (TWICE,))


def test_the_normalisation_hook_applies_to_learner_reference_and_mutants(capsys):
    def as_float64(result, inputs):
        return result.double() if isinstance(result, torch.Tensor) else result

    checker = Checker("neg", lambda: _cases(1.0, 2.0), lambda x: (-x).float(), (TWICE,),
                      normalise=as_float64)
    checker.check(torch.neg)  # float64 learner, float32 reference: equal after the hook
    assert capsys.readouterr().out.startswith("✅")
    with pytest.raises(AssertionError, match="negated twice as much"):
        checker.check(lambda x: (-2 * x).float())


def test_a_rejection_by_the_hook_is_the_message():
    def only_tensors(result, inputs):
        if not isinstance(result, torch.Tensor):
            raise Reject("it returned no tensor; expected one.\nReturn a tensor.")
        return result

    checker = Checker("neg", lambda: _cases(1.0), torch.neg, normalise=only_tensors)
    with pytest.raises(AssertionError) as info:
        checker.check(lambda x: [1.0])
    assert str(info.value).startswith("❌ neg: it returned no tensor; expected one.\n"
                                      "Return a tensor.\nFailing case 1 of 1")


def test_a_hook_that_breaks_falls_back_to_the_generic_description():
    def fragile(result, inputs):
        return result.double()  # AttributeError on anything but a tensor

    checker = Checker("neg", lambda: _cases(1.0), torch.neg, normalise=fragile)
    with pytest.raises(AssertionError, match=r"it returned the string 'no'; expected a "):
        checker.check(lambda x: "no")


def test_not_a_function_is_an_assertion_error():
    with pytest.raises(AssertionError, match="expected your function, got None"):
        run_checks("neg", None, _cases(1.0), torch.neg)


def test_a_broken_reference_is_a_checker_bug_not_the_learners_fault():
    with pytest.raises(RuntimeError, match="checker bug"):
        run_checks("neg", torch.neg, _cases(1.0), lambda x: None)


def test_not_implemented_on_a_later_case_is_an_error():
    def half_done(x):
        if x[0] > 1:
            raise NotImplementedError
        return -x

    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        run_checks("neg", half_done, _cases(1.0, 2.0), torch.neg)


def test_keyboard_interrupt_is_not_swallowed():
    def interrupted(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_checks("neg", interrupted, _cases(1.0), torch.neg)


def test_a_mistake_is_found_through_the_cases_that_did_return():
    """The learner raised on the first case (where the mutant returns): judged on the rest."""

    def mutant(x):
        return -2 * x

    def learner(x):
        if x[0] == 1:
            raise ValueError("a different error")
        return -2 * x

    mistake = Mistake("negated twice as much", "Negate once.", (mutant,))
    with pytest.raises(AssertionError) as info:
        run_checks("neg", learner, _cases(1.0, 2.0, 3.0), torch.neg, (mistake,))
    message = str(info.value)
    assert message.startswith("❌ neg: negated twice as much.")
    assert "(Your function raised ValueError: a different error)" in message
    assert "This explains" not in message


def test_the_mistake_explaining_most_failing_cases_wins():
    partial = Mistake("partial", "p", (lambda x: -2 * x if x[0] == 1 else x,))
    full = Mistake("full", "f", (lambda x: -2 * x,))
    with pytest.raises(AssertionError, match="^❌ neg: full."):
        run_checks("neg", lambda x: -2 * x, _cases(1.0, 2.0), torch.neg, (partial, full))


@pytest.mark.parametrize("dtype, error, passes", [
    (torch.float64, 1e-5, False), (torch.float32, 1e-5, True), (torch.float32, 1e-3, False)])
def test_float32_results_get_a_looser_tolerance(dtype, error, passes, capsys):
    def close(x):
        return -x * (1 + error)

    if passes:
        run_checks("neg", close, _cases(1.0, dtype=dtype), torch.neg)
        assert capsys.readouterr().out.startswith("✅")
    else:
        with pytest.raises(AssertionError, match="is wrong: max abs difference"):
            run_checks("neg", close, _cases(1.0, dtype=dtype), torch.neg)


def test_module_inputs_are_deep_copies_for_every_call(capsys):
    seen = []

    def reference(layer, x):
        seen.append(layer.weight.detach().clone())
        return layer(x).detach()

    def learner(layer, x):
        out = layer(x).detach()
        with torch.no_grad():
            layer.weight.mul_(0)  # the learner's copy only
        return out

    with torch.random.fork_rng(devices=[]):
        layer = nn.Linear(2, 2, bias=False).double()
    original = layer.weight.detach().clone()
    cases = [Case("linear", {"layer": layer, "x": torch.ones(1, 2, dtype=torch.float64)})]
    with pytest.raises(AssertionError) as info:
        run_checks("linear", learner, cases, reference)
    assert "modified its input `layer` in place" in flat(str(info.value))
    assert torch.equal(layer.weight, original)  # the case's own module is untouched
    assert all(torch.equal(w, original) for w in seen)  # and so is the reference's copy


def test_bool_results_name_the_positions_that_differ():
    cases = [Case("n=3", {"n": 3})]
    with pytest.raises(AssertionError) as info:
        run_checks("ones", lambda n: torch.tensor([True, True, False]), cases,
                   lambda n: torch.ones(n, dtype=torch.bool))
    assert ("wrong at 1 of 3 positions (first at index (2,): got False, expected True)"
            in flat(str(info.value)))


def test_a_tensor_on_another_device_is_refused_with_a_clear_message():
    """(Tested on a stand-in: this machine may have no second device.)"""
    on_gpu = SimpleNamespace(is_nested=False, layout=torch.strided, is_meta=False,
                             device=torch.device("cuda", 0), is_quantized=False)
    assert _framework._unusable(on_gpu).startswith("a tensor on device cuda:0; expected a CPU")


def test_a_failure_inside_the_diagnosis_still_gives_an_assertion_error(monkeypatch):
    def broken(*args):
        raise RuntimeError("checker bug")

    monkeypatch.setattr(Checker, "_diagnosis", broken)
    with pytest.raises(AssertionError, match="could not say more: RuntimeError: checker bug"):
        run_checks("neg", lambda x: x, _cases(1.0), torch.neg)
