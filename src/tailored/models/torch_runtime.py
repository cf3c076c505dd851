"""What the PyTorch families (SASRec, LightGCN) share: importing PyTorch only when one
trains or scores, so ``import tailored`` stays light, its thread settings, and a ``fit``
that reports after every epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Self

from tailored.dataset import Dataset

from .base import Recommender


class EpochTrained(Recommender):
    """A family trained epoch by epoch: its ``_fit`` calls ``self._after_epoch(epoch)``
    after each epoch, when given, and stops when it returns true."""

    _after_epoch: Callable[[int], bool] | None = None

    def fit(self, data: Dataset, *, after_epoch: Callable[[int], bool] | None = None) -> Self:
        """Learn from ``data`` from scratch; return ``self``.

        ``after_epoch(epoch)``, if given, is called after each epoch (counted from 1)
        with the model ready to score, for early stopping on a validation metric: when
        it returns true, training stops there and ``config.epochs`` becomes the number
        of epochs trained, so refitting with that config gives the same model (the
        step has no schedule, so the first N epochs of a longer run are a run of N).
        """
        self._after_epoch = after_epoch
        try:
            return super().fit(data)
        finally:
            self._after_epoch = None


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
