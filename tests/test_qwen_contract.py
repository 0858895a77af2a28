"""The framework's adapter contract (``vlm_adapters.testing``), run for every Qwen-VL adapter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vlm_adapters.testing import AdapterContract


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids thread-pool stalls on a busy 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TestQwen2VLContract(AdapterContract):
    adapter_name = "qwen2_vl"


class TestQwen2_5_VLContract(AdapterContract):
    adapter_name = "qwen2_5_vl"


class TestQwen3VLContract(AdapterContract):
    adapter_name = "qwen3_vl"
