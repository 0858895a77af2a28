"""vlm-adapters: one frozen-LMM grounding pipeline for many vision-language backbones."""

from .adapter import BackboneAdapter
from .batch import VisionBatch
from .errors import (
    AdapterNotFoundError,
    AmbiguousGridError,
    GridError,
    ImageShapeError,
    MissingInputError,
    PatchMatrixAsImageError,
    PluginLoadError,
    SpecError,
    TokenCountError,
    VisionInputError,
    VlmAdaptersError,
)
from .geometry import ImageGeometry, Padding
from .hookspecs import hookimpl
from .registry import adapter_for, get_adapter, list_adapters
from .spec import DynamicSpec, FixedSpec, VisionInputSpec, spec_from_json

__version__ = "0.1.0"

__all__ = [
    "AdapterNotFoundError",
    "AmbiguousGridError",
    "BackboneAdapter",
    "DynamicSpec",
    "FixedSpec",
    "GridError",
    "ImageGeometry",
    "ImageShapeError",
    "MissingInputError",
    "Padding",
    "PatchMatrixAsImageError",
    "PluginLoadError",
    "SpecError",
    "TokenCountError",
    "VisionBatch",
    "VisionInputError",
    "VisionInputSpec",
    "VlmAdaptersError",
    "__version__",
    "adapter_for",
    "get_adapter",
    "hookimpl",
    "list_adapters",
    "spec_from_json",
]
