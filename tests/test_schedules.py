"""Learning-rate schedules: the linear warmup and Vaswani et al.'s schedule, value by value, their
shape (rise, peak, decay like 1/sqrt(n)), and their use through ``train(..., lr_schedule=)``."""

import math

import numpy as np
import pytest
import torch

from attention_course.data import make_batch, vocab_size
from attention_course.metrics import seq2seq_loss
from attention_course.models.rnn_seq2seq import RNNSeq2Seq
from attention_course.schedules import linear_warmup, noam_schedule
from attention_course.train import train


def test_linear_warmup_rises_to_one_then_stays():
    f = linear_warmup(4)
    assert [f(s) for s in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert [linear_warmup(1)(s) for s in range(3)] == [1.0, 1.0, 1.0]  # no warmup at all
    assert linear_warmup(np.int64(2))(np.int64(0)) == 0.5


def test_noam_schedule_is_the_papers_formula():
    for d, warmup in ((512, 4000), (32, 50), (1, 1)):
        f = noam_schedule(d, warmup)
        for step in (0, 1, warmup // 2, warmup - 1, warmup, 3 * warmup, 10**6):
            n = step + 1
            expected = d**-0.5 * min(n**-0.5, n * warmup**-1.5)
            assert math.isclose(f(step), expected, rel_tol=1e-12), (d, warmup, step)


def test_noam_schedule_rises_linearly_peaks_at_warmup_and_decays_like_inverse_sqrt():
    d, warmup = 512, 4000
    f = noam_schedule(d, warmup)
    values = np.array([f(s) for s in range(20_000)])
    assert int(values.argmax()) == warmup - 1  # step warmup - 1 is the paper's n = warmup
    assert math.isclose(values.max(), (d * warmup) ** -0.5, rel_tol=1e-12)
    assert 6.9e-4 < values.max() < 7.0e-4  # the base model's peak learning rate
    rise = values[:warmup]
    assert np.allclose(rise, rise[0] * np.arange(1, warmup + 1), rtol=1e-12)  # linear in n
    for n in (warmup, 2 * warmup):  # four times as many steps, half the rate
        assert math.isclose(f(4 * n - 1) / f(n - 1), 0.5, rel_tol=1e-12)
    assert np.all(np.diff(values[warmup - 1:]) < 0)


def test_a_schedule_drives_train():
    torch.manual_seed(0)
    model = RNNSeq2Seq(vocab_size(6), 4, 8)
    result = train(model, seq2seq_loss,
                   lambda g: make_batch("copy", 4, min_len=2, max_len=3, num_symbols=6,
                                        generator=g),
                   steps=5, lr=0.1, progress=False, lr_schedule=noam_schedule(16, 3))
    expected = [0.1 * noam_schedule(16, 3)(s) for s in range(5)]
    assert np.allclose(result.learning_rates, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("make, error, word", [
    (lambda: linear_warmup(0), ValueError, "steps"),
    (lambda: linear_warmup(2.5), TypeError, "steps"),
    (lambda: linear_warmup(True), TypeError, "steps"),
    (lambda: noam_schedule(0, 10), ValueError, "d_model"),
    (lambda: noam_schedule(512.0, 10), TypeError, "d_model"),
    (lambda: noam_schedule(512, 0), ValueError, "warmup"),
    (lambda: noam_schedule(512, "4000"), TypeError, "warmup"),
    (lambda: linear_warmup(3)(-1), ValueError, "step"),
    (lambda: noam_schedule(8, 3)(1.5), TypeError, "step"),
])
def test_bad_arguments_are_named(make, error, word):
    with pytest.raises(error, match=word):
        make()
