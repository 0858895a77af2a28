"""The plugin registry: entry points, allow-list, broken plugins, resolution by model_type."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from transformers import PretrainedConfig

import vlm_adapters
from vlm_adapters import AdapterNotFoundError, AdapterRef, BackboneAdapter, CheckpointError, PluginLoadError, hookimpl
from vlm_adapters.registry import Registry, reset_registry

BUILT_IN = {"qwen": "adapters_qwen.plugin", "deepseek": "adapters_deepseek.plugin"}


@pytest.fixture(autouse=True)
def fresh_default_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


def make_adapter(name: str, model_type: str) -> type[BackboneAdapter]:
    """A real adapter subclass (borrowing a built-in's behaviour) under a new name."""
    base = vlm_adapters.get_adapter("deepseek_vl")
    return type(f"Adapter_{name}", (base,), {"name": name, "model_types": (model_type,)})


def plugin_module(name: str, **functions: Callable[..., Any]) -> ModuleType:
    module = ModuleType(name)
    for attr, fn in functions.items():
        setattr(module, attr, fn)
    return module


def write_distribution(site: Path, dist: str, entry_name: str, target: str, module_source: str | None) -> None:
    """A minimal installed distribution (dist-info + module) on a sys.path folder."""
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[vlm_adapters]\n{entry_name} = {target}\n")
    if module_source is not None:
        (site / f"{target.split(':')[0]}.py").write_text(textwrap.dedent(module_source))


def test_built_in_plugins_load_through_entry_points() -> None:
    plugins = {p.name: p for p in Registry().plugins()}
    for name in BUILT_IN:
        assert plugins[name].status == "loaded", plugins[name].error
        assert plugins[name].distribution == "vlm-adapters"
        assert plugins[name].adapters, f"plugin {name} registered no adapter"
    rows = {a.name: a for a in vlm_adapters.list_adapters()}
    for name in ("qwen2_vl", "qwen2_5_vl", "deepseek_vl", "deepseek_vl_hybrid"):
        assert rows[name].status == "loaded" and rows[name].distribution == "vlm-adapters"


def test_allow_list_restricts_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLM_ADAPTERS_PLUGINS", "deepseek")
    registry = Registry()
    assert [p.name for p in registry.plugins()] == ["core", "deepseek"]  # the core's kinds always load
    with pytest.raises(AdapterNotFoundError, match="qwen2_vl"):
        registry.get("qwen2_vl")
    monkeypatch.setenv("VLM_ADAPTERS_PLUGINS", "")
    assert [p.name for p in Registry().plugins()] == ["core"]


def test_hook_register_adapters() -> None:
    registry = Registry(load_entry_points=False)
    cls = make_adapter("toy", "toy_vl")

    @hookimpl
    def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
        register(cls)

    info = registry.register_plugin(plugin_module("toy_plugin", register_adapters=register_adapters), name="toy")
    assert info.status == "loaded" and info.adapters == ("toy",)
    assert registry.get("toy") is cls
    assert registry.for_config(PretrainedConfig(model_type="toy_vl")) is cls


def test_hook_resolve_adapter() -> None:
    registry = Registry(load_entry_points=False)
    a, b = make_adapter("first", "shared_vl"), make_adapter("second", "shared_vl")

    @hookimpl
    def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
        register(a)
        register(b)

    @hookimpl
    def resolve_adapter(config: Any) -> str | None:
        return "second" if getattr(config, "variant", None) == "b" else None

    registry.register_plugin(
        plugin_module("p", register_adapters=register_adapters, resolve_adapter=resolve_adapter), name="p"
    )
    assert registry.for_config(PretrainedConfig(model_type="shared_vl", variant="b")) is b
    assert registry.for_config(PretrainedConfig(model_type="shared_vl")) is a  # model_type table


def test_typo_in_hook_name_fails_loudly() -> None:
    registry = Registry(load_entry_points=False)

    @hookimpl
    def register_adapter(register: Callable[[type[BackboneAdapter]], None]) -> None:  # missing "s"
        raise AssertionError("never called")

    info = registry.register_plugin(plugin_module("typo", register_adapter=register_adapter), name="typo")
    assert info.status == "failed"
    assert "register_adapter" in (info.error or "") and "unknown hook" in (info.error or "")


def test_plugin_raising_in_its_hook_is_reported_not_fatal() -> None:
    registry = Registry(load_entry_points=False)

    @hookimpl
    def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
        raise RuntimeError("needs a newer transformers")

    registry.register_plugin(
        plugin_module("bad", register_adapters=register_adapters), name="bad", distribution="bad-dist"
    )
    rows = registry.adapters()
    assert [(r.name, r.status) for r in rows] == [("bad", "failed")]
    with pytest.raises(PluginLoadError) as info:
        registry.get("anything")
    assert "'bad'" in str(info.value) and "'bad-dist'" in str(info.value) and "newer transformers" in str(info.value)


def test_broken_entry_point_is_listed_with_its_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "broken-plugin", "broken", "broken_plugin_module", "import not_a_module_at_all\n")
    write_distribution(
        tmp_path / "ok",
        "fine-plugin",
        "fine",
        "fine_plugin_module",
        """
        import vlm_adapters

        @vlm_adapters.hookimpl
        def register_adapters(register):
            pass
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "ok"))
    registry = Registry()
    plugins = {p.name: p for p in registry.plugins()}
    assert plugins["broken"].status == "failed"
    assert plugins["broken"].distribution == "broken-plugin" and plugins["broken"].version == "1.2.3"
    assert "not_a_module_at_all" in (plugins["broken"].error or "")
    assert plugins["fine"].status == "loaded"
    assert plugins["qwen"].status == "loaded"  # the others keep working
    assert registry.get("qwen2_vl").name == "qwen2_vl"
    with pytest.raises(PluginLoadError, match="broken-plugin"):
        registry.get("no_such_adapter")
    sys.modules.pop("fine_plugin_module", None)


def test_adapter_for_accepts_config_model_and_path(tmp_path: Path) -> None:
    cls = vlm_adapters.get_adapter("deepseek_vl")
    config = cls.tiny_config()
    assert vlm_adapters.adapter_for(config) is cls
    config.save_pretrained(tmp_path)
    assert vlm_adapters.adapter_for(tmp_path) is cls
    assert vlm_adapters.adapter_for(str(tmp_path)) is cls

    class FakeModelHolder:  # anything with a .config, as transformers models have
        pass

    holder = FakeModelHolder()
    holder.config = config  # type: ignore[attr-defined]
    assert vlm_adapters.adapter_for(holder) is cls


def test_unknown_names_and_model_types_say_what_is_registered() -> None:
    with pytest.raises(AdapterNotFoundError, match="qwen2_vl"):
        vlm_adapters.get_adapter("qwen9_vl")
    with pytest.raises(AdapterNotFoundError, match="mystery_vl"):
        vlm_adapters.adapter_for(PretrainedConfig(model_type="mystery_vl"))


def test_improper_adapter_classes_fail_their_plugin_only() -> None:
    registry = Registry(load_entry_points=False)
    good = make_adapter("good", "good_vl")
    no_kind = type("NoKind", (good,), {"name": "nokind", "spec_kind": None})

    @hookimpl
    def register_adapters(register: Callable[[type[BackboneAdapter]], None]) -> None:
        register(no_kind)

    @hookimpl
    def register_good(register: Callable[[type[BackboneAdapter]], None]) -> None:
        register(good)

    first = registry.register_plugin(plugin_module("ok", register_adapters=register_good), name="ok")
    bad = registry.register_plugin(plugin_module("bad", register_adapters=register_adapters), name="bad")
    assert first.status == "loaded"
    assert bad.status == "failed" and "spec_kind" in (bad.error or "")
    clash = registry.register_plugin(plugin_module("clash", register_adapters=register_good), name="clash")
    assert clash.status == "failed" and "already registered by plugin 'ok'" in (clash.error or "")
    again = registry.register_plugin(registry.pm.get_plugin("ok"), name="ok-again")
    assert again.status == "failed"
    assert registry.get("good") is good  # the first registration survives all of the above
    assert registry.pm.get_plugin("ok") is not None


def test_allow_list_names_that_match_nothing_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLM_ADAPTERS_PLUGINS", "qwen,qwen2_5_vl")  # the second is an adapter, not a plugin
    plugins = {p.name: p for p in Registry().plugins()}
    assert plugins["qwen"].status == "loaded"
    assert plugins["qwen2_5_vl"].status == "failed" and "no such entry point" in (plugins["qwen2_5_vl"].error or "")


def test_adapter_refs_import_their_class_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ref is listed without importing its module; the class loads on first use and must agree with the ref."""
    (tmp_path / "lazy_toy_adapter.py").write_text(
        "from adapters_deepseek.adapter import DeepseekVLAdapter\n\n"
        "class ToyAdapter(DeepseekVLAdapter):\n"
        "    name = 'lazy_toy'\n"
        "    model_types = ('lazy_toy_vl',)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(load_entry_points=False)
    good = AdapterRef("lazy_toy", "lazy_toy_adapter:ToyAdapter", ("lazy_toy_vl",), "fixed", "a toy")
    wrong = AdapterRef("lazy_toy_wrong", "lazy_toy_adapter:ToyAdapter", ("lazy_toy_vl",), "fixed")

    @hookimpl
    def register_adapters(register: Callable[[AdapterRef], None]) -> None:
        register(good)
        register(wrong)

    info = registry.register_plugin(plugin_module("lazy", register_adapters=register_adapters), name="lazy")
    assert info.status == "loaded" and info.adapters == ("lazy_toy", "lazy_toy_wrong")
    rows = {a.name: a for a in registry.adapters()}
    assert rows["lazy_toy"].spec_kind == "fixed" and rows["lazy_toy"].description == "a toy"
    assert "lazy_toy_adapter" not in sys.modules
    cls = registry.for_config(PretrainedConfig(model_type="lazy_toy_vl"))
    assert cls.__name__ == "ToyAdapter" and registry.get("lazy_toy") is cls
    with pytest.raises(PluginLoadError, match=r"'name': 'lazy_toy'.*AdapterRef says.*'name': 'lazy_toy_wrong'"):
        registry.get("lazy_toy_wrong")


def test_built_in_refs_agree_with_their_classes() -> None:
    from adapters_deepseek.plugin import ADAPTERS as DEEPSEEK
    from adapters_qwen.plugin import ADAPTERS as QWEN

    registry = Registry()
    for ref in (*QWEN, *DEEPSEEK):
        cls = registry.get(ref.name)  # loading checks name, model_types and spec_kind
        assert cls.description == ref.description


def test_hook_check_checkpoint() -> None:
    registry = Registry(load_entry_points=False)

    @hookimpl
    def check_checkpoint(config: dict[str, Any]) -> None:
        if config.get("model_type") == "remote_vl":
            raise CheckpointError("remote code", found="remote_vl", expected="toy_vl", fix="use the converted one")

    registry.register_plugin(plugin_module("guard", check_checkpoint=check_checkpoint), name="guard")
    registry.check_checkpoint({"model_type": "toy_vl"})
    with pytest.raises(CheckpointError, match="use the converted one"):
        registry.check_checkpoint({"model_type": "remote_vl"})
