"""PaliGemma adapter for vlm-adapters, shipped as an ordinary third-party plugin."""

from .adapter import PaliGemmaAdapter

__version__ = "0.1.0"

__all__ = ["PaliGemmaAdapter", "__version__"]
