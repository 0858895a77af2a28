"""Entry point ``paligemma`` in the ``vlm_adapters`` group (see pyproject.toml).

The spec kind and the adapter are registered by import path, so ``vlm-adapters list`` imports
this module only; ``.adapter`` (and transformers) load when the adapter or kind is first used.
"""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import AdapterRef, SpecKindRef, hookimpl
from vlm_adapters.spec import SpecBase

SPEC_KIND = SpecKindRef("paligemma", "vlm_adapters_paligemma.adapter:PaliGemmaSpec")
ADAPTER = AdapterRef(
    "paligemma",
    "vlm_adapters_paligemma.adapter:PaliGemmaAdapter",
    ("paligemma",),
    "paligemma",
    "PaliGemma: stretch to 224/448/896, SigLIP patches, prefix-LM attention",
)


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase] | SpecKindRef], None]) -> None:
    register(SPEC_KIND)


@hookimpl
def register_adapters(register: Callable[[AdapterRef], None]) -> None:
    register(ADAPTER)
