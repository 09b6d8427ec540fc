"""BERT: exact equality with Hugging Face's BERT (MLM logits, sequence and pooled output,
classifier logits, gradients; float64, padding, batch > 1, token types), the bidirectional
attention and its padding mask, the tied MLM decoder, learning, and argument checks."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from attention_course.models.bert import BERT, BERTConfig
from attention_course.train import train

F64 = torch.float64
TOL = 1e-10  # float64: observed differences are ~1e-15
V, L_MAX = 23, 12


def small_config(**kwargs):
    options = {"vocab_size": V, "max_len": L_MAX, "d_model": 16, "num_heads": 4,
               "num_layers": 2, "dim_feedforward": 24, "type_vocab_size": 3} | kwargs
    return BERTConfig(**options)


def small_model(dtype=F64, **kwargs):
    torch.manual_seed(0)
    return BERT(small_config(**kwargs)).to(dtype).eval()


def inputs(B=3, L=9, seed=0):
    """Tokens, a padding mask (row 1 ends in 3 pads, row 2 in 6) and token types."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, L - 3:] = False
    mask[2, 3:] = False
    tokens[~mask] = 0  # PAD
    types = torch.randint(3, (B, L), generator=g)
    return tokens, mask, types


# --- Hugging Face -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # never download; models are built from a config
        yield pytest.importorskip("transformers")


def hf_model(transformers, kind="BertForMaskedLM", **kwargs):
    options = {"vocab_size": V, "hidden_size": 16, "num_hidden_layers": 2,
               "num_attention_heads": 4, "intermediate_size": 24,
               "max_position_embeddings": L_MAX, "type_vocab_size": 3,
               "num_labels": 4} | kwargs
    torch.manual_seed(0)
    model = getattr(transformers, kind)(transformers.BertConfig(**options))
    with torch.no_grad():  # HF starts LayerNorms at the identity and biases at 0: make them count
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.double().eval()


@pytest.mark.parametrize("options", [{}, {"layer_norm_eps": 1e-5, "num_hidden_layers": 3}])
def test_mlm_logits_and_gradients_equal_huggingface(transformers, options):
    hf = hf_model(transformers, **options)
    assert hf.config._attn_implementation == "sdpa"
    ours = BERT.from_huggingface(hf)
    assert ours.config.layer_norm_eps == hf.config.layer_norm_eps
    assert ours.pooler is None and ours.classifier is None  # BertForMaskedLM has neither
    tokens, mask, types = inputs()
    out = ours(tokens, attention_mask=mask, token_type_ids=types)
    ref = hf(tokens, attention_mask=mask.long(), token_type_ids=types,
             output_hidden_states=True)
    real = mask[..., None]  # padding queries are meaningless in both; compare real tokens
    torch.testing.assert_close(out.mlm_logits * real, ref.logits * real, rtol=0, atol=TOL)
    torch.testing.assert_close(out.hidden * real, ref.hidden_states[-1] * real, rtol=0,
                               atol=TOL)
    target = torch.randn_like(out.mlm_logits) * real
    (out.mlm_logits * target).sum().backward()
    (ref.logits * target).sum().backward()
    hf_params = dict(hf.named_parameters())
    pairs = [(ours.word_embeddings.weight, "bert.embeddings.word_embeddings.weight"),
             (ours.token_type_embeddings.weight, "bert.embeddings.token_type_embeddings.weight"),
             (ours.mlm_bias, "cls.predictions.bias"),
             (ours.mlm_norm.weight, "cls.predictions.transform.LayerNorm.weight"),
             (ours.encoder.layers[0].self_attn.W_K.weight,
              "bert.encoder.layer.0.attention.self.key.weight"),
             (ours.encoder.layers[-1].norms[1].bias,
              f"bert.encoder.layer.{len(ours.encoder.layers) - 1}.output.LayerNorm.bias")]
    for mine, name in pairs:
        torch.testing.assert_close(mine.grad, hf_params[name].grad, rtol=0, atol=TOL, msg=name)


def test_padding_rows_equal_huggingface_exactly_with_and_without_a_mask(transformers):
    hf = hf_model(transformers)
    ours = BERT.from_huggingface(hf)
    tokens, _, types = inputs(B=4, L=L_MAX, seed=2)
    expected = hf(tokens, token_type_ids=types).logits
    torch.testing.assert_close(ours(tokens, token_type_ids=types).mlm_logits, expected,
                               rtol=0, atol=TOL)
    # Default token types are all 0, in both.
    torch.testing.assert_close(ours(tokens).mlm_logits, hf(tokens).logits, rtol=0, atol=TOL)


def test_base_model_sequence_and_pooled_output_equal_huggingface(transformers):
    hf = hf_model(transformers, "BertModel")
    ours = BERT.from_huggingface(hf)
    assert ours.pooler is not None and not ours.config.mlm_head
    tokens, mask, types = inputs()
    out = ours(tokens, attention_mask=mask, token_type_ids=types)
    ref = hf(tokens, attention_mask=mask.long(), token_type_ids=types)
    real = mask[..., None]
    torch.testing.assert_close(out.hidden * real, ref.last_hidden_state * real, rtol=0,
                               atol=TOL)
    torch.testing.assert_close(out.pooled, ref.pooler_output, rtol=0, atol=TOL)
    assert out.mlm_logits is None and out.class_logits is None


def test_sequence_classifier_equals_huggingface(transformers):
    hf = hf_model(transformers, "BertForSequenceClassification")
    ours = BERT.from_huggingface(hf)
    tokens, mask, types = inputs()
    out = ours(tokens, attention_mask=mask, token_type_ids=types)
    expected = hf(tokens, attention_mask=mask.long(), token_type_ids=types).logits
    assert out.class_logits.shape == (3, 4)
    torch.testing.assert_close(out.class_logits, expected, rtol=0, atol=TOL)


def test_copy_keeps_dtype_and_train_mode_and_refuses_what_the_course_lacks(transformers):
    hf = hf_model(transformers).float().train()
    ours = BERT.from_huggingface(hf)
    assert ours.training and ours.word_embeddings.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="hidden_act='gelu_new'.*exact GELU"):
        BERT.from_huggingface(hf_model(transformers, hidden_act="gelu_new"))
    with pytest.raises(ValueError, match="hidden_dropout_prob=0.1 and attention_probs"):
        BERT.from_huggingface(hf_model(transformers, attention_probs_dropout_prob=0.2))
    with pytest.raises(ValueError, match="not tied"):
        BERT.from_huggingface(hf_model(transformers, tie_word_embeddings=False))
    with pytest.raises(TypeError, match="model must be a transformers BertModel.*got Linear"):
        BERT.from_huggingface(torch.nn.Linear(2, 2))


# --- the model on its own ---------------------------------------------------------------------


def test_shapes_heads_and_tied_decoder():
    model = small_model(num_labels=5)
    tokens, mask, types = inputs()
    out = model(tokens, attention_mask=mask, token_type_ids=types, need_weights=True)
    assert out.hidden.shape == (3, 9, 16) and out.pooled.shape == (3, 16)
    assert out.mlm_logits.shape == (3, 9, V) and out.class_logits.shape == (3, 5)
    assert len(out.weights) == 2 and out.weights[0]["self_attn"].shape == (3, 4, 9, 9)
    # The decoder is the word-embedding matrix itself (tied), plus its own bias.
    by_hand = F.linear(model.mlm_norm(F.gelu(model.mlm_transform(out.hidden))),
                       model.word_embeddings.weight, model.mlm_bias)
    torch.testing.assert_close(out.mlm_logits, by_hand, rtol=0, atol=TOL)
    model_no_pool = small_model(pooler=False, num_labels=2)
    out = model_no_pool(tokens)
    torch.testing.assert_close(out.class_logits, model_no_pool.classifier(out.hidden[:, 0]),
                               rtol=0, atol=TOL)


def test_attention_is_bidirectional_and_padding_keys_get_no_weight():
    model = small_model()
    tokens, mask, _ = inputs()
    weights = model(tokens, attention_mask=mask, need_weights=True).weights
    for layer in weights:
        w = layer["self_attn"]  # (B, H, L, L)
        assert bool((w[0, :, 0, 1:] > 0).all())  # position 0 sees every later token
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=0, atol=1e-12)
        assert bool((w[~mask[:, None, None, :].expand_as(w)] == 0).all())
    # Changing a later token changes an earlier position's output (no causal mask) ...
    later = tokens.clone()
    later[0, -1] = (later[0, -1] % (V - 1)) + 1
    a, b = model(tokens).hidden, model(later).hidden
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-6
    # ... but changing a padded token changes no real position.
    padded = tokens.clone()
    padded[2, 5] = 7
    a = model(tokens, attention_mask=mask).hidden
    b = model(padded, attention_mask=mask).hidden
    torch.testing.assert_close(a[2, :3], b[2, :3], rtol=0, atol=0)


def test_initialisation_follows_bert():
    model = small_model(dtype=torch.float32, d_model=64, num_heads=4, vocab_size=400)
    std = model.word_embeddings.weight[1:].std().item()
    assert abs(std - 0.02) < 0.002
    assert bool((model.word_embeddings.weight[0] == 0).all())  # PAD row
    assert bool((model.mlm_bias == 0).all()) and bool((model.embedding_norm.weight == 1).all())
    assert model.encoder.layers[0].norm_first is False  # post-LN
    assert not torch.equal(model.encoder.layers[0].linear1.weight,
                           model.encoder.layers[1].linear1.weight)


def test_learns_to_fill_in_a_token_from_the_right_context():
    """Token 1 is a copy of the *last* token: only bidirectional attention can predict it."""
    model = small_model(dtype=torch.float32, vocab_size=12, max_len=6, dim_feedforward=32)
    mask_id = 11

    def sample(g):
        tokens = torch.randint(3, 11, (32, 6), generator=g)
        tokens[:, 1] = tokens[:, -1]
        inputs = tokens.clone()
        inputs[:, 1] = mask_id
        return inputs, tokens[:, 1]

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x).mlm_logits[:, 1], y)

    result = train(model, loss_fn, sample, steps=150, lr=1e-2, seed=0)
    x, y = sample(torch.Generator().manual_seed(9))
    accuracy = (model(x).mlm_logits[:, 1].argmax(-1) == y).float().mean().item()
    assert result.losses[-1] < 0.3 * result.losses[0]
    assert accuracy > 0.9  # chance: 1/8


# --- checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"d_model": 15}, ValueError, "d_model=15 must be divisible by num_heads=4"),
    ({"vocab_size": 0}, ValueError, "vocab_size must be >= 1, got 0"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0.0, 1.0\), got 1.0"),
    ({"pad_id": V}, ValueError, r"pad_id=23 must be a token id in \[0, 22\]"),
    ({"pooler": 1}, TypeError, "pooler must be a bool"),
    ({"num_labels": -1}, ValueError, "num_labels must be >= 0"),
])
def test_config_is_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_config(**kwargs)


def test_config_is_frozen_and_fills_dim_feedforward():
    config = small_config(dim_feedforward=None)
    assert config.dim_feedforward == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 32
    with pytest.raises(TypeError, match="config must be a BERTConfig, got dict"):
        BERT({"vocab_size": V})


def test_bad_inputs_are_named():
    model = small_model()
    tokens, mask, types = inputs()
    cases = [
        (dict(tokens=tokens.float()), TypeError, "tokens must be an integer tensor"),
        (dict(tokens=tokens + V), ValueError, r"tokens has token ids in .*\[0, 22\]"),
        (dict(tokens=torch.ones(1, L_MAX + 1, dtype=torch.long)), ValueError,
         r"1 <= L <= max_len=12"),
        (dict(attention_mask=mask.long()), TypeError,
         "attention_mask must be a boolean tensor.*got dtype torch.int64"),
        (dict(attention_mask=mask[:, :4]), ValueError,
         r"attention_mask has shape \(3, 4\); expected the shape of tokens, \(B, L\) = \(3, 9\)"),
        (dict(attention_mask=torch.zeros_like(mask)), ValueError, "row without any real"),
        (dict(token_type_ids=types + 3), ValueError, r"token_type_ids has token ids"),
        (dict(token_type_ids=types[:2]), ValueError, r"token_type_ids has shape \(2, 9\)"),
        (dict(need_weights=1), TypeError, "need_weights must be a bool"),
    ]
    for kwargs, error, match in cases:
        args = {"tokens": tokens} | kwargs
        with pytest.raises(error, match=match):
            model(args.pop("tokens"), **args)
