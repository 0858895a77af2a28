"""Entry point of the built-in gemma3 plugin: registers its adapter and spec kind like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl
from vlm_adapters.spec import SpecBase


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """Register ``pan_and_scan``: square views of the whole image and of its crops, each its own run."""
    from .spec import PanAndScanSpec

    register(PanAndScanSpec)


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """Register the Gemma 3 adapter."""
    from .adapter import Gemma3Adapter

    register(Gemma3Adapter)
