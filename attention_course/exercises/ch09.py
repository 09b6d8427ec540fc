"""Checkers for Chapter 9 (applications beyond NLP).

- :func:`check_patchify` — ``patchify(images, patch_size)``: cut images ``(B, C, H, W)`` into
  non-overlapping ``p × p`` patches, ``(B, N, C·p·p)`` with ``N = (H/p)·(W/p)``, the patches in
  row-major order (left to right, then top to bottom) and each one flattened in ``(C, p, p)``
  order: the input of a Vision Transformer's patch embedding
- :func:`check_graph_attention_mask` — ``graph_attention_mask(edge_index, num_nodes)``: the
  boolean attention mask ``(N, N)`` of a graph attention layer, ``mask[i, j]`` True when node
  ``i`` may attend to node ``j`` (an edge ``j → i``, or ``i == j``)
- :func:`check_patch_positions_2d` — ``patch_positions_2d(grid_h, grid_w, d_model)``: a 2-D
  sinusoidal position encoding of a grid of patches, ``(grid_h·grid_w, d_model)``, the first
  half the 1-D encoding of the patch's row, the second half that of its column

References: plain tensor code written out below (the patch grid of a stride-``p`` convolution,
a scatter into an ``(N, N)`` mask, and :func:`attention_course.positional.sinusoidal_encoding`
applied to rows and columns). The ``_mutant`` functions are a reference with one known mistake
each, used only to recognise the mistake and name it. Each checker returns None.
"""

from __future__ import annotations

import math

import torch

from attention_course.exercises._framework import Case, Checker, Mistake, randn
from attention_course.positional import sinusoidal_encoding

__all__ = ["check_patchify", "check_graph_attention_mask", "check_patch_positions_2d"]


def _note(dtype: torch.dtype) -> str:
    return "float32, " if dtype == torch.float32 else ""


# --- patchify ---------------------------------------------------------------------------------

def _patchify(images, p, *, order=(0, 2, 4, 1, 3, 5), grid=None, n_patches=None):
    """The reference with knobs: ``order`` permutes (B, C, gh, p, gw, p); ``grid(H, W)`` gives
    (gh, gw) and ``n_patches(H, W)`` the N of the final reshape (default: from the shape)."""
    B, C, H, W = images.shape
    gh, gw = grid(H, W, p) if grid is not None else (H // p, W // p)
    x = images.reshape(B, C, gh, p, gw, p)  # (B, C, gh, p, gw, p)
    x = x.permute(*order)  # reference: (B, gh, gw, C, p, p)
    n = n_patches(H, W, p) if n_patches is not None else gh * gw
    return x.reshape(B, n, -1)  # (B, N, C * p * p)


def _patchify_reference(images, patch_size):
    return _patchify(images, patch_size)


def _patchify_cases() -> list[Case]:
    g = torch.Generator().manual_seed(91)
    cases = []
    for what, B, C, H, W, p, dtype in (
            ("square RGB images, 2 x 2 patches", 2, 3, 4, 4, 2, torch.float64),
            ("one grey image, 3 x 3 patches", 1, 1, 6, 6, 3, torch.float64),
            ("wide images (H < W)", 2, 2, 4, 6, 2, torch.float64),
            ("tall images (H > W)", 3, 3, 6, 4, 2, torch.float32),
            ("one square RGB image, 4 x 4 patches", 1, 3, 8, 8, 4, torch.float32),
            ("a single row of patches", 2, 1, 2, 8, 2, torch.float64),
            ("a single column of patches", 2, 3, 9, 3, 3, torch.float64),
            ("1 x 1 patches: every pixel is a patch", 2, 2, 3, 2, 1, torch.float64),
            ("one patch covers the whole image", 2, 2, 3, 3, 3, torch.float32)):
        images = randn(g, B, C, H, W, dtype=dtype)
        sizes = f"B={B}, C={C}, H={H}, W={W}, p={p}"
        cases.append(Case(f"{_note(dtype)}{what}: {sizes}",
                          {"images": images, "patch_size": p}))
    return cases


def _patchify_plain_reshape_mutant(images, patch_size):
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)


def _patchify_unfold_no_permute_mutant(images, patch_size):
    B, p = images.shape[0], patch_size
    x = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, gh, gw, p, p)
    return x.reshape(B, x.shape[2] * x.shape[3], -1)


def _patchify_wrong_split_mutant(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, W // p, p, p).permute(0, 2, 3, 1, 4, 5)
    return x.reshape(B, (H // p) * (W // p), -1)


def _patchify_im2col_mutant(images, patch_size):
    return torch.nn.functional.unfold(images, patch_size, stride=patch_size)  # (B, C*p*p, N)


def _patchify_column_major_mutant(images, patch_size):
    return _patchify(images, patch_size, order=(0, 4, 2, 1, 3, 5))


def _patchify_channels_last_mutant(images, patch_size):
    return _patchify(images, patch_size, order=(0, 2, 4, 3, 5, 1))


def _patchify_channels_middle_mutant(images, patch_size):
    return _patchify(images, patch_size, order=(0, 2, 4, 3, 1, 5))


def _patchify_patch_transposed_mutant(images, patch_size):
    return _patchify(images, patch_size, order=(0, 2, 4, 1, 5, 3))


def _patchify_hw_swapped_mutant(images, patch_size):
    return _patchify(images, patch_size, grid=lambda H, W, p: (W // p, H // p))


def _patchify_flat_batch_mutant(images, patch_size):
    out = _patchify_reference(images, patch_size)
    return out.reshape(-1, out.shape[-1])  # (B * N, C * p * p)


def _patchify_batch_inside_mutant(images, patch_size):
    return _patchify(images, patch_size, order=(2, 4, 0, 1, 3, 5))


def _patchify_squeezed_mutant(images, patch_size):
    return _patchify_reference(images, patch_size).squeeze(0)


def _patchify_square_grid_mutant(side):
    def mutant(images, patch_size):
        return _patchify(images, patch_size, grid=lambda H, W, p: (side(H, W) // p,) * 2)
    return mutant


def _patchify_square_count_mutant(side):
    def mutant(images, patch_size):
        return _patchify(images, patch_size, n_patches=lambda H, W, p: (side(H, W) // p) ** 2)
    return mutant


def _patchify_isqrt_mutant(images, patch_size):
    B, C, H, W = images.shape
    side = math.isqrt((H // patch_size) * (W // patch_size))
    return _patchify(images, patch_size, grid=lambda H, W, p: (side, side))


_SIDES = (lambda H, W: H, lambda H, W: W)

_PATCHIFY_RECIPE = ("`images.reshape(B, C, H // p, p, W // p, p)` names every axis; "
                    "`.permute(0, 2, 4, 1, 3, 5)` orders them (B, gh, gw, C, p, p); then "
                    "`.reshape(B, N, C * p * p)`")

_PATCHIFY_MISTAKES = (
    Mistake(
        "reshaped without gathering each patch's pixels first",
        f"In memory a row of the image runs across every patch of that row, so reshaping "
        f"(B, C, H, W) straight to (B, N, C*p*p) (or the (B, C, gh, gw, p, p) result of "
        f"`unfold` without a permute) fills each \"patch\" with pieces of several patches "
        f"and channels. Split H and W into (grid, pixel) axes and move C next to the pixels "
        f"before the reshape: {_PATCHIFY_RECIPE}.",
        (_patchify_plain_reshape_mutant, _patchify_unfold_no_permute_mutant,
         _patchify_wrong_split_mutant),
    ),
    Mistake(
        "returned F.unfold's (B, C*p*p, N): the patches must be axis 1",
        "`torch.nn.functional.unfold(images, p, stride=p)` gives the right numbers with the "
        "patches last, (B, C*p*p, N). The patches are the tokens of the sequence: "
        "`.transpose(1, 2)` gives (B, N, C*p*p).",
        (_patchify_im2col_mutant,),
    ),
    Mistake(
        "the patches are in column-major order",
        f"Patch n is at grid row n // gw and column n % gw: left to right along the top "
        f"row, then the next row, like reading text. Keep the grid axes in the order "
        f"(gh, gw): {_PATCHIFY_RECIPE}.",
        (_patchify_column_major_mutant,),
    ),
    Mistake(
        "each patch was flattened channels-last, (p, p, C), instead of (C, p, p)",
        f"Flatten each patch channel by channel, all of channel 0's p*p pixels first: the "
        f"order of a Conv2d weight (out, C, p, p) flattened, so that a patch embedding "
        f"Linear(C*p*p, D) equals Conv2d(C, D, p, stride=p). {_PATCHIFY_RECIPE}.",
        (_patchify_channels_last_mutant, _patchify_channels_middle_mutant),
    ),
    Mistake(
        "the pixels of each patch were taken column by column",
        "Inside a patch the pixels go row by row, (C, p_row, p_col): two `unfold` calls must "
        "cut H (dim 2) first and W (dim 3) second, `images.unfold(2, p, p).unfold(3, p, p)`, "
        "and a permute must keep the pixel-row axis before the pixel-column axis.",
        (_patchify_patch_transposed_mutant,),
    ),
    Mistake(
        "H and W were swapped: images are (B, C, H, W)",
        "The image height comes before its width: `B, C, H, W = images.shape`, so the grid "
        "has gh = H // p rows and gw = W // p columns. Swapping them is invisible on square "
        "images and scrambles the patches of a wide or tall one.",
        (_patchify_hw_swapped_mutant,),
    ),
    Mistake(
        "the batch axis was lost or mixed with the patches",
        f"Every image keeps its own N patches: the result is (B, N, C*p*p), with the batch "
        f"axis first and untouched (also when B = 1). {_PATCHIFY_RECIPE}.",
        (_patchify_flat_batch_mutant, _patchify_batch_inside_mutant,
         _patchify_squeezed_mutant),
    ),
    Mistake(
        "assumed square images: the grid is (H // p) x (W // p)",
        "Images need not be square: the grid has gh = H // p rows and gw = W // p columns, "
        "N = gh * gw patches. A side taken from H alone, from W alone, or from sqrt(N) only "
        "works when H == W.",
        (*(_patchify_square_grid_mutant(s) for s in _SIDES),
         *(_patchify_square_count_mutant(s) for s in _SIDES), _patchify_isqrt_mutant),
    ),
)

_PATCHIFY = Checker(
    "patchify", _patchify_cases, _patchify_reference, _PATCHIFY_MISTAKES,
    outputs=("patches",), shapes=("(B, N, C * p * p)",),
    error_hint="Hint: with gh = H // p and gw = W // p, "
               "`images.reshape(B, C, gh, p, gw, p)` has 6 axes; `.permute(0, 2, 4, 1, 3, 5)` "
               "then `.reshape(B, gh * gw, -1)`.",
)


def check_patchify(fn) -> None:
    """Check ``fn(images, patch_size)`` → ``(B, N, C·p·p)``: the non-overlapping ``p × p``
    patches of ``images`` ``(B, C, H, W)`` (``p`` divides ``H`` and ``W``; images may be
    non-square), ``N = (H/p)·(W/p)``. Patch ``n`` is the one at grid row ``n // (W/p)`` and
    column ``n % (W/p)`` (row-major), flattened in ``(C, p, p)`` order: ``patches[b, n]`` equals
    ``images[b, :, r*p:(r+1)*p, c*p:(c+1)*p].reshape(-1)``. The dtype is that of ``images``,
    which must not change. Prints one line on success."""
    _PATCHIFY.check(fn)


# --- graph_attention_mask ---------------------------------------------------------------------

def _edges(pairs) -> torch.Tensor:
    """(2, E) int64 from a list of (source, target) pairs."""
    return torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2).T.contiguous()


def _adjacency(edge_index, num_nodes, *, dtype=torch.bool, accumulate=False):
    """``adj[target, source]`` set (or counted, with ``accumulate``) for every edge."""
    source, target = edge_index[0], edge_index[1]
    adj = torch.zeros(num_nodes, num_nodes, dtype=dtype)
    return adj.index_put((target, source), torch.ones((), dtype=dtype), accumulate=accumulate)


def _graph_reference(edge_index, num_nodes):
    mask = _adjacency(edge_index, num_nodes)  # (N, N): mask[i, j] for every edge j -> i
    return mask | torch.eye(num_nodes, dtype=torch.bool)  # every node attends to itself


def _graph_cases() -> list[Case]:
    cases = []
    for what, pairs, n in (
            ("directed: 0->1, 1->2, 2->0, 3->1, 0->3; node 4 has no edges",
             [(0, 1), (1, 2), (2, 0), (3, 1), (0, 3)], 5),
            ("the edge 0->1 is listed twice", [(0, 1), (1, 2), (0, 1), (2, 3), (3, 0)], 4),
            ("edge_index already holds the self-loop 2->2",
             [(0, 1), (2, 2), (1, 2), (2, 0)], 3),
            ("no edges at all", [], 3),
            ("a directed chain 0->1->2->3->4->5", [(i, i + 1) for i in range(5)], 6),
            ("node 2 has no edges; 1->0 and 0->1 both listed",
             [(0, 1), (1, 0), (3, 4), (5, 3), (4, 5), (1, 5)], 6),
            ("a star: every node sends to node 0", [(i, 0) for i in range(1, 5)], 5),
            ("nodes 5 and 6 have no edges", [(1, 0), (2, 0), (3, 2), (4, 1), (0, 4)], 7)):
        cases.append(Case(f"{what}, num_nodes={n}",
                          {"edge_index": _edges(pairs), "num_nodes": n}))
    return cases


def _with_loops(adj, nodes):
    eye = torch.zeros_like(adj)
    eye[nodes, nodes] = True
    return adj | eye


def _graph_no_loops_mutant(edge_index, num_nodes):
    return _adjacency(edge_index, num_nodes)


def _graph_loops_on_edge_nodes_mutant(edge_index, num_nodes):
    return _with_loops(_adjacency(edge_index, num_nodes), edge_index.reshape(-1))


def _graph_loops_on_targets_mutant(edge_index, num_nodes):
    return _with_loops(_adjacency(edge_index, num_nodes), edge_index[1])


def _graph_loops_on_sources_mutant(edge_index, num_nodes):
    return _with_loops(_adjacency(edge_index, num_nodes), edge_index[0])


def _graph_transposed_mutant(edge_index, num_nodes):
    return _graph_reference(edge_index, num_nodes).T


def _graph_symmetric_mutant(edge_index, num_nodes):
    mask = _graph_reference(edge_index, num_nodes)
    return mask | mask.T


def _graph_dtype_mutant(dtype):
    def mutant(edge_index, num_nodes):
        return _graph_reference(edge_index, num_nodes).to(dtype)
    return mutant


def _counts(edge_index, num_nodes, dtype):
    counts = _adjacency(edge_index, num_nodes, dtype=dtype, accumulate=True)
    return counts + torch.eye(num_nodes, dtype=dtype)


def _graph_counts_mutant(dtype):
    def mutant(edge_index, num_nodes):
        return _counts(edge_index, num_nodes, dtype)
    return mutant


def _graph_counts_eq_one_mutant(edge_index, num_nodes):
    return _counts(edge_index, num_nodes, torch.float32) == 1


def _graph_plus_eye_eq_one_mutant(edge_index, num_nodes):
    adj = _adjacency(edge_index, num_nodes, dtype=torch.float32)  # 0/1: duplicates collapse
    return (adj + torch.eye(num_nodes)) == 1


def _graph_edges_eq_one_mutant(edge_index, num_nodes):
    counts = _adjacency(edge_index, num_nodes, dtype=torch.int64, accumulate=True)
    return (counts == 1) | torch.eye(num_nodes, dtype=torch.bool)


def _graph_xor_eye_mutant(edge_index, num_nodes):
    return _adjacency(edge_index, num_nodes) ^ torch.eye(num_nodes, dtype=torch.bool)


def _graph_size_from_edges_mutant(edge_index, num_nodes):
    return _graph_reference(edge_index, int(edge_index.max()) + 1)


_NUMERIC = (torch.int64, torch.int32, torch.uint8, torch.float32, torch.float64)

_MASK_RECIPE = ("`source, target = edge_index`, `mask = torch.zeros(N, N, dtype=torch.bool)`, "
                "`mask[target, source] = True`, then `mask |= torch.eye(N, dtype=torch.bool)`")

_GRAPH_MISTAKES = (
    Mistake(
        "the self-loops are missing: every node attends to itself",
        f"A graph attention layer mixes a node's own features with its neighbours': "
        f"mask[i, i] is True for every node. Without it, a node with no incoming edge has "
        f"no key at all (a row of False), and every other node forgets itself. "
        f"{_MASK_RECIPE}.",
        (_graph_no_loops_mutant,),
    ),
    Mistake(
        "self-loops were added only to nodes that appear in edge_index",
        f"Every one of the num_nodes nodes gets a self-loop, also a node without any edge "
        f"(or with only outgoing ones): add the whole diagonal, `torch.eye(num_nodes, "
        f"dtype=torch.bool)`, not loops built from the nodes listed in edge_index. "
        f"{_MASK_RECIPE}.",
        (_graph_loops_on_edge_nodes_mutant, _graph_loops_on_targets_mutant,
         _graph_loops_on_sources_mutant),
    ),
    Mistake(
        "the mask is transposed: source and target are swapped",
        f"edge_index[0] holds the sources, edge_index[1] the targets, and information flows "
        f"along an edge j -> i from j to i: the TARGET i attends to the source j, so the "
        f"edge sets mask[i, j] = mask[target, source]. {_MASK_RECIPE}.",
        (_graph_transposed_mutant,),
    ),
    Mistake(
        "the directed graph was made undirected",
        "An edge j -> i lets i attend to j, not j to i: set mask[target, source] only. "
        "The graph is directed; where both directions are allowed, edge_index lists both.",
        (_graph_symmetric_mutant,),
    ),
    Mistake(
        "the mask is not boolean",
        "The course's masks are boolean, True = may attend (as in "
        "`F.scaled_dot_product_attention`, where a float mask is ADDED to the scores "
        "instead). Create it with `dtype=torch.bool`, or convert at the end with "
        "`.bool()` (after adding the self-loops, so that counts above 1 stay True).",
        (*(_graph_dtype_mutant(d) for d in _NUMERIC),
         *(_graph_counts_mutant(d) for d in _NUMERIC)),
    ),
    Mistake(
        "an edge listed twice, or a self-loop already in edge_index, was dropped",
        "A mask says whether i may attend to j, not how many edges join them: an entry "
        "reached twice (a duplicate edge, or a self-loop in edge_index plus the diagonal) "
        "stays True. Counting and then testing `== 1` (or toggling with `^`) loses it: "
        "set entries with `mask[target, source] = True` and combine with `|`.",
        (_graph_counts_eq_one_mutant, _graph_plus_eye_eq_one_mutant,
         _graph_edges_eq_one_mutant, _graph_xor_eye_mutant),
    ),
    Mistake(
        "the size came from the largest node index instead of num_nodes",
        "`edge_index.max() + 1` misses nodes after the last one with an edge (and fails "
        "on a graph without edges): the mask is (num_nodes, num_nodes).",
        (_graph_size_from_edges_mutant,),
    ),
)

_GRAPH = Checker(
    "graph_attention_mask", _graph_cases, _graph_reference, _GRAPH_MISTAKES,
    outputs=("mask",), shapes=("(N, N)",),
    error_hint=f"Hint: {_MASK_RECIPE}.",
)


def check_graph_attention_mask(fn) -> None:
    """Check ``fn(edge_index, num_nodes)`` → ``mask`` ``(N, N)`` bool: ``edge_index``
    ``(2, E)`` int64 lists directed edges, sources in row 0 and targets in row 1 (it may
    contain duplicates and self-loops, or no edge at all); ``mask[i, j]`` is True when node
    ``i`` may attend to node ``j``: ``j → i`` is an edge, or ``i == j``. ``N = num_nodes``,
    which may exceed the largest index in ``edge_index``. ``edge_index`` must not change.
    Prints one line on success."""
    _GRAPH.check(fn)


# --- patch_positions_2d -----------------------------------------------------------------------

def _pe(n, d, *, start=0):
    """The course's 1-D encoding of positions start … start + n - 1, float64 ``(n, d)``."""
    return sinusoidal_encoding(n + start, d, dtype=torch.float64)[start:]


def _grid(rows, cols, grid_h, grid_w):
    """Row-major (N, d_r + d_c): patch n gets rows[n // grid_w] and cols[n % grid_w]."""
    r = rows[:, None, :].expand(grid_h, grid_w, -1)  # (gh, gw, d_r)
    c = cols[None, :, :].expand(grid_h, grid_w, -1)  # (gh, gw, d_c)
    return torch.cat([r, c], dim=-1).reshape(grid_h * grid_w, -1)  # (N, d_r + d_c)


def _positions_reference(grid_h, grid_w, d_model):
    half = d_model // 2
    rows, cols = _pe(grid_h, half), _pe(grid_w, half)  # (gh, d/2), (gw, d/2)
    return _grid(rows, cols, grid_h, grid_w).float()  # (gh * gw, d_model)


def _as_float32(result, inputs):
    """float64 is as good an answer as float32 (the default dtype)."""
    if isinstance(result, torch.Tensor) and result.dtype == torch.float64:
        return result.float()
    return result


def _positions_cases() -> list[Case]:
    return [Case(f"a {h} x {w} grid of patches, d_model={d}",
                 {"grid_h": h, "grid_w": w, "d_model": d})
            for h, w, d in ((2, 3, 8), (3, 2, 8), (4, 4, 16), (1, 4, 8), (4, 1, 8),
                            (3, 5, 12), (5, 3, 32), (3, 3, 4))]


def _positions_by_index(row_of, col_of, *, first="row"):
    """The encoding with patch n's row and column given by ``row_of(n, gh, gw)`` etc."""
    def mutant(grid_h, grid_w, d_model):
        half = d_model // 2
        n = torch.arange(grid_h * grid_w)
        rows = _pe(grid_h * grid_w, half)[row_of(n, grid_h, grid_w)]
        cols = _pe(grid_h * grid_w, half)[col_of(n, grid_h, grid_w)]
        parts = [rows, cols] if first == "row" else [cols, rows]
        return torch.cat(parts, dim=-1).float()
    return mutant


_positions_halves_swapped_mutant = _positions_by_index(
    lambda n, h, w: n // w, lambda n, h, w: n % w, first="col")
_positions_divmod_swapped_mutant = _positions_by_index(
    lambda n, h, w: n % w, lambda n, h, w: n // w)
_positions_column_major_mutant = _positions_by_index(
    lambda n, h, w: n % h, lambda n, h, w: n // h)


def _positions_grid_swapped_mutant(grid_h, grid_w, d_model):
    return _positions_reference(grid_w, grid_h, d_model)


def _positions_full_width_mutant(grid_h, grid_w, d_model):
    rows, cols = _pe(grid_h, d_model), _pe(grid_w, d_model)
    return _grid(rows, cols, grid_h, grid_w).float()  # (N, 2 * d_model)


def _positions_full_frequencies_mutant(grid_h, grid_w, d_model):
    half = d_model // 2
    rows, cols = _pe(grid_h, d_model)[:, :half], _pe(grid_w, d_model)[:, :half]
    return _grid(rows, cols, grid_h, grid_w).float()


def _positions_one_axis_mutant(which):
    def mutant(grid_h, grid_w, d_model):
        half = d_model // 2
        rows, cols = _pe(grid_h, half), _pe(grid_w, half)
        none_h = torch.zeros(grid_h, 0, dtype=torch.float64)
        none_w = torch.zeros(grid_w, 0, dtype=torch.float64)
        r = _grid(rows, none_w, grid_h, grid_w)  # (N, d/2): the row half alone
        c = _grid(none_h, cols, grid_h, grid_w)  # (N, d/2): the column half alone
        pe = {"rows only": lambda: _grid(_pe(grid_h, d_model), none_w, grid_h, grid_w),
              "columns only": lambda: _grid(none_h, _pe(grid_w, d_model), grid_h, grid_w),
              "rows twice": lambda: torch.cat([r, r], dim=-1),
              "columns twice": lambda: torch.cat([c, c], dim=-1),
              "zero columns": lambda: torch.cat([r, torch.zeros_like(c)], dim=-1)}[which]()
        return pe.float()
    return mutant


def _positions_from_one_mutant(grid_h, grid_w, d_model):
    half = d_model // 2
    rows, cols = _pe(grid_h, half, start=1), _pe(grid_w, half, start=1)
    return _grid(rows, cols, grid_h, grid_w).float()


def _positions_flat_index_mutant(grid_h, grid_w, d_model):
    return _pe(grid_h * grid_w, d_model).float()


def _concatenated(n, d):
    pe = _pe(n, d)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=-1)  # all sines, then all cosines


def _positions_sin_then_cos_mutant(grid_h, grid_w, d_model):
    half = d_model // 2
    return _grid(_concatenated(grid_h, half), _concatenated(grid_w, half), grid_h,
                 grid_w).float()


def _positions_unflattened_mutant(grid_h, grid_w, d_model):
    return _positions_reference(grid_h, grid_w, d_model).reshape(grid_h, grid_w, d_model)


_POSITIONS_RECIPE = ("`rows = sinusoidal_encoding(grid_h, d_model // 2)`, `cols = "
                     "sinusoidal_encoding(grid_w, d_model // 2)`; patch n = r * grid_w + c "
                     "gets `torch.cat([rows[r], cols[c]])`")

_POSITIONS_MISTAKES = (
    Mistake(
        "the patches are in column-major order",
        f"Patches are numbered row by row (left to right, then top to bottom), as "
        f"patchify lays them out: patch n is at row n // grid_w and column n % grid_w, "
        f"not at row `n % grid_h`. {_POSITIONS_RECIPE}.",
        (_positions_column_major_mutant,),
    ),
    Mistake(
        "row and column are swapped: the first half encodes the row",
        f"Patch n = r * grid_w + c has row r = n // grid_w and column c = n % grid_w; the "
        f"first d_model / 2 features encode r, the last d_model / 2 encode c. "
        f"{_POSITIONS_RECIPE}.",
        (_positions_halves_swapped_mutant, _positions_divmod_swapped_mutant),
    ),
    Mistake(
        "grid_h and grid_w are swapped: the grid has grid_h rows of grid_w patches",
        f"grid_h counts rows (the image height / p) and grid_w columns, so each row holds "
        f"grid_w patches: patch n is at row n // grid_w. {_POSITIONS_RECIPE}.",
        (_positions_grid_swapped_mutant,),
    ),
    Mistake(
        "each half used all d_model features",
        f"Rows and columns share the d_model features, d_model / 2 each: encode each with "
        f"`sinusoidal_encoding(n, d_model // 2)`, so the two halves concatenate to "
        f"d_model. {_POSITIONS_RECIPE}.",
        (_positions_full_width_mutant,),
    ),
    Mistake(
        "the frequencies are those of d_model, not d_model / 2",
        f"Each half is a 1-D encoding of width d_model / 2 in its own right, with "
        f"frequencies 10000^(-2i / (d_model / 2)). Cutting the first d_model / 2 columns "
        f"from a d_model-wide encoding keeps only the fast frequencies. "
        f"{_POSITIONS_RECIPE}.",
        (_positions_full_frequencies_mutant,),
    ),
    Mistake(
        "only one axis is encoded: rows and columns each need their half",
        f"With only the row (or only the column) encoded, all the patches of a row get the "
        f"same vector, and attention cannot tell them apart. {_POSITIONS_RECIPE}.",
        tuple(_positions_one_axis_mutant(w) for w in
              ("rows only", "columns only", "rows twice", "columns twice", "zero columns")),
    ),
    Mistake(
        "the positions start at 1 instead of 0",
        f"The first row and the first column are position 0, as in "
        f"`sinusoidal_encoding`, whose row 0 is (0, 1, 0, 1, ...): the top-left patch "
        f"gets sin(0) = 0 and cos(0) = 1 everywhere. {_POSITIONS_RECIPE}.",
        (_positions_from_one_mutant,),
    ),
    Mistake(
        "encoded the flat patch index, not its row and column",
        f"A 1-D encoding of n = 0 ... N - 1 makes the patch at the end of one row and the "
        f"one starting the next row neighbours, though they are far apart in the image. "
        f"Encode the row and the column separately. {_POSITIONS_RECIPE}.",
        (_positions_flat_index_mutant,),
    ),
    Mistake(
        "the sines and cosines are not interleaved",
        f"The course's encoding alternates them, even columns sin(pos * w_i) and odd "
        f"columns cos(pos * w_i), within each half. Reuse "
        f"`attention_course.positional.sinusoidal_encoding` rather than putting all sines "
        f"before all cosines. {_POSITIONS_RECIPE}.",
        (_positions_sin_then_cos_mutant,),
    ),
    Mistake(
        "the grid was not flattened: the result is (N, d_model)",
        "Return one row per patch, in row-major order: `.reshape(grid_h * grid_w, "
        "d_model)` turns a (grid_h, grid_w, d_model) grid into it.",
        (_positions_unflattened_mutant,),
    ),
)

_POSITIONS = Checker(
    "patch_positions_2d", _positions_cases, _positions_reference, _POSITIONS_MISTAKES,
    outputs=("pe",), shapes=("(grid_h * grid_w, d_model)",), normalise=_as_float32,
    error_hint=f"Hint: {_POSITIONS_RECIPE}; `r = n // grid_w`, `c = n % grid_w`.",
)


def check_patch_positions_2d(fn) -> None:
    """Check ``fn(grid_h, grid_w, d_model)`` → ``pe`` ``(grid_h·grid_w, d_model)``, float32 (or
    float64): the 2-D sinusoidal position encoding of a ``grid_h × grid_w`` grid of patches in
    row-major order (patch ``n`` at row ``r = n // grid_w``, column ``c = n % grid_w``), with
    ``d_model`` divisible by 4. Row ``n`` is ``[PE_r, PE_c]``: the course's 1-D encoding
    :func:`~attention_course.positional.sinusoidal_encoding` of width ``d_model / 2`` (sines in
    even, cosines in odd columns) at position ``r``, then the same at position ``c``. Prints one
    line on success."""
    _POSITIONS.check(fn)


CHECKERS = (_PATCHIFY, _GRAPH, _POSITIONS)
