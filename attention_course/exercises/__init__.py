"""Exercise checkers, one module per chapter (``attention_course.exercises.ch02``, ...).

Each ``check_<name>(fn)`` runs your function on small float64 and float32 test cases: it prints a
notice if ``fn`` is still a stub, raises ``AssertionError`` naming the likely mistake if it is
wrong, and prints one line of success if it is right. The shared machinery is in :mod:`._framework`.
"""
