"""Entry point of the built-in gemma3 plugin: registers its spec kind and adapter like any third-party plugin.

Both by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import AdapterRef, SpecKindRef, hookimpl
from vlm_adapters.spec import SpecBase

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


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase] | SpecKindRef], None]) -> None:
    """This family's spec kinds: ``pan_and_scan``."""
    for ref in SPEC_KINDS:
        register(ref)


@hookimpl
def register_adapters(register: Callable[[AdapterRef], None]) -> None:
    """Register this family's adapters: Gemma 3 (pan-and-scan on or off, as the processor says)."""
    for ref in ADAPTERS:
        register(ref)
