"""Plugin hooks. A plugin is a module with ``@hookimpl`` functions, exposed through an
entry point in the ``vlm_adapters`` group; built-in adapters use exactly the same path.

Every hook here must be documented in ``docs/writing-a-plugin.md`` and exercised by a test;
the test suite checks both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pluggy

if TYPE_CHECKING:
    from .adapter import BackboneAdapter
    from .adapter_ref import AdapterRef
    from .spec import SpecBase

PROJECT = "vlm_adapters"
F = TypeVar("F", bound=Callable[..., Any])

_spec = pluggy.HookspecMarker(PROJECT)
_impl = pluggy.HookimplMarker(PROJECT)


def hookspec(function: F | None = None, **kwargs: Any) -> Any:
    """``pluggy.HookspecMarker`` that keeps the decorated function's type."""
    return _spec(function, **kwargs) if function is not None else _spec(**kwargs)


def hookimpl(function: F | None = None, **kwargs: Any) -> F:
    """Mark a plugin function as a hook implementation (re-exported as ``vlm_adapters.hookimpl``)."""
    if function is not None:
        return cast(F, _impl(function, **kwargs))
    return cast(F, _impl(**kwargs))


@hookspec
def register_adapters(register: Callable[[type[BackboneAdapter] | AdapterRef], None]) -> None:
    """Register adapters: call ``register(AdapterClass)`` or ``register(AdapterRef(...))`` once per adapter.

    A ref names the class by import path, so ``vlm-adapters list`` does not import it (nor torch).
    """


@hookspec(firstresult=True)
def resolve_adapter(config: Any) -> str | None:
    """Name the adapter for a transformers config whose ``model_type`` alone does not decide it.

    Return an adapter name, or ``None`` to let other plugins (and then the ``model_type``
    table) answer. The first non-``None`` answer wins.
    """


@hookspec
def register_spec_kinds(register: Callable[[type[SpecBase]], None]) -> None:
    """Register spec kinds: call ``register(SpecClass)`` once per :class:`~vlm_adapters.spec.SpecBase`
    subclass. Its ``kind`` field default is the name ``spec_from_json`` and the CLI know it by."""


@hookspec
def check_checkpoint(config: dict[str, Any]) -> None:
    """Refuse a checkpoint this plugin knows the stock classes cannot load, before they try.

    ``config`` is the checkpoint's ``config.json`` as a dict (read without transformers
    instantiating anything). Raise :class:`vlm_adapters.errors.CheckpointError` naming the
    format found and the checkpoints that work; return ``None`` to let it through.
    """
