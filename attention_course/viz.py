"""Plots the course reuses: attention heatmaps and grids of heatmaps (one per head or example)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from attention_course._checks import check_tensor

__all__ = ["attention_heatmap", "heatmap_grid"]


def _as_matrix(weights, name: str = "weights") -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2:
        raise ValueError(f"{name} must be a (Lq, Lk) matrix, got shape {weights.shape}")
    return weights


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

    ``queries``/``keys`` label the rows/columns; ``annotate`` writes each weight in its cell
    (use it for small matrices). ``vmax=1`` keeps colours comparable across plots of weights;
    pass ``None`` to scale to the data (for raw scores).
    """
    w = _as_matrix(weights)
    Lq, Lk = w.shape
    for name, labels, size in (("queries", queries, Lq), ("keys", keys, Lk)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} has {len(labels)} labels but the weights have {size}")
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
    shared colour bar (the scale is ``[0, vmax]``, or the data's range when ``vmax=None``)."""
    check_tensor("weights", torch.as_tensor(weights), ndim=3)
    n = len(weights)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries but there are {n} heatmaps")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= n:
            ax.axis("off")
            continue
        attention_heatmap(weights[index], queries=queries, keys=keys, ax=ax, vmax=vmax,
                          title=titles[index] if titles else None, colorbar=False)
    fig.tight_layout()
    if colorbar:
        fig.colorbar(axes.flat[0].images[0], ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
    return fig
