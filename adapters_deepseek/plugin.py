"""Entry point of the built-in deepseek plugin: registers its adapters like any third-party plugin.

Adapters are registered by import path (``AdapterRef``), so ``vlm-adapters list`` reads this
module only; ``adapters_deepseek.adapter`` (and torch) load when an adapter is first used.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef
from vlm_adapters.adapter_ref import ref_hooks
from vlm_adapters.remote_code import refuse_model_type

ADAPTERS = (
    AdapterRef(
        "deepseek_vl",
        "adapters_deepseek.adapter:DeepseekVLAdapter",
        ("deepseek_vl",),
        "fixed",
        "DeepSeek-VL 1.3B (SigLIP): pad to square, 384x384, 24x24 = 576 image tokens",
    ),
    AdapterRef(
        "deepseek_vl_hybrid",
        "adapters_deepseek.adapter:DeepseekVLHybridAdapter",
        ("deepseek_vl_hybrid",),
        "fixed",
        "DeepSeek-VL 7B hybrid (SigLIP 384 + SAM 1024): padded at 1024, 24x24 = 576 image tokens",
    ),
)
"""DeepSeek-VL 1.3B and the 7B hybrid, in the transformers format (``deepseek_vl*`` model types)."""


register_adapters, register_spec_kinds = ref_hooks(ADAPTERS)


TRANSFORMERS_CHECKPOINTS = ("deepseek-community/deepseek-vl-1.3b-chat", "deepseek-community/deepseek-vl-7b-chat")
"""Public DeepSeek-VL checkpoints in the transformers format (the ones transformers documents)."""


check_checkpoint = refuse_model_type(
    "multi_modality",
    "the deepseek-ai/deepseek-vl-* repositories",
    ("deepseek_vl", "deepseek_vl_hybrid"),
    TRANSFORMERS_CHECKPOINTS,
)
"""Refuse the original remote-code DeepSeek-VL format by name."""
