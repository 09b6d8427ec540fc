"""Shared fixtures of the exercise-checker tests: the registry's parametrisation, a helper that
returns a checker's failure message, and a guard that checkers leave the global RNG alone."""

import pytest
import torch

from tests.exercises.registry import exercises, fn_id

MAX_LINE = 80  # checker messages are shown in the book (its code column is ~80 wide)


def has_mutable_inputs(ex) -> bool:
    """Whether the exercise hands the learner tensors or modules (which they could modify)."""
    return any(isinstance(v, (torch.Tensor, torch.nn.Module))
               for v in ex.checker.cases()[0].inputs.values())


def pytest_generate_tests(metafunc):
    """Parametrise ``exercise`` and, below it, ``solution`` or ``mutant, phrase``. Tests marked
    ``mutable_inputs`` run only for exercises whose inputs are tensors or modules."""
    names = metafunc.fixturenames
    if "exercise" not in names:
        return
    rows, ids = [], []
    only_mutable = metafunc.definition.get_closest_marker("mutable_inputs") is not None
    for ex in exercises():
        if only_mutable and not has_mutable_inputs(ex):
            continue
        if "solution" in names:
            rows += [(ex, s) for s in ex.solutions]
            ids += [f"{ex.name}-{fn_id(s)}" for s in ex.solutions]
        elif "mutant" in names:
            rows += [(ex, m, p) for m, p in ex.mutants]
            ids += [f"{ex.name}-{fn_id(m)}" for m, _ in ex.mutants]
        else:
            rows.append((ex,))
            ids.append(ex.name)
    argnames = ["exercise"] + [n for n in ("solution", "mutant", "phrase") if n in names]
    if len(argnames) == 1:
        metafunc.parametrize("exercise", [r[0] for r in rows], ids=ids)
    else:
        metafunc.parametrize(argnames, rows, ids=ids)


@pytest.fixture
def failure(capsys):
    """``failure(check, fn)`` → the AssertionError message; fails if the check passes, raises
    anything else, prints anything, or writes a line longer than MAX_LINE."""

    def run(check, fn) -> str:
        with pytest.raises(AssertionError) as info:
            check(fn)
        message = str(info.value)
        assert capsys.readouterr().out == "", "a failing check must print nothing"
        long = [line for line in message.splitlines() if len(line) > MAX_LINE]
        assert not long, f"lines longer than {MAX_LINE}:\n" + "\n".join(long)
        return message

    return run


@pytest.fixture(autouse=True)
def global_rng_untouched():
    """Checkers draw their test data from private generators, never from torch's global one."""
    state = torch.random.get_rng_state()
    yield
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG state changed"
