"""Attention masks in the course convention, and conversion to torch's other convention.

Course convention (the same as :func:`torch.nn.functional.scaled_dot_product_attention`):
a boolean mask where ``True`` means *this query may attend to this key*.

:class:`torch.nn.MultiheadAttention` and the ``nn.Transformer*`` layers use the **opposite**
polarity for boolean masks (``True`` = *blocked*). The two functions :func:`to_torch_mask` and
:func:`from_torch_mask` are the only places in the course where the polarity is flipped.
"""

from __future__ import annotations

import torch

from attention_course._checks import (
    check_bool,
    check_device,
    check_int,
    check_mask,
    check_same_device,
    check_tensor,
)

__all__ = ["causal_mask", "local_mask", "padding_mask", "key_padding_mask", "combine_masks",
           "attention_mask", "to_torch_mask", "from_torch_mask"]


def causal_mask(
    query_len: int, key_len: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean causal mask, ``True`` where query ``i`` may attend to key ``j``.

    Shapes: returns ``(Lq, Lk)`` with ``Lk = key_len`` (default ``Lq``).

    The mask is aligned **bottom-right**: query ``i`` sees keys ``j <= i + (Lk - Lq)``, so the last
    query always sees every key. That is what one decoding step needs (one new query attending to
    all cached keys). For ``Lq == Lk`` this is the usual lower-triangular mask. It is torch's
    ``torch.nn.attention.bias.causal_lower_right(Lq, Lk)`` (a test proves it); torch's
    ``is_causal=True`` aligns top-left instead when ``Lq != Lk``. When ``Lk < Lq`` the first
    ``Lq - Lk`` rows see no key at all. Empty sequences (``Lq = 0`` or ``Lk = 0``) give an
    empty mask.
    """
    check_int("query_len", query_len, minimum=0)
    key_len = query_len if key_len is None else key_len
    check_int("key_len", key_len, minimum=0)
    check_device("device", device)
    i = torch.arange(query_len, device=device)[:, None]  # (Lq, 1)
    j = torch.arange(key_len, device=device)[None, :]  # (1, Lk)
    return j <= i + (key_len - query_len)  # (Lq, Lk)


def local_mask(
    length: int, window: int, *, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    """Sliding-window (local) mask ``(L, L)``: query ``i`` may attend to keys within ``window``.

    ``causal=True``: keys ``i - window, …, i``; ``causal=False``: keys with ``|i - j| <= window``.
    ``window >= length - 1`` gives back full (causal) attention; ``length = 0`` gives an empty
    mask.
    """
    check_int("length", length, minimum=0)
    check_int("window", window, minimum=0)
    check_bool("causal", causal)
    check_device("device", device)
    i = torch.arange(length, device=device)[:, None]  # (L, 1)
    j = torch.arange(length, device=device)[None, :]  # (1, L)
    near = (i - j).abs() <= window  # (L, L)
    return near & (j <= i) if causal else near


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask of real (non-padding) positions, ``True`` for tokens that exist.

    Shapes: ``lengths`` ``(B,)`` integer; returns ``(B, L)`` with ``L = max_len`` (default
    ``lengths.max()``). To mask *keys* in attention scores ``(B, Lq, Lk)``, index it as
    ``mask[:, None, :]`` → ``(B, 1, Lk)``; with heads ``(B, H, Lq, Lk)`` use
    ``mask[:, None, None, :]``.
    """
    check_tensor("lengths", lengths, ndim=1, integer=True)
    if max_len is not None:
        check_int("max_len", max_len, minimum=0)
    if lengths.device.type == "meta":  # no values to read: only the shape can be built
        if max_len is None:
            raise ValueError("lengths is a meta tensor (it has no values); pass max_len")
        return torch.empty(lengths.shape[0], max_len, dtype=torch.bool, device="meta")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got minimum {int(lengths.min())}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if longest > max_len:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest})")
    positions = torch.arange(max_len, device=lengths.device)  # (L,)
    return positions[None, :] < lengths[:, None]  # (B, L)


def key_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """:func:`padding_mask` shaped for attention scores: ``(B, 1, Lk)``, ``True`` at real keys.

    It broadcasts over the queries of ``(B, Lq, Lk)`` scores; :class:`MultiHeadAttention` also
    broadcasts it over the heads.
    """
    return padding_mask(lengths, max_len)[:, None, :]  # (B, 1, Lk)


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of the given boolean masks (``None`` entries skipped; all ``None`` → ``None``).

    A query may attend to a key only if *every* mask allows it, e.g.
    ``combine_masks(key_padding_mask(lengths), causal_mask(L))`` → ``(B, L, L)``.
    """
    given = [(i, mask) for i, mask in enumerate(masks) if mask is not None]
    shape = device = None
    for i, mask in given:  # check every mask before combining any
        check_tensor(f"masks[{i}]", mask, dtype=torch.bool)
        if device is None:
            shape, device = mask.shape, mask.device
            continue
        check_same_device(f"masks[{i}]", mask, f"masks[{given[0][0]}]", device)
        try:
            shape = torch.broadcast_shapes(shape, mask.shape)
        except RuntimeError:
            raise ValueError(f"masks[{i}] has shape {tuple(mask.shape)}, which does not broadcast "
                             f"with the shape {tuple(shape)} of the masks before it") from None
    result = None
    for _, mask in given:
        result = mask if result is None else result & mask
    return result


def attention_mask(
    mask: torch.Tensor | None, query_len: int, key_len: int, *, is_causal: bool,
    device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """``mask`` combined with the bottom-right :func:`causal_mask` when ``is_causal``.

    The one place where ``is_causal`` becomes a mask: every attention kernel of the course
    goes through it (through its unchecked twin, on arguments its caller has checked).
    Returns ``None`` when nothing is masked. ``mask`` is boolean ``(..., Lq or 1, Lk)``;
    ``device`` defaults to the mask's.
    """
    check_int("query_len", query_len, minimum=0)
    check_int("key_len", key_len, minimum=0)
    check_bool("is_causal", is_causal)
    check_device("device", device)
    if mask is not None:
        check_tensor("mask", mask, min_ndim=1)
        device = mask.device if device is None else torch.device(device)
        check_mask(mask, torch.Size((*mask.shape[:-2], query_len, key_len)), device=device,
                   device_of="the device argument")
    return _attention_mask(mask, query_len, key_len, is_causal=is_causal, device=device)


def _attention_mask(mask, query_len, key_len, *, is_causal, device=None):
    """:func:`attention_mask` on checked arguments (the kernels' hot path)."""
    if not is_causal:
        return mask
    causal = causal_mask(query_len, key_len, device=device)  # (Lq, Lk)
    return causal if mask is None else mask & causal


def to_torch_mask(mask: torch.Tensor) -> torch.Tensor:
    """Course mask (``True`` = may attend) → ``nn.MultiheadAttention`` mask (``True`` = blocked)."""
    check_tensor("mask", mask, dtype=torch.bool)
    return ~mask


def from_torch_mask(torch_mask: torch.Tensor) -> torch.Tensor:
    """``nn.MultiheadAttention`` mask → course mask (``True`` = may attend).

    Accepts torch's boolean masks (``True`` = blocked) and its additive float masks
    (``0`` = allowed, ``-inf`` = blocked). Other float values (soft biases) have no boolean
    equivalent and raise ``ValueError``.
    """
    check_tensor("torch_mask", torch_mask)
    if torch_mask.dtype == torch.bool:
        return ~torch_mask
    if not torch_mask.is_floating_point():
        raise TypeError(f"torch_mask must be bool or float, got dtype {torch_mask.dtype}")
    blocked = torch.isneginf(torch_mask)
    if not torch.all(blocked | (torch_mask == 0)):
        raise ValueError("torch_mask is a float mask with values other than 0 and -inf; "
                         "a soft additive bias cannot be converted to a boolean mask")
    return ~blocked


# ------------------------------------------------------- sparse patterns (Child et al., 2019)

def _check_sparse(length, name, size, causal, device):
    check_int("length", length, minimum=0)
    check_int(name, size, minimum=1)
    check_bool("causal", causal)
    check_device("device", device)
    i = torch.arange(length, device=device)[:, None]  # (L, 1)
    j = torch.arange(length, device=device)[None, :]  # (1, L)
    return i, j


def strided_mask(
    length: int, stride: int, *, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""The *strided* sparse pattern of Child et al. (2019) as one ``(L, L)`` boolean mask.

    With stride :math:`l` the paper factorises attention into two heads,
    :math:`A^{(1)}_i = \{t, t+1, \dots, i\}` with :math:`t = \max(0, i - l)` (the previous
    :math:`l` positions) and :math:`A^{(2)}_i = \{j : (i - j) \bmod l = 0\}` (every
    :math:`l`-th position). This mask is their union (the paper's "merged" head): query ``i``
    may attend to key ``j`` iff ``0 <= i - j <= stride`` or ``(i - j) % stride == 0``, and
    ``j <= i`` when ``causal``. ``causal=False`` uses the symmetric pattern:
    ``|i - j| <= stride`` or ``(i - j) % stride == 0``. Every query sees itself. A query sees
    O(L/l + l) keys: O(L·√L) pairs for ``stride ≈ √L``.

    Args:
        length: ``L >= 0``.
        stride: ``l >= 1``.
        causal: restrict to ``j <= i`` (default, as in the paper's autoregressive models).
    """
    i, j = _check_sparse(length, "stride", stride, causal, device)
    allowed = ((i - j).abs() <= stride) | ((i - j) % stride == 0)  # (L, L)
    return allowed & (j <= i) if causal else allowed


def fixed_mask(
    length: int, block: int, *, causal: bool = True, summary: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The *fixed* sparse pattern of Child et al. (2019) as one ``(L, L)`` boolean mask.

    With block length :math:`l` and :math:`c` summary positions per block the paper's two heads
    are :math:`A^{(1)}_i = \{j : \lfloor j/l \rfloor = \lfloor i/l \rfloor\}` (the query's own
    block) and :math:`A^{(2)}_i = \{j : j \bmod l \in \{l - c, \dots, l - 1\}\}` (the last
    :math:`c` positions of every block, which "summarise" it; 0-based). This mask is their
    union: query ``i`` may attend to key ``j`` iff ``j // block == i // block`` or
    ``j % block >= block - summary``, and ``j <= i`` when ``causal``.

    Args:
        length: ``L >= 0``.
        block: ``l >= 1``.
        causal: restrict to ``j <= i`` (default).
        summary: ``c`` with ``1 <= c <= block``.
    """
    i, j = _check_sparse(length, "block", block, causal, device)
    check_int("summary", summary, minimum=1)
    if summary > block:
        raise ValueError(f"summary must be <= block ({block}), got {summary}")
    allowed = (j // block == i // block) | (j % block >= block - summary)  # (L, L)
    return allowed & (j <= i) if causal else allowed


__all__ += ["strided_mask", "fixed_mask"]
