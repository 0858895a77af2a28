"""Built-in vlm-adapters plugin for Gemma 3 (registered through an entry point): square SigLIP
views, optional pan-and-scan crops as runs of their own, and a bidirectional mask over each image.

Names are imported on first use, so the entry point (``adapters_gemma3.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "Gemma3Adapter": ".adapter",
    "PanAndScanSpec": ".spec",
}
__all__ = ["Gemma3Adapter", "PanAndScanSpec"]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import Gemma3Adapter
    from .spec import PanAndScanSpec
