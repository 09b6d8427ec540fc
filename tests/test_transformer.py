"""Transformer layers and stacks equal torch's in float64 (outputs and gradients, post-LN and
pre-LN, padding and causal masks); positional encodings; the model and its config."""


import pytest
import torch
from torch import nn

from attention_course.masks import causal_mask, padding_mask, to_torch_mask
from attention_course.transformer import Decoder, DecoderLayer, Encoder, EncoderLayer

f64 = torch.float64
D, H, FF = 8, 2, 16


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


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
