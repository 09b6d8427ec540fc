"""utils: parameter counting and showing the package's source."""

import pytest
import torch
from torch import nn

from attention_course.utils import count_parameters, show_source


def test_count_parameters_counts_every_scalar_once():
    layer = nn.Linear(4, 3)  # 4*3 weights + 3 biases
    assert count_parameters(layer) == 15
    tied = nn.Sequential(layer, layer)  # the same parameters twice: counted once
    assert count_parameters(tied) == 15
    with pytest.raises(TypeError, match="module"):
        count_parameters(torch.zeros(3))


def test_show_source_shows_the_running_code():
    shown = show_source(count_parameters)
    text = shown if isinstance(shown, str) else shown.data
    assert text.startswith("def count_parameters(")
