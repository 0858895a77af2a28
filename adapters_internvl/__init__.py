"""Built-in vlm-adapters plugin for InternVL (transformers-format ``internvl`` checkpoints):
448 px tiles chosen by aspect ratio plus a thumbnail, all in one run of image tokens."""

from .adapter import InternVLAdapter
from .spec import InternVLTileSpec

__all__ = ["InternVLAdapter", "InternVLTileSpec"]
