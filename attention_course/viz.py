"""Plots the course reuses: attention heatmaps and grids of heatmaps (one per head or example)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from attention_course._checks import check_bool, check_float, check_int, check_tensor

__all__ = ["attention_heatmap", "heatmap_grid"]


def _to_numpy(weights, name: str, ndim: int, expected: str) -> np.ndarray:
    """Tensor / array / nested lists of real numbers → float64 array of ``ndim`` dimensions with
    no empty axis. bfloat16/float16/int/bool tensors are fine; complex, sparse or ragged are not."""
    if isinstance(weights, list | tuple) and weights and all(
            isinstance(w, torch.Tensor) for w in weights):
        weights = [_to_numpy(w, f"{name}[{i}]", ndim - 1, "one slice")
                   for i, w in enumerate(weights)]
        shapes = {w.shape for w in weights}
        if len(shapes) > 1:
            raise ValueError(f"{name} is a list of tensors of different shapes {sorted(shapes)}; "
                             f"expected {expected}")
        weights = np.stack(weights)
    elif isinstance(weights, torch.Tensor):
        check_tensor(name, weights)  # dense
        if weights.is_complex():
            raise TypeError(f"{name} must be real, got dtype {weights.dtype}")
        weights = weights.detach().cpu().to(torch.float64).numpy()  # numpy has no bfloat16
    else:
        given = type(weights).__name__
        try:
            weights = np.asarray(weights)
        except ValueError as error:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array of numbers, {expected}; "
                             f"numpy says: {error}") from None
        if weights.dtype.kind not in "biuf":  # bool, int, uint, float
            raise TypeError(f"{name} must be a tensor or array of real numbers, got {given} "
                            f"(as an array: dtype {weights.dtype})")
        weights = weights.astype(np.float64)
    if weights.ndim != ndim:
        raise ValueError(f"{name} must be {expected}, got shape {weights.shape}")
    if 0 in weights.shape:
        raise ValueError(f"{name} must not be empty: {expected}, got shape {weights.shape}")
    return weights


def _as_matrix(weights, name: str = "weights") -> np.ndarray:
    return _to_numpy(weights, name, 2, "a (Lq, Lk) matrix")


def _check_labels(name: str, labels, size: int, what: str):
    """``None`` or a sequence of exactly ``size`` labels (a bare ``str`` is refused)."""
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor | np.ndarray):
        if labels.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(labels.shape)}")
        labels = labels.tolist()
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        hint = f" (use list({labels!r}) for one label per character)" if isinstance(
            labels, str) else ""
        raise TypeError(f"{name} must be a list or tuple of labels, got "
                        f"{type(labels).__name__}{hint}")
    if len(labels) != size:
        raise ValueError(f"{name} has {len(labels)} labels but {what} {size}")
    return labels


def _check_vmax(vmax):
    if vmax is None:
        return None
    return check_float("vmax", vmax, minimum=0.0, include_minimum=False)


def attention_heatmap(
    weights,
    *,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    annotate: bool = False,
    vmax: float | None = 1.0,
    colorbar: bool = True,
) -> plt.Axes:
    """Draw attention weights ``(Lq, Lk)``: one row per query, one column per key.

    ``weights`` is a tensor (any real dtype, detached for you), an array or nested lists, with
    ``Lq, Lk >= 1``. ``queries``/``keys`` label the rows/columns (lists of exactly ``Lq``/``Lk``
    labels); ``annotate`` writes each weight in its cell (use it for small matrices).
    ``vmax=1`` keeps colours comparable across plots of weights (the scale is ``[0, vmax]``,
    ``vmax > 0``); pass ``None`` to scale to the data (for raw scores).
    """
    w = _as_matrix(weights)
    Lq, Lk = w.shape
    queries = _check_labels("queries", queries, Lq, "the weights have Lq =")
    keys = _check_labels("keys", keys, Lk, "the weights have Lk =")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__} {title!r}")
    check_bool("annotate", annotate)
    vmax = _check_vmax(vmax)
    check_bool("colorbar", colorbar)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * Lk + 2, 0.45 * Lq + 1.2))
    vmin = 0.0 if vmax is not None else None
    image = ax.imshow(w, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_xticks(range(Lk), labels=keys if keys is not None else range(Lk))
    ax.set_yticks(range(Lq), labels=queries if queries is not None else range(Lq))
    if title:
        ax.set_title(title)
    if annotate:
        top = np.nanmax(w) if vmax is None else vmax
        for i in range(Lq):
            for j in range(Lk):
                colour = "black" if w[i, j] > 0.6 * top else "white"
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def heatmap_grid(
    weights: torch.Tensor,
    *,
    titles: Sequence[str] | None = None,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    ncols: int = 4,
    vmax: float | None = 1.0,
    colorbar: bool = True,
) -> plt.Figure:
    """Draw ``(N, Lq, Lk)`` weights as a grid of ``N`` heatmaps (e.g. one per head), with one
    shared colour bar (the scale is ``[0, vmax]``, or the data's range when ``vmax=None``).

    ``weights``: a tensor, an array or a list of equally shaped ``(Lq, Lk)`` tensors, with
    ``N, Lq, Lk >= 1``; ``titles``: ``N`` strings; ``ncols >= 1``.
    """
    w = _to_numpy(weights, "weights", 3, "(N, Lq, Lk): one (Lq, Lk) matrix per heatmap")
    n, Lq, Lk = w.shape
    titles = _check_labels("titles", titles, n, "the number of heatmaps is")
    if titles is not None and not all(isinstance(t, str) for t in titles):
        raise TypeError("titles must all be strings, got "
                        f"{sorted({type(t).__name__ for t in titles})}")
    queries = _check_labels("queries", queries, Lq, "the weights have Lq =")
    keys = _check_labels("keys", keys, Lk, "the weights have Lk =")
    check_int("ncols", ncols, minimum=1)
    vmax = _check_vmax(vmax)
    check_bool("colorbar", colorbar)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= n:
            ax.axis("off")
            continue
        attention_heatmap(w[index], queries=queries, keys=keys, ax=ax, vmax=vmax,
                          title=titles[index] if titles else None, colorbar=False)
    if vmax is None:  # one scale for every panel, so the shared colour bar is true for all
        finite = w[np.isfinite(w)]
        if finite.size:
            for ax in axes.flat[:n]:
                ax.images[0].set_clim(finite.min(), finite.max())
    fig.tight_layout()
    if colorbar:
        fig.colorbar(axes.flat[0].images[0], ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
    return fig
