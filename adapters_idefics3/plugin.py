"""Entry point of the built-in idefics3 plugin: registers its spec kind and adapters like any third-party plugin.

All by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef, SpecKindRef
from vlm_adapters.adapter_ref import ref_hooks

SPEC_KINDS = (SpecKindRef("idefics3_split", "adapters_idefics3.spec:Idefics3SplitSpec"),)

ADAPTERS = (
    AdapterRef(
        "idefics3",
        "adapters_idefics3.adapter:Idefics3Adapter",
        ("idefics3",),
        "idefics3_split",
        "Idefics3: 364 px sub-images + global view, 169 tokens each, one run per view between markers",
    ),
    AdapterRef(
        "smolvlm",
        "adapters_idefics3.adapter:SmolVLMAdapter",
        ("smolvlm",),
        "idefics3_split",
        "SmolVLM: 512 px sub-images + global view, 64 tokens each, one run per view between markers",
    ),
)
"""Idefics3 and SmolVLM."""

register_adapters, register_spec_kinds = ref_hooks(ADAPTERS, SPEC_KINDS)
