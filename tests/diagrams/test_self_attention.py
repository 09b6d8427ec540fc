"""The self-attention diagram: the boxes the flow needs, arrows that join them in the right
order (read back from the drawn figure, not from the code that drew it), and legible labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from attention_course.diagrams.self_attention import self_attention_diagram  # noqa: E402
from tests.diagrams.reading import (  # noqa: E402
    assert_labels_legible,
    boxes,
    drawn_edges,
)

# The data flow, in reading order: each step feeds the next.
FLOW = ["X", "W_Q", "Q", "scores", "mask", "softmax", "weights A", "AV", "output"]
# Every arrow the diagram must draw (source -> target), and no other.
EDGES = {
    ("X", "W_Q"), ("X", "W_K"), ("X", "W_V"),
    ("W_Q", "Q"), ("W_K", "K"), ("W_V", "V"),
    ("Q", "scores"), ("K", "scores"), ("scores", "mask"), ("mask", "softmax"),
    ("softmax", "weights A"), ("weights A", "AV"), ("V", "AV"), ("AV", "output"),
}


@pytest.fixture(scope="module")
def fig():
    figure = self_attention_diagram()
    figure.canvas.draw()  # text extents exist only once drawn
    yield figure
    plt.close(figure)






def test_returns_one_figure_with_every_step_of_the_flow(fig):
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    names = set(boxes(fig))
    assert names == set(FLOW) | {"W_K", "W_V", "K", "V"}


def test_arrows_join_the_steps_exactly_as_the_flow_runs(fig):
    edges = drawn_edges(fig)
    assert len(edges) == len(set(edges)), "an arrow is drawn twice"
    assert set(edges) == EDGES
    assert all((a, b) in EDGES for a, b in zip(FLOW, FLOW[1:], strict=False))


def test_the_flow_reads_left_to_right_then_down(fig):
    named = boxes(fig)
    centre = {name: (p.get_x() + p.get_width() / 2, p.get_y() + p.get_height() / 2)
              for name, (p, _) in named.items()}
    top = FLOW[:FLOW.index("weights A") + 1]
    xs = [centre[name][0] for name in top]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), "the top row must run left to right"
    column = [centre[name] for name in ("weights A", "AV", "output")]
    assert len({round(x, 6) for x, _ in column}) == 1, "the last three share a column"
    assert column[0][1] > column[1][1] > column[2][1], "... read top to bottom"
    # Queries above keys above values, each beside its projection.
    for a, b in (("W_Q", "W_K"), ("W_K", "W_V"), ("Q", "K"), ("K", "V")):
        assert centre[a][1] > centre[b][1]
    for w, t in (("W_Q", "Q"), ("W_K", "K"), ("W_V", "V")):
        assert centre[w][1] == centre[t][1] and centre[w][0] < centre[t][0]


def test_the_optional_mask_is_dashed_and_the_others_are_not(fig):
    for name, (patch, _) in boxes(fig).items():
        dashed = patch.get_linestyle() not in ("-", "solid")
        assert dashed == (name == "mask"), name


def test_labels_are_legible_fit_their_boxes_and_do_not_overlap(fig):
    assert_labels_legible(fig)
