"""The test plugin's hooks: its own spec kind and its adapter, registered like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from vlm_adapters import BackboneAdapter, hookimpl
from vlm_adapters.spec import SpecBase

from .adapter import TiledLlavaAdapter
from .spec import GlobalTilesSpec


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    register(GlobalTilesSpec)


@hookimpl
def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
    register(TiledLlavaAdapter)
