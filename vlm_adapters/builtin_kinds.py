"""The core's default plugin: registers the built-in spec kinds through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable

from .dynamic_spec import DynamicSpec
from .fixed_spec import FixedSpec
from .hookspecs import hookimpl
from .spec import SpecBase


@hookimpl
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """Register the two kinds that need no plugin: a fixed square and a native-resolution grid."""
    register(FixedSpec)
    register(DynamicSpec)
