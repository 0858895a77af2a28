"""pytest plugin (entry point ``pytest11``) for adapter authors.

Adds the ``vlm_contract`` marker to every :class:`AdapterContract` test, so
``pytest -m vlm_contract`` runs the contract alone, and a ``smooth_image`` fixture.
Kept import-light: torch and transformers load only when a contract test is collected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vlm_contract: a vlm-adapters adapter-contract test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and any(base.__name__ == "AdapterContract" for base in cls.__mro__):
            item.add_marker("vlm_contract")


@pytest.fixture
def smooth_image() -> Callable[..., Any]:
    """Factory: ``smooth_image(height, width, seed=0)`` -> deterministic PIL test image."""
    from .images import smooth_image as factory

    return factory
