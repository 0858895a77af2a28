"""Built-in vlm-adapters plugin for Idefics3 and SmolVLM: sub-images plus a global view, each
its own run of image tokens between row/column marker tokens."""

from .adapter import Idefics3Adapter, Idefics3AdapterBase, SmolVLMAdapter
from .spec import Idefics3SplitSpec

__all__ = ["Idefics3Adapter", "Idefics3AdapterBase", "Idefics3SplitSpec", "SmolVLMAdapter"]
