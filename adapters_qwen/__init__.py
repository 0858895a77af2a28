"""Built-in vlm-adapters plugin for the Qwen-VL family (registered through an entry point):
Qwen2-VL, Qwen2.5-VL and Qwen3-VL, whose dynamic grids must never go silently wrong.

Names are imported on first use, so the entry point (``adapters_qwen.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "Qwen2VLAdapter": ".adapter",
    "Qwen2_5_VLAdapter": ".adapter",
    "Qwen3VLAdapter": ".adapter",
    "QwenAdapter": ".adapter",
    "GridRecoveredWarning": ".resolve",
}
__all__ = ["GridRecoveredWarning", "Qwen2VLAdapter", "Qwen2_5_VLAdapter", "Qwen3VLAdapter", "QwenAdapter"]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import Qwen2_5_VLAdapter, Qwen2VLAdapter, Qwen3VLAdapter, QwenAdapter
    from .resolve import GridRecoveredWarning
