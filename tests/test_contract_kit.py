"""The contract kit itself: a broken adapter fails it with a message that names what it got wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from adapters_deepseek import DeepseekVLAdapter
from vlm_adapters.batch import VisionBatch
from vlm_adapters.testing import AdapterContract
from vlm_adapters.testing.images import solid_image


class MakesUpPixels(DeepseekVLAdapter):
    """Answers a sample without pixel values with a made-up gray image: the silent failure the kit exists for."""

    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        if "pixel_values" not in sample:
            return self.prepare([solid_image(384, 384)], [self.format_prompt("made up", answer="made up")])
        return super().normalize(sample)


def test_an_accepted_bad_input_is_named() -> None:
    with pytest.raises(pytest.fail.Exception, match="bad input 'no pixel values' was accepted"):
        AdapterContract().test_bad_inputs_raise_vision_input_error(MakesUpPixels.from_tiny())
