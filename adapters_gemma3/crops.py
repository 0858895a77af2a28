"""Pan-and-scan: where Gemma 3's image processor cuts an image into crops, as a function of sizes.

The stock processor has no pure count for this (its ``_get_num_multimodal_tokens`` ignores
crops), so the rule of ``Gemma3ImageProcessor.pan_and_scan_batched`` is stated here on sizes
alone; the tests hold it equal to the stock function on thousands of sizes and settings.

The rule: an image whose long side exceeds ``min_ratio_to_activate`` times its short side is cut
along its long side into ``n`` equal crops (``n`` = the aspect ratio rounded half up, at most
``long // min_crop_size``, then clamped to ``[2, max_num_crops]``), each ``ceil(long / n)`` wide
(the last one clipped at the image edge). If a crop would be shorter than ``min_crop_size`` on
either side, nothing is cropped. Every crop, like the whole image, is then stretched to the
vision tower's square input.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from vlm_adapters import ImageShapeError
from vlm_adapters.geometry import Size

CropBox = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` of a crop in original pixels (bottom/right exclusive)."""


class PanAndScan(BaseModel):
    """The processor's pan-and-scan settings (``do_pan_and_scan`` and the three crop knobs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    """``do_pan_and_scan``: off by default in the stock processor and in released checkpoints."""
    min_crop_size: Annotated[int, Field(gt=0)]
    """``pan_and_scan_min_crop_size``: no crop side may be shorter (in original pixels)."""
    max_num_crops: Annotated[int, Field(gt=0)]
    """``pan_and_scan_max_num_crops``."""
    min_ratio_to_activate: Annotated[float, Field(gt=0)]
    """``pan_and_scan_min_ratio_to_activate``: long side / short side needed to crop at all."""

    def crop_boxes(self, image_size: Size) -> list[CropBox]:
        """The crops of an image of ``(height, width)``, in the processor's order; ``[]`` for none.

        Computed whether or not ``enabled`` is set, so a sample processed with pan-and-scan can
        be checked against a processor configured without it.
        """
        height, width = image_size
        landscape = width >= height
        long, short = (width, height) if landscape else (height, width)
        if long / short < self.min_ratio_to_activate:
            return []
        n = math.floor(long / short + 0.5)  # half rounds up, as the processor does
        n = min(math.floor(long / self.min_crop_size), n)
        n = min(self.max_num_crops, max(2, n))
        step = math.ceil(long / n)
        if min(step, short) < self.min_crop_size:
            return []
        starts = [step * i for i in range(n)]
        if starts[-1] >= long:
            raise ImageShapeError(
                "pan-and-scan would cut an empty crop from this image",
                found=f"{height}x{width} cut into {n} crops of {step} px",
                expected=f"crops that fit in {long} px",
                fix="raise pan_and_scan_min_crop_size or lower pan_and_scan_max_num_crops in the processor",
            )
        if landscape:
            return [(0, s, height, min(s + step, width)) for s in starts]
        return [(s, 0, min(s + step, height), width) for s in starts]

    def num_crops(self, image_size: Size) -> int:
        """How many crops the processor adds for this image when pan-and-scan is on."""
        return len(self.crop_boxes(image_size)) if self.enabled else 0
