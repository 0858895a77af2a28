"""The framework's adapter contract (``vlm_adapters.testing``) on Idefics3 and SmolVLM (tiny random models)."""

from __future__ import annotations

from adapters_idefics3.tiny import SMOLVLM_2B
from vlm_adapters import BackboneAdapter, ImageGeometry
from vlm_adapters.testing import AdapterContract


class SplitContract(AdapterContract):
    spec_size_count = 24  # test_idefics3_spec.py checks 1000+ sizes and sub-image contents

    def check_stock_geometry(self, adapter: BackboneAdapter, size: tuple[int, int], geometry: ImageGeometry) -> None:
        """The image processor's rows x cols of sub-images (plus the global view) are the views."""
        _, rows, cols = adapter.processor.image_processor.get_number_of_image_patches(*size)
        assert geometry.num_views == rows * cols + 1, size


class TestIdefics3Contract(SplitContract):
    adapter_name = "idefics3"


class TestSmolVLMContract(SplitContract):
    adapter_name = "smolvlm"


class TestSmolVLM2BContract(SplitContract):
    """SmolVLM 2.2B's geometry: 384 px views whose last 6 px no 14 px patch covers."""

    adapter_name = "smolvlm"
    variant = SMOLVLM_2B
