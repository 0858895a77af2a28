"""Built-in vlm-adapters plugin for the LLaVA family (registered through an entry point):
LLaVA-1.5, LLaVA-NeXT (anyres with unpadding and a newline per row) and LLaVA-OneVision.

Names are imported on first use, so the entry point (``adapters_llava.plugin``) stays light.
"""

from typing import TYPE_CHECKING

from vlm_adapters._lazy import lazy_getattr

_EXPORTS = {
    "AnyresAdapter": ".adapter",
    "AnyresSpec": ".spec",
    "CenterCropSpec": ".spec",
    "LlavaAdapter": ".adapter",
    "LlavaFamilyAdapter": ".adapter",
    "LlavaNextAdapter": ".adapter",
    "LlavaOnevisionAdapter": ".adapter",
}
__all__ = [
    "AnyresAdapter",
    "AnyresSpec",
    "CenterCropSpec",
    "LlavaAdapter",
    "LlavaFamilyAdapter",
    "LlavaNextAdapter",
    "LlavaOnevisionAdapter",
]
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .adapter import AnyresAdapter, LlavaAdapter, LlavaFamilyAdapter, LlavaNextAdapter, LlavaOnevisionAdapter
    from .spec import AnyresSpec, CenterCropSpec
