"""Chapter 9: learner-style solutions and wrong answers for the shared harness."""

import math

import torch
import torch.nn.functional as F

from attention_course.positional import sinusoidal_encoding
from tests.exercises.registry import Exercise

# --- patchify ----------------------------------------------------------------------------------

def patchify(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def patchify_unfold(images, patch_size):
    p = patch_size
    x = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, gh, gw, p, p)
    x = x.permute(0, 2, 3, 1, 4, 5).contiguous()
    return x.view(x.shape[0], x.shape[1] * x.shape[2], -1)


def patchify_loops(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    patches = []
    for r in range(H // p):
        for c in range(W // p):
            patch = images[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p]
            patches.append(patch.reshape(B, -1))
    return torch.stack(patches, dim=1)


def patchify_im2col(images, patch_size):
    return F.unfold(images, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def patchify_plain_reshape(images, patch_size):
    B, C, H, W = images.shape
    N = H * W // patch_size ** 2
    return images.reshape(B, N, -1)


def patchify_unfold_reshape(images, patch_size):
    B = images.shape[0]
    x = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)
    return x.reshape(B, -1, x.shape[1] * patch_size * patch_size)


def patchify_im2col_untransposed(images, patch_size):
    return F.unfold(images, patch_size, stride=patch_size)


def patchify_columns_first(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    patches = []
    for c in range(W // p):
        for r in range(H // p):
            patches.append(images[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p].flatten(1))
    return torch.stack(patches, dim=1)


def patchify_channels_last(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.permute(0, 2, 3, 1)  # (B, H, W, C), like an image file
    x = x.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, -1, p * p * C)


def patchify_unfold_w_first(images, patch_size):
    p = patch_size
    x = images.unfold(3, p, p).unfold(2, p, p)  # (B, C, gh, gw, p_w, p_h)
    x = x.permute(0, 2, 3, 1, 4, 5)
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], -1)


def patchify_hw_swapped(images, patch_size):
    B, C, W, H = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def patchify_flat(images, patch_size):
    _, C, H, W = images.shape
    p = patch_size
    x = images.reshape(-1, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, C * p * p)  # all patches of all images


def patchify_square_grid(images, patch_size):
    B, C, H, W = images.shape
    g = H // patch_size  # patches per side
    x = images.reshape(B, C, g, patch_size, g, patch_size)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, -1)


def patchify_sqrt_count(images, patch_size):
    B, C, H, W = images.shape
    n = H * W // patch_size ** 2
    side = int(math.sqrt(n))
    x = images.reshape(B, C, side, patch_size, side, patch_size)
    return x.permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2)


EXERCISES = [
    Exercise("ch09", "patchify", 9, (patchify, patchify_unfold, patchify_loops,
                                     patchify_im2col), (
        (patchify_plain_reshape, "reshaped without gathering each patch's pixels"),
        (patchify_unfold_reshape, "reshaped without gathering each patch's pixels"),
        (patchify_im2col_untransposed, "returned F.unfold's (B, C*p*p, N)"),
        (patchify_columns_first, "column-major order"),
        (patchify_channels_last, "flattened channels-last"),
        (patchify_unfold_w_first, "taken column by column"),
        (patchify_hw_swapped, "H and W were swapped"),
        (patchify_flat, "the batch axis was lost"),
        (patchify_square_grid, "assumed square images"),
        (patchify_sqrt_count, "assumed square images"),
    )),
]


# --- graph_attention_mask ----------------------------------------------------------------------

def graph_mask(edge_index, num_nodes):
    source, target = edge_index
    mask = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    mask[target, source] = True
    return mask | torch.eye(num_nodes, dtype=torch.bool)


def graph_mask_dense(edge_index, num_nodes):
    adj = torch.zeros(num_nodes, num_nodes)
    adj.index_put_((edge_index[1], edge_index[0]), torch.ones(edge_index.shape[1]),
                   accumulate=True)  # counts edges
    adj += torch.eye(num_nodes)
    return adj > 0


def graph_mask_loops_first(edge_index, num_nodes):
    loops = torch.arange(num_nodes).repeat(2, 1)
    edges = torch.cat([edge_index, loops], dim=1)
    mask = torch.full((num_nodes, num_nodes), False)
    for s, t in edges.T.tolist():
        mask[t, s] = True
    return mask


def graph_no_loops(edge_index, num_nodes):
    mask = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    return mask


def graph_loops_from_edges(edge_index, num_nodes):
    mask = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    nodes = torch.unique(edge_index)
    mask[nodes, nodes] = True
    return mask


def graph_transposed(edge_index, num_nodes):
    src, dst = edge_index
    mask = torch.eye(num_nodes, dtype=torch.bool)
    mask[src, dst] = True
    return mask


def graph_undirected(edge_index, num_nodes):
    src, dst = edge_index
    mask = torch.eye(num_nodes, dtype=torch.bool)
    mask[dst, src] = True
    mask[src, dst] = True
    return mask


def graph_float(edge_index, num_nodes):
    mask = torch.eye(num_nodes)
    mask[edge_index[1], edge_index[0]] = 1.0
    return mask


def graph_long(edge_index, num_nodes):
    mask = torch.eye(num_nodes, dtype=torch.long)
    mask[edge_index[1], edge_index[0]] = 1
    return mask


def graph_counts_equal_one(edge_index, num_nodes):
    adj = torch.zeros(num_nodes, num_nodes)
    adj.index_put_((edge_index[1], edge_index[0]), torch.ones(edge_index.shape[1]),
                   accumulate=True)  # sums duplicates
    return (adj + torch.eye(num_nodes)) == 1


def graph_xor(edge_index, num_nodes):
    mask = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    return mask ^ torch.eye(num_nodes, dtype=torch.bool)


def graph_size_from_edges(edge_index, num_nodes):
    n = int(edge_index.max()) + 1
    mask = torch.eye(n, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    return mask


EXERCISES.append(
    Exercise("ch09", "graph_attention_mask", 8, (graph_mask, graph_mask_dense,
                                                 graph_mask_loops_first), (
        (graph_no_loops, "the self-loops are missing"),
        (graph_loops_from_edges, "self-loops were added only to nodes that appear"),
        (graph_transposed, "source and target are swapped"),
        (graph_undirected, "made undirected"),
        (graph_float, "the mask is not boolean"),
        (graph_long, "the mask is not boolean"),
        (graph_counts_equal_one, "an edge listed twice"),
        (graph_xor, "an edge listed twice"),
        (graph_size_from_edges, "the size came from the largest node index"),
    ))
)


# --- patch_positions_2d ------------------------------------------------------------------------

def positions(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model // 2)  # (gh, d/2)
    cols = sinusoidal_encoding(grid_w, d_model // 2)  # (gw, d/2)
    r = torch.arange(grid_h).repeat_interleave(grid_w)  # 0 0 0 1 1 1 ...
    c = torch.arange(grid_w).repeat(grid_h)  # 0 1 2 0 1 2 ...
    return torch.cat([rows[r], cols[c]], dim=1)


def positions_by_hand(grid_h, grid_w, d_model):
    """Written out in float64, without the course's function."""
    half = d_model // 2
    omega = 10000.0 ** (-torch.arange(0, half, 2, dtype=torch.float64) / half)

    def encode(pos):  # (n,) -> (n, half)
        angles = pos[:, None].double() * omega
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)

    rr, cc = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    return torch.cat([encode(rr.flatten()), encode(cc.flatten())], dim=-1)


def positions_loops(grid_h, grid_w, d_model):
    pe_r = sinusoidal_encoding(grid_h, d_model // 2)
    pe_c = sinusoidal_encoding(grid_w, d_model // 2)
    out = torch.zeros(grid_h * grid_w, d_model)
    for n in range(grid_h * grid_w):
        r, c = divmod(n, grid_w)
        out[n, :d_model // 2] = pe_r[r]
        out[n, d_model // 2:] = pe_c[c]
    return out


def positions_column_major(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model // 2)
    cols = sinusoidal_encoding(grid_w, d_model // 2)
    grid = torch.cat([rows[None, :, :].expand(grid_w, -1, -1),
                      cols[:, None, :].expand(-1, grid_h, -1)], dim=-1)  # (gw, gh, d)
    return grid.reshape(-1, d_model)


def positions_col_first(grid_h, grid_w, d_model):
    pe = positions(grid_h, grid_w, d_model)
    half = d_model // 2
    return torch.cat([pe[:, half:], pe[:, :half]], dim=1)


def positions_grid_swapped(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_w, d_model // 2)
    cols = sinusoidal_encoding(grid_h, d_model // 2)
    r = torch.arange(grid_w).repeat_interleave(grid_h)
    c = torch.arange(grid_h).repeat(grid_w)
    return torch.cat([rows[r], cols[c]], dim=1)


def positions_full_width(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model)
    cols = sinusoidal_encoding(grid_w, d_model)
    r = torch.arange(grid_h).repeat_interleave(grid_w)
    c = torch.arange(grid_w).repeat(grid_h)
    return torch.cat([rows[r], cols[c]], dim=1)


def positions_sliced(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model)[:, :d_model // 2]
    cols = sinusoidal_encoding(grid_w, d_model)[:, :d_model // 2]
    r = torch.arange(grid_h).repeat_interleave(grid_w)
    c = torch.arange(grid_w).repeat(grid_h)
    return torch.cat([rows[r], cols[c]], dim=1)


def positions_rows_only(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model)
    return rows.repeat_interleave(grid_w, dim=0)


def positions_from_one(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h + 1, d_model // 2)[1:]
    cols = sinusoidal_encoding(grid_w + 1, d_model // 2)[1:]
    r = torch.arange(grid_h).repeat_interleave(grid_w)
    c = torch.arange(grid_w).repeat(grid_h)
    return torch.cat([rows[r], cols[c]], dim=1)


def positions_flat(grid_h, grid_w, d_model):
    return sinusoidal_encoding(grid_h * grid_w, d_model)


def positions_sin_cos_blocks(grid_h, grid_w, d_model):
    half = d_model // 2
    omega = 1.0 / 10000 ** (torch.arange(0, half, 2) / half)

    def encode(pos):
        angles = pos[:, None] * omega
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    n = torch.arange(grid_h * grid_w)
    return torch.cat([encode(n // grid_w), encode(n % grid_w)], dim=1)


def positions_unflattened(grid_h, grid_w, d_model):
    rows = sinusoidal_encoding(grid_h, d_model // 2)
    cols = sinusoidal_encoding(grid_w, d_model // 2)
    return torch.cat([rows[:, None].expand(-1, grid_w, -1),
                      cols[None].expand(grid_h, -1, -1)], dim=-1)


EXERCISES.append(
    Exercise("ch09", "patch_positions_2d", 8, (positions, positions_by_hand,
                                               positions_loops), (
        (positions_column_major, "column-major order"),
        (positions_col_first, "row and column are swapped"),
        (positions_grid_swapped, "grid_h and grid_w are swapped"),
        (positions_full_width, "each half used all d_model features"),
        (positions_sliced, "the frequencies are those of d_model"),
        (positions_rows_only, "only one axis is encoded"),
        (positions_from_one, "the positions start at 1"),
        (positions_flat, "encoded the flat patch index"),
        (positions_sin_cos_blocks, "not interleaved"),
        (positions_unflattened, "the grid was not flattened"),
    ))
)
