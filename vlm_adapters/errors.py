"""Typed errors: every message names what was found, what was expected and how to fix it.

Silent wrong inputs are the failure this project exists to end, so bad input is refused
loudly with a ``VisionInputError`` rather than "recovered" into something plausible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class VlmAdaptersError(Exception):
    """Root of every error raised by vlm-adapters."""


class ExplainedError(VlmAdaptersError):
    """An error whose message names what was found, what was expected and the fix.

    ``found``, ``expected`` and ``fix`` are kept as attributes so callers and tests can
    inspect them without parsing the message.
    """

    def __init__(self, problem: str, *, found: Any, expected: Any, fix: str) -> None:
        self.problem = problem
        self.found = found
        self.expected = expected
        self.fix = fix
        super().__init__(f"{problem}: found {found}; expected {expected}. Fix: {fix}")


class VisionInputError(ExplainedError, ValueError):
    """Input that a backbone cannot take as it is, and that cannot be repaired exactly."""


class ImageShapeError(VisionInputError):
    """An image or pixel tensor has the wrong rank, layout or resolution."""


class PatchMatrixAsImageError(ImageShapeError):
    """A flattened patch matrix ``[N, D]`` was reshaped into a fake ``[.., 3, N, D]`` image."""


class PixelValueError(ImageShapeError):
    """Pixel values are not what the processor's normalisation produces (NaN, 0-255 values, another
    image than the sample's raw image)."""


class ImageSizeError(ImageShapeError):
    """Image sizes (``image_sizes``, ``meta_data``, raw images, the padding seen in the pixels) are
    malformed or contradict each other."""


class GridError(VisionInputError):
    """A token/patch grid is missing, malformed, or contradicts the image size."""


class AmbiguousGridError(GridError):
    """Several grids fit the data and nothing at hand tells them apart."""

    def __init__(self, problem: str, *, found: Any, candidates: Sequence[Any], fix: str) -> None:
        self.candidates = list(candidates)
        super().__init__(problem, found=found, expected=f"one of {self.candidates}", fix=fix)


class TokenCountError(VisionInputError):
    """The number of image tokens in ``input_ids`` does not match the images."""


class MissingInputError(VisionInputError):
    """A field the backbone needs is absent and cannot be recomputed from what is at hand."""


class TokenIdError(VisionInputError):
    """``input_ids``, ``labels``, ``mask_ids`` or ``attention_mask`` hold values that are not ids of
    this checkpoint: not integers, outside the vocabulary, a mask that is not 0/1."""


class ImageFileError(VisionInputError):
    """An image path that does not exist or does not decode as an image."""


class OptionError(ExplainedError, ValueError):
    """A command-line or API option that does not fit the model, the text or the machine
    (layers, heads, words, device, dtype, colour map)."""


class OutputFolderError(ExplainedError):
    """An output folder that a run must not write into as it is (not empty, another run's)."""


class CheckpointError(VisionInputError):
    """A checkpoint folder or hub id that cannot be read, or in a format the stock classes cannot load."""


class SpecError(VlmAdaptersError, ValueError):
    """A ``VisionInputSpec`` could not be built from a config or processor."""


class NoTinyFactoryError(VlmAdaptersError, NotImplementedError):
    """``from_tiny`` on an adapter that ships no tiny offline fixtures (they are optional)."""


class AdapterNotFoundError(VlmAdaptersError, LookupError):
    """No registered adapter has the asked name or serves the asked ``model_type``."""


class PluginLoadError(VlmAdaptersError, RuntimeError):
    """A plugin failed to import or register; names the plugin and its distribution."""

    def __init__(self, plugin: str, distribution: str, reason: str) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.reason = reason
        super().__init__(
            f"plugin {plugin!r} from distribution {distribution!r} failed to load: {reason}. "
            "Fix: upgrade or uninstall that distribution, or leave it out with "
            "VLM_ADAPTERS_PLUGINS (a comma-separated allow-list of plugin names)."
        )
