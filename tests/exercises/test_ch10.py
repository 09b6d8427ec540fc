"""Chapter 10 checkers, beyond the shared harness: the bucket reference is Hugging Face's T5
rule, the masking reference has BERT's rates, the top-k reference is Hugging Face's top-k
filter, and the framework reports a learner who corrupts ``tokens`` or ``logits`` in place."""

import os

import pytest
import torch

from attention_course.exercises import ch10
from attention_course.exercises.ch10 import check_mlm_mask, check_top_k_sampling
from tests.exercises.mutants_ch10 import mlm_mask, top_k_filter

MLM, TOP_K, BUCKET = ch10.CHECKERS


def flat(message: str) -> str:
    return " ".join(message.split())


# --- relative_position_bucket ---------------------------------------------------------

@pytest.fixture(scope="module")
def hf_bucket():
    os.environ["HF_HUB_OFFLINE"] = "1"
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    return t5.T5Attention._relative_position_bucket


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"),
                         [(32, 128), (16, 32), (8, 20), (64, 256), (10, 50), (32, 64)])
def test_bucket_reference_is_hugging_faces(hf_bucket, bidirectional, num_buckets,
                                           max_distance):
    rp = torch.arange(-2000, 2001)
    expected = hf_bucket(rp, bidirectional=bidirectional, num_buckets=num_buckets,
                         max_distance=max_distance)
    got = BUCKET.reference(rp, bidirectional, num_buckets, max_distance)
    assert got.dtype == torch.int64
    assert torch.equal(got, expected)


def test_bucket_cases_equal_hugging_face_and_reach_every_bucket(hf_bucket):
    for case in BUCKET.cases():
        args = case.inputs
        got = BUCKET.reference(*args.values())
        assert torch.equal(got, hf_bucket(*args.values()))
    # the long spans reach the clamp (distances beyond max_distance) and every bucket
    span = [c.inputs for c in BUCKET.cases() if c.inputs["relative_position"].dim() == 1]
    assert span and all(c["relative_position"].abs().max() > c["max_distance"] for c in span)
    for c in span:
        buckets = set(BUCKET.reference(*c.values()).tolist())
        nb = c["num_buckets"]
        if c["bidirectional"]:  # rp > 0 starts at distance 1: bucket nb // 2 stays empty
            assert buckets == set(range(nb)) - {nb // 2}
        else:
            assert buckets == set(range(nb))


def test_bucket_spells_out_the_sign_convention():
    rp = torch.tensor([-1, 0, 1])  # key one step before, at, and after the query
    assert BUCKET.reference(rp, True, 32, 128).tolist() == [1, 0, 17]
    assert BUCKET.reference(rp, False, 32, 128).tolist() == [1, 0, 0]


# --- mlm_mask ------------------------------------------------------------------------

def test_mlm_reference_has_berts_rates_on_a_large_input():
    g = torch.Generator().manual_seed(0)
    B, L = 64, 512
    tokens = torch.randint(4, 1000, (B, L), generator=g)
    tokens[:, 0], tokens[:, -1] = 1, 2
    select_u, replace_u = torch.rand(B, L, generator=g), torch.rand(B, L, generator=g)
    random_tokens = torch.randint(4, 1000, (B, L), generator=g)
    special = torch.tensor([0, 1, 2, 3])
    corrupted, labels = MLM.reference(tokens, select_u, replace_u, random_tokens, 3, special)
    selected = labels != -100
    words = ~torch.isin(tokens, special)
    assert not selected[~words].any()  # specials never selected
    assert abs(selected[words].float().mean().item() - 0.15) < 0.005
    assert torch.equal(labels[selected], tokens[selected])
    assert torch.equal(corrupted[~selected], tokens[~selected])
    sel = corrupted[selected]
    masked = (sel == 3).float().mean().item()
    swapped = (sel == random_tokens[selected]).float().mean().item()
    kept = (sel == tokens[selected]).float().mean().item()
    assert abs(masked - 0.8) < 0.015 and abs(swapped - 0.1) < 0.01 and abs(kept - 0.1) < 0.01


def test_mlm_cases_exercise_every_rule():
    for case in MLM.cases():
        x = case.inputs
        selected = (x["select_u"] < 0.15) & ~torch.isin(x["tokens"], x["special_ids"])
        drawn_special = (x["select_u"] < 0.15) & torch.isin(x["tokens"], x["special_ids"])
        assert drawn_special.any()
        for lo, hi in ((0, 0.8), (0.8, 0.9), (0.9, 1.0)):
            assert (selected & (x["replace_u"] >= lo) & (x["replace_u"] < hi)).any()
        assert (x["random_tokens"] != x["tokens"]).all()


def test_mlm_in_place_corruption_is_reported(failure):
    def in_place(tokens, select_u, replace_u, random_tokens, mask_id, special_ids):
        corrupted, labels = mlm_mask(tokens, select_u, replace_u, random_tokens, mask_id,
                                     special_ids)
        tokens.copy_(corrupted)
        return tokens, labels

    message = flat(failure(check_mlm_mask, in_place))
    assert "the result is right, but your function modified its input `tokens`" in message


# --- top_k_filter ------------------------------------------------------------------------

def test_top_k_reference_is_hugging_faces_filter():
    os.environ["HF_HUB_OFFLINE"] = "1"
    generation = pytest.importorskip("transformers.generation.logits_process")
    for case in TOP_K.cases():
        logits, k = case.inputs["logits"], case.inputs["k"]
        warper = generation.TopKLogitsWarper(top_k=k)
        expected = warper(torch.zeros(logits.shape[0], 1, dtype=torch.long), logits.clone())
        assert torch.equal(TOP_K.reference(logits, k), expected)


def test_top_k_keeps_ties_and_at_least_k():
    for case in TOP_K.cases():
        logits, k = case.inputs["logits"], case.inputs["k"]
        out = TOP_K.reference(logits, k)
        kept = torch.isfinite(out)
        assert (kept.sum(-1) >= min(k, logits.shape[-1])).all()
        assert torch.equal(out[kept], logits[kept])
    ties = [c for c in TOP_K.cases() if "ties" in c.description]
    assert any((torch.isfinite(TOP_K.reference(*c.inputs.values())).sum(-1)
                > c.inputs["k"]).any() for c in ties)


def test_top_k_in_place_filter_is_reported(failure):
    def in_place(logits, k):
        logits[~torch.isfinite(top_k_filter(logits, k))] = float("-inf")
        return logits

    message = flat(failure(check_top_k_sampling, in_place))
    assert "the result is right, but your function modified its input `logits`" in message
