"""T5's span corruption: noise density and mean span length (statistically), sentinels in
order, inputs + targets reconstruct the text, determinism per generator, argument checks."""

import pytest
import torch

from attention_course.objectives.span_corruption import (
    noise_span_mask,
    random_segmentation,
    span_corruption,
)

SENTINELS = list(range(1000, 1100))


def reconstruct(inputs, targets, sentinels=SENTINELS):
    """Replace each sentinel of ``inputs`` by the tokens after it in ``targets``."""
    spans, current = {}, None
    for t in targets.tolist():
        if t in sentinels:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs.tolist():
        out.extend(spans[t] if t in sentinels else [t])
    return out


def spans_of(mask):
    """Lengths of the runs of True in a boolean vector."""
    lengths, run = [], 0
    for m in mask.tolist() + [False]:
        if m:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    return lengths


def test_paper_example_shape():
    tokens = torch.arange(10, 40)
    g = torch.Generator().manual_seed(0)
    inputs, targets = span_corruption(tokens, noise_density=0.3, mean_span_length=3.0,
                                      sentinel_ids=SENTINELS, generator=g)
    assert inputs.dtype == targets.dtype == torch.long
    assert reconstruct(inputs, targets) == tokens.tolist()
    n_spans = int((inputs >= 1000).sum())
    assert n_spans == 3  # round(30 * 0.3 / 3)
    assert len(targets) == 9 + n_spans and len(inputs) == 30 - 9 + n_spans


@pytest.mark.parametrize("seed", range(20))
def test_inputs_and_targets_reconstruct_the_original_with_sentinels_in_order(seed):
    g = torch.Generator().manual_seed(seed)
    length = int(torch.randint(2, 80, (1,), generator=g))
    tokens = torch.randint(3, 500, (length,), generator=g)
    inputs, targets = span_corruption(tokens, sentinel_ids=SENTINELS, generator=g)
    assert reconstruct(inputs, targets) == tokens.tolist()
    in_sentinels = [t for t in inputs.tolist() if t >= 1000]
    tgt_sentinels = [t for t in targets.tolist() if t >= 1000]
    assert in_sentinels == tgt_sentinels == SENTINELS[:len(in_sentinels)]  # in order, each once
    assert targets[0] == SENTINELS[0]  # targets open with the first sentinel
    assert not (inputs[1:] >= 1000).logical_and(inputs[:-1] >= 1000).any()  # spans not adjacent


def test_noise_density_and_mean_span_length_statistically():
    g = torch.Generator().manual_seed(0)
    noise, spans = 0, []
    for _ in range(300):
        mask = noise_span_mask(100, noise_density=0.15, mean_span_length=3.0, generator=g)
        noise += int(mask.sum())
        spans += spans_of(mask)
    assert noise / (300 * 100) == pytest.approx(0.15, abs=0.005)
    assert sum(spans) / len(spans) == pytest.approx(3.0, abs=0.1)
    assert max(spans) > 5 and min(spans) == 1  # random lengths, not all equal to 3
    g = torch.Generator().manual_seed(1)
    masks = torch.stack([noise_span_mask(200, noise_density=0.5, mean_span_length=8.0,
                                         generator=g) for _ in range(100)])
    assert masks.float().mean().item() == pytest.approx(0.5, abs=0.01)
    lengths = [s for m in masks for s in spans_of(m)]
    # 100 noise tokens in round(100 / 8) = 12 spans: 8.33, the asked 8 up to rounding
    assert sum(lengths) / len(lengths) == pytest.approx(100 / 12)
    assert abs(sum(lengths) / len(lengths) - 8.0) < 0.5


def test_positions_are_spread_over_the_sequence():
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([noise_span_mask(60, generator=g) for _ in range(2000)])
    per_position = masks.float().mean(0)  # about 0.15 everywhere but the very start
    assert per_position[0] == 0  # a kept piece comes first (as in T5)
    assert per_position[10:50].min() > 0.08 and per_position[10:50].max() < 0.25


def test_deterministic_per_generator_and_random_across_seeds():
    tokens = torch.arange(3, 63)

    def run(seed):
        return span_corruption(tokens, sentinel_ids=SENTINELS,
                               generator=torch.Generator().manual_seed(seed))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_random_segmentation_sums_and_is_nonempty():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        pieces = random_segmentation(17, 5, g)
        assert pieces.sum() == 17 and len(pieces) == 5 and pieces.min() >= 1
    with pytest.raises(ValueError, match="num_segments"):
        random_segmentation(3, 4)


def test_short_sequences_keep_one_token_and_drop_one():
    inputs, targets = span_corruption(torch.tensor([7, 8]), sentinel_ids=[99])
    assert inputs.tolist() == [7, 99] and targets.tolist() == [99, 8]


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"tokens": torch.arange(5.0)}, TypeError, "tokens"),
    ({"tokens": torch.zeros(2, 5, dtype=torch.long)}, ValueError, "tokens"),
    ({"tokens": torch.tensor([3])}, ValueError, "length"),
    ({"noise_density": 0.0}, ValueError, "noise_density"),
    ({"noise_density": 1.0}, ValueError, "noise_density"),
    ({"mean_span_length": 0.5}, ValueError, "mean_span_length"),
    ({"sentinel_ids": []}, ValueError, "sentinel_ids"),
    ({"sentinel_ids": [100, 100]}, ValueError, "distinct"),
    ({"sentinel_ids": [5]}, ValueError, "tokens contains sentinel"),
    ({"generator": 3}, TypeError, "generator"),
])
def test_bad_arguments_are_named(kwargs, error, name):
    options = {"tokens": torch.arange(3, 40), "sentinel_ids": [100, 101]} | kwargs
    tokens = options.pop("tokens")
    with pytest.raises(error, match=name):
        span_corruption(tokens, **options)


def test_too_few_sentinels_is_named():
    with pytest.raises(ValueError, match="sentinel_ids has 1 ids"):
        span_corruption(torch.arange(3, 103), noise_density=0.3, sentinel_ids=[500])
