"""A test-only plugin (not shipped) that proves a multi-view backbone needs no core change.

A synthetic family, a global view plus 2x2 tiles, with its own spec kind (``global_tiles``),
processor and model (stock LLaVA with, in one layout, a learned newline feature per tile row).
Tests register :mod:`.plugin` with ``Registry.register_plugin`` and run the full contract kit.
"""

from .adapter import TiledLlavaAdapter
from .spec import GlobalTilesSpec

__all__ = ["GlobalTilesSpec", "TiledLlavaAdapter"]
