"""The training loop: determinism per seed (dropout included), argument checks, the progress bar;
and the seeding helper it pairs with (:func:`attention_course.utils.set_seed`)."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attention_course.data import PAD, make_batch, vocab_size
from attention_course.metrics import seq2seq_loss
from attention_course.models.rnn_seq2seq import RNNSeq2Seq
from attention_course.train import TrainResult, quiet, train
from attention_course.utils import set_seed

V = vocab_size(6)


def batch(task="reverse", seed=0, **kwargs):
    kwargs = {"min_len": 2, "max_len": 7, "num_symbols": 6} | kwargs
    return make_batch(task, 5, generator=torch.Generator().manual_seed(seed), **kwargs)


def sample_copy(g):
    return make_batch("copy", 16, min_len=2, max_len=5, num_symbols=6, generator=g)


class TinyCopier(nn.Module):
    """Predicts target position t from source position t (PAD there → EOS): enough to learn the
    copy task; ``dropout`` between the embedding and the read-out."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(V, 16)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(16, V)

    def forward(self, src, src_lengths, tgt_in):
        x = F.pad(src, (0, tgt_in.shape[1] - src.shape[1]), value=PAD)  # (B, T)
        return self.out(self.dropout(self.embedding(x))), None  # (B, T, V)


def fresh(dropout=0.0, init_seed=0):
    torch.manual_seed(init_seed)
    return TinyCopier(dropout)


# ---------------------------------------------------------------- determinism


def test_training_is_deterministic_and_learns():
    def run():
        torch.manual_seed(0)
        model = RNNSeq2Seq(V, 8, 16, attention=True)

        def sample(g):
            return make_batch("reverse", 16, min_len=2, max_len=4, num_symbols=6, generator=g)

        return train(model, seq2seq_loss, sample, steps=40, lr=1e-2, seed=1, progress=False)

    first, second = run(), run()
    assert first.losses == second.losses  # same seed, same history, bit for bit
    assert len(first.losses) == 40
    assert sum(first.losses[-5:]) / 5 < 0.7 * sum(first.losses[:5]) / 5


def test_without_dropout_train_is_a_plain_adam_loop():
    """Valid input without dropout keeps the old numbers: batches drawn from Generator(seed) in
    order, Adam, clipping — nothing else. (The notebooks' printed losses depend on it.)"""
    model = fresh()
    expected_model = fresh()
    result = train(model, seq2seq_loss, sample_copy, steps=15, lr=1e-2, seed=4, clip_norm=0.5,
                   progress=False)

    g = torch.Generator().manual_seed(4)
    optimizer = torch.optim.Adam(expected_model.parameters(), lr=1e-2)
    expected = []
    for _ in range(15):
        loss = seq2seq_loss(expected_model, sample_copy(g))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(expected_model.parameters(), 0.5)
        optimizer.step()
        expected.append(loss.item())
    assert result.losses == expected
    assert not model.training  # left in eval mode, as documented


def test_dropout_training_is_deterministic_per_seed_whatever_the_global_state():
    def run(seed, global_noise):
        model = fresh(dropout=0.5)  # the same initial weights every time
        torch.manual_seed(global_noise)  # the caller's global RNG differs between runs
        torch.rand(global_noise)  # ... and has been used differently
        return train(model, seq2seq_loss, sample_copy, steps=12, lr=1e-2, seed=seed,
                     progress=False).losses

    first = run(seed=3, global_noise=1)
    assert run(seed=3, global_noise=7) == first  # dropout masks follow `seed`, not the caller
    assert run(seed=4, global_noise=1) != first  # ... and a different seed gives other masks
    # Dropout is really on: the same model without it has another history.
    no_dropout = train(fresh(), seq2seq_loss, sample_copy, steps=12, lr=1e-2, seed=3,
                       progress=False).losses
    assert no_dropout != first


def test_train_restores_the_callers_global_random_state():
    model = fresh(dropout=0.5)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(model, seq2seq_loss, sample_copy, steps=3, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    # The caller's own random stream continues as if train had not run.
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, seq2seq_loss, sample_copy, steps=3, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_global_state_is_restored_when_training_fails():
    model = fresh(dropout=0.5)
    before = torch.get_rng_state()
    with pytest.raises(FloatingPointError):
        train(model, lambda m, b: seq2seq_loss(m, b) * float("nan"), sample_copy, steps=2,
              progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_numpy_numbers_are_accepted():
    a = train(fresh(), seq2seq_loss, sample_copy, steps=np.int64(3), lr=np.float64(1e-2),
              seed=np.int64(2), clip_norm=np.float32(1.0), progress=False)
    b = train(fresh(), seq2seq_loss, sample_copy, steps=3, lr=1e-2, seed=2, progress=False)
    assert a.losses == b.losses


# ---------------------------------------------------------------- bad input


def test_train_rejects_bad_arguments_and_nan_losses():
    model = RNNSeq2Seq(V, 4, 4)
    with pytest.raises(ValueError, match="steps"):
        train(model, seq2seq_loss, lambda g: batch(), steps=0)
    with pytest.raises(ValueError, match="lr"):
        train(model, seq2seq_loss, lambda g: batch(), steps=1, lr=0.0)
    with pytest.raises(FloatingPointError, match="step 0"):
        train(model, lambda m, b: seq2seq_loss(m, b) * float("nan"), lambda g: batch(), steps=1)


BAD_TRAIN = [
    ({"steps": 0}, ValueError, ["steps", ">= 1", "0"]),
    ({"steps": -1}, ValueError, ["steps", "-1"]),
    ({"steps": 1.5}, TypeError, ["steps", "int", "float"]),
    ({"steps": True}, TypeError, ["steps", "bool"]),
    ({"steps": "3"}, TypeError, ["steps", "str"]),
    ({"steps": None}, TypeError, ["steps", "NoneType"]),
    ({"lr": 0}, ValueError, ["lr", "> 0"]),
    ({"lr": -1e-3}, ValueError, ["lr", "-0.001"]),
    ({"lr": float("nan")}, ValueError, ["lr", "finite", "nan"]),
    ({"lr": float("inf")}, ValueError, ["lr", "finite", "inf"]),
    ({"lr": True}, TypeError, ["lr", "bool"]),
    ({"lr": "0.1"}, TypeError, ["lr", "str"]),
    ({"lr": None}, TypeError, ["lr", "NoneType"]),
    ({"lr": 1j}, TypeError, ["lr", "complex"]),
    ({"seed": 1.5}, TypeError, ["seed", "float"]),
    ({"seed": True}, TypeError, ["seed", "bool"]),
    ({"seed": "0"}, TypeError, ["seed", "str"]),
    ({"seed": None}, TypeError, ["seed", "NoneType"]),
    ({"seed": 2**70}, ValueError, ["seed", "2**64 - 1"]),
    ({"seed": -(2**70)}, ValueError, ["seed", "-2**63"]),
    ({"clip_norm": 0}, ValueError, ["clip_norm", "> 0"]),
    ({"clip_norm": -1.0}, ValueError, ["clip_norm", "-1.0"]),
    ({"clip_norm": float("nan")}, ValueError, ["clip_norm", "finite"]),
    ({"clip_norm": float("inf")}, ValueError, ["clip_norm", "finite"]),
    ({"clip_norm": True}, TypeError, ["clip_norm", "bool"]),
    ({"clip_norm": "1"}, TypeError, ["clip_norm", "str"]),
    ({"progress": "yes"}, TypeError, ["progress", "bool", "str"]),
    ({"progress": 1}, TypeError, ["progress", "bool", "int"]),
    ({"progress": 0}, TypeError, ["progress", "int"]),
    ({"model": lambda x: x}, TypeError, ["model", "nn.Module", "function"]),
    ({"model": nn.ReLU()}, ValueError, ["model", "ReLU", "no trainable parameter"]),
    ({"model": TinyCopier().requires_grad_(False)}, ValueError, ["model", "requires_grad"]),
    ({"loss_fn": None}, TypeError, ["loss_fn", "loss_fn(model, batch)", "NoneType"]),
    ({"sample_batch": 3}, TypeError, ["sample_batch", "sample_batch(generator)", "int"]),
]


def _case_id(kwargs):
    (name, value), = kwargs.items()
    return f"{name}={type(value).__name__ if callable(value) else repr(value)}"


@pytest.mark.parametrize("kwargs, error, words", BAD_TRAIN, ids=[_case_id(r[0]) for r in BAD_TRAIN])
def test_bad_train_arguments_are_named_before_any_step(kwargs, error, words):
    calls = []
    args = {"model": fresh(), "loss_fn": seq2seq_loss,
            "sample_batch": lambda g: calls.append(1) or sample_copy(g)}
    for name in ("model", "loss_fn", "sample_batch"):
        if name in kwargs:
            args[name] = kwargs.pop(name)
    kwargs = {"steps": 2, "progress": False} | kwargs
    with pytest.raises(error) as info:
        train(args["model"], args["loss_fn"], args["sample_batch"], **kwargs)
    for word in words:
        assert word in str(info.value)
    assert calls == []  # raised before drawing a single batch


BAD_LOSSES = [
    (lambda m, b: 1.0, TypeError, ["loss_fn(model, batch)", "float", "step 0"]),
    (lambda m, b: m(b.src, b.src_lengths, b.tgt_in)[0].mean(-1), TypeError,
     ["loss_fn(model, batch)", "scalar", "shape (16, 6)"]),
    (lambda m, b: seq2seq_loss(m, b).detach(), ValueError,
     ["loss_fn(model, batch)", "does not require grad"]),
    (lambda m, b: torch.tensor(1), TypeError, ["loss_fn(model, batch)", "torch.int64"]),
    (lambda m, b: seq2seq_loss(m, b).to(torch.complex64), TypeError,
     ["loss_fn(model, batch)", "complex64"]),
]


@pytest.mark.parametrize("loss_fn, error, words", BAD_LOSSES,
                         ids=["float", "(B, T) tensor", "detached", "int tensor", "complex"])
def test_bad_losses_are_named(loss_fn, error, words):
    def sample(g):
        return make_batch("copy", 16, min_len=5, max_len=5, num_symbols=6, generator=g)

    with pytest.raises(error) as info:
        train(fresh(), loss_fn, sample, steps=2, progress=False)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------- results and progress bar


def test_smoothed_is_a_running_mean():
    result = TrainResult([1.0, 3.0, 5.0, 7.0])
    assert result.smoothed(2) == [1.0, 2.0, 4.0, 6.0]
    assert result.smoothed(1) == result.losses
    assert result.smoothed(10) == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("window, error", [
    (0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError),
])
def test_smoothed_rejects_bad_windows(window, error):
    with pytest.raises(error, match="window"):
        TrainResult([1.0, 2.0]).smoothed(window)


def test_progress_bar_stays_quiet_under_tests_and_builds(monkeypatch):
    assert quiet()  # pytest sets PYTEST_CURRENT_TEST
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.delenv("ATTENTION_COURSE_QUIET", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)  # as in a terminal
    assert not quiet()
    monkeypatch.setenv("ATTENTION_COURSE_QUIET", "1")  # as in `make book`
    assert quiet()


# ---------------------------------------------------------------- set_seed


def test_set_seed_seeds_python_numpy_and_torch():
    g = set_seed(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item(),  # noqa: NPY002
             torch.rand(1, generator=g).item())
    g = set_seed(np.int64(5))  # a NumPy integer is fine too
    again = (random.random(), np.random.rand(), torch.rand(1).item(),  # noqa: NPY002
             torch.rand(1, generator=g).item())
    assert first == again


@pytest.mark.parametrize("seed, error, words", [
    (1.5, TypeError, ["seed", "float"]),
    (True, TypeError, ["seed", "bool"]),
    ("0", TypeError, ["seed", "str"]),
    (None, TypeError, ["seed", "NoneType"]),
    (-1, ValueError, ["seed", ">= 0", "-1"]),
    (2**32, ValueError, ["seed", "2**32 - 1", "4294967296"]),
])
def test_set_seed_rejects_bad_seeds(seed, error, words):
    with pytest.raises(error) as info:
        set_seed(seed)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------- learning-rate schedules


def test_a_schedule_of_ones_changes_nothing_and_rates_are_recorded():
    plain = train(fresh(), seq2seq_loss, sample_copy, steps=8, lr=1e-2, seed=3, progress=False)
    ones = train(fresh(), seq2seq_loss, sample_copy, steps=8, lr=1e-2, seed=3, progress=False,
                 lr_schedule=lambda step: 1.0)
    assert ones.losses == plain.losses  # bit for bit
    assert plain.learning_rates == ones.learning_rates == [1e-2] * 8


def test_a_schedule_sets_each_steps_learning_rate_like_a_hand_written_loop():
    def factor(step):
        return [0.1, 0.5, 1.0, 0.0, 2.0, 0.25][step] if step < 6 else 1.0

    model, expected_model = fresh(), fresh()
    result = train(model, seq2seq_loss, sample_copy, steps=6, lr=1e-2, seed=4, clip_norm=None,
                   progress=False, lr_schedule=factor)
    assert result.learning_rates == [1e-2 * factor(s) for s in range(6)]

    g = torch.Generator().manual_seed(4)
    optimizer = torch.optim.Adam(expected_model.parameters(), lr=1e-2)
    expected = []
    for step in range(6):
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 * factor(step)
        loss = seq2seq_loss(expected_model, sample_copy(g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert result.losses == expected
    for ours, theirs in zip(model.parameters(), expected_model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_a_zero_factor_leaves_the_weights_alone():
    model = fresh()
    before = [p.detach().clone() for p in model.parameters()]
    train(model, seq2seq_loss, sample_copy, steps=3, lr=1e-2, progress=False,
          lr_schedule=lambda step: 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("schedule, error, words", [
    (0.5, TypeError, ["lr_schedule", "float"]),
    ("warmup", TypeError, ["lr_schedule", "str"]),
    (lambda step: -1.0, ValueError, ["lr_schedule(step)", ">= 0", "step 0"]),
    (lambda step: float("nan"), ValueError, ["lr_schedule(step)", "finite", "step 0"]),
    (lambda step: "1", TypeError, ["lr_schedule(step)", "str", "step 0"]),
    (lambda step: None, TypeError, ["lr_schedule(step)", "NoneType", "step 0"]),
], ids=["float", "str", "negative", "nan", "returns str", "returns None"])
def test_bad_schedules_are_named_before_any_step(schedule, error, words):
    calls = []
    with pytest.raises(error) as info:
        train(fresh(), seq2seq_loss, lambda g: calls.append(1) or sample_copy(g), steps=2,
              progress=False, lr_schedule=schedule)
    for word in words:
        assert word in str(info.value)
    assert calls == []


def test_a_schedule_that_goes_bad_later_names_the_step():
    with pytest.raises(ValueError, match="step 3"):
        train(fresh(), seq2seq_loss, sample_copy, steps=6, progress=False,
              lr_schedule=lambda step: 1.0 if step < 3 else float("inf"))
