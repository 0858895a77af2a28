"""The framework's adapter contract (``vlm_adapters.testing``) on InternVL (tiny random model)."""

from __future__ import annotations

from vlm_adapters import BackboneAdapter, ImageGeometry
from vlm_adapters.testing import AdapterContract


class TestInternVLContract(AdapterContract):
    adapter_name = "internvl"
    spec_size_count = 30  # test_internvl_spec.py checks 1000+ sizes and tile contents

    def check_stock_geometry(self, adapter: BackboneAdapter, size: tuple[int, int], geometry: ImageGeometry) -> None:
        """The image processor's tile count (thumbnail included) is the number of views."""
        ip = adapter.processor.image_processor
        kwargs = adapter.processor._merge_kwargs()["images_kwargs"]
        assert ip.get_number_of_image_patches(*size, kwargs) == geometry.num_views, size
