r"""Graph attention networks (Veličković et al., 2018): the adjacency with self-loops *is* the mask.

A graph of ``N`` nodes is a set of ``N`` tokens whose attention pattern is given, not learned:
node ``i`` attends to itself and to the nodes with an edge into it. One head of a
:class:`GATLayer` computes, for node features :math:`h_i` and a shared projection :math:`W`,

.. math::

    e_{ij} = \mathrm{LeakyReLU}\big(a_{dst}^\top W h_i + a_{src}^\top W h_j\big), \qquad
    \alpha_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}(e_{ij}), \qquad
    h_i' = \textstyle\sum_j \alpha_{ij} W h_j

— the paper's :math:`a^\top [W h_i \,\|\, W h_j]` with :math:`a = [a_{dst} \,\|\, a_{src}]`.
The softmax over neighbours is the course's :func:`~attention_course.attention.masked_softmax`
with the mask :func:`adjacency_mask`: ``True`` where ``j`` is a neighbour of ``i`` or ``i``
itself. The score is additive, like Bahdanau's (a one-layer network of query and key), but its
non-linearity comes after the sum, so it splits into a query part and a key part.

Edge direction follows PyTorch Geometric: ``edge_index[:, e] = (j, i)`` is an edge from source
``j`` to target ``i``, and the target aggregates its sources, so ``i`` attends to ``j``. An
undirected graph lists each edge in both directions.

=========================  ========================  ==================================
paper                      here                      ``torch_geometric.nn.GATConv``
=========================  ========================  ==================================
:math:`W` (``H F' x F``)   ``W`` (``nn.Linear``)     ``lin`` (``lin.weight``)
:math:`a` (first half)     ``att_dst`` ``(H, F')``   ``att_dst`` ``(1, H, F')``
:math:`a` (second half)    ``att_src`` ``(H, F')``   ``att_src`` ``(1, H, F')``
:math:`K` heads            ``num_heads``             ``heads``
=========================  ========================  ==================================

Attention is dense here: ``(H, N, N)`` weights, fine for the small graphs of the course (PyG
stores one weight per edge instead). Duplicate edges collapse into one ``True`` of the mask
(PyG would count them twice in its softmax).

Shape legend: ``N`` nodes, ``E`` edges, ``F`` input features, ``F'`` = ``out_features`` per
head, ``H`` heads, ``C`` classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_int,
    check_like_module,
    check_same_device,
    check_tensor,
)
from attention_course.attention import masked_softmax

__all__ = ["adjacency_mask", "GATLayer", "GAT"]


def adjacency_mask(edge_index: torch.Tensor, num_nodes: int, *,
                   self_loops: bool = True) -> torch.Tensor:
    """Boolean attention mask of a graph: ``mask[i, j]`` is ``True`` when
    node ``i`` may attend to node ``j``.

    ``edge_index`` ``(2, E)`` integer, one column ``(source j, target i)``
    per edge (PyTorch Geometric's convention: the target attends to its
    sources); returns ``(N, N)``, ``N = num_nodes``, on ``edge_index``'s
    device. ``self_loops=True`` also lets every node attend to itself, as GAT
    does; with ``False`` only edges ``i → i`` listed in ``edge_index`` are on
    the diagonal. Duplicate edges give the same single ``True``.
    """
    check_int("num_nodes", num_nodes, minimum=0)
    check_bool("self_loops", self_loops)
    check_edge_index(edge_index, num_nodes)
    mask = torch.zeros(num_nodes, num_nodes, dtype=torch.bool,
                       device=edge_index.device)  # (N, N)
    source, target = edge_index  # (E,), (E,)
    mask[target, source] = True  # row: who attends; column: a neighbour
    if self_loops:
        mask.fill_diagonal_(True)
    return mask


def check_edge_index(edge_index, num_nodes: int, name: str = "edge_index") -> None:
    """Raise unless ``edge_index`` is an integer ``(2, E)`` tensor of node ids in
    ``[0, num_nodes)``."""
    check_tensor(name, edge_index, integer=True)
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{name} must have shape (2, E): row 0 the source nodes, row 1 the "
                         f"targets; got shape {tuple(edge_index.shape)}")
    if not edge_index.numel() or edge_index.device.type == "meta":
        return
    low, high = (int(t) for t in torch.aminmax(edge_index))
    if low < 0 or high >= num_nodes:
        raise ValueError(f"{name} has node ids in [{low}, {high}]; expected ids in "
                         f"[0, {num_nodes - 1}] (the graph has num_nodes={num_nodes} nodes)")


class GATLayer(nn.Module):
    r"""One graph attention layer: ``H`` heads of masked additive attention over neighbours.

    ``GATLayer(in_features, out_features, num_heads, *, concat=True, negative_slope=0.2,
    dropout=0.0, bias=True)``. ``concat=True`` concatenates the heads (``H * F'`` outputs, the
    paper's hidden layers); ``False`` averages them (``F'`` outputs, its output layer).
    ``negative_slope`` is the LeakyReLU's; ``dropout`` is applied to the normalised attention
    coefficients in training (as in the paper and PyG). Initialisation as in PyG: Glorot for
    ``W``, ``att_src`` and ``att_dst``, zero bias.

    ``forward(x, graph, *, need_weights=False)`` → ``(output (N, H * F') or (N, F'), weights
    (H, N, N) or None)``; ``weights[h, i, j]`` is :math:`\alpha_{ij}` of head ``h``, exactly 0
    where ``graph`` does not let ``i`` attend to ``j``.
    """

    def __init__(self, in_features: int, out_features: int, num_heads: int, *,
                 concat: bool = True, negative_slope: float = 0.2, dropout: float = 0.0,
                 bias: bool = True):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("num_heads", num_heads)):
            check_int(name, value, minimum=1)
        check_bool("concat", concat)
        check_bool("bias", bias)
        self.negative_slope = check_float("negative_slope", negative_slope, minimum=0.0)
        self.dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0,
                                   include_maximum=False)
        self.in_features, self.out_features, self.num_heads = in_features, out_features, num_heads
        self.concat = concat
        H, Fo = num_heads, out_features
        self.W = nn.Linear(in_features, H * Fo, bias=False)  # all heads' W, stacked
        self.att_src = nn.Parameter(torch.empty(H, Fo))  # a_src: scores the neighbour j
        self.att_dst = nn.Parameter(torch.empty(H, Fo))  # a_dst: scores the attending node i
        self.bias = nn.Parameter(torch.empty(H * Fo if concat else Fo)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyG's initialisation: Glorot (Xavier) uniform weights, zero bias."""
        nn.init.xavier_uniform_(self.W.weight)
        nn.init.xavier_uniform_(self.att_src)  # bound sqrt(6 / (H + F')), as PyG's glorot
        nn.init.xavier_uniform_(self.att_dst)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def output_features(self) -> int:
        """Size of each node's output: ``H * F'`` when concatenating heads, else ``F'``."""
        return self.num_heads * self.out_features if self.concat else self.out_features

    def check_inputs(self, x, graph, need_weights=False) -> torch.Tensor:
        """Check ``forward``'s arguments (errors name them); return the ``(N, N)`` mask."""
        check_tensor("x", x, ndim=2, floating=True)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (N, {self.in_features}) "
                             f"(in_features={self.in_features}), got {tuple(x.shape)}")
        check_like_module("x", x, self.W.weight)
        check_bool("need_weights", need_weights)
        return graph_mask(graph, x.shape[0], x.device)

    def forward(self, x: torch.Tensor, graph: torch.Tensor, *, need_weights: bool = False):
        """``x`` ``(N, F)`` node features; ``graph`` either a boolean mask ``(N, N)`` (``True``
        = may attend, used as given: include the self-loops, e.g. with :func:`adjacency_mask`)
        or an integer ``edge_index`` ``(2, E)`` (source → target), turned into
        ``adjacency_mask(edge_index, N)`` with self-loops.

        Returns ``(output, weights)``: output ``(N, H * F')`` (``concat``) or ``(N, F')``;
        weights ``(H, N, N)`` when ``need_weights`` (before dropout), else ``None``. A node
        with no neighbour in a mask without self-loops gets zero weights and the bias alone.
        """
        mask = self.check_inputs(x, graph, need_weights)
        return self._forward(x, mask, need_weights)

    def _forward(self, x, mask, need_weights=False):
        """``forward`` on checked arguments with the ``(N, N)`` mask."""
        N, H, Fo = x.shape[0], self.num_heads, self.out_features
        Wh = self.W(x).view(N, H, Fo).transpose(0, 1)  # (H, N, F')
        s_src = (Wh * self.att_src[:, None, :]).sum(-1)  # (H, N): a_src^T W h_j
        s_dst = (Wh * self.att_dst[:, None, :]).sum(-1)  # (H, N): a_dst^T W h_i
        e = F.leaky_relu(s_dst[:, :, None] + s_src[:, None, :],
                         self.negative_slope)  # (H, N, N): e[h, i, j]
        alpha = masked_softmax(e, mask)  # (H, N, N); the mask broadcasts
        attn = F.dropout(alpha, p=self.dropout, training=self.training)
        out = attn @ Wh  # (H, N, N) @ (H, N, F') -> (H, N, F')
        if self.concat:
            out = out.transpose(0, 1).reshape(N, H * Fo)  # (N, H * F')
        else:
            out = out.mean(dim=0)  # (N, F')
        if self.bias is not None:
            out = out + self.bias
        return out, (alpha if need_weights else None)

    @classmethod
    def from_torch_geometric(cls, conv) -> GATLayer:
        """An exact copy of a ``torch_geometric.nn.GATConv`` (PyG 2.x): same weights, dtype and
        device.

        Supported: one ``in_channels`` (a shared ``lin``), ``add_self_loops=True``, no
        ``edge_dim``, no ``residual``; any ``heads``, ``concat``, ``negative_slope``,
        ``dropout`` and ``bias``. ``torch_geometric`` is not imported: any object with these
        attributes is read. Copies agree with ``conv`` on graphs without duplicate edges.
        """
        needed = ("lin", "att_src", "att_dst", "heads", "out_channels", "concat",
                  "negative_slope", "dropout", "add_self_loops")
        missing = [name for name in needed if not hasattr(conv, name)]
        if missing or not isinstance(conv, nn.Module):
            raise TypeError(f"conv must be a torch_geometric.nn.GATConv, got "
                            f"{type(conv).__name__} (missing {missing})")
        if conv.lin is None:
            raise ValueError("conv has separate lin_src and lin_dst (in_channels given as a "
                             "pair, for bipartite graphs); GATLayer shares one W: expected "
                             "GATConv(in_channels: int, ...)")
        if not conv.add_self_loops:
            raise ValueError("conv has add_self_loops=False; GATLayer builds its mask with "
                             "self-loops from an edge_index: expected add_self_loops=True")
        if getattr(conv, "lin_edge", None) is not None:
            raise ValueError("conv has edge features (edge_dim is not None); GATLayer has none: "
                             "expected edge_dim=None")
        if getattr(conv, "res", None) is not None:
            raise ValueError("conv has residual=True; GATLayer has no residual connection: "
                             "expected residual=False")
        weight = conv.lin.weight  # (H * F', F)
        layer = cls(weight.shape[1], conv.out_channels, conv.heads, concat=conv.concat,
                    negative_slope=conv.negative_slope, dropout=conv.dropout,
                    bias=conv.bias is not None)
        layer = layer.to(dtype=weight.dtype, device=weight.device)
        H, Fo = conv.heads, conv.out_channels
        with torch.no_grad():
            layer.W.weight.copy_(weight)
            layer.att_src.copy_(conv.att_src.reshape(H, Fo))
            layer.att_dst.copy_(conv.att_dst.reshape(H, Fo))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer.train(conv.training)


def graph_mask(graph, num_nodes: int, device: torch.device) -> torch.Tensor:
    """The ``(N, N)`` mask of ``graph``: a boolean mask as given, or an ``edge_index``'s
    :func:`adjacency_mask` with self-loops (checked; errors name ``graph``)."""
    check_tensor("graph", graph)
    check_same_device("graph", graph, "x", device)
    if graph.dtype == torch.bool:
        if tuple(graph.shape) != (num_nodes, num_nodes):
            raise ValueError(f"graph is a boolean mask of shape {tuple(graph.shape)}; expected "
                             f"(N, N) = ({num_nodes}, {num_nodes}) for x with N={num_nodes} "
                             f"nodes")
        return graph
    if graph.is_floating_point() or graph.is_complex():
        raise TypeError(f"graph must be a boolean (N, N) mask or an integer (2, E) edge_index, "
                        f"got dtype {graph.dtype}")
    check_edge_index(graph, num_nodes, name="graph")
    return adjacency_mask(graph, num_nodes)


class GAT(nn.Module):
    """The paper's two-layer GAT for node classification.

    ``GAT(in_features, hidden_features, num_classes, *, num_heads=8, out_heads=1,
    dropout=0.6, negative_slope=0.2)``: ``layer1`` = ``num_heads`` heads of
    ``hidden_features``, concatenated, then ELU; ``layer2`` = ``out_heads`` heads of
    ``num_classes``, averaged, giving the logits. ``dropout`` is applied in training to each
    layer's input and to its attention coefficients (the paper uses 0.6 for both).

    ``forward(x, graph, *, need_weights=False)`` → ``(logits (N, C), weights or None)``;
    weights are a list with one dict per layer, ``{"self_attn": (H_l, N, N)}``, the layer next
    to the input first. ``graph`` is a mask or an ``edge_index`` (see :meth:`GATLayer.forward`).
    """

    def __init__(self, in_features: int, hidden_features: int, num_classes: int, *,
                 num_heads: int = 8, out_heads: int = 1, dropout: float = 0.6,
                 negative_slope: float = 0.2):
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden_features", hidden_features),
                            ("num_classes", num_classes), ("num_heads", num_heads),
                            ("out_heads", out_heads)):
            check_int(name, value, minimum=1)
        self.dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0,
                                   include_maximum=False)
        self.layer1 = GATLayer(in_features, hidden_features, num_heads, concat=True,
                               negative_slope=negative_slope, dropout=dropout)
        self.layer2 = GATLayer(num_heads * hidden_features, num_classes, out_heads,
                               concat=False, negative_slope=negative_slope, dropout=dropout)

    def forward(self, x: torch.Tensor, graph: torch.Tensor, *, need_weights: bool = False):
        """``x`` ``(N, F)``, ``graph`` a mask ``(N, N)`` or ``edge_index`` ``(2, E)`` →
        ``(logits (N, C), [{"self_attn": (H, N, N)}, {"self_attn": (out_heads, N, N)}] or
        None)``."""
        mask = self.layer1.check_inputs(x, graph, need_weights)
        h = F.dropout(x, p=self.dropout, training=self.training)  # (N, F)
        h, w1 = self.layer1._forward(h, mask, need_weights)  # (N, H * F_hidden)
        h = F.dropout(F.elu(h), p=self.dropout, training=self.training)
        logits, w2 = self.layer2._forward(h, mask, need_weights)  # (N, C)
        weights = [{"self_attn": w1}, {"self_attn": w2}] if need_weights else None
        return logits, weights
