"""Argument validation shared by the package: every message names the argument, what it got, and
what was expected, and is raised before any computation."""

from __future__ import annotations

import math
import numbers

import torch


def check_int(name: str, value, *, minimum: int | None = None) -> None:
    """Raise unless ``value`` is a Python/NumPy integer (not bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_bool(name: str, value) -> None:
    """Raise ``TypeError`` unless ``value`` is a ``bool`` (``"False"``, ``0``, ``None`` are not)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} "
                        f"{value!r}")


def check_float(
    name: str,
    value,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    include_minimum: bool = True,
    include_maximum: bool = True,
) -> float:
    """Return ``value`` as a float; raise unless it is a finite real number in the given range.

    Bools are refused (``True`` is not a probability); ints and NumPy scalars are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    low_ok = minimum is None or (value >= minimum if include_minimum else value > minimum)
    high_ok = maximum is None or (value <= maximum if include_maximum else value < maximum)
    if not (low_ok and high_ok):
        low = "" if minimum is None else ("[" if include_minimum else "(") + f"{minimum}"
        high = "" if maximum is None else f"{maximum}" + ("]" if include_maximum else ")")
        if minimum is None:
            expected = f"<{'=' if include_maximum else ''} {maximum}"
        elif maximum is None:
            expected = f">{'=' if include_minimum else ''} {minimum}"
        else:
            expected = f"in {low}, {high}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_tensor(
    name: str,
    x,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    dtype: torch.dtype | None = None,
    floating: bool = False,
    integer: bool = False,
) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``x`` is a tensor with the requested properties."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {x.layout}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if integer and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got dtype {x.dtype}")


def check_device(name: str, device) -> None:
    """Raise unless ``device`` is ``None``, a ``torch.device``, a device string or index."""
    if device is None:
        return
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"{name} must be a torch.device, a device string such as 'cpu', or "
                        f"None, got {type(device).__name__} {device!r}")
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda:0', got "
                         f"{device!r}") from None


def check_same_device(name: str, x: torch.Tensor, other: str, device: torch.device) -> None:
    """Raise ``ValueError`` unless tensor ``x`` (argument ``name``) is on ``device``, the device
    of ``other``."""
    if x.device != device:
        raise ValueError(f"{name} is on device {x.device} but {other} is on {device}; "
                         f"put them on the same device")


def check_like_module(name: str, x: torch.Tensor, param: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``x`` has the dtype and device of a module's weight
    ``param``."""
    if x.dtype != param.dtype or x.device != param.device:
        raise TypeError(f"{name} has dtype {x.dtype} on {x.device} but the module's weights are "
                        f"{param.dtype} on {param.device}; convert one (e.g. "
                        f"module.to({x.dtype}) or {name}.to({param.dtype}))")


def check_mask(mask, scores_shape: torch.Size, name: str = "mask", *,
               device: torch.device | None = None, device_of: str = "query") -> None:
    """Check a boolean attention mask against scores of shape ``(..., Lq, Lk)``.

    The mask must be boolean, have at most as many dimensions as the scores, end in ``Lk``
    exactly, and every other dimension must be 1 or equal the scores' (no silent broadcasting
    to a bigger output). With ``device``, it must also be on that device (the device of the
    argument named ``device_of``).

    One ambiguity remains: a ``(B, Lk)`` key-padding mask (missing its query axis) against
    ``(B, Lq, Lk)`` scores is refused unless ``B == Lq``, when it is indistinguishable from an
    ``(Lq, Lk)`` mask and is read as one. Masks without a query axis should be ``(B, 1, Lk)``.
    """
    check_tensor(name, mask)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a boolean tensor (True = may attend), got dtype {mask.dtype}"
        )
    expected = "(" + ", ".join(["..."] * (len(scores_shape) > 2) + ["Lq or 1", "Lk"]) + ")"
    got = tuple(mask.shape)
    ok = 1 <= mask.dim() <= len(scores_shape) and mask.shape[-1] == scores_shape[-1]
    if ok:
        pairs = zip(reversed(mask.shape), reversed(scores_shape), strict=False)
        ok = all(m in (1, s) for m, s in pairs)
    if not ok:
        raise ValueError(
            f"{name} has shape {got} but the attention scores have shape {tuple(scores_shape)} "
            f"(Lk={scores_shape[-1]}); expected a mask broadcastable as {expected} with each "
            f"dimension equal to 1 or to the scores' size"
        )
    if device is not None:
        check_same_device(name, mask, device_of, device)


def check_tokens(name: str, tokens, vocab_size: int, *, ndim: int = 2) -> None:
    """Raise unless ``tokens`` is an integer tensor of ``ndim`` dims, ids in ``[0, vocab_size)``."""
    check_tensor(name, tokens, ndim=ndim, integer=True)
    if not tokens.numel() or tokens.device.type == "meta":  # nothing to check, or no values
        return
    low, high = (int(t) for t in torch.aminmax(tokens))
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} has token ids in [{low}, {high}]; expected ids in "
            f"[0, {vocab_size - 1}] (the vocabulary has {vocab_size} tokens)"
        )


def check_lengths(name: str, lengths, batch_size: int, max_len: int, *, minimum: int = 1) -> None:
    """Raise unless ``lengths`` is an integer ``(B,)`` tensor, one length per sequence, each in
    ``[minimum, max_len]`` (the padded length)."""
    check_tensor(name, lengths, ndim=1, integer=True)
    if lengths.shape[0] != batch_size:
        raise ValueError(f"{name} has {lengths.shape[0]} entries for a batch of {batch_size} "
                         f"sequences; expected one length per sequence, shape ({batch_size},)")
    if not lengths.numel() or lengths.device.type == "meta":  # nothing to check, or no values
        return
    if int(lengths.min()) < minimum or int(lengths.max()) > max_len:
        raise ValueError(f"{name} must lie in [{minimum}, {max_len}] (the padded length is "
                         f"{max_len}), got values in [{int(lengths.min())}, {int(lengths.max())}]")


def check_dtype(name: str, dtype, *, floating: bool = False) -> None:
    """Raise unless ``dtype`` is a ``torch.dtype`` (floating point when ``floating=True``).

    Strings (``"float32"``), Python types (``float``) and NumPy dtypes are refused: torch would
    misread some of them (``tensor.to("float32")`` looks for a *device* of that name).
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype such as torch.float32, got "
                        f"{type(dtype).__name__} {dtype!r}")
    if floating and not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point dtype (torch.float16, torch.bfloat16, "
                        f"torch.float32 or torch.float64), got {dtype}")



def check_generator(name: str, generator) -> None:
    """Raise unless ``generator`` is ``None`` or a CPU ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got "
                        f"{type(generator).__name__} {generator!r}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU torch.Generator, got one on "
                         f"{generator.device}")


def check_instance(name: str, value, expected: type) -> None:
    """``value`` is an ``expected`` (e.g. a model's config class), else a ``TypeError``."""
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be a {expected.__name__}, got {type(value).__name__}")
