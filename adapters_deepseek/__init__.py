"""Built-in vlm-adapters plugin for the DeepSeek-VL family (registered through an entry point).

Names are imported on first use, so the entry point (``adapters_deepseek.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "DeepseekAdapterBase": ".adapter",
    "DeepseekVLAdapter": ".adapter",
    "DeepseekVLHybridAdapter": ".adapter",
}
__all__ = ["DeepseekAdapterBase", "DeepseekVLAdapter", "DeepseekVLHybridAdapter"]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import DeepseekAdapterBase, DeepseekVLAdapter, DeepseekVLHybridAdapter
