"""Small helpers shared by the test modules (fixtures live in ``conftest.py``)."""

import torch

f64 = torch.float64


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = f64) -> torch.Tensor:
    """Standard-normal test data from a private generator (the global RNG stays untouched)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_raises_naming(call, error: type[Exception], words) -> None:
    """``call()`` raises ``error`` whose message contains every one of ``words`` (the argument's
    name, what it got, what was expected)."""
    import pytest

    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
