"""The adapter contract: one base class a plugin author subclasses to test an adapter.

```python
from vlm_adapters.testing import AdapterContract

class TestMyAdapter(AdapterContract):
    adapter_name = "my_backbone"
```

Each ``test_*`` method is one promise every adapter keeps, checked against the stock
processor and the stock model (the tiny random-weight one from ``tiny_config``): the spec
agrees with the processor on many image sizes, ``normalize`` reproduces ``prepare``, bad
inputs raise ``VisionInputError``, a batch equals its samples, and ``prepare`` gives the same
logits as the stock processor path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from ..adapter import BackboneAdapter
from ..batch import VisionBatch
from ..errors import VisionInputError
from ..registry import get_adapter
from ..spec import DynamicSpec, FixedSpec
from .images import random_sizes, smooth_image, solid_image


def sample_from_batch(batch: VisionBatch, index: int = 0) -> dict[str, Any]:
    """The dataset-style dict (F-LMM keys) that describes one sample of a prepared batch."""
    if batch.batch_size != 1:
        raise ValueError("sample_from_batch expects a one-sample batch")
    sample: dict[str, Any] = {k: v for k, v in batch.inputs.items() if k not in ("attention_mask",)}
    sample["input_ids"] = batch.input_ids[index]
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in sample:
            sample[key] = sample[key][index]
    sample["image_sizes"] = [list(g.original_size) for g in batch.geometries[index]]
    return sample


def assert_inputs_equal(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    """Every tensor ``want`` has is in ``got`` with the same shape and values."""
    for key, value in want.items():
        assert key in got, f"missing input {key!r}; got {sorted(got)}"
        assert tuple(got[key].shape) == tuple(value.shape), f"{key}: {tuple(got[key].shape)} != {tuple(value.shape)}"
        if value.is_floating_point():
            torch.testing.assert_close(got[key].float(), value.float(), rtol=0, atol=1e-6, msg=key)
        else:
            assert torch.equal(got[key].cpu(), value.cpu()), f"{key} differs"


class AdapterContract:
    """Subclass with ``adapter_name`` (and ``variant`` for adapters with several tiny configs)."""

    adapter_name: ClassVar[str]
    variant: ClassVar[str | None] = None
    spec_size_count: ClassVar[int] = 60
    """Image sizes checked against the stock processor (more in each family's own tests)."""
    model_sizes: ClassVar[tuple[tuple[int, int], ...]] = ((427, 640), (300, 200))
    """Image sizes run through the tiny model."""
    prompt_text: ClassVar[str] = "describe the red cat on the left"
    logits_atol: ClassVar[float] = 1e-5

    # --- fixtures ------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def adapter_cls(cls) -> type[BackboneAdapter]:
        return get_adapter(cls.adapter_name)

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, adapter_cls: type[BackboneAdapter]) -> BackboneAdapter:
        return adapter_cls.from_tiny(cls.variant)

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, adapter: BackboneAdapter) -> Any:
        return adapter.load_model(seed=0)

    def prompt(self, adapter: BackboneAdapter, num_images: int = 1) -> str:
        return adapter.format_prompt(self.prompt_text, num_images=num_images, answer="a cat on a chair")

    def forward(self, model: Any, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return model(**inputs).logits.float()

    # --- the contract --------------------------------------------------------------------
    def test_registered_under_its_name(self, adapter_cls: type[BackboneAdapter], adapter: BackboneAdapter) -> None:
        assert adapter_cls.name == self.adapter_name
        assert adapter.config.model_type in adapter_cls.model_types
        assert adapter.spec.kind == adapter_cls.spec_kind

    def test_spec_round_trips_json(self, adapter: BackboneAdapter) -> None:
        from ..spec import spec_from_json

        assert spec_from_json(adapter.spec.model_dump_json()) == adapter.spec

    def test_spec_matches_stock_processor(self, adapter: BackboneAdapter) -> None:
        """Token count, input size and content placement agree with the stock processor."""
        spec = adapter.spec
        for i, (h, w) in enumerate(random_sizes(self.spec_size_count, seed=1, low=4, high=1200)):
            h, w = max(h, 2), max(w, 2)
            if isinstance(spec, DynamicSpec) and max(h, w) / min(h, w) > spec.max_aspect_ratio:
                continue
            geometry = spec.geometry((h, w))
            image = solid_image(h, w) if isinstance(spec, FixedSpec) else smooth_image(h, w, seed=i)
            out = adapter.processor(images=[image], text=[adapter.image_placeholder], return_tensors="pt")
            count = int((out["input_ids"] == spec.image_token_id).sum())
            assert count == geometry.num_image_tokens, f"{(h, w)}: processor gave {count} image tokens"
            if isinstance(spec, DynamicSpec):
                assert out["image_grid_thw"][0].tolist() == list(spec.grid_thw((h, w))), (h, w)
            else:
                self._check_fixed_content(spec, geometry, out["pixel_values"])

    @staticmethod
    def _check_fixed_content(spec: FixedSpec, geometry: Any, pixels: torch.Tensor) -> None:
        """White content sits exactly inside the spec's padding.

        The margin is 1 input pixel for resampling, wider where padding happens before an
        upscale (``pad_then_resize``): the content edge is then blurred over about twice the
        upscale factor.
        """
        pixels = pixels.reshape(-1, *pixels.shape[-3:])[0].float()
        assert tuple(pixels.shape[-2:]) == spec.image_size
        mean = torch.tensor(spec.image_mean).view(3, 1, 1)
        std = torch.tensor(spec.image_std).view(3, 1, 1)
        raw = pixels * std + mean  # back to [0, 1]
        bright = raw.mean(0) > 0.9
        p = geometry.padding
        ih, iw = spec.image_size
        m = 1
        if spec.resize_mode == "pad_then_resize":
            m = max(1, math.ceil(2 * ih / max(geometry.original_size)))
        t, b = int(p.top), ih - int(p.bottom)
        left, r = int(p.left), iw - int(p.right)
        if b - t > 2 * m and r - left > 2 * m:
            assert bright[t + m : b - m, left + m : r - m].all(), "content area is not where the spec says"
        if t > m:
            assert not bright[: t - m].any(), "padding above the content holds content"
        if ih - b > m:
            assert not bright[b + m :].any(), "padding below the content holds content"
        if left > m:
            assert not bright[:, : left - m].any(), "padding left of the content holds content"
        if iw - r > m:
            assert not bright[:, r + m :].any(), "padding right of the content holds content"

    def test_prepare_matches_stock_processor_logits(self, adapter: BackboneAdapter, model: Any) -> None:
        image = smooth_image(*self.model_sizes[0], seed=3)
        text = self.prompt(adapter)
        batch = adapter.prepare([image], [text])
        stock = adapter.processor(images=[image], text=[text], return_tensors="pt")
        stock_inputs = {k: v for k, v in stock.items() if isinstance(v, torch.Tensor)}
        torch.testing.assert_close(
            self.forward(model, batch.inputs), self.forward(model, stock_inputs), rtol=0, atol=self.logits_atol
        )

    def test_token_positions_and_grid(self, adapter: BackboneAdapter) -> None:
        sizes = list(self.model_sizes)
        images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
        batch = adapter.prepare([images], [self.prompt(adapter, num_images=len(images))])
        ids = batch.input_ids[0]
        for geometry, positions in zip(batch.geometries[0], batch.image_token_positions[0], strict=True):
            assert positions.numel() == geometry.num_image_tokens
            assert (ids[positions] == adapter.spec.image_token_id).all()
            assert torch.equal(positions, torch.arange(int(positions[0]), int(positions[0]) + positions.numel()))
            grid = adapter.tokens_to_grid(positions.float(), geometry)
            assert tuple(grid.shape[-2:]) == geometry.token_grid
            assert torch.equal(adapter.grid_to_tokens(grid, geometry), positions.float())
            # raster: moving one column right is the next token, one row down is +cols tokens
            if adapter.spec.token_order == "raster" and geometry.temporal == 1:
                cols = geometry.token_grid[1]
                assert torch.all(grid[:, 1:] - grid[:, :-1] == 1)
                assert torch.all(grid[1:, :] - grid[:-1, :] == cols)

    def test_geometry_round_trip(self, adapter: BackboneAdapter) -> None:
        for h, w in random_sizes(20, seed=7, low=16, high=900):
            g = adapter.spec.geometry((h, w))
            ones = torch.ones(h, w)
            on_grid = g.to_token_grid(ones)
            assert tuple(on_grid.shape) == g.token_grid
            ph, pw = g.pixels_per_token
            covered = float(on_grid.sum()) * ph * pw
            assert abs(covered - g.content_height * g.content_width) <= 2 * (
                ph * g.input_size[1] + pw * g.input_size[0]
            )
            back = g.to_image(torch.ones(*g.token_grid))
            assert tuple(back.shape) == (h, w)
            torch.testing.assert_close(back, torch.ones(h, w))

    def test_normalize_reproduces_prepare(self, adapter: BackboneAdapter) -> None:
        image = smooth_image(*self.model_sizes[0], seed=5)
        batch = adapter.prepare([image], [self.prompt(adapter)])
        again = adapter.normalize(sample_from_batch(batch))
        assert_inputs_equal(again.inputs, {k: v for k, v in batch.inputs.items() if k != "attention_mask"})
        assert again.geometries == batch.geometries
        for a, b in zip(again.image_token_positions[0], batch.image_token_positions[0], strict=True):
            assert torch.equal(a, b)

    def test_bad_inputs_raise_vision_input_error(self, adapter: BackboneAdapter) -> None:
        image = smooth_image(*self.model_sizes[0], seed=6)
        good = sample_from_batch(adapter.prepare([image], [self.prompt(adapter)]))
        ids = good["input_ids"]
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[int((ids == adapter.spec.image_token_id).nonzero()[0])] = False
        one_token_short = {**good, "input_ids": ids[keep]}
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in good:
                one_token_short[key] = good[key][keep]
        pixels = good["pixel_values"]
        flat = pixels.reshape(pixels.shape[0], -1) if pixels.ndim != 2 else pixels
        disguised = {**good, "pixel_values": flat.reshape(1, 1, *flat.shape).expand(1, 3, *flat.shape)}
        no_pixels = {k: v for k, v in good.items() if k != "pixel_values"}
        for name, bad in (
            ("one image token short", one_token_short),
            ("patch matrix as image", disguised),
            ("no pixel values", no_pixels),
        ):
            try:
                adapter.normalize(bad)
            except VisionInputError as exc:
                message = str(exc)
                assert "found" in message and "expected" in message and "Fix:" in message, (name, message)
            else:
                pytest.fail(f"bad input {name!r}: normalize() accepted it; expected a VisionInputError")

    def test_batch_equals_samples(self, adapter: BackboneAdapter, model: Any) -> None:
        samples = []
        for i, (h, w) in enumerate(self.model_sizes):
            text = adapter.format_prompt(self.prompt_text + " now" * i, num_images=1, answer="a cat")
            samples.append(sample_from_batch(adapter.prepare([smooth_image(h, w, seed=10 + i)], [text])))
        batch = adapter.collate(samples)
        assert batch.batch_size == len(samples)
        logits = self.forward(model, batch.inputs)
        for b, sample in enumerate(samples):
            single = adapter.normalize(sample)
            ref = self.forward(model, single.inputs)[0]
            valid = batch.inputs["attention_mask"][b].bool()
            torch.testing.assert_close(logits[b][valid], ref, rtol=0, atol=1e-4)
            shift = int(batch.image_token_positions[b][0][0] - single.image_token_positions[0][0][0])
            for p_batch, p_single in zip(batch.image_token_positions[b], single.image_token_positions[0], strict=True):
                assert torch.equal(p_batch - shift, p_single)
            assert batch.geometries[b] == single.geometries[0]

    def test_checkpoint_round_trip(self, adapter: BackboneAdapter, tmp_path_factory: pytest.TempPathFactory) -> None:
        from ..tiny import save_tiny_checkpoint

        folder = save_tiny_checkpoint(adapter, tmp_path_factory.mktemp("ckpt"))
        loaded = type(adapter).from_pretrained(folder)
        assert loaded.spec == adapter.spec
        image = smooth_image(*self.model_sizes[1], seed=8)
        text = self.prompt(loaded)
        a = self.forward(adapter.load_model(seed=0), adapter.prepare([image], [text]).inputs)
        b = self.forward(loaded.load_model(folder), loaded.prepare([image], [text]).inputs)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)

    # --- frozen-LMM pipeline exactness ---------------------------------------------------
    def test_captured_attention_equals_eager(self, adapter: BackboneAdapter, model: Any) -> None:
        """Captured maps == the matching slice of eager ``output_attentions``; hidden states == stock."""
        from ..pipeline import FrozenLMM

        images = [smooth_image(h, w, seed=20 + i) for i, (h, w) in enumerate(self.model_sizes)]
        batch = adapter.prepare([images], [self.prompt(adapter, num_images=len(images))])
        out = FrozenLMM(model, adapter)(batch)[0]
        eager = adapter.load_model(seed=0, attn_implementation="eager")
        with torch.no_grad():
            ref = eager(**batch.inputs, output_attentions=True, output_hidden_states=True)
        assert len(ref.attentions) == len(out.layers) > 0
        q = out.query_positions
        for i, (geometry, positions) in enumerate(
            zip(batch.geometries[0], batch.image_token_positions[0], strict=True)
        ):
            for slot, layer in enumerate(out.layers):
                want = ref.attentions[layer][0][:, q][:, :, positions].float()  # [H, Q, K]
                got = out.attention[i][slot]  # [H, Q, rows, cols]
                torch.testing.assert_close(got, adapter.tokens_to_grid(want, geometry), rtol=0, atol=1e-5)
        assert out.hidden_states is not None
        stock = torch.stack([h[0, q] for h in ref.hidden_states])
        torch.testing.assert_close(out.hidden_states.float(), stock.float(), rtol=0, atol=1e-5)

    @pytest.mark.parametrize("padding_side", ["right", "left"])
    def test_pipeline_batch_equals_samples(self, adapter: BackboneAdapter, model: Any, padding_side: str) -> None:
        """A two-image and a one-image sample batched (either padding side) == each on its own."""
        from ..adapter import concat_batches
        from ..pipeline import FrozenLMM

        lmm = FrozenLMM(model, adapter)
        first = [smooth_image(h, w, seed=30 + i) for i, (h, w) in enumerate(self.model_sizes)]
        second = [smooth_image(*self.model_sizes[-1], seed=40)]
        samples = []
        for i, images in enumerate((first, second)):
            text = adapter.format_prompt(self.prompt_text, num_images=len(images), answer="a cat" + " now" * i)
            samples.append(sample_from_batch(adapter.prepare([images], [text])))
        singles = [adapter.normalize(s) for s in samples]
        batched = lmm(concat_batches(singles, adapter.pad_token_id, padding_side, adapter.sequence_keys))
        for single, got in zip(singles, batched, strict=True):
            want = lmm(single)[0]
            assert got.num_queries == want.num_queries
            assert torch.equal(got.query_token_ids, want.query_token_ids)
            assert len(got.attention) == len(want.attention) == single.num_images[0]
            for a, b in zip(got.attention, want.attention, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
            assert got.hidden_states is not None and want.hidden_states is not None
            torch.testing.assert_close(got.hidden_states, want.hidden_states, rtol=0, atol=1e-4)
            assert got.geometries == want.geometries
