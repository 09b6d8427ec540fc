"""Helpers shared by the exercise-checker tests."""

import pytest


def stub(*args, **kwargs):
    """What a learner's untouched exercise cell does."""
    raise NotImplementedError


def assert_diagnosis(check, fn, phrase, all_phrases):
    """``check(fn)`` raises an AssertionError naming ``phrase`` and no other known mistake."""
    with pytest.raises(AssertionError) as info:
        check(fn)
    message = str(info.value)
    assert phrase in message, message
    for other in set(all_phrases) - {phrase}:
        assert other not in message, f"{other!r} also in:\n{message}"
