"""An interactive attention viewer that works offline: pick a layer and a head, hover a token.

:func:`attention_viewer` turns one example's attention weights from every layer and head into an
object that Jupyter (and the built book) displays as

- ``text/html``: a self-contained widget (inline CSS and plain JavaScript, the weights embedded
  as JSON; no external file, no CDN, no require.js). The query tokens are on the left, the key
  tokens on the right: hover, click or focus a query token and the keys are shaded by the weight
  it gives them (lines join it to its keys); ``Layer`` and ``Head`` menus switch the matrix. With
  the keyboard: Tab to the tokens, arrow keys / Home / End to move, Esc to clear.
- ``image/png``: a static grid of heatmaps (one row per layer, one column per head), which the
  PDF book and viewers that run no JavaScript show instead;
- ``text/plain``: a one-line description.

Several viewers can share a page: each output gets its own element ids. Layers and heads are
labelled from 1 in the widget and the figure (``layer 1``, ``head 1``), while the tensor's
indices start at 0.

Example (any model or stack that returns per-layer weights with ``need_weights=True``)::

    from attention_course.analysis import stack_weights
    from attention_course.attention_viewer import attention_viewer

    _, per_layer = model(x, need_weights=True)        # [{"self_attn": (B, H, T, T)}, ...]
    weights = stack_weights(per_layer, "self_attn")    # (N, B, H, T, T)
    attention_viewer(weights[:, 0], ["the", "cat", "sat"], title="example 0")

Shape legend: ``N`` layers, ``B`` batch, ``H`` heads, ``T`` tokens (queries = keys).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import torch
from matplotlib.figure import Figure

from attention_course._checks import check_tensor
from attention_course.viz import attention_heatmap

__all__ = ["attention_viewer", "AttentionViewer"]

_ROW_PX = 22  # height of one token row; the lines between the columns are drawn at this pitch
_LINES_PX = 120  # width of the band of lines between the query and the key columns
_MAX_LABELLED_TOKENS = 24  # the static figure writes the tokens on its axes up to this length
_counter = itertools.count()


class AttentionViewer:
    """What :func:`attention_viewer` returns; Jupyter displays it through
    :meth:`_repr_mimebundle_`. ``html`` is the widget's HTML, ``png`` the static figure's bytes
    (drawn on first use), ``weights`` the ``(N, H, T, T)`` float64 array shown."""

    def __init__(self, weights: np.ndarray, tokens: list[str], layer_names: list[str],
                 title: str | None) -> None:
        self.weights = weights  # (N, H, T, T), validated, float64
        self.tokens = tokens
        self.layer_names = layer_names
        self.head_names = [f"head {h + 1}" for h in range(weights.shape[1])]
        self.title = title
        payload = _payload_json(weights, tokens, layer_names, self.head_names, title)
        # Unique on the page (a per-process counter) yet reproducible from run to run (no random
        # or clock input), so re-executing a notebook gives the same output.
        digest = hashlib.sha1(f"{next(_counter)}:{payload}".encode()).hexdigest()[:10]
        self.element_id = f"acv-{digest}"
        self.html = _render_html(self.element_id, payload, self.describe())

    def describe(self) -> str:
        n, h, t, _ = self.weights.shape
        name = f" {self.title!r}:" if self.title else ":"
        return (f"Attention viewer{name} {n} layer{'s' * (n != 1)} x {h} head{'s' * (h != 1)} "
                f"over {t} token{'s' * (t != 1)} (interactive in HTML; a static heatmap grid "
                f"otherwise)")

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    @cached_property
    def png(self) -> bytes:
        """The static fallback: a PNG of the heatmap grid (layers x heads)."""
        buffer = io.BytesIO()
        _static_figure(self).savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        producers = {
            "text/html": lambda: self.html,
            "image/png": lambda: base64.b64encode(self.png).decode("ascii"),
            "text/plain": lambda: repr(self),
        }
        return {mime: make() for mime, make in producers.items()
                if (include is None or mime in include) and not (exclude and mime in exclude)}


def attention_viewer(
    weights,
    tokens: Sequence[str],
    *,
    layer_names: Sequence[str] | None = None,
    title: str | None = None,
) -> AttentionViewer:
    """An interactive head view of one example's self-attention weights (see the module doc).

    Args:
        weights: ``(N, H, T, T)`` self-attention weights of **one** example, every layer and
            head: a floating-point tensor (detached and moved to the CPU for you) or NumPy array.
            From a model's list of per-layer dicts, take ``stack_weights(per_layer,
            "self_attn")[:, b]`` (example ``b``). Each query's row must hold weights in
            ``[0, 1]`` summing to 1, or all zeros for a fully masked query.
        tokens: the ``T`` token strings, in order (they label both queries and keys).
        layer_names: ``N`` labels for the layer menu and figure; default ``layer 1`` … ``layer N``.
        title: shown above the widget and the figure.

    Returns:
        An :class:`AttentionViewer`; display it (last expression of a cell, or
        ``IPython.display.display``) to get the widget, with a PNG fallback.
    """
    w = _check_weights(weights)
    n, _, t, _ = w.shape
    tokens = _check_names("tokens", tokens, t, "the weights have T =")
    if layer_names is None:
        layer_names = [f"layer {i + 1}" for i in range(n)]
    layer_names = _check_names("layer_names", layer_names, n, "the weights have N =")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__} {title!r}")
    return AttentionViewer(w, tokens, layer_names, title)


# --- validation --------------------------------------------------------------------------------

_EXPECTED = ("(N, H, T, T): one example's self-attention weights from every layer and head "
             "(e.g. stack_weights(per_layer, 'self_attn')[:, b])")


def _check_weights(weights) -> np.ndarray:
    if isinstance(weights, Sequence | Mapping) and not isinstance(weights, str):
        hint = ""
        if len(weights) and isinstance(weights[0] if isinstance(weights, Sequence) else None,
                                       Mapping):
            hint = (" — this looks like a model's list of per-layer dicts; pass "
                    "attention_course.analysis.stack_weights(per_layer, 'self_attn')[:, b] "
                    "for example b")
        raise TypeError(f"weights must be a tensor or NumPy array {_EXPECTED}, got "
                        f"{type(weights).__name__}{hint}")
    if isinstance(weights, torch.Tensor):
        check_tensor("weights", weights, floating=True)
        dtype_eps = torch.finfo(weights.dtype).eps
        w = weights.detach().cpu().to(torch.float64).numpy()
    elif isinstance(weights, np.ndarray):
        if weights.dtype.kind != "f":
            raise TypeError(f"weights must be a floating-point array, got dtype {weights.dtype}")
        dtype_eps = float(np.finfo(weights.dtype).eps)
        w = weights.astype(np.float64)
    else:
        raise TypeError(f"weights must be a tensor or NumPy array {_EXPECTED}, got "
                        f"{type(weights).__name__}")
    if w.ndim != 4:
        extra = (" (a batch? pick one example: weights[:, b])" if w.ndim == 5 else
                 " (one layer? add the layer axis: weights[None])" if w.ndim == 3 else "")
        raise ValueError(f"weights must be {_EXPECTED}, got shape {w.shape}{extra}")
    n, h, lq, lk = w.shape
    if 0 in w.shape:
        raise ValueError(f"weights must not be empty: {_EXPECTED}, got shape {w.shape}")
    if lq != lk:
        raise ValueError(f"weights must be square self-attention weights (N, H, T, T), got "
                         f"Lq = {lq} queries and Lk = {lk} keys (shape {w.shape})")
    bad = ~np.isfinite(w)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"weights must be finite, got {w[where]} at (layer, head, query, key) "
                         f"= {where}")
    value_tol = 1e-6 + dtype_eps
    out = (w < -value_tol) | (w > 1 + value_tol)
    if out.any():
        where = tuple(int(i) for i in np.argwhere(out)[0])
        raise ValueError(f"weights must lie in [0, 1] (softmax outputs), got {w[where]:.4g} at "
                         f"(layer, head, query, key) = {where}; raw scores? apply the softmax "
                         f"(or dropout-scaled weights? call model.eval())")
    sums = w.sum(-1)  # (N, H, T)
    sum_tol = max(1e-3, 8 * dtype_eps)
    ok = (np.abs(sums - 1) <= sum_tol) | (np.abs(sums) <= sum_tol)
    if not ok.all():
        where = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(f"each query's weights must sum to 1 (or to 0 for a fully masked "
                         f"query), got {sums[where]:.4g} at (layer, head, query) = {where}; "
                         f"softmax over the wrong axis, or weights from a model in training "
                         f"mode (dropout)?")
    return np.clip(w, 0.0, 1.0)


def _check_names(name: str, names, size: int, what: str) -> list[str]:
    if isinstance(names, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a list of strings (decode the ids first), got "
                        f"{type(names).__name__}")
    if isinstance(names, str) or not isinstance(names, Sequence):
        hint = f" (use list({names!r}) for one per character)" if isinstance(names, str) else ""
        raise TypeError(f"{name} must be a list or tuple of strings, got "
                        f"{type(names).__name__}{hint}")
    if len(names) != size:
        raise ValueError(f"{name} has {len(names)} entries but {what} {size}")
    for i, item in enumerate(names):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__} {item!r}")
    return list(names)


# --- HTML ----------------------------------------------------------------------------------------


def _format_weight(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return text if text else "0"


def _payload_json(weights: np.ndarray, tokens: list[str], layer_names: list[str],
                  head_names: list[str], title: str | None) -> str:
    """The data the widget reads: JSON, weights flattened row-major and rounded to 4 decimals,
    safe to embed in a ``<script>`` element (``<``, ``>``, ``&`` escaped as ``\\u003c`` …)."""
    head = json.dumps({"shape": list(weights.shape), "tokens": tokens, "layers": layer_names,
                       "heads": head_names, "title": title}, ensure_ascii=False)
    numbers = ",".join(_format_weight(v) for v in weights.ravel().tolist())
    text = head[:-1] + ', "weights": [' + numbers + "]}"
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_CSS = f"""
.acv {{ font-size: 14px; margin: 0.5em 0 1em; max-width: 100%; overflow-x: auto; }}
.acv-title {{ font-weight: 600; margin-bottom: 0.3em; }}
.acv-controls {{ display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: center;
  margin-bottom: 0.6em; }}
.acv-controls label {{ display: inline-flex; gap: 0.4em; align-items: center; }}
.acv-controls select {{ font: inherit; padding: 1px 4px; }}
.acv-view {{ display: flex; align-items: flex-start; }}
.acv-col {{ display: flex; flex-direction: column; min-width: 3em; max-width: 14em; }}
.acv-q, .acv-k {{ box-sizing: border-box; height: {_ROW_PX}px; line-height: {_ROW_PX - 2}px;
  margin: 0; padding: 0 6px; border: 1px solid transparent; border-radius: 3px;
  font: inherit; color: inherit; white-space: pre; overflow: hidden; text-overflow: ellipsis; }}
.acv-q {{ background: transparent; text-align: right; cursor: pointer; width: 100%; }}
.acv-q:hover {{ border-color: rgba(255, 127, 14, 0.7); }}
.acv-q.acv-active {{ background: rgba(255, 127, 14, 0.35); border-color: rgb(255, 127, 14); }}
.acv-q:focus-visible {{ outline: 2px solid rgb(255, 127, 14); outline-offset: 1px; }}
.acv-k {{ display: flex; justify-content: space-between; gap: 0.8em; }}
.acv-k.acv-strong {{ color: #fff; }}
.acv-w {{ font-size: 0.85em; font-variant-numeric: tabular-nums; }}
.acv-lines svg {{ display: block; }}
.acv-status {{ margin: 0.5em 0 0; font-size: 0.9em; min-height: 1.4em; }}
"""

# Plain ES5 in an IIFE: no module loader, no global names, no network. The script finds its own
# container (document.currentScript's parent), so it also works where the output's HTML is
# inserted by a notebook front end; the data sits in the <script type="application/json"> next
# to it. Tokens are set with textContent (never parsed as HTML).
_JS = """
(function () {
  "use strict";
  var me = document.currentScript;
  var root = (me && me.parentNode) || document.getElementById(ROOT_ID);
  if (!root || root.getAttribute("data-acv-ready")) { return; }
  var data = JSON.parse(root.querySelector("script.acv-data").textContent);
  var N = data.shape[0], H = data.shape[1], T = data.shape[2], W = data.weights;
  var ROW = ROW_PX, LW = LINES_PX;
  var state = {layer: 0, head: 0, query: -1};
  function weight(l, h, q, k) { return W[((l * H + h) * T + q) * T + k]; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  var fallback = root.querySelector(".acv-fallback");
  if (fallback) { fallback.parentNode.removeChild(fallback); }
  if (data.title) { root.appendChild(el("div", "acv-title", data.title)); }
  var controls = el("div", "acv-controls");
  function menu(label, names, key) {
    var lab = el("label", null), sel = el("select", "acv-" + key);
    sel.id = root.id + "-" + key;
    lab.htmlFor = sel.id;
    lab.appendChild(document.createTextNode(label));
    names.forEach(function (name, i) {
      var option = el("option", null, name);
      option.value = String(i);
      sel.appendChild(option);
    });
    sel.addEventListener("change", function () { state[key] = +sel.value; render(); });
    lab.appendChild(sel);
    controls.appendChild(lab);
  }
  menu("Layer", data.layers, "layer");
  menu("Head", data.heads, "head");
  root.appendChild(controls);

  var view = el("div", "acv-view");
  var qcol = el("div", "acv-col acv-queries"), kcol = el("div", "acv-col acv-keys");
  qcol.setAttribute("role", "group");
  qcol.setAttribute("aria-label", "Query tokens: hover or focus one to see where it looks");
  kcol.setAttribute("aria-label", "Key tokens, shaded by the selected query's weights");
  var band = el("div", "acv-lines");
  band.innerHTML = '<svg width="' + LW + '" height="' + (T * ROW) + '" aria-hidden="true">' +
    "</svg>";
  var svg = band.firstChild, NS = svg.namespaceURI;
  var qs = [], ks = [], ws = [];
  data.tokens.forEach(function (token, i) {
    var q = el("button", "acv-q", token);
    q.type = "button";
    q.title = token;
    q.setAttribute("data-index", String(i));
    q.addEventListener("mouseenter", function () { select(i); });
    q.addEventListener("focus", function () { select(i); });
    q.addEventListener("click", function () { select(i); });
    qs.push(q);
    qcol.appendChild(q);
    var k = el("div", "acv-k"), w = el("span", "acv-w", "");
    k.appendChild(el("span", "acv-tok", token));
    k.appendChild(w);
    k.title = token;
    k.setAttribute("data-index", String(i));
    ks.push(k);
    ws.push(w);
    kcol.appendChild(k);
  });
  qcol.addEventListener("keydown", function (event) {
    var i = Math.max(state.query, 0), next = null;
    if (event.key === "ArrowDown") { next = Math.min(i + 1, T - 1); }
    else if (event.key === "ArrowUp") { next = Math.max(i - 1, 0); }
    else if (event.key === "Home") { next = 0; }
    else if (event.key === "End") { next = T - 1; }
    else if (event.key === "Escape") { select(-1); event.preventDefault(); return; }
    if (next !== null) { event.preventDefault(); qs[next].focus(); select(next); }
  });
  view.appendChild(qcol);
  view.appendChild(band);
  view.appendChild(kcol);
  root.appendChild(view);
  var status = el("p", "acv-status");
  status.setAttribute("aria-live", "polite");
  root.appendChild(status);

  function select(i) {
    if (i === state.query) { return; }
    state.query = i;
    render();
  }
  function line(frag, q, k, opacity) {
    var ln = document.createElementNS(NS, "line");
    ln.setAttribute("x1", "2");
    ln.setAttribute("y1", String((q + 0.5) * ROW));
    ln.setAttribute("x2", String(LW - 2));
    ln.setAttribute("y2", String((k + 0.5) * ROW));
    ln.setAttribute("stroke", "rgb(31, 119, 180)");
    ln.setAttribute("stroke-width", "2");
    ln.setAttribute("stroke-opacity", String(opacity));
    frag.appendChild(ln);
  }
  function render() {
    var l = state.layer, h = state.head, q = state.query;
    root.setAttribute("data-layer", String(l));
    root.setAttribute("data-head", String(h));
    root.setAttribute("data-query", String(q));
    qs.forEach(function (b, i) {
      b.classList.toggle("acv-active", i === q);
      b.setAttribute("aria-pressed", i === q ? "true" : "false");
      b.tabIndex = i === Math.max(q, 0) ? 0 : -1;
    });
    var best = -1, total = 0;
    ks.forEach(function (k, j) {
      if (q < 0) {
        k.removeAttribute("data-weight");
        k.style.backgroundColor = "";
        k.classList.remove("acv-strong");
        ws[j].textContent = "";
        return;
      }
      var v = weight(l, h, q, j);
      total += v;
      if (best < 0 || v > weight(l, h, q, best)) { best = j; }
      k.setAttribute("data-weight", v.toFixed(4));
      k.style.backgroundColor = "rgba(31, 119, 180, " + v + ")";
      k.classList.toggle("acv-strong", v > 0.55);
      ws[j].textContent = v.toFixed(2);
    });
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var frag = document.createDocumentFragment();
    for (var i = 0; i < T; i++) {
      if (q >= 0 && i !== q) { continue; }
      for (var j = 0; j < T; j++) {
        var v = weight(l, h, i, j);
        if (v >= 0.01) { line(frag, i, j, q < 0 ? 0.5 * v : v); }
      }
    }
    svg.appendChild(frag);
    var where = data.layers[l] + ", " + data.heads[h] + ": ";
    if (q < 0) {
      status.textContent = where + "hover, click or focus a query token (left) to see where " +
        "it looks; arrow keys move, Esc clears.";
    } else if (total === 0) {
      status.textContent = where + "\\u201c" + data.tokens[q] + "\\u201d (query " + (q + 1) +
        ") is fully masked: it attends to no key.";
    } else {
      status.textContent = where + "\\u201c" + data.tokens[q] + "\\u201d (query " + (q + 1) +
        ") looks most at \\u201c" + data.tokens[best] + "\\u201d (key " + (best + 1) +
        "), weight " + weight(l, h, q, best).toFixed(2) + ".";
    }
  }
  render();
  root.setAttribute("data-acv-ready", "true");
})();
"""


def _render_html(element_id: str, payload: str, description: str) -> str:
    script = (_JS.replace("ROOT_ID", json.dumps(element_id))
              .replace("ROW_PX", str(_ROW_PX)).replace("LINES_PX", str(_LINES_PX)))
    return (
        f'<div class="acv" id="{element_id}">\n'
        f"<style>{_CSS}</style>\n"
        f'<p class="acv-fallback">{html.escape(description)}. '
        f"The interactive view needs JavaScript.</p>\n"
        f'<script type="application/json" class="acv-data">{payload}</script>\n'
        f"<script>{script}</script>\n"
        f"</div>"
    )


# --- static figure -------------------------------------------------------------------------------


def _static_figure(viewer: AttentionViewer) -> Figure:
    """A grid of heatmaps, one row per layer and one column per head, with one colour bar."""
    w = viewer.weights
    n, h, t, _ = w.shape
    labels = viewer.tokens if t <= _MAX_LABELLED_TOKENS else None
    panel = max(1.8, min(3.0, 14.0 / h))
    fig = Figure(figsize=(panel * h + 1.0, panel * n + (0.5 if viewer.title else 0.2)),
                 layout="constrained")
    axes = fig.subplots(n, h, squeeze=False)
    for i in range(n):
        for j in range(h):
            ax = attention_heatmap(w[i, j], queries=labels, keys=labels, ax=axes[i, j],
                                   title=f"{viewer.layer_names[i]}, {viewer.head_names[j]}",
                                   colorbar=False)
            ax.tick_params(labelsize=7)
            ax.title.set_fontsize(9)
            if labels is not None:
                ax.tick_params(axis="x", labelrotation=90)
            if i < n - 1:
                ax.set_xlabel("")
            if j > 0:
                ax.set_ylabel("")
    fig.colorbar(axes[0, 0].images[0], ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
    if viewer.title:
        fig.suptitle(viewer.title)
    return fig
