"""Entry point of the built-in internvl plugin: registers its spec kind and adapter like any third-party plugin.

Both by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import AdapterRef, SpecKindRef, hookimpl
from vlm_adapters.spec import SpecBase

SPEC_KINDS = (SpecKindRef("internvl_tiles", "adapters_internvl.spec:InternVLTileSpec"),)

ADAPTERS = (
    AdapterRef(
        "internvl",
        "adapters_internvl.adapter:InternVLAdapter",
        ("internvl",),
        "internvl_tiles",
        "InternVL (hf format): 448 px tiles by aspect ratio + thumbnail, 256 tokens per tile, one run",
    ),
)
"""InternVL (transformers-format checkpoints)."""


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase] | SpecKindRef], None]) -> None:
    """This family's spec kinds: ``internvl_tiles``."""
    for ref in SPEC_KINDS:
        register(ref)


@hookimpl
def register_adapters(register: Callable[[AdapterRef], None]) -> None:
    """Register this family's adapters: InternVL (transformers-format checkpoints)."""
    for ref in ADAPTERS:
        register(ref)
