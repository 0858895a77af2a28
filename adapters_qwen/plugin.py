"""Entry point of the built-in qwen plugin: registers its adapters like any third-party plugin.

Adapters are registered by import path (``AdapterRef``), so ``vlm-adapters list`` reads this
module only; ``adapters_qwen.adapter`` (and torch) load when an adapter is first used.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef
from vlm_adapters.adapter_ref import ref_hooks

ADAPTERS = (
    AdapterRef(
        "qwen2_vl",
        "adapters_qwen.adapter:Qwen2VLAdapter",
        ("qwen2_vl",),
        "dynamic",
        "Qwen2-VL: dynamic grid (patch 14, 2x2 merge), mrope; stock Qwen2VLProcessor",
    ),
    AdapterRef(
        "qwen2_5_vl",
        "adapters_qwen.adapter:Qwen2_5_VLAdapter",
        ("qwen2_5_vl",),
        "dynamic",
        "Qwen2.5-VL: dynamic grid (patch 14, 2x2 merge), windowed vision tower, mrope",
    ),
    AdapterRef(
        "qwen3_vl",
        "adapters_qwen.adapter:Qwen3VLAdapter",
        ("qwen3_vl",),
        "dynamic",
        "Qwen3-VL: dynamic grid (patch 16, 2x2 merge), deepstack, interleaved mrope",
    ),
)
"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL."""

register_adapters, register_spec_kinds = ref_hooks(ADAPTERS)
