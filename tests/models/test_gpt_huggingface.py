"""``GPT.from_huggingface``: exact equality with Hugging Face's ``GPT2LMHeadModel`` in float64 —
logits without and with left padding, decoding with the course's key–value cache against Hugging
Face's full forward pass, the cache itself, gradients, greedy generation against
``GPT2LMHeadModel.generate`` — what is copied (dtype, mode, tied or separate LM head) and the
configurations it refuses. Every reference model is built from a config with random weights
(offline, ``HF_HUB_OFFLINE=1``)."""

import pytest
import torch

from attention_course.inference import generate
from attention_course.models.gpt import GPT

F64 = torch.float64
TOL = 1e-10  # float64: observed differences are ~1e-16
V, B, T = 37, 3, 9


@pytest.fixture(scope="module")
def transformers():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # never download; models are built from a config
        yield pytest.importorskip("transformers")


def hf_model(transformers, **kwargs):
    """A small random GPT-2 in float64, eval mode. Biases and LayerNorms start at zero and the
    identity in Hugging Face's initialisation: perturb them so that a mis-copied one shows, and
    use larger weights (``initializer_range=0.2``) so that logits are far from uniform."""
    options = {"vocab_size": V, "n_positions": 16, "n_embd": 16, "n_layer": 2, "n_head": 4,
               "initializer_range": 0.2, "bos_token_id": 0, "eos_token_id": None,
               "pad_token_id": 0} | kwargs
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**options))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.to(F64).eval()


def tokens(batch=B, length=T, seed=0):
    return torch.randint(V, (batch, length), generator=torch.Generator().manual_seed(seed))


def left_padding(batch=B, length=T, pads=(4, 0, 2)):
    """``(B, L)`` bool: row ``i`` starts with ``pads[i]`` padding positions (``False``)."""
    mask = torch.ones(batch, length, dtype=torch.bool)
    for row, pad in enumerate(pads):
        mask[row, :pad] = False
    return mask


def hf_logits(hf, x, mask=None):
    """Hugging Face's logits; with a padding mask, positions count real tokens only
    (``cumsum - 1``, padding clamped to 0 — never read), as in ``generate``."""
    if mask is None:
        return hf(x).logits
    positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, L)
    return hf(x, attention_mask=mask.long(), position_ids=positions).logits


CONFIGS = [
    {},  # GPT-2: gelu_new, tied LM head, n_inner = 4 * n_embd
    {"n_inner": 24, "activation_function": "gelu_pytorch_tanh", "layer_norm_epsilon": 1e-3},
    {"activation_function": "relu", "tie_word_embeddings": False},
    {"activation_function": "gelu", "n_layer": 3, "n_head": 2},
]


@pytest.mark.parametrize("options", CONFIGS)
def test_logits_equal_without_padding(transformers, options):
    hf = hf_model(transformers, **options)
    model = GPT.from_huggingface(hf)
    x = tokens()
    expected = hf_logits(hf, x)
    logits, _ = model(x)
    assert logits.dtype == F64 and logits.shape == (B, T, V)
    assert (logits - expected).abs().max() < TOL
    cached, _ = model.forward_with_cache(x)
    assert (cached - expected).abs().max() < TOL
    assert expected.std() > 0.1  # the logits are not trivially equal (near-uniform)


def test_config_copied(transformers):
    hf = hf_model(transformers, n_inner=24, layer_norm_epsilon=1e-3, resid_pdrop=0.2,
                  embd_pdrop=0.2, attn_pdrop=0.2)
    c = GPT.from_huggingface(hf).config
    assert (c.vocab_size, c.max_len, c.d_model, c.num_heads, c.num_layers) == (V, 16, 16, 4, 2)
    assert (c.dim_feedforward, c.layer_norm_eps, c.dropout) == (24, 1e-3, 0.2)
    assert (c.activation, c.bias, c.tie_weights, c.init_std) == ("gelu_tanh", True, True, 0.2)
    assert GPT.from_huggingface(hf_model(transformers)).config.dim_feedforward == 4 * 16


def test_tied_or_separate_head_dtype_mode_and_independence(transformers):
    hf = hf_model(transformers)
    model = GPT.from_huggingface(hf)
    assert model.lm_head.weight is model.wte.weight  # tied like the source
    assert model.wte.weight.dtype == F64 and not model.training
    assert GPT.from_huggingface(hf.train()).training
    untied_hf = hf_model(transformers, tie_word_embeddings=False)
    assert untied_hf.lm_head.weight is not untied_hf.transformer.wte.weight
    untied = GPT.from_huggingface(untied_hf)
    assert untied.lm_head.weight is not untied.wte.weight
    assert torch.equal(untied.lm_head.weight, untied_hf.lm_head.weight)
    assert not torch.equal(untied.lm_head.weight, untied.wte.weight)
    # A copy, not a view: changing the course's model leaves Hugging Face's alone.
    before = hf.transformer.h[0].attn.c_attn.weight.clone()
    with torch.no_grad():
        model.blocks[0].attn.W_Q.weight.add_(1.0)
    assert torch.equal(hf.transformer.h[0].attn.c_attn.weight, before)


def test_float32_copy_close(transformers):
    hf = hf_model(transformers).float()
    model = GPT.from_huggingface(hf)
    assert model.wte.weight.dtype == torch.float32
    x = tokens()
    assert (model(x)[0] - hf(x).logits).abs().max() < 1e-4


def test_logits_equal_with_left_padding(transformers):
    hf = hf_model(transformers)
    model = GPT.from_huggingface(hf)
    x, mask = tokens(), left_padding()
    expected = hf_logits(hf, x, mask)
    logits, _ = model.forward_with_cache(x, attention_mask=mask)
    assert (logits - expected)[mask].abs().max() < TOL  # every real position
    # The padding is really ignored: each row equals the same prompt alone, unpadded.
    for row, pad in enumerate((4, 0, 2)):
        alone = hf_logits(hf, x[row:row + 1, pad:])
        assert (logits[row, pad:] - alone[0]).abs().max() < TOL


@pytest.mark.parametrize("padded", [False, True])
def test_incremental_decoding_equals_full_forward(transformers, padded):
    """The course's cache fed a prompt of 4 then one token at a time gives Hugging Face's logits
    of the whole sequence, and its keys and values are Hugging Face's cache."""
    hf = hf_model(transformers)
    model = GPT.from_huggingface(hf)
    x = tokens(length=10)
    mask = left_padding(length=10, pads=(3, 0, 1)) if padded else None
    expected = hf_logits(hf, x, mask)
    past, pieces = None, []
    for start, stop in [(0, 4)] + [(t, t + 1) for t in range(4, 10)]:
        piece_mask = None if mask is None else mask[:, :stop]
        logits, past = model.forward_with_cache(x[:, start:stop], past,
                                                attention_mask=piece_mask)
        pieces.append(logits)
    logits = torch.cat(pieces, dim=1)  # (B, 10, V)
    real = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
    assert (logits - expected)[real].abs().max() < TOL
    positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)
    hf_cache = hf(x, attention_mask=real.long(), position_ids=positions, use_cache=True).cache
    for (k, v), layer in zip(past, hf_cache.layers, strict=True):
        assert k.shape == layer.keys.shape == (B, 4, 10, 4)
        assert (k - layer.keys).abs().max() < TOL and (v - layer.values).abs().max() < TOL


def test_gradients_equal(transformers):
    hf = hf_model(transformers)
    model = GPT.from_huggingface(hf)
    x, mask = tokens(), left_padding()
    weights = torch.randn(B, T, V, dtype=F64, generator=torch.Generator().manual_seed(1))
    (hf_logits(hf, x, mask) * weights)[mask].sum().backward()
    (model.forward_with_cache(x, attention_mask=mask)[0] * weights)[mask].sum().backward()
    D = 16
    theirs = hf.transformer
    pairs = [(model.wte.weight, theirs.wte.weight),  # tied: both uses' gradients
             (model.wpe.weight, theirs.wpe.weight),
             (model.ln_f.weight, theirs.ln_f.weight), (model.ln_f.bias, theirs.ln_f.bias)]
    grads = [(mine.grad, hf_param.grad) for mine, hf_param in pairs]
    for ours, block in zip(model.blocks, theirs.h, strict=True):
        w, b = block.attn.c_attn.weight.grad, block.attn.c_attn.bias.grad  # (D, 3D), (3D,)
        for i, linear in enumerate((ours.attn.W_Q, ours.attn.W_K, ours.attn.W_V)):
            grads += [(linear.weight.grad.T, w[:, i * D:(i + 1) * D]),
                      (linear.bias.grad, b[i * D:(i + 1) * D])]
        for linear, conv in ((ours.attn.W_O, block.attn.c_proj),
                             (ours.mlp.c_fc, block.mlp.c_fc),
                             (ours.mlp.c_proj, block.mlp.c_proj)):
            grads += [(linear.weight.grad.T, conv.weight.grad), (linear.bias.grad, conv.bias.grad)]
        for name in ("ln_1", "ln_2"):
            mine, hf_norm = getattr(ours, name), getattr(block, name)
            grads += [(mine.weight.grad, hf_norm.weight.grad), (mine.bias.grad, hf_norm.bias.grad)]
    assert len(grads) == len(list(model.parameters())) == 4 + 2 * 16  # every parameter
    for mine, expected in grads:
        assert mine.shape == expected.shape and expected.abs().max() > 0
        assert (mine - expected).abs().max() < TOL


@pytest.mark.parametrize("padded", [False, True])
def test_greedy_generation_equals_huggingface_generate(transformers, padded):
    hf = hf_model(transformers, n_positions=20)
    model = GPT.from_huggingface(hf)
    x = tokens(length=6, seed=2)
    mask = left_padding(length=6, pads=(2, 0, 3)) if padded else None
    kwargs = {} if mask is None else {"attention_mask": mask.long()}
    expected = hf.generate(x, max_new_tokens=8, do_sample=False, **kwargs)
    ours = generate(model, x, 8, attention_mask=mask)
    assert expected.shape == ours.shape == (B, 14)
    assert torch.equal(ours, expected)
    assert torch.equal(generate(model, x, 8, attention_mask=mask, use_cache=False), expected)
    assert len(set(ours[:, 6:].flatten().tolist())) > 1  # not one repeated token


@pytest.mark.parametrize("options, match", [
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=True"),
    ({"scale_attn_weights": False}, "scale_attn_weights=False"),
    ({"add_cross_attention": True}, "add_cross_attention=True"),
    ({"activation_function": "silu"}, "activation_function='silu'"),
    ({"attn_pdrop": 0.0}, "different dropout rates"),
])
def test_refuses_unsupported_configs(transformers, options, match):
    hf = hf_model(transformers, **options)
    with pytest.raises(ValueError, match=match):
        GPT.from_huggingface(hf)


def test_refuses_other_models(transformers):
    hf = hf_model(transformers)
    with pytest.raises(TypeError, match="GPT2LMHeadModel, got GPT2Model"):
        GPT.from_huggingface(hf.transformer)
    with pytest.raises(TypeError, match="GPT2LMHeadModel, got Linear"):
        GPT.from_huggingface(torch.nn.Linear(2, 2))
