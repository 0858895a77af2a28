"""Entry point of the built-in qwen plugin: registers its adapters like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """Register this family's adapters: Qwen2-VL, Qwen2.5-VL and Qwen3-VL."""
    from .adapter import Qwen2_5_VLAdapter, Qwen2VLAdapter, Qwen3VLAdapter

    for cls in (Qwen2VLAdapter, Qwen2_5_VLAdapter, Qwen3VLAdapter):
        register(cls)
