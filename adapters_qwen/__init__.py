"""Built-in vlm-adapters plugin for the Qwen-VL family (registered through an entry point):
Qwen2-VL, Qwen2.5-VL and Qwen3-VL, whose dynamic grids must never go silently wrong."""

from .adapter import Qwen2_5_VLAdapter, Qwen2VLAdapter, Qwen3VLAdapter, QwenAdapter
from .resolve import GridRecoveredWarning

__all__ = ["GridRecoveredWarning", "Qwen2VLAdapter", "Qwen2_5_VLAdapter", "Qwen3VLAdapter", "QwenAdapter"]
