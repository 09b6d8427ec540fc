"""Drawing primitives shared by the diagrams: a blank canvas in data units, labelled boxes and
arrows between them. Coordinates are in the canvas's own units (``width`` × ``height``)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["Box", "canvas", "box", "arrow", "PALETTE"]

#: Colours by role, used the same way in every diagram of the course.
PALETTE = {
    "input": "#e8eef7",
    "projection": "#cfe2f3",
    "attention": "#fde9c9",
    "norm": "#e2f0d9",
    "ffn": "#ead1dc",
    "output": "#eeeeee",
    "mask": "#f4cccc",
}


@dataclass(frozen=True)
class Box:
    """A drawn box: centre ``(x, y)``, size ``(w, h)``; anchor points for arrows."""

    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> tuple[float, float]:
        return self.x, self.y + self.h / 2

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x, self.y - self.h / 2

    @property
    def left(self) -> tuple[float, float]:
        return self.x - self.w / 2, self.y

    @property
    def right(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y


def canvas(width: float, height: float, *, scale: float = 0.9):
    """A figure and axes spanning ``[0, width] × [0, height]`` with equal units, no axes drawn."""
    fig, ax = plt.subplots(figsize=(width * scale, height * scale))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(ax, x: float, y: float, text: str, *, w: float = 2.0, h: float = 0.6,
        role: str = "output", fontsize: float = 9) -> Box:
    """A rounded box centred at ``(x, y)`` labelled ``text``, coloured by ``role``."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=PALETTE[role], edgecolor="#444444", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return Box(x, y, w, h)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], *, text: str = "",
          style: str = "-|>", rad: float = 0.0, fontsize: float = 8, color: str = "#333333"):
    """An arrow from ``start`` to ``end`` (``rad`` bends it), optionally labelled at its middle."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10,
                                 connectionstyle=f"arc3,rad={rad}", color=color,
                                 linewidth=1, shrinkA=1, shrinkB=1))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, text,
                fontsize=fontsize, ha="left", va="center", color=color)
