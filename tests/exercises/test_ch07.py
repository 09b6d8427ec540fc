"""Chapter 7 checkers, beyond the shared harness: the checkers' references are the course's
algorithms, and the cases contain what the diagnoses rely on."""

import pytest
import torch

from attention_course import efficient
from attention_course.attention import scaled_dot_product_attention
from attention_course.exercises import ch07
from attention_course.exercises.ch07 import check_attention_flops, check_online_softmax_update
from tests.exercises.mutants_ch07 import online

ONLINE, LINEAR, FLOPS = ch07.CHECKERS


def flat(message: str) -> str:
    return " ".join(message.split())


@pytest.mark.parametrize("block", [1, 3, 7])
def test_online_reference_folded_over_key_blocks_is_exact_attention(block):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64), \
        torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 1, 5, 7, generator=g) < 0.7
    mask[0, 0, 1] = False  # a query with no allowed key: output 0
    s = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, float("-inf"))  # scale 1/sqrt(4)
    m = torch.full((2, 3, 5), float("-inf"), dtype=torch.float64)
    l, acc = torch.zeros_like(m), torch.zeros(2, 3, 5, 6, dtype=torch.float64)  # noqa: E741
    for start in range(0, 7, block):
        m, l, acc = ONLINE.reference(m, l, acc, s[..., start:start + block],  # noqa: E741
                                     v[..., start:start + block, :])
    out = acc / l.masked_fill(l == 0, 1.0)[..., None]
    assert not out.isnan().any()
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask)[0])
    torch.testing.assert_close(out, efficient.memory_efficient_attention(q, k, v, mask))


def test_online_cases_hold_overflowing_scores_and_rows_without_keys():
    cases = ONLINE.cases()
    assert any(c.inputs["s"].double().max() > 709 for c in cases)  # exp overflows float64
    starts_empty = [c for c in cases if ((c.inputs["m"] == float("-inf"))
                                         & (c.inputs["s"] == float("-inf")).all(-1)).any()]
    assert starts_empty, "no row that has seen no allowed key after the new block"
    grows = [c for c in cases if (c.inputs["s"].amax(-1) > c.inputs["m"]).any()
             and (c.inputs["l"] > 0).any()]
    assert grows, "no case where the max grows in a row with a running sum"


def test_online_learner_may_name_the_state_as_they_like(capsys):
    check_online_softmax_update(lambda row_max, row_sum, out, scores, values:
                                online(row_max, row_sum, out, scores, values))
    assert capsys.readouterr().out.startswith("✅")


def test_linear_reference_matches_the_recurrent_form():
    for case in LINEAR.cases():
        phi_q, phi_k, v, eps = case.inputs.values()
        expected = efficient.linear_attention_recurrent(phi_q, phi_k, v,
                                                        feature_map=lambda x: x, eps=eps)
        torch.testing.assert_close(LINEAR.reference(phi_q, phi_k, v, eps), expected)


def test_linear_cases_make_eps_matter():
    """eps is large enough to change the result somewhere, and a denominator is 0 without it."""
    cases = LINEAR.cases()
    assert any(c.inputs["eps"] >= 0.1 for c in cases)
    zero = [c for c in cases if ((c.inputs["phi_q"] * c.inputs["phi_k"].cumsum(2)).sum(-1)
                                 == 0).any()]
    assert zero


def test_flops_reference_is_the_textbook_formula():
    for case in FLOPS.cases():
        n, D, H = case.inputs.values()
        assert int(FLOPS.reference(n, D, H)) == 8 * n * D * D + 4 * n * n * D


@pytest.mark.parametrize("answer, phrase", [
    (lambda n, d, h: 8 * n * d * d + 4 * n * n * (d / h) * h, "use `//` for the head size"),
    (lambda n, d, h: None, "forget `return`"),
    (lambda n, d, h: "16384", "as a Python int"),
])
def test_flops_rejects_non_integers_clearly(answer, phrase, failure):
    message = flat(failure(check_attention_flops, answer))
    assert "expected an int" in message and phrase in message


def test_flops_wrong_number_says_what_came_back(failure):
    assert "`flops` is 7; expected 16384" in failure(check_attention_flops, lambda n, d, h: 7)
