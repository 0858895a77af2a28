"""One ``normalize`` procedure for every backbone: a dataset dict in, a checked one-sample batch out.

The core reads the sample with one policy (:mod:`.ids`, :mod:`.pixels`, :mod:`.sizes`), hands
the images to the backbone's ``resolve_images`` (pixels plus one geometry per image), checks the
sources against each other (:mod:`.crosscheck`), fits the prompt (:mod:`.tokens`) and builds the
batch (:mod:`.procedure`). The rules are written out in ``docs/normalize.md``.
"""

from __future__ import annotations

from .hooks import EXPAND_FIX, SampleHooks
from .procedure import normalize_sample, require_mapping
from .sample import PixelForm, PixelValue, PixelView, ResolvedImages, SampleImages

__all__ = [
    "EXPAND_FIX",
    "PixelForm",
    "PixelValue",
    "PixelView",
    "ResolvedImages",
    "SampleHooks",
    "SampleImages",
    "normalize_sample",
    "require_mapping",
]
