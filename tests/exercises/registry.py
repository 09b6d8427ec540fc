"""The registry of the shared harness: for every checker, learner-style correct solutions and
independently written wrong answers, each with the phrase its diagnosis must contain.

The wrong answers are written here the way learners write code, NOT imported from the checkers'
own mutants, so that a checker whose mutant drifts away from the real mistake fails the tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from attention_course.exercises._framework import Checker

CHAPTERS = ("ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09",
            "ch10")


def stub(*args, **kwargs):
    """What a learner's untouched exercise cell does."""
    raise NotImplementedError


@dataclass(frozen=True)
class Exercise:
    """One checker with its test material.

    ``n_cases`` is the number of cases the success line must report; ``mutants`` pairs each
    wrong answer with a phrase of the one diagnosis it must get.
    """

    chapter: str
    name: str
    n_cases: int
    solutions: tuple[Callable, ...]
    mutants: tuple[tuple[Callable, str], ...]

    @property
    def module(self):
        return importlib.import_module(f"attention_course.exercises.{self.chapter}")

    @property
    def check(self) -> Callable:
        return getattr(self.module, f"check_{self.name}")

    @property
    def checker(self) -> Checker:
        (found,) = [c for c in self.module.CHECKERS if c.name == self.name]
        return found

    def __str__(self):
        return self.name


def exercises() -> list[Exercise]:
    """Every registered exercise, chapter by chapter."""
    found = []
    for chapter in CHAPTERS:
        found.extend(importlib.import_module(f"tests.exercises.mutants_{chapter}").EXERCISES)
    return found


def fn_id(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
