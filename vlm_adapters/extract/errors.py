"""Typed errors of an extraction: a manifest that cannot be read, a sample that is refused.

Each names what was found, what was expected and the fix. An output folder that must not be
written into is the core's :class:`~vlm_adapters.errors.OutputFolderError`, as for ``run``.
"""

from __future__ import annotations

from ..errors import OutputFolderError, VisionInputError

__all__ = ["ManifestError", "OutputFolderError", "SampleError"]


class ManifestError(VisionInputError):
    """A manifest that cannot be read at all: missing, of an unknown format, or without the needed columns."""


class SampleError(VisionInputError):
    """One sample that cannot be extracted (missing field, unreadable image, phrase not in the text).

    An extraction records it in the index with this error and goes on with the next sample.
    """
