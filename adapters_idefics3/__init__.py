"""Built-in vlm-adapters plugin for Idefics3 and SmolVLM: sub-images plus a global view, each
its own run of image tokens between row/column marker tokens.

Names are imported on first use, so the entry point (``adapters_idefics3.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "Idefics3Adapter": ".adapter",
    "Idefics3AdapterBase": ".adapter",
    "Idefics3SplitSpec": ".spec",
    "SmolVLMAdapter": ".adapter",
}
__all__ = ["Idefics3Adapter", "Idefics3AdapterBase", "Idefics3SplitSpec", "SmolVLMAdapter"]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import Idefics3Adapter, Idefics3AdapterBase, SmolVLMAdapter
    from .spec import Idefics3SplitSpec
