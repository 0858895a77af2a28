"""The adapter registry: pluggy hooks fed by entry points in the ``vlm_adapters`` group.

Built-in adapters are ordinary plugins found through the same entry points as third-party
ones, and the core's own spec kinds are registered through the same hook by a default plugin
(``vlm_adapters.builtin_kinds``) that is always loaded. Entry points load once, lazily. The
environment variable ``VLM_ADAPTERS_PLUGINS`` (comma-separated entry-point names) restricts
which plugins load; ``VLM_ADAPTERS_PLUGINS=""`` (empty) loads none, for tests that register
their own.

A plugin that fails to import or register is recorded with its reason; ``list_adapters``
and the CLI show it as failed and keep going, while asking for an adapter raises
:class:`PluginLoadError` naming the plugin and its distribution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .adapter_ref import AdapterRef, SpecKindRef, target_module
from .errors import AdapterNotFoundError, PluginLoadError
from .spec import SpecBase

if TYPE_CHECKING:
    from .adapter import BackboneAdapter

ENTRY_POINT_GROUP = "vlm_adapters"
ALLOW_LIST_ENV = "VLM_ADAPTERS_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as seen by the registry: where it came from and whether it loaded."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded" or "failed"
    error: str | None = None
    adapters: tuple[str, ...] = ()
    spec_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdapterInfo:
    """One registered adapter, as ``vlm-adapters list`` shows it."""

    name: str
    model_types: tuple[str, ...]
    spec_kind: str | None
    plugin: str
    distribution: str
    version: str
    status: str
    description: str = ""
    error: str | None = None
    cls: type[BackboneAdapter] | None = field(default=None, compare=False, repr=False)
    ref: AdapterRef | None = field(default=None, compare=False, repr=False)
    """Set for adapters registered by import path; ``cls`` is filled in on first use."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_types": list(self.model_types),
            "spec_kind": self.spec_kind,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "description": self.description,
            "error": self.error,
        }


class Registry:
    """Holds the plugin manager, the adapters it registered, and the plugins that failed."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._adapters: dict[str, AdapterInfo] = {}
        self._kinds: dict[str, type[SpecBase] | SpecKindRef] = {}
        self._plugins: dict[str, PluginInfo] = {}
        self._load_entry_points = load_entry_points
        self._loaded = False

    # --- loading -------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from . import builtin_kinds  # the core's own kinds, through the same hook as any plugin

        self.register_plugin(builtin_kinds, name="core", distribution="vlm-adapters", version=_own_version())
        if self._load_entry_points:
            found = list(entry_points(group=ENTRY_POINT_GROUP))
            for ep in _allowed(found):
                self._load_entry_point(ep)
            for name in _allow_list() or ():
                if name not in {ep.name for ep in found}:  # a typo in the allow-list is not silent
                    self._plugins[name] = PluginInfo(
                        name, "<not installed>", "", "failed", f"{ALLOW_LIST_ENV} names {name!r}, no such entry point"
                    )

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else "<unknown>"
        version = ep.dist.version if ep.dist is not None else ""
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            self._plugins[ep.name] = PluginInfo(ep.name, dist, version, "failed", f"{type(exc).__name__}: {exc}")
            return
        self.register_plugin(module, name=ep.name, distribution=dist, version=version)

    def register_plugin(
        self, plugin: ModuleType | object, name: str | None = None, distribution: str = "", version: str = ""
    ) -> PluginInfo:
        """Register a plugin object or module directly (what entry points do, for tests and scripts).

        Whatever goes wrong (a hook name that does not exist, an exception in the hook, a class
        that is not a proper adapter, an adapter name already taken) marks this plugin failed
        and leaves everything registered before it untouched.
        """
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        added: list[type[BackboneAdapter] | AdapterRef] = []
        kinds: list[type[SpecBase] | SpecKindRef] = []
        registered_here = False
        try:
            if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
                raise ValueError(f"a plugin named {name!r} (or this very object) is already registered")
            self.pm.register(plugin, name=name)
            registered_here = True
            self.pm.check_pending()
            for impl in self.pm.hook.register_spec_kinds.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(register=kinds.append)
            kind_names = self._check_kinds(kinds)
            for impl in self.pm.hook.register_adapters.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(register=added.append)
            rows = [_adapter_info(cls, name, distribution, version) for cls in added]
            for row in rows:
                if row.name in self._adapters:
                    raise ValueError(
                        f"adapter name {row.name!r} is already registered by plugin {self._adapters[row.name].plugin!r}"
                    )
        except Exception as exc:
            if registered_here:
                self.pm.unregister(plugin)
            info = PluginInfo(name, distribution, version, "failed", f"{type(exc).__name__}: {exc}")
            self._plugins[name] = info
            return info
        for row in rows:
            self._adapters[row.name] = row
        self._kinds.update(zip(kind_names, kinds, strict=True))
        info = PluginInfo(
            name, distribution, version, "loaded", adapters=tuple(r.name for r in rows), spec_kinds=tuple(kind_names)
        )
        self._plugins[name] = info
        return info

    def _check_kinds(self, kinds: list[type[SpecBase] | SpecKindRef]) -> list[str]:
        """Names of the spec classes (or refs) a plugin registers; refuses non-specs and taken names."""
        names = []
        for cls in kinds:
            if isinstance(cls, SpecKindRef):
                kind: object = cls.kind
                if ":" not in cls.target:
                    raise TypeError(f"SpecKindRef {cls.kind!r}: target must be 'package.module:ClassName'")
            elif isinstance(cls, type) and issubclass(cls, SpecBase):
                kind = _default_kind(cls)
            else:
                raise TypeError(f"register_spec_kinds takes SpecBase subclasses or SpecKindRefs, got {cls!r}")
            if not isinstance(kind, str) or not kind:
                raise TypeError(f"{cls!r} has no default `kind` (declare kind: Literal['name'] = 'name')")
            owner = self._kinds.get(kind)
            if (owner is not None and owner != cls) or kind in names:
                raise ValueError(f"spec kind {kind!r} is already registered (by {owner or cls})")
            names.append(kind)
        return names

    def _load_kind(self, kind: str) -> type[SpecBase]:
        """A kind's class, importing it if it was registered by ref (and checking it is what the ref said)."""
        entry = self._kinds[kind]
        if not isinstance(entry, SpecKindRef):
            return entry
        owner = next(p for p in self._plugins.values() if kind in p.spec_kinds)
        try:
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, SpecBase)) or _default_kind(cls) != kind:
                raise TypeError(f"{entry.target} is not a SpecBase subclass of kind {kind!r}")
        except Exception as exc:
            raise PluginLoadError(
                owner.name, owner.distribution, f"spec kind {kind!r} ({entry.target}): {type(exc).__name__}: {exc}"
            ) from exc
        self._kinds[kind] = cls
        return cls

    # --- queries -------------------------------------------------------------------------
    def code_modules(self) -> list[str]:
        """The module of every registered plugin, adapter and spec kind (refs by import path, nothing
        imported): the code an answer about any adapter may come from."""
        self._ensure_loaded()
        plugins = {p.__name__ if isinstance(p, ModuleType) else type(p).__module__ for p in self.pm.get_plugins()}
        adapters = {
            target_module(info.ref.target) if info.ref is not None else getattr(info.cls, "__module__", "")
            for info in self._adapters.values()
        }
        kinds = {target_module(k.target) if isinstance(k, SpecKindRef) else k.__module__ for k in self._kinds.values()}
        return sorted((plugins | adapters | kinds) - {""})

    def spec_kinds(self) -> dict[str, type[SpecBase]]:
        """Every registered spec kind: name -> class (kinds registered by ref are imported)."""
        self._ensure_loaded()
        return {kind: self._load_kind(kind) for kind in list(self._kinds)}

    def spec_kind_names(self) -> list[str]:
        """The registered kinds' names, importing nothing."""
        self._ensure_loaded()
        return list(self._kinds)

    def spec_kind(self, kind: str) -> type[SpecBase] | None:
        """One kind's class (imported on first use), or ``None`` if no plugin registered it."""
        self._ensure_loaded()
        return self._load_kind(kind) if kind in self._kinds else None

    def plugins(self) -> list[PluginInfo]:
        self._ensure_loaded()
        return list(self._plugins.values())

    def adapters(self) -> list[AdapterInfo]:
        """Every adapter, plus one ``failed`` row per plugin that did not load."""
        self._ensure_loaded()
        rows = list(self._adapters.values())
        rows += [
            AdapterInfo(p.name, (), None, p.name, p.distribution, p.version, "failed", error=p.error)
            for p in self._plugins.values()
            if p.status == "failed"
        ]
        return rows

    def get(self, name: str) -> type[BackboneAdapter]:
        self._ensure_loaded()
        info = self._adapters.get(name)
        if info is not None and info.cls is None and info.ref is not None:
            info = self._load_ref(info, info.ref)
        if info is not None and info.cls is not None:
            return info.cls
        self._raise_failed(name)
        raise AdapterNotFoundError(
            f"no adapter named {name!r}; registered: {sorted(self._adapters)}. "
            "Fix: install the plugin that provides it (see `vlm-adapters list`)."
        )

    def for_config(self, config: Any) -> type[BackboneAdapter]:
        self._ensure_loaded()
        named = self.pm.hook.resolve_adapter(config=config)
        if named is not None:
            return self.get(named)
        model_type = getattr(config, "model_type", None)
        for info in self._adapters.values():
            if model_type in info.model_types:
                return self.get(info.name)
        self._raise_failed(None)
        served = sorted(t for i in self._adapters.values() for t in i.model_types)
        raise AdapterNotFoundError(
            f"no adapter serves model_type {model_type!r}; served: {served}. "
            "Fix: install a plugin for this backbone, or pass adapter=NAME explicitly."
        )

    def check_checkpoint(self, config: dict[str, Any]) -> None:
        """Let every plugin refuse a checkpoint format it knows cannot load (``check_checkpoint`` hook)."""
        self._ensure_loaded()
        self.pm.hook.check_checkpoint(config=config)

    def _load_ref(self, info: AdapterInfo, ref: AdapterRef) -> AdapterInfo:
        """Import a ref's class and check that it says what the ref said when it was listed."""
        try:
            loaded = _adapter_info(ref.load(), info.plugin, info.distribution, info.version)
            said = {"name": ref.name, "model_types": ref.model_types, "spec_kind": ref.spec_kind}
            has = {"name": loaded.name, "model_types": loaded.model_types, "spec_kind": loaded.spec_kind}
            if said != has:
                raise TypeError(f"{ref.target} says {has}, its AdapterRef says {said}")
        except Exception as exc:
            raise PluginLoadError(
                info.plugin, info.distribution, f"adapter {ref.name!r} ({ref.target}): {type(exc).__name__}: {exc}"
            ) from exc
        info = replace(info, cls=loaded.cls)
        self._adapters[info.name] = info
        return info

    def _raise_failed(self, name: str | None) -> None:
        """If a failed plugin could have provided the answer, say so instead of 'not found'."""
        for p in self._plugins.values():
            if p.status == "failed":
                wanted = f"adapter {name!r}" if name else "an adapter for this config"
                registered = sorted(self._adapters)
                raise PluginLoadError(
                    p.name, p.distribution, f"{p.error} (while looking for {wanted}; registered: {registered})"
                )


def _allow_list() -> set[str] | None:
    allow = os.environ.get(ALLOW_LIST_ENV)
    if allow is None:
        return None
    return {n.strip() for n in allow.split(",") if n.strip()}


def _allowed(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    names = _allow_list()
    return list(eps) if names is None else [ep for ep in eps if ep.name in names]


def _default_kind(cls: type[SpecBase]) -> object:
    field = cls.model_fields.get("kind")
    return field.default if field is not None else None


def _adapter_info(cls: object, plugin: str, distribution: str, version: str) -> AdapterInfo:
    """The registry row for a class (or ref) a plugin registered; refuses what is not a usable adapter."""
    if isinstance(cls, AdapterRef):
        if ":" not in cls.target:
            raise TypeError(f"AdapterRef {cls.name!r}: target must be 'package.module:ClassName', got {cls.target!r}")
        said = (cls.name, cls.model_types, cls.spec_kind, cls.description)
        return _row(f"AdapterRef {cls.target!r}", *said, plugin, distribution, version, ref=cls)
    from .adapter import BackboneAdapter

    if not (isinstance(cls, type) and issubclass(cls, BackboneAdapter)):
        raise TypeError(f"register() takes BackboneAdapter subclasses or AdapterRefs, got {cls!r}")
    kind = getattr(cls, "spec_kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__}.spec_kind must name a registered spec kind, got {kind!r}")
    has = (getattr(cls, "name", None), getattr(cls, "model_types", None), kind, cls.description)
    return _row(cls.__name__, *has, plugin, distribution, version, cls=cls)


def _row(
    owner: str,
    name: Any,
    model_types: Any,
    kind: str | None,
    description: str,
    plugin: str,
    distribution: str,
    version: str,
    **loaded: Any,
) -> AdapterInfo:
    """One ``list`` row, after checking what every adapter must say about itself."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{owner} has no `name` (a non-empty str)")
    if not isinstance(model_types, tuple) or not all(isinstance(t, str) for t in model_types):
        raise TypeError(f"{owner}.model_types must be a tuple of str, got {model_types!r}")
    return AdapterInfo(
        name=name,
        model_types=model_types,
        spec_kind=kind,
        plugin=plugin,
        distribution=distribution,
        version=version,
        status="loaded",
        description=description,
        **loaded,
    )


def _own_version() -> str:
    from . import __version__

    return __version__


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset_registry(load_entry_points: bool = True) -> Registry:
    """Start over (tests; after installing a plugin in a running process)."""
    global _default
    _default = Registry(load_entry_points=load_entry_points)
    return _default


def get_adapter(name: str) -> type[BackboneAdapter]:
    """The adapter class registered under ``name``."""
    return default_registry().get(name)


def adapter_for(config_or_model_or_path: Any) -> type[BackboneAdapter]:
    """The adapter class for a transformers config, a model, or a checkpoint path / hub id."""
    obj = config_or_model_or_path
    if isinstance(obj, (str, Path)):
        from .checkpoints import load_config

        obj = load_config(obj)
    config = getattr(obj, "config", obj)
    return default_registry().for_config(config)


def list_adapters() -> list[AdapterInfo]:
    """Every registered adapter and every plugin that failed to load."""
    return default_registry().adapters()
