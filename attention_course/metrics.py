"""Loss and accuracy for padded sequence targets (``PAD`` positions never count)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_course._checks import check_tensor
from attention_course.data import PAD

__all__ = ["sequence_cross_entropy", "seq2seq_loss", "token_accuracy", "exact_match"]


def _check_targets(name: str, pred: torch.Tensor, targets: torch.Tensor, ndim: int) -> None:
    check_tensor("targets", targets, ndim=2, integer=True)
    check_tensor(name, pred, ndim=ndim)
    if pred.shape[:2] != targets.shape:
        raise ValueError(f"{name} has shape {tuple(pred.shape)} but targets have "
                         f"{tuple(targets.shape)}; expected the same (B, T) in front")


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over non-PAD target tokens. ``logits`` ``(B, T, V)``, ``targets``
    ``(B, T)``."""
    _check_targets("logits", logits, targets, 3)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)


def seq2seq_loss(model, batch) -> torch.Tensor:
    """Teacher-forced loss of a sequence-to-sequence model on a
    :class:`~attention_course.data.Seq2SeqBatch`: ``model(src, src_lengths, tgt_in)`` must return
    ``(logits (B, T, V), anything)`` (as ``Seq2Seq`` and ``Transformer`` do). Pass it to
    :func:`attention_course.train.train` as ``loss_fn``."""
    logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
    return sequence_cross_entropy(logits, batch.tgt_out)


def token_accuracy(tokens: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of non-PAD target positions predicted exactly. Both ``(B, T)``."""
    _check_targets("tokens", tokens, targets, 2)
    real = targets != PAD
    return (tokens == targets)[real].double().mean().item()


def exact_match(tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: every non-PAD target token (``EOS`` included) predicted exactly."""
    _check_targets("tokens", tokens, targets, 2)
    return ((tokens == targets) | (targets == PAD)).all(dim=1)
