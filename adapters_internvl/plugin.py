"""Entry point of the built-in internvl plugin: registers its spec kind and adapter like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl
from vlm_adapters.spec import SpecBase


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """The ``internvl_tiles`` kind."""
    from .spec import InternVLTileSpec

    register(InternVLTileSpec)


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    """The ``internvl`` adapter."""
    from .adapter import InternVLAdapter

    register(InternVLAdapter)
