"""Open spec kinds: plugins register kinds through a hook, JSON finds them in the registry, and
the core lists no kind and names no backbone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from vlm_adapters import hookimpl
from vlm_adapters.errors import ImageShapeError, SpecError
from vlm_adapters.geometry import Box, ImageGeometry, View
from vlm_adapters.registry import Registry, default_registry, reset_registry
from vlm_adapters.spec import SpecBase, spec_from_dict, spec_from_json, spec_json_schema

CORE = Path(__file__).resolve().parents[1] / "vlm_adapters"


class StripSpec(SpecBase):
    """A toy kind: the image cut into ``strips`` vertical strips, one view each."""

    kind: Literal["strips"] = "strips"
    strips: int
    grid: tuple[int, int]

    def geometry(self, image_size: Any) -> ImageGeometry:
        h, w = self.check_size(image_size)
        n = self.grid[0] * self.grid[1]
        views = [
            View(
                name=f"strip_{i}",
                token_grid=self.grid,
                offset=i * n,
                input_size=(self.grid[0] * 14, self.grid[1] * 14),
                box=Box(top=0, left=i * w / self.strips, bottom=h, right=(i + 1) * w / self.strips),
            )
            for i in range(self.strips)
        ]
        return ImageGeometry(original_size=(h, w), views=views)


@pytest.fixture
def registry_with_strips() -> Iterator[Registry]:
    registry = reset_registry()

    class Plugin:
        @hookimpl
        def register_spec_kinds(self, register: Callable[[type[SpecBase]], None]) -> None:
            register(StripSpec)

    info = registry.register_plugin(Plugin(), name="strips")
    assert info.status == "loaded" and info.spec_kinds == ("strips",)
    yield registry
    reset_registry()


def test_hook_register_spec_kinds(registry_with_strips: Registry) -> None:
    spec = StripSpec(image_token_id=3, strips=3, grid=(2, 4))
    assert registry_with_strips.spec_kinds()["strips"] is StripSpec
    assert spec_from_json(spec.model_dump_json()) == spec
    assert spec_from_dict(spec.model_dump()) == spec
    assert "strips" in str(spec_json_schema())
    g = spec.geometry((30, 90))
    assert g.num_views == 3 and g.num_image_tokens == 24 and g.runs == 1
    assert [v.box.left for v in g.views] == [0, 30, 60]


def test_built_in_kinds_come_through_the_hook() -> None:
    reset_registry()
    kinds = default_registry().spec_kinds()
    assert {"fixed", "dynamic"} <= set(kinds)
    core = next(p for p in default_registry().plugins() if p.name == "core")
    assert set(core.spec_kinds) == {"fixed", "dynamic"} and core.status == "loaded"


def test_unknown_kind_names_the_known_ones() -> None:
    reset_registry()
    with pytest.raises(SpecError, match=r"no spec kind 'tiles'.*known: \[.*'dynamic'.*'fixed'"):
        spec_from_json('{"kind": "tiles", "image_token_id": 1}')
    with pytest.raises(SpecError, match="'kind' string"):
        spec_from_dict({"image_token_id": 1})


def test_a_kind_registered_twice_fails_the_second_plugin(registry_with_strips: Registry) -> None:
    class Other(StripSpec):
        kind: Literal["strips"] = "strips"

    class Plugin:
        @hookimpl
        def register_spec_kinds(self, register: Callable[[type[SpecBase]], None]) -> None:
            register(Other)

    info = registry_with_strips.register_plugin(Plugin(), name="again")
    assert info.status == "failed" and "already registered" in (info.error or "")
    assert registry_with_strips.spec_kinds()["strips"] is StripSpec


def test_a_kind_without_a_name_is_refused() -> None:
    registry = Registry(load_entry_points=False)

    class Nameless(SpecBase):
        def geometry(self, image_size: Any) -> ImageGeometry:
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def register_spec_kinds(self, register: Callable[[type[SpecBase]], None]) -> None:
            register(Nameless)

    info = registry.register_plugin(Plugin(), name="nameless")
    assert info.status == "failed" and "kind" in (info.error or "")


@pytest.mark.parametrize("size", [(48.9, 64), (True, True), ("48", 64), (48,), None, (0, 5)])
def test_sizes_that_are_not_integer_pairs_are_refused(size: Any) -> None:
    with pytest.raises(ImageShapeError):
        StripSpec(image_token_id=3, strips=2, grid=(1, 1)).geometry(size)


def test_whole_float_sizes_are_taken() -> None:
    assert StripSpec(image_token_id=3, strips=2, grid=(1, 1)).geometry((48.0, 64)).original_size == (48, 64)


BACKBONES = re.compile(r"qwen|deepseek|llava|internvl|gemma|idefics|smolvlm|paligemma|molmo|siglip", re.I)


def test_core_names_no_backbone() -> None:
    hits = [
        f"{p.relative_to(CORE)}:{n}: {line.strip()}"
        for p in sorted(CORE.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if BACKBONES.search(line)
    ]
    assert hits == []


def test_core_lists_no_spec_kind() -> None:
    """Each built-in kind's name appears only in the module that defines it."""
    reset_registry()
    for kind, cls in default_registry().spec_kinds().items():
        home = Path(__import__(cls.__module__, fromlist=["_"]).__file__ or "").resolve()
        pattern = re.compile(rf"""["']{re.escape(kind)}["']""")
        mentions = [p.name for p in CORE.rglob("*.py") if p.resolve() != home and pattern.search(p.read_text())]
        assert mentions == [], f"kind {kind!r} is named outside {home.name}: {mentions}"
