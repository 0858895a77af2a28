"""LLaVA-1.5 adapter for vlm-adapters, shipped as an ordinary third-party plugin."""

from .adapter import LlavaAdapter

__version__ = "0.1.0"

__all__ = ["LlavaAdapter", "__version__"]
