"""vlm-adapters: one frozen-LMM grounding pipeline for many vision-language backbones.

Names are imported on first use (PEP 562), so ``import vlm_adapters`` (and the pytest plugin
that every test session in an environment loads) stays cheap until torch is really needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
from .hookspecs import hookimpl

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BackboneAdapter": ".adapter",
    "AdapterRef": ".adapter_ref",
    "VisionBatch": ".batch",
    "AdapterNotFoundError": ".errors",
    "AmbiguousGridError": ".errors",
    "CheckpointError": ".errors",
    "ExplainedError": ".errors",
    "ImageFileError": ".errors",
    "OptionError": ".errors",
    "OutputFolderError": ".errors",
    "GridError": ".errors",
    "ImageShapeError": ".errors",
    "ImageSizeError": ".errors",
    "MissingInputError": ".errors",
    "NoTinyFactoryError": ".errors",
    "PatchMatrixAsImageError": ".errors",
    "PixelValueError": ".errors",
    "PluginLoadError": ".errors",
    "SpecError": ".errors",
    "TokenCountError": ".errors",
    "TokenIdError": ".errors",
    "VisionInputError": ".errors",
    "VlmAdaptersError": ".errors",
    "ImageGeometry": ".geometry",
    "Padding": ".geometry",
    "adapter_for": ".registry",
    "get_adapter": ".registry",
    "list_adapters": ".registry",
    "DynamicSpec": ".spec",
    "FixedSpec": ".spec",
    "VisionInputSpec": ".spec",
    "spec_from_json": ".spec",
    "FrozenLMM": ".pipeline",
    "FrozenOutput": ".pipeline",
}

__all__ = [
    "AdapterNotFoundError",
    "AdapterRef",
    "AmbiguousGridError",
    "BackboneAdapter",
    "CheckpointError",
    "DynamicSpec",
    "ExplainedError",
    "FixedSpec",
    "FrozenLMM",
    "FrozenOutput",
    "GridError",
    "ImageFileError",
    "ImageGeometry",
    "ImageShapeError",
    "ImageSizeError",
    "MissingInputError",
    "NoTinyFactoryError",
    "OptionError",
    "OutputFolderError",
    "Padding",
    "PatchMatrixAsImageError",
    "PixelValueError",
    "PluginLoadError",
    "SpecError",
    "TokenCountError",
    "TokenIdError",
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


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .adapter import BackboneAdapter
    from .adapter_ref import AdapterRef
    from .batch import VisionBatch
    from .errors import (
        AdapterNotFoundError,
        AmbiguousGridError,
        CheckpointError,
        ExplainedError,
        GridError,
        ImageFileError,
        ImageShapeError,
        ImageSizeError,
        MissingInputError,
        NoTinyFactoryError,
        OptionError,
        OutputFolderError,
        PatchMatrixAsImageError,
        PixelValueError,
        PluginLoadError,
        SpecError,
        TokenCountError,
        TokenIdError,
        VisionInputError,
        VlmAdaptersError,
    )
    from .geometry import ImageGeometry, Padding
    from .pipeline import FrozenLMM, FrozenOutput
    from .registry import adapter_for, get_adapter, list_adapters
    from .spec import DynamicSpec, FixedSpec, VisionInputSpec, spec_from_json
