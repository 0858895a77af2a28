"""The adapter contract for the LLaVA family: LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision."""

from __future__ import annotations

from vlm_adapters.testing import AdapterContract


class TestLlavaContract(AdapterContract):
    adapter_name = "llava"


class TestLlavaNextContract(AdapterContract):
    adapter_name = "llava_next"


class TestLlavaOnevisionContract(AdapterContract):
    adapter_name = "llava_onevision"
