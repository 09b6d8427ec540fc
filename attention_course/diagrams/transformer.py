"""The encoder–decoder Transformer drawn from code: one encoder layer and one decoder layer, each
repeated ``N`` times, with their residual paths, layer norms, masks and the cross-attention that
reads the encoder's output.

Two arrangements of the norms (:mod:`attention_course.transformer`): post-LN
(``norm_first=False``, the original paper) wraps each sublayer as ``LayerNorm(x + Sublayer(x))``
("Add & Norm"); pre-LN (``norm_first=True``) as ``x + Sublayer(LayerNorm(x))``, with one final
``LayerNorm`` on top of each stack. The source padding mask is one tensor used twice: by the
encoder's self-attention and by the decoder's cross-attention.
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from attention_course._checks import check_bool
from attention_course.diagrams._draw import arrow, box, canvas

__all__ = ["transformer_diagram"]

_ROW, _H, _W, _FONT = 0.92, 0.72, 3.0, 9.5  # row pitch, box height and width, label size
_X_ENC, _X_DEC, _X_MASK = 2.75, 10.55, 6.65  # column centres: encoder, decoder, masks
_BULGE = 0.55  # how far a residual path bends out of its column
_RESIDUAL = "#1f5fa8"  # residual paths are drawn in blue

# A sublayer: (label, role, mask it takes or None).
_ENCODER = [("self-attention", "attention", "padding"),
            ("feed-forward", "ffn", None)]
_DECODER = [("masked self-attention", "attention", "causal"),
            ("cross-attention", "attention", "padding"),
            ("feed-forward", "ffn", None)]


def _layer_rows(sublayers, norm_first):
    """The boxes of one layer, bottom to top: ``(label, role, kind, mask)``; ``kind`` is
    ``"norm"``, ``"sublayer"`` or ``"add"`` (where the residual path joins)."""
    rows = []
    for label, role, mask in sublayers:
        if norm_first:
            rows += [("LayerNorm", "norm", "norm", None), (label, role, "sublayer", mask),
                     ("Add", "output", "add", None)]
        else:
            rows += [(label, role, "sublayer", mask), ("Add & Norm", "norm", "add", None)]
    return rows


def transformer_diagram(norm_first: bool = False):
    """Draw the Transformer: source tokens → embedding → ``N`` encoder layers → memory, and
    target tokens → embedding → ``N`` decoder layers (reading the memory) → linear → softmax.

    Read each column bottom to top. Black arrows carry the data through the sublayers; blue
    arrows are the residual paths, which skip each sublayer and join it again at "Add". The
    dashed frames hold one layer, repeated ``N`` times. Red boxes are the masks: the causal mask
    goes to the decoder's self-attention only; the source padding mask to the encoder's
    self-attention and the decoder's cross-attention, whose keys and values are the encoder's
    output (the memory). Boxes are coloured by role with
    :data:`~attention_course.diagrams._draw.PALETTE`.

    Args:
        norm_first: ``False`` draws post-LN ("Add & Norm" after each sublayer), ``True`` pre-LN
            (``LayerNorm`` before each sublayer, "Add" after it, a final ``LayerNorm`` per
            stack).

    Returns:
        The matplotlib ``Figure`` (one axes, no ticks).
    """
    check_bool("norm_first", norm_first)
    enc_rows, dec_rows = _layer_rows(_ENCODER, norm_first), _layer_rows(_DECODER, norm_first)
    final = 1 if norm_first else 0
    height = (2 + len(dec_rows) + final + 2) * _ROW + 1.2  # tokens, embedding ... softmax
    fig, ax = canvas(13.3, height, scale=0.62)

    def step(x, row, text, role, w=_W):
        return box(ax, x, 0.5 + row * _ROW, text, w=w, h=_H, role=role, fontsize=_FONT)

    masks = {"causal": step(_X_MASK, 1.5, "causal mask\n($T$, $T$)", "mask", w=2.3),
             "padding": step(_X_MASK, 3.5 if norm_first else 2.75,
                             "padding mask\nsource ($B$, $S$)", "mask", w=2.3)}

    def column(x, tokens, rows, outer):
        """Tokens, embedding, one layer (framed, ``N×``), final norm → the top box and the
        layer's boxes by label. ``outer`` (-1 left, +1 right) is the side away from the gap
        between the columns: the residual paths bend out that way, the masks come in from the
        other."""
        below = step(x, 0, tokens, "input")
        stream = step(x, 1, "embedding × √d\n+ positions", "input")
        arrow(ax, below.top, stream.bottom)
        below, drawn = stream, {}
        for row, (label, role, kind, mask) in enumerate(rows, start=2):
            current = step(x, row, label, role)
            arrow(ax, below.top, current.bottom)
            drawn[label] = current
            if mask is not None:  # from the gap: the mask box's near side to this box's
                source = masks[mask]
                start, end = ((source.right, current.left) if outer > 0
                              else (source.left, current.right))
                shift = -0.1 if label == "cross-attention" else 0.0  # (memory comes in too)
                arrow(ax, start, (end[0], end[1] + shift))
            if kind == "add":  # the residual path: from the stream around to the Add box
                start, end = ((stream.right, current.right) if outer > 0
                              else (stream.left, current.left))
                rad = outer * _BULGE / (end[1] - start[1])
                arrow(ax, start, end, rad=rad, color=_RESIDUAL)
                stream = current
            below = current
        # One layer, repeated N times: a dashed frame, and its label on the outer side.
        bottom, top = 0.5 + 2 * _ROW - 0.4, 0.5 + (len(rows) + 1) * _ROW + 0.4
        width = _W + _BULGE + 0.5
        left = x - _W / 2 - (0.25 if outer > 0 else _BULGE + 0.25)
        ax.add_patch(Rectangle((left, bottom), width, top - bottom, fill=False,
                               linestyle="--", edgecolor="#777777", linewidth=1))
        label_x = left + width + 0.4 if outer > 0 else left - 0.4
        ax.text(label_x, (bottom + top) / 2, "$N\\times$", ha="center", va="center",
                fontsize=11)
        if norm_first:  # pre-LN: nothing normalises the residual sum, so the stack ends with one
            norm = step(x, len(rows) + 2, "final LayerNorm", "norm")
            arrow(ax, below.top, norm.bottom)
            below = norm
        return below, drawn

    enc_top, _ = column(_X_ENC, "source tokens ($B$, $S$)", enc_rows, outer=-1)
    dec_top, dec_boxes = column(_X_DEC, "target tokens ($B$, $T$)\nshifted right", dec_rows,
                               outer=1)

    memory = step(_X_ENC, len(enc_rows) + final + 2, "memory ($B$, $S$, $D$)", "output")
    arrow(ax, enc_top.top, memory.bottom)
    cross = dec_boxes["cross-attention"]
    arrow(ax, memory.right, (cross.left[0], cross.left[1] + 0.1),
          text="keys, values")

    top_row = len(dec_rows) + final + 2
    generator = step(_X_DEC, top_row, "linear ($D \\to V$)", "projection")
    arrow(ax, dec_top.top, generator.bottom)
    softmax = step(_X_DEC, top_row + 1, "softmax: next token", "output")
    arrow(ax, generator.top, softmax.bottom)

    note = {"ha": "center", "va": "center", "fontsize": 10, "color": "#333333"}
    title = height - 0.35
    ax.text(_X_ENC, title, "Encoder", **note)
    ax.text(_X_DEC, title, "Decoder", **note)
    variant = "pre-LN: norm_first=True" if norm_first else "post-LN: norm_first=False"
    ax.text(_X_MASK, title, variant, ha="center", va="center", fontsize=9, color="#555555")
    return fig
