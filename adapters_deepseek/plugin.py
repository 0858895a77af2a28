"""Entry point of the built-in deepseek plugin: registers its adapters like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl

from .adapter import DeepseekVLAdapter, DeepseekVLHybridAdapter


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """Register this family's adapters."""
    register(DeepseekVLAdapter)
    register(DeepseekVLHybridAdapter)
