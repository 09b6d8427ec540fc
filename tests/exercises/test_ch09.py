"""Chapter 9 checkers, beyond the shared harness: the references are what a ViT patch embedding,
a graph attention layer and a 2-D sinusoidal encoding compute, and the cases contain what the
diagnoses rely on."""

import torch
import torch.nn.functional as F
from torch import nn

from attention_course.exercises import ch09
from attention_course.exercises.ch09 import (
    check_graph_attention_mask,
    check_patch_positions_2d,
    check_patchify,
)
from attention_course.positional import sinusoidal_encoding
from tests.exercises.mutants_ch09 import graph_mask, patchify, positions

PATCHIFY, GRAPH, POSITIONS = ch09.CHECKERS


def flat(message: str) -> str:
    return " ".join(message.split())


# --- patchify ----------------------------------------------------------------------------------

def test_patchify_reference_is_a_stride_p_convolution():
    """A Conv2d(C, D, p, stride=p) equals Linear(C*p*p, D) on the patches, with its weight
    flattened as (D, C*p*p): the (C, p, p) order. With identity weights it returns the patches
    themselves."""
    g = torch.Generator().manual_seed(9)
    for case in PATCHIFY.cases():
        images, p = case.inputs["images"].double(), case.inputs["patch_size"]
        C = images.shape[1]
        patches = PATCHIFY.reference(images, p)
        conv = nn.Conv2d(C, C * p * p, p, stride=p, bias=False, device="meta")
        conv = conv.to_empty(device="cpu").double()  # no draw from the global RNG
        with torch.no_grad():
            conv.weight.copy_(torch.eye(C * p * p, dtype=torch.float64).reshape(-1, C, p, p))
            identity = conv(images).flatten(2).transpose(1, 2)  # (B, N, C*p*p)
            assert torch.equal(patches, identity)
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
            embedded = conv(images).flatten(2).transpose(1, 2)
            linear = patches @ conv.weight.reshape(conv.out_channels, -1).T
        torch.testing.assert_close(linear, embedded)
        unfolded = images.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5)
        assert torch.equal(patches, unfolded.reshape(patches.shape))
        assert torch.equal(patches, F.unfold(images, p, stride=p).transpose(1, 2))


def test_patchify_reference_spells_out_the_spec():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, 3, 4, 6)
    patches = PATCHIFY.reference(images, 2)  # grid 2 x 3
    assert patches.shape == (2, 6, 12)
    for n in range(6):
        r, c = divmod(n, 3)
        assert torch.equal(patches[1, n], images[1, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].flatten())


def test_patchify_cases_cover_shapes_the_diagnoses_need():
    shapes = [(c.inputs["images"].shape, c.inputs["patch_size"]) for c in PATCHIFY.cases()]
    assert any(H < W for (_, _, H, W), _ in shapes) and any(H > W for (_, _, H, W), _ in shapes)
    assert any(B == 1 for (B, *_), _ in shapes) and any(B > 1 for (B, *_), _ in shapes)
    assert any(C == 1 for (_, C, *_), _ in shapes) and any(C > 1 for (_, C, *_), _ in shapes)
    # a grid with several rows and columns, in both dtypes
    dtypes = {c.inputs["images"].dtype for c in PATCHIFY.cases()
              if min(c.inputs["images"].shape[2:]) // c.inputs["patch_size"] > 1}
    assert dtypes == {torch.float32, torch.float64}


def test_patchify_non_square_diagnosis_when_the_reshape_raises(failure):
    def square(images, patch_size):
        B, C, H, W = images.shape
        n = H // patch_size
        x = images.view(B, C, n, patch_size, n, patch_size).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, n * n, -1)

    message = flat(failure(check_patchify, square))
    assert message.startswith("❌ patchify: assumed square images"), message
    assert "This explains" not in message


def test_patchify_accepts_a_view_and_rejects_a_wrong_dtype(failure, capsys):
    check_patchify(lambda images, p: patchify(images, p))
    assert capsys.readouterr().out.startswith("✅")
    message = flat(failure(check_patchify, lambda images, p: patchify(images, p).float()))
    assert "dtype torch.float32; expected torch.float64" in message


# --- graph_attention_mask ----------------------------------------------------------------------

def test_graph_reference_follows_the_definition():
    for case in GRAPH.cases():
        edge_index, n = case.inputs["edge_index"], case.inputs["num_nodes"]
        edges = set(map(tuple, edge_index.T.tolist()))
        expected = torch.tensor([[(j, i) in edges or i == j for j in range(n)]
                                 for i in range(n)])
        assert torch.equal(GRAPH.reference(edge_index, n), expected)


def test_graph_cases_hold_what_the_diagnoses_need():
    cases = [(c.inputs["edge_index"], c.inputs["num_nodes"]) for c in GRAPH.cases()]
    assert all(e.dtype == torch.int64 and e.shape[0] == 2 for e, _ in cases)
    assert any(e.shape[1] == 0 for e, _ in cases)  # no edges
    assert any(len(set(map(tuple, e.T.tolist()))) < e.shape[1] for e, _ in cases)  # duplicates
    assert any((e[0] == e[1]).any() for e, _ in cases)  # a self-loop in edge_index
    assert any(e.numel() and int(e.max()) + 1 < n for e, n in cases)  # last nodes isolated
    for e, _ in cases:  # directed: some edge has no reverse
        pairs = set(map(tuple, e.T.tolist()))
        if pairs:
            assert any((t, s) not in pairs for s, t in pairs)


def test_graph_mask_is_what_sdpa_expects():
    """The mask is used as is by torch's SDPA (True = may attend): a node's output mixes only
    itself and its in-neighbours."""
    edge_index = torch.tensor([[0, 1, 3], [1, 2, 1]])
    mask = graph_mask(edge_index, 4)
    v = torch.eye(4, dtype=torch.float64)[None]  # one-hot values show who is attended
    q = torch.zeros(1, 4, 2, dtype=torch.float64)
    out = F.scaled_dot_product_attention(q, q, v, attn_mask=mask)[0]
    assert torch.equal(out > 0, mask)


def test_graph_int_mask_diagnosis_wins_over_a_generic_dtype_message(failure):
    message = flat(failure(check_graph_attention_mask,
                           lambda e, n: graph_mask(e, n).to(torch.int32)))
    assert message.startswith("❌ graph_attention_mask: the mask is not boolean"), message


# --- patch_positions_2d ------------------------------------------------------------------------

def test_positions_reference_follows_the_definition():
    for case in POSITIONS.cases():
        h, w, d = case.inputs["grid_h"], case.inputs["grid_w"], case.inputs["d_model"]
        pe = POSITIONS.reference(h, w, d)
        assert pe.shape == (h * w, d) and pe.dtype == torch.float32
        rows, cols = sinusoidal_encoding(h, d // 2), sinusoidal_encoding(w, d // 2)
        for n in range(h * w):
            r, c = divmod(n, w)
            assert torch.equal(pe[n], torch.cat([rows[r], cols[c]]))


def test_the_course_encoding_interleaves_sin_and_cos():
    """The convention the exercise text states: even columns sin, odd columns cos."""
    pe = sinusoidal_encoding(5, 8, dtype=torch.float64)
    pos = torch.arange(5, dtype=torch.float64)[:, None]
    omega = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    torch.testing.assert_close(pe[:, 0::2], torch.sin(pos * omega))
    torch.testing.assert_close(pe[:, 1::2], torch.cos(pos * omega))


def test_positions_cases_hold_what_the_diagnoses_need():
    grids = [(c.inputs["grid_h"], c.inputs["grid_w"], c.inputs["d_model"])
             for c in POSITIONS.cases()]
    assert all(d % 4 == 0 for _, _, d in grids)
    assert any(h < w for h, w, _ in grids) and any(h > w for h, w, _ in grids)
    assert any(h == w for h, w, _ in grids)
    assert any(d >= 16 for *_, d in grids)  # several frequencies per half


def test_positions_accepts_float64(capsys):
    check_patch_positions_2d(lambda h, w, d: positions(h, w, d).double())
    assert capsys.readouterr().out.startswith("✅")
