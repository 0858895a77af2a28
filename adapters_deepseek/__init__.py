"""Built-in vlm-adapters plugin for the DeepSeek-VL family (registered through an entry point)."""

from .adapter import DeepseekAdapterBase, DeepseekVLAdapter, DeepseekVLHybridAdapter

__all__ = ["DeepseekAdapterBase", "DeepseekVLAdapter", "DeepseekVLHybridAdapter"]
