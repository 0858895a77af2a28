"""Entry point of the built-in idefics3 plugin: registers its spec kind and adapters like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl
from vlm_adapters.spec import SpecBase


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """The ``idefics3_split`` kind."""
    from .spec import Idefics3SplitSpec

    register(Idefics3SplitSpec)


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """The ``idefics3`` and ``smolvlm`` adapters."""
    from .adapter import Idefics3Adapter, SmolVLMAdapter

    register(Idefics3Adapter)
    register(SmolVLMAdapter)
