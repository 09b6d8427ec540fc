"""The multi-head diagram, read back from the drawn figure: one box per head in a parallel
column, arrows that run split → every head → Concat → W_O, and labels that fit and stay legible."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from attention_course.diagrams._draw import PALETTE  # noqa: E402
from attention_course.diagrams.multi_head import multi_head_diagram  # noqa: E402
from tests.diagrams.reading import (  # noqa: E402
    assert_labels_legible,
    boxes,
    centre,
    drawn_edges,
)

FIXED = {"query", "key", "value", "W_Q", "W_K", "W_V", "split", "Concat", "W_O", "output"}


def expected_edges(num_heads):
    heads = [f"head {i}" for i in range(1, num_heads + 1)]
    return ({("query", "W_Q"), ("key", "W_K"), ("value", "W_V"),
             ("W_Q", "split"), ("W_K", "split"), ("W_V", "split"),
             ("Concat", "W_O"), ("W_O", "output")}
            | {("split", h) for h in heads} | {(h, "Concat") for h in heads})


@pytest.fixture(params=[1, 3, 5], ids=lambda h: f"{h}heads")
def drawn(request):
    fig = multi_head_diagram(num_heads=request.param)
    fig.canvas.draw()  # text extents exist only once drawn
    yield request.param, fig
    plt.close(fig)







def test_one_attention_box_per_head_and_every_stage_labelled(drawn):
    num_heads, fig = drawn
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    named = boxes(fig)
    heads = {f"head {i}" for i in range(1, num_heads + 1)}
    assert set(named) == FIXED | heads
    attention = [name for name, (patch, _) in named.items()
                 if patch.get_facecolor() == to_rgba(PALETTE["attention"])]
    assert sorted(attention) == sorted(heads), "exactly the heads are attention boxes"
    note = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"$h = {num_heads}$ head" in note and "D_h = D/h" in note


def test_heads_are_parallel_stacked_in_order_without_overlap(drawn):
    num_heads, fig = drawn
    named = boxes(fig)
    heads = [named[f"head {i}"][0] for i in range(1, num_heads + 1)]
    xs = {round(centre(p)[0], 6) for p in heads}
    sizes = {(round(p.get_width(), 6), round(p.get_height(), 6)) for p in heads}
    assert len(xs) == 1 and len(sizes) == 1, "the heads share one column and one size"
    ys = [centre(p)[1] for p in heads]
    assert ys == sorted(ys, reverse=True), "head 1 on top, then 2, 3, ..."
    pairs = zip(heads, heads[1:], strict=False)  # each head above the next
    assert all(a.get_y() > b.get_y() + b.get_height() for a, b in pairs)
    split, concat = named["split"][0], named["Concat"][0]
    for p in heads:  # every head lies between the split and the concatenation ...
        assert split.get_x() + split.get_width() < p.get_x()
        assert p.get_x() + p.get_width() < concat.get_x()
        # ... and within their height, so one straight arrow joins each pair
        for tall in (split, concat):
            assert tall.get_y() < centre(p)[1] < tall.get_y() + tall.get_height()


def test_arrows_split_into_every_head_and_concat_feeds_W_O(drawn):
    num_heads, fig = drawn
    edges = drawn_edges(fig)
    assert len(edges) == len(set(edges)), "an arrow is drawn twice"
    assert set(edges) == expected_edges(num_heads)
    named = boxes(fig)
    flow = ["split", "head 1", "Concat", "W_O", "output"]
    xs = [centre(named[name][0])[0] for name in flow]
    assert xs == sorted(xs), "the flow reads left to right"


def test_labels_fit_their_boxes_are_legible_and_do_not_overlap(drawn):
    _, fig = drawn
    assert_labels_legible(fig)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (2.0, TypeError),
                                        (True, TypeError), ("3", TypeError)])
def test_rejects_a_bad_number_of_heads(bad, error):
    with pytest.raises(error, match="num_heads"):
        multi_head_diagram(num_heads=bad)
    plt.close("all")
