"""Measuring attention models: captured weights, head statistics, sensitivity and slope fits.

Small pure functions that the chapters share. They take tensors (or a function and its input)
and return tensors or floats; none of them changes a module or keeps state.

- **Captured weights.** Layers, stacks and models return their attention weights on request
  (``need_weights=True``): a stack returns one ``dict`` per layer, e.g.
  ``{"self_attn": (B, H, Lq, Lk), "cross_attn": (B, H, Lq, Lk)}``. :func:`stack_weights` turns
  such a list into one ``(N, B, H, Lq, Lk)`` tensor.
- **Head statistics** (what Chapter 6 uses to name heads): :func:`attention_entropy` (how spread
  out a row is), :func:`weight_on_offset` (previous-token and other positional heads),
  :func:`argmax_alignment` (how often the largest weight sits where it should).
- **Sensitivity**: :func:`input_sensitivity` (Jacobian norms of one output vector per input
  position), :func:`gradient_by_distance` (gradient of the last output by distance),
  :func:`dependency_matrix` (which inputs each output depends on at all),
  :func:`reach_by_layer` and :func:`layers_needed` (how far information travels through stacked
  self-attention layers under a mask).
- **Slope fits**: :func:`factor_per_step`, the factor by which a quantity changes per step of a
  geometric trend (least squares on the logarithm).

Shape legend: ``N`` layers, ``B`` batch, ``H`` heads, ``Lq`` queries, ``Lk`` keys, ``L`` (input)
sequence length, ``T`` output sequence length, ``I``/``E`` features, ``O`` output features.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from attention_course._checks import check_bool, check_int, check_tensor
from attention_course.attention import scaled_dot_product_attention

__all__ = [
    "stack_weights",
    "attention_entropy",
    "weight_on_offset",
    "argmax_alignment",
    "input_sensitivity",
    "gradient_by_distance",
    "dependency_matrix",
    "reach_by_layer",
    "layers_needed",
    "factor_per_step",
]


# --- captured weights ------------------------------------------------------------------------


def stack_weights(per_layer: Sequence[Mapping[str, torch.Tensor]], key: str) -> torch.Tensor:
    """Stack one kind of attention weights from every layer into one tensor.

    Args:
        per_layer: one mapping per layer, as a stack returns it with ``need_weights=True``
            (e.g. ``weights["decoder"]`` of the Transformer), each holding ``key`` with weights
            ``(B, H, Lq, Lk)``.
        key: which weights to take, e.g. ``"self_attn"`` or ``"cross_attn"``.

    Returns:
        ``(N, B, H, Lq, Lk)``: layer ``n``'s weights at index ``n`` (the layer next to the input
        first).
    """
    if isinstance(per_layer, Mapping) or not isinstance(per_layer, Sequence):
        raise TypeError(f"per_layer must be a list with one dict of weights per layer, got "
                        f"{type(per_layer).__name__}")
    if not isinstance(key, str):
        raise TypeError(f"key must be a str such as 'self_attn', got {type(key).__name__} "
                        f"{key!r}")
    if len(per_layer) == 0:
        raise ValueError("per_layer is empty; expected one dict of weights per layer")
    tensors = []
    for n, layer in enumerate(per_layer):
        if not isinstance(layer, Mapping):
            raise TypeError(f"per_layer[{n}] must be a dict of weights, got "
                            f"{type(layer).__name__}")
        if key not in layer:
            raise ValueError(f"per_layer[{n}] has no {key!r} weights; it has {sorted(layer)}")
        weights = layer[key]
        if weights is None:
            raise ValueError(f"per_layer[{n}][{key!r}] is None; call the model or stack with "
                             f"need_weights=True to get the weights")
        check_tensor(f"per_layer[{n}][{key!r}]", weights, ndim=4, floating=True)
        if tensors and weights.shape != tensors[0].shape:
            raise ValueError(f"per_layer[{n}][{key!r}] has shape {tuple(weights.shape)} but "
                             f"per_layer[0][{key!r}] has {tuple(tensors[0].shape)}; expected "
                             f"the same (B, H, Lq, Lk) in every layer")
        tensors.append(weights)
    return torch.stack(tensors)  # (N, B, H, Lq, Lk)


# --- head statistics -------------------------------------------------------------------------


def _check_weights(name: str, weights, *, min_ndim: int) -> None:
    check_tensor(name, weights, min_ndim=min_ndim, floating=True)
    if (weights < 0).any():
        raise ValueError(f"{name} must be attention weights (non-negative), got a smallest "
                         f"entry of {weights.min().item():.3g}")


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of attention weights, in nats.

    ``H(alpha) = -sum_j alpha_j log alpha_j``: 0 for a one-hot row (all weight on one key),
    ``log(Lk)`` for a uniform row. A row of zeros (a query whose keys are all masked) gets 0.

    Args:
        weights: ``(..., Lk)``, non-negative, each row summing to 1 (or all zero).

    Returns:
        ``(...)``: one entropy per row; average it over queries, examples or heads as needed.
    """
    _check_weights("weights", weights, min_ndim=1)
    # 0 log 0 = 0: clamping keeps log finite, and the product is 0 wherever the weight is.
    return -(weights * weights.clamp_min(1e-30).log()).sum(dim=-1)  # (...)


def weight_on_offset(weights: torch.Tensor, offset: int, *, wrap: bool = False) -> torch.Tensor:
    """Mean weight each head puts on the key ``offset`` positions from its query.

    For query ``i`` the key is ``i + offset`` (``offset=-1``: the previous token, ``0``: itself).
    A head that always attends there scores 1. Without ``wrap``, queries whose key
    ``i + offset`` lies outside ``0 … L-1`` are left out of the mean; with ``wrap=True`` the
    positions are taken modulo ``L`` (a circular sequence) and every query counts.

    Args:
        weights: self-attention weights ``(*, B, H, L, L)``; ``*`` may hold more leading
            dimensions, e.g. the layers of :func:`stack_weights`.
        offset: key position relative to the query.
        wrap: count positions modulo ``L``.

    Returns:
        ``(*, H)``: the mean over the batch and over the queries.
    """
    check_tensor("weights", weights, min_ndim=4, floating=True)
    if weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be self-attention weights (*, B, H, L, L) with as many "
                         f"queries as keys, got shape {tuple(weights.shape)}")
    check_int("offset", offset)
    check_bool("wrap", wrap)
    L = weights.shape[-1]
    if wrap:
        queries = torch.arange(L, device=weights.device)  # (L,)
        keys = (queries + offset) % L  # (L,)
    else:
        if abs(offset) >= L:
            raise ValueError(f"offset={offset} leaves no query with a key at i + offset in a "
                             f"sequence of length L={L}; expected |offset| < {L} (or wrap=True)")
        queries = torch.arange(max(0, -offset), min(L, L - offset), device=weights.device)
        keys = queries + offset  # (L - |offset|,)
    on_key = weights[..., queries, keys]  # (*, B, H, queries): weight of query i on key i+offset
    return on_key.mean(dim=(-3, -1))  # (*, H)


def argmax_alignment(
    weights: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Fraction of queries whose largest weight sits on their target key.

    Args:
        weights: ``(..., Lq, Lk)`` attention weights (e.g. a decoder's cross-attention).
        target: integer ``(..., Lq)`` (or broadcastable to it, e.g. ``(Lq,)``): the key each
            query should attend to, in ``0 … Lk-1``.
        mask: optional boolean ``(..., Lq)`` (or broadcastable): the queries to count, e.g.
            the output steps of real tokens; ``None`` counts every query.

    Returns:
        A 0-dim float64 tensor in ``[0, 1]``.
    """
    check_tensor("weights", weights, min_ndim=1, floating=True)
    check_tensor("target", target, integer=True)
    rows = weights.shape[:-1]  # (..., Lq)
    Lk = weights.shape[-1]
    if target.dim() > len(rows) or any(
        t not in (1, r) for t, r in zip(reversed(target.shape), reversed(rows), strict=False)
    ):
        raise ValueError(f"target has shape {tuple(target.shape)}; expected one key index per "
                         f"query, broadcastable to {tuple(rows)} (the weights' shape without Lk)")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= Lk):
        raise ValueError(f"target has key indices in [{int(target.min())}, "
                         f"{int(target.max())}]; expected indices in [0, {Lk - 1}] (Lk={Lk})")
    if mask is not None:
        check_tensor("mask", mask, dtype=torch.bool)
        if mask.dim() > len(rows) or any(
            m not in (1, r) for m, r in zip(reversed(mask.shape), reversed(rows), strict=False)
        ):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; expected one flag per query, "
                             f"broadcastable to {tuple(rows)} (the weights' shape without Lk)")
        if not mask.any():
            raise ValueError("mask selects no query; expected at least one True entry")
    hits = weights.argmax(dim=-1) == target  # (..., Lq): the peak is on the target key
    if mask is not None:
        hits = hits[mask.expand_as(hits)]  # (number of counted queries,)
    return hits.double().mean()  # ()


# --- sensitivity -----------------------------------------------------------------------------


def _check_sequence_input(x) -> None:
    check_tensor("x", x, ndim=3, floating=True)


def _run_on_copy(fn, x: torch.Tensor, mapping: str, *, min_ndim: int):
    """Check ``fn`` and ``x``, run ``fn`` on a copy of ``x`` that requires grad → ``(inputs,
    output)``; ``output`` must be floating with the batch size of ``x``."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable mapping {mapping}, got {type(fn).__name__}")
    _check_sequence_input(x)
    inputs = x.detach().clone().requires_grad_(True)  # (B, L, E): x itself is not touched
    output = fn(inputs)
    check_tensor("fn(x)", output, min_ndim=min_ndim, floating=True)
    if output.shape[0] != x.shape[0]:
        raise ValueError(f"fn(x) has shape {tuple(output.shape)} for a batch of {x.shape[0]}; "
                         f"expected {mapping.split(' to ')[1]} with B={x.shape[0]}")
    return inputs, output


def input_sensitivity(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Size of the Jacobian of one output vector with respect to each input position.

    For every example ``b`` and position ``t`` this is the Frobenius norm
    ``|| d fn(x)[b] / d x[b, t] ||``: how strongly the output reacts to a small change of the
    ``t``-th input vector. ``fn`` typically returns a recurrent network's last state, e.g.
    ``lambda h: rnn(h)[0][:, -1]``. One backward pass per output feature gives the whole
    Jacobian; they run as one batch (``is_grads_batched=True``, which uses ``torch.func.vmap``).
    Work in float64 when the values span many orders of magnitude.

    Args:
        fn: maps ``(B, L, I)`` to ``(B, *O)``, each example independently of the others.
        x: ``(B, L, I)`` input (not modified; gradients are taken with respect to a copy).

    Returns:
        ``(B, L)`` Jacobian norms; average over ``B`` for a per-position curve.
    """
    inputs, output = _run_on_copy(fn, x, "(B, L, I) to (B, ...)", min_ndim=1)
    output = output.flatten(1)  # (B, O)
    B, num_out = output.shape
    # Row k of the basis asks for the gradient of output feature k of every example at once.
    basis = torch.eye(num_out, dtype=output.dtype, device=output.device)
    basis = basis.expand(B, num_out, num_out).transpose(0, 1)  # (O, B, O)
    (jac,) = torch.autograd.grad(output, inputs, grad_outputs=basis,
                                 is_grads_batched=True)  # (O, B, L, I): one slice per feature
    return jac.pow(2).sum(dim=(0, 3)).sqrt()  # (B, L)


def gradient_by_distance(fn: Callable[[torch.Tensor], torch.Tensor],
                         x: torch.Tensor) -> torch.Tensor:
    """How strongly the last output position's gradient reaches each input, by distance.

    Computes ``g_i = || d (sum of fn(x)[b, L-1]) / d x[b, i] ||`` (one backward pass; the sum
    over the output features stands in for the whole Jacobian), takes the median over the
    batch, and orders the result by the distance ``L - 1 - i`` between input and output
    position. A recurrent network gives a geometric decay (see :func:`factor_per_step`); one
    self-attention layer gives a flat curve.

    Args:
        fn: a sequence-to-sequence map ``(B, L, E)`` to ``(B, L, E')``.
        x: ``(B, L, E)`` input (not modified).

    Returns:
        ``(L,)``: entry ``d`` belongs to input position ``L - 1 - d`` (distance 0 first).
    """
    inputs, output = _run_on_copy(fn, x, "(B, L, E) to (B, L, E')", min_ndim=2)
    if output.shape[:2] != x.shape[:2]:
        raise ValueError(f"fn(x) has shape {tuple(output.shape)}; expected (B, L, ...) = "
                         f"{tuple(x.shape[:2])} + (...) like its input")
    (grad,) = torch.autograd.grad(output[:, -1].sum(), inputs)  # (B, L, E): last output only
    return grad.norm(dim=-1).median(dim=0).values.flip(0)  # (L,), distance 0 first


def dependency_matrix(fn: Callable[[torch.Tensor], torch.Tensor],
                      x: torch.Tensor) -> torch.Tensor:
    """Which input positions each output position depends on, found with gradients.

    Entry ``(t, s)`` is ``True`` when the gradient of output ``t`` (summed over the batch and
    the features) with respect to input ``s`` is non-zero anywhere. A causal layer gives a lower
    triangle; a bidirectional one, a full matrix.

    Args:
        fn: maps ``(B, L, E)`` to ``(B, T, E')``, e.g. ``lambda h: layer(h, is_causal=True)``.
        x: ``(B, L, E)`` input (not modified).

    Returns:
        ``(T, L)`` bool.
    """
    inputs, output = _run_on_copy(fn, x, "(B, L, E) to (B, T, E')", min_ndim=2)
    T = output.shape[1]
    rows = []
    for t in range(T):
        (grad,) = torch.autograd.grad(output[:, t].sum(), inputs,
                                      retain_graph=t < T - 1)  # (B, L, E)
        rows.append(grad.abs().sum(dim=(0, 2)) > 0)  # (L,)
    return torch.stack(rows)  # (T, L)


def _check_reach_inputs(x, mask) -> None:
    check_tensor("x", x, ndim=2, floating=True)
    if mask is not None:
        n = x.shape[0]
        check_tensor("mask", mask, ndim=2, dtype=torch.bool)
        if mask.shape != (n, n):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; expected ({n}, {n}) for a "
                             f"sequence x of {n} positions (True = may attend)")


def reach_by_layer(x: torch.Tensor, mask: torch.Tensor | None, num_layers: int) -> torch.Tensor:
    """Which inputs reach which outputs through stacked self-attention layers, measured.

    The layers are plain self-attention (no projections): ``h <- Attention(h, h, h, mask)``.
    Input ``j`` reaches output ``i`` after ``k`` layers when changing ``x_j`` (adding 1 to it)
    changes output ``i`` at all. All ``L`` perturbed copies run as one batch.

    Args:
        x: ``(L, E)`` one sequence.
        mask: ``(L, L)`` bool, ``True`` = may attend (e.g. :func:`~attention_course.masks.
            local_mask`), or ``None`` for full attention.
        num_layers: how many layers to stack.

    Returns:
        ``(num_layers, L, L)`` bool: entry ``[k - 1, i, j]`` is ``True`` when output ``i`` of
        layer ``k`` changes with input ``j``.
    """
    _check_reach_inputs(x, mask)
    check_int("num_layers", num_layers, minimum=1)
    n = len(x)
    h = x.repeat(n + 1, 1, 1)  # (n + 1, n, E): version 0 as is, version j + 1 with x_j changed
    h[torch.arange(1, n + 1), torch.arange(n)] += 1.0
    reach = []
    for _ in range(num_layers):
        h, _ = scaled_dot_product_attention(h, h, h, mask=mask)  # (n + 1, n, E)
        changed = (h[1:] != h[0]).any(dim=-1)  # (n, n): [j, i], version j vs the original
        reach.append(changed.T)  # (n, n): [i, j]
    return torch.stack(reach)  # (num_layers, n, n)


def layers_needed(x: torch.Tensor, mask: torch.Tensor | None, *,
                  max_layers: int | None = None) -> int:
    """The fewest stacked self-attention layers after which the last output
    depends on the first input, measured as in :func:`reach_by_layer`.

    Args:
        x: ``(L, E)`` one sequence.
        mask: ``(L, L)`` bool (``True`` = may attend), ``None`` = full.
        max_layers: give up after this many layers (default ``L``) with a
            ``ValueError``: the mask does not connect first and last.

    Returns:
        The number of layers (``0`` when ``L == 1``: the last input is the
        first).
    """
    _check_reach_inputs(x, mask)
    if max_layers is None:
        max_layers = len(x)
    check_int("max_layers", max_layers, minimum=1)
    h = torch.stack([x, x])  # (2, n, E): the sequence, and a copy ...
    h[1, 0] += 1.0  # ... whose first input is changed
    layers = 0
    while torch.equal(h[0, -1], h[1, -1]):  # the last outputs still agree
        if layers == max_layers:
            raise ValueError(
                f"the last output still does not depend on the first input "
                f"after max_layers={max_layers} layers; the mask does not "
                f"connect them")
        h, _ = scaled_dot_product_attention(h, h, h, mask=mask)  # a layer
        layers += 1
    return layers


# --- slope fits ------------------------------------------------------------------------------


def factor_per_step(values: torch.Tensor, *, skip: int = 0) -> float:
    """The factor by which ``values`` change per step, from a least-squares fit on the log.

    Fits ``log(values[d]) ~ a + s * d`` for ``d = skip, …, n-1`` and returns ``exp(s)``: about
    ``0.5`` when every step halves the value, ``1`` when there is no trend. ``skip`` leaves out
    the first entries (e.g. distance 0, or a transient before a geometric decay sets in). The
    fit runs in float64.

    Args:
        values: ``(n,)`` positive, finite, indexed by the step (e.g. the distance).
        skip: how many leading entries to leave out; at least two must remain.

    Returns:
        The fitted factor per step, a float.
    """
    check_tensor("values", values, ndim=1, floating=True)
    check_int("skip", skip, minimum=0)
    n = values.shape[0]
    if n - skip < 2:
        raise ValueError(f"values has {n} entries and skip={skip}; expected at least two "
                         f"entries left to fit a line")
    kept = values[skip:]
    bad = ~(torch.isfinite(kept) & (kept > 0))
    if bad.any():
        index = skip + int(bad.nonzero()[0, 0])
        raise ValueError(f"values must be positive and finite to take their logarithm, got "
                         f"values[{index}] = {values[index].item()!r}")
    d = torch.arange(n)[skip:].double()  # (n - skip,): the steps
    log_v = values.double()[skip:].log()  # (n - skip,)
    slope = ((d - d.mean()) * (log_v - log_v.mean())).sum() / ((d - d.mean()) ** 2).sum()
    return slope.exp().item()



def log_linear_r2(values: torch.Tensor, *, skip: int = 0) -> float:
    """How well a straight line fits ``log(values)``: the R² of the
    least-squares fit behind :func:`factor_per_step`.

    ``1`` when the values follow a geometric trend exactly (a straight line on
    a logarithmic axis); lower when the trend bends (e.g. a decay that levels
    off). A constant sequence is a perfect (flat) line: ``1``.

    Args:
        values: ``(n,)`` positive, finite, indexed by the step.
        skip: how many leading entries to leave out; at least two must remain.

    Returns:
        ``1 - SS_res / SS_tot`` of the fit on ``log(values[skip:])``, a float.
    """
    factor_per_step(values, skip=skip)  # the same checks on the arguments
    d = torch.arange(values.shape[0])[skip:].double()  # (n - skip,)
    log_v = values.double()[skip:].log()  # (n - skip,)
    d_c, log_c = d - d.mean(), log_v - log_v.mean()
    slope = (d_c * log_c).sum() / (d_c ** 2).sum()
    ss_res = ((log_c - slope * d_c) ** 2).sum()
    ss_tot = (log_c ** 2).sum()
    rounding = (1e-12 * log_v.abs().max()) ** 2 * len(log_v)
    if ss_tot <= rounding:  # flat up to rounding: a flat line, fitted exactly
        return 1.0
    return (1 - ss_res / ss_tot).item()


__all__.append("log_linear_r2")


def loglog_slope(x, y) -> float:
    """The exponent ``p`` of a power law ``y ≈ c · x^p``: the least-squares slope of
    ``log y`` against ``log x`` (float64). About 2 for a cost quadratic in ``x``, 1 for a
    linear one (Chapter 7's complexity fits).

    Args:
        x: ``(n,)`` positive sizes (a sequence or a 1-D tensor), not all equal.
        y: ``(n,)`` positive measurements (times, bytes) at those sizes.

    Returns:
        The fitted exponent, a float.
    """
    x, y = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y))
    for name, v in (("x", x), ("y", y)):
        if v.ndim != 1 or len(v) < 2:
            raise ValueError(f"{name} must be 1-D with at least two entries, got shape "
                             f"{tuple(v.shape)}")
        if not (torch.isfinite(v) & (v > 0)).all():
            raise ValueError(f"{name} must be positive and finite to take its logarithm, "
                             f"got {v.tolist()}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    lx, ly = x.log() - x.log().mean(), y.log() - y.log().mean()
    if (lx ** 2).sum() == 0:
        raise ValueError(f"x must not be all equal, got {x.tolist()}")
    return ((lx * ly).sum() / (lx ** 2).sum()).item()


def graph_depth(output: torch.Tensor, input: torch.Tensor) -> int:
    """The number of operations on the longest chain from ``input`` to
    ``output`` in the autograd graph: how many operations must run one after
    another (Vaswani et al.'s "sequential operations"), measured.

    A recurrent layer written step by step has a depth that grows with the
    sequence length; self-attention and convolution a constant one.

    Args:
        output: a tensor computed from ``input`` with autograd recording.
        input: a leaf tensor with ``requires_grad=True``.

    Returns:
        The depth, an int ``>= 1``.
    """
    check_tensor("input", input)
    check_tensor("output", output)
    if not (input.is_leaf and input.requires_grad):
        raise ValueError("input must be a leaf tensor with "
                         "requires_grad=True")
    if output.grad_fn is None:
        raise ValueError("output has no autograd graph: compute it from "
                         "input with grad enabled")
    depth = {}  # node -> longest chain from input (None: not reached)
    stack = [(output.grad_fn, False)]
    while stack:  # iterative: recurrences are deeper than Python's stack
        node, expanded = stack.pop()
        if node in depth:
            continue
        if getattr(node, "variable", None) is input:  # input's AccumulateGrad
            depth[node] = 0
            continue
        children = [c for c, _ in node.next_functions if c is not None]
        if not expanded:  # first visit: children first, then this node
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in depth)
            continue
        reached = [depth[c] for c in children if depth[c] is not None]
        depth[node] = 1 + max(reached) if reached else None
    if depth[output.grad_fn] is None:
        raise ValueError("output does not depend on input through the "
                         "autograd graph")
    return depth[output.grad_fn]


__all__ += ["loglog_slope", "graph_depth"]


# --- head statistics for attention patterns (Chapter 6) --------------------------------------
#
# Each takes self-attention weights ``(*, B, H, T, T)`` (``*``: any leading dimensions, e.g. the
# layers of :func:`stack_weights`), averages over the batch and the counted queries, and returns
# one score per head ``(*, H)``. Ground truth such as ``tokens``, ``partner`` or ``classes`` is
# ``(B, T)``, one entry per position of the sequences the weights came from.

__all__ += ["mean_attention_distance", "previous_token_score", "induction_score",
            "weight_on_partner", "same_class_score"]


def _check_self_attention(weights) -> None:
    _check_weights("weights", weights, min_ndim=4)
    if weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be self-attention weights (*, B, H, T, T) with as many "
                         f"queries as keys, got shape {tuple(weights.shape)}")


def _check_per_position(name: str, x, weights) -> None:
    """``x`` must be an integer ``(B, T)`` tensor matching weights ``(*, B, H, T, T)``."""
    check_tensor(name, x, ndim=2, integer=True)
    expected = (weights.shape[-4], weights.shape[-1])
    if tuple(x.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but the weights "
                         f"{tuple(weights.shape)} are (*, B, H, T, T); expected {name} of shape "
                         f"(B, T) = {expected}")
    if x.device != weights.device:
        raise ValueError(f"{name} is on device {x.device} but weights is on {weights.device}; "
                         f"put them on the same device")


def _mean_over_queries(on_key: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """``on_key`` ``(*, B, H, T)`` averaged over the batch and the ``counted`` ``(B, T)``
    queries → ``(*, H)``."""
    counted = counted[:, None, :].to(on_key.dtype)  # (B, 1, T)
    return (on_key * counted).sum(dim=(-3, -1)) / counted.sum()  # (*, H)


def mean_attention_distance(weights: torch.Tensor) -> torch.Tensor:
    """How far each head looks: the mean of ``sum_j alpha_ij |i - j|`` over queries ``i``.

    A head that attends to the previous token scores about 1 (query 0 has no previous token),
    one that attends to itself 0, a uniform causal head about ``T / 3``. A fully masked query
    (zero weights) counts as 0.

    Args:
        weights: self-attention weights ``(*, B, H, T, T)``.

    Returns:
        ``(*, H)``: the mean over the batch and every query.
    """
    _check_self_attention(weights)
    T = weights.shape[-1]
    t = torch.arange(T, device=weights.device)
    distance = (t[:, None] - t[None, :]).abs().to(weights.dtype)  # (T, T): |i - j|
    per_query = (weights * distance).sum(dim=-1)  # (*, B, H, T)
    return per_query.mean(dim=(-3, -1))  # (*, H)


def previous_token_score(weights: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Mean weight each head puts on the token ``k`` positions back (``k = 1``: the previous
    token), over the queries ``i >= k`` that have one: :func:`weight_on_offset` at ``-k``.

    Args:
        weights: self-attention weights ``(*, B, H, T, T)``.
        k: how far back, ``1 <= k < T``.

    Returns:
        ``(*, H)`` in ``[0, 1]``: 1 for a head that always attends ``k`` tokens back.
    """
    _check_self_attention(weights)
    check_int("k", k, minimum=1)
    if k >= weights.shape[-1]:
        raise ValueError(f"k={k} leaves no query with a token k positions back in sequences of "
                         f"length T={weights.shape[-1]}; expected 1 <= k < {weights.shape[-1]}")
    return weight_on_offset(weights, -k)


def induction_score(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean weight each head puts on the tokens that followed earlier occurrences of the
    current token — where an induction head looks (Olsson et al., 2022).

    For query ``i`` with token ``x``, the keys are ``j + 1`` for every ``j < i`` with
    ``tokens[j] == x``: with one earlier occurrence (as in a repeated random sequence), the
    position right after it. The head's weights on those keys are summed; queries whose token
    did not occur before are left out of the mean. An induction head scores near 1 on repeated
    sequences, a previous-token head near 0.

    Args:
        weights: self-attention weights ``(*, B, H, T, T)``.
        tokens: ``(B, T)`` integer token ids of the sequences the weights came from.

    Returns:
        ``(*, H)`` in ``[0, 1]``.
    """
    _check_self_attention(weights)
    _check_per_position("tokens", tokens, weights)
    T = tokens.shape[1]
    t = torch.arange(T, device=tokens.device)
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, T, T): [i, j] same token
    earlier = same & (t[None, :] < t[:, None])  # (B, T, T): j < i
    counted = earlier.any(dim=-1)  # (B, T): queries whose token occurred before
    if not counted.any():
        raise ValueError("tokens has no token that occurs twice in a sequence; the induction "
                         "score needs repeated tokens (e.g. data.repeated_sequences)")
    targets = torch.zeros_like(earlier)  # (B, T, T): [i, j + 1] for each earlier occurrence j
    targets[..., 1:] = earlier[..., :-1]
    on_keys = (weights * targets[:, None].to(weights.dtype)).sum(dim=-1)  # (*, B, H, T)
    return _mean_over_queries(on_keys, counted)


def weight_on_partner(weights: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Mean weight each head puts on each position's syntactic partner.

    Args:
        weights: self-attention weights ``(*, B, H, T, T)``.
        partner: ``(B, T)`` integer, the key index of each query's partner (e.g. a closing
            bracket's opening one, a verb's subject), ``-1`` for none: those queries are left
            out. For causal weights pass partners at or before the query (e.g.
            ``BracketSequences.earlier_partner``): a causal head cannot see later ones.

    Returns:
        ``(*, H)`` in ``[0, 1]``: 1 for a head that always attends to the partner.
    """
    _check_self_attention(weights)
    _check_per_position("partner", partner, weights)
    T = weights.shape[-1]
    if int(partner.min()) < -1 or int(partner.max()) >= T:
        raise ValueError(f"partner has values in [{int(partner.min())}, {int(partner.max())}]; "
                         f"expected key indices in [0, {T - 1}] or -1 for no partner")
    counted = partner >= 0  # (B, T)
    if not counted.any():
        raise ValueError("partner is -1 everywhere; expected at least one query with a partner")
    index = partner.clamp_min(0)[:, None, :, None]  # (B, 1, T, 1)
    index = index.expand(*weights.shape[:-1], 1)  # (*, B, H, T, 1)
    on_partner = weights.gather(-1, index).squeeze(-1)  # (*, B, H, T)
    return _mean_over_queries(on_partner, counted)


def same_class_score(weights: torch.Tensor, classes: torch.Tensor, *,
                     causal: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean weight each head puts on other tokens of the query's class, and its chance level.

    For query ``i`` of class ``c >= 0`` the score is ``sum_j alpha_ij`` over the visible keys
    ``j != i`` of class ``c`` (visible: ``j <= i`` when ``causal``, every ``j`` otherwise).
    Queries of class ``-1`` (no class, e.g. ``BOS`` or filler words) and queries without any
    other visible token of their class are left out. *Chance* is what a head attending
    uniformly to every visible key (itself included) would score on the same queries: the
    fraction of visible keys that are other tokens of the query's class. A semantic head
    scores far above chance; compare ``score / chance``.

    Args:
        weights: self-attention weights ``(*, B, H, T, T)``.
        classes: ``(B, T)`` integer class of each token, ``-1`` for none.
        causal: whether the weights come from a causal model (sets the visible keys).

    Returns:
        ``(score (*, H), chance ())``, both in ``[0, 1]``.
    """
    _check_self_attention(weights)
    _check_per_position("classes", classes, weights)
    check_bool("causal", causal)
    if int(classes.min()) < -1:
        raise ValueError(f"classes must be >= 0, or -1 for a token without class, got "
                         f"{int(classes.min())}")
    T = classes.shape[1]
    t = torch.arange(T, device=classes.device)
    visible = t[None, :] <= t[:, None] if causal else torch.ones(T, T, dtype=torch.bool,
                                                                  device=classes.device)
    same = (classes[:, :, None] == classes[:, None, :]) & (classes[:, :, None] >= 0)
    others = same & visible & (t[None, :] != t[:, None])  # (B, T, T): same class, not self
    counted = others.any(dim=-1)  # (B, T)
    if not counted.any():
        raise ValueError("classes gives no query another visible token of its class; expected "
                         "at least two tokens of one class in a sequence")
    on_class = (weights * others[:, None].to(weights.dtype)).sum(dim=-1)  # (*, B, H, T)
    uniform = others.sum(dim=-1) / visible.sum(dim=-1)  # (B, T): a uniform head's score
    chance = uniform[counted].to(weights.dtype).mean()  # ()
    return _mean_over_queries(on_class, counted), chance


def parameter_gradient_norms(modules) -> torch.Tensor:
    """``(N,)``: the norm of each module's parameter gradients, all its parameters together
    (e.g. the layers of a stack after ``loss.backward()``: how the gradient changes with depth).
    Parameters without a gradient count as zero."""
    modules = list(modules)
    if not modules or not all(isinstance(m, torch.nn.Module) for m in modules):
        raise TypeError("modules must be a non-empty sequence of torch.nn.Module")
    return torch.stack([
        torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                   for p in m.parameters()]).norm()
        for m in modules])


__all__.append("parameter_gradient_norms")
