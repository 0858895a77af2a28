"""The contract kit itself: a broken adapter fails it with a message that names what it got wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from adapters_deepseek import DeepseekVLAdapter
from vlm_adapters.batch import VisionBatch
from vlm_adapters.normalize import ResolvedImages, SampleImages
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


class GuessesLostSizes(DeepseekVLAdapter):
    """A plugin that forgets one check: an image whose original size is unknown gets the model's input
    size instead of a refusal, so its maps land on a square that is not the image."""

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        if images.sizes is not None and any(s is None for s in images.sizes):
            guess = tuple(self.spec.image_size)
            images = replace(images, sizes=[s or (guess[0], guess[1]) for s in images.sizes])
        return super().resolve_images(images)


def test_a_plugin_that_forgets_a_check_fails_the_corpus_naming_the_mutation() -> None:
    adapter = GuessesLostSizes.from_tiny()
    with pytest.raises(AssertionError) as failed:
        AdapterContract().test_bad_input_corpus(adapter, adapter.load_model(seed=0))
    message = str(failed.value)
    assert "silent: " in message and "sizes_none_entry: accepted a sample that must be refused" in message
    # the unpatched adapter passes the same corpus
    AdapterContract().test_bad_input_corpus(DeepseekVLAdapter.from_tiny(), adapter.load_model(seed=0))
