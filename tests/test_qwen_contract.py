"""The framework's adapter contract (``vlm_adapters.testing``), run for every Qwen-VL adapter."""

from __future__ import annotations

from vlm_adapters import BackboneAdapter, ImageGeometry
from vlm_adapters.testing import AdapterContract, smooth_image


class QwenContract(AdapterContract):
    def check_stock_geometry(self, adapter: BackboneAdapter, size: tuple[int, int], geometry: ImageGeometry) -> None:
        """The processor's ``image_grid_thw`` is the geometry's patch grid."""
        out = adapter.processor.image_processor(images=[smooth_image(*size)], return_tensors="pt")
        assert geometry.patch_grid is not None
        assert out["image_grid_thw"][0].tolist() == [geometry.temporal, *geometry.patch_grid], size


class TestQwen2VLContract(QwenContract):
    adapter_name = "qwen2_vl"


class TestQwen2_5_VLContract(QwenContract):
    adapter_name = "qwen2_5_vl"


class TestQwen3VLContract(QwenContract):
    adapter_name = "qwen3_vl"
