"""Entry point of the built-in llava plugin: registers its spec kinds and adapters like any plugin.

All by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef, SpecKindRef
from vlm_adapters.adapter_ref import ref_hooks

SPEC_KINDS = (
    SpecKindRef("anyres", "adapters_llava.spec:AnyresSpec"),
    SpecKindRef("center_crop", "adapters_llava.spec:CenterCropSpec"),
)

ADAPTERS = (
    AdapterRef(
        "llava",
        "adapters_llava.adapter:LlavaAdapter",
        ("llava",),
        "fixed",
        "LLaVA-1.5: pad to a mean-coloured square, resize, CLIP patches without CLS "
        "(centre-crop processors: spec kind center_crop)",
    ),
    AdapterRef(
        "llava_next",
        "adapters_llava.adapter:LlavaNextAdapter",
        ("llava_next",),
        "anyres",
        "LLaVA-NeXT (1.6): base view + anyres tiles, unpadded, one newline token per row",
    ),
    AdapterRef(
        "llava_onevision",
        "adapters_llava.adapter:LlavaOnevisionAdapter",
        ("llava_onevision",),
        "anyres",
        "LLaVA-OneVision: SigLIP anyres_max_9 (big grids downsampled), newline per row",
    ),
)
"""LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision."""

register_adapters, register_spec_kinds = ref_hooks(ADAPTERS, SPEC_KINDS)
