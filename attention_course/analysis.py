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
    if not callable(fn):
        raise TypeError(f"fn must be a callable mapping (B, L, I) to (B, ...), got "
                        f"{type(fn).__name__}")
    _check_sequence_input(x)
    inputs = x.detach().clone().requires_grad_(True)  # (B, L, I)
    output = fn(inputs)
    check_tensor("fn(x)", output, min_ndim=1, floating=True)
    if output.shape[0] != x.shape[0]:
        raise ValueError(f"fn(x) has shape {tuple(output.shape)} for a batch of {x.shape[0]}; "
                         f"expected (B, ...) with B={x.shape[0]}")
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
    if not callable(fn):
        raise TypeError(f"fn must be a callable mapping (B, L, E) to (B, L, E'), got "
                        f"{type(fn).__name__}")
    _check_sequence_input(x)
    inputs = x.detach().clone().requires_grad_(True)  # (B, L, E)
    output = fn(inputs)
    check_tensor("fn(x)", output, min_ndim=2, floating=True)
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
    if not callable(fn):
        raise TypeError(f"fn must be a callable mapping (B, L, E) to (B, T, E'), got "
                        f"{type(fn).__name__}")
    _check_sequence_input(x)
    inputs = x.detach().clone().requires_grad_(True)  # (B, L, E)
    output = fn(inputs)
    check_tensor("fn(x)", output, min_ndim=2, floating=True)
    if output.shape[0] != x.shape[0]:
        raise ValueError(f"fn(x) has shape {tuple(output.shape)} for a batch of {x.shape[0]}; "
                         f"expected (B, T, ...) with B={x.shape[0]}")
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

