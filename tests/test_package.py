"""The package surface: every exported name resolves, and importing stays cheap."""

from __future__ import annotations

import subprocess
import sys

import vlm_adapters
import vlm_adapters.testing


def test_every_exported_name_resolves() -> None:
    for module in (vlm_adapters, vlm_adapters.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_pytest_plugin_import_does_not_load_torch() -> None:
    code = (
        "import sys, vlm_adapters, vlm_adapters.testing.pytest_plugin;"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
