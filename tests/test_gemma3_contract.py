"""The contract kit on Gemma 3, with pan-and-scan off (one view per image) and on (crops)."""

from __future__ import annotations

from vlm_adapters import BackboneAdapter, VisionInputError
from vlm_adapters.testing import AdapterContract
from vlm_adapters.testing.images import random_sizes, smooth_image


class TestGemma3Contract(AdapterContract):
    adapter_name = "gemma3"


class TestGemma3PanAndScanContract(AdapterContract):
    adapter_name = "gemma3"
    variant = "gemma3_pan_and_scan"
    model_sizes = ((300, 1000), (900, 420))
    """A wide image (3 crops) and a tall one (2 crops)."""

    def test_token_count_matches_stock_count(self, adapter: BackboneAdapter) -> None:
        """The stock ``Gemma3Processor._get_num_multimodal_tokens`` ignores crops (transformers 5.24:
        "no image cropping supported yet"), so with pan-and-scan on the processor's output is the
        count: image tokens and every token it writes for the image, on sizes up to 1:1000."""
        placeholder = adapter.image_placeholder
        base = len(adapter.processor.tokenizer(placeholder)["input_ids"])
        plain = len(adapter.processor.tokenizer(placeholder, add_special_tokens=False)["input_ids"])
        multi = 0
        wide_and_tall = [(300, 1000), (1000, 300), (256, 4000), (4000, 256), (500, 2600), (2600, 500)]
        for i, (h, w) in enumerate(random_sizes(self.spec_size_count, seed=2, low=4, high=4000) + wide_and_tall):
            try:
                geometry = adapter.spec.geometry((h, w))
            except VisionInputError:
                raise AssertionError(f"{(h, w)}: the spec refuses a size the processor takes") from None
            out = adapter.processor(images=[smooth_image(h, w, seed=i)], text=[placeholder], return_tensors="pt")
            ids = out["input_ids"][0]
            assert int((ids == adapter.spec.image_token_id).sum()) == geometry.num_image_tokens, (h, w)
            assert ids.numel() - base + plain == geometry.num_prompt_tokens, (h, w)
            multi += geometry.num_views > 1
        assert multi >= 10  # the sizes really include cropped images
