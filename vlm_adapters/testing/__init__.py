"""Contract-test kit: subclass :class:`AdapterContract` to prove an adapter keeps its promises.

Imported lazily, so the pytest plugin living in this package costs nothing at pytest start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "AdapterContract": ".contract",
    "assert_inputs_equal": ".contract",
    "sample_from_batch": ".contract",
    "random_sizes": ".images",
    "smooth_image": ".images",
    "solid_image": ".images",
}

__all__ = [
    "AdapterContract",
    "assert_inputs_equal",
    "random_sizes",
    "sample_from_batch",
    "smooth_image",
    "solid_image",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from .contract import AdapterContract, assert_inputs_equal, sample_from_batch
    from .images import random_sizes, smooth_image, solid_image
