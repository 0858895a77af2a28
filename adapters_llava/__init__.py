"""Built-in vlm-adapters plugin for the LLaVA family (registered through an entry point):
LLaVA-1.5, LLaVA-NeXT (anyres with unpadding and a newline per row) and LLaVA-OneVision."""

from .adapter import AnyresAdapter, LlavaAdapter, LlavaFamilyAdapter, LlavaNextAdapter, LlavaOnevisionAdapter
from .spec import AnyresSpec, CenterCropSpec

__all__ = [
    "AnyresAdapter",
    "AnyresSpec",
    "CenterCropSpec",
    "LlavaAdapter",
    "LlavaFamilyAdapter",
    "LlavaNextAdapter",
    "LlavaOnevisionAdapter",
]
