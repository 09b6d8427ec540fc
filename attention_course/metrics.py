"""Loss and accuracy for padded sequence targets (``PAD`` positions never count).

Every metric is a mean over the *real* (non-``PAD``) target tokens, so a batch without any real
target token has no value: the functions raise ``ValueError`` instead of returning NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_course._checks import check_float, check_tensor
from attention_course.data import PAD

__all__ = ["sequence_cross_entropy", "seq2seq_loss", "next_token_loss", "token_accuracy",
           "exact_match"]


def _check_targets(name: str, pred, targets, *, logits: bool, targets_name: str = "targets"):
    """``targets`` ``(B, T)`` token ids ``>= 0``; ``pred`` ``(B, T, V)`` floating logits or
    ``(B, T)`` integer tokens of the same ``(B, T)``."""
    check_tensor(targets_name, targets, ndim=2, integer=True)
    if logits:
        check_tensor(name, pred, ndim=3, floating=True)
    else:
        check_tensor(name, pred, ndim=2, integer=True)
    if pred.shape[:2] != targets.shape:
        raise ValueError(f"{name} has shape {tuple(pred.shape)} but {targets_name} has "
                         f"{tuple(targets.shape)}; expected the same (B, T) in front")
    if targets.numel() and int(targets.min()) < 0:
        raise ValueError(f"{targets_name} must be token ids >= 0 (PAD = {PAD}), got "
                         f"{int(targets.min())}")


def _check_has_real_tokens(targets: torch.Tensor, targets_name: str = "targets") -> None:
    if not bool((targets != PAD).any()):
        raise ValueError(f"{targets_name} (shape {tuple(targets.shape)}) has no non-PAD token: "
                         f"a mean over zero target tokens is undefined")


def _cross_entropy(logits, targets, logits_name: str, targets_name: str,
                   label_smoothing: float = 0.0) -> torch.Tensor:
    label_smoothing = check_float("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0)
    _check_targets(logits_name, logits, targets, logits=True, targets_name=targets_name)
    V = logits.shape[2]
    if V == 0:
        raise ValueError(f"{logits_name} has shape {tuple(logits.shape)}; expected (B, T, V) "
                         f"with V >= 1 classes")
    if targets.numel() and int(targets.max()) >= V:
        raise ValueError(f"{targets_name} contains token id {int(targets.max())} but "
                         f"{logits_name} has only V={V} classes (ids 0..{V - 1})")
    _check_has_real_tokens(targets, targets_name)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing)


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *,
                           label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over non-PAD target tokens. ``logits`` ``(B, T, V)`` floating,
    ``targets`` ``(B, T)`` integer ids in ``[0, V)``; at least one target must be non-PAD.

    ``label_smoothing`` ``ε`` in ``[0, 1]`` (``F.cross_entropy``'s argument) compares the
    prediction with ``(1 - ε)`` · one-hot + ``ε`` · uniform over the ``V`` classes instead of the
    one-hot target: per token, ``(1 - ε) · (-log p_target) + ε · mean_v(-log p_v)``. ``0.0``
    (default) is the plain cross-entropy."""
    return _cross_entropy(logits, targets, "logits", "targets", label_smoothing)


def seq2seq_loss(model, batch, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Teacher-forced loss of a sequence-to-sequence model on a
    :class:`~attention_course.data.Seq2SeqBatch`: ``model(src, src_lengths, tgt_in)`` must return
    ``(logits (B, T, V), anything)`` (as ``Seq2Seq`` and ``Transformer`` do). Pass it to
    :func:`attention_course.train.train` as ``loss_fn`` (with label smoothing, e.g.
    ``functools.partial(seq2seq_loss, label_smoothing=0.1)``; see
    :func:`sequence_cross_entropy`)."""
    label_smoothing = check_float("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0)
    fields = ("src", "src_lengths", "tgt_in", "tgt_out")
    if not all(hasattr(batch, f) for f in fields):
        raise TypeError(f"batch must be a Seq2SeqBatch (with {', '.join(fields)}), got "
                        f"{type(batch).__name__}")
    if not callable(model):
        raise TypeError(f"model must be callable as model(src, src_lengths, tgt_in), got "
                        f"{type(model).__name__}")
    output = model(batch.src, batch.src_lengths, batch.tgt_in)
    if not isinstance(output, tuple | list) or len(output) != 2:
        got = (f"a {type(output).__name__} of length {len(output)}"
               if isinstance(output, tuple | list) else type(output).__name__)
        raise TypeError(f"model(src, src_lengths, tgt_in) must return a pair (logits, "
                        f"weights_or_None), got {got}")
    logits, _ = output  # (B, T, V)
    return _cross_entropy(logits, batch.tgt_out, "the model's logits (its first output)",
                          "batch.tgt_out", label_smoothing)


def token_accuracy(tokens: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of non-PAD target positions predicted exactly. Both ``(B, T)`` integer; at least
    one target must be non-PAD."""
    _check_targets("tokens", tokens, targets, logits=False)
    _check_has_real_tokens(targets)
    real = targets != PAD
    return (tokens == targets)[real].double().mean().item()


def exact_match(tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: every non-PAD target token (``EOS`` included) predicted exactly.

    Both ``(B, T)`` integer. Every target row must contain a non-PAD token (a real target ends
    with ``EOS`` at least); ``B = 0`` gives an empty result.
    """
    _check_targets("tokens", tokens, targets, logits=False)
    empty = ~(targets != PAD).any(dim=1)  # (B,)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(f"targets rows {rows[:5]}{'…' if len(rows) > 5 else ''} have no non-PAD "
                         f"token: exact match of an empty target is undefined")
    return ((tokens == targets) | (targets == PAD)).all(dim=1)


def next_token_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Language-model loss: mean cross-entropy of predicting
    ``tokens[:, t + 1]`` from the logits at ``t``. ``model(tokens)`` must
    return ``(logits (B, T, V), anything)`` (as ``GPT`` does); ``tokens``
    ``(B, T)`` integer, ``T >= 2``. Pass it to
    :func:`~attention_course.train.train` as ``loss_fn``."""
    check_tensor("tokens", tokens, ndim=2, integer=True)
    if tokens.shape[1] < 2:
        raise ValueError(f"tokens must hold at least 2 positions (a token and "
                         f"its successor), got shape {tuple(tokens.shape)}")
    logits, _ = model(tokens)  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1),
                           tokens[:, 1:].flatten())
