"""Heatmap helpers: what they draw, and clear errors for wrong shapes, labels and options."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attention_course.viz import attention_heatmap, heatmap_grid  # noqa: E402

W = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), -1)  # (Lq, Lk)
W3 = torch.stack([W, W.flip(0)])  # (N, Lq, Lk)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drawn(fig):
    fig.canvas.draw()  # some matplotlib errors only show up when drawing
    return fig


def test_heatmap_draws_the_weights_with_labels():
    ax = attention_heatmap(W, queries=["a", "b", "c"], keys=("w", "x", "y", "z"), title="t",
                           annotate=True)
    drawn(ax.figure)
    image = ax.images[0]
    assert np.array_equal(image.get_array(), W.double().numpy())
    assert image.get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert len(ax.texts) == 12 and ax.get_title() == "t"


@pytest.mark.parametrize("weights", [
    W.bfloat16(), W.half(), W.double(), W > 0.2, W.clone().requires_grad_(), W.numpy(),
    W.tolist(), W.t().contiguous().t(), torch.tensor([[0.0, -float("inf")], [1.0, 2.0]]),
], ids=["bfloat16", "float16", "float64", "bool", "requires_grad", "numpy", "lists",
        "non-contiguous", "-inf"])
def test_heatmap_takes_any_real_matrix(weights):
    ax = attention_heatmap(weights, vmax=None)
    drawn(ax.figure)
    expected = torch.as_tensor(np.asarray(weights.detach().double() if isinstance(
        weights, torch.Tensor) else weights, dtype=float))
    assert np.array_equal(ax.images[0].get_array(), expected.numpy())


def test_grid_draws_one_panel_per_matrix_with_one_scale():
    fig = drawn(heatmap_grid(W3, titles=["first", "second"], ncols=3))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and len(fig.axes) == 3  # ncols capped at N = 2, plus the colour bar
    assert [ax.get_title() for ax in panels[:2]] == ["first", "second"]
    data = torch.stack([torch.ones(2, 2), 5 * torch.ones(2, 2) + torch.eye(2)])
    fig = drawn(heatmap_grid(data, vmax=None))
    clims = {ax.images[0].get_clim() for ax in fig.axes[:2]}
    assert clims == {(1.0, 6.0)}  # the shared colour bar is true for every panel


@pytest.mark.parametrize("weights", [W3.bfloat16(), W3.numpy(), [W, W.flip(0)]],
                         ids=["bfloat16", "numpy", "list of tensors"])
def test_grid_takes_tensors_arrays_and_lists_of_tensors(weights):
    fig = drawn(heatmap_grid(weights))
    assert np.allclose(fig.axes[1].images[0].get_array(), W.flip(0).numpy(), atol=1e-2)


BAD_HEATMAP = [
    ("1-D", (W[0],), {}, ValueError, ["weights", "(Lq, Lk)", "(4,)"]),
    ("3-D", (W[None],), {}, ValueError, ["weights", "(1, 3, 4)"]),
    ("no query", (W[:0],), {}, ValueError, ["weights", "empty", "(0, 4)"]),
    ("no key", (W[:, :0],), {}, ValueError, ["weights", "empty", "(3, 0)"]),
    ("complex", (W.to(torch.complex64),), {}, TypeError, ["weights", "real", "complex64"]),
    ("sparse", (W.to_sparse(),), {}, TypeError, ["weights", "dense"]),
    ("ragged lists", ([[0.5, 0.5], [1.0]],), {}, ValueError, ["weights", "rectangular"]),
    ("strings", ([["a", "b"]],), {}, TypeError, ["weights", "real numbers", "list"]),
    ("None", (None,), {}, TypeError, ["weights", "NoneType"]),
    ("too few queries", (W,), {"queries": ["a", "b"]}, ValueError,
     ["queries", "2 labels", "Lq = 3"]),
    ("too many keys", (W,), {"keys": list("abcde")}, ValueError, ["keys", "5 labels", "Lk = 4"]),
    ("keys as a generator", (W,), {"keys": (c for c in "abcd")}, TypeError,
     ["keys", "list or tuple", "generator"]),
    ("keys as an int", (W,), {"keys": 4}, TypeError, ["keys", "int"]),
    ("keys as one string", (W,), {"keys": "abcd"}, TypeError, ["keys", "str", "list('abcd')"]),
    ("2-D label tensor", (W,), {"keys": torch.zeros(2, 2)}, ValueError, ["keys", "1-D"]),
    ("ax not an Axes", (W,), {"ax": 3}, TypeError, ["ax", "Axes", "int"]),
    ("title not a str", (W,), {"title": 5}, TypeError, ["title", "str", "int"]),
    ("vmax 0", (W,), {"vmax": 0.0}, ValueError, ["vmax", "> 0"]),
    ("vmax negative", (W,), {"vmax": -1.0}, ValueError, ["vmax", "-1.0"]),
    ("vmax nan", (W,), {"vmax": float("nan")}, ValueError, ["vmax", "finite"]),
    ("vmax inf", (W,), {"vmax": float("inf")}, ValueError, ["vmax", "finite"]),
    ("vmax True", (W,), {"vmax": True}, TypeError, ["vmax", "bool"]),
    ("vmax str", (W,), {"vmax": "1"}, TypeError, ["vmax", "str"]),
    ("annotate str", (W,), {"annotate": "yes"}, TypeError, ["annotate", "bool", "str"]),
    ("colorbar int", (W,), {"colorbar": 1}, TypeError, ["colorbar", "bool", "int"]),
]


@pytest.mark.parametrize("case, args, kwargs, error, words", BAD_HEATMAP,
                         ids=[r[0] for r in BAD_HEATMAP])
def test_heatmap_rejects(case, args, kwargs, error, words):
    with pytest.raises(error) as info:
        attention_heatmap(*args, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert plt.get_fignums() == []  # refused before drawing anything


BAD_GRID = [
    ("2-D", W, {}, ValueError, ["weights", "(N, Lq, Lk)", "(3, 4)"]),
    ("no heatmap", W3[:0], {}, ValueError, ["weights", "empty", "(0, 3, 4)"]),
    ("tensors of different shapes", [W, W[:2]], {}, ValueError, ["weights", "different shapes"]),
    ("complex", W3.to(torch.complex64), {}, TypeError, ["weights", "complex64"]),
    ("sparse", W3.to_sparse(), {}, TypeError, ["weights", "dense"]),
    ("ncols 0", W3, {"ncols": 0}, ValueError, ["ncols", ">= 1"]),
    ("ncols -1", W3, {"ncols": -1}, ValueError, ["ncols", "-1"]),
    ("ncols 2.5", W3, {"ncols": 2.5}, TypeError, ["ncols", "float"]),
    ("ncols True", W3, {"ncols": True}, TypeError, ["ncols", "bool"]),
    ("ncols str", W3, {"ncols": "2"}, TypeError, ["ncols", "str"]),
    ("ncols None", W3, {"ncols": None}, TypeError, ["ncols", "NoneType"]),
    ("too few titles", W3, {"titles": ["a"]}, ValueError, ["titles", "1 labels", "2"]),
    ("titles as one string", W3, {"titles": "ab"}, TypeError, ["titles", "str"]),
    ("titles as an int", W3, {"titles": 2}, TypeError, ["titles", "int"]),
    ("titles not strings", W3, {"titles": [1, 2]}, TypeError, ["titles", "strings", "int"]),
    ("too few queries", W3, {"queries": ["a", "b"]}, ValueError, ["queries", "Lq = 3"]),
    ("too few keys", W3, {"keys": ["a", "b"]}, ValueError, ["keys", "Lk = 4"]),
    ("vmax 0", W3, {"vmax": 0.0}, ValueError, ["vmax", "> 0"]),
    ("vmax negative", W3, {"vmax": -1.0}, ValueError, ["vmax"]),
    ("vmax nan", W3, {"vmax": float("nan")}, ValueError, ["vmax", "finite"]),
    ("vmax True", W3, {"vmax": True}, TypeError, ["vmax", "bool"]),
    ("colorbar str", W3, {"colorbar": "no"}, TypeError, ["colorbar", "bool"]),
]


@pytest.mark.parametrize("case, weights, kwargs, error, words", BAD_GRID,
                         ids=[r[0] for r in BAD_GRID])
def test_grid_rejects(case, weights, kwargs, error, words):
    with pytest.raises(error) as info:
        heatmap_grid(weights, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert plt.get_fignums() == []  # refused before drawing anything
