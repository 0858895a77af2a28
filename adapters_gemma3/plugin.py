"""Entry point of the built-in gemma3 plugin: registers its spec kind and adapter like any third-party plugin.

Both by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef, SpecKindRef
from vlm_adapters.adapter_ref import ref_hooks

SPEC_KINDS = (SpecKindRef("pan_and_scan", "adapters_gemma3.spec:PanAndScanSpec"),)

ADAPTERS = (
    AdapterRef(
        "gemma3",
        "adapters_gemma3.adapter:Gemma3Adapter",
        ("gemma3",),
        "pan_and_scan",
        "Gemma 3: square SigLIP views pooled to a 16x16 grid; optional pan-and-scan crops, each its own run",
    ),
)
"""Gemma 3 (pan-and-scan on or off, as the processor says)."""

register_adapters, register_spec_kinds = ref_hooks(ADAPTERS, SPEC_KINDS)
