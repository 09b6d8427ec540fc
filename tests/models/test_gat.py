"""Graph attention: the adjacency mask, attention only along edges, a hand-run of the paper's
formula, exact equality (outputs, coefficients, gradients) with PyTorch Geometric's GATConv in
float64, training, and argument checks in the caller's words."""

import pytest
import torch
import torch.nn.functional as F

from attention_course.models.gat import GAT, GATLayer, adjacency_mask
from attention_course.train import train

F64 = torch.float64
TOL = 1e-12


def random_graph(N, E, seed):
    """A random directed graph without duplicate edges (some self-loops allowed)."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(N, (2, E), generator=g)
    pairs = torch.unique(pairs, dim=1)  # no duplicates
    return pairs[:, torch.randperm(pairs.shape[1], generator=g)]  # (2, E')


def features(N, Fin, seed=1):
    return torch.randn(N, Fin, dtype=F64, generator=torch.Generator().manual_seed(seed))


# --- adjacency_mask ----------------------------------------------------------------------


def test_adjacency_mask_directed_edges_and_self_loops():
    edge_index = torch.tensor([[0, 1, 3],   # sources
                               [1, 2, 1]])  # targets: 0->1, 1->2, 3->1
    mask = adjacency_mask(edge_index, 4)
    expected = torch.eye(4, dtype=torch.bool)
    expected[1, 0] = expected[2, 1] = expected[1, 3] = True  # target attends to source
    assert torch.equal(mask, expected)
    assert not mask[0, 1]  # the edge 0->1 does not let 0 attend to 1
    no_loops = adjacency_mask(edge_index, 4, self_loops=False)
    assert torch.equal(no_loops, expected & ~torch.eye(4, dtype=torch.bool))


def test_adjacency_mask_duplicates_and_listed_self_loops():
    edge_index = torch.tensor([[0, 0, 0, 2], [1, 1, 1, 2]])
    once = adjacency_mask(torch.tensor([[0, 2], [1, 2]]), 3, self_loops=False)
    assert torch.equal(adjacency_mask(edge_index, 3, self_loops=False), once)
    assert once[2, 2] and not once[0, 0]  # a listed loop stays; no others are added
    assert adjacency_mask(torch.empty(2, 0, dtype=torch.long), 3).equal(
        torch.eye(3, dtype=torch.bool))


@pytest.mark.parametrize("edge_index, error, match", [
    (torch.tensor([[0, 5], [1, 2]]), ValueError, r"ids in \[0, 5\].*\[0, 4\].*num_nodes=5"),
    (torch.tensor([[0, -1], [1, 2]]), ValueError, r"ids in \[-1, 2\]"),
    (torch.tensor([[0, 1, 2]]), ValueError, r"shape \(2, E\).*got shape \(1, 3\)"),
    (torch.tensor([0, 1]), ValueError, r"shape \(2, E\).*got shape \(2,\)"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), TypeError, "integer.*float32"),
    ([[0, 1], [1, 2]], TypeError, "torch.Tensor, got list"),
])
def test_bad_edge_index_is_rejected(edge_index, error, match):
    with pytest.raises(error, match="^edge_index .*" + match):
        adjacency_mask(edge_index, 5)
    layer = GATLayer(3, 2, 2).double()
    with pytest.raises(error, match="^graph .*" + match):  # named as the layer's argument
        layer(features(5, 3), edge_index)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="num_nodes must be >= 0"):
        adjacency_mask(torch.zeros(2, 1, dtype=torch.long), -1)
    layer = GATLayer(3, 2, 2).double()
    x = features(4, 3)
    with pytest.raises(ValueError, match=r"graph is a boolean mask of shape \(3, 3\).*\(4, 4\)"):
        layer(x, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="graph must be a boolean .* got dtype torch.float64"):
        layer(x, torch.ones(4, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\).*got \(4, 5\)"):
        layer(features(4, 5), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="x has dtype torch.float32"):
        layer(x.float(), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_heads must be >= 1"):
        GATLayer(3, 2, 0)
    with pytest.raises(ValueError, match="dropout must be in"):
        GATLayer(3, 2, 1, dropout=1.0)


# --- the layer ---------------------------------------------------------------------------


def hand_run(layer, x, mask):
    """The paper's formula node by node: e_ij = LeakyReLU(a^T [W h_i || W h_j]) over j with
    mask[i, j], softmax, weighted sum; heads concatenated or averaged, then the bias."""
    N, H, Fo = x.shape[0], layer.num_heads, layer.out_features
    Wh = (x @ layer.W.weight.T).view(N, H, Fo)
    alpha = torch.zeros(H, N, N, dtype=x.dtype)
    out = torch.zeros(N, H, Fo, dtype=x.dtype)
    for h in range(H):
        a = torch.cat([layer.att_dst[h], layer.att_src[h]])  # a = [a_dst || a_src]
        for i in range(N):
            js = mask[i].nonzero().flatten().tolist()
            e = torch.stack([F.leaky_relu(a @ torch.cat([Wh[i, h], Wh[j, h]]),
                                          layer.negative_slope) for j in js])
            alpha[h, i, js] = torch.softmax(e, 0)
            out[i, h] = sum(alpha[h, i, j] * Wh[j, h] for j in js)
    out = out.reshape(N, H * Fo) if layer.concat else out.mean(1)
    return out + layer.bias, alpha


@pytest.mark.parametrize("concat", [True, False])
def test_layer_matches_hand_run_of_the_paper(concat):
    torch.manual_seed(0)
    layer = GATLayer(5, 3, 2, concat=concat, negative_slope=0.1).double()
    torch.nn.init.normal_(layer.bias)
    edge_index, x = random_graph(7, 15, seed=2), features(7, 5)
    out, weights = layer(x, edge_index, need_weights=True)
    expected_out, expected_weights = hand_run(layer, x, adjacency_mask(edge_index, 7))
    assert out.shape == (7, 6 if concat else 3) and weights.shape == (2, 7, 7)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=TOL)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=TOL)


def test_a_node_never_attends_to_a_non_neighbour():
    torch.manual_seed(0)
    layer = GATLayer(4, 3, 3).double()
    edge_index, x = random_graph(10, 20, seed=3), features(10, 4)
    mask = adjacency_mask(edge_index, 10)
    out, weights = layer(x, mask, need_weights=True)
    assert (weights[:, ~mask] == 0).all()  # exactly zero, every head
    assert (weights[:, mask] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 10, dtype=F64), rtol=0, atol=TOL)
    i = 0
    strangers = (~mask[i]).nonzero().flatten()
    assert len(strangers) > 0
    x2 = x.clone()
    x2[strangers] += 100.0  # change every non-neighbour of node i
    assert torch.equal(layer(x2, mask)[0][i], out[i])  # node i's output cannot tell


def test_node_without_neighbours_gets_zero_weights_and_the_bias():
    layer = GATLayer(3, 2, 2).double()
    torch.nn.init.normal_(layer.bias)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 1] = True
    out, weights = layer(features(3, 3), mask, need_weights=True)
    assert torch.equal(weights[:, 1:], torch.zeros(2, 2, 3, dtype=F64))
    assert torch.equal(out[1:], layer.bias.detach().expand(2, 4))


def test_weights_only_on_request_and_dropout_only_in_training():
    layer = GATLayer(3, 2, 2, dropout=0.5).double()
    x, edge_index = features(6, 3), random_graph(6, 12, seed=4)
    assert layer.eval()(x, edge_index)[1] is None
    assert torch.equal(layer(x, edge_index)[0], layer(x, edge_index)[0])
    layer.train()
    torch.manual_seed(0)
    a = layer(x, edge_index)[0]
    assert not torch.equal(a, layer(x, edge_index)[0])  # attention dropout is random


# --- equality with PyTorch Geometric -------------------------------------------------------


def pyg_conv(Fin, Fo, H, concat, seed, **kwargs):
    gat_conv = pytest.importorskip("torch_geometric.nn").GATConv
    torch.manual_seed(seed)
    conv = gat_conv(Fin, Fo, heads=H, concat=concat, **kwargs).double()
    if conv.bias is not None:
        torch.nn.init.normal_(conv.bias)  # PyG starts at zero: make the bias count
    return conv


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("H", [1, 2, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_equal_to_torch_geometric(concat, H, seed):
    N = 12
    conv = pyg_conv(5, 3, H, concat, seed, negative_slope=0.15)
    layer = GATLayer.from_torch_geometric(conv)
    assert (layer.num_heads, layer.concat, layer.negative_slope) == (H, concat, 0.15)
    edge_index, x = random_graph(N, 40, seed=10 + seed), features(N, 5, seed)
    expected, (pyg_edges, pyg_alpha) = conv(x, edge_index, return_attention_weights=True)
    for graph in (edge_index, adjacency_mask(edge_index, N)):
        out, weights = layer(x, graph, need_weights=True)
        assert out.dtype == F64
        assert (out - expected).abs().max() < TOL
        source, target = pyg_edges  # PyG: one coefficient per edge (self-loops added), (E, H)
        assert (weights[:, target, source].T - pyg_alpha).abs().max() < TOL
        assert torch.equal(adjacency_mask(pyg_edges, N), adjacency_mask(edge_index, N))


@pytest.mark.parametrize("concat", [True, False])
def test_gradients_equal_to_torch_geometric(concat):
    N, H = 10, 3
    conv = pyg_conv(4, 5, H, concat, seed=3)
    layer = GATLayer.from_torch_geometric(conv)
    edge_index = random_graph(N, 30, seed=5)
    x = features(N, 4).requires_grad_()
    x_copy = x.detach().clone().requires_grad_()
    r = torch.randn(N, H * 5 if concat else 5, dtype=F64,
                    generator=torch.Generator().manual_seed(0))
    (conv(x, edge_index) * r).sum().backward()
    (layer(x_copy, edge_index)[0] * r).sum().backward()
    pairs = [(x.grad, x_copy.grad), (conv.lin.weight.grad, layer.W.weight.grad),
             (conv.att_src.grad.reshape(H, 5), layer.att_src.grad),
             (conv.att_dst.grad.reshape(H, 5), layer.att_dst.grad),
             (conv.bias.grad, layer.bias.grad)]
    for expected, got in pairs:
        assert expected.abs().max() > 0
        assert (got - expected).abs().max() < TOL


def test_copy_without_bias_and_unsupported_convs_refused():
    conv = pyg_conv(4, 2, 2, True, seed=0, bias=False)
    layer = GATLayer.from_torch_geometric(conv)
    assert layer.bias is None
    x, edge_index = features(5, 4), random_graph(5, 8, seed=0)
    assert (layer(x, edge_index)[0] - conv(x, edge_index)).abs().max() < TOL
    gat_conv = type(conv)
    with pytest.raises(ValueError, match="add_self_loops=False"):
        GATLayer.from_torch_geometric(gat_conv(4, 2, add_self_loops=False))
    with pytest.raises(ValueError, match="lin_src and lin_dst"):
        GATLayer.from_torch_geometric(gat_conv((4, 3), 2))
    with pytest.raises(ValueError, match="edge_dim"):
        GATLayer.from_torch_geometric(gat_conv(4, 2, edge_dim=3))
    with pytest.raises(TypeError, match="conv must be a torch_geometric.nn.GATConv, got Linear"):
        GATLayer.from_torch_geometric(torch.nn.Linear(2, 2))


# --- the model -----------------------------------------------------------------------------


def two_communities(N=16, seed=0):
    """Two dense communities joined by one edge; labels = community; one-hot features."""
    g = torch.Generator().manual_seed(seed)
    half = N // 2
    labels = (torch.arange(N) >= half).long()
    same = labels[:, None] == labels[None, :]
    keep = (torch.rand(N, N, generator=g) < 0.5) & same
    keep[0, half] = True
    source, target = (keep | keep.T).nonzero().T
    return torch.stack([source, target]), labels


def test_gat_weights_per_layer_and_training_lowers_the_loss():
    edge_index, labels = two_communities()
    N = labels.shape[0]
    x = torch.eye(N)
    torch.manual_seed(0)
    model = GAT(N, 4, 2, num_heads=3, out_heads=2)
    logits, weights = model.eval()(x, edge_index, need_weights=True)
    assert logits.shape == (N, 2)
    assert [w["self_attn"].shape for w in weights] == [(3, N, N), (2, N, N)]
    mask = adjacency_mask(edge_index, N)
    assert all((w["self_attn"][:, ~mask] == 0).all() for w in weights)
    labelled = torch.tensor([0, 1, N - 2, N - 1])

    def loss_fn(m, _):
        return F.cross_entropy(m(x, mask)[0][labelled], labels[labelled])

    with torch.no_grad():
        before = loss_fn(model, None).item()
    result = train(model, loss_fn, lambda g: None, steps=60, lr=0.01, seed=0)
    with torch.no_grad():
        after = loss_fn(model, None).item()
        accuracy = (model(x, mask)[0].argmax(1) == labels).float().mean().item()
    assert after < 0.5 * before
    assert result.losses[-1] < result.losses[0]
    assert accuracy >= 0.9
