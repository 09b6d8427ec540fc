"""Chapter 5 checkers, beyond the shared harness."""

import torch

from attention_course.exercises.ch05 import check_decoder_masks, check_sublayer
from tests.exercises.mutants_ch05 import decoder_masks, sublayer


def flat(message: str) -> str:
    return " ".join(message.split())


def test_sublayer_in_place_update_is_reported(failure):
    def in_place(x, block, norm, norm_first):
        if norm_first:
            return x.add_(block(norm(x)))
        return norm(x.add_(block(x)))

    assert "modified its input `x` in place" in flat(failure(check_sublayer, in_place))


def test_sublayer_modules_are_copies(failure):
    """A learner who retrains the norm in place gets told, and the reference is unaffected."""

    def retrains_norm(x, block, norm, norm_first):
        out = sublayer(x, block, norm, norm_first)
        with torch.no_grad():
            norm.weight.fill_(1.0)
        return out

    message = flat(failure(check_sublayer, retrains_norm))
    assert "the result is right" in message and "`norm`" in message


def test_sublayer_cases_cover_both_sublayers_both_orders_and_float32():
    seen = []

    def spy(x, block, norm, norm_first):
        seen.append((type(block).__name__, norm_first, x.dtype))
        return sublayer(x, block, norm, norm_first)

    check_sublayer(spy)
    assert len({kind for kind, _, _ in seen}) == 2
    assert {first for _, first, _ in seen} == {True, False}
    assert {dtype for _, _, dtype in seen} == {torch.float32, torch.float64}


def test_decoder_masks_integer_masks_get_a_dtype_message(failure):
    message = failure(check_decoder_masks, lambda *a: tuple(m.long() for m in decoder_masks(*a)))
    assert "dtype torch.int64; expected torch.bool" in message


def test_decoder_mask_cases_pad_beyond_the_longest_sequence():
    seen = []

    def spy(src_lengths, tgt_lengths, src_len, tgt_len):
        seen.append((int(src_lengths.max()), src_len, int(tgt_lengths.max()), tgt_len))
        return decoder_masks(src_lengths, tgt_lengths, src_len, tgt_len)

    check_decoder_masks(spy)
    assert any(s < S and t < T for s, S, t, T in seen)
    assert any(S < T for _, S, _, T in seen) and any(S > T for _, S, _, T in seen)
