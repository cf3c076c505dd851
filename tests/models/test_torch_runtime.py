"""The PyTorch families' shared runtime: a clear error without PyTorch, settings restored."""

import sys

import pytest
import torch

from tailored.models.torch_runtime import require_torch, torch_settings


def test_without_pytorch_the_error_names_the_family_and_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes ``import torch`` fail
    with pytest.raises(ModuleNotFoundError, match=r"LightGCN needs PyTorch.*tailored\[torch\]"):
        require_torch("LightGCN")


def test_thread_and_kernel_settings_come_back_after_the_block() -> None:
    threads = torch.get_num_threads()
    with torch_settings(threads=1, deterministic=True):
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
