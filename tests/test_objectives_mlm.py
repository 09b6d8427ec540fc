"""BERT's masked-language-model corruption: the 80/10/10 rates measured on a large batch,
special tokens never selected, labels aligned with the originals, determinism per generator,
and argument errors in the caller's words."""

import pytest
import torch

from attention_course.data.vocab import BOS, EOS, FIRST_SYMBOL, PAD
from attention_course.objectives.mlm import IGNORE_INDEX, mlm_mask

V = 50
MASK = V - 1
SPECIALS = (PAD, BOS, EOS)


def batch(B=400, L=250, seed=0):
    """Ordinary tokens with a BOS column, an EOS and padding at the end of every row."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(FIRST_SYMBOL, MASK, (B, L), generator=g)
    tokens[:, 0] = BOS
    tokens[:, -5] = EOS
    tokens[:, -4:] = PAD
    return tokens


def corrupt(tokens, seed=1, **kwargs):
    options = {"vocab_size": V, "mask_id": MASK, "special_ids": SPECIALS} | kwargs
    return mlm_mask(tokens, generator=torch.Generator().manual_seed(seed), **options)


def test_rates_follow_bert_80_10_10():
    tokens = batch()  # 100,000 positions, 98,000 ordinary ones
    inputs, labels = corrupt(tokens)
    ordinary = tokens >= FIRST_SYMBOL
    selected = labels != IGNORE_INDEX
    n_sel = int(selected.sum())
    # Binomial standard deviations: selection ~0.0011, shares ~0.003 (n_sel ~ 14,700); the
    # tolerances are more than 4 of them.
    assert abs(n_sel / int(ordinary.sum()) - 0.15) < 0.005
    masked = (inputs == MASK) & selected
    changed = (inputs != tokens) & (inputs != MASK) & selected
    kept = (inputs == tokens) & selected
    assert abs(int(masked.sum()) / n_sel - 0.8) < 0.015
    # A random replacement equals the original with probability 1/46 (46 ordinary ids).
    p_random_differs = 0.1 * (1 - 1 / 46)
    assert abs(int(changed.sum()) / n_sel - p_random_differs) < 0.012
    assert abs(int(kept.sum()) / n_sel - (1 - 0.8 - p_random_differs)) < 0.012


def test_random_replacements_are_uniform_over_ordinary_ids():
    tokens = batch()
    inputs, labels = corrupt(tokens, mask_prob=1.0)
    replaced = (labels != IGNORE_INDEX) & (inputs != MASK) & (inputs != tokens)
    counts = torch.bincount(inputs[replaced], minlength=V)
    assert counts[[PAD, BOS, EOS, MASK]].sum() == 0  # never a special id
    ordinary = counts[FIRST_SYMBOL:MASK].double()
    assert ordinary.min() > 0.7 * ordinary.mean() and ordinary.max() < 1.3 * ordinary.mean()


def test_specials_are_never_selected_and_unselected_positions_are_untouched():
    tokens = batch(B=50)
    tokens[:, 7] = MASK  # a [MASK] already in the input counts as special too
    inputs, labels = corrupt(tokens, mask_prob=1.0)
    special = torch.isin(tokens, torch.tensor([PAD, BOS, EOS, MASK]))
    assert torch.equal(labels[special], torch.full_like(labels[special], IGNORE_INDEX))
    assert torch.equal(inputs[special], tokens[special])
    assert bool((labels[~special] != IGNORE_INDEX).all())  # mask_prob=1: every ordinary one
    inputs, labels = corrupt(tokens)
    unselected = labels == IGNORE_INDEX
    assert torch.equal(inputs[unselected], tokens[unselected])


def test_labels_hold_the_original_tokens_where_selected():
    tokens = batch(B=20)
    inputs, labels = corrupt(tokens)
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], tokens[selected])
    assert inputs.dtype == labels.dtype == torch.long and inputs.shape == tokens.shape
    # The loss over the selected positions only: F.cross_entropy's default ignore_index.
    logits = torch.randn(*tokens.shape, V, generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
    by_hand = -logits.log_softmax(-1)[selected].gather(1, tokens[selected][:, None]).mean()
    torch.testing.assert_close(loss, by_hand)


def test_mask_prob_zero_selects_nothing():
    tokens = batch(B=10)
    inputs, labels = corrupt(tokens, mask_prob=0.0)
    assert torch.equal(inputs, tokens)
    assert bool((labels == IGNORE_INDEX).all())


def test_same_generator_seed_same_result_and_different_seed_differs():
    tokens = batch(B=20)
    first, again, other = corrupt(tokens, seed=3), corrupt(tokens, seed=3), corrupt(tokens, 4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    assert torch.equal(tokens, batch(B=20))  # the input is not modified


def test_special_ids_may_be_a_tensor_or_list():
    tokens = batch(B=5)
    a = corrupt(tokens, special_ids=[PAD, BOS, EOS])
    b = corrupt(tokens, special_ids=torch.tensor([EOS, PAD, BOS]))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"vocab_size": 10}, ValueError,
     r"tokens has token ids in \[0, \d+\].*expected ids in \[0, 9\]"),
    ({"mask_id": V}, ValueError, r"mask_id=50 is not a token id in \[0, 49\]"),
    ({"mask_id": 1.0}, TypeError, "mask_id must be an int"),
    ({"special_ids": 0}, TypeError, "special_ids must be a collection"),
    ({"special_ids": [0, 99]}, ValueError, r"special_ids\[1\]=99 is not a token id"),
    ({"special_ids": [0, "1"]}, TypeError, r"special_ids\[1\] must be an int"),
    ({"mask_prob": 1.5}, ValueError, r"mask_prob must be in \[0.0, 1.0\], got 1.5"),
    ({"mask_prob": True}, TypeError, "mask_prob must be a number"),
    ({"special_ids": range(V - 1)}, ValueError, "cover the whole vocabulary"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        corrupt(batch(B=2, L=10), **kwargs)


def test_bad_tokens_and_generator_are_named():
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        corrupt(batch(B=2, L=10).float())
    with pytest.raises(ValueError, match="tokens must have 2 dimensions"):
        corrupt(batch(B=2, L=10)[0])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mlm_mask(batch(B=2, L=10), vocab_size=V, mask_id=MASK, special_ids=SPECIALS,
                 generator=0)
