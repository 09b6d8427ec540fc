"""The Transformer diagram, read back from the drawn figure: the boxes of each column in order,
arrows that carry the data up each column, residual paths that skip exactly one sublayer, masks
that reach the right attention blocks, the memory feeding the cross-attention, one dashed frame
per stack, and labels that fit and stay legible — for post-LN and pre-LN."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from attention_course.diagrams._draw import PALETTE  # noqa: E402
from attention_course.diagrams.transformer import transformer_diagram  # noqa: E402
from tests.diagrams.reading import (  # noqa: E402
    arrow_paths,
    assert_labels_legible,
    box_touched,
    centre,
)

BLACK = to_rgba("#333333")


def layer(sublayers, norm_first):
    """The boxes of one layer, bottom to top, as the paper and torch define the variants."""
    names = []
    for sub in sublayers:
        names += ["LayerNorm", sub, "Add"] if norm_first else [sub, "Add & Norm"]
    return names


def expected_columns(norm_first):
    final = ["final LayerNorm"] if norm_first else []
    encoder = (["source tokens", "embedding"]
               + layer(["self-attention", "feed-forward"], norm_first) + final + ["memory"])
    decoder = (["target tokens", "embedding"]
               + layer(["masked self-attention", "cross-attention", "feed-forward"], norm_first)
               + final + ["linear", "softmax"])
    return encoder, decoder


@pytest.fixture(params=[False, True], ids=["post-LN", "pre-LN"])
def drawn(request):
    fig = transformer_diagram(norm_first=request.param)
    fig.canvas.draw()  # text extents exist only once drawn
    yield request.param, fig
    plt.close(fig)


def short_name(text):
    """The name in a label: its first line up to a shape, a formula or a colon, e.g.
    'memory ($B$, ...)' -> 'memory', 'embedding × √d' -> 'embedding'."""
    first = text.get_text().split("\n")[0]
    for cut in (" (", " $", ":", " ×"):
        first = first.split(cut)[0]
    return first.replace("$", "").strip()


def boxes(fig):
    """{key: (patch, text)} for every box. Keys are 'encoder/<name>#<k>', 'decoder/...' or
    'mask/<name>' (by column), ``k`` counting equal names bottom to top from 0."""
    ax = fig.axes[0]
    found = []
    for patch in ax.patches:
        if not isinstance(patch, FancyBboxPatch):
            continue
        labels = [t for t in ax.texts if np.allclose(t.get_position(), centre(patch))]
        assert len(labels) == 1, f"box at {centre(patch)} has {len(labels)} labels"
        found.append((patch, labels[0]))
    xs = sorted({round(centre(p)[0], 6) for p, _ in found})
    assert len(xs) == 3, f"expected three columns of boxes, got x = {xs}"
    column = dict(zip(xs, ["encoder", "mask", "decoder"], strict=True))
    named, seen = {}, {}
    for patch, text in sorted(found, key=lambda pt: centre(pt[0])[1]):
        side, name = column[round(centre(patch)[0], 6)], short_name(text)
        k = seen.get((side, name), 0)
        seen[(side, name)] = k + 1
        key = f"mask/{name}" if side == "mask" else f"{side}/{name}#{k}"
        named[key] = (patch, text)
    return named


def arrows(fig):
    """[(source, target, colour, bulge)] for every arrow, found from where its tail and tip lie;
    ``bulge`` is how far the drawn path strays sideways from the straight line (x units)."""
    named = boxes(fig)
    found = []
    for patch, points, tail, tip in arrow_paths(fig):
        ends = [box_touched(named, tail), box_touched(named, tip)]
        line_x = np.interp(points[:, 1], sorted([tail[1], tip[1]]),
                           [tail[0], tip[0]] if tail[1] <= tip[1] else [tip[0], tail[0]])
        bulge = float(np.max(np.abs(points[:, 0] - line_x)))
        found.append((*ends, to_rgba(patch.get_edgecolor()), bulge))
    return found


def column_keys(norm_first, side):
    encoder, decoder = expected_columns(norm_first)
    keys, seen = [], {}
    for name in encoder if side == "encoder" else decoder:
        k = seen.get(name, 0)
        seen[name] = k + 1
        keys.append(f"{side}/{name}#{k}")
    return keys


def test_each_column_holds_its_boxes_bottom_to_top(drawn):
    norm_first, fig = drawn
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    named = boxes(fig)
    for side in ("encoder", "decoder"):
        keys = column_keys(norm_first, side)
        ours = sorted((k for k in named if k.startswith(side)),
                      key=lambda k: centre(named[k][0])[1])
        assert ours == keys, f"{side} column reads {ours}"
    assert {k for k in named if k.startswith("mask/")} == {"mask/causal mask",
                                                           "mask/padding mask"}


def test_boxes_are_coloured_by_role(drawn):
    _, fig = drawn
    role = {"self-attention": "attention", "masked self-attention": "attention",
            "cross-attention": "attention", "feed-forward": "ffn", "Add & Norm": "norm",
            "LayerNorm": "norm", "final LayerNorm": "norm", "Add": "output",
            "causal mask": "mask", "padding mask": "mask", "linear": "projection"}
    for key, (patch, _) in boxes(fig).items():
        name = key.split("/")[1].split("#")[0]
        if name in role:
            assert patch.get_facecolor() == to_rgba(PALETTE[role[name]]), key


def test_data_flows_up_each_column_through_every_box(drawn):
    norm_first, fig = drawn
    black = {(a, b) for a, b, colour, _ in arrows(fig) if colour == BLACK}
    for side in ("encoder", "decoder"):
        keys = column_keys(norm_first, side)
        for below, above in zip(keys, keys[1:], strict=False):
            assert (below, above) in black, f"no arrow {below} -> {above}"


def test_residual_paths_skip_one_sublayer_and_join_at_add(drawn):
    norm_first, fig = drawn
    add = "Add" if norm_first else "Add & Norm"
    residual = [(a, b, bulge) for a, b, colour, bulge in arrows(fig) if colour != BLACK]
    expected = set()
    for side, sublayers in (("encoder", 2), ("decoder", 3)):
        stream = f"{side}/embedding#0"
        for k in range(sublayers):
            expected.add((stream, f"{side}/{add}#{k}"))
            stream = f"{side}/{add}#{k}"
    assert {(a, b) for a, b, _ in residual} == expected
    assert len(residual) == len(expected), "a residual path is drawn twice"
    assert all(bulge > 0.3 for *_, bulge in residual), "residual paths bend around the boxes"
    named = boxes(fig)
    per_add = 3 if norm_first else 2  # boxes from one stream box to the next
    for a, b, _ in residual:  # each skips exactly the sublayer (and its LayerNorm)
        ya, yb = centre(named[a][0])[1], centre(named[b][0])[1]
        side = a.split("/")[0]
        between = [k for k in named if k.startswith(side) and ya < centre(named[k][0])[1] < yb]
        assert len(between) == per_add - 1, (a, b, between)


def test_masks_memory_and_output(drawn):
    _, fig = drawn
    edges = [(a, b) for a, b, colour, _ in arrows(fig) if colour == BLACK]
    from_masks = {(a, b) for a, b in edges if a.startswith("mask/")}
    assert from_masks == {("mask/causal mask", "decoder/masked self-attention#0"),
                          ("mask/padding mask", "encoder/self-attention#0"),
                          ("mask/padding mask", "decoder/cross-attention#0")}
    into_cross = {a for a, b in edges if b == "decoder/cross-attention#0"}
    assert "encoder/memory#0" in into_cross, "the memory feeds the cross-attention"
    assert not any(a.startswith("encoder") and b.startswith("decoder")
                   and b != "decoder/cross-attention#0" for a, b in edges)
    assert len(edges) == len(set(edges)), "an arrow is drawn twice"
    note = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "keys, values" in note


def test_one_dashed_frame_per_stack_around_its_layer(drawn):
    norm_first, fig = drawn
    ax = fig.axes[0]
    frames = [p for p in ax.patches if isinstance(p, Rectangle)
              and not isinstance(p, FancyBboxPatch)]
    assert len(frames) == 2 and all(f.get_linestyle() not in ("-", "solid") for f in frames)
    named = boxes(fig)
    for side, sublayers in (("encoder", 2), ("decoder", 3)):
        per = 3 if norm_first else 2
        frame = next(f for f in frames
                     if f.get_x() < centre(named[f"{side}/embedding#0"][0])[0]
                     < f.get_x() + f.get_width())
        inside = {k for k, (p, _) in named.items() if k.startswith(side)
                  and frame.get_y() < centre(p)[1] < frame.get_y() + frame.get_height()}
        assert len(inside) == per * sublayers, (side, sorted(inside))
        assert all("final" not in k and "embedding" not in k for k in inside)
    labels = [t for t in ax.texts if t.get_text() == "$N\\times$"]
    assert len(labels) == 2


def test_labels_fit_their_boxes_are_legible_and_do_not_overlap(drawn):
    _, fig = drawn
    assert_labels_legible(fig, boxes(fig))  # keys by column: labels repeat
    renderer = fig.canvas.get_renderer()
    for text in fig.axes[0].texts:  # everything is drawn inside the canvas
        assert fig.axes[0].get_window_extent(renderer).contains(
            *text.get_window_extent(renderer).get_points().mean(0))


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_rejects_a_norm_first_that_is_not_a_bool(bad):
    with pytest.raises(TypeError, match="norm_first"):
        transformer_diagram(norm_first=bad)
    plt.close("all")
