"""Small helpers shared by the test modules (fixtures live in ``conftest.py``)."""

import torch

f64 = torch.float64


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = f64) -> torch.Tensor:
    """Standard-normal test data from a private generator (the global RNG stays untouched)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
