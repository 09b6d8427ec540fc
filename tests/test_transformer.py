"""Transformer layers and stacks equal torch's in float64 (outputs and gradients, post-LN and
pre-LN, padding and causal masks); positional encodings; the model and its config."""

import re

import pytest
import torch
from torch import nn

from attention_course.masks import causal_mask, padding_mask, to_torch_mask
from attention_course.transformer import Decoder, DecoderLayer, Encoder, EncoderLayer
from tests.helpers import assert_raises_naming, f64, rand

D, H, FF = 8, 2, 16



def perturb(module, seed=0):
    """Make every parameter count (torch initialises biases to 0 and norms to 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.train()  # train mode with dropout 0: avoids torch's eval-only fast path


def torch_encoder_layer(norm_first, activation="relu"):
    torch.manual_seed(0)
    return perturb(nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation,
                                              batch_first=True, norm_first=norm_first,
                                              dtype=f64))


def torch_decoder_layer(norm_first, activation="relu"):
    torch.manual_seed(0)
    return perturb(nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation,
                                              batch_first=True, norm_first=norm_first,
                                              dtype=f64))


def assert_grads_match(out_ours, out_theirs, inputs, ours, theirs):
    g = rand(*out_ours.shape, seed=9)
    gi_o = torch.autograd.grad(out_ours, inputs + list(ours.parameters()), g)
    gi_t = torch.autograd.grad(out_theirs, inputs + list(theirs.parameters()), g)
    for a, b in zip(gi_o[:len(inputs)], gi_t[:len(inputs)], strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # Parameter gradients: compare as multisets of flattened values (orders differ).
    flat = lambda gs: torch.cat([x.flatten() for x in gs]).sort().values  # noqa: E731
    assert torch.allclose(flat(gi_o[len(inputs):]), flat(gi_t[len(inputs):]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masking", ["none", "padding", "causal"])
def test_encoder_layer_matches_torch(norm_first, activation, masking):
    theirs = torch_encoder_layer(norm_first, activation)
    ours = EncoderLayer.from_torch(theirs)
    x = rand(3, 5, D, seed=1).requires_grad_()
    pad = padding_mask(torch.tensor([5, 3, 1]), 5)  # (B, L)
    kwargs, mask, is_causal = {}, None, False
    if masking == "padding":
        mask, kwargs["src_key_padding_mask"] = pad[:, None, :], to_torch_mask(pad)
    if masking == "causal":
        is_causal, kwargs["src_mask"] = True, to_torch_mask(causal_mask(5))
    out_t = theirs(x, **kwargs)
    out_o = ours(x, mask, is_causal=is_causal)
    assert torch.allclose(out_o, out_t, rtol=0, atol=1e-12)
    assert_grads_match(out_o, out_t, [x], ours, theirs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    theirs = torch_decoder_layer(norm_first)
    ours = DecoderLayer.from_torch(theirs)
    x, memory = rand(2, 4, D, seed=1).requires_grad_(), rand(2, 6, D, seed=2).requires_grad_()
    src_pad = padding_mask(torch.tensor([6, 2]), 6)
    out_t = theirs(x, memory, tgt_mask=to_torch_mask(causal_mask(4)),
                   memory_key_padding_mask=to_torch_mask(src_pad))
    out_o = ours(x, memory, memory_mask=src_pad[:, None, :], is_causal=True)
    assert torch.allclose(out_o, out_t, rtol=0, atol=1e-12)
    assert_grads_match(out_o, out_t, [x, memory], ours, theirs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_match_torch(norm_first):
    torch.manual_seed(0)
    final = nn.LayerNorm(D, dtype=f64) if norm_first else None
    enc_t = perturb(nn.TransformerEncoder(torch_encoder_layer(norm_first), 3, norm=final,
                                          enable_nested_tensor=False))
    dec_t = perturb(nn.TransformerDecoder(torch_decoder_layer(norm_first), 2,
                                          norm=None if final is None else nn.LayerNorm(
                                              D, dtype=f64)))
    enc_o, dec_o = Encoder.from_torch(enc_t), Decoder.from_torch(dec_t)
    src, tgt = rand(2, 5, D, seed=1).requires_grad_(), rand(2, 3, D, seed=2).requires_grad_()
    pad = padding_mask(torch.tensor([5, 4]), 5)
    mem_t = enc_t(src, src_key_padding_mask=to_torch_mask(pad))
    mem_o = enc_o(src, pad[:, None, :])
    assert torch.allclose(mem_o, mem_t, rtol=0, atol=1e-12)
    out_t = dec_t(tgt, mem_t, tgt_mask=to_torch_mask(causal_mask(3)),
                  memory_key_padding_mask=to_torch_mask(pad))
    out_o = dec_o(tgt, mem_o, memory_mask=pad[:, None, :], is_causal=True)
    assert torch.allclose(out_o, out_t, rtol=0, atol=1e-12)
    assert_grads_match(out_o, out_t, [src, tgt], nn.ModuleList([enc_o, dec_o]),
                       nn.ModuleList([enc_t, dec_t]))


def test_from_torch_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="batch_first"):
        EncoderLayer.from_torch(nn.TransformerEncoderLayer(D, H, FF))
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        EncoderLayer.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="activation"):
        EncoderLayer.from_torch(nn.TransformerEncoderLayer(D, H, FF, activation=torch.tanh,
                                                           batch_first=True))


# ---------------------------------------------------------------- robustness: hostile input

X, MEM = rand(2, 3, D, seed=1), rand(2, 4, D, seed=2)
QKV = re.compile(r"\b(query|key|value)\b")


def layers():
    torch.manual_seed(0)
    enc = EncoderLayer(D, H, FF, dropout=0.0).double()
    dec = DecoderLayer(D, H, FF, dropout=0.0).double()
    return {"EncoderLayer": enc, "DecoderLayer": dec, "Encoder": Encoder(enc, 2),
            "Decoder": Decoder(dec, 2)}


ENCODER_CALLS = [  # (call on an encoder layer or stack, words)
    (lambda m: m(X[0]), ["x", "3 dimensions", "(3, 8)"]),
    (lambda m: m(rand(2, 3, 6)), ["x", "(B, L, 8)", "(2, 3, 6)"]),
    (lambda m: m(X.float()), ["x", "float32", "float64"]),
    (lambda m: m(X.tolist()), ["x", "torch.Tensor", "list"]),
    (lambda m: m(X, torch.ones(2, 3)), ["mask", "boolean"]),
    (lambda m: m(X, torch.ones(2, 4, dtype=torch.bool)), ["mask", "(2, 4)"]),
    # was: "Tensor on device cpu is not on the expected device meta!"
    (lambda m: m(X, torch.ones(2, 1, 3, dtype=torch.bool, device="meta")), ["mask", "meta"]),
    (lambda m: m(X, is_causal="False"), ["is_causal", "bool"]),
    (lambda m: m(X, need_weights=1), ["need_weights", "bool"]),
]
DECODER_CALLS = [
    (lambda m: m(X[0], MEM), ["x", "3 dimensions"]),
    (lambda m: m(X, MEM.float()), ["memory", "float32", "float64"]),
    (lambda m: m(X, rand(2, 4, 6)), ["memory", "(B, L, 8)", "(2, 4, 6)"]),
    (lambda m: m(X, None), ["memory", "torch.Tensor", "NoneType"]),
    # was: "x (2, 3, 8), memory (1, 4, 8) and memory (1, 4, 8) must share B, ..."
    (lambda m: m(X, MEM[:1]), ["memory", "batch size 1", "x", "2"]),
    (lambda m: m(X, MEM, torch.ones(3, 3)), ["tgt_mask", "boolean"]),
    (lambda m: m(X, MEM, torch.ones(2, 3, dtype=torch.bool)), ["tgt_mask", "(2, 3)"]),
    (lambda m: m(X, MEM, torch.ones(3, 3, dtype=torch.bool, device="meta")),
     ["tgt_mask", "meta"]),
    (lambda m: m(X, MEM, None, torch.ones(2, 1, 4)), ["memory_mask", "boolean"]),
    (lambda m: m(X, MEM, None, torch.ones(2, 4, dtype=torch.bool)), ["memory_mask", "(2, 4)"]),
    (lambda m: m(X, MEM, None, torch.ones(2, 1, 3, dtype=torch.bool)),
     ["memory_mask", "Lk=4"]),
    (lambda m: m(X, MEM, is_causal=None), ["is_causal", "bool"]),
]
NAMES = [pytest.param(name, call, words, id=f"{name}-{i}")
         for names, calls in ((("EncoderLayer", "Encoder"), ENCODER_CALLS),
                              (("DecoderLayer", "Decoder"), DECODER_CALLS))
         for name in names for i, (call, words) in enumerate(calls)]


@pytest.mark.parametrize("name, call, words", NAMES)
def test_errors_name_the_callers_arguments_never_query_key_value(name, call, words):
    with pytest.raises((TypeError, ValueError)) as info:
        call(layers()[name])
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message}"
    assert not QKV.search(message), f"{name} error speaks of query/key/value: {message}"


ROBUSTNESS = [
    pytest.param(lambda: EncoderLayer(D, H, FF, layer_norm_eps=0.0), ValueError,
                 ["layer_norm_eps", "> 0"], id="eps-zero"),
    pytest.param(lambda: EncoderLayer(D, H, FF, layer_norm_eps=float("nan")), ValueError,
                 ["layer_norm_eps", "finite"], id="eps-nan"),
    pytest.param(lambda: DecoderLayer(D, H, FF, layer_norm_eps="1e-5"), TypeError,
                 ["layer_norm_eps", "number"], id="eps-str"),
    pytest.param(lambda: EncoderLayer(D, 3, FF), ValueError, ["d_model=8", "num_heads=3"],
                 id="heads-do-not-divide"),
    pytest.param(lambda: EncoderLayer(D, 0, FF), ValueError, ["num_heads", ">= 1"],
                 id="num_heads-0"),
    pytest.param(lambda: EncoderLayer(D, H, 0), ValueError, ["dim_feedforward", ">= 1"],
                 id="dim_feedforward-0"),
    pytest.param(lambda: EncoderLayer(D, H, FF, norm_first="False"), TypeError,
                 ["norm_first", "bool"], id="norm_first-str"),
    pytest.param(lambda: DecoderLayer(D, H, FF, bias=1), TypeError, ["bias", "bool"],
                 id="bias-int"),
    pytest.param(lambda: DecoderLayer(D, H, FF, dropout=1.0), ValueError, ["dropout", "1.0"],
                 id="dropout-one"),
    pytest.param(lambda: EncoderLayer(D, H, FF, activation=torch.relu), ValueError,
                 ["activation", "relu"], id="activation-callable"),
    pytest.param(lambda: EncoderLayer(D, H, FF, attention_fn="fused"), TypeError,
                 ["attention_fn", "str"], id="attention_fn-str"),
    # was: silent -- accepted, then "normalized_shape=[5] ... got input of size [2, 3, 8]"
    pytest.param(lambda: Encoder(EncoderLayer(D, H, FF), 1, nn.LayerNorm(5)), ValueError,
                 ["norm", "(5,)", "d_model=8"], id="stack-norm-size"),
    pytest.param(lambda: Encoder(EncoderLayer(D, H, FF), True), TypeError,
                 ["num_layers", "bool"], id="stack-num_layers-bool"),
    pytest.param(lambda: Decoder(EncoderLayer(D, H, FF), 1), TypeError,
                 ["layer", "DecoderLayer", "EncoderLayer"], id="stack-wrong-layer"),
    # was: silent -- copied as the exact GELU, with different outputs
    pytest.param(lambda: EncoderLayer.from_torch(nn.TransformerEncoderLayer(
        D, H, FF, batch_first=True, activation=nn.GELU(approximate="tanh"))), ValueError,
        ["activation", "tanh"], id="from_torch-gelu-tanh"),
    pytest.param(lambda: DecoderLayer.from_torch(None), TypeError,
                 ["m", "TransformerDecoderLayer", "NoneType"], id="from_torch-None"),
]


@pytest.mark.parametrize("call, error, words", ROBUSTNESS)
def test_hostile_input_gets_a_clear_error_naming_the_argument(call, error, words):
    assert_raises_naming(call, error, words)


def test_from_torch_copies_each_norms_own_eps():
    t = torch_encoder_layer(norm_first=False)
    t.norm1.eps, t.norm2.eps = 0.5, 1e-3  # was: norm1's eps used for both norms
    ours = EncoderLayer.from_torch(t)
    assert torch.allclose(ours(X), t(X), rtol=0, atol=1e-12)


def test_non_contiguous_inputs_give_the_same_result():
    m = layers()
    x = X.transpose(0, 1).contiguous().transpose(0, 1)
    mem = MEM.transpose(1, 2).contiguous().transpose(1, 2)
    assert not (x.is_contiguous() or mem.is_contiguous())
    for name in ("EncoderLayer", "Encoder"):
        assert torch.allclose(m[name](x, is_causal=True), m[name](X, is_causal=True),
                              rtol=0, atol=1e-12)
    for name in ("DecoderLayer", "Decoder"):
        assert torch.allclose(m[name](x, mem, is_causal=True), m[name](X, MEM, is_causal=True),
                              rtol=0, atol=1e-12)


@pytest.mark.parametrize("B, T, S", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_empty_inputs_give_the_same_with_and_without_is_causal(B, T, S):
    m = layers()
    x, mem = rand(B, T, D), rand(B, S, D)
    fused = m["Decoder"](x, mem, is_causal=True)  # torch's kernel
    causal, weights = m["Decoder"](x, mem, is_causal=True, need_weights=True)  # the reference
    assert fused.shape == causal.shape == (B, T, D) and not fused.isnan().any()
    assert torch.allclose(fused, causal, rtol=0, atol=1e-12)
    assert weights[0]["cross_attn"].shape == (B, H, T, S)
    if B * T == 0:  # nothing to mask: is_causal changes nothing
        assert torch.equal(m["Decoder"](x, mem), fused)
        assert torch.equal(m["Encoder"](x), m["Encoder"](x, is_causal=True))
