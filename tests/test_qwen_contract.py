"""The framework's adapter contract (``vlm_adapters.testing``), run for every Qwen-VL adapter."""

from __future__ import annotations

from vlm_adapters.testing import AdapterContract


class TestQwen2VLContract(AdapterContract):
    adapter_name = "qwen2_vl"


class TestQwen2_5_VLContract(AdapterContract):
    adapter_name = "qwen2_5_vl"


class TestQwen3VLContract(AdapterContract):
    adapter_name = "qwen3_vl"
