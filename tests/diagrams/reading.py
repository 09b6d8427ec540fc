"""Reading a drawn diagram back from its matplotlib figure: boxes by their labels, arrows by the
boxes their ends touch, and whether labels are legible. Shared by every diagram test."""

import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

TOLERANCE = 0.1  # canvas units: an arrow end this close to a box touches it


def name_of(text):
    """First line of a label without mathtext markup: '$W_O$\\n(...)' -> 'W_O'."""
    return text.get_text().split("\n")[0].replace("$", "").replace("\\,", "")


def centre(patch):
    return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2


def boxes(fig):
    """{name: (patch, text)} for every drawn box, named by the label at its centre."""
    ax = fig.axes[0]
    found = {}
    for patch in ax.patches:
        if not isinstance(patch, FancyBboxPatch):
            continue
        labels = [t for t in ax.texts if np.allclose(t.get_position(), centre(patch))]
        assert len(labels) == 1, f"box at {centre(patch)} has {len(labels)} labels"
        name = name_of(labels[0])
        assert name not in found, f"two boxes are labelled {name!r}"
        found[name] = (patch, labels[0])
    return found


def touches(patch, point):
    x, y = point
    return (patch.get_x() - TOLERANCE <= x <= patch.get_x() + patch.get_width() + TOLERANCE
            and patch.get_y() - TOLERANCE <= y <= patch.get_y() + patch.get_height() + TOLERANCE)


def arrow_paths(fig):
    """``(patch, points, tail, tip)`` for every drawn arrow: its path's points, the first one,
    and the point farthest from it (the tip, whatever the arrow's bend)."""
    for patch in fig.axes[0].patches:
        if isinstance(patch, FancyArrowPatch):
            path = patch.get_path()
            points = path.vertices[path.codes != Path.CLOSEPOLY]
            tail = points[0]
            tip = points[np.argmax(np.linalg.norm(points - tail, axis=1))]
            yield patch, points, tail, tip


def box_touched(named, point):
    """The one key of ``named`` ({key: (patch, text)}) whose box ``point`` touches."""
    hits = [key for key, (box, _) in named.items() if touches(box, point)]
    assert len(hits) == 1, f"arrow end {point.round(2)} touches boxes {hits}"
    return hits[0]


def drawn_edges(fig):
    """(source, target) for every arrow, from the boxes its tail and its tip touch."""
    named = boxes(fig)
    return [(box_touched(named, tail), box_touched(named, tip))
            for _, _, tail, tip in arrow_paths(fig)]


def assert_labels_legible(fig, named=None):
    """Every box label fits inside its box, no text is below 8 pt, no two texts overlap.

    ``named`` is ``{key: (patch, text)}`` for diagrams that repeat a label (default: :func:`boxes`).
    """
    renderer = fig.canvas.get_renderer()
    for name, (patch, text) in (boxes(fig) if named is None else named).items():
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
