"""Typed errors of an extraction: a manifest or output folder that cannot be used, a sample that is refused.

Each names what was found, what was expected and the fix (see :class:`~vlm_adapters.errors.VisionInputError`).
"""

from __future__ import annotations

from ..errors import VisionInputError


class ManifestError(VisionInputError):
    """A manifest that cannot be read at all: missing, of an unknown format, or without the needed columns."""


class SampleError(VisionInputError):
    """One sample that cannot be extracted (missing field, unreadable image, phrase not in the text).

    An extraction records it in the index with this error and goes on with the next sample.
    """


class OutputFolderError(VisionInputError):
    """An output folder an extraction must not write into as it is (another run's, or not empty)."""
