"""Positional encodings: the paper's formula, the relative-shift rotation, the two modules, and
their argument checks."""

import math

import numpy as np
import pytest
import torch

from attention_course.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    relative_shift_matrix,
    sinusoidal_encoding,
    sinusoidal_frequencies,
)

f64 = torch.float64


def test_sinusoidal_encoding_equals_the_paper_formula_at_sampled_positions():
    d = 10
    pe = sinusoidal_encoding(50, d, dtype=f64)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i], math.sin(angle), abs_tol=1e-12)
            assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-12)
    assert sinusoidal_encoding(4, 7).shape == (4, 7)  # odd sizes work


@pytest.mark.parametrize("k", [1, 5, -3])
def test_shift_by_k_is_one_linear_map_for_every_position(k):
    pe = sinusoidal_encoding(64, 16, dtype=f64)
    M = relative_shift_matrix(k, 16)
    positions = torch.arange(max(0, -k), 64 - max(0, k))
    assert torch.allclose(pe[positions] @ M.T, pe[positions + k], atol=1e-10)


def test_positional_modules_add_to_the_input():
    x = torch.zeros(2, 5, 6)
    assert torch.allclose(SinusoidalPositionalEncoding(6, 10)(x)[1], sinusoidal_encoding(5, 6))
    learned = LearnedPositionalEmbedding(6, 10)
    assert torch.equal(learned(x)[0], learned.embedding.weight[:5])
    with pytest.raises(ValueError, match="max_len"):
        learned(torch.zeros(1, 11, 6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, f64])
def test_every_floating_dtype_is_the_float64_table_rounded_once(dtype):
    assert torch.equal(sinusoidal_encoding(9, 6, dtype=dtype), sinusoidal_encoding(9, 6, dtype=f64)
                       .to(dtype))
    assert relative_shift_matrix(2, 6, dtype=dtype).dtype == dtype


@pytest.mark.parametrize("module", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, f64])
def test_modules_keep_the_input_dtype(module, dtype):
    out = module(4, 8)(torch.zeros(2, 3, 4, dtype=dtype))
    assert out.dtype == dtype and out.shape == (2, 3, 4)


def test_float64_inputs_get_a_float64_accurate_sinusoidal_encoding():
    out = SinusoidalPositionalEncoding(6, 8)(torch.zeros(1, 8, 6, dtype=f64))
    assert torch.equal(out[0], sinusoidal_encoding(8, 6, dtype=f64))
    # float32 inputs get exactly what they always got: the float64 table rounded to float32.
    out32 = SinusoidalPositionalEncoding(6, 8)(torch.zeros(1, 8, 6))
    assert torch.equal(out32[0], sinusoidal_encoding(8, 6, dtype=torch.float32))


def test_learned_table_gets_gradients_through_the_dtype_cast():
    learned = LearnedPositionalEmbedding(4, 8)
    learned(torch.zeros(2, 3, 4, dtype=f64)).sum().backward()
    assert learned.embedding.weight.grad[:3].eq(2).all()  # two batch rows per position
    assert learned.embedding.weight.grad[3:].eq(0).all()


@pytest.mark.parametrize("module", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
@pytest.mark.parametrize("x", [torch.zeros(2, 0, 4), torch.zeros(0, 3, 4),
                               torch.zeros(4, 3, 2).transpose(0, 2)],
                         ids=["L=0", "B=0", "non-contiguous"])
def test_edge_shapes_work(module, x):
    assert module(4, 8)(x).shape == x.shape


BAD_SIZES = [(0, ValueError, [">= 1", "0"]), (-1, ValueError, ["-1"]),
             (2.0, TypeError, ["int", "float"]), (True, TypeError, ["bool"]),
             (None, TypeError, ["NoneType"]), ("4", TypeError, ["str"])]
BAD_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64, "float32", None,
              float, np.float32]


def _assert_raises(fn, error, words):
    with pytest.raises(error) as info:
        fn()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("value, error, words", BAD_SIZES, ids=[repr(r[0]) for r in BAD_SIZES])
@pytest.mark.parametrize("name", ["max_len", "d_model"])
def test_sinusoidal_encoding_rejects_bad_sizes(name, value, error, words):
    kwargs = {"max_len": 4, "d_model": 4} | {name: value}
    _assert_raises(lambda: sinusoidal_encoding(kwargs["max_len"], kwargs["d_model"]), error,
                   [name, *words])


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=repr)
@pytest.mark.parametrize("function", [lambda dtype: sinusoidal_encoding(4, 4, dtype=dtype),
                                      lambda dtype: relative_shift_matrix(1, 4, dtype=dtype)],
                         ids=["sinusoidal_encoding", "relative_shift_matrix"])
def test_non_floating_dtypes_are_refused(function, dtype):
    expected = "floating-point dtype" if isinstance(dtype, torch.dtype) else "torch.dtype"
    _assert_raises(lambda: function(dtype), TypeError, ["dtype", expected])


BAD_SHIFT = [
    ({"k": 1.5}, TypeError, ["k", "float"]),
    ({"k": True}, TypeError, ["k", "bool"]),
    ({"k": None}, TypeError, ["k", "NoneType"]),
    ({"d_model": 0}, ValueError, ["d_model", ">= 1"]),
    ({"d_model": -3}, ValueError, ["d_model", "-3"]),
    ({"d_model": 2.0}, TypeError, ["d_model", "float"]),
    ({"d_model": True}, TypeError, ["d_model", "bool"]),
]


@pytest.mark.parametrize("kwargs, error, words", BAD_SHIFT, ids=[repr(r[0]) for r in BAD_SHIFT])
def test_relative_shift_matrix_rejects(kwargs, error, words):
    kwargs = {"k": 1, "d_model": 4} | kwargs
    _assert_raises(lambda: relative_shift_matrix(**kwargs), error, words)


BAD_BASE = [(0, ValueError, ["> 0"]), (-1.0, ValueError, ["-1.0"]),
            (float("nan"), ValueError, ["finite"]), (float("inf"), ValueError, ["finite"]),
            (True, TypeError, ["bool"]), ("1e4", TypeError, ["str"])]


@pytest.mark.parametrize("base, error, words", BAD_BASE, ids=[repr(r[0]) for r in BAD_BASE])
def test_sinusoidal_frequencies_rejects_bad_bases(base, error, words):
    _assert_raises(lambda: sinusoidal_frequencies(4, base), error, ["base", *words])


MODULES = [SinusoidalPositionalEncoding, LearnedPositionalEmbedding]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("value, error, words", BAD_SIZES, ids=[repr(r[0]) for r in BAD_SIZES])
@pytest.mark.parametrize("name", ["d_model", "max_len"])
def test_module_constructors_reject_bad_sizes(module, name, value, error, words):
    kwargs = {"d_model": 4, "max_len": 8} | {name: value}
    _assert_raises(lambda: module(**kwargs), error, [name, *words])


BAD_X = [
    ("int", torch.zeros(2, 3, 4, dtype=torch.long), TypeError, ["x", "floating", "int64"]),
    ("bool", torch.zeros(2, 3, 4, dtype=torch.bool), TypeError, ["x", "floating", "bool"]),
    ("complex", torch.zeros(2, 3, 4, dtype=torch.complex64), TypeError, ["x", "complex64"]),
    ("2-D", torch.zeros(3, 4), ValueError, ["x", "3 dimensions", "(3, 4)"]),
    ("4-D", torch.zeros(1, 2, 3, 4), ValueError, ["x", "3 dimensions"]),
    ("L > max_len", torch.zeros(2, 9, 4), ValueError, ["x", "positions up to 8", "max_len = 8"]),
    ("D != d_model", torch.zeros(2, 3, 5), ValueError, ["x", "(2, 3, 5)", "d_model = 4"]),
    ("D = 1 would broadcast", torch.zeros(2, 3, 1), ValueError, ["x", "d_model = 4"]),
    ("list", [[[0.0] * 4] * 3], TypeError, ["x", "torch.Tensor", "list"]),
    ("sparse", torch.zeros(2, 3, 4).to_sparse(), TypeError, ["x", "dense"]),
]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("case, x, error, words", BAD_X, ids=[r[0] for r in BAD_X])
def test_module_forward_rejects(module, case, x, error, words):
    _assert_raises(lambda: module(4, 8)(x), error, words)


@pytest.mark.parametrize("module", MODULES)
def test_start_continues_the_positions_of_a_sequence_fed_in_pieces(module):
    torch.manual_seed(0)
    m = module(4, 8)
    x = torch.randn(2, 7, 4)
    whole = m(x)
    pieces = torch.cat([m(x[:, :3]), m(x[:, 3:4], start=3), m(x[:, 4:], start=4)], dim=1)
    assert torch.equal(pieces, whole)
    assert not torch.equal(m(x[:, 3:4]), whole[:, 3:4])  # start matters
    _assert_raises(lambda: m(x[:, :2], start=7), ValueError,
                   ["start = 7", "positions up to 8", "max_len = 8"])
    _assert_raises(lambda: m(x, start=-1), ValueError, ["start", ">= 0"])
