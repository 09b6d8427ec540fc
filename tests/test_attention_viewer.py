"""The offline attention viewer: self-contained HTML, faithful data, a PNG fallback, clear errors,
and (in headless Chromium, from a file:// page with every outside request blocked) the hover and
layer/head interaction itself.

The browser tests reuse the site tests' `browser` fixture (Debian Chromium through Playwright's
`executable_path`; skipped locally without a browser, a failure when CI is set). They need no
built book, so they run in `make unit`.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from attention_course.analysis import stack_weights
from attention_course.attention_viewer import AttentionViewer, attention_viewer
from tests.helpers import assert_raises_naming
from tests.site import conftest as site_conftest
from tests.site.checks import find_external_resources

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOKENS = ["<bos>", "the", "cat", "sat", "on", "mat"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The site tests' headless Chromium fixture (skips locally without a browser, fails under CI).
browser = site_conftest.browser


def causal_weights(n: int = 2, h: int = 3, t: int = 6, seed: int = 0) -> torch.Tensor:
    """(N, H, T, T) causal softmax weights with distinct rows."""
    scores = 3 * torch.randn(n, h, t, t, generator=torch.Generator().manual_seed(seed))
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


W = causal_weights()


def payload(viewer: AttentionViewer) -> dict:
    match = re.search(r'<script type="application/json" class="acv-data">(.*?)</script>',
                      viewer.html, re.S)
    assert match, "no JSON data element in the viewer's HTML"
    return json.loads(match.group(1))


# --- the HTML is self-contained and faithful ----------------------------------------------------


def test_html_loads_nothing_from_outside():
    html = attention_viewer(W, TOKENS, title="demo").html
    lowered = html.lower()
    for needle in ("http://", "https://", "//cdn", "unpkg", "require(", "requirejs", "@import"):
        assert needle not in lowered, f"the viewer's HTML contains {needle!r}"
    assert not re.search(r"<script[^>]*\bsrc\s*=", lowered), "the viewer loads a <script src>"
    assert not re.search(r"<link\b", lowered) and "url(" not in lowered
    assert find_external_resources(html, "viewer") == []  # the built-site check agrees
    assert lowered.count("<script") == 2  # the JSON data and one inline script


def test_json_round_trips_the_weights_tokens_and_names():
    viewer = attention_viewer(W, TOKENS, layer_names=["low", "high"], title="t")
    data = payload(viewer)
    assert data["shape"] == [2, 3, 6, 6]
    assert data["tokens"] == TOKENS and data["layers"] == ["low", "high"]
    assert data["heads"] == ["head 1", "head 2", "head 3"] and data["title"] == "t"
    got = np.asarray(data["weights"], dtype=np.float64).reshape(data["shape"])
    np.testing.assert_allclose(got, W.double().numpy(), rtol=0, atol=5e-5 + 1e-12)
    np.testing.assert_array_equal(got, np.round(W.double().numpy(), 4))
    assert np.array_equal(viewer.weights, W.double().numpy())


def test_tokens_cannot_break_out_of_the_script():
    evil = ["</script><script>alert(1)</script>", "a & b", "<!--", "\u2028"]
    viewer = attention_viewer(W[:, :, :4, :4].contiguous(), evil, title="</script>")
    assert "</script><script>alert" not in viewer.html
    assert viewer.html.count("</script>") == 2
    assert payload(viewer)["tokens"] == evil and payload(viewer)["title"] == "</script>"


def test_each_viewer_gets_its_own_ids():
    a, b = attention_viewer(W, TOKENS), attention_viewer(W, TOKENS)  # same data, two outputs
    assert a.element_id != b.element_id
    for v in (a, b):
        assert re.fullmatch(r"acv-[0-9a-f]{10}", v.element_id)
        assert f'id="{v.element_id}"' in v.html
        assert v.element_id in v.html.split("<script>", 1)[1]  # the script's fallback lookup
    assert b.element_id not in a.html


def test_mime_bundle_has_html_png_and_text():
    viewer = attention_viewer(W, TOKENS, title="demo")
    bundle = viewer._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert bundle["text/html"] == viewer.html
    assert "2 layers x 3 heads over 6 tokens" in bundle["text/plain"]
    assert set(viewer._repr_mimebundle_(include={"image/png"})) == {"image/png"}
    assert "image/png" not in viewer._repr_mimebundle_(exclude={"image/png"})


def test_png_fallback_is_a_grid_of_heatmaps():
    one = attention_viewer(W[:1, :1].contiguous(), TOKENS)
    grid = attention_viewer(W, TOKENS, title="demo")
    raw = base64.b64decode(grid._repr_mimebundle_()["image/png"], validate=True)
    assert raw.startswith(PNG_MAGIC) and raw == grid.png
    image = mpimg.imread(io.BytesIO(raw), format="png")  # decodes
    small = mpimg.imread(io.BytesIO(one.png), format="png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # 3 heads across and 2 layers down need a wider and taller figure than one panel
    assert image.shape[1] > 2 * small.shape[1] and image.shape[0] > 1.5 * small.shape[0]
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_accepts_stack_weights_output_and_fully_masked_rows():
    per_layer = [{"self_attn": W[i].unsqueeze(0).float()} for i in range(2)]  # (B=1, H, T, T)
    viewer = attention_viewer(stack_weights(per_layer, "self_attn")[:, 0], TOKENS)
    assert viewer.weights.shape == (2, 3, 6, 6)
    masked = W.clone()
    masked[:, :, 0] = 0.0  # a query that may attend to nothing has an all-zero row
    assert attention_viewer(masked, TOKENS).weights[0, 0, 0].sum() == 0
    assert attention_viewer(W.numpy(), TOKENS).weights.shape == (2, 3, 6, 6)
    assert attention_viewer(W.to(torch.bfloat16), TOKENS).weights.dtype == np.float64


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: attention_viewer([{"self_attn": W}], TOKENS), TypeError,
         ["weights", "list", "stack_weights"]),
        (lambda: attention_viewer(W.tolist(), TOKENS), TypeError, ["weights", "list"]),
        (lambda: attention_viewer(W.unsqueeze(1), TOKENS), ValueError,
         ["(N, H, T, T)", "(2, 1, 3, 6, 6)", "weights[:, b]"]),
        (lambda: attention_viewer(W[0], TOKENS), ValueError, ["(3, 6, 6)", "weights[None]"]),
        (lambda: attention_viewer(W[:, :, :4], TOKENS), ValueError, ["square", "Lq = 4"]),
        (lambda: attention_viewer(W[:, :, :0, :0], []), ValueError, ["empty"]),
        (lambda: attention_viewer((W > 0.5).long(), TOKENS), TypeError, ["floating", "int64"]),
        (lambda: attention_viewer(W, TOKENS[:5]), ValueError, ["tokens", "5", "T = 6"]),
        (lambda: attention_viewer(W, "abcdef"), TypeError, ["tokens", "list('abcdef')"]),
        (lambda: attention_viewer(W, [1, 2, 3, 4, 5, 6]), TypeError, ["tokens[0]", "int"]),
        (lambda: attention_viewer(W, torch.arange(6)), TypeError, ["tokens", "decode"]),
        (lambda: attention_viewer(W, TOKENS, layer_names=["a"]), ValueError,
         ["layer_names", "1", "N = 2"]),
        (lambda: attention_viewer(W, TOKENS, title=3), TypeError, ["title", "int"]),
        (lambda: attention_viewer(W * 3, TOKENS), ValueError, ["[0, 1]", "softmax"]),
        (lambda: attention_viewer(-W, TOKENS), ValueError, ["[0, 1]", "(0, 0, 0, 0)"]),
        (lambda: attention_viewer(W * 0.5, TOKENS), ValueError,
         ["sum to 1", "0.5", "(0, 0, 0)", "dropout"]),
        (lambda: attention_viewer(W.transpose(-1, -2), TOKENS), ValueError, ["sum to 1"]),
        (lambda: attention_viewer(torch.full((1, 1, 2, 2), float("nan")), ["a", "b"]),
         ValueError, ["finite", "nan"]),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    assert_raises_naming(call, error, words)


# --- what the book does with the MIME bundle ----------------------------------------------------


def test_book_shows_the_html_online_and_the_png_in_the_pdf():
    """myst-nb picks the first MIME type of a builder's priority list (plus the overrides in
    _config.yml): the HTML site must prefer the widget, the LaTeX/PDF build the figure."""
    render = pytest.importorskip("myst_nb.core.render")
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    sphinx_config = (config.get("sphinx") or {}).get("config") or {}
    overrides = sphinx_config.get("nb_mime_priority_overrides", [])
    html = render.get_mime_priority("html", overrides)
    assert html.index("text/html") < html.index("image/png") < html.index("text/plain")
    latex = render.get_mime_priority("latex", overrides)
    assert "text/html" not in latex and latex.index("image/png") < latex.index("text/plain")


# --- the interaction, in headless Chromium ------------------------------------------------------

KEYS_JS = """root => [...root.querySelectorAll('.acv-k')].map(k => ({
    weight: k.dataset.weight === undefined ? null : Number(k.dataset.weight),
    background: getComputedStyle(k).backgroundColor,
    shown: k.querySelector('.acv-w').textContent}))"""
STATE_JS = """root => ({query: Number(root.dataset.query), layer: Number(root.dataset.layer),
    head: Number(root.dataset.head), ready: root.dataset.acvReady === 'true',
    active: [...root.querySelectorAll('.acv-q.acv-active')].map(q => Number(q.dataset.index)),
    pressed: [...root.querySelectorAll('.acv-q[aria-pressed=true]')].length,
    lines: root.querySelectorAll('svg line').length,
    status: root.querySelector('.acv-status').textContent,
    fallback: root.querySelectorAll('.acv-fallback').length,
    focused: document.activeElement && document.activeElement.closest('.acv') === root
        ? Number(document.activeElement.dataset.index) : null})"""


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOOPBACK


class OfflinePage:
    """A file:// page in a fresh browser context where every request that is not file:// or
    loopback is aborted and recorded; console and page errors are recorded too."""

    def __init__(self, chromium, path: Path) -> None:
        self.requested: list[str] = []
        self.aborted: list[str] = []
        self.errors: list[str] = []
        self.context = chromium.new_context(viewport={"width": 1000, "height": 900},
                                           service_workers="block")
        self.context.set_default_timeout(20_000)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requested.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri(), wait_until="load")

    def _route(self, route) -> None:
        if _allowed(route.request.url):
            route.continue_()
        else:
            self.aborted.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def write_page(tmp_path: Path, *fragments: str) -> Path:
    path = tmp_path / "viewer.html"
    body = "\n<hr>\n".join(fragments)
    path.write_text(f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                    f"<title>viewer</title></head>\n<body>\n{body}\n</body></html>\n",
                    encoding="utf-8")
    return path


def alpha(css_colour: str) -> float:
    numbers = re.findall(r"[\d.]+", css_colour)
    return float(numbers[3]) if len(numbers) == 4 else (1.0 if numbers else 0.0)


def test_request_guard_catches_outside_requests(browser, tmp_path):
    """The offline check can fail: a page that reaches out is caught and blocked."""
    path = write_page(tmp_path, '<img src="https://example.invalid/x.png" alt="x">'
                                "<script>fetch('http://example.invalid/y').catch(() => 0)</script>")
    page = OfflinePage(browser, path)
    try:
        page.page.wait_for_load_state("networkidle")
        assert sorted(page.aborted) == ["http://example.invalid/y",
                                        "https://example.invalid/x.png"]
    finally:
        page.close()


def test_viewer_interaction_offline_in_chromium(browser, tmp_path):
    w = W.double().numpy()
    other = causal_weights(n=1, h=2, seed=1)
    tricky = TOKENS[:-1] + ["<b>mat</b>"]  # shown as text, never parsed as HTML
    first = attention_viewer(W, tricky, title="first")
    second = attention_viewer(other, TOKENS, title="second")
    page = OfflinePage(browser, write_page(tmp_path, first.html, second.html))
    try:
        p = page.page
        root, root2 = p.locator(f"#{first.element_id}"), p.locator(f"#{second.element_id}")
        p.wait_for_selector(f"#{first.element_id}[data-acv-ready=true]")
        p.wait_for_selector(f"#{second.element_id}[data-acv-ready=true]")

        def keys(r=root):
            return r.evaluate(KEYS_JS)

        def state(r=root):
            return r.evaluate(STATE_JS)

        def weights_shown(r=root):
            return np.array([k["weight"] for k in keys(r)])

        start = state()
        assert start["ready"] and start["fallback"] == 0 and start["query"] == -1
        assert all(k["weight"] is None and alpha(k["background"]) == 0 for k in keys())
        # with no query selected, every connection of the head is drawn faintly
        assert start["lines"] == int((np.round(w[0, 0], 4) >= 0.01).sum())
        assert "hover" in start["status"]
        assert root.locator(".acv-q").nth(5).text_content() == "<b>mat</b>"
        assert root.locator(".acv-q b").count() == 0

        # hover query 3 ("sat"): the keys show its row of layer 1, head 1
        root.locator(".acv-q").nth(3).hover()
        s = state()
        assert s["query"] == 3 and s["active"] == [3] and s["pressed"] == 1
        row3 = weights_shown()
        np.testing.assert_allclose(row3, w[0, 0, 3], atol=6e-5)
        shaded = keys()
        for k, expected in zip(shaded, w[0, 0, 3], strict=True):
            assert abs(alpha(k["background"]) - expected) < 0.01, (k, expected)
            assert k["shown"] == f"{expected:.2f}"
        assert s["lines"] == int((np.round(w[0, 0, 3], 4) >= 0.01).sum())
        best = int(w[0, 0, 3].argmax())
        assert f"\u201c{tricky[best]}\u201d (key {best + 1})" in s["status"]

        # hover query 5: the highlighted weights change to its row
        root.locator(".acv-q").nth(5).hover()
        row5 = weights_shown()
        np.testing.assert_allclose(row5, w[0, 0, 5], atol=6e-5)
        assert not np.allclose(row5, row3, atol=1e-3)
        assert state()["active"] == [5]

        # the second viewer on the page was not touched
        s2 = state(root2)
        assert s2["query"] == -1 and all(k["weight"] is None for k in keys(root2))

        # switching the head, then the layer, changes the weights of the same query
        root.locator("select.acv-head").select_option("1")
        head2 = weights_shown()
        np.testing.assert_allclose(head2, w[0, 1, 5], atol=6e-5)
        assert not np.allclose(head2, row5, atol=1e-3)
        root.locator("select.acv-layer").select_option("1")
        layer2 = weights_shown()
        np.testing.assert_allclose(layer2, w[1, 1, 5], atol=6e-5)
        assert not np.allclose(layer2, head2, atol=1e-3)
        assert (state()["layer"], state()["head"], state()["query"]) == (1, 1, 5)
        # the menus are labelled (screen readers announce "Layer", "Head")
        assert p.get_by_label("Layer").count() == 2 and p.get_by_label("Head").count() == 2

        # keyboard: focus a query token, move with the arrows, Esc clears
        root.locator(".acv-q").nth(5).focus()
        p.keyboard.press("ArrowUp")
        s = state()
        assert s["query"] == 4 and s["focused"] == 4
        np.testing.assert_allclose(weights_shown(), w[1, 1, 4], atol=6e-5)
        p.keyboard.press("Home")
        assert state()["query"] == 0
        np.testing.assert_allclose(weights_shown(), w[1, 1, 0], atol=6e-5)  # causal: [1, 0…]
        p.keyboard.press("Escape")
        assert state()["query"] == -1 and all(k["weight"] is None for k in keys())
        # only the focused token is in the tab order (roving tabindex)
        assert root.locator(".acv-q[tabindex='0']").count() == 1

        # the second viewer works on its own data
        root2.locator(".acv-q").nth(2).hover()
        np.testing.assert_allclose(weights_shown(root2), other.double().numpy()[0, 0, 2],
                                   atol=6e-5)
        assert state()["query"] == -1

        p.wait_for_load_state("networkidle")
        assert page.aborted == [], f"requests tried to leave the machine: {page.aborted}"
        assert all(urlsplit(u).scheme == "file" for u in page.requested), page.requested
        assert page.errors == [], f"console/page errors: {page.errors}"
    finally:
        page.close()
