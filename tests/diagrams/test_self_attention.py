"""The self-attention diagram: the boxes the flow needs, arrows that join them in the right
order (read back from the drawn figure, not from the code that drew it), and legible labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.path import Path  # noqa: E402

from attention_course.diagrams.self_attention import self_attention_diagram  # noqa: E402

# The data flow, in reading order: each step feeds the next.
FLOW = ["X", "W_Q", "Q", "scores", "mask", "softmax", "weights A", "AV", "output"]
# Every arrow the diagram must draw (source -> target), and no other.
EDGES = {
    ("X", "W_Q"), ("X", "W_K"), ("X", "W_V"),
    ("W_Q", "Q"), ("W_K", "K"), ("W_V", "V"),
    ("Q", "scores"), ("K", "scores"), ("scores", "mask"), ("mask", "softmax"),
    ("softmax", "weights A"), ("weights A", "AV"), ("V", "AV"), ("AV", "output"),
}
TOLERANCE = 0.1  # canvas units: an arrow end this close to a box touches it


@pytest.fixture(scope="module")
def fig():
    figure = self_attention_diagram()
    figure.canvas.draw()  # text extents exist only once drawn
    yield figure
    plt.close(figure)


def name_of(text):
    """First line of a label, without mathtext markup: '$W_Q$\\n(...)' -> 'W_Q'."""
    return text.get_text().split("\n")[0].replace("$", "").replace("\\,", "")


def boxes(fig):
    """{name: (patch, text)} for every drawn box, named by the label at its centre."""
    ax = fig.axes[0]
    found = {}
    for patch in ax.patches:
        if not isinstance(patch, FancyBboxPatch):
            continue
        centre = (patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2)
        labels = [t for t in ax.texts if np.allclose(t.get_position(), centre)]
        assert len(labels) == 1, f"box at {centre} has {len(labels)} labels"
        found[name_of(labels[0])] = (patch, labels[0])
    return found


def touches(patch, point):
    x, y = point
    return (patch.get_x() - TOLERANCE <= x <= patch.get_x() + patch.get_width() + TOLERANCE
            and patch.get_y() - TOLERANCE <= y <= patch.get_y() + patch.get_height() + TOLERANCE)


def drawn_edges(fig):
    """(source, target) for every arrow, found from where its tail and its tip lie."""
    named = boxes(fig)
    edges = []
    for patch in fig.axes[0].patches:
        if not isinstance(patch, FancyArrowPatch):
            continue
        path = patch.get_path()
        points = path.vertices[path.codes != Path.CLOSEPOLY]
        tail = points[0]
        tip = points[np.argmax(np.linalg.norm(points - tail, axis=1))]
        ends = []
        for point in (tail, tip):
            hits = [name for name, (box, _) in named.items() if touches(box, point)]
            assert len(hits) == 1, f"arrow end {point.round(2)} touches boxes {hits}"
            ends.append(hits[0])
        edges.append(tuple(ends))
    return edges


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
    renderer = fig.canvas.get_renderer()
    for name, (patch, text) in boxes(fig).items():
        inside = patch.get_window_extent(renderer)
        label = text.get_window_extent(renderer)
        assert inside.x0 < label.x0 and label.x1 < inside.x1, f"{name}: label wider than box"
        assert inside.y0 < label.y0 and label.y1 < inside.y1, f"{name}: label taller than box"
    texts = fig.axes[0].texts
    assert min(t.get_fontsize() for t in texts) >= 8
    extents = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(extents):
        for b in extents[i + 1:]:
            assert not a.overlaps(b), "two labels overlap"
