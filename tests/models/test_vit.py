"""The Vision Transformer: patch order on a hand-built image, the patch embedding as a
convolution, shapes and attention weights against a hand-run, exact equality with Hugging
Face's ViT (outputs and gradients, float64), training, determinism, and argument checks in the
caller's words."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention_course.kernels import reference_attention
from attention_course.models.vit import ViT, ViTConfig, patchify
from attention_course.train import train

F64 = torch.float64
TOL = 1e-10  # float64: observed differences are ~1e-15


def small_config(**kwargs):
    options = {"image_size": 8, "patch_size": 2, "num_channels": 3, "d_model": 16,
               "num_heads": 4, "num_layers": 2, "num_classes": 5} | kwargs
    return ViTConfig(**options)


def small_model(dtype=F64, **kwargs):
    torch.manual_seed(0)
    return ViT(small_config(**kwargs)).to(dtype).eval()


def images(B=3, C=3, size=8, seed=0, dtype=F64):
    return torch.randn(B, C, size, size, generator=torch.Generator().manual_seed(seed),
                       dtype=dtype)


# --- patchify ---------------------------------------------------------------------------------


def test_patchify_order_on_a_hand_built_image():
    # Pixel value = 100*channel + 10*row + column, so each number says where it came from.
    c, y, x = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(6), indexing="ij")
    image = (100 * c + 10 * y + x).double()[None]  # (1, C=2, H=4, W=6)
    patches = patchify(image, 2)  # (1, N=6, C*P*P=8): grid 2 rows x 3 columns
    assert patches.shape == (1, 6, 8)
    # Patch 0: top-left; patch 1: its right neighbour; patch 3: first of the second row.
    assert patches[0, 0].tolist() == [0, 1, 10, 11, 100, 101, 110, 111]
    assert patches[0, 1].tolist() == [2, 3, 12, 13, 102, 103, 112, 113]
    assert patches[0, 3].tolist() == [20, 21, 30, 31, 120, 121, 130, 131]
    assert patches[0, 5].tolist() == [24, 25, 34, 35, 124, 125, 134, 135]


def test_patchify_matches_unfold_and_patch_size_one_is_the_pixels():
    x = images(B=2, C=3, size=8)
    expected = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, C*P*P)
    assert torch.equal(patchify(x, 4), expected)
    assert torch.equal(patchify(x, 1), x.flatten(2).transpose(1, 2))  # one pixel per token
    assert torch.equal(patchify(x, 8), x.reshape(2, 1, -1))  # the whole image, one token


def test_patch_embedding_equals_a_strided_convolution():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 16, kernel_size=2, stride=2).double()
    x = images()
    by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, D)
    by_linear = patchify(x, 2) @ conv.weight.reshape(16, -1).T + conv.bias
    torch.testing.assert_close(by_linear, by_conv, rtol=0, atol=1e-13)


def test_patchify_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"height 9 and width 8.*multiples of patch_size=2"):
        patchify(torch.zeros(1, 1, 9, 8), 2)
    with pytest.raises(ValueError, match="images must have 4 dimensions"):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(TypeError, match="patch_size must be an int"):
        patchify(torch.zeros(1, 1, 8, 8), 2.0)


# --- the model --------------------------------------------------------------------------------


def hand_run(model, x):
    """The forward pass written out from the paper's equations; returns logits and the
    per-layer weights ``(B, H, L, L)``."""
    c = model.config
    z = patchify(x, c.patch_size) @ model.patch_embedding.weight.T + model.patch_embedding.bias
    z = torch.cat([model.cls_token.expand(x.shape[0], 1, -1), z], 1) + model.position_embeddings
    B, L, D = z.shape
    all_weights = []
    for layer in model.encoder.layers:
        a = layer.norms[0](z)
        q, k, v = (W(a).view(B, L, c.num_heads, -1).transpose(1, 2)
                   for W in (layer.self_attn.W_Q, layer.self_attn.W_K, layer.self_attn.W_V))
        weights = (q @ k.transpose(-2, -1) / math.sqrt(c.head_dim)).softmax(-1)  # no mask
        z = z + layer.self_attn.W_O((weights @ v).transpose(1, 2).reshape(B, L, D))
        z = z + layer.linear2(F.gelu(layer.linear1(layer.norms[1](z))))
        all_weights.append(weights)
    return model.head(model.encoder.norm(z)[:, 0]), all_weights


def test_shapes_weights_and_hand_run():
    model = small_model()
    x = images()
    logits = model(x)
    assert logits.shape == (3, 5)
    logits_w, weights = model(x, need_weights=True)
    assert len(weights) == 2 and all(set(w) == {"self_attn"} for w in weights)
    assert all(w["self_attn"].shape == (3, 4, 17, 17) for w in weights)  # 1 + 16 tokens
    expected, expected_weights = hand_run(model, x)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-12)  # fused kernel
    torch.testing.assert_close(logits_w, expected, rtol=0, atol=1e-12)  # reference kernel
    for w, e in zip(weights, expected_weights, strict=True):
        torch.testing.assert_close(w["self_attn"], e, rtol=0, atol=1e-12)
    assert model.encode(x).shape == (3, 17, 16)


def test_config_derived_sizes_and_validation():
    c = small_config(patch_size=4, d_model=24, num_heads=3)
    assert (c.grid_size, c.num_patches, c.patch_dim, c.head_dim, c.dim_feedforward) == (
        2, 4, 48, 8, 96)
    with pytest.raises(ValueError, match="patch_size=3 must divide image_size=8"):
        small_config(patch_size=3)
    with pytest.raises(ValueError, match="d_model=16 must be divisible by num_heads=3"):
        small_config(num_heads=3)
    with pytest.raises(TypeError, match="num_channels must be an int"):
        small_config(num_channels=1.0)
    with pytest.raises(ValueError, match="dropout must be in"):
        small_config(dropout=1.0)
    with pytest.raises(TypeError, match="config must be a ViTConfig"):
        ViT({"image_size": 8})
    with pytest.raises(AttributeError):  # frozen
        small_config().d_model = 8


def test_layers_are_initialised_independently_and_qkv_bias_option():
    model = small_model()
    w0, w1 = (layer.self_attn.W_Q.weight for layer in model.encoder.layers)
    assert not torch.equal(w0, w1)
    no_bias = small_model(qkv_bias=False)
    attn = no_bias.encoder.layers[0].self_attn
    assert attn.W_Q.bias is None and attn.W_K.bias is None and attn.W_V.bias is None
    assert attn.W_O.bias is not None
    expected, _ = hand_run(no_bias, images())
    torch.testing.assert_close(no_bias(images()), expected, rtol=0, atol=1e-12)


def test_the_logits_depend_on_each_diagonal_patch():
    model = small_model()
    x = images(B=1)
    base = model(x)
    for i in range(4):  # change one 2x2 patch per row of the 4x4 grid
        changed = x.clone()
        changed[..., 2 * i:2 * i + 2, 2 * i:2 * i + 2] += 1.0
        assert not torch.allclose(model(changed), base)


def test_bad_inputs_are_named():
    model = small_model()
    with pytest.raises(ValueError, match=r"images has shape \(2, 3, 9, 9\); expected .*"
                                         r"\(B, 3, 8, 8\)"):
        model(images(B=2, size=9))
    with pytest.raises(ValueError, match=r"images has shape \(2, 1, 8, 8\).*3 channel"):
        model(images(B=2, C=1))
    with pytest.raises(TypeError, match="images must be a floating-point tensor, got dtype "
                                        "torch.int64"):
        model(torch.zeros(2, 3, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="images must have 4 dimensions"):
        model(torch.zeros(3, 8, 8, dtype=F64))
    with pytest.raises(TypeError, match="images has dtype torch.float32 .* module's weights "
                                        "are torch.float64"):
        model(images(dtype=torch.float32))
    with pytest.raises(TypeError, match="need_weights must be a bool"):
        model(images(), need_weights=1)


def test_deterministic():
    a, b = small_model(), small_model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.equal(a(images()), b(images()))


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = ViT(small_config(num_channels=1, num_classes=2, d_model=16, num_layers=1))
    # A task only attention to the right patch solves: is the top-left patch bright?
    x = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0, :2, :2].mean((1, 2)) > 0).long()

    def sample(generator):
        i = torch.randint(256, (32,), generator=generator)
        return x[i], y[i]

    result = train(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]), sample, steps=150,
                   lr=3e-3, seed=0)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)
    accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy > 0.9


# --- Hugging Face -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # never download; models are built from a config
        yield pytest.importorskip("transformers")


def hf_config(transformers, **kwargs):
    options = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 24, "image_size": 8, "patch_size": 2, "num_channels": 3,
               "num_labels": 5} | kwargs
    return transformers.ViTConfig(**options)


def hf_classifier(transformers, **kwargs):
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(hf_config(transformers, **kwargs))
    with torch.no_grad():  # HF initialises LayerNorms to the identity: make them count
        for name, p in model.named_parameters():
            if "layernorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.double().eval()


@pytest.mark.parametrize("options", [{}, {"qkv_bias": False},
                                     {"layer_norm_eps": 1e-5, "patch_size": 4}])
def test_equal_to_huggingface_classifier_outputs_and_gradients(transformers, options):
    hf = hf_classifier(transformers, **options)
    assert hf.config._attn_implementation == "sdpa"  # float64 throughout (eager: see below)
    ours = ViT.from_huggingface(hf)
    assert ours.config.layer_norm_eps == hf.config.layer_norm_eps
    x = images().requires_grad_()
    x_hf = x.detach().clone().requires_grad_()
    logits, expected = ours(x), hf(x_hf).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=TOL)
    target = torch.randn_like(logits)  # a random linear loss: every logit's gradient counts
    (logits * target).sum().backward()
    (expected * target).sum().backward()
    torch.testing.assert_close(x.grad, x_hf.grad, rtol=0, atol=TOL)
    hf_params = dict(hf.named_parameters())
    pairs = [(ours.cls_token, "vit.embeddings.cls_token"),
             (ours.position_embeddings, "vit.embeddings.position_embeddings"),
             (ours.encoder.norm.weight, "vit.layernorm.weight"),
             (ours.head.weight, "classifier.weight")]
    for n, layer in enumerate(ours.encoder.layers):
        prefix = f"vit.layers.{n}."
        pairs += [(layer.self_attn.W_Q.weight, prefix + "attention.q_proj.weight"),
                  (layer.self_attn.W_V.weight, prefix + "attention.v_proj.weight"),
                  (layer.self_attn.W_O.bias, prefix + "attention.o_proj.bias"),
                  (layer.norms[0].weight, prefix + "layernorm_before.weight"),
                  (layer.norms[1].bias, prefix + "layernorm_after.bias"),
                  (layer.linear1.weight, prefix + "mlp.fc1.weight"),
                  (layer.linear2.bias, prefix + "mlp.fc2.bias")]
        if options.get("qkv_bias", True):
            pairs.append((layer.self_attn.W_K.bias, prefix + "attention.k_proj.bias"))
    for ours_p, name in pairs:
        torch.testing.assert_close(ours_p.grad, hf_params[name].grad, rtol=0, atol=TOL,
                                   msg=name)
    conv_grad = hf_params["vit.embeddings.patch_embeddings.projection.weight"].grad
    torch.testing.assert_close(ours.patch_embedding.weight.grad,
                               conv_grad.reshape(conv_grad.shape[0], -1), rtol=0, atol=TOL)
    # The copy has exactly as many parameters as the original.
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_equal_to_huggingface_model_last_hidden_state(transformers):
    torch.manual_seed(0)
    hf = transformers.ViTModel(hf_config(transformers)).double().eval()  # with a pooler
    ours = ViT.from_huggingface(hf)
    x = images()
    out = hf(x, interpolate_pos_encoding=True)  # a no-op at the configured size
    torch.testing.assert_close(ours.encode(x), out.last_hidden_state, rtol=0, atol=TOL)


def test_attention_weights_match_huggingface_eager_attention(transformers):
    torch.manual_seed(0)
    hf = transformers.ViTModel(hf_config(transformers), add_pooling_layer=False)
    hf = hf.double().eval()
    hf.set_attn_implementation("eager")  # sdpa returns no weights
    ours = ViT.from_huggingface(hf)
    x = images()
    _, weights = ours.encode(x, need_weights=True)
    expected = hf(x, output_attentions=True).attentions
    assert len(expected) == len(weights) == 2
    # HF's eager kernel takes its softmax in float32 even for float64 inputs: ~1e-8, not 1e-15.
    for w, e in zip(weights, expected, strict=True):
        assert w["self_attn"].shape == e.shape == (3, 4, 17, 17)
        torch.testing.assert_close(w["self_attn"], e, rtol=0, atol=1e-6)


def test_copy_keeps_dtype_and_mode_and_differs_when_a_weight_does(transformers):
    hf = hf_classifier(transformers)
    hf.float().train()
    ours = ViT.from_huggingface(hf)
    assert ours.training and ours.patch_embedding.weight.dtype == torch.float32
    hf.double().eval()
    ours = ViT.from_huggingface(hf)
    with torch.no_grad():
        hf.vit.layers[1].mlp.fc2.weight[0, 0] += 1e-3
    assert (ours(images()) - hf(images()).logits).abs().max() > 1e-6  # the test can fail


def test_from_huggingface_refuses_what_the_course_lacks(transformers):
    with pytest.raises(TypeError, match="ViTModel or ViTForImageClassification, got Linear"):
        ViT.from_huggingface(torch.nn.Linear(2, 2))
    for options, message in (({"hidden_act": "gelu_new"}, "hidden_act='gelu_new'"),
                             ({"image_size": (8, 4)}, "square images"),
                             ({"attention_probs_dropout_prob": 0.1}, "one dropout rate")):
        torch.manual_seed(0)
        hf = transformers.ViTModel(hf_config(transformers, **options))
        with pytest.raises(ValueError, match=message):
            ViT.from_huggingface(hf)


def test_reference_kernel_gives_the_same_numbers():
    model = small_model()
    torch.manual_seed(0)
    ref = ViT(small_config(), attention_fn=reference_attention).double().eval()
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(ref(images()), model(images()), rtol=0, atol=1e-12)
