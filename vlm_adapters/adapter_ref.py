"""``AdapterRef``: an adapter registered by import path, so listing adapters imports no model code.

A plugin's entry-point module is imported by every ``vlm-adapters list``. Registering refs
instead of classes keeps that module light (no torch, no transformers); the class is imported
the first time the adapter is asked for, and the registry then checks that the class says the
same as its ref.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from .adapter import BackboneAdapter


@dataclass(frozen=True)
class AdapterRef:
    """``register(AdapterRef("my_vl", "my_plugin.adapter:MyAdapter", ("my_vl",), spec_kind="my_kind"))``."""

    name: str
    target: str
    """``"package.module:ClassName"`` of the adapter class."""
    model_types: tuple[str, ...]
    spec_kind: str
    description: str = ""

    def load(self) -> type[BackboneAdapter]:
        """Import the class this ref names."""
        module_name, _, attr = self.target.partition(":")
        if not module_name or not attr:
            raise ValueError(f"AdapterRef target must be 'package.module:ClassName', got {self.target!r}")
        return cast("type[BackboneAdapter]", getattr(importlib.import_module(module_name), attr))
