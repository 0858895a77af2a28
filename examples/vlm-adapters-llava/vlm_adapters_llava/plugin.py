"""Entry point ``llava`` in the ``vlm_adapters`` group (see pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable

import vlm_adapters

from .adapter import LlavaAdapter


@vlm_adapters.hookimpl
def register_adapters(register: Callable[[type[vlm_adapters.BackboneAdapter]], None]) -> None:
    register(LlavaAdapter)
