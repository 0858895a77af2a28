"""The vlm-adapters contract kit on both DeepSeek-VL adapters (tiny random models)."""

from __future__ import annotations

from vlm_adapters.testing import AdapterContract


class TestDeepseekVL(AdapterContract):
    adapter_name = "deepseek_vl"
    spec_size_count = 30  # test_deepseek_spec.py checks 1000+ sizes against the stock processor


class TestDeepseekVLHybrid(AdapterContract):
    adapter_name = "deepseek_vl_hybrid"
    spec_size_count = 30
