"""The data flow of one self-attention layer, drawn from code.

``X`` enters three learned projections that give ``Q``, ``K`` and ``V``; the queries and keys
make the scores ``QKᵀ/√d_k``, an optional mask removes some of them, a softmax over the keys turns
each row into weights ``A``, and the weights average the values: ``output = A V``. Shapes are
those of one sequence of ``L`` tokens (a batch adds a leading ``B``).
"""

from __future__ import annotations

from attention_course.diagrams._draw import arrow, box, canvas

__all__ = ["self_attention_diagram"]

# Rows: queries on top (then the attention steps), keys in the middle, values and A V below.
_TOP, _MID, _LOW, _OUT = 4.8, 3.35, 1.9, 0.55
_H, _FONT = 0.95, 10  # box height, label size


def self_attention_diagram():
    """Draw ``X → W_Q, W_K, W_V → Q, K, V → QKᵀ/√d_k → mask → softmax → A → A V → output``.

    Read it left to right along the top row, then down the right-hand column. The mask box is
    dashed because the step is optional (padding, causal or local masks). Boxes are coloured by
    role with :data:`~attention_course.diagrams._draw.PALETTE`: tensors, learned projections,
    attention steps, the mask. Shapes are for one sequence of ``L`` tokens.

    Returns:
        The matplotlib ``Figure`` (one axes, no ticks).
    """
    fig, ax = canvas(14.0, 6.1, scale=0.62)

    def step(x, y, text, w, role, h=_H):
        return box(ax, x, y, text, w=w, h=h, role=role, fontsize=_FONT)

    x_in = step(0.65, _MID, "$X$\n($L$, $D$)", 1.1, "input")
    tensors = {}
    for name, y, size in (("Q", _TOP, "$d_k$"), ("K", _MID, "$d_k$"), ("V", _LOW, "$d_v$")):
        proj = step(2.4, y, f"$W_{name}$\n($D$, {size})", 1.3, "projection")
        arrow(ax, x_in.right, proj.left)
        tensors[name] = step(4.2, y, f"${name}$\n($L$, {size})", 1.3, "input")
        arrow(ax, proj.right, tensors[name].left)

    scores = step(6.4, _TOP, "scores\n$QK^\\top/\\sqrt{d_k}$", 1.9, "attention")
    arrow(ax, tensors["Q"].right, scores.left)
    arrow(ax, tensors["K"].right, scores.bottom)

    mask = step(8.7, _TOP, "mask\n(optional)", 1.7, "mask")
    ax.patches[-1].set_linestyle("--")  # an optional step: dashed outline
    arrow(ax, scores.right, mask.left)

    softmax = step(10.75, _TOP, "softmax\nover keys", 1.6, "attention")
    arrow(ax, mask.right, softmax.left)

    weights = step(12.9, _TOP, "weights $A$\n($L$, $L$)", 1.8, "attention")
    arrow(ax, softmax.right, weights.left)

    combine = step(12.9, _LOW, "$A\\,V$\nweighted sum", 2.1, "attention")
    arrow(ax, weights.bottom, combine.top)
    arrow(ax, tensors["V"].right, combine.left)

    output = step(12.9, _OUT, "output\n($L$, $d_v$)", 1.8, "output", h=0.8)
    arrow(ax, combine.bottom, output.top)

    note = {"ha": "center", "va": "center", "fontsize": 8.5, "color": "#555555"}
    ax.text(2.4, 5.75, "learned projections", **note)
    ax.text(10.75, 5.75, "row i of A: how much token i reads from each token", **note)
    return fig
