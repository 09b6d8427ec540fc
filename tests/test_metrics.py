"""Loss and accuracy over padded targets: PAD never counts, an all-padding batch is an error
(never NaN), and bad tensors are named before any computation."""

import pytest
import torch
import torch.nn.functional as F

from attention_course.data import EOS, PAD, Seq2SeqBatch, make_batch, vocab_size
from attention_course.metrics import (
    exact_match,
    seq2seq_loss,
    sequence_cross_entropy,
    token_accuracy,
)

V = vocab_size(6)
TARGETS = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
TOKENS = torch.tensor([[5, 6, EOS, 4], [7, 8, PAD, PAD]])  # row 0 right, row 1 misses EOS
LOGITS = torch.zeros(2, 4, V)
ALL_PAD = torch.full((2, 4), PAD)


def test_metrics_ignore_padding():
    targets = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    tokens = torch.tensor([[5, 6, EOS, 9], [7, 8, PAD, PAD]])  # row 0 right, row 1 misses EOS
    assert exact_match(tokens, targets).tolist() == [True, False]
    assert token_accuracy(tokens, targets) == 4 / 5
    logits = torch.zeros(2, 4, V, dtype=torch.float64)
    logits[..., 5] = 100.0  # always predicts 5: right once out of five real tokens
    assert torch.isclose(sequence_cross_entropy(logits, targets),
                         torch.tensor(4 * 100.0 / 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="logits"):
        sequence_cross_entropy(logits[:, :3], targets)


def test_cross_entropy_is_the_mean_over_real_tokens_only():
    logits = torch.randn(2, 4, V, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    real = TARGETS != PAD
    expected = -torch.log_softmax(logits, -1).gather(-1, TARGETS[..., None])[..., 0][real].mean()
    assert torch.allclose(sequence_cross_entropy(logits, TARGETS), expected, rtol=0, atol=1e-12)
    # What sits at padded positions of the logits changes nothing.
    changed = logits.clone()
    changed[~real] = 1e3
    assert sequence_cross_entropy(changed, TARGETS) == sequence_cross_entropy(logits, TARGETS)


@pytest.mark.parametrize("convert", [
    lambda x: x.half(), lambda x: x.bfloat16(), lambda x: x.double(),
    lambda x: x.transpose(0, 1).contiguous().transpose(0, 1),  # non-contiguous
], ids=["float16", "bfloat16", "float64", "non-contiguous"])
def test_cross_entropy_takes_every_floating_dtype_and_layout(convert):
    logits = torch.randn(2, 4, V, generator=torch.Generator().manual_seed(0))
    loss = sequence_cross_entropy(convert(logits), TARGETS)
    assert loss.dtype == convert(logits).dtype and loss.dim() == 0
    assert torch.isclose(loss.float(), sequence_cross_entropy(logits, TARGETS), rtol=2e-2)


def test_exact_match_of_an_empty_batch_is_empty_and_int32_works():
    empty = torch.zeros(0, 3, dtype=torch.long)
    assert exact_match(empty, empty).shape == (0,)
    assert token_accuracy(TOKENS.int(), TARGETS.int()) == 4 / 5


BAD_CROSS_ENTROPY = [
    ("all-PAD targets", LOGITS, ALL_PAD, ValueError, ["targets", "no non-PAD token"]),
    ("B = 0", torch.zeros(0, 4, V), torch.zeros(0, 4, dtype=torch.long), ValueError,
     ["targets", "(0, 4)", "no non-PAD"]),
    ("T = 0", torch.zeros(2, 0, V), torch.zeros(2, 0, dtype=torch.long), ValueError,
     ["targets", "no non-PAD"]),
    ("V = 0", torch.zeros(2, 4, 0), TARGETS, ValueError, ["logits", "V >= 1"]),
    ("int logits", LOGITS.long(), TARGETS, TypeError, ["logits", "floating", "int64"]),
    ("bool logits", LOGITS.bool(), TARGETS, TypeError, ["logits", "torch.bool"]),
    ("complex logits", LOGITS.to(torch.complex64), TARGETS, TypeError,
     ["logits", "complex64"]),
    ("float targets", LOGITS, TARGETS.float(), TypeError, ["targets", "integer", "float32"]),
    ("bool targets", LOGITS, TARGETS.bool(), TypeError, ["targets", "integer", "bool"]),
    ("targets >= V", LOGITS, TARGETS + V, ValueError, ["targets", "token id", f"V={V}"]),
    ("negative targets", LOGITS, TARGETS - 3, ValueError, ["targets", ">= 0", "-3"]),
    ("1-D targets", LOGITS, TARGETS[0], ValueError, ["targets", "2 dimensions", "(4,)"]),
    ("2-D logits", LOGITS[0], TARGETS, ValueError, ["logits", "3 dimensions", "(4, 9)"]),
    ("T mismatch", LOGITS[:, :3], TARGETS, ValueError, ["logits", "(2, 3, 9)", "(2, 4)"]),
    ("B mismatch", LOGITS[:1], TARGETS, ValueError, ["logits", "(1, 4, 9)", "(B, T)"]),
    ("list logits", LOGITS.tolist(), TARGETS, TypeError, ["logits", "torch.Tensor", "list"]),
    ("list targets", LOGITS, TARGETS.tolist(), TypeError, ["targets", "list"]),
    ("sparse logits", LOGITS.to_sparse(), TARGETS, TypeError, ["logits", "dense"]),
]


@pytest.mark.parametrize("case, logits, targets, error, words", BAD_CROSS_ENTROPY,
                         ids=[row[0] for row in BAD_CROSS_ENTROPY])
def test_cross_entropy_rejects(case, logits, targets, error, words):
    with pytest.raises(error) as info:
        sequence_cross_entropy(logits, targets)
    for word in words:
        assert word in str(info.value)


BAD_TOKENS = [
    ("all-PAD targets", ALL_PAD, ALL_PAD, ValueError, ["targets", "no non-PAD"]),
    ("B = 0", torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long),
     ValueError, ["targets", "no non-PAD"]),
    ("float tokens", TOKENS.float(), TARGETS, TypeError, ["tokens", "integer", "float32"]),
    ("bool tokens", TOKENS.bool(), TARGETS, TypeError, ["tokens", "integer", "bool"]),
    ("float targets", TOKENS, TARGETS.float(), TypeError, ["targets", "integer"]),
    ("T mismatch", TOKENS[:, :3], TARGETS, ValueError, ["tokens", "(2, 3)", "(2, 4)"]),
    ("(1, T) tokens for a batch", TOKENS[:1], TARGETS, ValueError, ["tokens", "(1, 4)"]),
    ("1-D tokens", TOKENS[0], TARGETS, ValueError, ["tokens", "2 dimensions"]),
    ("negative targets", TOKENS, TARGETS - 5, ValueError, ["targets", ">= 0"]),
    ("list tokens", TOKENS.tolist(), TARGETS, TypeError, ["tokens", "list"]),
]


BAD_ACCURACY = [pytest.param(metric, *row, id=f"{metric.__name__}: {row[0]}")
                for metric in (token_accuracy, exact_match) for row in BAD_TOKENS
                if not (metric is exact_match and row[0] == "B = 0")]  # that one is empty


@pytest.mark.parametrize("metric, case, tokens, targets, error, words", BAD_ACCURACY)
def test_accuracy_metrics_reject(metric, case, tokens, targets, error, words):
    with pytest.raises(error) as info:
        metric(tokens, targets)
    for word in words:
        assert word in str(info.value)


def test_exact_match_names_the_rows_without_a_target():
    targets = torch.cat([TARGETS[:1], ALL_PAD[:1]])  # the second row has nothing to predict
    with pytest.raises(ValueError, match=r"targets rows \[1\]"):
        exact_match(TOKENS, targets)


# ---------------------------------------------------------------- seq2seq_loss


class Fixed(torch.nn.Module):
    """A "model" whose output is built by ``make(src, src_lengths, tgt_in)``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, src, src_lengths, tgt_in):
        return self.make(src, src_lengths, tgt_in)


BATCH = make_batch("copy", 3, min_len=2, max_len=4, num_symbols=6,
                   generator=torch.Generator().manual_seed(0))


def test_seq2seq_loss_is_the_cross_entropy_of_the_models_logits():
    logits = torch.randn(*BATCH.tgt_in.shape, V, generator=torch.Generator().manual_seed(1))
    model = Fixed(lambda s, n, t: (logits, None))
    assert seq2seq_loss(model, BATCH) == F.cross_entropy(
        logits.flatten(0, 1), BATCH.tgt_out.flatten(), ignore_index=PAD)


BAD_SEQ2SEQ = [
    ("batch is a tuple", Fixed(lambda s, n, t: None), (BATCH.src, BATCH.src_lengths), TypeError,
     ["batch", "Seq2SeqBatch", "tuple"]),
    ("batch is None", Fixed(lambda s, n, t: None), None, TypeError, ["batch", "NoneType"]),
    ("model is not callable", 3, BATCH, TypeError, ["model", "callable", "int"]),
    ("model returns a tensor", Fixed(lambda s, n, t: torch.zeros(*t.shape, V)), BATCH, TypeError,
     ["model(src, src_lengths, tgt_in)", "pair", "Tensor"]),
    ("model returns a 1-tuple", Fixed(lambda s, n, t: (torch.zeros(*t.shape, V),)), BATCH,
     TypeError, ["model(src, src_lengths, tgt_in)", "pair", "length 1"]),
    ("logits too short", Fixed(lambda s, n, t: (torch.zeros(3, 2, V), None)), BATCH,
     ValueError, ["the model's logits", "batch.tgt_out", "(3, 2, 9)"]),
    ("too few classes", Fixed(lambda s, n, t: (torch.zeros(*t.shape, 2), None)), BATCH,
     ValueError, ["batch.tgt_out", "token id", "the model's logits", "V=2"]),
    ("integer logits", Fixed(lambda s, n, t: (torch.zeros(*t.shape, V, dtype=torch.long), 0)),
     BATCH, TypeError, ["the model's logits", "floating"]),
]


@pytest.mark.parametrize("case, model, batch, error, words", BAD_SEQ2SEQ,
                         ids=[row[0] for row in BAD_SEQ2SEQ])
def test_seq2seq_loss_rejects(case, model, batch, error, words):
    with pytest.raises(error) as info:
        seq2seq_loss(model, batch)
    for word in words:
        assert word in str(info.value)


def test_seq2seq_loss_takes_any_valid_batch():
    batch = Seq2SeqBatch(src=torch.tensor([[4, 5]]), src_lengths=torch.tensor([2]),
                         tgt_in=torch.tensor([[1, 4, 5]]), tgt_out=torch.tensor([[4, 5, EOS]]),
                         tgt_lengths=torch.tensor([3]))
    logits = torch.zeros(1, 3, V)
    loss = seq2seq_loss(Fixed(lambda s, n, t: (logits, None)), batch)
    assert torch.isclose(loss, torch.log(torch.tensor(float(V))))  # uniform over V classes


# ---------------------------------------------------------------- label smoothing


def test_label_smoothing_is_the_mixture_of_one_hot_and_uniform_over_real_tokens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, V, generator=g, dtype=torch.float64)
    real = TARGETS != PAD
    log_p = torch.log_softmax(logits, -1)  # (B, T, V)
    nll = -log_p.gather(-1, TARGETS[..., None])[..., 0][real]  # (N,)
    uniform = -log_p.mean(-1)[real]  # (N,): cross-entropy against the uniform distribution
    for eps in (0.0, 0.1, 0.5, 1.0):
        expected = ((1 - eps) * nll + eps * uniform).mean()
        got = sequence_cross_entropy(logits, TARGETS, label_smoothing=eps)
        assert torch.allclose(got, expected, rtol=0, atol=1e-12), eps
    assert torch.equal(sequence_cross_entropy(logits, TARGETS, label_smoothing=0.0),
                       sequence_cross_entropy(logits, TARGETS))  # the default is unchanged


def test_label_smoothing_is_minimised_below_full_confidence():
    # With smoothing eps the best prediction puts 1 - eps + eps / V on the target, not 1.
    eps, targets = 0.1, torch.tensor([[5]])
    best = torch.full((V,), eps / V, dtype=torch.float64)
    best[5] += 1 - eps
    confident = torch.full((V,), 1e-6, dtype=torch.float64)
    confident[5] = 1.0
    loss = {name: sequence_cross_entropy(p.log()[None, None], targets, label_smoothing=eps)
            for name, p in (("best", best), ("confident", confident))}
    assert loss["best"] < loss["confident"]
    logits = best.log().clone().requires_grad_(True)
    sequence_cross_entropy(logits[None, None], targets, label_smoothing=eps).backward()
    assert logits.grad.abs().max() < 1e-12  # a stationary point: the minimum


def test_seq2seq_loss_passes_label_smoothing_through():
    b = make_batch("reverse", 4, min_len=2, max_len=5, num_symbols=6,
                   generator=torch.Generator().manual_seed(0))
    logits = torch.randn(*b.tgt_out.shape, V, generator=torch.Generator().manual_seed(1))

    def model(src, src_lengths, tgt_in):
        return logits, None

    for eps in (0.0, 0.2):
        assert torch.equal(seq2seq_loss(model, b, label_smoothing=eps),
                           sequence_cross_entropy(logits, b.tgt_out, label_smoothing=eps))
    assert torch.equal(seq2seq_loss(model, b), sequence_cross_entropy(logits, b.tgt_out))


@pytest.mark.parametrize("eps, error", [(-0.1, ValueError), (1.5, ValueError),
                                        (float("nan"), ValueError), ("0.1", TypeError),
                                        (True, TypeError)])
def test_label_smoothing_outside_0_1_is_named(eps, error):
    with pytest.raises(error, match="label_smoothing"):
        sequence_cross_entropy(LOGITS, TARGETS, label_smoothing=eps)
    b = make_batch("copy", 2, min_len=2, max_len=3, num_symbols=6,
                   generator=torch.Generator().manual_seed(0))
    with pytest.raises(error, match="label_smoothing"):
        seq2seq_loss(lambda *args: (torch.zeros(*b.tgt_out.shape, V), None), b,
                     label_smoothing=eps)


def test_next_token_loss_scores_each_token_against_its_successor():
    from attention_course.metrics import next_token_loss

    tokens = torch.tensor([[3, 4, 5], [5, 3, 4]])  # (B, T)
    V = 6

    def perfect(x):  # logits that put all mass on the true successor (and on 0 at the end)
        logits = torch.full((*x.shape, V), -50.0)
        logits[:, :-1].scatter_(-1, x[:, 1:, None], 50.0)
        return logits, None

    assert next_token_loss(perfect, tokens) < 1e-6
    uniform = next_token_loss(lambda x: (torch.zeros(*x.shape, V), None), tokens)
    assert torch.isclose(uniform, torch.log(torch.tensor(float(V))))
    with pytest.raises(ValueError, match="at least 2"):
        next_token_loss(perfect, tokens[:, :1])
    with pytest.raises(TypeError, match="tokens"):
        next_token_loss(perfect, tokens.float())
