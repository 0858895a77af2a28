"""PaliGemma adapter for vlm-adapters, shipped as an ordinary third-party plugin.

The adapter is imported on first use, so the entry point (``.plugin``) stays light.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["PaliGemmaAdapter", "__version__"]

if TYPE_CHECKING:
    from .adapter import PaliGemmaAdapter


def __getattr__(name: str) -> Any:
    if name == "PaliGemmaAdapter":
        from .adapter import PaliGemmaAdapter

        return PaliGemmaAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
