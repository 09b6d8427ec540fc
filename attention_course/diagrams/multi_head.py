"""Multi-head attention drawn from code: split into heads, attend per head, concatenate, ``W_O``.

The query, key and value inputs each pass through one learned projection (``W_Q``, ``W_K``,
``W_V``, each ``(D, D)``); the result is cut into ``h`` heads of ``D_h = D / h`` features
(:func:`~attention_course.multihead.split_heads`); every head runs scaled dot-product attention
on its own slice; the heads' outputs are concatenated back to ``D`` features
(:func:`~attention_course.multihead.merge_heads`) and mixed by ``W_O``.
"""

from __future__ import annotations

from attention_course._checks import check_int
from attention_course.diagrams._draw import arrow, box, canvas

__all__ = ["multi_head_diagram"]

_GAP, _FONT = 1.2, 10  # vertical distance between rows, label size
_X_IN, _X_PROJ, _X_SPLIT, _X_HEAD, _X_CAT, _X_OUT_PROJ, _X_OUT = (
    0.8, 2.55, 4.35, 7.15, 9.95, 11.7, 13.45)


def _rows(n: int, centre: float) -> list[float]:
    """``n`` heights ``_GAP`` apart, centred on ``centre``, top first."""
    return [centre + (n - 1 - 2 * i) * _GAP / 2 for i in range(n)]


def multi_head_diagram(num_heads: int = 3):
    """Draw ``query, key, value → W_Q, W_K, W_V → split into heads → num_heads parallel
    attention heads → Concat → W_O → output``.

    Read it left to right. The heads are stacked in one column: they run side by side, each on
    its own ``D_h = D / h`` features, and never see each other's. Boxes are coloured by role with
    :data:`~attention_course.diagrams._draw.PALETTE`: tensors, learned projections, attention.
    Shapes are for one sequence (a batch adds a leading ``B``).

    Args:
        num_heads: the number of heads ``h`` to draw, an int ``>= 1``.

    Returns:
        The matplotlib ``Figure`` (one axes, no ticks).
    """
    check_int("num_heads", num_heads, minimum=1)
    rows = max(3, num_heads)  # the inputs need three rows even for one head
    height = rows * _GAP + 1.2  # + a line of notes at the top
    centre = (rows * _GAP) / 2 + 0.1
    fig, ax = canvas(14.3, height, scale=0.62)

    def step(x, y, text, w, role, h=0.9):
        return box(ax, x, y, text, w=w, h=h, role=role, fontsize=_FONT)

    tall = rows * _GAP - 0.3  # the split and concat boxes span every row
    split = step(_X_SPLIT, centre, "split\ninto $h$\nheads", 1.2, "output", h=tall)
    inputs = (("query", "$L_q$", "Q"), ("key", "$L_k$", "K"), ("value", "$L_k$", "V"))
    for (name, length, letter), y in zip(inputs, _rows(3, centre), strict=True):
        tensor = step(_X_IN, y, f"{name}\n({length}, $D$)", 1.35, "input")
        proj = step(_X_PROJ, y, f"$W_{letter}$\n($D$, $D$)", 1.3, "projection")
        arrow(ax, tensor.right, proj.left)
        arrow(ax, proj.right, (split.left[0], y))

    concat = step(_X_CAT, centre, "Concat\n($L_q$, $D$)", 1.3, "output", h=tall)
    for i, y in enumerate(_rows(num_heads, centre), start=1):
        head = step(_X_HEAD, y, f"head {i}\n$\\mathrm{{softmax}}(q_{{{i}}} k_{{{i}}}^\\top"
                    f"/\\sqrt{{D_h}})\\, v_{{{i}}}$", 3.5, "attention")
        arrow(ax, (split.right[0], y), head.left)
        arrow(ax, head.right, (concat.left[0], y))

    out_proj = step(_X_OUT_PROJ, centre, "$W_O$\n($D$, $D$)", 1.2, "projection")
    arrow(ax, concat.right, out_proj.left)
    output = step(_X_OUT, centre, "output\n($L_q$, $D$)", 1.4, "output")
    arrow(ax, out_proj.right, output.left)

    note = {"ha": "center", "va": "center", "fontsize": 8.5, "color": "#555555"}
    top = height - 0.45
    ax.text((_X_IN + _X_PROJ) / 2, top, "one projection for all heads", **note)
    heads = f"$h = {num_heads}$ head{'s' * (num_heads > 1)}"
    ax.text(_X_HEAD, top, f"{heads}, $D_h = D/h$ features each", **note)
    ax.text((_X_CAT + _X_OUT) / 2 + 0.3, top, "$h \\cdot D_h = D$ features again", **note)
    return fig
