"""What the PyTorch families (SASRec, LightGCN) share: importing PyTorch only when one
trains or scores, so ``import tailored`` stays light, and its thread settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


def require_torch(family: str) -> ModuleType:
    """PyTorch, or an error that says which family needs it and how to install it."""
    try:
        import torch
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"{family} needs PyTorch; install it with: pip install 'tailored[torch]'"
        ) from error
    return torch


@contextmanager
def torch_settings(threads: int, deterministic: bool) -> Iterator[None]:
    """Use ``threads`` CPU threads (and, if asked, only deterministic kernels) for a while.

    The caller's settings come back afterwards. Inference without gradients is
    deterministic on CPU anyway, so scoring leaves the global kernel choice alone.
    """
    import torch

    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)
