"""Gradient checkpointing gives the same numbers and saves memory."""

import pytest
import torch
from torch import nn

from attention_course.bench import peak_memory_bytes_each, run_stack_forward_backward
from attention_course.checkpointing import run_layers
from attention_course.kernels import reference_attention
from attention_course.transformer import EncoderLayer


def _stack(n=3, d=16):
    torch.manual_seed(0)
    return nn.ModuleList(EncoderLayer(d, 2, 32, dropout=0.0, attention_fn=reference_attention)
                         for _ in range(n))


def test_checkpointed_gradients_are_identical():
    stack, x = _stack(), torch.randn(2, 9, 16)
    grads = {}
    for ckpt in (False, True):
        run_stack_forward_backward(stack, x, ckpt)
        grads[ckpt] = [p.grad.clone() for p in stack.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(grads[False], grads[True], strict=True))
    with torch.no_grad():
        assert torch.equal(run_layers(stack, x), run_layers(stack, x, checkpoint=True))


def test_checkpointing_saves_no_activations_of_inner_layers():
    stack = _stack()
    x = torch.randn(1, 8, 16, requires_grad=True)
    saved = {}
    for ckpt in (False, True):
        count = []

        def pack(t, count=count):
            count.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run_layers(stack, x, checkpoint=ckpt)
        saved[ckpt] = len(count)
    assert saved[True] < saved[False] / 5


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="Linux only")
def test_checkpointing_lowers_peak_memory():
    stack, x = _stack(4, 32), torch.randn(1, 512, 32)
    plain, ckpt = peak_memory_bytes_each([(run_stack_forward_backward, (stack, x, False)),
                                          (run_stack_forward_backward, (stack, x, True))])
    assert plain > 1.5 * ckpt


def test_run_layers_checks_its_arguments():
    with pytest.raises(TypeError):
        run_layers(_stack(1), torch.randn(1, 4, 16), checkpoint=1)
    with pytest.raises(TypeError):
        run_layers([3], torch.randn(1, 4, 16))
