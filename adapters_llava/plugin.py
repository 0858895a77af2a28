"""Entry point of the built-in llava plugin: registers its spec kinds and adapters like any plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl
from vlm_adapters.spec import SpecBase


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """``anyres`` (LLaVA-NeXT, OneVision) and ``center_crop`` (CLIP-style resize and crop)."""
    from .spec import AnyresSpec, CenterCropSpec

    register(AnyresSpec)
    register(CenterCropSpec)


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision."""
    from .adapter import LlavaAdapter, LlavaNextAdapter, LlavaOnevisionAdapter

    for cls in (LlavaAdapter, LlavaNextAdapter, LlavaOnevisionAdapter):
        register(cls)
