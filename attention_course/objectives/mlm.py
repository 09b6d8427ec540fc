"""Masked language modelling (BERT, Devlin et al., 2019): hide some tokens, predict them.

:func:`mlm_mask` selects each ordinary token independently with probability ``mask_prob``
(BERT: 15%) — special tokens (padding, ``[CLS]``/``BOS``, ``[SEP]``/``EOS``, ``[MASK]`` …) never
— and corrupts the selected ones by BERT's **80/10/10 rule**: 80% become ``[MASK]``, 10% a
random ordinary token, 10% stay as they are. The model must predict the original token at every
selected position, so it cannot learn "copy the input unless it is ``[MASK]``": any visible
token might be wrong, and ``[MASK]``, which never occurs at fine-tuning time, is not the only
place where a prediction is asked for.

``labels`` hold the original token at the selected positions and :data:`IGNORE_INDEX` (``-100``,
the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``) elsewhere, so the loss is
simply ``F.cross_entropy(logits.flatten(0, 1), labels.flatten())``: the mean over the selected
positions. A batch in which nothing was selected has no target (that loss is ``nan``); with
``B * L * mask_prob`` well above one this is vanishingly rare.

Shape legend: ``B`` batch, ``L`` sequence length, ``V`` = ``vocab_size``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from attention_course._checks import check_float, check_generator, check_int, check_tokens

__all__ = ["mlm_mask", "IGNORE_INDEX", "MASK_FRACTION", "RANDOM_FRACTION"]

#: The label of positions without a target (``F.cross_entropy``'s default ``ignore_index``).
IGNORE_INDEX = -100
#: Of the selected positions: the share replaced by ``[MASK]`` and by a random token (BERT's
#: 80/10/10; the remaining 10% are left unchanged).
MASK_FRACTION, RANDOM_FRACTION = 0.8, 0.1


def _special_tensor(special_ids, vocab_size: int, mask_id: int) -> torch.Tensor:
    """``special_ids`` (ints) checked → a sorted id tensor that includes ``mask_id``."""
    if isinstance(special_ids, torch.Tensor):
        special_ids = special_ids.tolist() if special_ids.dim() else [special_ids.item()]
    if isinstance(special_ids, (str, bytes)) or not isinstance(special_ids, Iterable):
        raise TypeError(f"special_ids must be a collection of token ids (e.g. (PAD, BOS, "
                        f"EOS)), got {type(special_ids).__name__} {special_ids!r}")
    ids = list(special_ids)
    for i, value in enumerate(ids):
        check_int(f"special_ids[{i}]", value, minimum=0)
        if value >= vocab_size:
            raise ValueError(f"special_ids[{i}]={value} is not a token id in [0, "
                             f"{vocab_size - 1}] (vocab_size={vocab_size})")
    return torch.tensor(sorted({int(v) for v in ids} | {mask_id}), dtype=torch.long)


def mlm_mask(tokens: torch.Tensor, *, vocab_size: int, mask_id: int,
             special_ids, mask_prob: float = 0.15,
             generator: torch.Generator | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-language-model corruption: ``tokens`` ``(B, L)`` →
    ``(inputs, labels)``, both ``(B, L)`` long.

    Each token whose id is not in ``special_ids`` (``mask_id`` counts as
    special too) is *selected* with probability ``mask_prob``. A selected
    token becomes ``mask_id`` with probability 0.8, a uniformly drawn ordinary
    (non-special) id with probability 0.1, and stays unchanged with
    probability 0.1. ``labels`` is the original token where selected and
    :data:`IGNORE_INDEX` (``-100``) elsewhere.

    Randomness comes from ``generator`` only (``None``: torch's global
    generator): three ``(B, L)`` draws whatever the tokens, so a seeded
    generator gives the same result.

    Args:
        tokens: ``(B, L)`` integer token ids in ``[0, vocab_size)``.
        vocab_size: ``V``, the number of token ids.
        mask_id: the ``[MASK]`` id, in ``[0, vocab_size)``.
        special_ids: ids never selected nor drawn as replacements (PAD,
            BOS/``[CLS]``, EOS/``[SEP]`` …); ints, a list or a tensor.
        mask_prob: probability of selecting an ordinary token, in ``[0, 1]``.
    """
    check_int("vocab_size", vocab_size, minimum=1)
    check_tokens("tokens", tokens, vocab_size)
    check_int("mask_id", mask_id, minimum=0)
    if mask_id >= vocab_size:
        raise ValueError(f"mask_id={mask_id} is not a token id in "
                         f"[0, {vocab_size - 1}] (vocab_size={vocab_size})")
    specials = _special_tensor(special_ids, vocab_size, mask_id)  # with mask_id
    mask_prob = check_float("mask_prob", mask_prob, minimum=0.0, maximum=1.0)
    check_generator("generator", generator)
    is_special = torch.zeros(vocab_size, dtype=torch.bool)
    is_special[specials] = True
    ordinary = (~is_special).nonzero()[:, 0]  # candidate replacements
    if not len(ordinary):
        raise ValueError(f"special_ids and mask_id={mask_id} cover the whole "
                         f"vocabulary (vocab_size={vocab_size}); expected at "
                         f"least one ordinary token")

    shape = tokens.shape
    select_draw = torch.rand(shape, generator=generator)  # (B, L)
    rule_draw = torch.rand(shape, generator=generator)  # (B, L): 80/10/10
    random_draw = torch.randint(len(ordinary), shape, generator=generator)
    tokens_cpu = tokens.cpu()
    selected = (select_draw < mask_prob) & ~is_special[tokens_cpu]  # (B, L)
    to_mask = selected & (rule_draw < MASK_FRACTION)
    to_random = selected & (rule_draw >= MASK_FRACTION) & (
        rule_draw < MASK_FRACTION + RANDOM_FRACTION)
    inputs = torch.where(to_mask, mask_id, tokens_cpu)
    inputs = torch.where(to_random, ordinary[random_draw], inputs)  # (B, L)
    labels = torch.where(selected, tokens_cpu, IGNORE_INDEX)  # (B, L)
    device = tokens.device
    return inputs.to(device, torch.long), labels.to(device, torch.long)
