"""Built-in vlm-adapters plugin for Gemma 3 (registered through an entry point): square SigLIP
views, optional pan-and-scan crops as runs of their own, and a bidirectional mask over each image."""

from .adapter import Gemma3Adapter
from .spec import PanAndScanSpec

__all__ = ["Gemma3Adapter", "PanAndScanSpec"]
