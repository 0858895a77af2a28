"""Built-in vlm-adapters plugin for InternVL (transformers-format ``internvl`` checkpoints):
448 px tiles chosen by aspect ratio plus a thumbnail, all in one run of image tokens.

Names are imported on first use, so the entry point (``adapters_internvl.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "InternVLAdapter": ".adapter",
    "InternVLTileSpec": ".spec",
}
__all__ = ["InternVLAdapter", "InternVLTileSpec"]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import InternVLAdapter
    from .spec import InternVLTileSpec
