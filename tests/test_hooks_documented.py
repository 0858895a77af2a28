"""Every plugin hook is documented and has a test named after it (checked, not hoped for)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vlm_adapters import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in vars(hookspecs) if hasattr(getattr(hookspecs, name), "vlm_adapters_spec"))


def test_hooks_are_found() -> None:
    assert HOOKS == ["check_checkpoint", "register_adapters", "register_spec_kinds", "resolve_adapter"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    doc = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    assert re.search(rf"^#+ .*`{hook}`", doc, re.M), f"docs/writing-a-plugin.md has no heading for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests, f"no test named test_hook_{hook}"
