"""The contract kit itself: a broken adapter fails it with a message that names what it got wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from adapters_deepseek import DeepseekVLAdapter
from vlm_adapters.batch import VisionBatch
from vlm_adapters.normalize import ResolvedImages, SampleImages
from vlm_adapters.testing import AdapterContract
from vlm_adapters.testing.corpus import MUTATIONS
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


class SkipsTheShapeCheck(DeepseekVLAdapter):
    """A plugin that forgets one check: its own resolve step hands the processed pixels to the model as
    they came, without the core's shape check (``stack_images``), as hand-written glue does."""

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        if "pixel_values" not in images.processed:
            return super().resolve_images(images)
        pixels = images.processed["pixel_values"].parts[0].float()
        sizes = [s or tuple(self.spec.image_size) for s in images.sizes or [None] * pixels.shape[0]]
        return ResolvedImages({"pixel_values": pixels}, [self.spec.geometry((s[0], s[1])) for s in sizes])


def test_a_plugin_that_forgets_a_check_fails_the_corpus_naming_the_mutation() -> None:
    adapter = SkipsTheShapeCheck.from_tiny()
    model = adapter.load_model(seed=0)
    with pytest.raises(AssertionError) as failed:
        AdapterContract().test_bad_input_corpus(adapter, model)
    message = str(failed.value)
    named = [m.name for m in MUTATIONS if m.expect == "refuse" and f" + {m.name}" in message]
    assert named and ("silent: " in message or "crash: " in message), message
    # the adapter without the slip passes the same corpus
    AdapterContract().test_bad_input_corpus(DeepseekVLAdapter.from_tiny(), model)
