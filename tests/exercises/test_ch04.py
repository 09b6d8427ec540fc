"""Chapter 4 checkers, beyond the shared harness."""

import pytest
import torch

from attention_course.exercises.ch04 import check_parameter_count, check_split_heads


def flat(message: str) -> str:
    return " ".join(message.split())


def test_split_heads_float_head_size_gets_the_integer_division_hint(failure):
    def float_head_size(x, H):
        B, L, D = x.shape
        return x.view(B, L, H, D / H).transpose(1, 2)

    message = flat(failure(check_split_heads, float_head_size))
    assert "raised TypeError" in message and "D // num_heads" in message


@pytest.mark.parametrize("answer, phrase", [
    (lambda d, h, b: float(4 * d * d + 4 * d * b), "use `//` for the head size"),
    (lambda d, h, b: 4 * d * d + 4 * d * b + 0.5, "use `//` for the head size"),
    (lambda d, h, b: torch.tensor(4.0 * d * d), "use `//` for the head size"),
    (lambda d, h, b: None, "forget `return`"),
    (lambda d, h, b: "288", "as a Python int"),
    (lambda d, h, b: True, "as a Python int"),
    (lambda d, h, b: torch.tensor([4 * d * d, 4 * d * b]), "as a Python int"),
    (lambda d, h, b: torch.tensor(288).to_sparse(), "as a Python int"),
])
def test_parameter_count_rejects_non_integers_clearly(answer, phrase, failure):
    message = flat(failure(check_parameter_count, answer))
    assert "expected an int" in message and phrase in message
    assert "d_model=8, num_heads=2, bias=True" in message


def test_parameter_count_wrong_number_says_what_came_back(failure):
    assert "`count` is 7; expected 288" in failure(check_parameter_count, lambda d, h, b: 7)
