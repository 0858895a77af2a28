"""``AdapterRef`` and ``SpecKindRef``: an adapter or a spec kind registered by import path, so
listing adapters imports no model code.

A plugin's entry-point module is imported by every ``vlm-adapters list``. Registering refs
instead of classes keeps that module light (no torch, no transformers); the class is imported
the first time it is asked for, and the registry then checks that the class says the same as
its ref.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from .adapter import BackboneAdapter
    from .spec import SpecBase


def target_module(target: str) -> str:
    """The module part of a ``"package.module:Name"`` target (nothing imported)."""
    return target.partition(":")[0]


def import_target(target: str, what: str) -> object:
    """The object a ``"package.module:Name"`` target names."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} target must be 'package.module:ClassName', got {target!r}")
    return getattr(importlib.import_module(module_name), attr)


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
        return cast("type[BackboneAdapter]", import_target(self.target, "AdapterRef"))


@dataclass(frozen=True)
class SpecKindRef:
    """``register(SpecKindRef("my_kind", "my_plugin.spec:MySpec"))`` in ``register_spec_kinds``: the
    kind is listed by name, and its module (which may need transformers) loads on first use."""

    kind: str
    target: str
    """``"package.module:ClassName"`` of the :class:`~vlm_adapters.spec.SpecBase` subclass."""

    def load(self) -> type[SpecBase]:
        """Import the class this ref names."""
        return cast("type[SpecBase]", import_target(self.target, "SpecKindRef"))


def ref_hooks(
    adapters: Sequence[AdapterRef], spec_kinds: Sequence[SpecKindRef] = ()
) -> tuple[Callable[[Callable[[AdapterRef], None]], None], Callable[[Callable[[SpecKindRef], None]], None]]:
    """The two registration hooks of a plugin that registers only refs, for its entry-point module:
    ``register_adapters, register_spec_kinds = ref_hooks(ADAPTERS, SPEC_KINDS)``."""
    from .hookspecs import hookimpl

    @hookimpl
    def register_adapters(register: Callable[[AdapterRef], None]) -> None:
        for ref in adapters:
            register(ref)

    @hookimpl
    def register_spec_kinds(register: Callable[[SpecKindRef], None]) -> None:
        for ref in spec_kinds:
            register(ref)

    return register_adapters, register_spec_kinds
