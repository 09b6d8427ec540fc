"""Fixtures shared by every test: each test must leave torch's global settings as it found
them, so that no test passes or fails because of another one's side effects."""

import pytest
import torch


@pytest.fixture(autouse=True)
def torch_global_state_is_restored():
    """Fail a test that changes torch's default dtype, grad mode or thread count."""
    before = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads())
    yield
    after = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads())
    assert after == before, f"torch's global state changed: {before} -> {after}"
