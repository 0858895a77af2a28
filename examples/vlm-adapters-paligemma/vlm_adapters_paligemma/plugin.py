"""Entry point ``paligemma`` in the ``vlm_adapters`` group (see pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable

import vlm_adapters
import vlm_adapters.spec

from .adapter import PaliGemmaAdapter, PaliGemmaSpec


@vlm_adapters.hookimpl
def register_spec_kinds(register: Callable[[type[vlm_adapters.spec.SpecBase]], None]) -> None:
    register(PaliGemmaSpec)


@vlm_adapters.hookimpl
def register_adapters(register: Callable[[type[vlm_adapters.BackboneAdapter]], None]) -> None:
    register(PaliGemmaAdapter)
